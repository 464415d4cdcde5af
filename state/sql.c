/*
 * sql.c - every SQL statement a run reads and writes the state with, and
 * the helpers that prepare (once per run), bind and step them. What
 * reports read is the report layer's own (report/queries.c), run through
 * state_query, which refuses a statement that writes.
 *
 * Statements live in one table (sql[]) indexed by an enum (internal.h), so
 * a reader sees the whole vocabulary of the journal in one place; the
 * functions that use them are split by table family (open.c, snapshot.c,
 * link.c, journal.c, outbox.c, events.c).
 */
#include <stdarg.h>

#include "internal.h"

static const char *const sql[S_COUNT] = {
	[S_RUN_START] = "INSERT INTO run (started_at, mode, status) "
			"VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, 'running')",
	[S_RUN_FINISH] = "UPDATE run SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
			 "status = ?2, exit_code = ?3, message = ?4 WHERE id = ?1",
	[S_RUN_SYSTEM] = "INSERT OR REPLACE INTO run_system (run_id, system, polled, changed, "
			 "quarantined, writes_done, writes_failed, requests, swept, unlinked, sweep_cycle) "
			 "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
	[S_LAST_RUN] = "SELECT max(id) FROM run",
	[S_CURSOR_GET] = "SELECT position_ms FROM cursor WHERE system = ?1 AND stream = ?2",
	[S_CURSOR_SET] = "INSERT INTO cursor (system, stream, position_ms, run_id) VALUES (?1,?2,?3,?4) "
			 "ON CONFLICT (system, stream) DO UPDATE SET position_ms = excluded.position_ms, "
			 "run_id = excluded.run_id",
	[S_SNAP_GET] = "SELECT fields, remote_updated_ms FROM snapshot WHERE system = ?1 AND remote_id = ?2",
	/* A new record counts as just swept: it was read a moment ago. */
	/* A record read again is neither gone nor missing (I10). */
	[S_SNAP_PUT] = "INSERT INTO snapshot (system, remote_id, fields, phone, email, remote_updated_ms, seen_run, "
		       "swept_ms, first_seen_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?8) "
		       "ON CONFLICT (system, remote_id) DO UPDATE SET "
		       "fields = excluded.fields, phone = excluded.phone, email = excluded.email, "
		       "remote_updated_ms = coalesce(excluded.remote_updated_ms, remote_updated_ms), "
		       /* A merged copy that was the same as the fields keeps
		        * the fields it was the same as. */
		       "merged = CASE WHEN merged = 'same' AND fields IS NOT excluded.fields THEN fields "
		       "ELSE merged END, "
		       "seen_run = excluded.seen_run, missing_run = NULL, gone_run = NULL, listed_digest = NULL",
	[S_SNAP_SEEN] = "UPDATE snapshot SET remote_updated_ms = ?3, seen_run = ?4, missing_run = NULL, "
			"gone_run = NULL, listed_digest = ?5 WHERE system = ?1 AND remote_id = ?2",
	/* A listed record's digest against its snapshot, and its person. */
	[S_SNAP_QUICK] = "SELECT s.listed_digest, s.missing_run IS NULL AND s.gone_run IS NULL, "
			 "coalesce(l.person_id, 0) FROM snapshot s LEFT JOIN link l ON l.system = s.system "
			 "AND l.remote_id = s.remote_id AND l.deleted_run IS NULL "
			 "WHERE s.system = ?1 AND s.remote_id = ?2",
	[S_SNAP_DIGEST] = "UPDATE snapshot SET listed_digest = ?3 WHERE system = ?1 AND remote_id = ?2",
	[S_SNAP_SEEN_RUN] = "SELECT seen_run, swept_ms FROM snapshot WHERE system = ?1 AND remote_id = ?2",
	[S_SNAP_COUNT] = "SELECT coalesce((SELECT n FROM snapshot_count WHERE system = ?1), 0)",
	[S_LINK_GET] = "SELECT person_id FROM link WHERE system = ?1 AND remote_id = ?2 AND deleted_run IS NULL",
	[S_LINK_OF] = "SELECT remote_id FROM link WHERE person_id = ?1 AND system = ?2 AND deleted_run IS NULL",
	/* Every live link of a person, for its merge (one read, not one per system). */
	[S_LINKS_OF] = "SELECT system, remote_id FROM link WHERE person_id = ?1 AND deleted_run IS NULL",
	[S_LINK_PUT] = "INSERT INTO link (system, remote_id, person_id, how, run_id) VALUES (?1,?2,?3,?4,?5)",
	/* A tombstone gives way to a new link of the same person and system. */
	[S_LINK_UNBURY] = "DELETE FROM link WHERE deleted_run IS NOT NULL AND system = ?1 "
			   "AND (person_id = ?2 OR remote_id = ?3)",
	[S_PERSON_NEW] = "INSERT INTO person (created_run, dirty) VALUES (?1, 1)",
	/* A row already so is left alone: no page written (a full run marks
	 * each person once per record it lists). */
	[S_PERSON_DIRTY] = "UPDATE person SET dirty = ?2 WHERE id = ?1 AND dirty <> ?2",
	[S_PERSON_MERGED] = "UPDATE person SET dirty = 0, merged_run = ?2 WHERE id = ?1",
	[S_DIRTY_BATCH] = "SELECT id FROM person WHERE dirty = 1 ORDER BY id LIMIT ?1",
	[S_DIRTY_AFTER] = "SELECT id FROM person WHERE dirty = 1 AND id > ?2 ORDER BY id LIMIT ?1",
	/* UNION ALL: state_match keeps the distinct ids itself; a UNION would
	 * build a temporary b-tree at every record linked. */
	[S_MATCH_PHONE] = "SELECT l.person_id FROM snapshot s JOIN link l "
			  "ON l.system = s.system AND l.remote_id = s.remote_id WHERE s.phone = ?1 "
			  "UNION ALL SELECT person_id FROM agreed WHERE phone = ?1",
	[S_MATCH_EMAIL] = "SELECT l.person_id FROM snapshot s JOIN link l "
			  "ON l.system = s.system AND l.remote_id = s.remote_id WHERE s.email = ?1 "
			  "UNION ALL SELECT person_id FROM agreed WHERE email = ?1",
	/* A person's agreed values are one row (schema 11): a JSON object
	 * field -> [value, system, rule id, reason id, run, beaten]. */
	[S_AGREED_GET] = "SELECT fields FROM agreed WHERE person_id = ?1",
	/* The same, when state_agreed_get cannot read the row itself. */
	[S_AGREED_FIELDS] = "SELECT j.key, j.value ->> 0 FROM agreed a, json_each(a.fields) j WHERE a.person_id = ?1",
	/* The fields changed replace theirs (arrays are replaced whole by
	 * json_patch); phone and e-mail, kept beside for matching, change
	 * only when given. */
	[S_AGREED_PUT] = "INSERT INTO agreed (person_id, fields, phone, email) VALUES (?1,?2,?3,?4) "
			 "ON CONFLICT (person_id) DO UPDATE SET fields = json_patch(fields, excluded.fields), "
			 "phone = coalesce(excluded.phone, phone), email = coalesce(excluded.email, email)",
	[S_WORDING_GET] = "SELECT id FROM wording WHERE text = ?1",
	[S_WORDING_ADD] = "INSERT INTO wording (text) VALUES (?1)",
	[S_OBSERVED_ADD] = "INSERT INTO observed (run_id, system, remote_id, person_id, field, old_value, new_value) "
			   "VALUES (?1,?2,?3,?4,?5,?6,?7)",
	[S_CONFLICT_ADD] = "INSERT INTO conflict (run_id, person_id, field, base, candidates, winner, value, rule, reason) "
			   "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
	[S_QUARANTINE_ADD] = "INSERT INTO quarantine (run_id, system, remote_id, kind, reason) VALUES (?1,?2,?3,?4,?5)",
	/* Said once per run, however often the person is merged. */
	[S_NOTICE_ADD] = "INSERT INTO notice (run_id, person_id, system, remote_id, kind, message) "
			 "SELECT ?1,?2,?3,?4,?5,?6 WHERE NOT EXISTS (SELECT 1 FROM notice WHERE run_id = ?1 "
			 "AND person_id IS ?2 AND system = ?3 AND kind = ?5 AND message = ?6)",
	/* A journalled delete stands: no later plan replaces it. A refused or
	 * given-up write is replaced by the newer plan (I11: retried when the
	 * record changes). */
	[S_OUTBOX_SUPERSEDE] = "UPDATE outbox SET status = 'superseded' "
			       "WHERE person_id = ?1 AND system = ?2 "
			       /* Equalities, not "IN (...)": SQLite builds a
			        * temporary b-tree for an IN list at every run of
			        * the statement, and this one runs per person and
			        * system planned. */
			       "AND (status = 'pending' OR status = 'unknown' OR status = 'refused' "
			       "OR status = 'failed') AND op <> 'delete'",
	/* The write and its fields, one row (schema 11): fields is a JSON
	 * array of [field, old, new, rule, reason] in the order planned. */
	[S_OUTBOX_ADD] = "INSERT INTO outbox (run_id, person_id, system, remote_id, op, fields) "
			 "VALUES (?1,?2,?3,?4,?5,?6)",
	/* One arm per due status, merged in id order along the status index. */
	[S_OUTBOX_DUE] = "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_ms <= ?1 AND id > ?2 "
			 "UNION ALL SELECT id FROM outbox WHERE status = 'unknown' AND next_attempt_ms <= ?1 "
			 "AND id > ?2 ORDER BY id LIMIT ?3",
	[S_OUTBOX_GET] = "SELECT person_id, system, remote_id, op, attempts, fields FROM outbox WHERE id = ?1",
	/* The write's fields in the order journalled (the array's), when
	 * state_outbox_load cannot read them itself. */
	[S_OUTBOX_FIELDS] = "SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.key "
			    "FROM outbox o, json_each(o.fields) j WHERE o.id = ?1",
	[S_OUTBOX_DONE] = "UPDATE outbox SET status = 'done', done_run = ?2, attempts = attempts + 1, "
			  "remote_id = coalesce(?3, remote_id), last_error = NULL WHERE id = ?1",
	[S_OUTBOX_FAILED] = "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, "
			    "status = CASE WHEN ?3 THEN 'failed' ELSE 'pending' END, last_error = ?4 WHERE id = ?1",
	[S_OUTBOX_COUNT] = "SELECT count(*) FROM outbox WHERE status = ?1",
	[S_DELIVERY_COUNT] = "SELECT count(*) FROM delivery WHERE status = ?1",
	/* An update that may have reached its system without being recorded:
	 * sent without an answer, tried, or journalled by a run that never
	 * finished (killed); the newest one, unless a later write of the
	 * record was recorded. */
	[S_OUTBOX_UNRECORDED] = "SELECT o.id FROM outbox o JOIN run ON run.id = o.run_id "
				"WHERE o.system = ?1 AND o.remote_id = ?2 AND o.op = 'update' AND o.status <> 'done' "
				"AND (o.status = 'unknown' OR o.attempts > 0 OR "
				"(run.finished_at IS NULL AND run.id < (SELECT max(id) FROM run))) "
				"AND NOT EXISTS (SELECT 1 FROM outbox d WHERE d.system = o.system "
				"AND d.remote_id = o.remote_id AND d.status = 'done' AND d.id > o.id) "
				"ORDER BY o.id DESC LIMIT 1",
	[S_SWEEP_BATCH] = "SELECT s.remote_id FROM snapshot s JOIN link l ON l.system = s.system "
			   "AND l.remote_id = s.remote_id AND l.deleted_run IS NULL "
			   "WHERE s.system = ?1 AND s.gone_run IS NULL AND s.swept_ms <= ?3 "
			   "ORDER BY s.swept_ms, s.remote_id LIMIT ?2",
	[S_SWEPT] = "UPDATE snapshot SET swept_ms = ?3 WHERE system = ?1 AND remote_id = ?2",
	/* Its endpoint says it is gone; a record first seen after ?4 (within
	 * the lookback) only becomes a candidate, checked again later. */
	[S_MARK_GONE] = "UPDATE snapshot SET "
			"gone_run = CASE WHEN first_seen_ms <= ?4 THEN ?3 END, "
			"missing_run = CASE WHEN first_seen_ms <= ?4 THEN missing_run "
			"ELSE coalesce(missing_run, ?3) END WHERE system = ?1 AND remote_id = ?2",
	[S_MARK_UNSEEN] = "UPDATE snapshot SET missing_run = ?2 WHERE system = ?1 AND seen_run < ?2 "
			   "AND gone_run IS NULL AND missing_run IS NULL",
	/* What seems gone: confirmed, or missing and old enough to be checked. */
	/* INDEXED BY: without statistics the planner may take another index
	 * on system and walk every record of the system. */
	[S_GONE_COUNT] = "SELECT (SELECT count(*) FROM snapshot INDEXED BY snapshot_gone "
			 "WHERE system = ?1 AND gone_run IS NOT NULL) + "
			 "(SELECT count(*) FROM snapshot INDEXED BY snapshot_missing WHERE system = ?1 "
			 "AND missing_run IS NOT NULL AND gone_run IS NULL AND first_seen_ms <= ?2)",
	[S_GONE_NEXT] = "SELECT s.system, s.remote_id, coalesce(l.person_id, 0) FROM snapshot s "
			 "LEFT JOIN link l ON l.system = s.system AND l.remote_id = s.remote_id "
			 "WHERE s.gone_run IS NOT NULL ORDER BY s.system, s.remote_id LIMIT 1",
	[S_MISSING_BATCH] = "SELECT s.remote_id FROM snapshot s INDEXED BY snapshot_missing JOIN link l ON l.system = s.system "
			     "AND l.remote_id = s.remote_id AND l.deleted_run IS NULL "
			     "WHERE s.system = ?1 AND s.missing_run IS NOT NULL AND s.gone_run IS NULL "
			     "AND s.first_seen_ms <= ?3 ORDER BY s.missing_run, s.remote_id LIMIT ?2",
	[S_MISSING_CLEAR] = "UPDATE snapshot SET missing_run = NULL WHERE system = ?1 AND remote_id = ?2",
	/* The changes a source made to records already in the state that no
	 * merge has taken in yet (I6): records changed, records with a value
	 * cleared, values cleared. New records and opt-outs do not count. */
	[S_VALVE_CHANGES] = "SELECT count(DISTINCT o.remote_id), "
			     "count(DISTINCT CASE WHEN o.old_value <> '' AND o.new_value = '' THEN o.remote_id END), "
			     "coalesce(sum(o.old_value <> '' AND o.new_value = ''), 0) "
			     /* Dirty persons first (few), then their observations:
			      * never a scan of the whole journal. */
			     "FROM person p CROSS JOIN observed o ON o.person_id = p.id "
			     "AND o.run_id > p.merged_run WHERE p.dirty = 1 AND o.system = ?1 "
			     "AND o.old_value IS NOT NULL "
			     "AND o.field NOT IN ('optout_sms', 'optout_call', 'optout_email')",
	[S_UNLINK_SNAP] = "DELETE FROM snapshot WHERE system = ?1 AND remote_id = ?2",
	[S_UNLINK_LINK] = "UPDATE link SET deleted_run = ?3 WHERE system = ?1 AND remote_id = ?2",
	[S_LINK_DELETED] = "SELECT count(*) FROM link WHERE person_id = ?1 AND system = ?2 AND deleted_run IS NOT NULL",
	[S_LIST_MEMBERS] = "SELECT list_id FROM list_member WHERE person_id = ?1 AND status = 'member' ORDER BY list_id",
	[S_LIST_SET] = "INSERT INTO list_member (person_id, list_id, status, run_id) VALUES (?1,?2,?3,?4) "
			"ON CONFLICT (person_id, list_id) DO UPDATE SET status = excluded.status, run_id = excluded.run_id",
	[S_EVENT_ADD] = "INSERT INTO event (kind, source, source_id, source_contact, phone, payload, "
			 "occurred_ms, run_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) "
			 "ON CONFLICT (source, source_id) DO NOTHING",
	[S_DELIVERY_ADD] = "INSERT INTO delivery (event_id, target, status, run_id) VALUES (?1,?2,'waiting',?3) "
			    "ON CONFLICT (event_id, target) DO NOTHING",
	/* One arm per open status, merged in id order along the status
	 * index: "status IN (...)" would sort every open row per batch. */
	[S_DELIVERY_DUE] = "SELECT id FROM delivery WHERE status = 'waiting' AND next_attempt_ms <= ?1 AND id > ?2 "
			    "UNION ALL SELECT id FROM delivery WHERE status = 'pending' AND next_attempt_ms <= ?1 "
			    "AND id > ?2 "
			    "UNION ALL SELECT id FROM delivery WHERE status = 'unknown' AND next_attempt_ms <= ?1 "
			    "AND id > ?2 ORDER BY id LIMIT ?3",
	[S_DELIVERY_GET] = "SELECT d.target, d.status, d.attempts, e.id, e.person_id, e.kind, e.source, "
			    "e.source_id, e.source_contact, e.phone, e.payload, e.occurred_ms "
			    "FROM delivery d JOIN event e ON e.id = d.event_id WHERE d.id = ?1",
	[S_EVENT_PERSON] = "UPDATE event SET person_id = ?2 WHERE id = ?1",
	[S_DELIVERY_SET] = "UPDATE delivery SET status = ?2, attempts = attempts + ?3, next_attempt_ms = ?4, "
			    "remote_id = coalesce(?5, remote_id), last_error = ?6, "
			    "done_run = CASE WHEN ?2 = 'done' THEN ?7 ELSE done_run END WHERE id = ?1",
	/* I11: 'unknown' (sent, no answer) is due again at ?3; attempt counts
	 * a sent request. */
	[S_OUTBOX_SET] = "UPDATE outbox SET status = ?2, attempts = attempts + ?3, next_attempt_ms = ?4, "
			 "last_error = ?5 WHERE id = ?1",
	/* I2: the intent of a batch of due writes, journalled in one
	 * transaction before any of them is sent: a pending row becomes
	 * 'unknown' (its next attempt looks first) until its outcome is
	 * recorded. The range is the batch's (ids after ?2 up to ?3, due at
	 * ?1), along the status index. */
	[S_OUTBOX_MARK] = "UPDATE outbox SET status = 'unknown' WHERE status = 'pending' AND next_attempt_ms <= ?1 "
			  "AND id > ?2 AND id <= ?3 RETURNING id, attempts",
	/* A marked row nothing was recorded for (every recorded outcome
	 * counts an attempt) was not sent: pending again. */
	[S_OUTBOX_UNMARK] = "UPDATE outbox SET status = 'pending' WHERE id = ?1 AND status = 'unknown' "
			    "AND attempts = ?2",
	[S_OUTBOX_REFUSED] = "UPDATE outbox SET status = 'refused', attempts = attempts + 1, last_error = ?2, "
			     "config = ?3 WHERE id = ?1",
	[S_DELIVERY_REFUSED] = "UPDATE delivery SET status = 'refused', attempts = attempts + 1, last_error = ?2, "
			       "config = ?3 WHERE id = ?1",
	/* Refused under another configuration: due again. */
	[S_REFUSED_REOPEN] = "UPDATE outbox SET status = 'pending', next_attempt_ms = 0 "
			     "WHERE status = 'refused' AND config IS NOT ?1",
	[S_DELIVERY_REOPEN] = "UPDATE delivery SET status = 'pending', next_attempt_ms = 0 "
			      "WHERE status = 'refused' AND config IS NOT ?1",
	/* dfreconcile retry [SYSTEM[:ID]]: ?1 system or NULL, ?2 its record
	 * id or NULL (writes to that record or its person's, deliveries to
	 * its person). */
	[S_RETRY_WRITES] = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = 0 "
			   "WHERE status IN ('failed', 'refused') AND (?1 IS NULL OR system = ?1) "
			   "AND (?2 IS NULL OR remote_id = ?2 OR person_id IN "
			   "(SELECT person_id FROM link WHERE system = ?1 AND remote_id = ?2))",
	[S_RETRY_DELIVERIES] = "UPDATE delivery SET status = 'pending', attempts = 0, next_attempt_ms = 0 "
			       "WHERE status IN ('failed', 'refused') AND (?1 IS NULL OR target = ?1) "
			       "AND (?2 IS NULL OR event_id IN (SELECT id FROM event WHERE person_id IN "
			       "(SELECT person_id FROM link WHERE system = ?1 AND remote_id = ?2)))",
	[S_SNAP_LISTED] = "UPDATE snapshot SET seen_run = ?3, missing_run = NULL, gone_run = NULL "
			  "WHERE system = ?1 AND remote_id = ?2",
	/* merged is 'same' when it is the record's fields (schema 10): one
	 * copy of the JSON, not two. */
	[S_SNAP_MERGED] = "SELECT CASE WHEN merged = 'same' THEN fields ELSE merged END FROM snapshot "
			  "WHERE system = ?1 AND remote_id = ?2",
	/* A record and its merged copy for the merge (state_snapshot_view). */
	[S_SNAP_VIEW] = "SELECT fields, remote_updated_ms, merged FROM snapshot WHERE system = ?1 AND remote_id = ?2",
	[S_SNAP_MARK] = "UPDATE snapshot SET merged = 'same' WHERE system = ?1 AND remote_id = ?2 "
			"AND merged IS NOT 'same'",
	[S_SNAP_SET_MERGED] = "UPDATE snapshot SET merged = CASE WHEN fields = ?3 THEN 'same' ELSE ?3 END "
			      "WHERE system = ?1 AND remote_id = ?2",
	[S_OPTOUT_GET] = "SELECT status, source FROM optout WHERE phone = ?1 AND channel = ?2",
	[S_OPTOUT_SET] = "INSERT INTO optout (phone, channel, status, source, reason, run_id, changed_at) "
			 "VALUES (?1,?2,?3,?4,?5,?6, strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
			 "ON CONFLICT (phone, channel) DO UPDATE SET status = excluded.status, "
			 "source = excluded.source, reason = excluded.reason, run_id = excluded.run_id, "
			 "changed_at = excluded.changed_at",
	[S_OPTOUT_LOG] = "INSERT INTO optout_log (run_id, phone, channel, person_id, action, system, reason) "
			 "VALUES (?1,?2,?3,?4,?5,?6,?7)",
	/* Held records and admin actions (engine/link.c). */
	[S_HOLD_PUT] =
		"INSERT INTO hold (system, remote_id, kind, reason, run_id, since) "
		"VALUES (?1,?2,?3,?4,?5, strftime('%Y-%m-%dT%H:%M:%fZ','now')) ON CONFLICT (system, remote_id) "
		"DO UPDATE SET kind = excluded.kind, reason = excluded.reason, run_id = excluded.run_id",
	[S_HOLD_GET] = "SELECT kind FROM hold WHERE system = ?1 AND remote_id = ?2",
	[S_HOLD_DROP] = "DELETE FROM hold WHERE system = ?1 AND remote_id = ?2",
	/* The first held record with the key, as min(): an ORDER BY ...
	 * LIMIT 1 would build a sorter at every run of these, twice per
	 * record linked and per create planned. NULL when none. */
	[S_HELD_PHONE] =
		"SELECT min(h.system || ':' || h.remote_id) FROM hold h JOIN snapshot s ON s.system = h.system "
		"AND s.remote_id = h.remote_id WHERE s.phone = ?1 AND NOT (h.system = ?2 AND h.remote_id = ?3)",
	[S_HELD_EMAIL] =
		"SELECT min(h.system || ':' || h.remote_id) FROM hold h JOIN snapshot s ON s.system = h.system "
		"AND s.remote_id = h.remote_id WHERE s.email = ?1 AND NOT (h.system = ?2 AND h.remote_id = ?3)",
	[S_LINK_DROP] = "DELETE FROM link WHERE system = ?1 AND remote_id = ?2 AND deleted_run IS NULL",
	[S_SNAP_UNMERGE] = "UPDATE snapshot SET merged = NULL WHERE system = ?1 AND remote_id = ?2",
	[S_PERSON_EXISTS] = "SELECT count(*) FROM person WHERE id = ?1",
	[S_ADMIN_LOG] =
		"INSERT INTO admin_action (at, action, who, system, remote_id, person_before, person_after, "
		"before, after) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1,?2,?3,?4,?5,?6,?7,?8)",
	/* Known: the record's latest quarantine before this run had the same
	 * kind and reason (the reason names the bad field and its type). */
	[S_QUARANTINE_KNOWN] =
		"SELECT count(*) FROM quarantine WHERE id = (SELECT max(id) FROM quarantine "
		"WHERE system = ?1 AND remote_id IS ?2 AND run_id < ?3) AND kind = ?4 AND reason = ?5",
	[S_PINS_GET] = "SELECT field, value FROM pin WHERE person_id = ?1",
	[S_PIN_PUT] = "INSERT INTO pin (person_id, field, value, at, who) VALUES "
		      "(?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?4) ON CONFLICT (person_id, field) "
		      "DO UPDATE SET value = excluded.value, at = excluded.at, who = excluded.who",
	[S_PIN_DROP] = "DELETE FROM pin WHERE person_id = ?1 AND field = ?2",
	/* What run ?1 changed: each person's field it wrote by an update, the
	 * value the first such write replaced, and the agreed value now with
	 * the run that last changed it. */
	/* Read from the packed rows (schema 11): a write's fields
	 * [field, old, new, ...] and the person's agreed field's value [0]
	 * and run [4]. */
	[S_UNDO_ITEMS] =
		"SELECT o.person_id, f.value ->> 0 AS field, f.value ->> 1, f.value ->> 2, "
		"a.fields ->> ('$.' || json_quote(f.value ->> 0) || '[0]'), "
		"coalesce(a.fields ->> ('$.' || json_quote(f.value ->> 0) || '[4]'), 0) "
		"FROM outbox o JOIN json_each(o.fields) f LEFT JOIN agreed a ON a.person_id = o.person_id "
		"WHERE o.run_id = ?1 AND o.op = 'update' AND o.status = 'done' "
		"AND o.id = (SELECT min(o2.id) FROM outbox o2, json_each(o2.fields) f2 "
		"WHERE o2.run_id = ?1 AND o2.op = 'update' AND o2.status = 'done' AND o2.person_id = o.person_id "
		"AND f2.value ->> 0 = f.value ->> 0) ORDER BY o.person_id, field",
	[S_RUN_CREATES] = "SELECT count(*) FROM outbox WHERE run_id = ?1 AND op = 'create' AND status = 'done'",
	/* Prepared like the rest: several savepoints per record written, and
	 * sqlite3_exec would parse each one again. */
	[S_SAVEPOINT] = "SAVEPOINT work",
	[S_RELEASE] = "RELEASE work",
};

