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
 * A record the sweep finds gone, or that a full run (--full) did not list,
 * is marked gone. Only after the safety valve has counted the marks (I6) is
 * it unlinked: its link stays as a tombstone so the person is not created
 * there again, and the other systems keep their records unless the
 * system's propagate_deletes switch says to delete them too.
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "../core/str.h"

static int sweep_system(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	char **ids = NULL;
	int n = 0, rc = 0;

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
	for (int i = 0; i < n && rc == 0; i++) {
		struct record cur, got;
		struct df_err e = { 0 };
		bool found = false, gone = false;

		record_init(&cur);
		record_init(&got);
		rc = state_snapshot_get(r->st, sr->conf->name, ids[i], &cur, &found, &r->err);
		if (rc == 0 && found && sr->conn->fetch(sr->handle, &cur, &got, &gone, &e) != 0) {
			log_warn("event=sweep-failed system=%s record=%s reason=\"%s\"", sr->conf->name, ids[i], e.msg);
			if (e.fail == DF_FAIL_REMOTE) {
				long long person = 0;
				rc = state_link_get(r->st, sr->conf->name, ids[i], &person, &r->err) ||
				     state_notice_add(r->st, r->id, person, sr->conf->name, ids[i], "sweep", e.msg,
						      &r->err) ? -1 : 0;
			} else if (e.fail == DF_FAIL_INPUT) {
				rc = quarantine(r, s, ids[i], "malformed", e.msg);
			}
			if (e.fail == DF_FAIL_AUTH)
				engine_system_refused(r, s, &e);
			if (e.fail == DF_FAIL_TEMP || e.fail == DF_FAIL_AUTH || e.fail == DF_FAIL_BUDGET) {
				/* Unreachable: the rest of the slice waits for the next run. */
				record_clear(&cur);
				record_clear(&got);
				break;
			}
		} else if (rc == 0 && found) {
			rc = state_begin(r->st, &r->err);
			if (rc == 0) {
				rc = gone ? state_mark_gone(r->st, sr->conf->name, ids[i], r->id, &r->err)
					  : observe_record(r, s, &got);
				if (rc == 0)
					rc = state_snapshot_swept(r->st, sr->conf->name, ids[i], time_now_ms(), &r->err);
				rc = rc ? (state_rollback(r->st), -1) : state_commit(r->st, &r->err);
			}
			sr->counts.swept++;
		}
		if (rc == 0 && (!found || e.fail == DF_FAIL_REMOTE || e.fail == DF_FAIL_INPUT))
			rc = state_snapshot_swept(r->st, sr->conf->name, ids[i], time_now_ms(), &r->err);
		record_clear(&cur);
		record_clear(&got);
	}
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (sr->counts.swept)
		log_info("event=swept system=%s records=%lld budget=%d", sr->conf->name, sr->counts.swept,
			 sr->conf->sweep);
	return rc;
}

int sweep_all(struct run *r)
{
	for (int s = 0; s < r->nsys; s++) {
		long long unseen = 0;
		if (sweep_system(r, s))
			return -1;
		/* A full listing that did not list a linked record means it is gone. */
		if (r->sys[s].listed_all &&
		    state_mark_unseen(r->st, r->sys[s].conf->name, r->id, &unseen, &r->err))
			return -1;
		if (unseen)
			log_info("event=unlisted system=%s records=%lld", r->sys[s].conf->name, unseen);
	}
	return 0;
}

bool deletes_valve(struct run *r, double share, char *why, size_t n)
{
	for (int s = 0; s < r->nsys; s++) {
		long long gone = 0, total = 0;
		const char *name = r->sys[s].conf->name;
		if (state_gone_count(r->st, name, r->id, &gone, NULL) ||
		    state_snapshot_count(r->st, name, &total, NULL) || total < r->cfg->safety_min_records)
			continue;
		if (gone > share * (double)total) {
			snprintf(why, n, "safety valve: %lld of %lld %s records seem to be gone (more than "
				 "%.0f%%); nothing was unlinked or written. If this is intended, run again with "
				 "--max-change-share %.2f or higher", gone, total, name, share * 100,
				 (double)gone / (double)total);
			state_gone_clear(r->st, r->id, NULL);
			return true;
		}
	}
	return false;
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
			box = state_outbox_add(r->st, r->id, person, r->sys[t].conf->name, id, "delete", &r->err);
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

		if (state_gone_next(r->st, r->id, &system, &id, &person, &found, &r->err))
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
