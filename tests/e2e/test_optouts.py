"""Opt-outs (I4): a STOP text opts the number out everywhere in the same
run; an opt-out holds while other fields change; only a system the
configuration allows can opt a number back in."""
import pytest

from conftest import ANN, ANN_AS_TYPED

PHONE = ANN["phone"]
OPTED_OUT_SMS = {"sms": True, "call": False, "email": False}
NO_OPTOUTS = {"sms": False, "call": False, "email": False}
GHL_DND_CHANNEL = {"sms": "SMS", "call": "Call", "email": "Email"}


def optout_event(phone: str, channel: str = "sms") -> dict:
    """A texting opt-out event as dfreconcile posts it."""
    return {"phone": phone, "channel": channel, "type": "optout", "source": "api", "reason": None}


REMOVED_FROM_ALL = ("Aloware removes a contact from every Power Dialer list at once: removed from all, "
                    "lists set in Aloware by hand included (they cannot be restored)")


def not_writable(field: str, held: str, agreed: str) -> str:
    return f'aloware cannot change {field} through its API (holds "{held}", agreed "{agreed}")'


def converge_ann_on_call_lists(env) -> dict:
    """Ann tagged call_now and hot, converged and on Aloware lists 101 and
    102; her ids."""
    env.seed_lists(101, 102)
    env.configure_flows(lists=[("call_now", "exact", "101"), ("hot", "exact", "102")])
    ids = env.converge_person(dict(ANN_AS_TYPED, tags=["call_now", "hot"]))
    assert env.lists() == {101: [ids["aloware"]], 102: [ids["aloware"]]}
    return ids


@pytest.mark.parametrize("body", ["STOP", " stop ", "Stop"])
def test_stop_text_opts_the_number_out_everywhere_in_the_same_run(env, body):
    # Setup: Ann converged and on two call lists; then she texts `body`.
    ids = converge_ann_on_call_lists(env)
    text_id = env.seed_text("inbound", PHONE, body)
    env.reset_requests()

    # Action: one run.
    env.converge()
    run_id = env.last_run_id()

    # Expected: GHL SMS DND on, Verity sms opted out, the texting system
    # holds an opt-out for the number, Aloware's contact is on no list.
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    assert env.optout_events() == [optout_event(PHONE)]
    assert env.lists() == {101: [], 102: []}
    assert env.list_members() == [(1, "101", "removed", run_id), (1, "102", "removed", run_id)]
    writes = env.write_requests()
    # Aloware: only list removals (each removes from every list; how many
    # are sent is not the point), never a re-add.
    assert set(writes.pop("aloware")) == {"POST /api/v1/webhook/powerdialer-remove-contact-from-lists"}
    assert writes == {
        "ghl": {"PUT /contacts/{id}": 1, "POST /conversations/": 1,
                "POST /conversations/messages/inbound": 1},
        "verity": {"PATCH /api/v1/contacts/{id}": 1},
        "texting": {"POST /api/v1/optouts": 1}}
    # Aloware's DNC cannot be set through its API: a notice says so; and
    # one that its removal took the contact off every list, by hand too.
    assert env.sim.record("aloware", ids["aloware"])["is_dnc"] is False
    assert sorted(env.notices(run_id)) == sorted([
        (run_id, 1, "aloware", str(ids["aloware"]), "not-writable", not_writable("optout_sms", "false", "true")),
        (run_id, 1, "aloware", str(ids["aloware"]), "list-remove", REMOVED_FROM_ALL)])
    # Expected state: the registry and its log name the keyword.
    assert env.optouts() == [(PHONE, "sms", "opted-out", "texting", "STOP keyword", run_id)]
    # (person_id left out: the keyword's row is by number and holds 0.)
    assert [row[:3] + row[4:] for row in env.optout_log()] == [
        (run_id, PHONE, "sms", "opt-out", "texting", "inbound message is a stop keyword")]
    # The text itself still reaches the GHL conversation.
    assert [(m["messageType"], m["body"]) for m in env.messages()] == [("TYPE_SMS", body)]

    # And the next run is quiet.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()


@pytest.mark.parametrize("body", ["this weekend", "don't stop"])
def test_text_that_is_not_a_stop_keyword_opts_nothing_out(env, body):
    # Setup: as above, but her text only mentions stopping, or nothing.
    ids = converge_ann_on_call_lists(env)
    text_id = env.seed_text("inbound", PHONE, body)
    records = {s: env.sim.records(s) for s in ("ghl", "aloware", "verity")}
    env.reset_requests()

    # Action
    env.converge()

    # Expected: no opt-out anywhere and no write but the text's delivery.
    assert env.optouts() == []
    assert env.optout_log() == []
    assert env.query("SELECT count(*) FROM outbox WHERE run_id = ?", (env.last_run_id(),)) == [(0,)]
    assert env.write_requests() == {"ghl": {"POST /conversations/": 1,
                                            "POST /conversations/messages/inbound": 1}}
    assert {s: env.sim.records(s) for s in ("ghl", "aloware", "verity")} == records
    assert env.sim.record("verity", ids["verity"])["optOuts"] == NO_OPTOUTS
    assert env.optout_events() == []
    assert env.lists() == {101: [ids["aloware"]], 102: [ids["aloware"]]}
    assert [(m["messageType"], m["body"]) for m in env.messages()] == [("TYPE_SMS", body)]


NEW_PHONE = "+15552010009"


