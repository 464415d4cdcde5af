"""Runs end, and say so (issue 6, item 9): a listing that repeats its cursor
fails that stream for the run; an answer larger than the cap is refused, not
buffered; a run past its deadline sends nothing more, commits and exits
partial; writes still waiting for their retry time make the run partial."""
from conftest import ANN, ANN_AS_TYPED

LISTING = ("GET", "/api/v1/contacts")


def listing_requests(env, system="verity"):
    method, path = LISTING
    return [e["status"] for e in env.sim.requests(system)["log"]
            if e["method"] == method and e["path"] == path]


def seed_people(env, system, n):
    return [env.seed(system, first_name=f"P{i}", last_name="Test", phone=f"+1555301{i:04d}")
            for i in range(n)]


def test_a_listing_that_repeats_its_cursor_fails_the_stream_for_the_run(env):
    # Setup: three Verity contacts, one per page; the listing hands back the
    # cursor it was asked with (a server stuck on its second page).
    env.write_config(system_options={"verity": {"page_size": 1}}, extra="max_pages = 50;")
    seed_people(env, "verity", 3)
    env.sim.fault("verity", method="GET", route="/api/v1/contacts", kind="repeat-cursor", times=100)

    # Action
    code, out, err = env.run("run")

    # Expected: the second answer repeats the cursor the first handed out, so
    # the stream stops there: two requests, not max_pages; the run is partial
    # and says why; the cursor stays at the last page that moved forward.
    assert code == 1, err
    assert listing_requests(env) == [200, 200]
    assert "repeated its cursor" in err
    assert env.query("SELECT count(*) FROM snapshot WHERE system = 'verity'") == [(2,)]


def test_an_answer_larger_than_the_cap_is_refused_and_the_run_is_partial(env):
    # Setup: Ann in GHL and Verity; Verity's listing answers with 40 MiB (an
    # ignored key padded out), more than the default cap of 32 MiB.
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("verity", **ANN)
    env.sim.fault("verity", method="GET", route="/api/v1/contacts", kind="oversized",
                  size=40 << 20, times=10)

    # Action
    code, out, err = env.run("run")

    # Expected: the answer was refused once (the same request would bring the
    # same answer), the run is partial and names the cap; the other systems
    # went on.
    assert code == 1, err
    assert "larger than 32 MiB" in err
    assert listing_requests(env) == [200]
    assert env.query("SELECT count(*) FROM snapshot WHERE system = 'ghl'") == [(1,)]


def test_a_run_past_its_deadline_sends_nothing_more_and_exits_partial(env):
    # Setup: Ann in GHL (so a full run would create her in Aloware and
    # Verity); Verity's listing of five one-record pages hangs 2 s per
    # answer; the run's deadline is 3 s.
    env.write_config(system_options={"verity": {"page_size": 1}}, extra="deadline = 3;")
    env.seed("ghl", **ANN_AS_TYPED)
    seed_people(env, "verity", 5)
    env.sim.fault("verity", method="GET", route="/api/v1/contacts", kind="delay", delay=2, times=10)

    # Action
    code, out, err = env.run("run")

    # Expected: the run stopped at its deadline: Verity's listing was not read
    # to its end, no write was sent anywhere, what was read is committed, and
    # the run exits partial saying so.
    assert code == 1, err
    assert "deadline of 3 s" in err
    assert len(listing_requests(env)) <= 2
    assert env.write_requests() == {}
    assert env.query("SELECT status FROM run ORDER BY id DESC LIMIT 1") == [("partial",)]

    # Expected: the next run (no deadline trouble) finishes the job.
    env.sim.clear_faults("verity")
    env.converge()
    assert len(env.sim.records("aloware")) == 6


def test_a_run_exits_partial_while_writes_wait_for_their_retry_time(env):
    # Setup: Ann in GHL; Verity refuses every create of the first run with
    # 503; a failed write waits an hour before its next attempt.
    env.write_config(system_options={"verity": {"max_attempts": 1}}, writes={"backoff": 3600})
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.fault("verity", method="POST", route="/api/v1/contacts", kind="status", status=503,
                  times=5)
    code, out, err = env.run("run")
    assert code == 1, err

    # Action: the next run, while the write waits.
    code, out, err = env.run("run")

    # Expected: the run is partial and says a write is waiting.
    assert code == 1, err
    assert "event=work-waiting writes=1 deliveries=0" in err
    assert env.query("SELECT system, op, status FROM outbox WHERE status = 'pending'") == [
        ("verity", "create", "pending")]
