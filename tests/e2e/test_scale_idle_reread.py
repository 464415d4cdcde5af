"""Issue 9: a record re-read unchanged is compared before anything else.

Each run lists again what changed within the lookback, and a full run lists
everything. A linked record whose listed values and update time are what
the last run that took it in read (its digest, snapshot.listed_digest) is
not normalised, compared or written again: its snapshot row stays as it
was. A full run still marks its person for the merge (drift repair) and
still reads every GHL contact whole (test_safety_edits_links.py). Any change
of a value, even one that keeps the update time, is observed as before."""
from conftest import ANN_AS_TYPED, view


def snapshot_rows(env):
    return env.query("SELECT * FROM snapshot ORDER BY system, remote_id")


def polled(env, run_id):
    return dict(env.query("SELECT system, polled FROM run_system WHERE run_id = ?", (run_id,)))


def test_a_record_re_read_unchanged_leaves_its_snapshot_row_as_it_was(env):
    # Setup: Ann in GHL, created in Aloware and Verity, and a run after
    # that re-reads what the first one wrote.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()
    before = snapshot_rows(env)

    # Action: a run within the lookback lists the three records again.
    env.converge()

    # Expected: listed, and nothing in their snapshot rows moved.
    run_id = env.last_run_id()
    assert polled(env, run_id) == {"ghl": 1, "aloware": 1, "verity": 1}
    assert snapshot_rows(env) == before
    assert env.query("SELECT count(*) FROM observed WHERE run_id = ?", (run_id,)) == [(0,)]


def test_a_full_run_marks_every_listed_record_seen(env):
    # Setup: Ann converged in the three systems, re-read once.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()

    # Action: a full run lists them all again, unchanged.
    code, out, err = env.run("run", "--full", "--max-change-share", "1")

    # Expected: every record it listed is marked seen by it (what a full
    # run does not list becomes missing), and nothing is written.
    assert code == 0, err
    run_id = env.last_run_id()
    assert env.query("SELECT system FROM snapshot WHERE seen_run = ? ORDER BY system", (run_id,)) == [
        ("aloware",), ("ghl",), ("verity",)]
    assert env.query("SELECT count(*) FROM snapshot WHERE missing_run IS NOT NULL") == [(0,)]
    assert env.query("SELECT count(*) FROM outbox WHERE run_id = ?", (run_id,)) == [(0,)]


def test_an_edit_that_keeps_the_update_time_is_still_observed(env):
    # Setup: Ann converged, re-read once; then her first name is changed in
    # Verity and her city in GHL, each with its update time left as it was.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()
    verity = env.only("verity")
    env.sim.edit("verity", verity["id"], {"firstName": "Annie", "updatedAt": verity["updatedAt"]})
    ghl = env.sim.record("ghl", ghl_id)
    env.sim.edit("ghl", ghl_id, {"city": "Denver", "dateUpdated": ghl["dateUpdated"]})

    # Action
    env.converge()

    # Expected: both edits observed and sent everywhere.
    run_id = env.last_run_id()
    assert sorted(env.query("SELECT system, field, old_value, new_value FROM observed WHERE run_id = ?",
                            (run_id,))) == [("ghl", "city", "Austin", "Denver"),
                                            ("verity", "first_name", "Ann", "Annie")]
    assert view("ghl", env.only("ghl"))["first_name"] == "Annie"
    assert view("verity", env.only("verity"))["city"] == "Denver"
    assert view("aloware", env.only("aloware"))["city"] == "Denver"
