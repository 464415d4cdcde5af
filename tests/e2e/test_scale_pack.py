"""Issue 9: fewer statements per contact and a smaller state file.

A write's fields are packed in its outbox row (outbox.fields, a JSON array
of [field, old_value, new_value, rule, reason] in the order planned), and
a person's agreed values in one row (agreed.fields, field -> [value,
system, rule id, reason id, run_id, beaten], rule and reason texts named
once in wording): one statement per write and per person merged instead
of one per field. outbox_field and field_value stay as views with the
same columns, so auditors, reports and explain read what they read
before; a state file of the previous schema is converted in place (same
rows, same report and explain output, no write sent).
"""
import json
import sqlite3

from conftest import ANN, ANN_AS_TYPED
from test_reports_summary import demo_env
import demo  # noqa: E402  (tests/demo.py, on the path test_reports_summary sets)

# The previous schema's write fields (one row per field, WITHOUT ROWID, in
# the order planned by seq): this migration undone, for a file made by
# this binary (user_version is set back by the test).
UNPACK = """
CREATE TABLE outbox_field_10 (
  outbox_id INTEGER NOT NULL REFERENCES outbox(id), field TEXT NOT NULL,
  old_value TEXT, new_value TEXT, rule TEXT, reason TEXT, seq INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (outbox_id, field)) WITHOUT ROWID;
INSERT INTO outbox_field_10 SELECT outbox_id, field, old_value, new_value, rule, reason,
  outbox_id * 100 + seq FROM outbox_field;
DROP VIEW outbox_field;
ALTER TABLE outbox_field_10 RENAME TO outbox_field;
ALTER TABLE outbox DROP COLUMN fields;
CREATE TABLE field_value_10 (
  person_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
  system TEXT, rule TEXT NOT NULL, reason TEXT NOT NULL,
  run_id INTEGER NOT NULL, beaten TEXT,
  PRIMARY KEY (person_id, field)) WITHOUT ROWID;
INSERT INTO field_value_10 SELECT * FROM field_value;
DROP VIEW field_value;
DROP TABLE agreed;
DROP TABLE wording;
ALTER TABLE field_value_10 RENAME TO field_value;
CREATE INDEX field_value_phone ON field_value(value) WHERE field = 'phone';
CREATE INDEX field_value_email ON field_value(value) WHERE field = 'email';
"""

KEPT = {
    "outbox": "SELECT id, run_id, person_id, system, remote_id, op, status, attempts, next_attempt_ms, "
              "last_error, done_run, config FROM outbox ORDER BY id",
    "outbox_field": "SELECT outbox_id, field, old_value, new_value, rule, reason FROM outbox_field "
                    "ORDER BY outbox_id, seq",
    "field_value": "SELECT person_id, field, value, system, rule, reason, run_id, beaten, typeof(run_id) "
                   "FROM field_value ORDER BY person_id, field",
}


def test_a_write_and_its_fields_are_one_row(env):
    # Setup: Ann in GHL only.
    env.seed("ghl", **ANN_AS_TYPED)

    # Action: the first run links her and creates her in Aloware and Verity.
    env.converge()

    # Expected: each create is one outbox row carrying its fields in the
    # order planned, the view reads them as rows, and the report lists them.
    rows = env.query("SELECT system, op, fields FROM outbox ORDER BY system")
    assert [(s, op) for s, op, _ in rows] == [("aloware", "create"), ("verity", "create")]
    for system, _, fields in rows:
        packed = json.loads(fields)
        names = [f[0] for f in packed]
        assert names[:4] == ["first_name", "last_name", "phone", "email"], (system, names)
        assert all(f[1] is None for f in packed), packed      # a create replaces nothing
        assert dict((f[0], f[2]) for f in packed)["email"] == ANN["email"]
        assert all(len(f) == 4 for f in packed), packed       # no reason: left out
    view = env.query("SELECT o.system, f.seq, f.field, f.new_value, f.rule FROM outbox o "
                     "JOIN outbox_field f ON f.outbox_id = o.id WHERE f.field = 'phone' ORDER BY o.system")
    assert [(s, v, r) for s, _, _, v, r in view] == [("aloware", ANN["phone"], "prefer-valid"),
                                                      ("verity", ANN["phone"], "prefer-valid")]
    written = env.report_json("--run", "1")["writes"]
    assert sorted((w["system"], f["field"], f["new_value"]) for w in written for f in w["fields"]
                  if f["field"] == "phone") == [("aloware", "phone", ANN["phone"]),
                                                ("verity", "phone", ANN["phone"])]


def outputs(env, keys):
    out = {}
    for key in keys:
        code, text, err = env.run("explain", "--format", "json", key)
        assert code == 0, err
        out["explain " + key] = text
        code, text, err = env.run("explain", key)
        assert code == 0, err
        out["explain text " + key] = text
    for args in (("--format", "text"), ("--format", "json"), ("--format", "html"),
                 ("--format", "csv", "--section", "writes")):
        code, text, err = env.run("report", "--run", "1..3", *args)
        assert code in (0, 1), err
        out["report " + " ".join(args)] = text
    return out


def test_a_schema_10_state_is_packed_in_place(env):
    # Setup: the demo's runs, then the file turned back to the previous
    # schema (a write's fields one row each).
    demo_env(env)
    code, _, err = env.run("run", "--full")
    assert code in (0, 1), err
    demo.edit(env.sim)
    for _ in range(2):
        code, _, err = env.run("run")
        assert code in (0, 1), err
    keys = [v for (v,) in env.query("SELECT value FROM field_value WHERE field IN ('phone', 'email') "
                                    "AND value <> '' ORDER BY person_id, field LIMIT 30")]
    assert len(keys) >= 20
    shown = outputs(env, keys)
    (current,), = env.query("PRAGMA user_version")
    db = sqlite3.connect(env.state_path)
    db.executescript(UNPACK + f"PRAGMA user_version = {current - 1};")
    db.close()
    assert env.query("SELECT count(*) FROM outbox_field")[0][0] > 100
    before = {name: env.query(sql) for name, sql in KEPT.items()}

    # Action: this binary migrates it (a dry run migrates and rolls its
    # own work back).
    code, _, err = env.run("run", "--dry-run")
    assert code in (0, 1), err

    # Expected: packed in place, every field kept in order, reports and
    # explain byte for byte as before, and a run sends no write.
    assert env.query("PRAGMA user_version")[0][0] == current
    assert env.query("SELECT name, type FROM sqlite_master WHERE name IN ('outbox_field', 'field_value') "
                     "ORDER BY name") == [("field_value", "view"), ("outbox_field", "view")]
    assert env.query("SELECT count(*) FROM agreed")[0][0] == env.query("SELECT count(*) FROM person")[0][0]
    assert {name: env.query(sql) for name, sql in KEPT.items()} == before
    assert outputs(env, keys) == shown
    for args in (("run",), ("run", "--full")):
        env.reset_requests()
        code, _, err = env.run(*args)
        assert code in (0, 1), err
        assert env.write_requests() == {}, args
