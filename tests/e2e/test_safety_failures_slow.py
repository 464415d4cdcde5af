"""Issue 6 item 5: a create or append (POST) whose answer does not come in
time is never sent again in place (I2, I11). Its outcome is journalled as
unknown and the next attempt looks first (contact by phone/email, note by
its marker, message by type, direction, date and body), so one slow answer never makes two
records."""
from conftest import ANN, ANN_AS_TYPED, view

PHONE = ANN["phone"]
CALL = {"duration": 65, "disposition": "Interested", "status": "completed", "recording_url": "",
        "created_at": "2025-06-01T12:00:00.000Z"}
# GHL answers a slow request 3 s late; the binary waits 1 s for an answer.
SLOW = 3


def test_a_slow_contact_create_makes_one_ghl_contact(env):
    # Setup: GHL allows duplicate contacts; Ann is in Aloware only; GHL
    # stores the create at once but answers after the binary's timeout.
    env.configure_flows(writes={"backoff": 0}, system_options={"ghl": {"timeout": 1}})
    env.sim.config("ghl", allow_duplicates=True)
    env.seed("aloware", **ANN)
    env.sim.fault("ghl", method="POST", route="/contacts/", kind="slow", delay=SLOW)

    # Action 1: a run; the create times out.
    code, _, err = env.run("run")

    # Expected: partial; the create was sent once, its outcome journalled
    # as unknown; a later attempt (in this run or the next) looked first.
    assert code == 1, err
    assert "op=create attempt=1 final=no outcome=unknown" in err
    assert env.counts("ghl").get("POST /contacts/") == 1
    assert len(env.sim.records("ghl")) == 1

    # Action 2: runs until converged.
    env.run_until_converged()

    # Expected: exactly one GHL contact, linked; no second create was sent.
    (ghl,) = env.sim.records("ghl")
    assert view("ghl", ghl)["phone"] == PHONE
    assert env.counts("ghl").get("POST /contacts/") == 1
    assert ("ghl", ghl["id"]) in env.links()
    assert env.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert env.query("SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'superseded')") == [(0,)]


def test_slow_note_and_message_posts_make_one_note_and_one_message_each(env):
    # Setup: Ann converged; then a call and a text; GHL stores the note, the
    # conversation, the Call message and the SMS message at once but
    # answers each after the binary's timeout.
    env.configure_flows(writes={"backoff": 0}, system_options={"ghl": {"timeout": 1}})
    ids = env.converge_person(ANN_AS_TYPED)
    call_id = env.seed_call(ids["aloware"], direction="inbound", **CALL)
    text_id = env.seed_text("inbound", PHONE, "Is the unit still available?",
                            createdAt="2025-06-01T12:02:00.000Z")
    for route, times in (("/contacts/{id}/notes", 1), ("/conversations/", 1),
                         ("/conversations/messages/inbound", 2)):
        env.sim.fault("ghl", method="POST", route=route, kind="slow", delay=SLOW, times=times)
    env.reset_requests()

    # Action 1: a run.
    code, _, err = env.run("run")

    # Expected: partial; nothing was posted twice; the deliveries whose
    # answer did not come are journalled as unknown.
    assert code == 1, err
    counts = env.counts("ghl")
    assert all(counts.get(f"POST {r}", 0) <= 1 for r in ("/contacts/{id}/notes", "/conversations/"))
    assert "unknown" in {s for (s,) in env.query("SELECT status FROM delivery")}

    # Action 2: runs until converged.
    env.run_until_converged()

    # Expected: one note, one conversation, one Call and one SMS message.
    (note,) = env.notes()
    assert note["body"].endswith(f"aloware_call_id: {call_id}")
    assert len(env.conversations()) == 1
    assert sorted((m["messageType"], m["body"]) for m in env.messages()) == [
        ("TYPE_CALL", None), ("TYPE_SMS", "Is the unit still available?")]
    assert env.query("SELECT status, attempts > 0 FROM delivery") == [("done", 1), ("done", 1)]
    assert env.pending_faults("ghl") == []
