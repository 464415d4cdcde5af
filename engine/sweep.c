/*
 * sweep.c - the SWEEP and the deletes it finds.
 *
 * Aloware publishes no changed-since listing, so each run re-reads a slice
 * of every system's linked records through its lookup endpoint, oldest
 * sweep first, within the system's per-run budget (systems.<name>.sweep):
 * every linked record is checked at least once every ceil(linked / budget)
 * runs, and the report says so. What the sweep finds changed flows like any
 * polled change. For systems with a listing the same sweep, at a low budget,
 * is the drift check that catches what the listing missed.
 *
 * Absence is not deletion (I10): a linked record that a full run (--full)
 * did not list is only marked missing, a candidate; its own endpoint is
 * asked (within systems.<name>.delete_checks per run, once the record is
 * older than the lookback) and only "not found" there marks it gone. The
 * sweep's reads mark gone the same way. Marks stay until the safety valve
 * has counted them (I6, run.c); only then is a gone record unlinked: its
 * link stays as a tombstone so the person is not created there again, and
 * the other systems keep their records unless the system's
 * propagate_deletes switch says to delete them too.
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "../core/str.h"

long long sweep_young_after(const struct run *r, int s)
{
	return time_now_ms() - r->sys[s].conf->lookback * 1000LL;
}

/* Re-reads record id of system s through its own endpoint. Found: observed
 * like a polled record (which also clears a missing mark). Gone: marked
 * gone, or missing while young. A record the endpoint cannot confirm (the
 * system refused, Aloware cannot find it by phone) gets a notice; when it
 * was missing (confirm) the mark is dropped: absence alone proves nothing.
 * *stop: the system is unreachable; the rest waits for the next run. */
static int reread(struct run *r, int s, const char *id, bool confirm, bool *stop)
{
	struct system_run *sr = &r->sys[s];
	struct record cur, got;
	struct df_err e = { 0 };
	bool found = false, gone = false;
	int rc;

	record_init(&cur);
	record_init(&got);
	rc = state_snapshot_get(r->st, sr->conf->name, id, &cur, &found, &r->err);
	if (rc == 0 && found && sr->conn->fetch(sr->handle, &cur, &got, &gone, &e) != 0) {
		log_warn("event=%s-failed system=%s record=%s reason=\"%s\"", confirm ? "delete-check" : "sweep",
			 sr->conf->name, id, e.msg);
		if (e.fail == DF_FAIL_REMOTE) {
			long long person = 0;
			rc = state_link_get(r->st, sr->conf->name, id, &person, &r->err) ||
			     state_notice_add(r->st, r->id, person, sr->conf->name, id, confirm ? "delete-check" : "sweep",
					      e.msg, &r->err) ||
			     (confirm && state_missing_clear(r->st, sr->conf->name, id, &r->err)) ? -1 : 0;
		} else if (e.fail == DF_FAIL_INPUT) {
			rc = quarantine(r, s, id, "malformed", e.msg);
		}
		if (e.fail == DF_FAIL_AUTH)
			engine_system_refused(r, s, &e);
		/* Unreachable, refused or out of budget: the rest waits. */
		*stop = e.fail == DF_FAIL_TEMP || e.fail == DF_FAIL_AUTH || e.fail == DF_FAIL_BUDGET ||
			e.fail == DF_FAIL_UNKNOWN;
	} else if (rc == 0 && found) {
		rc = state_begin(r->st, &r->err);
		if (rc == 0) {
			rc = gone ? state_mark_gone(r->st, sr->conf->name, id, r->id, sweep_young_after(r, s),
						    &r->err)
				  : observe_record(r, s, &got);
			if (rc == 0)
				rc = state_snapshot_swept(r->st, sr->conf->name, id, time_now_ms(), &r->err);
			rc = rc ? (state_rollback(r->st), -1) : state_commit(r->st, &r->err);
		}
		if (gone)
			log_info("event=gone system=%s record=%s", sr->conf->name, id);
		if (confirm)
			sr->delete_checks++;
		else
			sr->counts.swept++;
	}
	if (rc == 0 && !*stop && (!found || e.fail == DF_FAIL_REMOTE || e.fail == DF_FAIL_INPUT))
		rc = state_snapshot_swept(r->st, sr->conf->name, id, time_now_ms(), &r->err);
	record_clear(&cur);
	record_clear(&got);
	return rc;
}

