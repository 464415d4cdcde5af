/*
 * run.c - one run, in the order of the data flow:
 *
 *   lock -> state -> POLL every system -> SWEEP (and check what seems
 *   gone) -> safety valve -> unlink what is gone -> MERGE + PLAN every
 *   changed person -> WRITE -> (again for persons a write touched)
 *   -> COMMIT the run row.
 *
 * When the safety valve trips, only opt-outs are merged, planned and sent,
 * and calls and texts delivered; the run exits 4 saying what was held.
 *
 * A dry run does the same inside one transaction that is rolled back at
 * the end, and prints the journalled plan instead of sending it: the state
 * and every system are left exactly as they were.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../core/lock.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../http/http.h"
#include "../report/metrics.h"

#define MAX_PASSES 3

static int open_systems(struct run *r)
{
	for (int s = 0; s < r->cfg->nsys; s++) {
		struct system_run *sr = &r->sys[s];
		sr->conf = &r->cfg->sys[s];
		sr->conn = connector_find(sr->conf->name);
		sr->handle = sr->conn->open(sr->conf, r->cfg, &r->err);
		if (sr->handle == NULL)
			return -1;
		r->nsys = s + 1;
	}
	return 0;
}

/* Each system's custom fields as it names them this run (resolve_fields),
 * before anything is read. A field a system cannot carry this run is
 * reported and left alone there; the other fields go on. */
static int resolve_fields(struct run *r)
{
	for (int s = 0; s < r->nsys; s++) {
		struct system_run *sr = &r->sys[s];
		char *why[DF_MAX_FIELDS] = { 0 };
		struct df_err e = { 0 };
		int rc = 0;

		if (sr->conn->resolve_fields == NULL)
			continue;
		/* A failure the connector could not put on fields stops the run. */
		if (sr->conn->resolve_fields(sr->handle, why, &e)) {
			for (int f = 0; f < DF_MAX_FIELDS; f++)
				free(why[f]);
			return df_fail(&r->err, e.fail, "%s", e.msg);
		}
		for (int f = F_NBUILTIN; f < fields_count(); f++) {
			if (why[f] == NULL)
				continue;
			sr->unusable |= 1ULL << f;
			r->notices++;
			log_warn("event=custom-field system=%s field=%s reason=\"%s\"", sr->conf->name,
				 field_get(f)->name, why[f]);
			if (rc == 0)
				rc = state_notice_add(r->st, r->id, 0, sr->conf->name, NULL, "custom-field", why[f],
						      &r->err);
			free(why[f]);
		}
		if (rc)
			return -1;
	}
	return 0;
}

static void close_systems(struct run *r)
{
	for (int s = 0; s < r->nsys; s++)
		r->sys[s].conn->close(r->sys[s].handle);
}

bool run_out_of_time(struct run *r)
{
	if (r->deadline_hit)
		return true;
	if (time_now_ms() < r->deadline_ms)
		return false;
	r->deadline_hit = true;
	log_warn("event=deadline run=%lld seconds=%d reason=\"the run's deadline passed: nothing more "
		 "is read or sent\"", r->id, r->cfg->deadline);
	return true;
}

/* Work left for later runs: writes and deliveries waiting for a retry (a
 * delivery waiting for its contact to be linked is not such work). */
static int waiting_work(struct run *r, long long *writes, long long *deliveries)
{
	long long unknown_writes = 0, unknown_deliveries = 0;

	if (state_outbox_count(r->st, "pending", writes, &r->err) ||
	    state_outbox_count(r->st, "unknown", &unknown_writes, &r->err) ||
	    state_delivery_count(r->st, "pending", deliveries, &r->err) ||
	    state_delivery_count(r->st, "unknown", &unknown_deliveries, &r->err))
		return -1;
	*writes += unknown_writes;
	*deliveries += unknown_deliveries;
	if (*writes || *deliveries)
		log_warn("event=work-waiting writes=%lld deliveries=%lld reason=\"%lld write%s and %lld "
			 "deliver%s waiting for a later attempt\"", *writes, *deliveries, *writes,
			 *writes == 1 ? "" : "s", *deliveries, *deliveries == 1 ? "y" : "ies");
	return 0;
}

static double allowed_share(const struct run *r)
{
	return r->opt->max_change_share >= 0 ? r->opt->max_change_share : r->cfg->max_change_share;
}

/* I6: whether count of a source's size records is too many: more than the
 * allowed share and at least safety.min_records (so that 1 of 3 records
 * edited in a small system does not trip, and a mass change in it does). */
