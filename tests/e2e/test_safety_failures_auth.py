"""Issue 6 item 4: failures are classified (I11). A 401/403 stops that
system for the run and keeps its work pending and untouched (exit 6); a
refused write (other 4xx) is kept with the system's answer, reported, and
retried on change or on `dfreconcile retry`; a used-up request budget is
not a failed attempt."""
import json

import pytest

from conftest import ANN, ANN_AS_TYPED

PHONE = ANN["phone"]
CALL = {"duration": 65, "disposition": "Interested", "status": "completed", "recording_url": "",
        "created_at": "2025-06-01T12:00:00.000Z"}
EXIT_CREDENTIALS = 6


def ghl_requests(env) -> list:
    return [(e["method"], e["path"], e["status"]) for e in env.sim.requests("ghl")["log"]]


def break_ghl(env, how: str) -> None:
    """GHL refuses our credentials: a wrong token (401) or a token that
    lost access (403 on every request)."""
    if how == "401":
        text = env.config_path.read_text()
        env.config_path.write_text(text.replace('token = "ghl-test-token"', 'token = "expired-token"'))
    else:
        env.sim.fault("ghl", kind="status", status=403, times=1000)


def fix_ghl(env, how: str) -> None:
    if how == "401":
        text = env.config_path.read_text()
        env.config_path.write_text(text.replace('token = "expired-token"', 'token = "ghl-test-token"'))
    else:
        env.sim.clear_faults("ghl")


@pytest.mark.parametrize("how", ["401", "403"])
def test_bad_credentials_keep_every_write_pending_until_the_token_is_fixed(env, how):
    # Setup: Ann converged in every system (texts, calls, GHL Call messages
    # on); then she is renamed in Aloware, texts STOP, texts a question and
    # a call with her is logged in Aloware. GHL's credentials go bad.
    env.configure_flows(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    stop_id = env.seed_text("inbound", PHONE, "STOP", createdAt="2025-06-01T12:01:00.000Z")
    text_id = env.seed_text("inbound", PHONE, "Is the unit still available?",
                            createdAt="2025-06-01T12:02:00.000Z")
    call_id = env.seed_call(ids["aloware"], direction="inbound", **CALL)
    break_ghl(env, how)
    env.reset_requests()

    # Action 1: a run with GHL's credentials refused.
    code, out, err = env.run("run")

    # Expected: exit 6, the cause named on stderr and in the run row.
    assert code == EXIT_CREDENTIALS, err
    assert f"ghl: credentials refused (HTTP {how})" in err
    run1 = env.last_run_id()
    ((status, exit_code, message),) = env.query("SELECT status, exit_code, message FROM run WHERE id = ?",
                                                (run1,))
    assert (status, exit_code) == ("credentials", EXIT_CREDENTIALS)
    assert f"ghl: credentials refused (HTTP {how})" in message
    assert "expired-token" not in err + message
    # Expected: GHL got exactly one request (its first poll); no poll of a
    # later stream, no write, no delivery.
    assert ghl_requests(env) == [("POST", "/contacts/search", int(how))]
    # Expected: the other systems got their writes.
    assert env.sim.record("verity", ids["verity"])["firstName"] == "Annie"
    assert env.sim.record("verity", ids["verity"])["optOuts"]["sms"] is True
    # Expected: GHL's write and deliveries wait, untouched (0 attempts).
    assert env.query("SELECT op, status, attempts, last_error FROM outbox WHERE system = 'ghl' "
                     "AND status <> 'superseded'") == [("update", "pending", 0, None)]
    assert sorted(env.query("SELECT e.source_id, d.status, d.attempts FROM delivery d "
                            "JOIN event e ON e.id = d.event_id WHERE d.target = 'ghl'")) == sorted([
        (str(call_id), "waiting", 0), (stop_id, "waiting", 0), (text_id, "waiting", 0)])
    report = env.report_json()
    assert f"ghl: credentials refused (HTTP {how})" in report["run"]["message"]
    code, text, _ = env.run("report")
    assert code == 0 and f"ghl: credentials refused (HTTP {how})" in text

    # Action 2: the token is fixed; a run.
    fix_ghl(env, how)
    env.reset_requests()
    env.converge()

    # Expected: every planned GHL write and delivery went through, once.
    ghl = env.sim.record("ghl", ids["ghl"])
    assert ghl["firstName"] == "Annie"
    assert ghl["dndSettings"] == {"SMS": {"status": "active"}}
    (note,) = env.notes()
    assert note["body"].endswith(f"aloware_call_id: {call_id}")
    assert sorted((m["messageType"], m["body"]) for m in env.messages()) == [
        ("TYPE_CALL", None), ("TYPE_SMS", "Is the unit still available?"), ("TYPE_SMS", "STOP")]
    assert env.query("SELECT op, status, attempts FROM outbox WHERE system = 'ghl' "
                     "AND status <> 'superseded' AND run_id > 1") == [("update", "done", 1)]
    assert env.query("SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'superseded')") == [(0,)]
    assert env.query("SELECT count(*) FROM delivery WHERE status <> 'done'") == [(0,)]
    assert env.query("SELECT d.attempts FROM delivery d WHERE d.target = 'ghl'") == [(1,), (1,), (1,)]

    # And the next run is quiet.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()


def test_credentials_refused_on_a_write_stop_the_system_for_the_rest_of_the_run(env):
    # Setup: Ann and Bob converged; both renamed in Aloware; GHL answers
    # the first PUT with 401 (a token revoked during the run).
    env.write_config(writes={"backoff": 0})
    ann = env.converge_person(ANN_AS_TYPED)
    bob = env.converge_person({"first_name": "Bob", "phone": "+15552010002"})
    env.edit("aloware", ann["aloware"], first_name="Annie")
    env.edit("aloware", bob["aloware"], first_name="Robert")
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=401, times=1)
    env.reset_requests()

    # Action 1: a run.
    code, _, err = env.run("run")

    # Expected: exit 6; after the 401 nothing more went to GHL; both GHL
    # writes wait untouched; Verity got both.
    assert code == EXIT_CREDENTIALS, err
    log = ghl_requests(env)
    assert log[-1] == ("PUT", log[-1][1], 401)
    assert [r for r in log if r[0] == "PUT"] == [log[-1]]
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND run_id = ?",
                     (env.last_run_id(),)) == [("pending", 0), ("pending", 0)]
    assert sorted(v["first_name"] for v in env.views("verity")) == ["Annie", "Robert"]

    # Action 2: GHL accepts the token again; a run.
    env.converge()
    assert sorted(v["first_name"] for v in env.views("ghl")) == ["Annie", "Robert"]
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("done", 1), ("done", 1)]


