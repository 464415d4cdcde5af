"""Deletes: a contact deleted in GHL is unlinked and reported, kept (or,
with propagate_deletes, deleted) elsewhere, and never re-created in GHL;
a mass disappearance trips the safety valve (I6).

These tests delete records moments after they were first seen, so GHL's
lookback is 0: a record younger than the lookback is never taken for gone
(I10)."""
import pytest

from conftest import ANN, ANN_AS_TYPED, view


def deleted_notice(gone: str, others: str) -> str:
    return f"ghl record {gone} no longer exists there; unlinked from person 1. {others}"


def test_contact_deleted_in_ghl_is_unlinked_reported_kept_elsewhere_and_not_recreated(env):
    # Setup: GHL is swept fully every run; Ann converged everywhere.
    env.write_config(system_options={"ghl": {"sweep": 100, "sweep_interval": 0, "lookback": 0}})
    ids = env.converge_person(ANN_AS_TYPED)
    kept = {s: env.sim.records(s) for s in ("aloware", "verity")}

    # Action: a user deletes Ann in GHL.
    env.sim.delete("ghl", ids["ghl"])
    env.converge()
    run_id = env.last_run_id()

    # Expected: unlinked (the link stays as a tombstone) and reported ...
    assert env.notices(run_id) == [(run_id, 1, "ghl", ids["ghl"], "deleted", deleted_notice(
        ids["ghl"], "The other systems keep their records (propagate_deletes is off)."))]
    assert sorted(env.query("SELECT system, remote_id, person_id, deleted_run FROM link")) == [
        ("aloware", str(ids["aloware"]), 1, None), ("ghl", ids["ghl"], 1, run_id),
        ("verity", ids["verity"], 1, None)]
    assert env.query("SELECT count(*) FROM snapshot WHERE system = 'ghl'") == [(0,)]
    assert env.query("SELECT system, swept, unlinked FROM run_system WHERE run_id = ? ORDER BY system",
                     (run_id,)) == [("aloware", 0, 0), ("ghl", 1, 1), ("verity", 0, 0)]
    assert env.report_json()["notices"] == [{
        "run_id": run_id, "system": "ghl", "person_id": 1, "remote_id": ids["ghl"], "kind": "deleted",
        "message": deleted_notice(ids["ghl"], "The other systems keep their records (propagate_deletes is off).")}]
    # ... and Aloware and Verity keep their records untouched.
    assert {s: env.sim.records(s) for s in ("aloware", "verity")} == kept
    assert env.sim.records("ghl") == []

    # Action 2: Ann is edited in Aloware; two more runs.
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.reset_requests()
    env.converge()
    env.converge()

    # Expected: the edit reached Verity; GHL got no contact back.
    assert view("verity", env.sim.record("verity", ids["verity"])) == dict(ANN, first_name="Annie")
    assert env.sim.records("ghl") == []
    assert env.write_requests() == {"verity": {"PATCH /api/v1/contacts/{id}": 1}}
    assert env.query("SELECT count(*) FROM link WHERE system = 'ghl' AND deleted_run IS NULL") == [(0,)]


def test_contact_deleted_in_ghl_with_propagate_deletes_is_deleted_in_verity_not_aloware(env):
    # Setup: GHL deletes propagate; Ann converged everywhere.
    env.write_config(system_options={"ghl": {"propagate_deletes": True, "lookback": 0}})
    ids = env.converge_person(ANN_AS_TYPED)
    aloware_before = env.sim.records("aloware")

    # Action: Ann deleted in GHL; a full run (it lists every record).
    env.sim.delete("ghl", ids["ghl"])
    env.reset_requests()
    code, out, err = env.run("run", "--full")
    run_id = env.last_run_id()

    # Expected: Verity's record deleted; Aloware's kept, as it cannot delete
    # through its API, and the notice says both.
    assert code == 0, err
    assert env.sim.records("verity") == []
    assert env.sim.records("aloware") == aloware_before
    assert env.write_requests() == {"verity": {"DELETE /api/v1/contacts/{id}": 1}}
    assert env.notices(run_id) == [(run_id, 1, "ghl", ids["ghl"], "deleted", deleted_notice(
        ids["ghl"], f"aloware cannot delete through its API; delete journalled for verity {ids['verity']}"))]
    assert env.query("SELECT system, remote_id, op, status FROM outbox WHERE run_id = ?", (run_id,)) == [
        ("verity", ids["verity"], "delete", "done")]
    assert sorted(env.query("SELECT system, remote_id, person_id, deleted_run FROM link")) == [
        ("aloware", str(ids["aloware"]), 1, None), ("ghl", ids["ghl"], 1, run_id),
        ("verity", ids["verity"], 1, run_id)]

    # Action 2: Ann edited in Aloware; two more runs.
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.reset_requests()
    env.converge()
    env.converge()

    # Expected: neither GHL nor Verity gets her back.
    assert env.sim.records("ghl") == []
    assert env.sim.records("verity") == []
    assert env.write_requests() == {}


