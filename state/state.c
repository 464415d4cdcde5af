/*
 * state.c - the schema, its migrations and every SQL statement a run
 * reads and writes with, prepared once per run. What reports read is the
 * report layer's own (report/queries.c), run through state_query, which
 * refuses a statement that writes.
 *
 * Statements live in one table (sql[]) indexed by an enum, so a reader sees
 * the whole vocabulary of the journal in one place. The file is opened in
 * WAL mode with a busy timeout; the run lock (core/lock.c) already keeps a
 * second run away, the timeout only covers an auditor reading meanwhile.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "schema.h"
#include "state.h"
#include "../core/normalize.h"
#include "../core/str.h"

#define STR_(x) #x
#define STR(x) STR_(x)

enum stmt_id {
	S_RUN_START, S_RUN_FINISH, S_RUN_SYSTEM, S_LAST_RUN,
	S_CURSOR_GET, S_CURSOR_SET,
	S_SNAP_GET, S_SNAP_PUT, S_SNAP_SEEN, S_SNAP_COUNT,
	S_LINK_GET, S_LINK_OF, S_LINK_PUT,
	S_PERSON_NEW, S_PERSON_DIRTY, S_PERSON_MERGED, S_DIRTY_BATCH, S_DIRTY_AFTER,
	S_MATCH_PHONE, S_MATCH_EMAIL,
	S_AGREED_GET, S_AGREED_PUT,
	S_OBSERVED_ADD, S_CONFLICT_ADD, S_QUARANTINE_ADD, S_NOTICE_ADD,
	S_OUTBOX_SUPERSEDE, S_OUTBOX_ADD, S_OUTBOX_FIELD_ADD, S_OUTBOX_DUE,
	S_OUTBOX_GET, S_OUTBOX_FIELDS, S_OUTBOX_DONE, S_OUTBOX_FAILED, S_OUTBOX_COUNT,
	S_OPTOUT_GET, S_OPTOUT_SET, S_OPTOUT_LOG,
	S_SNAP_MERGED, S_SNAP_MARK, S_SNAP_LISTED, S_SNAP_SET_MERGED,
	S_LIST_MEMBERS, S_LIST_SET,
	S_SWEEP_BATCH, S_SWEPT, S_MARK_GONE, S_MARK_UNSEEN, S_GONE_COUNT, S_GONE_NEXT,
	S_MISSING_BATCH, S_MISSING_CLEAR, S_VALVE_CHANGES,
	S_UNLINK_SNAP, S_UNLINK_LINK, S_LINK_DELETED, S_LINK_UNBURY,
	S_EVENT_ADD, S_DELIVERY_ADD, S_DELIVERY_DUE, S_DELIVERY_GET, S_EVENT_PERSON, S_DELIVERY_SET,
	S_DELIVERY_COUNT, S_OUTBOX_UNRECORDED,
	S_OUTBOX_SET, S_OUTBOX_REFUSED, S_DELIVERY_REFUSED, S_REFUSED_REOPEN, S_DELIVERY_REOPEN,
	S_RETRY_WRITES, S_RETRY_DELIVERIES,
	S_HOLD_PUT, S_HOLD_GET, S_HOLD_DROP, S_HELD_PHONE, S_HELD_EMAIL, S_LINK_DROP, S_SNAP_UNMERGE,
	S_PERSON_EXISTS, S_ADMIN_LOG, S_QUARANTINE_KNOWN,
	S_PINS_GET, S_PIN_PUT, S_PIN_DROP, S_UNDO_ITEMS, S_RUN_CREATES,
	S_COUNT
};

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
		       "seen_run = excluded.seen_run, missing_run = NULL, gone_run = NULL",
	[S_SNAP_SEEN] = "UPDATE snapshot SET remote_updated_ms = ?3, seen_run = ?4, missing_run = NULL, "
			"gone_run = NULL WHERE system = ?1 AND remote_id = ?2",
	[S_SNAP_COUNT] = "SELECT coalesce((SELECT n FROM snapshot_count WHERE system = ?1), 0)",
	[S_LINK_GET] = "SELECT person_id FROM link WHERE system = ?1 AND remote_id = ?2 AND deleted_run IS NULL",
	[S_LINK_OF] = "SELECT remote_id FROM link WHERE person_id = ?1 AND system = ?2 AND deleted_run IS NULL",
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
			  "UNION ALL SELECT person_id FROM field_value WHERE field = 'phone' AND value = ?1",
	[S_MATCH_EMAIL] = "SELECT l.person_id FROM snapshot s JOIN link l "
			  "ON l.system = s.system AND l.remote_id = s.remote_id WHERE s.email = ?1 "
			  "UNION ALL SELECT person_id FROM field_value WHERE field = 'email' AND value = ?1",
	[S_AGREED_GET] = "SELECT field, value FROM field_value WHERE person_id = ?1",
	[S_AGREED_PUT] = "INSERT INTO field_value (person_id, field, value, system, rule, reason, run_id, beaten) "
			 "VALUES (?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT (person_id, field) DO UPDATE SET "
			 "value = excluded.value, system = excluded.system, rule = excluded.rule, "
			 "reason = excluded.reason, run_id = excluded.run_id, beaten = excluded.beaten",
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
	[S_OUTBOX_ADD] = "INSERT INTO outbox (run_id, person_id, system, remote_id, op) VALUES (?1,?2,?3,?4,?5)",
	[S_OUTBOX_FIELD_ADD] = "INSERT INTO outbox_field (outbox_id, field, old_value, new_value, rule, reason) "
			       "VALUES (?1,?2,?3,?4,?5,?6)",
	/* One arm per due status, merged in id order along the status index. */
	[S_OUTBOX_DUE] = "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_ms <= ?1 AND id > ?2 "
			 "UNION ALL SELECT id FROM outbox WHERE status = 'unknown' AND next_attempt_ms <= ?1 "
			 "AND id > ?2 ORDER BY id LIMIT ?3",
	[S_OUTBOX_GET] = "SELECT person_id, system, remote_id, op, attempts FROM outbox WHERE id = ?1",
	[S_OUTBOX_FIELDS] = "SELECT field, old_value, new_value FROM outbox_field WHERE outbox_id = ?1 ORDER BY rowid",
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
	[S_GONE_COUNT] = "SELECT count(*) FROM snapshot WHERE system = ?1 AND (gone_run IS NOT NULL "
			 "OR (missing_run IS NOT NULL AND first_seen_ms <= ?2))",
	[S_GONE_NEXT] = "SELECT s.system, s.remote_id, coalesce(l.person_id, 0) FROM snapshot s "
			 "LEFT JOIN link l ON l.system = s.system AND l.remote_id = s.remote_id "
			 "WHERE s.gone_run IS NOT NULL ORDER BY s.system, s.remote_id LIMIT 1",
	[S_MISSING_BATCH] = "SELECT s.remote_id FROM snapshot s JOIN link l ON l.system = s.system "
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
	[S_SNAP_MERGED] = "SELECT merged FROM snapshot WHERE system = ?1 AND remote_id = ?2",
	[S_SNAP_MARK] = "UPDATE snapshot SET merged = fields WHERE system = ?1 AND remote_id = ?2 "
			"AND merged IS NOT fields",
	[S_SNAP_SET_MERGED] = "UPDATE snapshot SET merged = ?3 WHERE system = ?1 AND remote_id = ?2",
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
	[S_HELD_PHONE] =
		"SELECT h.system || ':' || h.remote_id FROM hold h JOIN snapshot s ON s.system = h.system "
		"AND s.remote_id = h.remote_id WHERE s.phone = ?1 AND NOT (h.system = ?2 AND h.remote_id = ?3) "
		"ORDER BY 1 LIMIT 1",
	[S_HELD_EMAIL] =
		"SELECT h.system || ':' || h.remote_id FROM hold h JOIN snapshot s ON s.system = h.system "
		"AND s.remote_id = h.remote_id WHERE s.email = ?1 AND NOT (h.system = ?2 AND h.remote_id = ?3) "
		"ORDER BY 1 LIMIT 1",
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
	[S_UNDO_ITEMS] =
		"SELECT o.person_id, f.field, f.old_value, f.new_value, v.value, coalesce(v.run_id, 0) "
		"FROM outbox o JOIN outbox_field f ON f.outbox_id = o.id "
		"LEFT JOIN field_value v ON v.person_id = o.person_id AND v.field = f.field "
		"WHERE o.run_id = ?1 AND o.op = 'update' AND o.status = 'done' "
		"AND f.rowid = (SELECT min(f2.rowid) FROM outbox o2 JOIN outbox_field f2 ON f2.outbox_id = o2.id "
		"WHERE o2.run_id = ?1 AND o2.op = 'update' AND o2.status = 'done' AND o2.person_id = o.person_id "
		"AND f2.field = f.field) ORDER BY o.person_id, f.field",
	[S_RUN_CREATES] = "SELECT count(*) FROM outbox WHERE run_id = ?1 AND op = 'create' AND status = 'done'",
};

