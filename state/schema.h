/*
 * schema.h - the numbered migrations of the state file.
 *
 * Migration N brings a file from schema version N-1 to N. A migration is
 * never edited once released: a change is a new migration at the end.
 * Tables and columns are named for auditors who open the file with
 * sqlite3(1); man/dfreconcile.1 (STATE FILE) documents each of them.
 */
#ifndef DF_SCHEMA_H
#define DF_SCHEMA_H

static const char *const migrations[] = {
	/* 1: the core of the journal. */
	"CREATE TABLE run ("
	"  id INTEGER PRIMARY KEY,"
	"  started_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  mode TEXT NOT NULL,"
	"  status TEXT NOT NULL,"
	"  exit_code INTEGER,"
	"  message TEXT);"
	"CREATE TABLE run_system ("
	"  run_id INTEGER NOT NULL, system TEXT NOT NULL,"
	"  polled INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0,"
	"  quarantined INTEGER NOT NULL DEFAULT 0, writes_done INTEGER NOT NULL DEFAULT 0,"
	"  writes_failed INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (run_id, system));"
	"CREATE TABLE cursor ("
	"  system TEXT NOT NULL, stream TEXT NOT NULL,"
	"  position_ms INTEGER NOT NULL, run_id INTEGER NOT NULL,"
	"  PRIMARY KEY (system, stream));"
	"CREATE TABLE person ("
	"  id INTEGER PRIMARY KEY,"
	"  created_run INTEGER NOT NULL,"
	"  dirty INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX person_dirty ON person(id) WHERE dirty = 1;"
	"CREATE TABLE link ("
	"  system TEXT NOT NULL, remote_id TEXT NOT NULL,"
	"  person_id INTEGER NOT NULL REFERENCES person(id),"
	"  how TEXT NOT NULL, run_id INTEGER NOT NULL,"
	"  PRIMARY KEY (system, remote_id),"
	"  UNIQUE (person_id, system));"
	"CREATE TABLE snapshot ("
	"  system TEXT NOT NULL, remote_id TEXT NOT NULL,"
	"  fields TEXT NOT NULL,"
	"  phone TEXT, email TEXT,"
	"  remote_updated_ms INTEGER,"
	"  seen_run INTEGER NOT NULL,"
	"  PRIMARY KEY (system, remote_id));"
	"CREATE INDEX snapshot_phone ON snapshot(phone) WHERE phone <> '';"
	"CREATE INDEX snapshot_email ON snapshot(email) WHERE email <> '';"
	"CREATE TABLE field_value ("
	"  person_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
	"  system TEXT, rule TEXT NOT NULL, reason TEXT NOT NULL,"
	"  run_id INTEGER NOT NULL, beaten TEXT,"
	"  PRIMARY KEY (person_id, field));"
	"CREATE INDEX field_value_match ON field_value(field, value);"
	"CREATE TABLE observed ("
	"  run_id INTEGER NOT NULL, system TEXT NOT NULL, remote_id TEXT NOT NULL,"
	"  person_id INTEGER NOT NULL, field TEXT NOT NULL,"
	"  old_value TEXT, new_value TEXT);"
	"CREATE INDEX observed_run ON observed(run_id);"
	"CREATE TABLE conflict ("
	"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, person_id INTEGER NOT NULL,"
	"  field TEXT NOT NULL, base TEXT, candidates TEXT NOT NULL,"
	"  winner TEXT, value TEXT, rule TEXT NOT NULL, reason TEXT NOT NULL);"
	"CREATE INDEX conflict_run ON conflict(run_id);"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, person_id INTEGER NOT NULL,"
	"  system TEXT NOT NULL, remote_id TEXT, op TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT, done_run INTEGER);"
	"CREATE INDEX outbox_pending ON outbox(status, next_attempt_ms);"
	"CREATE INDEX outbox_person ON outbox(person_id, system);"
	"CREATE TABLE outbox_field ("
	"  outbox_id INTEGER NOT NULL REFERENCES outbox(id), field TEXT NOT NULL,"
	"  old_value TEXT, new_value TEXT, rule TEXT, reason TEXT,"
	"  PRIMARY KEY (outbox_id, field));"
	"CREATE TABLE quarantine ("
	"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, system TEXT NOT NULL,"
	"  remote_id TEXT, kind TEXT NOT NULL, reason TEXT NOT NULL);"
	"CREATE INDEX quarantine_run ON quarantine(run_id);",

	/* 2: what a run could not do (a field a system cannot write, a record
	 * a system cannot hold), so that nothing is skipped silently. */
	"CREATE TABLE notice ("
	"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, person_id INTEGER,"
	"  system TEXT NOT NULL, remote_id TEXT, kind TEXT NOT NULL, message TEXT NOT NULL);"
	"CREATE INDEX notice_run ON notice(run_id);",

	/* 3: the flows beyond contacts: the opt-out registry (I4) and its
	 * history, calls and messages with their deliveries, call-list
	 * membership, the sweep's progress. */
	"CREATE TABLE optout ("
	"  phone TEXT NOT NULL, channel TEXT NOT NULL,"
	"  status TEXT NOT NULL, source TEXT NOT NULL, reason TEXT,"
	"  run_id INTEGER NOT NULL, changed_at TEXT NOT NULL,"
	"  PRIMARY KEY (phone, channel));"
	"CREATE TABLE optout_log ("
	"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, phone TEXT, channel TEXT NOT NULL,"
	"  person_id INTEGER, action TEXT NOT NULL, system TEXT, reason TEXT);"
	"CREATE INDEX optout_log_run ON optout_log(run_id);"
	"CREATE TABLE event ("
	"  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL,"
	"  source_id TEXT NOT NULL, source_contact TEXT, phone TEXT,"
	"  person_id INTEGER, payload TEXT NOT NULL, occurred_ms INTEGER,"
	"  run_id INTEGER NOT NULL,"
	"  UNIQUE (source, source_id));"
	"CREATE TABLE delivery ("
	"  id INTEGER PRIMARY KEY,"
	"  event_id INTEGER NOT NULL REFERENCES event(id), target TEXT NOT NULL,"
	"  status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_ms INTEGER NOT NULL DEFAULT 0, remote_id TEXT, last_error TEXT,"
	"  run_id INTEGER NOT NULL, done_run INTEGER,"
	"  UNIQUE (event_id, target));"
	"CREATE INDEX delivery_open ON delivery(status) WHERE status IN ('waiting', 'pending');"
	"CREATE TABLE list_member ("
	"  person_id INTEGER NOT NULL, list_id TEXT NOT NULL,"
	"  status TEXT NOT NULL, run_id INTEGER NOT NULL,"
	"  PRIMARY KEY (person_id, list_id));"
	"ALTER TABLE snapshot ADD COLUMN swept_ms INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX snapshot_sweep ON snapshot(system, swept_ms);"
	"ALTER TABLE run_system ADD COLUMN swept INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE run_system ADD COLUMN unlinked INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE run_system ADD COLUMN sweep_cycle INTEGER NOT NULL DEFAULT 0;"
	/* What each record held when its person was last merged: the merge
	 * compares with it to tell a system's own edits (engine/merge.h). */
	"ALTER TABLE snapshot ADD COLUMN merged TEXT;"
	"UPDATE snapshot SET merged = fields;"
	/* Deletes: a record found gone is marked (gone_run) until the safety
	 * valve has counted them; its link then stays as a tombstone
	 * (deleted_run) so the person is not re-created where it was deleted. */
	"ALTER TABLE snapshot ADD COLUMN gone_run INTEGER;"
	"ALTER TABLE link ADD COLUMN deleted_run INTEGER;",

	/* 4: failure classes (I11). A write or delivery may now be 'unknown'
	 * (sent, no answer: the next attempt looks first) or 'refused' (the
	 * system's answer is in last_error); a refused row keeps the
	 * fingerprint of the configuration it was refused under (config), so
	 * a changed configuration makes it due again. */
	"ALTER TABLE outbox ADD COLUMN config TEXT;"
	"ALTER TABLE delivery ADD COLUMN config TEXT;"
	"DROP INDEX delivery_open;"
	"CREATE INDEX delivery_open ON delivery(status) WHERE status IN ('waiting', 'pending', 'unknown');",
	/* 5: records held out of linking - a phone or email that two or more
	 * records or persons share (kind ambiguous), or a record an admin
	 * unlinked (kind unlinked) - until an admin links them; their
	 * snapshot is kept (unlinked) so the link can be merged without a new
	 * read. The journal of admin actions (link, unlink). */
	"CREATE TABLE hold ("
	"  system TEXT NOT NULL, remote_id TEXT NOT NULL,"
	"  kind TEXT NOT NULL, reason TEXT NOT NULL,"
	"  run_id INTEGER NOT NULL, since TEXT NOT NULL,"
	"  PRIMARY KEY (system, remote_id));"
	"CREATE TABLE admin_action ("
	"  id INTEGER PRIMARY KEY, at TEXT NOT NULL, action TEXT NOT NULL, who TEXT NOT NULL,"
	"  system TEXT NOT NULL, remote_id TEXT NOT NULL,"
	"  person_before INTEGER, person_after INTEGER, before TEXT, after TEXT);",
	/* 6: absence is not deletion (I10): when a record was first seen, and
	 * the full-listing run that did not list it (a candidate that its own
	 * endpoint confirms or clears). The safety valve counts what each
	 * source changed since a person was last merged (I6). Existing
	 * snapshots count as old; existing persons as merged before any run. */
	"ALTER TABLE snapshot ADD COLUMN first_seen_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE snapshot ADD COLUMN missing_run INTEGER;"
	"ALTER TABLE person ADD COLUMN merged_run INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX observed_person ON observed(person_id, run_id);",
	/* 7: every lookup a record, a due write or a report makes is an index
	 * search, never a scan of a table that grows with the contacts (issue
	 * 9; tests/unit/test_plans.c checks every statement's plan). The
	 * matching keys are indexed whole: a partial index (phone <> '') is
	 * never used for "phone = ?", so each record scanned every snapshot.
	 * Open writes and deliveries are indexed by status then id, so the
	 * due readers walk them in id order without sorting them all. */
	"DROP INDEX snapshot_phone;"
	"DROP INDEX snapshot_email;"
	"CREATE INDEX snapshot_phone ON snapshot(phone);"
	"CREATE INDEX snapshot_email ON snapshot(email);"
	"CREATE INDEX snapshot_gone ON snapshot(gone_run) WHERE gone_run IS NOT NULL;"
	"DROP INDEX outbox_pending;"
	"CREATE INDEX outbox_status ON outbox(status);"
	"CREATE INDEX outbox_run ON outbox(run_id);"
	"CREATE INDEX outbox_done ON outbox(done_run) WHERE done_run IS NOT NULL;"
	"DROP INDEX delivery_open;"
	"CREATE INDEX delivery_status ON delivery(status);"
	"CREATE INDEX delivery_done ON delivery(done_run) WHERE done_run IS NOT NULL;"
	"CREATE INDEX event_person ON event(person_id);"
	"CREATE INDEX conflict_person ON conflict(person_id);"
	/* A record's writes: our own unrecorded update coming back (observe). */
	"CREATE INDEX outbox_record ON outbox(system, remote_id);"
	/* The records per system, kept by triggers: the sweep and the safety
	 * valves ask every run, and counting the snapshots grows with them. */
	"CREATE TABLE snapshot_count ("
	"  system TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO snapshot_count (system, n) SELECT system, count(*) FROM snapshot GROUP BY system;"
	"CREATE TRIGGER snapshot_counted AFTER INSERT ON snapshot BEGIN"
	"  INSERT INTO snapshot_count (system, n) VALUES (new.system, 1)"
	"  ON CONFLICT (system) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER snapshot_uncounted AFTER DELETE ON snapshot BEGIN"
	"  UPDATE snapshot_count SET n = n - 1 WHERE system = old.system; END;",
	/* 8: values an admin pinned (`dfreconcile pin`): the merge takes a
	 * pinned value as agreed and writes it to every system until unpinned.
	 * Journalled in admin_action like link and unlink. A record's
	 * quarantines are found by the record (is it known, exit status). */
	"CREATE TABLE pin ("
	"  person_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
	"  at TEXT NOT NULL, who TEXT NOT NULL,"
	"  PRIMARY KEY (person_id, field));"
	"CREATE INDEX quarantine_record ON quarantine(system, remote_id);",
	/* 9: an idle run asks each system for its gone and missing records;
	 * these partial indexes hold only those rows, so the question no
	 * longer walks every snapshot of the system. And a record listed
	 * again unchanged is known by its digest. */
	"DROP INDEX snapshot_gone;"
	"CREATE INDEX snapshot_gone ON snapshot(system, remote_id) WHERE gone_run IS NOT NULL;"
	"CREATE INDEX snapshot_missing ON snapshot(system, missing_run, remote_id) "
	"WHERE missing_run IS NOT NULL;"
	/* A digest of a linked record as a run last took it in from a listing
	 * (its values as read, its update time, what the configuration makes
	 * of them): a record listed again with the same digest is unchanged,
	 * compared before it is normalised (engine/observe.c). NULL: unknown,
	 * as after a write stored the system's answer. */
	"ALTER TABLE snapshot ADD COLUMN listed_digest BLOB;",
	/* 10: a smaller file (issue 9: <= 2 kB per contact). A record's merged
	 * copy is most often its fields: it is then 'same' rather than a
	 * second copy of the JSON (NULL still means never merged). The agreed
	 * values and a write's fields are kept in their primary key's b-tree
	 * (WITHOUT ROWID), so no second index repeats every key; only phone
	 * and e-mail values are indexed for linking, not every field's value.
	 * (link stays a rowid table: its tombstone lookup, by person or by
	 * record, is an OR that SQLite answers from two indexes only on a
	 * rowid table.)
	 * A record's first sight is no longer journalled in observed (its
	 * fields are its snapshot and its link's run); existing rows stay. */
	"UPDATE snapshot SET merged = 'same' WHERE merged = fields;"
	"CREATE TABLE field_value_9 ("
	"  person_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
	"  system TEXT, rule TEXT NOT NULL, reason TEXT NOT NULL,"
	"  run_id INTEGER NOT NULL, beaten TEXT,"
	"  PRIMARY KEY (person_id, field)) WITHOUT ROWID;"
	"INSERT INTO field_value_9 SELECT person_id, field, value, system, rule, reason, run_id, beaten "
	"  FROM field_value;"
	"DROP TABLE field_value;"
	"ALTER TABLE field_value_9 RENAME TO field_value;"
	"CREATE INDEX field_value_phone ON field_value(value) WHERE field = 'phone';"
	"CREATE INDEX field_value_email ON field_value(value) WHERE field = 'email';"
	/* A write's fields, kept in their key's b-tree, with their order as
	 * planned (seq: a migrated row's former rowid, the same order). */
	"CREATE TABLE outbox_field_9 ("
	"  outbox_id INTEGER NOT NULL REFERENCES outbox(id), field TEXT NOT NULL,"
	"  old_value TEXT, new_value TEXT, rule TEXT, reason TEXT, seq INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (outbox_id, field)) WITHOUT ROWID;"
	"INSERT INTO outbox_field_9 SELECT outbox_id, field, old_value, new_value, rule, reason, rowid "
	"  FROM outbox_field;"
	"DROP TABLE outbox_field;"
	"ALTER TABLE outbox_field_9 RENAME TO outbox_field;",
	/* 11 (issue 9: fewer statements per contact, a smaller file). What
	 * was a row per field is one row: a person's agreed values (agreed)
	 * and a write's fields (a column of its outbox row), each written by
	 * one statement. The rule and
	 * reason texts they name, a dozen repeated by every value, are
	 * named by their id in wording. field_value and outbox_field stay,
	 * as views of the same columns, so auditors, reports and explain
	 * read them as before; a trigger on each keeps an auditor's update
	 * of a value and insert of a write field working. */
	"CREATE TABLE wording (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);"
	"INSERT INTO wording (text) SELECT rule FROM field_value UNION SELECT reason FROM field_value "
	"  UNION SELECT rule FROM outbox_field WHERE rule IS NOT NULL "
	"  UNION SELECT reason FROM outbox_field WHERE reason IS NOT NULL;"
	/* A write's fields: outbox.fields, a JSON array of [field,
	 * old_value, new_value, rule, reason] in the order planned (seq),
	 * trailing nulls left out by the runs that write it. */
	"ALTER TABLE outbox ADD COLUMN fields TEXT;"
	"UPDATE outbox SET fields = (SELECT json_group_array(json(a)) FROM "
	"  (SELECT json_array(f.field, f.old_value, f.new_value, "
	"   (SELECT id FROM wording WHERE text = f.rule), (SELECT id FROM wording WHERE text = f.reason)) AS a "
	"   FROM outbox_field f WHERE f.outbox_id = outbox.id ORDER BY f.seq)) "
	"  WHERE id IN (SELECT outbox_id FROM outbox_field);"
	"DROP TABLE outbox_field;"
	"CREATE VIEW outbox_field (outbox_id, field, old_value, new_value, rule, reason, seq) AS "
	"  SELECT o.id, j.value ->> 0, j.value ->> 1, j.value ->> 2, "
	"  (SELECT text FROM wording WHERE id = j.value ->> 3), (SELECT text FROM wording WHERE id = j.value ->> 4), "
	"  j.key + 1 FROM outbox o, json_each(o.fields) j;"
	"CREATE TRIGGER outbox_field_add INSTEAD OF INSERT ON outbox_field BEGIN"
	"  INSERT OR IGNORE INTO wording (text) SELECT new.rule WHERE new.rule IS NOT NULL"
	"  UNION SELECT new.reason WHERE new.reason IS NOT NULL;"
	"  UPDATE outbox SET fields = json_insert(coalesce(fields, '[]'), '$[#]', "
	"  json_array(new.field, new.old_value, new.new_value, (SELECT id FROM wording WHERE text = new.rule), "
	"  (SELECT id FROM wording WHERE text = new.reason))) WHERE id = new.outbox_id; END;"
	/* A person's agreed values: agreed.fields, a JSON object field ->
	 * [value, system, rule, reason, run_id, beaten] (beaten as its JSON
	 * text), with the agreed phone and e-mail beside, indexed for
	 * matching. */
	"CREATE TABLE agreed ("
	"  person_id INTEGER PRIMARY KEY, fields TEXT NOT NULL, phone TEXT, email TEXT);"
	"INSERT INTO agreed (person_id, fields, phone, email) "
	"  SELECT person_id, json_group_object(field, json(a)), max(CASE WHEN field = 'phone' THEN value END), "
	"  max(CASE WHEN field = 'email' THEN value END) FROM "
	"  (SELECT f.person_id, f.field, f.value, json_array(f.value, f.system, r.id, w.id, f.run_id, f.beaten) AS a "
	"   FROM field_value f JOIN wording r ON r.text = f.rule JOIN wording w ON w.text = f.reason "
	"   ORDER BY f.person_id, f.field) GROUP BY person_id;"
	"DROP TABLE field_value;"
	"CREATE INDEX agreed_phone ON agreed(phone);"
	"CREATE INDEX agreed_email ON agreed(email);"
	"CREATE VIEW field_value (person_id, field, value, system, rule, reason, run_id, beaten) AS "
	"  SELECT a.person_id, j.key, j.value ->> 0, j.value ->> 1, "
	"  (SELECT text FROM wording WHERE id = j.value ->> 2), (SELECT text FROM wording WHERE id = j.value ->> 3), "
	"  j.value ->> 4, j.value ->> 5 FROM agreed a, json_each(a.fields) j;"
	"CREATE TRIGGER field_value_set INSTEAD OF UPDATE OF value ON field_value BEGIN"
	"  UPDATE agreed SET fields = json_set(fields, '$.' || json_quote(old.field) || '[0]', new.value),"
	"  phone = CASE WHEN old.field = 'phone' THEN new.value ELSE phone END,"
	"  email = CASE WHEN old.field = 'email' THEN new.value ELSE email END"
	"  WHERE person_id = old.person_id; END;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#endif