static bool too_many(const struct run *r, long long count, long long size)
{
	return count >= r->cfg->safety_min_records && (double)count > allowed_share(r) * (double)size;
}

static double percent(long long count, long long size)
{
	return size > 0 ? 100.0 * (double)count / (double)size : 0;
}

/* One measure for the message, with its bound when it trips. */
static void add_measure(const struct run *r, struct strbuf *sb, long long count, long long size)
{
	sb_addf(sb, "(%.0f%%", percent(count, size));
	if (too_many(r, count, size))
		sb_addf(sb, ", more than %.0f%%", allowed_share(r) * 100);
	sb_addf(sb, ")");
}

/* The safety valve (I6), before anything is unlinked or written: what each
 * source changed since its persons were last merged - records changed,
 * records with values cleared, records gone or missing (old enough to be
 * checked) - each against that source's size. New records and opt-outs do
 * not count; neither do writes journalled by earlier runs. A count that
 * cannot be made stops the run (fail closed). On a trip, why says what
 * tripped, *gone what seems gone in all, *share the bound that would have
 * let it pass. */
static int safety_valve(struct run *r, struct strbuf *why, bool *tripped, long long *gone,
			double *share)
{
	*tripped = false;
	*gone = 0;
	*share = 0;
	for (int s = 0; s < r->nsys; s++) {
		const char *name = r->sys[s].conf->name;
		struct valve_changes ch;
		long long size = 0, lost = 0;

		if (state_snapshot_count(r->st, name, &size, &r->err) ||
		    state_valve_changes(r->st, name, &ch, &r->err) ||
		    state_gone_count(r->st, name, sweep_young_after(r, s), &lost, &r->err))
			return df_wrap(&r->err, "safety valve: cannot count the changes of %s", name);
		*gone += lost;
		if (!too_many(r, ch.changed, size) && !too_many(r, ch.cleared_records, size) &&
		    !too_many(r, lost, size))
			continue;
		*tripped = true;
		sb_addf(why, "%s%s changed %lld of %lld records ", why->len ? "; " : "", name, ch.changed, size);
		add_measure(r, why, ch.changed, size);
		sb_addf(why, ", cleared %lld fields in %lld records ", ch.cleared_fields, ch.cleared_records);
		add_measure(r, why, ch.cleared_records, size);
		sb_addf(why, " and lost %lld records ", lost);
		add_measure(r, why, lost, size);
		for (int i = 0; i < 3; i++) {
			long long c = i == 0 ? ch.changed : i == 1 ? ch.cleared_records : lost;
			/* Rounded up to the hundredth, so that it passes. */
			double need = size > 0 ? (double)((c * 100 + size - 1) / size) / 100.0 : 1;
			if (too_many(r, c, size) && need > *share)
				*share = need > 1 ? 1 : need;
		}
	}
	return 0;
}

static int any_dirty(struct run *r, bool *dirty)
{
	long long id;
	int n;

	if (state_dirty_batch(r->st, &id, 1, &n, &r->err))
		return -1;
	*dirty = n > 0;
	return 0;
}

/* What a tripped valve holds back: the whole plan is made and undone,
 * counting its writes. */
static int count_held(struct run *r)
{
	long conflicts = r->conflicts, notices = r->notices;
	int rc;

	r->held_updates = r->held_creates = 0;
	if (state_begin(r->st, &r->err))
		return -1;
	rc = reconcile_dirty(r);
	state_rollback(r->st);
	r->conflicts = conflicts;
	r->notices = notices;
	return rc;
}

/* Changes a re-check listing observed during the writes (write.c) came
 * after the safety valve (I6) counted this run's; before they are merged,
 * it counts again. When it trips, from then on only opt-outs are merged and
 * sent (I4) and the rest waits for the next run, whose valve counts those
 * changes again (they are not merged yet). */
static int recheck_valve(struct run *r)
{
	struct strbuf why;
	bool tripped = false;
	long long gone = 0;
	double share = 0;
	int rc;

	if (r->recheck_changes == r->recheck_valved)
		return 0;
	r->recheck_valved = r->recheck_changes;
	sb_init(&why);
	rc = safety_valve(r, &why, &tripped, &gone, &share);
	if (rc == 0 && tripped) {
		log_warn("event=safety-valve stage=write reason=\"%s, with what was listed again during the "
			 "writes; only opt-outs are merged and sent from now, the rest waits for the next run\"",
			 why.buf);
		r->optouts_only = true;
		r->valve_late = true;
	}
	sb_free(&why);
	return rc;
}

