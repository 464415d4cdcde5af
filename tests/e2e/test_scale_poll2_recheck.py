"""Issue 9, the write phase's re-check by listing: when a system was read
longer ago than its `recheck_after`, an update is not preceded by a read of
its record (one GET per update: 116,000 of them in a first sync of 100,000);
the system's changes since its last complete listing are listed again
(usually one request), and its records count as known from then. A user's
edit that listing shows is merged, never overwritten. Only a re-listing
that fails falls back to reading each record.

The write phase outlasts `recheck_after` = 1 s because the listing of the
poll is answered 1.5 s late (a `delay` fault); nothing asserts timing, only
the simulators' counts and records.
"""

import pytest

from conftest import ANN_AS_TYPED, SYSTEMS, view, wait_until

# Five people in all three systems, by phone.
PEOPLE = [dict(ANN_AS_TYPED, first_name=f"Person{i}", phone=f"(555) 201-000{i}",
               email=f"person{i}@example.com") for i in range(1, 6)]
LISTING = {"ghl": ("POST", "/contacts/search"), "verity": ("GET", "/api/v1/contacts")}


def converged(env, **config) -> dict:
    """Seeds PEOPLE in GHL, converges twice; {phone digits: {system: id}}."""
    env.write_config(**config)
    for person in PEOPLE:
        env.seed("ghl", **person)
    env.converge()
    env.converge()
    ids = {}
    for person in PEOPLE:
        found = env.ids_of(person["phone"])
        assert set(found) == set(SYSTEMS), found
        ids[person["first_name"]] = found
    return ids


def first_name(env, system: str, rid) -> str:
    (rec,) = [r for r in env.sim.records(system) if r["id"] == rid]
    return view(system, rec)["first_name"]


def late_listing(env, system: str) -> None:
    """The next listing of system is answered 1.5 s late."""
    method, route = LISTING[system]
    env.sim.fault(system, method=method, route=route, kind="delay", delay=1.5)


def test_updates_after_recheck_after_are_sent_after_one_relisting_not_one_read_each(env):
    # Setup: GHL and Verity trust what they know for 1 s; Verity's listing,
    # the last polled, answers 1.5 s late, so both were read longer ago
    # than that by the time of the updates. Verity's user renames three
    # people (updates for GHL) and GHL's user two others (for Verity).
    ids = converged(env, system_options={"ghl": {"recheck_after": 1}, "verity": {"recheck_after": 1}})
    for name in ("Person1", "Person2", "Person3"):
        env.edit("verity", ids[name]["verity"], first_name=name + "x")
    for name in ("Person4", "Person5"):
        env.edit("ghl", ids[name]["ghl"], first_name=name + "x")
    late_listing(env, "verity")

    # Action: one run.
    env.reset_requests()
    env.converge()

    # Expected: per system one more listing (the re-check), and no read of
    # any record before its update (GHL's two reads are of the contacts its
    # user changed: its search lacks the per-channel DND, so a changed
    # contact is read whole when polled). Aloware keeps its default window.
    assert env.counts("ghl") == {"POST /contacts/search": 2, "GET /contacts/{id}": 2,
                                 "PUT /contacts/{id}": 3}
    assert env.counts("verity") == {"GET /api/v1/contacts": 2, "PATCH /api/v1/contacts/{id}": 2}
    assert env.counts("aloware") == {"GET /api/v1/contacts": 1, "GET /api/v1/calls": 1,
                                     "POST /api/v1/webhook/forms": 5}
    for name in ids:
        for system in SYSTEMS:
            assert first_name(env, system, ids[name][system]) == name + "x", (name, system)


