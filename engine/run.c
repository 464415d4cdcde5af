/*
 * run.c - one run, in the order of the data flow:
 *
 *   lock -> state -> POLL every system -> MERGE + PLAN every changed
 *   person -> safety valve -> WRITE -> (again for persons a write touched)
 *   -> COMMIT the run row.
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
#include "../core/str.h"

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

/* I6: more planned updates than the allowed share of a system's records
 * means something upstream went wrong; write nothing. */
static bool safety_valve(struct run *r, char *why, size_t n)
{
	double share = allowed_share(r);

	for (int s = 0; s < r->nsys; s++) {
		long long total = 0;
		struct system_run *sr = &r->sys[s];
		if (state_snapshot_count(r->st, sr->conf->name, &total, NULL) || total < r->cfg->safety_min_records)
			continue;
		if (sr->planned_updates > share * (double)total) {
			snprintf(why, n, "safety valve: the run would change %ld of %lld %s records "
				 "(more than %.0f%%); nothing was written. If this is intended, run again "
				 "with --max-change-share %.2f or higher",
				 sr->planned_updates, total, sr->conf->name, share * 100,
				 (double)sr->planned_updates / (double)total);
			return true;
		}
	}
	return false;
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

/* Merge, plan, check the valve, write; repeated while writes found records
 * that must be merged in (a create that found an existing record). */
static int reconcile_and_write(struct run *r, char *valve, size_t n)
{
	for (int pass = 0; pass < MAX_PASSES && !run_out_of_time(r); pass++) {
		bool dirty;
		for (int s = 0; s < r->nsys; s++)
			r->sys[s].planned_updates = 0;
		if (state_begin(r->st, &r->err))
			return -1;
		if (reconcile_dirty(r)) {
			state_rollback(r->st);
			return -1;
		}
		if (safety_valve(r, valve, n)) {
			state_rollback(r->st);
			return 0;
		}
		if (state_commit(r->st, &r->err))
			return -1;
		if (r->opt->dry_run)
			return 0;
		if (write_due(r) || deliver_due(r) || any_dirty(r, &dirty))
			return -1;
		if (!dirty)
			break;
	}
	return 0;
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

static int run_stages(struct run *r)
{
	char valve[512] = "", why[256] = "";
	long long writes = 0, deliveries = 0;
	int code = EXIT_OK;
	bool partial = false;

	r->id = state_run_start(r->st, r->opt->dry_run ? "dry-run" : r->opt->full ? "full" : "run", &r->err);
	if (r->id < 0)
		return EXIT_FATAL;
	log_info("event=run-start run=%lld mode=%s", r->id,
		 r->opt->dry_run ? "dry-run" : r->opt->full ? "full" : "run");
	if (reopen_refused(r)) {
		fprintf(stderr, "dfreconcile: %s\n", r->err.msg);
		finish(r, EXIT_FATAL, r->err.msg);
		return EXIT_FATAL;
	}
	if (poll_all(r) || sweep_all(r) ||
	    (!deletes_valve(r, allowed_share(r), valve, sizeof(valve)) &&
	     (deletes_apply(r) || reconcile_and_write(r, valve, sizeof(valve))))) {
		fprintf(stderr, "dfreconcile: %s\n", r->err.msg);
		finish(r, EXIT_FATAL, r->err.msg);
		return EXIT_FATAL;
	}
	if (valve[0]) {
		fprintf(stderr, "dfreconcile: %s\n", valve);
		return finish(r, EXIT_SAFETY, valve);
	}
	if (r->opt->dry_run && write_print_plan(r, stdout))
		return EXIT_FATAL;
	if (!r->opt->dry_run && waiting_work(r, &writes, &deliveries)) {
		fprintf(stderr, "dfreconcile: %s\n", r->err.msg);
		return finish(r, EXIT_FATAL, r->err.msg);
	}
	for (int s = 0; s < r->nsys; s++)
		partial |= r->sys[s].poll_failed;
	partial |= r->quarantined > 0 || r->writes_failed > 0 || r->writes_waiting > 0 || writes > 0 ||
		   deliveries > 0;
	if (r->deadline_hit) {
		/* Said on stderr: cron mails it, and the next run goes on. */
		snprintf(why, sizeof(why), "the run's deadline of %d s passed: it stopped reading and "
			 "sending; what it did is committed and the next run goes on", r->cfg->deadline);
		fprintf(stderr, "dfreconcile: %s\n", why);
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

int engine_run(const struct config *cfg, const struct run_options *opt)
{
	struct run r = { .cfg = cfg, .opt = opt };
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
	close_systems(&r);
	state_close(r.st);
	lock_release(lock);
	return code;
}
