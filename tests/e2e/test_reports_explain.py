"""Issue 8 item 5: explain shows every system's side. For each field: the
agreed value, each system's current value and the run (and time) it was
last read, the rule and reason, the whole conflict history (not just the
latest), and manual links (admin actions). An unknown phone or email is
"not found", exit 7, not a usage error."""
import json

from conftest import ANN, ANN_AS_TYPED
from test_conflicts import converge_ann_then_edit_first_name_in_ghl_and_verity

EXIT_USAGE, EXIT_NOT_FOUND = 2, 7


def explain(env, *args):
    code, out, err = env.run("explain", *args)
    assert code == 0, err
    return out


def test_explain_shows_each_systems_value_and_the_conflict_history(env):
    # Setup: two conflicts on Ann's first name in two runs (Anna vs
    # Annette, then Annie vs Anouk).
    converge_ann_then_edit_first_name_in_ghl_and_verity(env)
    env.converge()
    first = env.last_run_id()
    ids = env.ids_of(ANN["phone"])
    env.edit("ghl", ids["ghl"], first_name="Annie")
    env.sim.advance_clock("verity", 60)
    env.edit("verity", ids["verity"], first_name="Anouk")
    env.converge()
    second = env.last_run_id()
    seen = dict(env.query("SELECT system, seen_run FROM snapshot"))

    # Action
    doc = json.loads(explain(env, "--format", "json", ANN["phone"]))

    # Expected: first_name agreed "Annie", every system's side with the run
    # it was read in, and both conflicts, oldest first.
    field = next(f for f in doc["fields"] if f["field"] == "first_name")
    assert (field["value"], field["system"], field["rule"], field["run_id"]) == ("Annie", "ghl", "two-way", second)
    assert {s: (side["value"], side["remote_id"], side["seen_run"]) for s, side in field["systems"].items()} == {
        "ghl": ("Annie", ids["ghl"], seen["ghl"]),
        "aloware": ("Annie", str(ids["aloware"]), seen["aloware"]),
        "verity": ("Annie", ids["verity"], seen["verity"])}
    assert all(side["seen_at"].startswith("20") for side in field["systems"].values())
    assert [(c["run_id"], c["candidates"]["verity"], c["value"]) for c in field["conflicts"]] == [
        (first, "Annette", "Anna"), (second, "Anouk", "Annie")]
    # A set (tags) is an array on every side; a field a system does not
    # carry is null there.
    tags = next(f for f in doc["fields"] if f["field"] == "tags")
    assert isinstance(tags["value"], list)

    # The text says the same, field by field.
    text = explain(env, ANN["phone"])
    assert '  first_name = "Annie" from ghl (rule two-way: ' in text
    assert f'    verity: "Annie" (read in run {seen["verity"]}, ' in text
    assert f'    conflict in run {first}: base "Ann", ' in text
    assert f'    conflict in run {second}: base "Anna", ' in text


def test_explain_shows_a_manual_link(env):
    # Setup: Ann converged; an admin unlinks her Aloware record and links it again.
    ids = env.converge_person(ANN_AS_TYPED)
    assert env.run("unlink", f"aloware:{ids['aloware']}")[0] == 0
    assert env.run("link", f"aloware:{ids['aloware']}", "1")[0] == 0

    doc = json.loads(explain(env, "--format", "json", "1"))
    assert [a["action"] for a in doc["explain_admin"]] == ["unlink", "link"]
    assert ("aloware", "admin") in {(r["system"], r["how"]) for r in doc["explain_links"]}
    text = explain(env, "1")
    assert "admin actions (links, unlinks, pins, unpins, undos):" in text and " link aloware:" in text


def test_unknown_phone_email_or_person_is_not_found_exit_7(env):
    env.converge_person(ANN_AS_TYPED)
    for key, what in (("+15559999999", "no person has +15559999999"),
                      ("nobody@example.com", "no person has nobody@example.com"),
                      ("42", "no person 42 in the state file")):
        code, out, err = env.run("explain", key)
        assert (code, out, err.strip()) == (EXIT_NOT_FOUND, "", f"dfreconcile: {what}"), key
    # What is not a phone, an email or a number is still a usage error.
    code, _, err = env.run("explain", "not a key")
    assert code == EXIT_USAGE, err
