"""Issue 8 item 4: repair by command, journalled. `pin PERSON FIELD VALUE`
holds a value against every system until `unpin`; `undo --run N` puts back
every value run N changed, shown like a dry run, sent only with --yes, never
an opt-out. Each is journalled in admin_action and refused (exit 3) while a
run holds the lock."""
import fcntl
import json

from conftest import ANN, ANN_AS_TYPED, view


def first_names(env) -> dict:
    return {s: view(s, env.only(s))["first_name"] for s in ("ghl", "aloware", "verity")}


def person_of(env) -> int:
    (person,) = {p for (p,) in env.query("SELECT person_id FROM link")}
    return person


def holding_the_lock(env):
    fd = open(env.lock_path, "a+")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_pin_holds_a_value_in_every_system_until_unpinned(env):
    ids = env.converge_person(ANN_AS_TYPED)
    person = person_of(env)

    # Action: pin first_name; one run.
    code, out, err = env.run("pin", str(person), "first_name", "Annie")
    assert code == 0, err
    assert env.query("SELECT person_id, field, value FROM pin") == [(person, "first_name", "Annie")]
    env.converge()

    # Expected: every system holds the pin; provenance says why.
    assert first_names(env) == {"ghl": "Annie", "aloware": "Annie", "verity": "Annie"}
    assert env.query("SELECT value, rule, reason FROM field_value WHERE person_id = ? AND field = 'first_name'",
                     (person,)) == [("Annie", "pin", "pinned by an admin")]

    code, out, err = env.run("explain", "--format", "json", ANN["phone"])
    assert [(p["field"], p["value"]) for p in json.loads(out)["explain_pins"]] == [("first_name", "Annie")]
    code, out, err = env.run("explain", ANN["phone"])
    assert 'first_name = "Annie" pinned by' in out, out

    # A user's edit in Verity is written over while pinned.
    env.edit("verity", ids["verity"], first_name="Anna")
    env.converge()
    assert first_names(env) == {"ghl": "Annie", "aloware": "Annie", "verity": "Annie"}

    # Unpinned, the field follows its rule again: Verity's edit spreads.
    code, out, err = env.run("unpin", str(person), "first_name")
    assert code == 0, err
    assert env.query("SELECT count(*) FROM pin") == [(0,)]
    env.converge()
    env.edit("verity", ids["verity"], first_name="Anna")
    env.converge()
    assert first_names(env) == {"ghl": "Anna", "aloware": "Anna", "verity": "Anna"}

    # Journalled, shown by report and explain.
    assert [(a, s, r, pb, pa) for a, s, r, pb, pa in env.query(
        "SELECT action, system, remote_id, person_before, person_after FROM admin_action ORDER BY id")] == [
        ("pin", "field", "first_name", person, person), ("unpin", "field", "first_name", person, person)]
    assert [a["action"] for a in env.report_json()["admin_actions"]] == ["unpin", "pin"]
    code, out, err = env.run("explain", "--format", "json", ANN["phone"])
    assert code == 0, err
    assert [a["action"] for a in json.loads(out)["explain_admin"]] == ["pin", "unpin"]
    assert json.loads(out)["explain_pins"] == []


def test_pin_refuses_opt_outs_unknown_fields_and_a_held_lock(env):
    env.converge_person(ANN_AS_TYPED)
    person = person_of(env)
    code, out, err = env.run("pin", str(person), "optout_sms", "false")
    assert code == 2 and "opt-outs are not pinned" in err, err
    code, out, err = env.run("pin", str(person), "no_such_field", "x")
    assert code == 2, err
    code, out, err = env.run("pin", "999", "first_name", "x")
    assert code == 2 and "no person 999" in err, err
    code, out, err = env.run("unpin", str(person), "first_name")
    assert code == 2 and "no pin" in err, err
    lock = holding_the_lock(env)
    try:
        for args in (("pin", str(person), "first_name", "X"), ("unpin", str(person), "first_name"),
                     ("undo", "--run", "1")):
            code, out, err = env.run(*args)
            assert code == 3, (args, err)
    finally:
        lock.close()
    assert env.query("SELECT count(*) FROM pin") == [(0,)]
    assert env.query("SELECT count(*) FROM admin_action") == [(0,)]


