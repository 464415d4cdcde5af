/*
 * snapshot.c - the snapshot table (each system's last copy of each record)
 * and cursors: reading, listing and merging records, the sweep that checks
 * records are still there, missing and gone records, the deletes valve's
 * count of unmerged changes, and forgetting a record that is gone.
 */
#include "internal.h"
#include "../core/normalize.h"

/* Cursors */

int state_cursor_get(struct state *st, const char *system, const char *stream,
		     long long *position_ms, struct df_err *err)
{
	return query_int(st, S_CURSOR_GET, system, stream, position_ms, NULL, err);
}

int state_cursor_set(struct state *st, const char *system, const char *stream,
		     long long position_ms, long long run, struct df_err *err)
{
	return write_stmt(st, S_CURSOR_SET, err, "advance cursor", "ttii", system, stream,
			  position_ms, run);
}

/* Snapshots */

int state_snapshot_get(struct state *st, const char *system, const char *remote_id,
		       struct record *rec, bool *found, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (*found) {
		rec->remote_id = xstrdup(remote_id);
		rec->updated_ms = sqlite3_column_type(s, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 1);
		if (record_from_json(rec, (const char *)sqlite3_column_text(s, 0))) {
			sqlite3_reset(s);
			return df_fail(err, DF_FAIL_STATE, "state: snapshot %s/%s is corrupt", system, remote_id);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read snapshot");
	return 0;
}

int state_snapshot_put(struct state *st, const char *system, const struct record *rec,
		       long long run, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_PUT, err);
	char *json;
	int rc;

	if (s == NULL)
		return -1;
	json = record_to_json(rec);
	bind_text(s, 1, system);
	bind_text(s, 2, rec->remote_id);
	bind_text(s, 3, json);
	/* Only valid keys are matching keys: an invalid phone links nobody. */
	bind_text(s, 4, phone_is_e164(rec->value[F_PHONE]) ? rec->value[F_PHONE] : "");
	bind_text(s, 5, email_is_valid(rec->value[F_EMAIL]) ? rec->value[F_EMAIL] : "");
	if (rec->updated_ms >= 0)
		sqlite3_bind_int64(s, 6, rec->updated_ms);
	sqlite3_bind_int64(s, 7, run);
	sqlite3_bind_int64(s, 8, time_now_ms());
	rc = step_done(st, s, err, "write snapshot");
	free(json);
	return rc;
}

int state_snapshot_seen_run(struct state *st, const char *system, const char *remote_id,
			    long long *run, long long *read_ms, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_SEEN_RUN, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	rc = sqlite3_step(s);
	*run = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	*read_ms = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read snapshot");
	return 0;
}

int state_snapshot_seen(struct state *st, const char *system, const char *remote_id,
			long long updated_ms, const unsigned char *digest, long long run, struct df_err *err)
{
	return write_stmt(st, S_SNAP_SEEN, err, "touch snapshot", "ttiid", system, remote_id,
			  updated_ms, run, digest);
}

int state_snapshot_digest(struct state *st, const char *system, const char *remote_id,
			  const unsigned char *digest, struct df_err *err)
{
	return write_stmt(st, S_SNAP_DIGEST, err, "note listed digest", "ttd", system, remote_id, digest);
}

int state_snapshot_quick(struct state *st, const char *system, const char *remote_id,
			 struct snapshot_quick *q, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_QUICK, err);
	int rc;

	memset(q, 0, sizeof(*q));
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		q->found = true;
		q->has_digest = sqlite3_column_bytes(s, 0) == STATE_DIGEST;
		if (q->has_digest)
			memcpy(q->digest, sqlite3_column_blob(s, 0), STATE_DIGEST);
		q->present = sqlite3_column_int(s, 1) != 0;
		q->person = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(st, err, "read snapshot digest");
}

int state_snapshot_listed(struct state *st, const char *system, const char *remote_id,
			  long long run, struct df_err *err)
{
	return write_stmt(st, S_SNAP_LISTED, err, "note listed record", "tti", system, remote_id, run);
}

int state_snapshot_merged(struct state *st, const char *system, const char *remote_id,
			  struct record *prev, bool *known, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_MERGED, err);
	int rc;

	*known = false;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*known = true;
		if (record_from_json(prev, (const char *)sqlite3_column_text(s, 0))) {
			sqlite3_reset(s);
			return df_fail(err, DF_FAIL_STATE, "state: merged copy of %s/%s is corrupt", system, remote_id);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read merged copy");
	return 0;
}

/* One statement where the merge's load took two (snapshot, merged copy):
 * a 'same' copy is the fields, parsed once (issue 9). */
