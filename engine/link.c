/*
 * link.c - the LINK stage: which person an unlinked record belongs to.
 *
 * Phone first (E.164, valid only), then lower-case email, matched against
 * both the agreed values and every linked record's snapshot, so two systems
 * first seen in the same run still find each other. Doubt is never merged:
 * several candidates, phone and email pointing at different persons, a
 * person who already has another record in the same system (a duplicate in
 * that system), or a phone or email that a record held for the same doubt
 * shares, leave the record unlinked and held (observe.c, table hold): while
 * a key is ambiguous nothing links through it.
 *
 * Only an admin resolves a hold: `dfreconcile link SYSTEM:ID PERSON` links
 * the record (its person's next merge takes it in as a fresh record) and
 * `dfreconcile unlink SYSTEM:ID` undoes a link and holds the record as
 * "unlinked", so that no run links it again through its keys; only a later
 * `link` releases it. Both take the run lock and are journalled
 * (admin_action) for report and explain.
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

#define MAX_CANDIDATES 4

static void describe(char *why, size_t n, const char *key, const char *value,
		     const long long *ids, int nids)
{
	int k = snprintf(why, n, "%s %s matches persons", key, value);

	for (int i = 0; i < nids && k > 0 && (size_t)k < n; i++)
		k += snprintf(why + k, n - (size_t)k, "%s %lld", i ? "," : "", ids[i]);
}

int link_record(struct run *r, int s, const struct record *rec, long long *person,
		const char **how, char *why, size_t whylen)
{
	const char *phone = rec->value[F_PHONE], *email = rec->value[F_EMAIL];
	const char *name = r->sys[s].conf->name;
	long long byphone[MAX_CANDIDATES], byemail[MAX_CANDIDATES];
	int np = 0, ne = 0;
	char *other = NULL, *held = NULL;
	bool held_phone = false;

	/* A number's opt-outs (the texting register) belong to the number,
	 * whoever shares it: they are never held back (I4). */
	bool holds = !connector_has(r->sys[s].conn, CAP_OPTOUTS_ONLY);

	*person = 0;
	if (phone_is_e164(phone) &&
	    (state_match(r->st, "phone", phone, byphone, MAX_CANDIDATES, &np, &r->err) ||
	     (holds && state_held_other(r->st, "phone", phone, name, rec->remote_id, &held, &r->err))))
		return -1;
	held_phone = held != NULL;
	if (email_is_valid(email) &&
	    (state_match(r->st, "email", email, byemail, MAX_CANDIDATES, &ne, &r->err) ||
	     (holds && held == NULL &&
	      state_held_other(r->st, "email", email, name, rec->remote_id, &held, &r->err))))
		return -1;
	if (held != NULL) {
		/* Another record is held for this key: it is ambiguous until an
		 * admin decides, so this one waits with it. */
		snprintf(why, whylen, "%s %s is ambiguous: held record %s has it too%s",
			 held_phone ? "phone" : "email", held_phone ? phone : email, held,
			 np + ne > 0 ? ", as do linked records" : "");
		free(held);
		return 0;
	}
	if (np > 1) {
		describe(why, whylen, "phone", phone, byphone, np);
		return 0;
	}
	if (ne > 1 && np == 0) {
		describe(why, whylen, "email", email, byemail, ne);
		return 0;
	}
	if (np == 1 && ne == 1 && byphone[0] != byemail[0]) {
		snprintf(why, whylen, "phone %s matches person %lld but email %s matches person %lld",
			 phone, byphone[0], email, byemail[0]);
		return 0;
	}
	if (np == 1 || ne == 1) {
		long long p = np == 1 ? byphone[0] : byemail[0];
		if (state_link_of(r->st, p, r->sys[s].conf->name, &other, &r->err))
			return -1;
		if (other != NULL) {
			snprintf(why, whylen, "%s %s matches person %lld, who already has %s record %s",
				 np == 1 ? "phone" : "email", np == 1 ? phone : email, p, name, other);
			free(other);
			return 0;
		}
		*person = p;
		*how = np == 1 ? "phone" : "email";
		return 0;
	}
	*person = state_person_new(r->st, r->id, &r->err);
	*how = "new";
	return *person < 0 ? -1 : 0;
}

/* The admin commands, link and unlink */

void admin_who(char *who, size_t n)
{
	const char *user = getenv("USER");

	if (user != NULL && *user != '\0')
		snprintf(who, n, "%s", user);
	else
		snprintf(who, n, "uid %ld", (long)getuid());
}

/* The change itself, inside the caller's transaction. Refusals are
 * DF_FAIL_INPUT; *done says what was done, for the admin. */