static void free_ids(char **ids, int n)
{
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static int sweep_system(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	char **ids = NULL;
	int n = 0, rc = 0;
	bool stop = false;

	long long linked = 0;

	if (sr->conf->sweep <= 0 || sr->conn->fetch == NULL || sr->poll_failed)
		return 0;
	/* The period the report promises: every linked record within this
	 * many runs (longer when sweep_interval holds records back). */
	if (state_snapshot_count(r->st, sr->conf->name, &linked, &r->err))
		return -1;
	sr->counts.sweep_cycle = (linked + sr->conf->sweep - 1) / sr->conf->sweep;
	if (state_sweep_batch(r->st, sr->conf->name, sr->conf->sweep,
			      time_now_ms() - sr->conf->sweep_interval * 1000LL, &ids, &n, &r->err))
		return -1;
	for (int i = 0; i < n && rc == 0 && !stop; i++)
		rc = reread(r, s, ids[i], false, &stop);
	free_ids(ids, n);
	if (sr->counts.swept)
		log_info("event=swept system=%s records=%lld budget=%d", sr->conf->name, sr->counts.swept,
			 sr->conf->sweep);
	return rc;
}

/* I10: a record a full listing did not return is only missing. Up to
 * delete_checks of them older than the lookback are read through their own
 * endpoint per run; the rest wait for later runs. */
static int confirm_missing(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	char **ids = NULL;
	int n = 0, rc = 0;
	bool stop = false;

	if (sr->conf->delete_checks <= 0 || sr->conn->fetch == NULL || sr->poll_failed)
		return 0;
	if (state_missing_batch(r->st, sr->conf->name, sr->conf->delete_checks, sweep_young_after(r, s),
				&ids, &n, &r->err))
		return -1;
	for (int i = 0; i < n && rc == 0 && !stop; i++)
		rc = reread(r, s, ids[i], true, &stop);
	free_ids(ids, n);
	if (sr->delete_checks)
		log_info("event=delete-checks system=%s records=%lld budget=%d", sr->conf->name,
			 sr->delete_checks, sr->conf->delete_checks);
	return rc;
}

int sweep_all(struct run *r)
{
	for (int s = 0; s < r->nsys; s++) {
		long long unseen = 0;
		/* A full listing that did not list a linked record: a candidate. */
		if (r->sys[s].listed_all &&
		    state_mark_unseen(r->st, r->sys[s].conf->name, r->id, &unseen, &r->err))
			return -1;
		if (unseen)
			log_info("event=unlisted system=%s records=%lld", r->sys[s].conf->name, unseen);
		if (confirm_missing(r, s) || sweep_system(r, s))
			return -1;
	}
	return 0;
}

/* Journals the delete of the person's record in every other system. */
static int propagate(struct run *r, long long person, int from, struct strbuf *where)
{
	for (int t = 0; t < r->nsys; t++) {
		char *id = NULL;
		long long box;
		if (t == from || state_link_of(r->st, person, r->sys[t].conf->name, &id, &r->err))
			continue;
		if (id == NULL)
			continue;
		if (r->sys[t].conn->remove == NULL) {
			sb_addf(where, "%s%s cannot delete through its API", where->len ? "; " : "",
				r->sys[t].conf->name);
		} else {
			box = state_outbox_add(r->st, r->id, person, r->sys[t].conf->name, id, "delete", NULL, 0,
					       &r->err);
			if (box < 0) {
				free(id);
				return -1;
			}
			sb_addf(where, "%sdelete journalled for %s %s", where->len ? "; " : "", r->sys[t].conf->name, id);
		}
		free(id);
	}
	return 0;
}

int deletes_apply(struct run *r)
{
	/* Each step unlinks one gone record, so the loop ends; bounded anyway. */
	for (long i = 0; i < 100000000L; i++) {
		char *system = NULL, *id = NULL, *msg;
		long long person = 0;
		bool found;
		struct strbuf where;
		int s, rc;

		if (state_gone_next(r->st, &system, &id, &person, &found, &r->err))
			return -1;
		if (!found)
			return 0;
		s = run_system_index(r, system);
		sb_init(&where);
		rc = state_begin(r->st, &r->err);
		if (rc == 0 && s >= 0 && r->sys[s].conf->propagate_deletes && person)
			rc = propagate(r, person, s, &where);
		if (rc == 0) {
			msg = xasprintf("%s record %s no longer exists there; unlinked from person %lld. %s", system, id,
					person, where.len ? where.buf :
					"The other systems keep their records (propagate_deletes is off).");
			log_info("event=unlinked system=%s record=%s person=%lld", system, id, person);
			rc = state_notice_add(r->st, r->id, person, system, id, "deleted", msg, &r->err) ||
			     state_unlink(r->st, system, id, r->id, &r->err) ? -1 : 0;
			free(msg);
		}
		rc = rc ? (state_rollback(r->st), -1) : state_commit(r->st, &r->err);
		if (rc == 0 && s >= 0)
			r->sys[s].counts.unlinked++;
		sb_free(&where);
		free(system);
		free(id);
		if (rc)
			return -1;
	}
	return df_fail(&r->err, DF_FAIL_STATE, "gone records do not clear");
}