/* Report queries: name -> SQL taking the run id as ?1. */

struct state {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	int depth;              /* open savepoints */
};

static int db_fail(struct state *st, struct df_err *err, const char *what)
{
	return df_fail(err, DF_FAIL_STATE, "state: %s: %s", what, sqlite3_errmsg(st->db));
}

static int exec(struct state *st, const char *text, struct df_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, text, NULL, NULL, &msg) != SQLITE_OK) {
		df_fail(err, DF_FAIL_STATE, "state: %s", msg ? msg : "statement failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* The statement, prepared on first use, reset and unbound. */
static sqlite3_stmt *stmt(struct state *st, enum stmt_id id, struct df_err *err)
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

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

/* Runs s to completion (a write); resets it. */
static int step_done(struct state *st, sqlite3_stmt *s, struct df_err *err, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, what);
	return 0;
}

/* Binds the arguments by types ('t' text, 'i' long long, 'b' int) to the
 * statement id and runs it to completion (a write). */
static int write_stmt(struct state *st, enum stmt_id id, struct df_err *err, const char *what,
		      const char *types, ...)
{
	sqlite3_stmt *s = stmt(st, id, err);
	va_list ap;

	if (s == NULL)
		return -1;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 't': bind_text(s, i + 1, va_arg(ap, const char *)); break;
		case 'i': sqlite3_bind_int64(s, i + 1, va_arg(ap, long long)); break;
		default: sqlite3_bind_int(s, i + 1, va_arg(ap, int)); break;
		}
	}
	va_end(ap);
	return step_done(st, s, err, what);
}