static int admin_apply(struct state *st, const char *system, const char *id, long long person,
		       bool unlink, char *done, size_t n, struct df_err *err)
{
	struct record snap;
	long long cur = 0;
	char *held = NULL, *other = NULL, who[128], before[160], after[160];
	bool found = false, exists = false, is_new = person == 0;
	int rc = -1;

	record_init(&snap);
	admin_who(who, sizeof(who));
	if (state_snapshot_get(st, system, id, &snap, &found, err) ||
	    state_link_get(st, system, id, &cur, err) || state_hold_get(st, system, id, &held, err))
		goto out;
	if (!found && cur == 0) {
		df_fail(err, DF_FAIL_INPUT, "no %s record %s in the state file (no run has read it)", system, id);
		goto out;
	}
	if (cur != 0)
		snprintf(before, sizeof(before), "linked to person %lld", cur);
	else if (held != NULL)
		snprintf(before, sizeof(before), "held (%s)", held);
	else
		snprintf(before, sizeof(before), "not linked");
	if (unlink) {
		if (cur == 0) {
			df_fail(err, DF_FAIL_INPUT, "%s:%s is not linked (%s)", system, id, before);
			goto out;
		}
		snprintf(after, sizeof(after), "held (unlinked)");
		snprintf(done, n, "unlinked %s:%s from person %lld; it stays held until linked", system, id, cur);
		rc = state_link_drop(st, system, id, err) || state_snapshot_unmerge(st, system, id, err) ||
		     state_hold_put(st, system, id, "unlinked", "unlinked by an admin", state_last_run(st), err) ||
		     state_person_dirty(st, cur, true, err) ||
		     state_admin_log(st, "unlink", who, system, id, cur, 0, before, after, err) ? -1 : 0;
		goto out;
	}
	if (person == 0) {
		/* "new": a person of its own, for a record that is nobody's yet. */
		person = state_person_new(st, state_last_run(st), err);
		if (person < 0)
			goto out;
	}
	if (state_person_exists(st, person, &exists, err) ||
	    state_link_of(st, person, system, &other, err))
		goto out;
	if (!exists) {
		df_fail(err, DF_FAIL_INPUT, "no person %lld in the state file", person);
		goto out;
	}
	if (cur == person) {
		snprintf(done, n, "%s:%s is already linked to person %lld; nothing changed", system, id, person);
		rc = 0;
		goto out;
	}
	if (other != NULL) {
		df_fail(err, DF_FAIL_INPUT, "person %lld already has %s record %s; unlink it first", person,
			system, other);
		goto out;
	}
	snprintf(after, sizeof(after), "linked to %sperson %lld", is_new ? "new " : "", person);
	snprintf(done, n, "linked %s:%s to person %lld; the next run merges it", system, id, person);
	/* Fresh: its values compete with the person's agreed ones under the
	 * rules at the next merge, rather than counting as edits. */
	rc = (cur != 0 && (state_link_drop(st, system, id, err) || state_person_dirty(st, cur, true, err))) ||
	     state_link_put(st, system, id, person, "admin", state_last_run(st), err) ||
	     state_hold_drop(st, system, id, err) || state_snapshot_unmerge(st, system, id, err) ||
	     state_person_dirty(st, person, true, err) ||
	     state_admin_log(st, "link", who, system, id, cur, person, before, after, err) ? -1 : 0;
out:
	record_clear(&snap);
	free(held);
	free(other);
	return rc;
}

int link_admin(const struct config *cfg, const char *target, const char *person_arg, bool unlink)
{
	const char *colon = strchr(target, ':');
	struct df_err err = { 0 };
	struct state *st = NULL;
	char *system, done[256] = "", *end = NULL;
	long long person = 0;
	bool known = false;
	int lock = -1, code = EXIT_OK;

	if (colon == NULL || colon == target || colon[1] == '\0') {
		fprintf(stderr, "dfreconcile: \"%s\" is not SYSTEM:ID (for example ghl:abc123)\n", target);
		return EXIT_USAGE;
	}
	system = xasprintf("%.*s", (int)(colon - target), target);
	for (int i = 0; i < cfg->nsys; i++)
		known |= strcmp(cfg->sys[i].name, system) == 0;
	if (!unlink && strcmp(person_arg, "new") != 0) {
		errno = 0;
		person = strtoll(person_arg, &end, 10);
		if (*person_arg == '\0' || *end != '\0' || errno || person <= 0) {
			fprintf(stderr, "dfreconcile: PERSON must be a person number or \"new\", not \"%s\"\n",
				person_arg);
			free(system);
			return EXIT_USAGE;
		}
	}
	if (!known) {
		fprintf(stderr, "dfreconcile: unknown system \"%s\": the configuration has no such system\n", system);
		free(system);
		return EXIT_USAGE;
	}
	if (access(cfg->state_path, F_OK) != 0) {
		/* Opening would make a new, empty state: there is nothing to link. */
		fprintf(stderr, "dfreconcile: no state file at %s yet: no record to %s\n", cfg->state_path,
			unlink ? "unlink" : "link");
		free(system);
		return EXIT_USAGE;
	}
	lock = lock_take(cfg->lock_path, &err);
	if (lock < 0) {
		code = err.fail == DF_FAIL_TEMP ? EXIT_LOCKED : EXIT_FATAL;
	} else if ((st = state_open(cfg->state_path, &err)) == NULL || state_begin(st, &err)) {
		code = EXIT_FATAL;
	} else if (admin_apply(st, system, colon + 1, person, unlink, done, sizeof(done), &err)) {
		state_rollback(st);
		code = err.fail == DF_FAIL_INPUT ? EXIT_USAGE : EXIT_FATAL;
	} else if (state_commit(st, &err)) {
		code = EXIT_FATAL;
	}
	if (code != EXIT_OK)
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
	else
		printf("%s\n", done);
	state_close(st);
	if (lock >= 0)
		lock_release(lock);
	free(system);
	return code;
}