/* Merge, plan, write; repeated while writes found records that must be
 * merged in (a create that found an existing record). When the valve
 * tripped, once: only opt-outs are merged, planned and sent, and calls and
 * texts delivered; persons stay dirty for the run that passes the valve. */
static int reconcile_and_write(struct run *r, bool tripped)
{
	if (tripped) {
		if (count_held(r))
			return -1;
		log_warn("event=safety-valve held_updates=%ld held_creates=%ld (the plan above is undone; "
			 "only opt-outs are planned and sent)", r->held_updates, r->held_creates);
		r->optouts_only = true;
	}
	for (int pass = 0; pass < MAX_PASSES && !run_out_of_time(r); pass++) {
		bool dirty;
		if (pass > 0 && !r->optouts_only && recheck_valve(r))
			return -1;
		/* reconcile_dirty commits a batch of persons at a time (their
		 * plans with their dirty marks cleared): one transaction over
		 * every person would grow the write-ahead log with N (3.8 GB
		 * at 1,000,000 contacts) and lose the whole plan to a crash. */
		if (reconcile_dirty(r))
			return -1;
		if (r->opt->dry_run)
			return 0;
		if (write_due(r) || deliver_due(r) || any_dirty(r, &dirty))
			return -1;
		if (!dirty || r->optouts_only)
			break;
	}
	return 0;
}

/* The valve's message: what tripped, what was and was not sent. */
static char *valve_message(const struct run *r, const struct strbuf *why, long long gone, double share)
{
	return xasprintf("safety valve: %s; sent: %ld opt-outs, %ld deliveries; not sent: %ld updates, "
			 "%ld creates, %lld deletes. If this is intended, run again with "
			 "--max-change-share %.2f or higher", why->buf, r->optouts_sent, r->delivered,
			 r->held_updates, r->held_creates, gone, share);
}

static int finish(struct run *r, int code, const char *message)
{
	static const char *status[] = {
		[EXIT_OK] = "ok", [EXIT_PARTIAL] = "partial", [EXIT_USAGE] = "failed",
		[EXIT_LOCKED] = "locked", [EXIT_SAFETY] = "safety-valve", [EXIT_FATAL] = "failed",
		[EXIT_CREDENTIALS] = "credentials",
	};
	struct df_err e = { 0 };

	for (int s = 0; s < r->nsys; s++) {
		r->sys[s].counts.requests = r->sys[s].conn->requests(r->sys[s].handle);
		if (state_run_system_add(r->st, r->id, r->sys[s].conf->name, &r->sys[s].counts, &e))
			break;
	}
	if (e.fail == DF_OK)
		state_run_finish(r->st, r->id, status[code], code, message, &e);
	if (e.fail != DF_OK) {
		fprintf(stderr, "dfreconcile: %s\n", e.msg);
		return EXIT_FATAL;
	}
	return code;
}

/* I11: a write or delivery a system refused is tried again once the
 * configuration changed since. */
static int reopen_refused(struct run *r)
{
	long long n = 0;

	config_fingerprint(r->cfg, r->config_fp);
	if (state_refused_reopen(r->st, r->config_fp, &n, &r->err) == 0) {
		if (n > 0)
			log_info("event=refused-reopened count=%lld reason=\"the configuration changed\"", n);
		return 0;
	}
	return -1;
}

/* The systems that refused our credentials, named in why; false if none. */
static bool credentials_refused(const struct run *r, char *why, size_t n)
{
	size_t len = 0;

	why[0] = '\0';
	for (int s = 0; s < r->nsys; s++) {
		const struct system_run *sr = &r->sys[s];
		if (!sr->auth_failed)
			continue;
		len += (size_t)snprintf(why + len, len < n ? n - len : 0, "%s%s; its writes and deliveries "
					"wait untouched until the credentials are fixed", len ? "; " : "",
					sr->auth_why);
		if (len >= n)
			len = n - 1;
	}
	return why[0] != '\0';
}

/* The systems whose daily quota held writes back, named in why (and what
 * each says is left now, logged for every system that states a quota);
 * false if none. */