static char *column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? xstrdup((const char *)t) : NULL;
}

static int user_version(struct state *st, int *v, struct df_err *err)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "schema version");
	*v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	return 0;
}

static int migrate(struct state *st, struct df_err *err)
{
	int v;

	if (user_version(st, &v, err))
		return -1;
	if (v > SCHEMA_VERSION)
		return df_fail(err, DF_FAIL_STATE,
			       "state: schema version %d is newer than this dfreconcile knows (%d)",
			       v, SCHEMA_VERSION);
	for (; v < SCHEMA_VERSION; v++) {
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (exec(st, "BEGIN IMMEDIATE", err))
			return -1;
		if (exec(st, migrations[v], err) || exec(st, pragma, err)) {
			exec(st, "ROLLBACK", NULL);
			return df_wrap(err, "migration %d", v + 1);
		}
		if (exec(st, "COMMIT", err))
			return -1;
	}
	return 0;
}

/*
 * Trusting the file. A state file is ours when it carries our
 * application_id (STATE_APPLICATION_ID), or, written before the id
 * existed, when it has application_id 0 and our schema (it is stamped by
 * the next run). Anything else that exists is refused, never created over,
 * migrated or repaired: a zero-length file (an emptied state would silently
 * forget the opt-out registry and the tombstones), another program's SQLite
 * file, and a file that fails PRAGMA quick_check. quick_check reads every
 * page but skips the index cross-checks of integrity_check: milliseconds
 * for a demo-sized file, about a second per few hundred MB, paid by every
 * open (run and readers alike) because a damaged file must never reach a
 * write. The admin's way out is `dfreconcile init-state` (state_init).
 */
static const char refuse_hint[] =
	"restore it from a backup, or move it aside and start a new state with "
	"'dfreconcile init-state' (the opt-out registry, links and tombstones in it are then forgotten)";

static int refuse(struct df_err *err, const char *path, const char *why)
{
	return df_fail(err, DF_FAIL_STATE, "state file %s %s: %s", path, why, refuse_hint);
}

/* One integer PRAGMA; -1 when the file cannot answer (not a database). */
static int pragma_int(struct state *st, const char *text, long long *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* 0 when the file passes quick_check; -1 with the first problem in why. */
static int quick_check(struct state *st, char *why, size_t n)
{
	sqlite3_stmt *s;
	const char *first;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check(1)", -1, &s, NULL) != SQLITE_OK) {
		snprintf(why, n, "%s", sqlite3_errmsg(st->db));
		return -1;
	}
	rc = sqlite3_step(s);
	first = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	rc = rc == SQLITE_ROW && first && strcmp(first, "ok") == 0 ? 0 : -1;
	if (rc)
		snprintf(why, n, "%s", first ? first : sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return rc;
}

/* Decides whether the open file st at path is ours and sound. *legacy is
 * set for a file of ours written before the application_id existed. Returns
 * 0, or -1 with *refused and the reason in err. */
static int identify(struct state *st, const char *path, bool *legacy, bool *refused, struct df_err *err)
{
	long long app, version, ours = 0;
	char why[200], problem[100];

	*legacy = false;
	*refused = true;
	if (pragma_int(st, "PRAGMA application_id", &app) || pragma_int(st, "PRAGMA user_version", &version)) {
		snprintf(why, sizeof(why), "is damaged (%s)", sqlite3_errmsg(st->db));
		return refuse(err, path, why);
	}
	if (app == 0 && pragma_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				   "AND name IN ('run', 'cursor', 'link', 'snapshot', 'outbox')", &ours)) {
		snprintf(why, sizeof(why), "is damaged (%s)", sqlite3_errmsg(st->db));
		return refuse(err, path, why);
	}
	if (app != STATE_APPLICATION_ID && !(app == 0 && version >= 1 && ours == 5)) {
		snprintf(why, sizeof(why), "is not a dfreconcile state file (application_id %lld, "
			 "expected %d)", app, STATE_APPLICATION_ID);
		return refuse(err, path, why);
	}
	if (quick_check(st, problem, sizeof(problem))) {
		snprintf(why, sizeof(why), "is damaged (quick_check: %s)", problem);
		return refuse(err, path, why);
	}
	*legacy = app == 0;
	*refused = false;
	return 0;
}

/* Opens path; create is only for a file that does not exist yet. *refused
 * (may be NULL) tells a refused file from a failure to open at all. */
static struct state *open_file(const char *path, bool reader, bool *refused, struct df_err *err)
{
	static bool configured;
	struct state *st = xcalloc(1, sizeof(*st));
	char *wal = xasprintf("%s-wal", path);
	struct stat sb, wb;
	bool exists, legacy = false, no = false;
	int flags = reader ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;