PEOPLE = 20
GONE = 18


@pytest.fixture
def twenty_converged(env) -> list:
    """20 contacts created in GHL and converged everywhere; their GHL ids."""
    env.write_config(system_options={"ghl": {"lookback": 0}})
    ids = env.sim.seed("ghl", [{"firstName": f"P{i}", "lastName": "Valve", "phone": f"+1555301{i:04d}"}
                               for i in range(PEOPLE)])
    env.converge()
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [PEOPLE] * 3
    return ids


def test_most_records_vanishing_trips_the_safety_valve_until_the_bound_is_raised(env, twenty_converged):
    # Setup: 18 of the 20 GHL contacts are deleted (by mistake).
    for rid in twenty_converged[:GONE]:
        env.sim.delete("ghl", rid)
    records = env.all_records()
    state = env.query("SELECT system, remote_id, person_id, deleted_run FROM link ORDER BY 1, 2")
    env.reset_requests()

    # Action: a full run.
    code, out, err = env.run("run", "--full")

    # Expected: exit 4; stderr names the valve; each missing record was
    # read through its own endpoint; nothing written or unlinked anywhere;
    # the 18 stay marked gone for the next run.
    assert code == 4, err
    assert (f"dfreconcile: safety valve: ghl changed 0 of {PEOPLE} records (0%), cleared 0 fields in 0 "
            f"records (0%) and lost {GONE} records (90%, more than 50%); sent: 0 opt-outs, 0 deliveries; "
            f"not sent: 0 updates, 0 creates, {GONE} deletes. If this is intended, run again with "
            "--max-change-share 0.90 or higher") in err.splitlines()
    assert env.write_requests() == {}
    # (a full run reads each listed GHL contact whole, search leaves its
    # per-channel DND unsaid; each unlisted one is read to confirm it gone)
    listings = env.only_listings()
    listings["ghl"]["GET /contacts/{id}"] = PEOPLE
    assert env.all_counts() == listings
    assert env.all_records() == records
    assert env.query("SELECT system, remote_id, person_id, deleted_run FROM link ORDER BY 1, 2") == state
    assert env.query("SELECT count(*) FROM snapshot WHERE gone_run IS NOT NULL") == [(GONE,)]
    assert env.query("SELECT count(*) FROM notice") == [(0,)]
    assert env.query("SELECT status, exit_code FROM run WHERE id = ?", (env.last_run_id(),)) == [
        ("safety-valve", 4)]

    # Action 2: the admin confirms with a raised bound.
    env.reset_requests()
    code, out, err = env.run("run", "--full", "--max-change-share", "1")

    # Expected: the 18 are unlinked and reported; the other systems keep
    # their records (propagate_deletes is off), so still nothing is written.
    assert code == 0, err
    run_id = env.last_run_id()
    assert sorted(env.query("SELECT remote_id FROM link WHERE system = 'ghl' AND deleted_run = ?",
                            (run_id,))) == sorted((rid,) for rid in twenty_converged[:GONE])
    assert env.query("SELECT count(*) FROM link WHERE deleted_run IS NOT NULL") == [(GONE,)]
    assert env.query("SELECT kind, count(*) FROM notice WHERE run_id = ? GROUP BY kind", (run_id,)) == [
        ("deleted", GONE)]
    assert env.write_requests() == {}
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [PEOPLE - GONE, PEOPLE, PEOPLE]
