"""The sweep: a system without a changed-since listing is re-read a budget
of records per run, so every linked record is checked within
ceil(linked / budget) runs and its edits flow like polled ones."""
import math

from conftest import view

BUDGET = 2
PEOPLE = [{"first_name": f"P{i}", "last_name": "Sweep", "phone": f"+1555201{i:04d}"} for i in range(1, 6)]


def test_aloware_edits_without_a_listing_are_found_by_the_sweep_within_its_budget(env):
    # Setup: Aloware has no listing; the sweep reads 2 of its records per
    # run, with no minimum interval. Five people converged from GHL.
    env.write_config(system_options={"aloware": {"listing": False, "sweep": BUDGET, "sweep_interval": 0}})
    for person in PEOPLE:
        env.seed("ghl", **person)
    env.converge()
    linked = env.query("SELECT count(*) FROM link WHERE system = 'aloware' AND deleted_run IS NULL")[0][0]
    assert linked == len(PEOPLE) == len(env.sim.records("aloware"))

    # Action: a user edits every Aloware contact (first name P1 -> P1-edited).
    for record in env.sim.records("aloware"):
        env.sim.edit("aloware", record["id"], {"first_name": record["first_name"] + "-edited"})

    # Expected: each run sweeps exactly its budget, through Aloware's lookup
    # (its listing is never called), and carries what it found to GHL and
    # Verity; after ceil(linked / budget) runs every edit has arrived.
    runs = math.ceil(linked / BUDGET)
    for k in range(1, runs + 1):
        env.reset_requests()
        env.converge()
        run_id = env.last_run_id()
        assert env.counts("aloware") == {"GET /api/v1/calls": 1,
                                         "GET /api/v1/webhook/contact/phone-number": BUDGET}
        assert env.query("SELECT system, swept FROM run_system WHERE run_id = ? ORDER BY system",
                         (run_id,)) == [("aloware", BUDGET), ("ghl", 0), ("verity", 0)]
        found = min(k * BUDGET, linked)
        for system in ("ghl", "verity"):
            names = sorted(v["first_name"] for v in env.views(system))
            assert sum(name.endswith("-edited") for name in names) == found, (k, system, names)
    assert sorted(v["first_name"] for v in env.views("ghl")) == [f"P{i}-edited" for i in range(1, 6)]
    assert sorted(v["first_name"] for v in env.views("verity")) == [f"P{i}-edited" for i in range(1, 6)]
    assert sorted(env.views("aloware"), key=lambda v: v["phone"]) == sorted(
        (view("verity", r) for r in env.sim.records("verity")), key=lambda v: v["phone"])