	/* dfreconcile has one thread: SQLite's mutexes and allocation counters
	 * cost a tenth of a first sync's instructions for nothing. Settable
	 * only before SQLite starts; a refusal leaves the defaults. */
	if (!configured) {
		sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		configured = true;
	}
	refused = refused ? refused : &no;
	*refused = false;
	exists = stat(path, &sb) == 0;
	if (exists && sb.st_size == 0 && !(stat(wal, &wb) == 0 && wb.st_size > 0)) {
		free(wal);
		free(st);
		*refused = true;
		refuse(err, path, "is empty (zero bytes)");
		return NULL;
	}
	free(wal);
	if (!exists && !reader)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		df_fail(err, DF_FAIL_STATE, "state: cannot open %s: %s", path,
			st->db ? sqlite3_errmsg(st->db) : "out of memory");
		state_close(st);
		return NULL;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (exists && identify(st, path, &legacy, refused, err)) {
		state_close(st);
		return NULL;
	}
	if (!reader && exists)
		(void)chmod(path, S_IRUSR | S_IWUSR);   /* files made 0644 by earlier versions */
	if (reader) {
		/* A reader (report, explain) changes nothing, not even the schema. */
		long long v = -1;
		if (pragma_int(st, "PRAGMA user_version", &v) == 0 && v != SCHEMA_VERSION)
			df_fail(err, DF_FAIL_STATE, "state: schema version %lld, this dfreconcile reads %d: "
				"let a run migrate the file first", v, SCHEMA_VERSION);
		if (v == SCHEMA_VERSION)
			return st;
	} else if ((exists && !legacy) || exec(st, "PRAGMA application_id = " STR(STATE_APPLICATION_ID), err) == 0) {
		if (exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
			 err) == 0 && migrate(st, err) == 0)
			return st;
	}
	df_wrap(err, "%s", path);
	state_close(st);
	return NULL;
}

struct state *state_open(const char *path, struct df_err *err)
{
	return open_file(path, false, NULL, err);
}

struct state *state_open_reader(const char *path, struct df_err *err)
{
	return open_file(path, true, NULL, err);
}

/* Moves path and its -wal and -shm files to path.refused-<UTC time>. */
static int move_aside(const char *path, char **aside, struct df_err *err)
{
	static const char *const tails[] = { "-wal", "-shm" };
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	*aside = xasprintf("%s.refused-%s", path, stamp);
	if (access(*aside, F_OK) == 0 || rename(path, *aside) != 0) {
		df_fail(err, DF_FAIL_STATE, "state: cannot move %s to %s: %s", path, *aside,
			errno ? strerror(errno) : "the name is taken");
		free(*aside);
		*aside = NULL;
		return -1;
	}
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char *from = xasprintf("%s%s", path, tails[i]), *to = xasprintf("%s%s", *aside, tails[i]);
		if (rename(from, to) != 0 && errno != ENOENT)
			df_fail(err, DF_FAIL_STATE, "state: cannot move %s to %s: %s", from, to, strerror(errno));
		free(from);
		free(to);
		if (err && err->fail != DF_OK)
			return -1;
	}
	return 0;
}

int state_init(const char *path, char **aside, struct df_err *err)
{
	struct df_err why = { 0 };
	struct state *st;
	bool refused = false;

	*aside = NULL;
	errno = 0;
	if (access(path, F_OK) == 0) {
		st = open_file(path, true, &refused, &why);
		if (st != NULL || !refused) {
			state_close(st);
			return st ? df_fail(err, DF_FAIL_STATE, "state file %s is usable: init-state never "
					    "replaces a usable state (move it away yourself to start over)", path)
				  : df_fail(err, why.fail, "%s", why.msg);
		}
		if (move_aside(path, aside, err))
			return -1;
	}
	st = state_open(path, err);
	state_close(st);
	return st ? 0 : -1;
}

void state_close(struct state *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st);
}

int state_schema_version(struct state *st)
{
	int v = -1;

	user_version(st, &v, NULL);
	return v;
}

int state_begin(struct state *st, struct df_err *err)
{
	if (exec(st, "SAVEPOINT work", err))
		return -1;
	st->depth++;
	return 0;
}

int state_commit(struct state *st, struct df_err *err)
{
	if (exec(st, "RELEASE work", err))
		return -1;
	st->depth--;
	return 0;
}

int state_rollback(struct state *st)
{
	if (st->depth == 0)
		return 0;
	/* Releasing the outermost savepoint would commit an (empty)
	 * transaction and touch the file header; a dry run must not. */
	exec(st, st->depth == 1 ? "ROLLBACK" : "ROLLBACK TO work; RELEASE work", NULL);
	st->depth--;
	return 0;
}

/* Runs */