@pytest.mark.parametrize("opt_out_in, edit_in", [("verity", "ghl"), ("aloware", "verity")])
def test_optout_and_a_contact_edit_in_the_same_interval_both_hold(env, opt_out_in, edit_in):
    # Setup: Ann converged everywhere (texting configured, no opt-out).
    env.configure_flows()
    ids = env.converge_person(ANN_AS_TYPED)

    # Action: before the next run, one system opts her out (Verity: sms;
    # Aloware: DNC, which is calls and texts) while another system gets her
    # name and phone changed by a user.
    if opt_out_in == "verity":
        env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True}})
        channels = ["sms"]
    else:
        env.sim.edit("aloware", ids["aloware"], {"is_dnc": True})
        channels = ["call", "sms"]
    env.edit(edit_in, ids[edit_in], first_name="Annie", last_name="Leigh", phone=NEW_PHONE)
    env.converge()
    run_id = env.last_run_id()

    # Expected: the opt-out holds in GHL, Verity and the texting system ...
    ghl = env.sim.record("ghl", ids["ghl"])
    verity = env.sim.record("verity", ids["verity"])
    assert ghl["dndSettings"] == {GHL_DND_CHANNEL[c]: {"status": "active"} for c in channels}
    assert verity["optOuts"] == dict(NO_OPTOUTS, **{c: True for c in channels})
    assert sorted(env.optout_events(), key=lambda e: e["channel"]) == [
        optout_event(NEW_PHONE, c) for c in channels]
    assert env.optouts() == [(NEW_PHONE, c, "opted-out", opt_out_in, "opt-out recorded by a system", run_id)
                             for c in channels]  # call, then sms
    # ... and the edit reached every system (Aloware keys contacts by phone
    # and cannot change it: a notice says so).
    aloware = env.sim.record("aloware", ids["aloware"])
    assert (ghl["firstName"], ghl["lastName"], ghl["phone"]) == ("Annie", "Leigh", NEW_PHONE)
    assert (verity["firstName"], verity["lastName"], verity["phoneE164"]) == ("Annie", "Leigh", NEW_PHONE)
    assert (aloware["first_name"], aloware["last_name"], aloware["phone_number"]) == ("Annie", "Leigh", PHONE)
    expected = [("not-writable", not_writable("phone", PHONE, NEW_PHONE))]
    if opt_out_in == "verity":  # Aloware's DNC cannot be set either
        expected.append(("not-writable", not_writable("optout_sms", "false", "true")))
    assert [n[4:] for n in env.notices(run_id)] == expected
    assert env.optout_log()[-len(channels):] == [
        (run_id, NEW_PHONE, c, 1, "opt-out", opt_out_in, "opt-out recorded by a system")
        for c in sorted(channels, reverse=True)]  # sms, then call

    # And the next run is quiet: nothing undoes the opt-out or the edit.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()


@pytest.mark.parametrize("opt_in", ["same-system", "never", "ghl,aloware"])
def test_optout_cleared_by_a_system_not_allowed_to_stays_and_is_written_back(env, opt_in):
    # Setup: Ann converged; she texts STOP (recorded by the texting system).
    env.configure_flows(opt_in=opt_in)
    ids = env.converge_person(ANN_AS_TYPED)
    env.seed_text("inbound", PHONE, "STOP")
    env.converge()
    stop_run = env.last_run_id()
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS

    # Action: a user clears the sms opt-out in Verity.
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": False}})
    env.converge()
    run_id = env.last_run_id()

    # Expected: the opt-out stands everywhere; Verity got it back.
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.optout_events() == [optout_event(PHONE)]
    assert env.optouts() == [(PHONE, "sms", "opted-out", "texting", "STOP keyword", stop_run)]
    refused = (PHONE, "sms", 1, "opt-in-refused", "verity",
               "the configuration does not let this system opt a number back in; "
               "the opt-out stays and is written back")
    assert [row for row in env.optout_log() if row[0] == run_id] == [(run_id,) + refused]
    assert env.outbox(run_id) == [("verity", "update", "done", "optout_sms", "false", "true")]
    # ... and in the report.
    keys = ("run_id", "phone", "channel", "person_id", "action", "system", "reason")
    assert env.report_json()["optouts"] == [dict(zip(keys, (run_id,) + refused))]


def test_optout_cleared_by_the_system_that_recorded_it_is_an_opt_in_everywhere(env):
    # Setup: opt-ins from the system that recorded the opt-out; Ann
    # converged; Verity records an sms opt-out, which reaches everyone.
    env.configure_flows(opt_in="same-system")
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True}})
    env.converge()
    optout_run = env.last_run_id()
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.optouts() == [(PHONE, "sms", "opted-out", "verity", "opt-out recorded by a system", optout_run)]

    # Action: Verity clears it.
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": False}})
    code, out, err = env.run("run")
    run_id = env.last_run_id()

    # Expected: opted back in: the registry, GHL and Verity say so.
    assert env.sim.record("verity", ids["verity"])["optOuts"] == NO_OPTOUTS
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "inactive"}}
    assert env.optouts() == [(PHONE, "sms", "opted-in", "verity",
                              "opt-in by a system the configuration allows", run_id)]
    assert [row for row in env.optout_log() if row[0] == run_id] == [
        (run_id, PHONE, "sms", 1, "opt-in", "verity", "opt-in by a system the configuration allows")]
    # The texting system's API can only opt numbers out: no write is sent
    # there; a notice says what an admin must do by hand.
    assert code == 0, err
    assert env.query("SELECT system, op, status, last_error FROM outbox WHERE run_id = ? "
                     "ORDER BY system", (run_id,)) == [("ghl", "update", "done", None)]
    assert env.query("SELECT system, kind, message FROM notice WHERE run_id = ?", (run_id,)) == [
        ("texting", "not-writable", 'texting cannot change optout_sms through its API '
                                    '(holds "true", agreed "false")')]
    assert env.optout_events() == [optout_event(PHONE)]

    # And the next run is quiet: the opt-in stays.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "inactive"}}
