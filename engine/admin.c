/*
 * admin.c - repair by command: `pin`, `unpin` and `undo --run N`, beside
 * link.c's `link` and `unlink`. Each takes the run lock first (so it is
 * refused, exit 3, while a run holds it, I7) and is journalled in
 * admin_action, which report and explain show.
 *
 * A pin is a value an admin holds against every system: the merge takes it
 * as the agreed value (reconcile.c) and plan.c writes it wherever a system
 * differs, until unpinned. Opt-out fields cannot be pinned, so a pin can
 * never clear an opt-out (I4).
 *
 * An undo puts back the agreed values a run changed: each field the run
 * wrote by an update, whose agreed value it set and no later run changed,
 * gets back the value the run's write replaced; the persons are merged
 * again, so every system that differs is written, the source of the change
 * included. Opt-outs are never undone; records the run created stay. The
 * plan is the engine's own (a dry run with the undo applied); `--yes` runs
 * it for real.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "../core/lock.h"
#include "../core/normalize.h"
#include "../core/str.h"

/* The person number of arg (digits only), or 0. */
static long long person_number(const char *arg)
{
	char *end;
	long long n;

	if (*arg == '\0' || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 12)
		return 0;
	errno = 0;
	n = strtoll(arg, &end, 10);
	return errno ? 0 : n;
}

/* Takes the lock and opens the existing state file; prints why not and
 * returns the exit code, or EXIT_OK with *lock and *st set. */
static int admin_open(const struct config *cfg, int *lock, struct state **st)
{
	struct df_err err = { 0 };

	*st = NULL;
	if (access(cfg->state_path, F_OK) != 0) {
		fprintf(stderr, "dfreconcile: no state file at %s yet: nothing to change\n", cfg->state_path);
		return EXIT_USAGE;
	}
	*lock = lock_take(cfg->lock_path, &err);
	if (*lock < 0) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return err.fail == DF_FAIL_TEMP ? EXIT_LOCKED : EXIT_FATAL;
	}
	*st = state_open(cfg->state_path, &err);
	if (*st == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		lock_release(*lock);
		return EXIT_FATAL;
	}
	return EXIT_OK;
}

static void admin_close(int lock, struct state *st)
{
	state_close(st);
	lock_release(lock);
}

/* The field named, if it may be pinned; else prints why and returns -1. */
static int pinnable_field(const struct config *cfg, const char *name)
{
	int f = field_find(name);

	if (f < 0) {
		fprintf(stderr, "dfreconcile: unknown field \"%s\"\n", name);
		return -1;
	}
	if (field_is_optout(f)) {
		fprintf(stderr, "dfreconcile: %s is an opt-out: opt-outs are not pinned, they only ever "
			"spread (an opt-in needs the configured event, see optouts.opt_in)\n", name);
		return -1;
	}
	if (cfg->rule[f].kind == RULE_NONE) {
		fprintf(stderr, "dfreconcile: %s is not synced (rule none): a pin would write nothing\n", name);
		return -1;
	}
	return f;
}

/* pin and unpin (value NULL), inside one transaction. */
static int pin_apply(const struct config *cfg, struct state *st, long long person, int f,
		     const char *value, struct df_err *err)
{
	const char *name = field_get(f)->name;
	struct record agreed;
	char who[128], *before;
	bool exists = false, dropped = false;
	int rc = -1;

	record_init(&agreed);
	admin_who(who, sizeof(who));
	if (state_person_exists(st, person, &exists, err) || state_agreed_get(st, person, &agreed, err))
		goto out;
	if (!exists) {
		df_fail(err, DF_FAIL_INPUT, "no person %lld in the state file", person);
		goto out;
	}
	before = xasprintf("%s = \"%s\"", name, agreed.value[f] ? agreed.value[f] : "");
	if (value == NULL) {
		char *after = xasprintf("%s follows the merge rule %s again", name, cfg->rule[f].text);
		rc = state_pin_drop(st, person, name, &dropped, err);
		if (rc == 0 && !dropped)
			rc = df_fail(err, DF_FAIL_INPUT, "person %lld has no pin on %s", person, name);
		if (rc == 0)
			rc = state_person_dirty(st, person, true, err) ||
			     state_admin_log(st, "unpin", who, "field", name, person, person, before, after, err);
		free(after);
	} else {
		char *after = xasprintf("%s pinned to \"%s\"", name, value);
		rc = state_pin_put(st, person, name, value, who, err) || state_person_dirty(st, person, true, err) ||
		     state_admin_log(st, "pin", who, "field", name, person, person, before, after, err) ? -1 : 0;
		free(after);
	}
	free(before);
out:
	record_clear(&agreed);
	return rc;
}