static bool quota_held(const struct run *r, char *why, size_t n)
{
	size_t len = strlen(why);

	for (int s = 0; s < r->nsys; s++) {
		const struct system_run *sr = &r->sys[s];
		long long limit = -1, left = sr->conn->daily_left ? sr->conn->daily_left(sr->handle, &limit) : -1;
		if (left >= 0)
			log_info("event=quota system=%s daily_left=%lld daily_limit=%lld", sr->conf->name, left, limit);
		if (sr->quota_held == 0)
			continue;
		len += (size_t)snprintf(why + len, len < n ? n - len : 0,
					"%s%s: daily request quota nearly used up (%lld of %lld left, quota_reserve %d): "
					"%ld write%s or deliver%s held untouched for the next day's quota",
					len ? "; " : "", sr->conf->name, sr->quota_left, sr->quota_limit,
					sr->conf->quota_reserve, sr->quota_held, sr->quota_held == 1 ? "" : "s",
					sr->quota_held == 1 ? "y" : "ies");
		if (len >= n)
			len = n - 1;
	}
	return len > 0 && why[0] != '\0';
}

/* An admin command's change, in its own savepoint (nested in a dry run's). */
static int prepare(struct run *r)
{
	if (r->opt->prepare == NULL)
		return 0;
	if (state_begin(r->st, &r->err))
		return -1;
	if (r->opt->prepare(r, r->opt->prepare_arg)) {
		state_rollback(r->st);
		return -1;
	}
	return state_commit(r->st, &r->err);
}

/* Whether the open read the whole file (quick_check) and why, or skipped
 * it: state/open.c says when it runs. */
static void log_state_check(const struct run *r)
{
	long long checked_s;
	const char *why = state_checked(r->st, &checked_s);
	char when[32];

	time_format_iso(checked_s * 1000, when, sizeof(when));
	log_info("event=state-check result=%s checked=%s reason=\"%s\"", why ? "ok" : "skipped", when,
		 why ? why : "unchanged since the last clean close");
}

static int run_stages(struct run *r)
{
	char valve[512] = "", why[1024] = "", quota[768] = "";
	long long writes = 0, deliveries = 0;
	struct strbuf valve_why;
	int code = EXIT_OK;
	bool partial = false, tripped = false;
	long long gone = 0;
	double share = 0;

	r->id = state_run_start(r->st, r->opt->dry_run ? "dry-run" : r->opt->full ? "full" : "run", &r->err);
	if (r->id < 0)
		return EXIT_FATAL;
	log_info("event=run-start run=%lld mode=%s", r->id,
		 r->opt->dry_run ? "dry-run" : r->opt->full ? "full" : "run");
	log_state_check(r);
	sb_init(&valve_why);
	if (prepare(r) || reopen_refused(r) || resolve_fields(r) || poll_all(r) || sweep_all(r) ||
	    safety_valve(r, &valve_why, &tripped, &gone, &share) ||
	    (!tripped && deletes_apply(r)) || reconcile_and_write(r, tripped)) {
		sb_free(&valve_why);
		fprintf(stderr, "dfreconcile: %s\n", r->err.msg);
		finish(r, EXIT_FATAL, r->err.msg);
		return EXIT_FATAL;
	}
	if (r->opt->dry_run && write_print_plan(r, stdout)) {
		sb_free(&valve_why);
		return EXIT_FATAL;
	}
	if (tripped) {
		char *msg = valve_message(r, &valve_why, gone, share);
		sb_free(&valve_why);
		fprintf(stderr, "dfreconcile: %s\n", msg);
		code = finish(r, EXIT_SAFETY, msg);
		free(msg);
		return code;
	}
	sb_free(&valve_why);
	if (!r->opt->dry_run && waiting_work(r, &writes, &deliveries)) {
		fprintf(stderr, "dfreconcile: %s\n", r->err.msg);
		return finish(r, EXIT_FATAL, r->err.msg);
	}
	for (int s = 0; s < r->nsys; s++)
		partial |= r->sys[s].poll_failed;
	partial |= r->quarantined_new > 0 || r->writes_failed > 0 || r->writes_waiting > 0 || writes > 0 ||
		   deliveries > 0;
	if (r->deadline_hit) {
		/* Said on stderr: cron mails it, and the next run goes on. */
		snprintf(why, sizeof(why), "the run's deadline of %d s passed: it stopped reading and "
			 "sending; what it did is committed and the next run goes on", r->cfg->deadline);
		fprintf(stderr, "dfreconcile: %s\n", why);
		partial = true;
	}
	if (r->valve_late) {
		const char *late = "safety valve: the changes listed again during the writes are too many; "
				   "only opt-outs were merged and sent after them, the rest waits for the next run";
		fprintf(stderr, "dfreconcile: %s\n", late);
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "%s%s", why[0] ? "; " : "", late);
		partial = true;
	}
	if (!r->opt->dry_run && quota_held(r, quota, sizeof(quota))) {
		/* Said on stderr too: cron mails it; the next day's run goes on. */
		fprintf(stderr, "dfreconcile: %s\n", quota);
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "%s%s", why[0] ? "; " : "", quota);
		partial = true;
	}
	if (partial)
		code = EXIT_PARTIAL;
	if (credentials_refused(r, valve, sizeof(valve))) {
		fprintf(stderr, "dfreconcile: %s\n", valve);
		return finish(r, EXIT_CREDENTIALS, valve);
	}
	log_info("event=run-end run=%lld status=%s conflicts=%ld quarantined=%ld writes_failed=%ld",
		 r->id, code ? "partial" : "ok", r->conflicts, r->quarantined, r->writes_failed);
	return finish(r, code, why[0] ? why : partial ? "some records or writes need attention: see the report"
						   : NULL);
}