@pytest.mark.parametrize("target,source", [("ghl", "verity"), ("verity", "ghl")])
def test_a_user_edit_made_after_the_first_listing_is_merged_not_overwritten(env, target, source):
    # Setup: Ann's first name follows the newest edit. The source system's
    # user renames her Anna, so the run plans an update of the target. The
    # target trusts what it knows for 1 s, and its poll's listing answers
    # 1.5 s late; when its re-check listing arrives (after that poll, before
    # the update), the target's user renames her Annabel.
    env.write_config(fields={"first_name": "newest"}, system_options={target: {"recheck_after": 1}})
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()
    ids = env.ids_of(ANN_AS_TYPED["phone"])
    env.edit(source, ids[source], first_name="Anna")
    late_listing(env, target)
    method, route = LISTING[target]
    field = "firstName"
    env.sim.fault(target, kind="edit", method=method, route=route, id=ids[target], fields={field: "Annabel"})

    # Action: one run, and the next.
    env.reset_requests()
    env.converge()
    first = env.counts(target)
    env.converge()

    # Expected: the edit happened during the run (at its re-check listing),
    # which showed it: no update was sent to the target, and Annabel, the
    # newest, is everywhere.
    assert env.pending_faults(target) == []
    if target == "ghl":
        # GHL's search lacks the per-channel DND: a changed contact is read.
        assert first == {"POST /contacts/search": 2, "GET /contacts/{id}": 1}
    else:
        assert first == {"GET /api/v1/contacts": 2}
    for system in SYSTEMS:
        assert view(system, env.only(system))["first_name"] == "Annabel", system


def test_a_failed_relisting_falls_back_to_reading_each_record(env):
    # Setup: as the first test, GHL only; its re-check listing fails (503
    # after the retries: several faults), so each record is read before its
    # update, as without a listing.
    ids = converged(env, system_options={"ghl": {"recheck_after": 1, "max_attempts": 1}})
    for name in ("Person1", "Person2"):
        env.edit("verity", ids[name]["verity"], first_name=name + "x")
    late_listing(env, "ghl")
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="status", status=503, times=1)

    # Action: one run.
    env.reset_requests()
    code, _, err = env.run("run")

    # Expected: the updates went, each after a read of its record.
    assert code in (0, 1), err
    assert env.counts("ghl") == {"POST /contacts/search": 2, "GET /contacts/{id}": 2, "PUT /contacts/{id}": 2}
    for name in ("Person1", "Person2"):
        assert first_name(env, "ghl", ids[name]["ghl"]) == name + "x"


def test_a_mass_change_listed_again_during_the_writes_trips_the_safety_valve(env):
    # Setup: five people; Verity's user renames Person1 (an update for GHL,
    # which trusts what it knows for 1 s). Verity's listing, the last
    # polled, answers 3 s late; while it waits (GHL's poll is over), GHL's
    # user clears the city of the four others: a mass change the poll's
    # safety valve did not see.
    ids = converged(env, system_options={"ghl": {"recheck_after": 1}},
                    extra="safety = { max_change_share = 0.5; min_records = 2; };")
    env.edit("verity", ids["Person1"]["verity"], first_name="Person1x")
    env.sim.fault("verity", method="GET", route="/api/v1/contacts", kind="delay", delay=3)

    # Action: the run; the edits are made once Verity's listing waits.
    proc = env.popen("run")
    try:
        wait_until(lambda: env.pending_faults("verity") == [], what="Verity's listing to wait")
        for name in ("Person2", "Person3", "Person4", "Person5"):
            env.edit("ghl", ids[name]["ghl"], city=None)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Expected: GHL's update went (after a re-check listing, which showed
    # the four changes); the valve counted them before merging them and
    # tripped: no other system lost a city, the run says so (exit 1), and
    # the next run's valve holds them too (exit 4).
    assert proc.returncode == 1, err
    assert "changes listed again during the writes" in err
    assert first_name(env, "ghl", ids["Person1"]["ghl"]) == "Person1x"
    for system in ("aloware", "verity"):
        assert all(view(system, r)["city"] == ANN_AS_TYPED["city"] for r in env.sim.records(system)), system
    code, _, err = env.run("run")
    assert code == 4, err
    for system in ("aloware", "verity"):
        assert all(view(system, r)["city"] == ANN_AS_TYPED["city"] for r in env.sim.records(system)), system