static int pin_command(const struct config *cfg, const char *person_arg, const char *field,
		       const char *raw)
{
	long long person = person_number(person_arg);
	struct df_err err = { 0 };
	struct state *st;
	char *value = NULL;
	const char *why = NULL;
	int f, lock = -1, code;

	if (person <= 0) {
		fprintf(stderr, "dfreconcile: PERSON must be a person number, not \"%s\"\n", person_arg);
		return EXIT_USAGE;
	}
	if ((f = pinnable_field(cfg, field)) < 0)
		return EXIT_USAGE;
	if (raw != NULL) {
		/* Stored as a system's value would be after normalising, so it
		 * compares equal to what the systems send back (I3). */
		value = value_normalize(field_get(f)->kind, raw, cfg->default_country, &why);
		if (value == NULL || *value == '\0') {
			fprintf(stderr, "dfreconcile: \"%s\" is not a value for %s%s%s\n", raw, field,
				why ? ": " : "", why ? why : "");
			free(value);
			return EXIT_USAGE;
		}
	}
	code = admin_open(cfg, &lock, &st);
	if (code != EXIT_OK) {
		free(value);
		return code;
	}
	if (state_begin(st, &err) || pin_apply(cfg, st, person, f, value, &err) || state_commit(st, &err)) {
		state_rollback(st);
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		code = err.fail == DF_FAIL_INPUT ? EXIT_USAGE : EXIT_FATAL;
	} else if (value) {
		printf("pinned person %lld %s = \"%s\"; the next run writes it to every system that differs\n",
		       person, field, value);
	} else {
		printf("unpinned person %lld %s; it follows the rule %s again\n", person, field, cfg->rule[f].text);
	}
	admin_close(lock, st);
	free(value);
	return code;
}

int admin_pin(const struct config *cfg, const char *person, const char *field, const char *value)
{
	return pin_command(cfg, person, field, value);
}

int admin_unpin(const struct config *cfg, const char *person, const char *field)
{
	return pin_command(cfg, person, field, NULL);
}

/* undo */

enum undo_class { U_RESTORE, U_OPTOUT, U_LATER, U_REPAIR };

struct undo {
	long long run;
	struct undo_item *items;
	enum undo_class *cls;
	int n, restore, optouts, later;
	long long creates;
};

static void undo_free(struct undo *u)
{
	state_undo_items_free(u->items, u->n);
	free(u->cls);
	u->items = NULL;
	u->cls = NULL;
	u->n = 0;
}

/* What undoing u->run would put back, refuse or leave. */
static int undo_analyse(struct state *st, struct undo *u, struct df_err *err)
{
	undo_free(u);
	u->restore = u->optouts = u->later = 0;
	if (state_undo_items(st, u->run, &u->items, &u->n, err) || state_run_creates(st, u->run, &u->creates, err))
		return -1;
	u->cls = xcalloc((size_t)u->n + 1, sizeof(*u->cls));
	for (int i = 0; i < u->n; i++) {
		const struct undo_item *it = &u->items[i];
		int f = field_find(it->field);
		if (f < 0 || field_is_optout(f))
			u->cls[i] = U_OPTOUT, u->optouts++;
		else if (it->current_run > u->run)
			u->cls[i] = U_LATER, u->later++;
		else if (it->current_run == u->run && str_eq(it->current, it->new_value))
			u->cls[i] = U_RESTORE, u->restore++;
		else
			u->cls[i] = U_REPAIR; /* the run only brought a system to the agreed value */
	}
	return 0;
}

static const char *shown(const char *v)
{
	return v ? v : "";
}