/* The health check's ping never holds the run for longer than this. */
#define HEALTHCHECK_TIMEOUT 10

/* After every run that held the lock (whatever its exit status, but not a
 * dry run): the metrics file and the health check's ping. Neither changes
 * the exit status; a failure is logged. */
static void tell_monitoring(struct run *r, int code, long long started_ms)
{
	const char *path = r->opt->metrics_file ? r->opt->metrics_file : r->cfg->metrics_file;
	struct df_err e = { 0 };

	if (r->opt->dry_run)
		return;
	if (path) {
		struct metrics_run m = { .run_id = r->id > 0 ? r->id : 0, .exit_code = code,
					 .quarantined_new = r->quarantined_new, .nsys = r->nsys };
		long long now = time_now_ms();
		m.duration_s = (double)(now - started_ms) / 1000.0;
		m.finished_s = (double)now / 1000.0;
		for (int s = 0; s < r->nsys; s++) {
			const struct system_run *sr = &r->sys[s];
			struct metrics_system *x = &m.sys[s];
			x->name = sr->conf->name;
			x->read = sr->counts.polled;
			x->changed = sr->counts.changed;
			x->written = sr->counts.writes_done;
			x->write_failures = sr->counts.writes_failed;
			x->quarantined = sr->counts.quarantined;
			x->requests = sr->handle ? sr->conn->requests(sr->handle) : 0;
			x->budget = sr->conf->max_requests;
			x->read_failed = sr->poll_failed;
			x->credentials_refused = sr->auth_failed;
			memcpy(x->failures, sr->failures, sizeof(x->failures));
			x->quota_left = x->quota_limit = -1;
			if (sr->handle && sr->conn->daily_left)
				x->quota_left = sr->conn->daily_left(sr->handle, &x->quota_limit);
		}
		if (metrics_write(r->st, &m, path, &e))
			log_error("event=metrics-failed reason=\"%s\"", e.msg);
	}
	if (r->cfg->healthcheck_url) {
		/* The URL is a secret: never logged. */
		if (http_ping(r->cfg->healthcheck_url, code != EXIT_OK, HEALTHCHECK_TIMEOUT, &e))
			log_warn("event=healthcheck-failed reason=\"%s\"", e.msg);
		else
			log_debug("event=healthcheck result=%s", code == EXIT_OK ? "ok" : "fail");
	}
}

int engine_run(const struct config *cfg, const struct run_options *opt)
{
	struct run r = { .cfg = cfg, .opt = opt };
	long long started_ms = time_now_ms();
	int lock, code;

	r.deadline_ms = time_now_ms() + cfg->deadline * 1000LL;
	r.progress = progress_wanted();
	lock = lock_take(cfg->lock_path, &r.err);
	if (lock < 0) {
		fprintf(stderr, "dfreconcile: %s\n", r.err.msg);
		return r.err.fail == DF_FAIL_TEMP ? EXIT_LOCKED : EXIT_FATAL;
	}
	r.st = state_open(cfg->state_path, &r.err);
	if (r.st == NULL || open_systems(&r)) {
		fprintf(stderr, "dfreconcile: %s\n", r.err.msg);
		tell_monitoring(&r, EXIT_FATAL, started_ms);
		close_systems(&r);
		state_close(r.st);
		lock_release(lock);
		return EXIT_FATAL;
	}
	if (opt->dry_run && state_begin(r.st, &r.err)) {
		code = EXIT_FATAL;
	} else {
		code = run_stages(&r);
		if (opt->dry_run)
			state_rollback(r.st);
	}
	tell_monitoring(&r, code, started_ms);
	close_systems(&r);
	state_close(r.st);
	lock_release(lock);
	for (int i = 0; i < r.noptins; i++)
		free(r.optins[i].phone);
	free(r.optins);
	return code;
}
