"""Contacts flow between the three systems: creates, edits, linking of
existing records, quiet runs (I3) and late indexing (I1)."""
from conftest import ANN, ANN_AS_TYPED, ONLY_LISTINGS, view


def test_contact_created_in_ghl_is_created_in_aloware_and_verity(env):
    # Setup: one contact in GHL only, typed as a user would.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)

    # Action
    env.converge()

    # Expected: both other systems hold it with every mapped field normalised.
    aloware, verity = env.only("aloware"), env.only("verity")
    assert view("aloware", aloware) == ANN
    assert view("verity", verity) == ANN
    assert aloware["phone_number"] == "+15552010001"
    assert verity["phoneE164"] == "+15552010001"
    # GHL itself is left as typed: its normalised values already agree.
    assert view("ghl", env.only("ghl")) == ANN_AS_TYPED

    # Expected state: one person, linked from all three systems.
    assert env.query("SELECT id FROM person") == [(1,)]
    assert sorted(env.query("SELECT system, remote_id, person_id, how FROM link")) == sorted([
        ("ghl", ghl_id, 1, "new"),
        ("aloware", str(aloware["id"]), 1, "created"),
        ("verity", verity["id"], 1, "created"),
    ])
    agreed = dict(env.query("SELECT field, value FROM field_value WHERE person_id = 1"))
    assert {f: agreed[f] for f in ANN} == ANN
    assert env.query("SELECT system, op, status FROM outbox ORDER BY system") == [
        ("aloware", "create", "done"), ("verity", "create", "done")]


def test_edit_in_aloware_then_edit_in_verity_reach_the_other_systems(env):
    # Setup: Ann converged in all three systems.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    aloware_id, verity_id = env.only("aloware")["id"], env.only("verity")["id"]

    # Action 1: a user renames Ann in Aloware.
    env.edit("aloware", aloware_id, first_name="Annie")
    env.converge()

    # Expected: GHL and Verity carry the new first name; nothing else moved.
    annie = dict(ANN, first_name="Annie")
    assert view("ghl", env.sim.record("ghl", ghl_id)) == dict(ANN_AS_TYPED, first_name="Annie")
    assert view("aloware", env.sim.record("aloware", aloware_id)) == annie
    assert view("verity", env.sim.record("verity", verity_id)) == annie
    run2 = env.last_run_id()
    assert env.outbox(run2) == [
        ("ghl", "update", "done", "first_name", "Ann", "Annie"),
        ("verity", "update", "done", "first_name", "Ann", "Annie"),
    ]
    assert env.query("SELECT value, system, rule, reason, run_id FROM field_value "
                     "WHERE person_id = 1 AND field = 'first_name'") == [
        ("Annie", "aloware", "two-way", "changed in one system", run2)]

    # Action 2: a user changes Ann's custom field and last name in Verity.
    env.edit("verity", verity_id, last_name="Leigh", investor_tier="platinum")
    env.converge()

    # Expected: GHL and Aloware follow.
    final = dict(annie, last_name="Leigh", investor_tier="platinum")
    assert view("ghl", env.sim.record("ghl", ghl_id)) == dict(
        ANN_AS_TYPED, first_name="Annie", last_name="Leigh", investor_tier="platinum")
    assert view("aloware", env.sim.record("aloware", aloware_id)) == final
    assert view("verity", env.sim.record("verity", verity_id)) == final
    assert env.outbox(env.last_run_id()) == [
        ("aloware", "update", "done", "investor_tier", "gold", "platinum"),
        ("aloware", "update", "done", "last_name", "Lee", "Leigh"),
        ("ghl", "update", "done", "investor_tier", "gold", "platinum"),
        ("ghl", "update", "done", "last_name", "Lee", "Leigh"),
    ]
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [1, 1, 1]