long long state_run_start(struct state *st, const char *mode, struct df_err *err)
{
	if (write_stmt(st, S_RUN_START, err, "start run", "t", mode))
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

int state_run_finish(struct state *st, long long run, const char *status, int exit_code,
		     const char *message, struct df_err *err)
{
	return write_stmt(st, S_RUN_FINISH, err, "finish run", "itbt", run, status, exit_code,
			  message);
}

int state_run_system_add(struct state *st, long long run, const char *system,
			 const struct run_counts *c, struct df_err *err)
{
	return write_stmt(st, S_RUN_SYSTEM, err, "record run counts", "itiiiiiiiii", run, system,
			  c->polled, c->changed, c->quarantined, c->writes_done, c->writes_failed,
			  c->requests, c->swept, c->unlinked, c->sweep_cycle);
}

/* A single integer from a query with up to two text parameters. */
static int query_int(struct state *st, enum stmt_id id, const char *a, const char *b,
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

long long state_last_run(struct state *st)
{
	long long id = 0;

	query_int(st, S_LAST_RUN, NULL, NULL, &id, NULL, NULL);
	return id;
}

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

/* Snapshots and links */

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

int state_snapshot_seen(struct state *st, const char *system, const char *remote_id,
			long long updated_ms, long long run, struct df_err *err)
{
	return write_stmt(st, S_SNAP_SEEN, err, "touch snapshot", "ttii", system, remote_id,
			  updated_ms, run);
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

int state_link_get(struct state *st, const char *system, const char *remote_id,
		   long long *person, struct df_err *err)
{
	return query_int(st, S_LINK_GET, system, remote_id, person, NULL, err);
}

int state_link_of(struct state *st, long long person, const char *system, char **remote_id,
		  struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_OF, err);
	int rc;

	*remote_id = NULL;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	bind_text(s, 2, system);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*remote_id = column_dup(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read link");
	return 0;
}

int state_link_put(struct state *st, const char *system, const char *remote_id,
		   long long person, const char *how, long long run, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_UNBURY, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int64(s, 2, person);
	bind_text(s, 3, remote_id);
	if (step_done(st, s, err, "clear tombstone") || (s = stmt(st, S_LINK_PUT, err)) == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	sqlite3_bind_int64(s, 3, person);
	bind_text(s, 4, how);
	sqlite3_bind_int64(s, 5, run);
	return step_done(st, s, err, "write link");
}

long long state_person_new(struct state *st, long long run, struct df_err *err)
{
	if (write_stmt(st, S_PERSON_NEW, err, "new person", "i", run))
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

int state_person_dirty(struct state *st, long long person, bool dirty, struct df_err *err)
{
	return write_stmt(st, S_PERSON_DIRTY, err, "mark person", "ib", person, dirty);
}

int state_person_merged(struct state *st, long long person, long long run, struct df_err *err)
{
	return write_stmt(st, S_PERSON_MERGED, err, "mark person merged", "ii", person, run);
}

/* Collects the first column of every row of s (already bound but for the
 * limit parameter at index lim) into ids. */
static int collect_ids(struct state *st, sqlite3_stmt *s, int lim, long long *ids, int max,
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

int state_dirty_batch(struct state *st, long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DIRTY_BATCH, err);

	return s ? collect_ids(st, s, 1, ids, max, n, err) : -1;
}

int state_dirty_after(struct state *st, long long after, long long *ids, int max, int *n,
		      struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DIRTY_AFTER, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 2, after);
	return collect_ids(st, s, 1, ids, max, n, err);
}

int state_match(struct state *st, const char *field, const char *value,
		long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, strcmp(field, "phone") == 0 ? S_MATCH_PHONE : S_MATCH_EMAIL, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, value);
	/* The smallest max distinct ids, ascending: what "UNION ... LIMIT"
	 * gave, so a message naming candidates names the same ones. */
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(s, 0);
		int at = *n;

		while (at > 0 && ids[at - 1] > id)
			at--;
		if ((at > 0 && ids[at - 1] == id) || at == max)
			continue;
		if (*n < max)
			(*n)++;
		memmove(ids + at + 1, ids + at, (size_t)(*n - 1 - at) * sizeof(*ids));
		ids[at] = id;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "list");
	return 0;
}

int state_agreed_get(struct state *st, long long person, struct record *agreed, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_AGREED_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int f = field_find((const char *)sqlite3_column_text(s, 0));
		if (f >= 0)
			record_take(agreed, f, column_dup(s, 1));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "read agreed values");
	return 0;
}

int state_agreed_put(struct state *st, long long person, const char *field, const char *value,
		     const struct provenance *p, long long run, struct df_err *err)
{
	return write_stmt(st, S_AGREED_PUT, err, "write agreed value", "itttttit", person, field,
			  value, p->system, p->rule, p->reason, run, p->beaten);
}

int state_observed_add(struct state *st, long long run, const char *system,
		       const char *remote_id, long long person, const char *field,
		       const char *old_value, const char *new_value, struct df_err *err)
{
	return write_stmt(st, S_OBSERVED_ADD, err, "record observation", "ittittt", run, system,
			  remote_id, person, field, old_value, new_value);
}

int state_conflict_add(struct state *st, long long run, long long person, const char *field,
		       const char *base, const char *candidates, const char *winner,
		       const char *value, const char *rule, const char *reason,
		       struct df_err *err)
{
	return write_stmt(st, S_CONFLICT_ADD, err, "record conflict", "iittttttt", run, person,
			  field, base, candidates, winner, value, rule, reason);
}

int state_quarantine_add(struct state *st, long long run, const char *system,
			 const char *remote_id, const char *kind, const char *reason,
			 struct df_err *err)
{
	return write_stmt(st, S_QUARANTINE_ADD, err, "quarantine", "itttt", run, system, remote_id,
			  kind, reason);
}

int state_quarantine_known(struct state *st, long long run, const char *system,
			   const char *remote_id, const char *kind, const char *reason, bool *known,
			   struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_QUARANTINE_KNOWN, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	sqlite3_bind_int64(s, 3, run);
	bind_text(s, 4, kind);
	bind_text(s, 5, reason);
	rc = sqlite3_step(s);
	*known = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "read quarantine");
}

