"""Data safety, issue 6 item 1: a user's edit made while we write the same
record is neither lost nor overwritten, and `run --full` repairs drift.

The simulators' `edit` fault (tests/sim/README.md) applies a user's edit to
the record at the moment our PUT or PATCH arrives, so the system's answer to
our write already holds it: the answer is the only place we can learn of it,
since the record's next listing equals what the system answered.
"""
from conftest import ANN, ANN_AS_TYPED, view

GHL_PUT = {"method": "PUT", "route": "/contacts/{id}"}
VERITY_PATCH = {"method": "PATCH", "route": "/api/v1/contacts/{id}"}


def agreed(env, field: str) -> str:
    (row,) = env.query("SELECT value FROM field_value WHERE person_id = 1 AND field = ?", (field,))
    return row[0]


def test_a_user_edit_in_the_answer_to_our_ghl_put_reaches_every_system(env):
    # Setup: Ann converged everywhere; then Verity's user changes her first
    # name, so the next run PUTs it to GHL. At that moment a GHL user
    # changes her city and last name.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("verity", env.only("verity")["id"], first_name="Anna")
    env.sim.fault("ghl", kind="edit", fields={"city": "Dallas", "lastName": "Lee-Park"}, **GHL_PUT)

    # Action: the run that writes, and the one after it.
    env.converge()
    assert env.pending_faults("ghl") == [], "the PUT was not sent"
    env.converge()

    # Expected: both users' edits everywhere, in the agreed values too.
    expected = dict(ANN, first_name="Anna", city="Dallas", last_name="Lee-Park")
    assert dict(view("ghl", env.only("ghl")), phone=ANN["phone"], email=ANN["email"]) == expected
    assert view("aloware", env.only("aloware")) == expected
    assert view("verity", env.only("verity")) == expected
    assert (agreed(env, "city"), agreed(env, "last_name"), agreed(env, "first_name")) == \
        ("Dallas", "Lee-Park", "Anna")
    # The GHL user's edit was journalled as an observation of GHL.
    ghl_id = env.only("ghl")["id"]
    assert sorted(env.query("SELECT system, remote_id, field, old_value, new_value FROM observed "
                            "WHERE system = 'ghl' AND field IN ('city', 'last_name') "
                            "AND old_value IS NOT NULL")) == [
        ("ghl", ghl_id, "city", "Austin", "Dallas"),
        ("ghl", ghl_id, "last_name", "Lee", "Lee-Park")]

    # And a later merge of the person (a new edit elsewhere) does not write
    # the old values back into GHL.
    env.edit("aloware", env.only("aloware")["id"], first_name="Annie")
    env.converge()
    env.converge()
    expected["first_name"] = "Annie"
    assert dict(view("ghl", env.only("ghl")), phone=ANN["phone"], email=ANN["email"]) == expected
    assert view("verity", env.only("verity")) == expected

    # Converged: a further run reads only.
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}


def test_a_user_edit_in_the_answer_to_our_verity_patch_reaches_every_system(env):
    # Setup: a GHL edit of Ann's first name will be PATCHed to Verity; at
    # that moment a Verity user changes her city.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("ghl", ghl_id, first_name="Anna")
    env.sim.fault("verity", kind="edit", fields={"city": "Boston"}, **VERITY_PATCH)

    env.converge()
    assert env.pending_faults("verity") == [], "the PATCH was not sent"
    env.converge()

    expected = dict(ANN, first_name="Anna", city="Boston")
    assert dict(view("ghl", env.only("ghl")), phone=ANN["phone"], email=ANN["email"]) == expected
    assert view("aloware", env.only("aloware")) == expected
    assert view("verity", env.only("verity")) == expected
    assert agreed(env, "city") == "Boston"