def test_same_person_in_two_systems_under_different_ids_is_linked_not_duplicated(env):
    # Setup: before any run, Ann exists in GHL (national phone, no email) and
    # in Aloware (E.164 phone, with email).
    ghl_id = env.seed("ghl", first_name="Ann", last_name="Lee", phone="(555) 201-0001")
    (aloware_id,) = env.sim.seed("aloware", [{
        "first_name": "Ann", "last_name": "Lee", "phone_number": "+15552010001",
        "email": "ann.lee@example.com"}])

    # Action
    env.converge()

    # Expected: one contact per system, one person; the email Aloware knew
    # reaches GHL and Verity.
    expected = {"first_name": "Ann", "last_name": "Lee", "phone": "+15552010001",
                "email": "ann.lee@example.com", "city": None, "investor_tier": None}
    ghl, aloware, verity = env.only("ghl"), env.only("aloware"), env.only("verity")
    assert ghl["id"] == ghl_id and aloware["id"] == aloware_id
    assert dict(view("ghl", ghl), phone="+15552010001") == expected
    assert ghl["phone"] == "(555) 201-0001"
    assert view("aloware", aloware) == expected
    assert view("verity", verity) == expected

    assert env.query("SELECT id FROM person") == [(1,)]
    assert sorted(env.query("SELECT system, remote_id, person_id, how FROM link")) == sorted([
        ("ghl", ghl_id, 1, "new"),
        ("aloware", str(aloware_id), 1, "phone"),
        ("verity", verity["id"], 1, "created"),
    ])

    # And a second run changes nothing: still one record each.
    env.converge()
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [1, 1, 1]
    assert env.query("SELECT count(*) FROM person") == [(1,)]


def test_run_after_a_converged_run_sends_no_writes(env):
    # Setup: Ann created everywhere, then an edit in Aloware propagated, so
    # the echoes of both creates and updates are in the next poll.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("aloware", env.only("aloware")["id"], first_name="Annie", city="Dallas")
    env.converge()
    before = env.all_records()
    env.reset_requests()

    # Action
    env.converge()

    # Expected: one listing call per system and nothing else.
    assert env.all_counts() == ONLY_LISTINGS
    assert env.all_records() == before
    run_id = env.last_run_id()
    assert env.query("SELECT count(*) FROM outbox WHERE run_id = ?", (run_id,)) == [(0,)]
    assert env.query("SELECT system, polled, changed, writes_done FROM run_system "
                     "WHERE run_id = ? ORDER BY system", (run_id,)) == [
        ("aloware", 1, 0, 0), ("ghl", 1, 0, 0), ("verity", 1, 0, 0)]


def test_late_indexed_ghl_change_is_picked_up_by_a_later_run(env):
    # Setup: Ann and Bob converged everywhere; from now on GHL's search
    # indexes edits 5 s (simulated) late.
    ann_id = env.seed("ghl", **ANN_AS_TYPED)
    bob_id = env.seed("ghl", first_name="Bob", last_name="Ray", phone="+15552010002")
    env.converge()
    env.sim.config("ghl", index_delay=5)

    # Action 1: Ann is renamed in GHL (indexed late); a moment later Bob is
    # renamed with no delay, so the cursor moves past Ann's change.
    env.edit("ghl", ann_id, first_name="Anna")
    env.sim.config("ghl", index_delay=0)
    env.sim.advance_clock("ghl", 1)
    env.edit("ghl", bob_id, first_name="Robert")
    env.converge()

    # Expected: Bob's change is seen, Ann's is not yet.
    assert sorted(v["first_name"] for v in env.views("aloware")) == ["Ann", "Robert"]
    assert sorted(v["first_name"] for v in env.views("verity")) == ["Ann", "Robert"]

    # Action 2: GHL's index catches up (6 s later on its clock); run again.
    env.sim.advance_clock("ghl", 6)
    env.converge()

    # Expected: Ann's change reached Aloware and Verity after all.
    assert sorted(v["first_name"] for v in env.views("aloware")) == ["Anna", "Robert"]
    assert sorted(v["first_name"] for v in env.views("verity")) == ["Anna", "Robert"]
    assert env.query("SELECT f.value, f.system FROM field_value f JOIN link l "
                     "ON l.person_id = f.person_id AND l.system = 'ghl' "
                     "WHERE l.remote_id = ? AND f.field = 'first_name'", (ann_id,)) == [("Anna", "ghl")]
