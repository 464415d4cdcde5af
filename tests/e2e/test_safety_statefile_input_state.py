"""Issue 6, item 7: a state file that cannot be trusted is never used.

The state file carries dfreconcile's application_id; a run or a reader
refuses a damaged, emptied or foreign file with exit 5 and a message naming
the file and `dfreconcile init-state`, which moves a refused file aside and
starts a new one. State, WAL, SHM and lock files are 0600; a run cannot dump
core."""
import os
import re
import sqlite3
import stat

from conftest import ANN, ANN_AS_TYPED, REPO, RUN_TIMEOUT, wait_until

APPLICATION_ID = 0x64667263  # "dfrc", man/dfreconcile.1 (STATE FILE)
STATE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"


def assert_refused(env, code, out, err, what):
    assert code == 5, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert str(env.state_path) in err, err
    assert what in err, err
    assert "init-state" in err, err


def ann_everywhere_then_renamed(env) -> str:
    """Converges Ann, then renames her in GHL: the next run has writes to send."""
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("ghl", ghl_id, first_name="Anna")
    env.reset_requests()
    return ghl_id


def test_a_damaged_state_file_is_refused_and_nothing_is_sent(env):
    # Setup: a converged state with a write to send, then 8 KB of garbage
    # over its pages 3 and 4 (the header stays intact).
    ann_everywhere_then_renamed(env)
    assert env.state_path.stat().st_size > 6 * 4096
    with open(env.state_path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(bytes((i * 37 + 11) % 256 for i in range(8192)))

    # Action: a run, then the readers.
    code, out, err = env.run("run")

    # Expected: refused before any request; nothing was written anywhere.
    assert_refused(env, code, out, err, "damaged")
    assert env.write_requests() == {}
    assert {s: env.counts(s) for s in env.systems} == {s: {} for s in env.systems}
    for args in (("status",), ("report",), ("explain", ANN["phone"])):
        code, out, err = env.run(*args)
        assert_refused(env, code, out, err, "damaged")


def test_an_emptied_state_file_is_refused_and_stays_empty(env):
    # Setup: a converged state (opt-out registry, links), then the file is
    # truncated to zero bytes.
    ann_everywhere_then_renamed(env)
    env.state_path.write_bytes(b"")

    # Action: a run and a report.
    code, out, err = env.run("run")
    assert_refused(env, code, out, err, "empty")
    code2, out2, err2 = env.run("status")

    # Expected: the file did not silently become a new state; no request.
    assert_refused(env, code2, out2, err2, "empty")
    assert env.state_path.stat().st_size == 0
    assert {s: env.counts(s) for s in env.systems} == {s: {} for s in env.systems}


def test_another_programs_sqlite_file_is_refused_and_not_migrated(env):
    # Setup: someone points state_path at another program's database.
    db = sqlite3.connect(env.state_path)
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO contacts (name) VALUES ('kept')")
    db.commit()
    db.close()
    env.seed("ghl", **ANN_AS_TYPED)
    before = env.state_path.read_bytes()

    # Action: a run, and the readers.
    code, out, err = env.run("run")
    assert_refused(env, code, out, err, "not a dfreconcile state file")
    for args in (("status",), ("report",)):
        c, o, e = env.run(*args)
        assert_refused(env, c, o, e, "not a dfreconcile state file")

    # Expected: the file is byte for byte what it was; nothing was sent.
    assert env.state_path.read_bytes() == before
    assert env.query(STATE_TABLES) == [("contacts",)]
    assert env.write_requests() == {}


def test_a_new_state_file_carries_the_application_id_and_an_old_one_is_adopted(env):
    # Setup/action: a first run creates the file.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()

    # Expected: it carries dfreconcile's application_id.
    assert env.query("PRAGMA application_id") == [(APPLICATION_ID,)]

    # A state file written by an earlier dfreconcile (application_id 0, our
    # schema) is still ours: read, then stamped by the next run.
    db = sqlite3.connect(env.state_path)
    db.execute("PRAGMA application_id = 0")
    db.commit()
    db.close()
    code, out, err = env.run("status")
    assert code == 0, err
    env.converge()
    assert env.query("PRAGMA application_id") == [(APPLICATION_ID,)]


def test_init_state_moves_a_refused_file_aside_and_starts_fresh(env):
    # Setup: a refused (emptied) state file.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.state_path.write_bytes(b"")

    # Action: init-state, then a run.
    code, out, err = env.run("init-state")

    # Expected: the refused file kept under a new name, a new state made.
    assert code == 0, err
    aside = [p for p in env.dir.iterdir() if p.name.startswith("state.db.refused-")]
    assert len(aside) == 1, list(env.dir.iterdir())
    assert aside[0].stat().st_size == 0
    assert str(aside[0]) in out
    assert env.query("PRAGMA application_id") == [(APPLICATION_ID,)]
    assert env.query("SELECT count(*) FROM run") == [(0,)]
    env.converge()
    assert env.query("SELECT count(*) FROM run") == [(1,)]

    # A usable state file is never replaced.
    code, out, err = env.run("init-state")
    assert code == 5, err
    assert "usable" in err and str(env.state_path) in err
    assert env.query("SELECT count(*) FROM run") == [(1,)]
    assert len([p for p in env.dir.iterdir() if p.name.startswith("state.db.refused-")]) == 1


def test_init_state_creates_a_missing_file(env):
    code, out, err = env.run("init-state")
    assert code == 0, err
    assert env.query("PRAGMA application_id") == [(APPLICATION_ID,)]
    assert env.query("SELECT count(*) FROM run") == [(0,)]
    assert [p.name for p in env.dir.iterdir() if p.name.startswith("state.db.refused")] == []


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_state_wal_shm_and_lock_files_are_0600_and_a_run_cannot_dump_core(env):
    # Setup: a first run creates the files; the second one is held in its
    # GHL search (the simulator answers 3 s late) while we look at it.
    env.seed("ghl", **ANN_AS_TYPED)
    os.umask(0o022)
    env.converge()
    assert mode(env.state_path) == 0o600
    assert mode(env.lock_path) == 0o600
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="delay", delay=3, times=1)

    proc = env.popen("run")
    try:
        wal = env.state_path.with_name("state.db-wal")
        shm = env.state_path.with_name("state.db-shm")
        wait_until(lambda: wal.exists() and shm.exists() and env.pending_faults("ghl") == [],
                   what="the run to open its state and start its GHL search")
        assert proc.poll() is None
        # Expected: the WAL and SHM files are 0600 too.
        assert mode(wal) == 0o600 and mode(shm) == 0o600
        # Expected: core dumps are off (soft and hard limit 0).
        limits = open(f"/proc/{proc.pid}/limits").read()
        core = [line for line in limits.splitlines() if line.startswith("Max core file size")]
        assert core and core[0].split()[4:6] == ["0", "0"], core
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err


def test_help_and_man_page_document_init_state_and_the_application_id(env):
    code, out, err = env.run("--help")
    assert code == 0
    assert re.search(r"^  init-state\b", out, re.M), out
    page = (REPO / "man" / "dfreconcile.1").read_text().replace("\\-", "-")
    assert ".B init-state" in page
    assert "1684435555" in page and "0x64667263" in page
    assert "quick_check" in page
