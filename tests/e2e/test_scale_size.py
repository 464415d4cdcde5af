"""Issue 9: the state file <= 2 kB per contact (schema version 10).

A record's first sight is not journalled as observed changes (its values
are the snapshot, its link says when), and a state file written before
the migration that makes the file smaller is converted in place: a run
after it sends no write and explain answers as before.

The older file is made by an older binary when DFRECONCILE_OLD_BIN names
one (a dfreconcile from before that migration); otherwise this binary's
file is turned back into the previous version's shape (the inverse of
that migration) before it is migrated.
"""
import os
import sqlite3
import subprocess

from conftest import ANN, ANN_AS_TYPED
from test_reports_summary import demo_env
import demo  # noqa: E402  (tests/demo.py, on the path test_reports_summary sets)
from test_scale_pack import UNPACK

OLD_BIN = os.environ.get("DFRECONCILE_OLD_BIN")

# The previous version's agreed values and write fields (rowid tables
# keyed by an index) and its merged copies (a second copy of the JSON):
# the migration undone (user_version is set back by the test).
TO_PREVIOUS = """
UPDATE snapshot SET merged = fields WHERE merged = 'same';
CREATE TABLE field_value_8 (
  person_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
  system TEXT, rule TEXT NOT NULL, reason TEXT NOT NULL,
  run_id INTEGER NOT NULL, beaten TEXT,
  PRIMARY KEY (person_id, field));
INSERT INTO field_value_8 SELECT * FROM field_value;
DROP TABLE field_value;
ALTER TABLE field_value_8 RENAME TO field_value;
CREATE INDEX field_value_match ON field_value(field, value);
CREATE TABLE outbox_field_8 (
  outbox_id INTEGER NOT NULL REFERENCES outbox(id), field TEXT NOT NULL,
  old_value TEXT, new_value TEXT, rule TEXT, reason TEXT,
  PRIMARY KEY (outbox_id, field));
INSERT INTO outbox_field_8 SELECT outbox_id, field, old_value, new_value, rule, reason
  FROM outbox_field ORDER BY outbox_id, seq;
DROP TABLE outbox_field;
ALTER TABLE outbox_field_8 RENAME TO outbox_field;
"""

# What the migration must keep row for row (merged compared as read back).
KEPT = {
    "snapshot": "SELECT system, remote_id, fields, phone, email, remote_updated_ms, seen_run, swept_ms, "
                "gone_run, missing_run, first_seen_ms FROM snapshot ORDER BY system, remote_id",
    "merged": "SELECT system, remote_id, CASE WHEN merged = 'same' THEN fields ELSE merged END "
              "FROM snapshot ORDER BY system, remote_id",
    "field_value": "SELECT * FROM field_value ORDER BY person_id, field",
    "link": "SELECT system, remote_id, person_id, how, run_id, deleted_run FROM link ORDER BY system, remote_id",
    "person": "SELECT * FROM person ORDER BY id",
    "outbox": "SELECT id, run_id, person_id, system, remote_id, op, status, attempts, next_attempt_ms, "
              "last_error, done_run, config FROM outbox ORDER BY id",
    "outbox_field": "SELECT outbox_id, field, old_value, new_value, rule, reason FROM outbox_field "
                    "ORDER BY outbox_id, field",
    "observed": "SELECT * FROM observed ORDER BY rowid",
}
COMPACT = "('field_value_match', 'sqlite_autoindex_field_value_1', 'sqlite_autoindex_outbox_field_1')"