int state_pins_get(struct state *st, long long person, struct record *pins, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_PINS_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int f = field_find((const char *)sqlite3_column_text(s, 0));
		if (f >= 0)
			record_set(pins, f, (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, err, "read pins");
}

int state_pin_put(struct state *st, long long person, const char *field, const char *value,
		  const char *who, struct df_err *err)
{
	return write_stmt(st, S_PIN_PUT, err, "pin", "ittt", person, field, value, who);
}

int state_pin_drop(struct state *st, long long person, const char *field, bool *dropped,
		   struct df_err *err)
{
	if (write_stmt(st, S_PIN_DROP, err, "unpin", "it", person, field))
		return -1;
	*dropped = sqlite3_changes(st->db) > 0;
	return 0;
}

int state_undo_items(struct state *st, long long run, struct undo_item **items, int *n,
		     struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_UNDO_ITEMS, err);
	int rc, cap = 0;

	*items = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct undo_item *it;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*items = xrealloc(*items, (size_t)cap * sizeof(**items));
		}
		it = &(*items)[(*n)++];
		it->person = sqlite3_column_int64(s, 0);
		it->field = column_dup(s, 1);
		it->old_value = column_dup(s, 2);
		it->new_value = column_dup(s, 3);
		it->current = column_dup(s, 4);
		it->current_run = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		state_undo_items_free(*items, *n);
		*items = NULL;
		*n = 0;
		return db_fail(st, err, "read the writes of a run");
	}
	return 0;
}

void state_undo_items_free(struct undo_item *items, int n)
{
	for (int i = 0; i < n; i++) {
		free(items[i].field);
		free(items[i].old_value);
		free(items[i].new_value);
		free(items[i].current);
	}
	free(items);
}

int state_run_creates(struct state *st, long long run, long long *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_RUN_CREATES, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	rc = sqlite3_step(s);
	*n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "count creates");
}

int state_notice_add(struct state *st, long long run, long long person, const char *system,
		     const char *remote_id, const char *kind, const char *message,
		     struct df_err *err)
{
	return write_stmt(st, S_NOTICE_ADD, err, "record notice", "iitttt", run, person, system,
			  remote_id, kind, message);
}

/* Outbox */

int state_outbox_supersede(struct state *st, long long person, const char *system,
			   struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_SUPERSEDE, err, "supersede writes", "it", person, system);
}

long long state_outbox_add(struct state *st, long long run, long long person,
			   const char *system, const char *remote_id, const char *op,
			   struct df_err *err)
{
	if (write_stmt(st, S_OUTBOX_ADD, err, "journal write", "iittt", run, person, system, remote_id, op))
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

int state_outbox_field_add(struct state *st, long long outbox, const char *field,
			   const char *old_value, const char *new_value, const char *rule,
			   const char *reason, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_FIELD_ADD, err, "journal write field", "ittttt", outbox,
			  field, old_value, new_value, rule, reason);
}

/* Ids of rows due at now_ms after the id after (outbox or delivery). */
static int due_ids(struct state *st, enum stmt_id id, long long now_ms, long long after,
		   long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int64(s, 2, after);
	return collect_ids(st, s, 3, ids, max, n, err);
}

int state_outbox_due(struct state *st, long long now_ms, long long after, long long *ids,
		     int max, int *n, struct df_err *err)
{
	return due_ids(st, S_OUTBOX_DUE, now_ms, after, ids, max, n, err);
}

void outbox_item_clear(struct outbox_item *it)
{
	free(it->system);
	free(it->remote_id);
	free(it->op);
	for (int i = 0; i < it->nfields; i++) {
		free(it->f[i].name);
		free(it->f[i].old_value);
		free(it->f[i].new_value);
	}
	memset(it, 0, sizeof(*it));
}

int state_outbox_load(struct state *st, long long id, struct outbox_item *it, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_OUTBOX_GET, err);
	int rc;

	memset(it, 0, sizeof(*it));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_fail(st, err, "read journalled write");
	}
	it->id = id;
	it->person = sqlite3_column_int64(s, 0);
	it->system = column_dup(s, 1);
	it->remote_id = column_dup(s, 2);
	it->op = column_dup(s, 3);
	it->attempts = sqlite3_column_int(s, 4);
	sqlite3_reset(s);
	if ((s = stmt(st, S_OUTBOX_FIELDS, err)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && it->nfields < DF_MAX_FIELDS) {
		it->f[it->nfields].field = field_find((const char *)sqlite3_column_text(s, 0));
		it->f[it->nfields].name = column_dup(s, 0);
		it->f[it->nfields].old_value = column_dup(s, 1);
		it->f[it->nfields].new_value = column_dup(s, 2);
		it->nfields++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_fail(st, err, "read journalled fields");
	return 0;
}

int state_outbox_done(struct state *st, long long id, long long run, const char *remote_id,
		      struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_DONE, err, "mark write done", "iit", id, run, remote_id);
}