int db_fail(struct state *st, struct df_err *err, const char *what)
{
	st->failed = true;
	return df_fail(err, DF_FAIL_STATE, "state: %s: %s", what, sqlite3_errmsg(st->db));
}

/* The statement, prepared on first use, reset and unbound. */
sqlite3_stmt *stmt(struct state *st, enum stmt_id id, struct df_err *err)
{
	sqlite3_stmt *s = st->stmt[id];

	if (s == NULL) {
		if (sqlite3_prepare_v3(st->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
			db_fail(st, err, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

/* Runs s to completion (a write); resets it. */
int step_done(struct state *st, sqlite3_stmt *s, struct df_err *err, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, what);
	return 0;
}

/* Binds the arguments by types ('t' text, 'i' long long, 'b' int, 'd' a
 * STATE_DIGEST-byte digest or NULL) to the
 * statement id and runs it to completion (a write). The texts are bound
 * without a copy (SQLITE_STATIC): they outlive the step, which ends here,
 * and stmt() clears the bindings before the statement's next use. */
int write_stmt(struct state *st, enum stmt_id id, struct df_err *err, const char *what,
	       const char *types, ...)
{
	sqlite3_stmt *s = stmt(st, id, err);
	va_list ap;

	if (s == NULL)
		return -1;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		const char *t;
		switch (types[i]) {
		case 't':
			if ((t = va_arg(ap, const char *)) != NULL)
				sqlite3_bind_text(s, i + 1, t, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(s, i + 1);
			break;
		case 'i': sqlite3_bind_int64(s, i + 1, va_arg(ap, long long)); break;
		case 'd': {     /* a digest, STATE_DIGEST bytes, or NULL */
			const unsigned char *d = va_arg(ap, const unsigned char *);
			if (d)
				sqlite3_bind_blob(s, i + 1, d, STATE_DIGEST, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(s, i + 1);
			break;
		}
		default: sqlite3_bind_int(s, i + 1, va_arg(ap, int)); break;
		}
	}
	va_end(ap);
	return step_done(st, s, err, what);
}

char *column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? xstrdup((const char *)t) : NULL;
}

/* A single integer from a query with up to two text parameters. */
int person_fields(struct state *st, enum stmt_id id, long long person, struct record *rec,
		  const char *what, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int f = field_find((const char *)sqlite3_column_text(s, 0));
		if (f >= 0)
			record_take(rec, f, column_dup(s, 1));
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, err, what);
}

/* The packed rows (schema 11) are read without SQLite's json_each, which
 * parsed every element again for each column taken (a tenth of a first
 * sync's writes). Only what the state writes is read so: strings, nulls
 * and integers; anything else (a value an auditor edited in) is left to
 * the caller's json_each statement. */
bool flat_array(const char **p, char **v, int max, int *n, char *buf, size_t cap)
{
	const char *q = json_skip_space(*p);
	bool ok = false;

	*n = 0;
	if (*q++ != '[')
		return false;
	q = json_skip_space(q);
	if (*q == ']') {
		*p = q + 1;
		return true;
	}
	for (;;) {
		char *val = NULL;
		if (*q == '"') {
			q++;
			if (!json_read_string(&q, buf, cap))
				break;
			val = xstrdup(buf);
		} else if (strncmp(q, "null", 4) == 0) {
			q += 4;
		} else if (*q == '-' || (*q >= '0' && *q <= '9')) {
			/* An integer: the rule, reason and run ids. */
			for (q += *q == '-'; *q >= '0' && *q <= '9'; q++)
				;
			val = NULL;
		} else {
			break;
		}
		if (*n < max)
			v[(*n)++] = val;
		else
			free(val);
		q = json_skip_space(q);
		if (*q == ']') {
			ok = true;
			q++;
			break;
		}
		if (*q++ != ',')
			break;
		q = json_skip_space(q);
	}
	if (!ok) {
		for (int i = 0; i < *n; i++)
			free(v[i]);
		*n = 0;
		return false;
	}
	*p = q;
	return true;
}

int query_int(struct state *st, enum stmt_id id, const char *a, const char *b,
	      long long *out, bool *found, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	int rc;

	if (s == NULL)
		return -1;
	if (a)
		bind_text(s, 1, a);
	if (b)
		bind_text(s, 2, b);
	rc = sqlite3_step(s);
	if (found)
		*found = rc == SQLITE_ROW;
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "query");
	return 0;
}

/* Collects the first column of every row of s (already bound but for the
 * limit parameter at index lim) into ids. */
int collect_ids(struct state *st, sqlite3_stmt *s, int lim, long long *ids, int max,
		int *n, struct df_err *err)
{
	int rc;

	sqlite3_bind_int(s, lim, max);
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		ids[(*n)++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "list");
	return 0;
}

/* Ids of rows due at now_ms after the id after (outbox or delivery). */
int due_ids(struct state *st, enum stmt_id id, long long now_ms, long long after,
	    long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int64(s, 2, after);
	return collect_ids(st, s, 3, ids, max, n, err);
}

/* Reports own their queries (report/queries.c); this runs one of them,
 * read-only: a statement that would write is refused before it runs. */
int state_query(struct state *st, const char *text, const char *const *params, int nparams,
		state_row_fn row, void *arg, struct df_err *err)
{
	struct state_cell cells[STATE_MAX_COLUMNS];
	sqlite3_stmt *s;
	int rc, ncols;

	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "prepare report");
	if (!sqlite3_stmt_readonly(s)) {
		sqlite3_finalize(s);
		return df_fail(err, DF_FAIL_STATE, "state: a report query must not write");
	}
	for (int i = 0; i < nparams; i++) {
		char *end;
		long long v = params[i] ? strtoll(params[i], &end, 10) : 0;
		if (params[i] && *params[i] && *end == '\0')
			sqlite3_bind_int64(s, i + 1, v);
		else
			bind_text(s, i + 1, params[i]);
	}
	ncols = sqlite3_column_count(s);
	if (ncols > STATE_MAX_COLUMNS)
		ncols = STATE_MAX_COLUMNS;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		for (int i = 0; i < ncols; i++) {
			int t = sqlite3_column_type(s, i);
			cells[i].name = sqlite3_column_name(s, i);
			cells[i].text = (const char *)sqlite3_column_text(s, i);
			cells[i].type = t == SQLITE_INTEGER ? STATE_INTEGER : t == SQLITE_FLOAT ? STATE_REAL
				      : t == SQLITE_NULL ? STATE_NULL : STATE_TEXT;
		}
		if (row(arg, ncols, cells)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "report");
	return 0;
}

int state_statement_count(void)
{
	return S_COUNT;
}

const char *state_statement_sql(int i)
{
	if (i < 0 || i >= state_statement_count())
		return NULL;
	return sql[i];
}