def test_a_refused_write_is_kept_with_the_answer_and_sent_again_on_retry(env):
    # Setup: Ann converged; renamed in Aloware; GHL refuses the PUT once
    # with 422 and a body naming the problem.
    env.write_config(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=422, times=1)

    # Action 1: a run.
    code, out, err = env.run("run")

    # Expected: partial; the write is kept as refused, with the answer.
    assert code == 1, err
    ((status, attempts, last_error),) = env.query(
        "SELECT status, attempts, last_error FROM outbox WHERE system = 'ghl' AND op = 'update'")
    assert (status, attempts) == ("refused", 1)
    assert last_error.startswith(f"ghl: PUT /contacts/{ids['ghl']}: HTTP 422: ")
    assert "ghl-test-token" not in last_error and len(last_error) < 512
    # Writes waiting across runs are shown by status (issue 8); the run's
    # own report still shows this run's refused write.
    code, out, _ = env.run("status", "--format", "json")
    pending = json.loads(out)["writes_waiting"]
    assert [(p["system"], p["status"], p["last_error"]) for p in pending] == [("ghl", "refused", last_error)]
    code, text, _ = env.run("status")
    assert "refused" in text and "HTTP 422" in text
    code, text, _ = env.run("report")
    assert "refused" in text and "HTTP 422" in text

    # Action 2: a run with nothing changed: the refused write is not resent.
    env.reset_requests()
    code, out, err = env.run("run")
    assert code in (0, 1), err
    assert "PUT /contacts/{id}" not in env.counts("ghl")
    assert env.query("SELECT status FROM outbox WHERE system = 'ghl' AND op = 'update'") == [("refused",)]

    # Action 3: `dfreconcile retry ghl`, then a run.
    code, out, err = env.run("retry", "ghl")
    assert code == 0, err
    assert out == "1 write and 0 deliveries are due again\n"
    env.reset_requests()
    env.converge()

    # Expected: the write went through, once.
    assert env.counts("ghl").get("PUT /contacts/{id}") == 1
    assert env.sim.record("ghl", ids["ghl"])["firstName"] == "Annie"
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("done", 1)]


def test_a_refused_write_is_superseded_when_the_record_changes(env):
    # Setup: as above, GHL refuses the rename once.
    env.write_config(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=422, times=1)
    code, _, err = env.run("run")
    assert code == 1, err

    # Action: the person changes again; a run.
    env.edit("aloware", ids["aloware"], last_name="Leigh")
    env.converge()

    # Expected: the new plan replaced the refused write and went through.
    ghl = env.sim.record("ghl", ids["ghl"])
    assert (ghl["firstName"], ghl["lastName"]) == ("Annie", "Leigh")
    assert env.query("SELECT status FROM outbox WHERE system = 'ghl' AND op = 'update' ORDER BY id") == [
        ("superseded",), ("done",)]


