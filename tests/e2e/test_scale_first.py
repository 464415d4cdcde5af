"""Issue 9, the first sync's cost: the write stage records the outcomes of
a batch of writes in one transaction instead of one per write, so a crash
may now lose the record of several sends at once. Its intents are
journalled first (the batch's rows become 'unknown' in one transaction
before any of it is sent), so a run killed at any point leaves each write
either recorded or 'unknown', whose next attempt looks first (I2): no
duplicate, no lost write. A write the run held back (its system refused our
credentials) stays 'pending', with no attempt counted."""

from conftest import view

PEOPLE = [{"first_name": f"P{i}", "last_name": "Kill", "phone": f"+1555301000{i}",
           "email": f"p{i}@example.com"} for i in range(6)]
# GHL answers the third create this late: the run is killed while it waits.
SLOW = 60


def phones(env, system: str) -> list:
    return sorted(view(system, r)["phone"] for r in env.sim.records(system))


def test_a_run_killed_between_sends_leaves_no_write_pending_and_the_next_makes_no_duplicate(env):
    # Setup: six people in Verity only; GHL allows duplicate contacts (so a
    # create sent twice would show); GHL applies its third create at once
    # but answers it only after SLOW seconds.
    env.write_config(writes={"backoff": 0})
    env.sim.config("ghl", allow_duplicates=True)
    for person in PEOPLE:
        env.seed("verity", **person)
    env.sim.fault("ghl", method="POST", route="/contacts/", kind="delay", delay=0, times=2)
    env.sim.fault("ghl", method="POST", route="/contacts/", kind="slow", delay=SLOW, times=1)

    # Action 1: a run, killed (SIGKILL) once GHL holds the third contact,
    # while the binary waits for its answer.
    env.kill_run_when(lambda: len(env.sim.records("ghl")) >= 3, "GHL to store the third create", 60)
    env.sim.clear_faults("ghl")

    # Expected: every write of the batch is recorded or 'unknown' (its
    # intent was journalled before it was sent); none claims it was not
    # sent. The create GHL applied unanswered is 'unknown'.
    statuses = env.query("SELECT system, op, status FROM outbox ORDER BY id")
    assert len(statuses) == 12, statuses
    assert {s for _, _, s in statuses} <= {"done", "unknown"}, statuses
    assert [s for system, _, s in statuses if system == "ghl"].count("unknown") >= 1, statuses
    assert len(env.sim.records("ghl")) == 3

    # Action 2: runs until one converges.
    env.run_until_converged(4)

    # Expected: each person exactly once in every system (the create GHL
    # applied unrecorded was found, not sent again), every write done.
    expected = sorted(p["phone"] for p in PEOPLE)
    assert phones(env, "ghl") == expected
    assert phones(env, "aloware") == expected
    assert phones(env, "verity") == expected
    assert env.query("SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'superseded')") == [(0,)]
    assert sorted(r for (r,) in env.query("SELECT remote_id FROM link WHERE system = 'ghl'")) == \
        sorted(r["id"] for r in env.sim.records("ghl"))


def test_writes_held_back_by_refused_credentials_stay_pending_without_an_attempt(env):
    # Setup: two people in GHL only; Verity refuses our credentials on its
    # listing, so the run sends it nothing.
    env.write_config(writes={"backoff": 0})
    for person in PEOPLE[:2]:
        env.seed("ghl", **person)
    env.sim.fault("verity", method="GET", route="/api/v1/contacts", status=401, times=1)

    # Action 1: a run.
    code, _, err = env.run("run")

    # Expected: exit 6; Aloware's creates done; Verity's wait as they were
    # journalled (the last plan's): pending, no attempt counted (they were
    # marked with their batch and unmarked when nothing was sent).
    assert code == 6, err
    rows = env.query("SELECT system, status, attempts FROM outbox WHERE op = 'create' "
                     "AND status <> 'superseded' ORDER BY system, id")
    assert rows == [("aloware", "done", 1)] * 2 + [("verity", "pending", 0)] * 2, rows
    assert env.sim.records("verity") == []

    # Action 2: a run with Verity answering again.
    env.converge()

    # Expected: both people created in Verity once.
    assert phones(env, "verity") == sorted(p["phone"] for p in PEOPLE[:2])
