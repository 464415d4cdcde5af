"""Calls and texts reach GHL exactly once (notes, Call and SMS messages),
also across a crash and for a contact linked late; GHL tags drive the
Aloware call lists."""

import pytest

from conftest import ANN, ANN_AS_TYPED, LOCATION, PROVIDER

CALL_TIME = "2025-06-01T12:00:00.000Z"
CALL = {"duration": 125, "disposition": "Interested", "status": "completed",
        "recording_url": "https://rec.example.com/5001.mp3", "created_at": CALL_TIME}


def call_note_body(direction: str, call_id) -> str:
    """The note a CALL of `direction` makes on the GHL contact."""
    return "\n".join([
        f"{direction.capitalize()} call on {CALL_TIME} (2m 5s)",
        "Disposition: Interested",
        "Status: completed",
        "Recording: https://rec.example.com/5001.mp3",
        f"aloware_call_id: {call_id}",
    ])


def ghl_message(msg_id, ghl_id, conv_id, **fields) -> dict:
    """A stored GHL conversation message, as the simulator returns it."""
    base = {"id": msg_id, "locationId": LOCATION, "contactId": ghl_id, "conversationId": conv_id,
            "contentType": "text/plain", "status": "delivered", "attachments": [], "source": "api",
            "userId": None, "conversationProviderId": None, "meta": {}, "body": None}
    return dict(base, **fields)


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_call_becomes_one_note_and_one_call_message_on_the_ghl_contact(env, direction):
    # Setup: Ann converged everywhere; GHL has a conversation provider; then
    # a call with her is logged in Aloware.
    env.configure_flows()
    ids = env.converge_person(ANN_AS_TYPED)
    call_id = env.seed_call(ids["aloware"], direction=direction, **CALL)

    # Action
    env.converge()

    # Expected: one note with the call's lines, the Aloware id last.
    (note,) = env.notes()
    assert (note["contactId"], note["body"]) == (ids["ghl"], call_note_body(direction, call_id))
    # Expected: one conversation (created), holding one Call message at the
    # call's time (the export has no altId: the date identifies it).
    (conv,) = env.conversations()
    assert conv["contactId"] == ids["ghl"]
    (message,) = env.messages()
    assert message == ghl_message(
        message["id"], ids["ghl"], conv["id"], type=1, messageType="TYPE_CALL", direction=direction,
        dateAdded=CALL_TIME, conversationProviderId=PROVIDER,
        meta={"callStatus": "completed"})
    # Expected state: the event and its one delivery, done, naming both.
    run_id = env.last_run_id()
    assert env.query("SELECT kind, source, source_id, source_contact, phone, person_id, run_id "
                     "FROM event") == [("call", "aloware", str(call_id), str(ids["aloware"]), None, 1, run_id)]
    assert env.deliveries() == [
        ("call", "aloware", str(call_id), "ghl", "done", 1,
         f"note:{note['id']} message:{message['id']}", 1, run_id, run_id)]

    # Action 2: a rerun (the call is re-read within the lookback).
    env.reset_requests()
    env.converge()

    # Expected: only the listings were read; still one note, one message.
    assert env.all_counts() == env.only_listings()
    assert env.notes() == [note]
    assert env.messages() == [message]
    assert env.query("SELECT count(*) FROM event") == [(1,)]


# The GHL write after which the run is killed: its route, and the
# collection that holds what it wrote.
SLOW_WRITES = {"note": ("/contacts/{id}/notes", "notes"),
               "call message": ("/conversations/messages/inbound", "messages")}