def test_undo_puts_back_every_value_a_run_changed_in_every_system(env):
    ids = env.converge_person(ANN_AS_TYPED)
    person = person_of(env)

    # Run N: a user renames Ann in Verity; it spreads to GHL and Aloware.
    env.edit("verity", ids["verity"], first_name="Annabel", last_name="Leigh")
    env.converge()
    run_n = env.last_run_id()
    assert first_names(env) == {"ghl": "Annabel", "aloware": "Annabel", "verity": "Annabel"}

    # Action 1: undo without --yes: the plan, nothing sent or changed.
    env.reset_requests()
    before = env.dump_state()
    code, out, err = env.run("undo", "--run", str(run_n))
    assert code == 0, err
    assert f'put back: person {person} first_name: "Annabel" -> "Ann"' in out, out
    assert f'put back: person {person} last_name: "Leigh" -> "Lee"' in out, out
    assert "--yes" in out
    assert env.write_requests() == {s: {} for s in env.systems} or not any(env.write_requests().values())
    assert first_names(env)["verity"] == "Annabel"
    assert env.dump_state()["admin_action"] == before["admin_action"]

    # Action 2: undo --yes.
    code, out, err = env.run("undo", "--run", str(run_n), "--yes")
    assert code == 0, err
    undo_run = env.last_run_id()

    # Expected: every system holds the values from before run N, Verity
    # (where the change came from) included; journalled; stable after.
    assert first_names(env) == {"ghl": "Ann", "aloware": "Ann", "verity": "Ann"}
    assert {view(s, env.only(s))["last_name"] for s in ("ghl", "aloware", "verity")} == {"Lee"}
    assert env.query("SELECT action, system, remote_id, person_after, before, after FROM admin_action "
                     "ORDER BY id") == [
        ("undo", "run", str(run_n), person, 'first_name = "Annabel"', 'first_name = "Ann"'),
        ("undo", "run", str(run_n), person, 'last_name = "Leigh"', 'last_name = "Lee"')]
    assert env.query("SELECT value, rule, run_id FROM field_value WHERE person_id = ? AND field = 'first_name'",
                     (person,)) == [("Ann", "undo", undo_run)]
    env.reset_requests()
    env.converge()
    assert not any(env.write_requests().values())

    # Undoing run N again is refused: a later run (the undo) changed them.
    code, out, err = env.run("undo", "--run", str(run_n), "--yes")
    assert code == 2, err
    assert f'run {undo_run} changed it since to "Ann"; undo would overwrite "Ann"' in out, out
    assert first_names(env) == {"ghl": "Ann", "aloware": "Ann", "verity": "Ann"}


def test_undo_never_undoes_an_opt_out(env):
    env.configure_flows()
    ids = env.converge_person(ANN_AS_TYPED)

    # Run K: SMS DND set in GHL reaches Verity.
    env.sim.edit("ghl", ids["ghl"], {"dndSettings": {"SMS": {"status": "active"}}})
    env.converge()
    run_k = env.last_run_id()
    assert env.sim.record("verity", ids["verity"])["optOuts"]["sms"] is True

    # Action: undo run K, with --yes.
    code, out, err = env.run("undo", "--run", str(run_k), "--yes")

    # Expected: refused; the opt-out stays everywhere; nothing journalled.
    assert code == 2, err
    assert "opt-outs are never undone" in out + err
    assert env.sim.record("verity", ids["verity"])["optOuts"]["sms"] is True
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.query("SELECT count(*) FROM admin_action") == [(0,)]
