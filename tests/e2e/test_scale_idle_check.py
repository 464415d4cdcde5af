"""Issue 9: an idle run does not read the whole state file to check it.

PRAGMA quick_check reads every page. It runs when the file may not be what
our last clean close left (man/dfreconcile.1, STATE FILE): no record of a
clean close (<state>-checked), a write-ahead log left with frames in it, a
file changed or replaced since, or a last check a day old. A quiet minute
after a clean run skips it. Damage made while no run had the file is still
refused (test_safety_statefile_input_state.py)."""
import os
import re
import signal
import stat
import time

from conftest import ANN_AS_TYPED, wait_until


def check_record(env):
    return env.state_path.with_name(env.state_path.name + "-checked")


def state_check(err: str) -> tuple[str, str]:
    """(result, reason) of the run's event=state-check line."""
    lines = [line for line in err.splitlines() if "event=state-check" in line]
    assert len(lines) == 1, err
    result = re.search(r"result=(\w+)", lines[0]).group(1)
    reason = re.search(r'reason="([^"]*)"', lines[0]).group(1)
    return result, reason


def rewrite_record(env, checked_s: int) -> None:
    """The record as a clean close would write it for the file as it is
    now, saying it was checked at checked_s."""
    sb = os.stat(env.state_path)
    check_record(env).write_text(
        f"dfreconcile-checked 1 {sb.st_dev} {sb.st_ino} {sb.st_size} {sb.st_mtime_ns // 10**9} "
        f"{sb.st_mtime_ns % 10**9} {sb.st_ctime_ns // 10**9} {sb.st_ctime_ns % 10**9} {checked_s}\n")


def test_a_clean_run_records_the_file_and_the_next_run_skips_quick_check(env):
    # Setup: Ann in GHL, a first run creates the state and converges.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    assert not env.state_path.with_name("state.db-wal").exists()
    record = check_record(env)
    assert record.exists()
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    fields = record.read_text().split()
    sb = os.stat(env.state_path)
    assert fields[:5] == ["dfreconcile-checked", "1", str(sb.st_dev), str(sb.st_ino), str(sb.st_size)]

    # Action: an idle run, then another.
    first = env.converge()
    second = env.converge()

    # Expected: neither reads the whole file; the record still says when
    # the file was last checked (the first run that had no record).
    assert state_check(first) == ("skipped", "unchanged since the last clean close")
    assert state_check(second) == ("skipped", "unchanged since the last clean close")
    assert record.read_text().split()[9] == fields[9]


def test_a_state_file_without_a_record_or_changed_since_is_checked(env):
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()

    # No record of a clean close (an earlier version, a deleted file).
    check_record(env).unlink()
    assert state_check(env.converge()) == ("ok", "no record of a clean close")
    assert state_check(env.converge())[0] == "skipped"

    # Another program wrote the file while no run had it.
    env.query("CREATE TABLE scratch (x)")
    assert state_check(env.converge()) == ("ok", "the file changed since the last clean close")
    assert state_check(env.converge())[0] == "skipped"


def test_the_check_runs_again_once_a_day_and_refuses_damage_the_times_do_not_show(env):
    # Setup: a converged state; then damage that leaves the file looking
    # like our last clean close (a failing disk): 8 KB of garbage over
    # pages 3 and 4, and the record rewritten to the file as it is now.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("ghl", env.only("ghl")["id"], first_name="Anna")
    with open(env.state_path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(bytes((i * 37 + 11) % 256 for i in range(8192)))
    rewrite_record(env, int(time.time()) - 25 * 3600)
    env.reset_requests()

    # Action: a run a day after the last check.
    code, out, err = env.run("run")

    # Expected: checked, refused before any request.
    assert code == 5, err
    assert "damaged" in err and "init-state" in err, err
    assert {s: env.counts(s) for s in env.systems} == {s: {} for s in env.systems}


def test_a_killed_run_leaves_its_log_and_the_next_run_checks_the_file(env):
    # Setup: a converged state; a run held in its GHL search (the
    # simulator answers 5 s late) is killed there, its log not yet
    # checkpointed into the file.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="delay", delay=5, times=1)
    wal = env.state_path.with_name("state.db-wal")
    proc = env.popen("run")
    try:
        wait_until(lambda: wal.exists() and wal.stat().st_size > 0 and env.pending_faults("ghl") == [],
                   what="the run to write its log and start its GHL search")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()

    # Action: the next run.
    err = env.converge()

    # Expected: it checks the whole file first.
    assert state_check(err) == ("ok", "a write-ahead log is left: the last run did not close cleanly, "
                                      "or one is running")
    assert state_check(env.converge())[0] == "skipped"