@pytest.mark.parametrize("killed_after", list(SLOW_WRITES))
def test_killed_right_after_the_ghl_write_the_rerun_makes_no_second_note_or_message(env, killed_after):
    # Setup: Ann converged; an inbound call logged in Aloware; GHL stores the
    # note (or the Call message) at once but answers only 20 s later.
    route, collection = SLOW_WRITES[killed_after]
    env.configure_flows()
    ids = env.converge_person(ANN_AS_TYPED)
    call_id = env.seed_call(ids["aloware"], direction="inbound", **CALL)
    env.sim.fault("ghl", method="POST", route=route, kind="slow", delay=20)

    # Action 1: a run, killed (SIGKILL) once GHL holds what it wrote.
    env.kill_run_when(lambda: env.sim.records("ghl", collection=collection), f"GHL to store the {killed_after}")
    killed_run = env.last_run_id()
    written = env.sim.records("ghl", collection=collection)
    assert len(written) == 1
    # The delivery was not recorded: it is still open.
    assert env.deliveries() == [
        ("call", "aloware", str(call_id), "ghl", "waiting", 0, None, 1, killed_run, None)]

    # Action 2: GHL answers normally again; rerun.
    env.sim.clear_faults("ghl")
    env.reset_requests()
    env.converge()

    # Expected: what the killed run wrote was found, not written again;
    # exactly one note and one Call message; the delivery is done.
    assert env.sim.records("ghl", collection=collection) == written
    assert env.counts("ghl").get("POST " + route) is None
    (note,) = env.notes()
    assert note["body"] == call_note_body("inbound", call_id)
    (message,) = env.messages()
    assert (message["dateAdded"], message["messageType"]) == (CALL_TIME, "TYPE_CALL")
    run_id = env.last_run_id()
    assert env.deliveries() == [
        ("call", "aloware", str(call_id), "ghl", "done", 1,
         f"note:{note['id']} message:{message['id']}", 1, killed_run, run_id)]

    # And a later run delivers nothing more.
    env.converge()
    assert (len(env.notes()), len(env.messages())) == (1, 1)


def test_call_of_a_contact_not_linked_yet_waits_and_is_delivered_by_the_run_that_links_it(env):
    # Setup: Ann exists only in Aloware, with a call. The first run does not
    # list Aloware's contacts (listing off, no sweep), so it sees the call
    # but not her.
    (aloware_id,) = env.sim.seed("aloware", [{
        "first_name": "Ann", "last_name": "Lee", "phone_number": ANN["phone"]}])
    call_id = env.seed_call(aloware_id, direction="inbound", **CALL)
    env.configure_flows(system_options={"aloware": {"listing": False, "sweep": 0}})

    # Action 1
    env.converge()

    # Expected: the call is journalled and waits; nothing reached GHL.
    assert env.deliveries() == [("call", "aloware", str(call_id), "ghl", "waiting", 0, None, None, 1, None)]
    assert (env.sim.records("ghl"), env.notes(), env.messages()) == ([], [], [])

    # Action 2: Aloware's listing on: this run links Ann (and creates her
    # in GHL).
    env.configure_flows()
    env.converge()

    # Expected: she is linked by run 2, and the same run delivered the call.
    ghl_id = env.only("ghl")["id"]
    assert sorted(env.query("SELECT system, remote_id, person_id, run_id FROM link")) == sorted([
        ("aloware", str(aloware_id), 1, 2), ("ghl", ghl_id, 1, 2),
        ("verity", env.only("verity")["id"], 1, 2)])
    (note,) = env.notes()
    assert (note["contactId"], note["body"]) == (ghl_id, call_note_body("inbound", call_id))
    (message,) = env.messages()
    assert (message["contactId"], message["dateAdded"]) == (ghl_id, CALL_TIME)
    assert env.deliveries() == [
        ("call", "aloware", str(call_id), "ghl", "done", 1,
         f"note:{note['id']} message:{message['id']}", 1, 1, 2)]


