"""One run at a time (I7): a second invocation exits at once with code 3."""
from conftest import ANN, ANN_AS_TYPED, RUN_TIMEOUT, view, wait_until


def test_second_run_while_one_runs_exits_3_and_the_first_completes(env):
    # Setup: Ann in GHL; GHL's search answers 3 s late, once, so the first
    # run is still polling while the second starts.
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="delay", delay=3, times=1)
    assert not env.lock_path.exists()

    # Action: start the first run; once it holds the lock and its search is
    # in flight (the simulator took the delay fault), start the second.
    first = env.popen("run")
    try:
        wait_until(lambda: env.lock_path.exists() and env.pending_faults("ghl") == [],
                   what="the first run to hold the lock and start its GHL search")
        assert first.poll() is None, "the first run ended before the second could start"
        code, out, err = env.run("run")
        first_out, first_err = first.communicate(timeout=RUN_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    # Expected: the second run refused with exit 3 and exactly one line.
    assert code == 3
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dfreconcile: ") and "lock" in lines[0]

    # Expected: the first run completed normally and converged.
    assert first.returncode == 0, first_err
    assert view("aloware", env.only("aloware")) == ANN
    assert view("verity", env.only("verity")) == ANN
    # Only the first run is journalled, and it finished cleanly.
    assert env.query("SELECT id, mode, status, exit_code FROM run") == [(1, "run", "ok", 0)]
    # The second run sent nothing: one search in all (the delayed one), and
    # the first run's read of the new contact (search has no DND settings).
    assert env.counts("ghl") == {"POST /contacts/search": 1, "GET /contacts/{id}": 1}