def old_run(env, *args):
    proc = subprocess.run([OLD_BIN, "-c", str(env.config_path), *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def run_with(env, old, *args):
    return old_run(env, *args) if old else env.run(*args)


def rows(env):
    out = {name: env.query(sql) for name, sql in KEPT.items()}
    # Each write's fields in the order planned: rowid before, seq after.
    columns = [c[1] for c in env.query("PRAGMA table_info(outbox_field)")]
    order = "seq" if "seq" in columns else "rowid"
    out["field_order"] = env.query(f"SELECT outbox_id, field FROM outbox_field ORDER BY outbox_id, {order}")
    return out


def explain_all(env, old, keys):
    out = {}
    for key in keys:
        code, text, err = run_with(env, old, "explain", "--format", "json", key)
        assert code == 0, err
        out[key] = text
    return out


def test_first_sight_is_not_an_observed_change(env):
    # Setup: Ann in GHL only.
    env.seed("ghl", **ANN_AS_TYPED)

    # Action: the first run links her and creates her elsewhere.
    env.converge()

    # Expected: no observed rows (first sight); her values are the
    # snapshot, and the link says in which run she was first seen.
    assert env.query("SELECT count(*) FROM observed") == [(0,)]
    ghl_id = env.only("ghl")["id"]
    assert env.query("SELECT how, run_id FROM link WHERE system = 'ghl' AND remote_id = ?", (ghl_id,)) == \
        [("new", 1)]
    assert env.report_json("--run", "1")["observed"] == []

    # A later edit is journalled as before: old and new value.
    env.edit("ghl", ghl_id, city="Dallas")
    env.converge()
    assert env.query("SELECT run_id, system, remote_id, field, old_value, new_value FROM observed") == [
        (env.last_run_id(), "ghl", ghl_id, "city", ANN["city"], "Dallas")]


def test_merged_copy_is_stored_once(env):
    # Setup and action: Ann in GHL, converged everywhere.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()

    # Expected: every record's merged copy is its fields ('same'), so the
    # JSON is stored once per record.
    assert sorted(env.query("SELECT system, merged FROM snapshot")) == [
        ("aloware", "same"), ("ghl", "same"), ("verity", "same")]


def test_a_schema_8_state_is_migrated_in_place(env):
    # Setup: the demo's two runs on a state file of the previous schema
    # (made by the old binary, or this one's file turned back).
    demo_env(env)
    old = OLD_BIN is not None
    code, _, err = run_with(env, old, "run", "--full")
    assert code in (0, 1), err
    demo.edit(env.sim)
    code, _, err = run_with(env, old, "run")
    assert code in (0, 1), err
    code, _, err = run_with(env, old, "run")
    assert code in (0, 1), err
    keys = [v for (v,) in env.query("SELECT value FROM field_value WHERE field IN ('phone', 'email') "
                                    "AND value <> '' ORDER BY person_id, field LIMIT 40")]
    assert len(keys) >= 20
    explained = explain_all(env, old, keys)
    if not old:
        (current,), = env.query("PRAGMA user_version")
        db = sqlite3.connect(env.state_path)
        # The later migration (a write's fields packed) undone first.
        db.executescript(UNPACK + TO_PREVIOUS + f"PRAGMA user_version = {current - 2};")
        db.close()
    (version,), = env.query("PRAGMA user_version")
    before = rows(env)
    merged_copies = env.query("SELECT count(*) FROM snapshot WHERE merged = fields")[0][0]
    assert merged_copies > 100

    # Action: this binary opens it (a dry run migrates it and rolls its
    # own work back), explains, and runs.
    code, _, err = env.run("run", "--dry-run")
    assert code in (0, 1), err

    # Expected: migrated in place, every row kept, explain answers as
    # before, and a run sends no write.
    assert env.query("PRAGMA user_version")[0][0] > version
    assert env.query("SELECT count(*) FROM snapshot WHERE merged = 'same'")[0][0] >= merged_copies
    assert rows(env) == before
    assert explain_all(env, False, keys) == explained
    assert env.query(f"SELECT name FROM sqlite_master WHERE name IN {COMPACT}") == []
    for args in (("run",), ("run", "--full")):
        env.reset_requests()
        code, _, err = env.run(*args)
        assert code in (0, 1), err
        assert env.write_requests() == {}, args
    after = rows(env)
    # The runs re-read and swept records: only seen_run and swept_ms move.
    assert [r[:6] + r[8:] for r in after["snapshot"]] == [r[:6] + r[8:] for r in before["snapshot"]]
    for name in ("merged", "field_value", "link", "outbox", "outbox_field", "field_order", "observed"):
        assert after[name] == before[name], name