static void undo_print(const struct undo *u, FILE *out)
{
	fprintf(out, "undo of run %lld:\n", u->run);
	for (int i = 0; i < u->n; i++) {
		const struct undo_item *it = &u->items[i];
		switch (u->cls[i]) {
		case U_RESTORE:
			fprintf(out, "  put back: person %lld %s: \"%s\" -> \"%s\"\n", it->person, it->field,
				shown(it->new_value), shown(it->old_value));
			break;
		case U_OPTOUT:
			fprintf(out, "  not undone: person %lld %s = \"%s\": opt-outs are never undone\n", it->person,
				it->field, shown(it->new_value));
			break;
		case U_LATER:
			fprintf(out, "  refused: person %lld %s: run %lld wrote \"%s\", run %lld changed it since to "
				"\"%s\"; undo would overwrite \"%s\"\n", it->person, it->field, u->run,
				shown(it->new_value), it->current_run, shown(it->current), shown(it->current));
			break;
		case U_REPAIR:
			break;
		}
	}
	if (u->creates > 0)
		fprintf(out, "  not undone: %lld record(s) run %lld created stay\n", u->creates, u->run);
}

/* The run's prepare hook: the agreed values put back, journalled, and the
 * persons marked for merging, inside the run's transaction. */
static int undo_prepare(struct run *r, void *arg)
{
	struct undo *u = arg;
	int restore = u->restore;
	char who[128], runs[32];

	if (undo_analyse(r->st, u, &r->err))
		return -1;
	if (u->later > 0 || u->restore != restore)
		return df_fail(&r->err, DF_FAIL_INPUT, "the values of run %lld changed since the undo was "
			       "checked; run the undo again", u->run);
	admin_who(who, sizeof(who));
	snprintf(runs, sizeof(runs), "%lld", u->run);
	for (int i = 0; i < u->n; i++) {
		const struct undo_item *it = &u->items[i];
		char reason[96], *before, *after;
		struct provenance p = { NULL, "undo", reason, NULL };
		int rc;
		if (u->cls[i] != U_RESTORE)
			continue;
		snprintf(reason, sizeof(reason), "undo of run %lld by an admin", u->run);
		before = xasprintf("%s = \"%s\"", it->field, shown(it->new_value));
		after = xasprintf("%s = \"%s\"", it->field, shown(it->old_value));
		log_info("event=undo run=%s person=%lld field=%s", runs, it->person, it->field);
		rc = state_agreed_put(r->st, it->person, it->field, shown(it->old_value), &p, r->id, &r->err) ||
		     state_person_dirty(r->st, it->person, true, &r->err) ||
		     state_admin_log(r->st, "undo", who, "run", runs, it->person, it->person, before, after,
				     &r->err);
		free(before);
		free(after);
		if (rc)
			return -1;
	}
	return 0;
}

int admin_undo(const struct config *cfg, long long run, bool yes)
{
	struct undo u = { .run = run };
	struct run_options ro = { .max_change_share = -1, .dry_run = !yes, .prepare = undo_prepare,
				  .prepare_arg = &u };
	struct df_err err = { 0 };
	struct state *st;
	int lock = -1, code;

	code = admin_open(cfg, &lock, &st);
	if (code != EXIT_OK)
		return code;
	if (run > state_last_run(st)) {
		fprintf(stderr, "dfreconcile: no run %lld in the state file\n", run);
		admin_close(lock, st);
		return EXIT_USAGE;
	}
	if (undo_analyse(st, &u, &err)) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		admin_close(lock, st);
		undo_free(&u);
		return EXIT_FATAL;
	}
	admin_close(lock, st);
	undo_print(&u, stdout);
	if (u.later > 0) {
		fprintf(stderr, "dfreconcile: undo refused: later runs changed %d value(s) run %lld wrote "
			"(listed above); nothing was changed\n", u.later, run);
		undo_free(&u);
		return EXIT_USAGE;
	}
	if (u.restore == 0) {
		fprintf(stderr, "dfreconcile: run %lld changed no value undo can put back%s\n", run,
			u.optouts ? " (opt-outs are never undone)" : "");
		undo_free(&u);
		return EXIT_USAGE;
	}
	fflush(stdout);
	/* The engine's own plan: a dry run with the undo applied, or with
	 * --yes the run that sends it. It takes the lock again. */
	code = engine_run(cfg, &ro);
	if (!yes)
		printf("dry run: nothing was sent nor changed; run again with --yes to send this plan\n");
	undo_free(&u);
	return code;
}