int state_snapshot_view(struct state *st, const char *system, const char *remote_id,
			struct record *rec, bool *found, struct record *prev, bool *known, bool *same,
			struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SNAP_VIEW, err);
	const char *merged;
	int rc;

	*found = *known = *same = false;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = true;
		rec->remote_id = xstrdup(remote_id);
		rec->updated_ms = sqlite3_column_type(s, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 1);
		if (record_from_json(rec, (const char *)sqlite3_column_text(s, 0))) {
			sqlite3_reset(s);
			return df_fail(err, DF_FAIL_STATE, "state: snapshot %s/%s is corrupt", system, remote_id);
		}
		merged = (const char *)sqlite3_column_text(s, 2);
		*known = merged != NULL;
		*same = merged != NULL && strcmp(merged, "same") == 0;
		if (*same) {
			for (int f = 0; f < fields_count(); f++)
				if (rec->value[f] != NULL)
					record_set(prev, f, rec->value[f]);
		} else if (merged != NULL && record_from_json(prev, merged)) {
			sqlite3_reset(s);
			return df_fail(err, DF_FAIL_STATE, "state: merged copy of %s/%s is corrupt", system, remote_id);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read snapshot");
	return 0;
}

int state_snapshot_mark_merged(struct state *st, const char *system, const char *remote_id,
			       struct df_err *err)
{
	return write_stmt(st, S_SNAP_MARK, err, "mark merged", "tt", system, remote_id);
}

int state_snapshot_set_merged(struct state *st, const char *system, const char *remote_id,
			      const struct record *merged, struct df_err *err)
{
	char *json = record_to_json(merged);
	int rc = write_stmt(st, S_SNAP_SET_MERGED, err, "set merged", "ttt", system, remote_id, json);

	free(json);
	return rc;
}

int state_snapshot_count(struct state *st, const char *system, long long *n, struct df_err *err)
{
	return query_int(st, S_SNAP_COUNT, system, NULL, n, NULL, err);
}

/* The remote ids statement id lists for (system, max, ms), in *ids. */
static int record_batch(struct state *st, enum stmt_id id, const char *system, int max, long long ms,
			char ***ids, int *n, const char *what, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	int rc;

	*ids = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int(s, 2, max);
	sqlite3_bind_int64(s, 3, ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof(**ids));
		(*ids)[(*n)++] = column_dup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, what);
	return 0;
}

int state_sweep_batch(struct state *st, const char *system, int max, long long before_ms,
		      char ***ids, int *n, struct df_err *err)
{
	return record_batch(st, S_SWEEP_BATCH, system, max, before_ms, ids, n, "choose records to sweep", err);
}

/* UPDATE/DELETE by (system, remote_id) with an optional integer third. */
static int by_record(struct state *st, enum stmt_id id, const char *system, const char *remote_id,
		     long long third, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	if (sqlite3_bind_parameter_count(s) >= 3)
		sqlite3_bind_int64(s, 3, third);
	return step_done(st, s, err, "update record");
}

int state_snapshot_swept(struct state *st, const char *system, const char *remote_id,
			 long long now_ms, struct df_err *err)
{
	return by_record(st, S_SWEPT, system, remote_id, now_ms, err);
}

int state_mark_gone(struct state *st, const char *system, const char *remote_id, long long run,
		    long long young_after_ms, struct df_err *err)
{
	return write_stmt(st, S_MARK_GONE, err, "mark gone record", "ttii", system, remote_id, run,
			  young_after_ms);
}

int state_mark_unseen(struct state *st, const char *system, long long run, long long *n,
		      struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_MARK_UNSEEN, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int64(s, 2, run);
	if (step_done(st, s, err, "mark unlisted records"))
		return -1;
	*n = sqlite3_changes(st->db);
	return 0;
}

int state_missing_batch(struct state *st, const char *system, int max, long long young_after_ms,
			char ***ids, int *n, struct df_err *err)
{
	return record_batch(st, S_MISSING_BATCH, system, max, young_after_ms, ids, n,
			    "choose missing records to check", err);
}

int state_missing_clear(struct state *st, const char *system, const char *remote_id,
			struct df_err *err)
{
	return by_record(st, S_MISSING_CLEAR, system, remote_id, 0, err);
}

int state_gone_count(struct state *st, const char *system, long long young_after_ms, long long *n,
		     struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_GONE_COUNT, err);
	int rc;

	*n = 0;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int64(s, 2, young_after_ms);
	rc = sqlite3_step(s);
	*n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "count gone records");
}

int state_valve_changes(struct state *st, const char *system, struct valve_changes *vc,
			struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_VALVE_CHANGES, err);
	int rc;

	memset(vc, 0, sizeof(*vc));
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		vc->changed = sqlite3_column_int64(s, 0);
		vc->cleared_records = sqlite3_column_int64(s, 1);
		vc->cleared_fields = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "count changed records");
}

int state_gone_next(struct state *st, char **system, char **remote_id, long long *person,
		    bool *found, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_GONE_NEXT, err);
	int rc;

	*found = false;
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = true;
		*system = column_dup(s, 0);
		*remote_id = column_dup(s, 1);
		*person = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read gone records");
	return 0;
}

int state_unlink(struct state *st, const char *system, const char *remote_id, long long run,
		 struct df_err *err)
{
	return by_record(st, S_UNLINK_SNAP, system, remote_id, 0, err) ||
	       by_record(st, S_UNLINK_LINK, system, remote_id, run, err) ? -1 : 0;
}