int state_outbox_failed(struct state *st, long long id, long long next_ms, bool final,
			const char *error, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_FAILED, err, "mark write failed", "iibt", id, next_ms,
			  final, error);
}

int state_outbox_set(struct state *st, long long id, const char *status, bool attempt,
		     long long next_ms, const char *error, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_SET, err, "record write attempt", "itbit", id, status, attempt,
			  next_ms, error);
}

int state_outbox_refused(struct state *st, long long id, const char *error, const char *config,
			 struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_REFUSED, err, "record refused write", "itt", id, error, config);
}

int state_delivery_refused(struct state *st, long long id, const char *error, const char *config,
			   struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_REFUSED, err, "record refused delivery", "itt", id, error, config);
}

int state_refused_reopen(struct state *st, const char *config, long long *n, struct df_err *err)
{
	*n = 0;
	if (write_stmt(st, S_REFUSED_REOPEN, err, "reopen refused writes", "t", config))
		return -1;
	*n = sqlite3_changes(st->db);
	if (write_stmt(st, S_DELIVERY_REOPEN, err, "reopen refused deliveries", "t", config))
		return -1;
	*n += sqlite3_changes(st->db);
	return 0;
}

int state_retry(struct state *st, const char *system, const char *remote_id, long long *writes,
		long long *deliveries, struct df_err *err)
{
	if (write_stmt(st, S_RETRY_WRITES, err, "retry writes", "tt", system, remote_id))
		return -1;
	*writes = sqlite3_changes(st->db);
	if (write_stmt(st, S_RETRY_DELIVERIES, err, "retry deliveries", "tt", system, remote_id))
		return -1;
	*deliveries = sqlite3_changes(st->db);
	return 0;
}

int state_outbox_count(struct state *st, const char *status, long long *n, struct df_err *err)
{
	return query_int(st, S_OUTBOX_COUNT, status, NULL, n, NULL, err);
}

int state_outbox_unrecorded(struct state *st, const char *system, const char *remote_id,
			    long long *id, bool *found, struct df_err *err)
{
	return query_int(st, S_OUTBOX_UNRECORDED, system, remote_id, id, found, err);
}

int state_delivery_count(struct state *st, const char *status, long long *n, struct df_err *err)
{
	return query_int(st, S_DELIVERY_COUNT, status, NULL, n, NULL, err);
}

int state_optout_get(struct state *st, const char *phone, const char *channel,
		     bool *opted_out, char **source, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_OPTOUT_GET, err);
	int rc;

	*opted_out = false;
	*source = NULL;
	if (s == NULL)
		return -1;
	bind_text(s, 1, phone);
	bind_text(s, 2, channel);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*opted_out = strcmp((const char *)sqlite3_column_text(s, 0), "opted-out") == 0;
		*source = column_dup(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read opt-out registry");
	return 0;
}

int state_optout_set(struct state *st, const char *phone, const char *channel, bool opted_out,
		     const char *source, const char *reason, long long run, struct df_err *err)
{
	return write_stmt(st, S_OPTOUT_SET, err, "write opt-out registry", "ttttti", phone,
			  channel, opted_out ? "opted-out" : "opted-in", source, reason, run);
}

int state_optout_log(struct state *st, long long run, const char *phone, const char *channel,
		     long long person, const char *action, const char *system, const char *reason,
		     struct df_err *err)
{
	return write_stmt(st, S_OPTOUT_LOG, err, "log opt-out", "ittittt", run, phone, channel,
			  person, action, system, reason);
}

int state_sweep_batch(struct state *st, const char *system, int max, long long before_ms,
		      char ***ids, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_SWEEP_BATCH, err);
	int rc;

	*ids = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int(s, 2, max);
	sqlite3_bind_int64(s, 3, before_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof(**ids));
		(*ids)[(*n)++] = column_dup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "choose records to sweep");
	return 0;
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
	sqlite3_stmt *s = stmt(st, S_MISSING_BATCH, err);
	int rc;

	*ids = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int(s, 2, max);
	sqlite3_bind_int64(s, 3, young_after_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof(**ids));
		(*ids)[(*n)++] = column_dup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "choose missing records to check");
	return 0;
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

int state_link_deleted(struct state *st, long long person, const char *system, bool *deleted,
		       struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_DELETED, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	bind_text(s, 2, system);
	rc = sqlite3_step(s);
	*deleted = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "read tombstone");
}

int state_list_members(struct state *st, long long person, char ***lists, int *n,
		       struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LIST_MEMBERS, err);
	int rc;

	*lists = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*lists = xrealloc(*lists, (size_t)(*n + 1) * sizeof(**lists));
		(*lists)[(*n)++] = column_dup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "read list membership");
	return 0;
}

int state_list_member_set(struct state *st, long long person, const char *list, bool member,
			  long long run, struct df_err *err)
{
	return write_stmt(st, S_LIST_SET, err, "write list membership", "itti", person, list,
			  member ? "member" : "removed", run);
}

