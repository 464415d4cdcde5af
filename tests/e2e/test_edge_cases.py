"""Edge cases found in review, each an invariant (ARCHITECTURE.md I1-I9) or
issue requirement: future-dated records, GHL per-channel DND, opt-ins the
texting register cannot take, malformed records found by the sweep, STOP
from numbers that are no contact."""
from conftest import ANN, ANN_AS_TYPED, view

BOB = {"first_name": "Bob", "last_name": "Ray", "phone": "+15552010002"}


def test_future_dated_record_does_not_push_the_cursor_past_later_changes(env):
    # I1/I8: one Verity record with a bogus update time far in the future
    # (clock skew, bad data) must not move the cursor past every real
    # change that follows.
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.seed("verity", [{"firstName": "Future", "lastName": "Skew", "phoneE164": "+15552010007",
                             "updatedAt": "2099-01-01T00:00:00.000Z"}])
    env.converge()

    # Action: a user edits Ann in Verity (stamped now); run.
    (ann_v,) = [r["id"] for r in env.sim.records("verity") if r["phoneE164"] == ANN["phone"]]
    env.edit("verity", ann_v, first_name="Annabel")
    env.converge()

    # Expected: the edit reached GHL and Aloware.
    ghl = [view("ghl", r) for r in env.sim.records("ghl") if r["lastName"] == "Lee"]
    assert [v["first_name"] for v in ghl] == ["Annabel"]
    assert [v["first_name"] for v in env.views("aloware") if v["last_name"] == "Lee"] == ["Annabel"]


def test_malformed_record_found_by_the_sweep_is_quarantined_and_does_not_stall_it(env):
    # I8 + issue 3 item 6: Aloware without a listing, sweep budget 1. A
    # record whose lookup answer is malformed must be quarantined (with its
    # id) and must not keep the sweep from reaching the other records.
    env.write_config(system_options={"aloware": {"listing": False, "sweep": 1, "sweep_interval": 0}})
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("ghl", **BOB)
    env.converge()
    by_phone = {view("aloware", r)["phone"]: r for r in env.sim.records("aloware")}
    ann_a, bob_a = by_phone[ANN["phone"]], by_phone[BOB["phone"]]

    # Action: Ann's Aloware record turns malformed (first_name a number);
    # Bob is renamed in Aloware. A few runs.
    env.sim.seed("aloware", raw=True, records=[dict(ann_a, first_name=12345)])
    env.sim.edit("aloware", bob_a["id"], {"first_name": "Robert"})
    for _ in range(4):
        code, out, err = env.run("run")
        print(code, err)

    # Expected: Bob's edit was found by the sweep and reached GHL ...
    assert sorted(v["first_name"] for v in env.views("ghl")) == ["Ann", "Robert"]
    # ... and Ann's malformed record is quarantined with its id.
    rows = env.query("SELECT system, remote_id, kind FROM quarantine")
    assert ("aloware", str(ann_a["id"]), "malformed") in rows, rows


def test_ghl_per_channel_dnd_reaches_every_system_in_the_next_run(env):
    # Issue 3 item 5 / I4: GHL dndSettings per channel is an opt-out source.
    # A user sets SMS DND (only that channel) on a converged contact in GHL;
    # the next run must carry it to Verity and the texting system.
    env.configure_flows()
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("ghl", ids["ghl"], {"dndSettings": {"SMS": {"status": "active"}}})
    env.converge()

    assert env.sim.record("verity", ids["verity"])["optOuts"]["sms"] is True
    assert [(p, c, s) for p, c, s, *_ in env.optouts()] == [(ANN["phone"], "sms", "opted-out")]


def test_stop_from_a_number_that_is_no_contact_still_reaches_the_texting_system(env):
    # Issue 3 item 5 / I4: an opt-out seen anywhere is written to every
    # system in the same run. The texting system keys opt-outs by phone, so
    # a STOP from a number that is no contact yet must still be recorded
    # there (it is the system that would text the number).
    env.configure_flows()
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    stranger = "+15552010099"
    env.seed_text("inbound", stranger, "STOP")
    env.converge()

    assert [(p, c, s) for p, c, s, *_ in env.optouts()] == [(stranger, "sms", "opted-out")]
    assert [(e["phone"], e["channel"], e["type"]) for e in env.optout_events()] == [
        (stranger, "sms", "optout")]


def test_allowed_opt_in_survives_an_unrelated_edit_while_the_texting_system_still_holds_the_opt_out(env):
    # I4: opting back in happens through a configured event and is then the
    # agreed state. The texting system cannot record opt-ins (a notice says
    # so), so it keeps holding the old opt-out; that stale value is no new
    # opt-out and must not undo the opt-in when the person is merged again.
    env.configure_flows(opt_in="same-system")
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True}})
    env.converge()
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": False}})
    env.converge()
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "inactive"}}

    # Action: an unrelated edit (first name) in GHL.
    env.edit("ghl", ids["ghl"], first_name="Annie")
    env.converge()

    # Expected: the opt-in stands everywhere.
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "inactive"}}
    assert env.sim.record("verity", ids["verity"])["optOuts"]["sms"] is False
    assert [(c, s) for _, c, s, *_ in env.optouts()] == [("sms", "opted-in")]
