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
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#endif