int state_event_add(struct state *st, const char *kind, const char *source,
		    const char *source_id, const char *source_contact, const char *phone,
		    const char *payload, long long occurred_ms, long long run, long long *id,
		    struct df_err *err)
{
	*id = 0;
	if (write_stmt(st, S_EVENT_ADD, err, "store event", "ttttttii", kind, source, source_id,
		       source_contact, phone, payload, occurred_ms, run))
		return -1;
	/* Known already: the insert did nothing. */
	if (sqlite3_changes(st->db) > 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int state_delivery_add(struct state *st, long long event, const char *target, long long run,
		       struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_ADD, err, "journal delivery", "iti", event, target, run);
}

int state_delivery_due(struct state *st, long long now_ms, long long after, long long *ids,
		       int max, int *n, struct df_err *err)
{
	return due_ids(st, S_DELIVERY_DUE, now_ms, after, ids, max, n, err);
}

void delivery_item_clear(struct delivery_item *it)
{
	free(it->target);
	free(it->status);
	free(it->ev.kind);
	free(it->ev.source);
	free(it->ev.source_id);
	free(it->ev.source_contact);
	free(it->ev.phone);
	free(it->ev.payload);
	memset(it, 0, sizeof(*it));
}

int state_delivery_load(struct state *st, long long id, struct delivery_item *it,
			struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DELIVERY_GET, err);

	memset(it, 0, sizeof(*it));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_fail(st, err, "read delivery");
	}
	it->id = id;
	it->target = column_dup(s, 0);
	it->status = column_dup(s, 1);
	it->attempts = sqlite3_column_int(s, 2);
	it->ev.id = sqlite3_column_int64(s, 3);
	it->ev.person = sqlite3_column_int64(s, 4);
	it->ev.kind = column_dup(s, 5);
	it->ev.source = column_dup(s, 6);
	it->ev.source_id = column_dup(s, 7);
	it->ev.source_contact = column_dup(s, 8);
	it->ev.phone = column_dup(s, 9);
	it->ev.payload = column_dup(s, 10);
	it->ev.occurred_ms = sqlite3_column_int64(s, 11);
	sqlite3_reset(s);
	return 0;
}

int state_event_person(struct state *st, long long event, long long person, struct df_err *err)
{
	return write_stmt(st, S_EVENT_PERSON, err, "link event", "ii", event, person);
}

int state_delivery_set(struct state *st, long long id, const char *status, bool attempt,
		       long long next_ms, const char *remote_id, const char *error, long long run,
		       struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_SET, err, "record delivery", "itbitti", id, status,
			  attempt, next_ms, remote_id, error, run);
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

/* Held records and admin actions */

int state_hold_put(struct state *st, const char *system, const char *remote_id, const char *kind,
		   const char *reason, long long run, struct df_err *err)
{
	return write_stmt(st, S_HOLD_PUT, err, "hold record", "tttti", system, remote_id, kind, reason, run);
}

/* One text column of the first row of id bound with up to three texts. */
static int query_text(struct state *st, enum stmt_id id, const char *a, const char *b, const char *c,
		      char **out, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	int rc;

	*out = NULL;
	if (s == NULL)
		return -1;
	bind_text(s, 1, a);
	bind_text(s, 2, b);
	if (c)
		bind_text(s, 3, c);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = column_dup(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "query");
	return 0;
}

int state_hold_get(struct state *st, const char *system, const char *remote_id, char **kind,
		   struct df_err *err)
{
	return query_text(st, S_HOLD_GET, system, remote_id, NULL, kind, err);
}

int state_hold_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err)
{
	return write_stmt(st, S_HOLD_DROP, err, "release held record", "tt", system, remote_id);
}

int state_held_other(struct state *st, const char *field, const char *value, const char *system,
		     const char *remote_id, char **first, struct df_err *err)
{
	return query_text(st, strcmp(field, "phone") == 0 ? S_HELD_PHONE : S_HELD_EMAIL, value, system,
			  remote_id ? remote_id : "", first, err);
}

int state_link_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err)
{
	return write_stmt(st, S_LINK_DROP, err, "drop link", "tt", system, remote_id);
}

int state_snapshot_unmerge(struct state *st, const char *system, const char *remote_id,
			   struct df_err *err)
{
	return write_stmt(st, S_SNAP_UNMERGE, err, "forget merged copy", "tt", system, remote_id);
}

int state_person_exists(struct state *st, long long person, bool *exists, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_PERSON_EXISTS, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	rc = sqlite3_step(s);
	*exists = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return db_fail(st, err, "read person");
	return 0;
}

int state_admin_log(struct state *st, const char *action, const char *who, const char *system,
		    const char *remote_id, long long person_before, long long person_after,
		    const char *before, const char *after, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_ADMIN_LOG, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, action);
	bind_text(s, 2, who);
	bind_text(s, 3, system);
	bind_text(s, 4, remote_id);
	if (person_before > 0)
		sqlite3_bind_int64(s, 5, person_before);
	if (person_after > 0)
		sqlite3_bind_int64(s, 6, person_after);
	bind_text(s, 7, before);
	bind_text(s, 8, after);
	return step_done(st, s, err, "journal admin action");
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