def test_texts_land_once_each_in_the_ghl_conversation(env):
    # Setup: Ann (no conversation yet) and Bob (a conversation already)
    # converged; then texts: from Ann, to Ann, from Bob.
    env.configure_flows()
    ann = env.converge_person(ANN_AS_TYPED)
    bob_phone = "+15552010002"
    bob = env.converge_person({"first_name": "Bob", "phone": bob_phone})
    (bob_conv,) = env.sim.seed("ghl", [{"locationId": LOCATION, "contactId": bob["ghl"]}],
                               collection="conversations")
    texts = [("inbound", ANN["phone"], "Hi, is the unit still available?"),
             ("outbound", ANN["phone"], "Yes it is. Want a tour?"),
             ("inbound", bob_phone, "Call me tomorrow")]
    text_ids = [env.seed_text(d, phone, body, createdAt=f"2025-06-01T12:0{i}:00.000Z")
                for i, (d, phone, body) in enumerate(texts)]

    # Action
    env.converge()

    # Expected: Ann got a conversation; Bob's existing one was used.
    convs = {c["contactId"]: c["id"] for c in env.conversations()}
    assert len(env.conversations()) == 2
    assert convs[bob["ghl"]] == bob_conv
    # Expected: one SMS message per text, with direction, body, date and
    # the configured conversation provider.
    messages = env.messages()
    by_body = {m["body"]: m for m in messages}
    assert len(messages) == 3 and sorted(by_body) == sorted(body for _, _, body in texts)
    owners = [ann["ghl"], ann["ghl"], bob["ghl"]]
    for i, (text_id, owner, (direction, _, body)) in enumerate(zip(text_ids, owners, texts)):
        assert by_body[body] == ghl_message(
            by_body[body]["id"], owner, convs[owner], type=2, messageType="TYPE_SMS",
            direction=direction, body=body, conversationProviderId=PROVIDER,
            dateAdded=f"2025-06-01T12:0{i}:00.000Z")
    run_id = env.last_run_id()
    assert env.query("SELECT kind, source, source_id, source_contact, phone, person_id, run_id "
                     "FROM event ORDER BY id") == [
        ("message", "texting", text_id, None, phone, person, run_id)
        for text_id, (_, phone, _), person in zip(text_ids, texts, (1, 1, 2))]
    assert env.deliveries() == [
        ("message", "texting", text_id, "ghl", "done", 1, f"message:{by_body[body]['id']}", person,
         run_id, run_id)
        for text_id, (_, _, body), person in zip(text_ids, texts, (1, 1, 2))]

    # Action 2: rerun.
    env.reset_requests()
    env.converge()

    # Expected: only the listings read; no duplicates.
    assert env.all_counts() == env.only_listings()
    assert env.messages() == messages
    assert len(env.conversations()) == 2


def test_ghl_tags_add_and_remove_the_aloware_contact_on_call_lists(env):
    # Setup: two rules: "call_now" (any case) -> list 101, tags starting
    # "hot" -> list 102; Ann converged without tags.
    env.seed_lists(101, 102)
    env.configure_flows(lists=[("call_now", "case-insensitive", "101"), ("^hot", "regex", "102")])
    ids = env.converge_person(ANN_AS_TYPED)
    aid = ids["aloware"]
    assert env.lists() == {101: [], 102: []}

    def tag_and_run(*tags):
        env.edit("ghl", ids["ghl"], tags=list(tags))
        env.reset_requests()
        env.converge()
        return env.last_run_id()

    # Action 1: a user tags Ann "Call_Now" in GHL.
    run_a = tag_and_run("Call_Now")
    # Expected: she is on list 101 only.
    assert env.lists() == {101: [aid], 102: []}
    assert env.list_members() == [(1, "101", "member", run_a)]
    assert env.write_requests()["aloware"] == {"POST /api/v1/webhook/forms": 1}

    # Action 2: she is tagged "hot-lead" as well; both rules match.
    run_b = tag_and_run("Call_Now", "hot-lead")
    assert env.lists() == {101: [aid], 102: [aid]}
    assert env.list_members() == [(1, "101", "member", run_a), (1, "102", "member", run_b)]

    # Action 3: "Call_Now" is removed.
    run_c = tag_and_run("hot-lead")
    # Expected: off list 101, still on 102 (Aloware removes from every
    # list at once, so 102 was added back, and a notice says so).
    assert env.lists() == {101: [], 102: [aid]}
    assert env.list_members() == [(1, "101", "removed", run_c), (1, "102", "member", run_b)]
    assert env.write_requests()["aloware"] == {
        "POST /api/v1/webhook/powerdialer-remove-contact-from-lists": 1,
        "POST /api/v1/webhook/forms": 1}
    assert [(n[2], n[3], n[4]) for n in env.notices(run_c)] == [("aloware", str(aid), "list-remove")]

    # Action 4: the last tag goes too.
    run_d = tag_and_run()
    assert env.lists() == {101: [], 102: []}
    assert env.list_members() == [(1, "101", "removed", run_c), (1, "102", "removed", run_d)]

    # And a quiet run changes no list.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()