def test_a_refused_write_is_sent_again_once_the_configuration_changes(env):
    # Setup: as above, GHL refuses the rename once; a second run leaves it.
    env.write_config(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=422, times=1)
    code, _, err = env.run("run")
    assert code == 1, err
    env.reset_requests()
    env.run("run")
    assert "PUT /contacts/{id}" not in env.counts("ghl")

    # Action: the configuration changes (a setting that shapes GHL writes).
    env.write_config(writes={"backoff": 0}, system_options={"ghl": {"conversation_provider_id": "prov-2"}})
    env.reset_requests()
    env.converge()

    # Expected: the refused write was sent again, once, and is done.
    assert env.counts("ghl").get("PUT /contacts/{id}") == 1
    assert env.sim.record("ghl", ids["ghl"])["firstName"] == "Annie"
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("done", 2)]


def test_a_refused_delivery_is_kept_and_sent_again_on_retry_of_its_record(env):
    # Setup: Ann converged; a call logged in Aloware; GHL refuses the note
    # once with 422.
    env.configure_flows(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    call_id = env.seed_call(ids["aloware"], direction="inbound", **CALL)
    env.sim.fault("ghl", method="POST", route="/contacts/{id}/notes", kind="status", status=422, times=1)

    # Action 1: a run.
    code, _, err = env.run("run")

    # Expected: partial; the delivery is refused with GHL's answer.
    assert code == 1, err
    ((status, attempts, last_error),) = env.query("SELECT status, attempts, last_error FROM delivery")
    assert (status, attempts) == ("refused", 1)
    assert last_error.startswith(f"ghl: POST /contacts/{ids['ghl']}/notes: HTTP 422: ")
    assert env.notes() == []

    # Action 2: a run does not resend it; `retry ghl:ID` then a run does.
    env.reset_requests()
    env.run("run")
    assert "POST /contacts/{id}/notes" not in env.counts("ghl")
    code, out, err = env.run("retry", f"ghl:{ids['ghl']}")
    assert (code, out) == (0, "0 writes and 1 delivery are due again\n"), err
    env.converge()

    # Expected: one note; the delivery is done.
    (note,) = env.notes()
    assert note["body"].endswith(f"aloware_call_id: {call_id}")
    assert env.query("SELECT status, attempts FROM delivery") == [("done", 1)]


def test_retry_refuses_an_unknown_system(env):
    code, out, err = env.run("retry", "nosuch:1")
    assert code == 2 and out == ""
    assert 'retry: "nosuch:1" is not a configured SYSTEM or SYSTEM:ID' in err


def test_a_used_up_request_budget_is_not_a_failed_attempt(env):
    # Setup: Ann converged; renamed in Aloware; GHL may take one request per
    # run (its poll), so the PUT cannot be sent.
    env.write_config(writes={"backoff": 0})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.write_config(writes={"backoff": 0, "max_attempts": 1}, system_options={"ghl": {"max_requests": 1}})

    # Action: a run.
    code, _, err = env.run("run")

    # Expected: partial; the write waits untouched (no attempt counted, not
    # given up although writes.max_attempts is 1).
    assert code == 1, err
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("pending", 0)]

    # Action 2: the budget is raised; a run sends it.
    env.write_config(writes={"backoff": 0, "max_attempts": 1})
    env.converge()
    assert env.sim.record("ghl", ids["ghl"])["firstName"] == "Annie"
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("done", 1)]


def test_a_system_whose_poll_failed_gets_no_writes_or_deliveries_that_run(env):
    # Setup: Ann converged; renamed in Aloware; a call logged; GHL's search
    # answers 503 more often than a run retries it.
    env.configure_flows(writes={"backoff": 0}, system_options={"ghl": {"max_attempts": 2}})
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    call_id = env.seed_call(ids["aloware"], direction="inbound", **CALL)
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="status", status=503, times=2)
    env.reset_requests()

    # Action 1: a run.
    code, _, err = env.run("run")

    # Expected: partial; GHL got only its two search attempts; its write
    # and the delivery wait untouched; Verity got the rename.
    assert code == 1, err
    assert ghl_requests(env) == [("POST", "/contacts/search", 503)] * 2
    assert env.query("SELECT status, attempts FROM outbox WHERE system = 'ghl' AND op = 'update'") == [
        ("pending", 0)]
    assert env.query("SELECT status, attempts FROM delivery") == [("waiting", 0)]
    assert env.sim.record("verity", ids["verity"])["firstName"] == "Annie"

    # Action 2: GHL answers again; a run.
    env.converge()
    assert env.sim.record("ghl", ids["ghl"])["firstName"] == "Annie"
    (note,) = env.notes()
    assert note["body"].endswith(f"aloware_call_id: {call_id}")