def test_a_user_edit_of_the_field_we_are_about_to_write_is_not_overwritten(env):
    # Setup: Ann converged; Verity's user changes her first name, so the
    # next run updates GHL's. Between that run's poll and its update, a GHL
    # user changes the same field (the `edit` fault applies it as the
    # update's read of the record arrives). recheck_after = 0: that read is
    # sent even though the run listed GHL a moment ago
    # (test_scale_req.py tests the window).
    env.write_config(system_options={"ghl": {"recheck_after": 0}})
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("verity", env.only("verity")["id"], first_name="Anna")
    env.sim.fault("ghl", kind="edit", fields={"firstName": "Annabel"}, method="GET",
                  route="/contacts/{id}")

    # Action: one run.
    env.converge()

    # Expected: GHL's edit, the later one, is not overwritten: nothing was
    # sent to GHL, its edit was observed and reached every system.
    expected = dict(ANN, first_name="Annabel")
    assert dict(view("ghl", env.only("ghl")), phone=ANN["phone"], email=ANN["email"]) == expected
    assert view("aloware", env.only("aloware")) == expected
    assert view("verity", env.only("verity")) == expected
    assert agreed(env, "first_name") == "Annabel"
    assert env.pending_faults("ghl") == []
    assert "PUT /contacts/{id}" not in env.counts("ghl")
    run_id = env.last_run_id()
    assert env.query("SELECT system, field, old_value, new_value FROM observed WHERE run_id = ? "
                     "AND field = 'first_name' ORDER BY rowid", (run_id,)) == [
        ("verity", "first_name", "Ann", "Anna"), ("ghl", "first_name", "Ann", "Annabel")]
    # The first pass deferred GHL's update (superseded by the second
    # pass's plan) and sent Aloware's; the second sent the new value.
    assert env.query("SELECT system, status FROM outbox WHERE run_id = ? ORDER BY id", (run_id,)) == [
        ("ghl", "superseded"), ("aloware", "done"), ("aloware", "done"), ("verity", "done")]
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}


def test_a_user_edit_of_a_field_we_write_is_not_counted_as_agreed(env):
    # Setup: a GHL first-name edit is PATCHed to Verity, and a Verity user
    # sets the same field at that moment. Our PATCH lands after the user's
    # edit, so Verity holds our value: the base for first_name moves to it,
    # nothing else changes, and no value travels back.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("ghl", ghl_id, first_name="Anna")
    env.sim.fault("verity", kind="edit", fields={"firstName": "Hannah"}, **VERITY_PATCH)

    env.converge()
    env.converge()

    expected = dict(ANN, first_name="Anna")
    assert view("verity", env.only("verity")) == expected
    assert view("aloware", env.only("aloware")) == expected
    assert agreed(env, "first_name") == "Anna"
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}


def test_a_full_run_writes_every_field_where_a_system_disagrees_with_the_agreed_value(env):
    # Setup: Ann converged; then the state's agreed city differs from what
    # every system holds, while each snapshot still equals its system (the
    # drift the lost-edit defect left behind: snapshots that agree with
    # their systems, an agreed value that does not).
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    import sqlite3
    db = sqlite3.connect(env.state_path)
    db.execute("UPDATE field_value SET value = 'Houston' WHERE person_id = 1 AND field = 'city'")
    db.commit()
    db.close()

    # A normal run sees no change and so writes nothing.
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}

    # Action: a full run (one person: every update is 100% of a system).
    code, out, err = env.run("run", "--full", "--max-change-share", "1")
    assert code == 0, err

    # Expected: the agreed city was planned for and written to every system.
    run_id = env.last_run_id()
    assert [row for row in env.outbox(run_id) if row[3] == "city"] == [
        ("aloware", "update", "done", "city", "Austin", "Houston"),
        ("ghl", "update", "done", "city", "Austin", "Houston"),
        ("verity", "update", "done", "city", "Austin", "Houston")]
    assert view("ghl", env.only("ghl"))["city"] == "Houston"
    assert view("aloware", env.only("aloware"))["city"] == "Houston"
    assert view("verity", env.only("verity"))["city"] == "Houston"
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}


def test_a_full_run_reads_what_the_ghl_listing_leaves_unsaid(env):
    # Setup: Ann converged; then GHL's per-channel DND for SMS is set with
    # its update time left as it was, so the search listing (which has no
    # per-channel DND) shows nothing new.
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    record = env.sim.record("ghl", ghl_id)
    env.sim.edit("ghl", ghl_id, {"dndSettings": {"SMS": {"status": "active"}},
                                 "dateUpdated": record["dateUpdated"]})
    env.converge()
    assert env.sim.record("verity", env.only("verity")["id"])["optOuts"]["sms"] is False

    # Action: a full run.
    code, out, err = env.run("run", "--full", "--max-change-share", "1")
    assert code == 0, err

    # Expected: GHL read whole, the opt-out found and sent everywhere.
    assert env.sim.record("verity", env.only("verity")["id"])["optOuts"]["sms"] is True
    assert env.query("SELECT system, field, old_value, new_value FROM observed WHERE run_id = ?",
                     (env.last_run_id(),)) == [("ghl", "optout_sms", "false", "true")]
