"""Issue 8 item 2: exit codes monitoring can use. A quarantine a person must
look at (new) exits 1; the same record quarantined again, unchanged since an
earlier run reported it, exits 0 and stays in the report and in status."""
import json

from conftest import ANN_AS_TYPED, view

BOB = {"first_name": "Bob", "last_name": "Ray", "phone": "+15552010002"}


def test_known_unchanged_quarantine_exits_0_and_a_new_one_exits_1(env):
    # Setup: Ann and Bob converged; Ann's Aloware record turns malformed.
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("ghl", **BOB)
    env.converge()
    ann_a = [r for r in env.sim.records("aloware") if view("aloware", r)["last_name"] == "Lee"][0]
    env.sim.seed("aloware", raw=True, records=[dict(ann_a, first_name=12345)])

    # Action 1: a full run reads it: a new quarantine needs a person.
    code, out, err = env.run("run", "--full")
    assert code == 1, err
    first = env.last_run_id()

    # Action 2: read again, unchanged: known, exit 0, still reported.
    code, out, err = env.run("run", "--full")
    assert code == 0, err
    second = env.last_run_id()
    assert env.query("SELECT run_id, system, remote_id, kind FROM quarantine ORDER BY id") == [
        (first, "aloware", str(ann_a["id"]), "malformed"),
        (second, "aloware", str(ann_a["id"]), "malformed")]
    rep = env.report_json()
    assert [(q["system"], q["remote_id"]) for q in rep["quarantine"]] == [("aloware", str(ann_a["id"]))]
    code, out, err = env.run("status", "--format", "json")
    assert code == 0, err
    st = json.loads(out)
    assert [(q["system"], q["remote_id"], q["known"]) for q in st["quarantine"]] == [
        ("aloware", str(ann_a["id"]), True)]

    # Action 3: the record changes and is malformed for another reason: new.
    env.sim.seed("aloware", raw=True, records=[dict(ann_a, first_name="Ann", email=67890)])
    code, out, err = env.run("run", "--full")
    assert code == 1, err

    # Action 4: a new malformed record alongside the known one: exit 1.
    code, out, err = env.run("run", "--full")
    assert code == 0, err
    bob_a = [r for r in env.sim.records("aloware") if view("aloware", r)["last_name"] == "Ray"][0]
    env.sim.seed("aloware", raw=True, records=[dict(bob_a, first_name=999)])
    code, out, err = env.run("run", "--full")
    assert code == 1, err


def test_status_json_is_typed_and_shows_age_lag_and_writes_waiting(env):
    # Setup: converged; then GHL refuses updates (500) so a write waits.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    converged = env.last_run_id()
    code, out, err = env.run("status", "--format", "json")
    assert code == 0, err
    st = json.loads(out)
    assert st["last_run"]["id"] == converged and st["last_run"]["exit_code"] == 0
    assert st["last_ok_run"]["id"] == converged
    assert [(s["system"], s["last_read_run"]) for s in st["systems"]] == [
        ("aloware", converged), ("ghl", converged), ("verity", converged)]
    assert all(isinstance(s["age_seconds"], int) and s["age_seconds"] >= 0 for s in st["systems"])
    assert {(s["system"], s["stream"]) for s in st["streams"]} >= {("ghl", "contacts"), ("aloware", "contacts")}
    # A stream read to the end has a lag (since that listing began), even
    # one that listed no change yet (Aloware calls).
    lag = {(s["system"], s["stream"]): s["lag_seconds"] for s in st["streams"]}
    assert isinstance(lag[("ghl", "contacts")], int) and lag[("ghl", "contacts")] >= 0
    assert isinstance(lag[("aloware", "calls")], int) and lag[("aloware", "calls")] >= 0
    assert st["outbox"] == {"pending": 0, "unknown": 0, "refused": 0, "given_up": 0}
    assert st["oldest_pending"] is None and st["writes_waiting"] == []

    ann_v = env.only("verity")["id"]
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=500, times=10)
    env.edit("verity", ann_v, first_name="Annabel")
    code, out, err = env.run("run")
    assert code == 1, err
    failed = env.last_run_id()
    code, out, err = env.run("status", "--format", "json")
    st = json.loads(out)
    assert st["outbox"] == {"pending": 1, "unknown": 0, "refused": 0, "given_up": 0}
    assert (st["oldest_pending"]["system"], st["oldest_pending"]["run_id"], st["oldest_pending"]["op"]) == (
        "ghl", failed, "update")
    assert [(w["system"], w["status"]) for w in st["writes_waiting"]] == [("ghl", "pending")]
    # The report of a run no longer repeats writes waiting from all runs.
    assert "pending" not in env.report_json()
    code, out, err = env.run("status")
    assert code == 0 and "writes waiting, refused or given up (all runs):" in out and "#" in out, out
