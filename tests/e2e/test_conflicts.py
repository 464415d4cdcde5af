"""Conflicting edits of one field are decided by the configured rule, and
logged with every value (I5)."""
import json

import pytest

from conftest import ANN, ANN_AS_TYPED, view


def converge_ann_then_edit_first_name_in_ghl_and_verity(env):
    """Setup shared by the conflict tests: Ann converged everywhere, then her
    first name edited to different values in GHL and in Verity, with Verity's
    edit the newer one (its clock is a minute ahead)."""
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("ghl", ghl_id, first_name="Anna")
    env.sim.advance_clock("verity", 60)
    env.edit("verity", env.only("verity")["id"], first_name="Annette")


@pytest.mark.parametrize("rule, winner, value, reason", [
    (None, "ghl", "Anna", "conflict: source order"),          # default two-way: ghl first
    ("always:verity", "verity", "Annette", "always: other systems' edits reverted"),
    ("newest", "verity", "Annette", "conflict: newest update"),
])
def test_conflicting_edits_are_decided_by_the_rule_and_reported(env, rule, winner, value, reason):
    if rule is not None:
        env.write_config(fields={"first_name": rule})
    converge_ann_then_edit_first_name_in_ghl_and_verity(env)

    # Action
    env.converge()

    # Expected: every system holds the winning value, and only first_name moved.
    expected = dict(ANN, first_name=value)
    assert dict(view("ghl", env.only("ghl")), phone=ANN["phone"], email=ANN["email"]) == expected
    assert view("aloware", env.only("aloware")) == expected
    assert view("verity", env.only("verity")) == expected

    # Expected: the conflict is in the report with every system's value ...
    rule_text = rule or "two-way"
    report = env.report_json()
    assert report["conflicts"] == [{
        "run_id": env.last_run_id(), "person_id": 1, "field": "first_name", "base": "Ann",
        "candidates": {"ghl": "Anna", "aloware": "Ann", "verity": "Annette"},
        "winner": winner, "value": value, "rule": rule_text, "reason": reason,
    }]
    # ... and in the conflict table, with the agreed value's provenance.
    run_id = env.last_run_id()
    rows = env.query("SELECT run_id, person_id, field, base, candidates, winner, value, rule, reason "
                     "FROM conflict")
    assert len(rows) == 1
    assert rows[0][:4] == (run_id, 1, "first_name", "Ann")
    assert json.loads(rows[0][4]) == {"ghl": "Anna", "aloware": "Ann", "verity": "Annette"}
    assert rows[0][5:] == (winner, value, rule_text, reason)
    assert env.query("SELECT value, system, rule, run_id FROM field_value "
                     "WHERE person_id = 1 AND field = 'first_name'") == [(value, winner, rule_text, run_id)]

    # And the text report names it too.
    code, text, _ = env.run("report", "--last")
    assert code == 0
    assert f'person 1 first_name: base "Ann"' in text and f'-> "{value}" from {winner} (rule {rule_text}' in text


def test_explain_answers_why_a_value_won_by_phone_email_or_person(env):
    # Setup: the default two-way conflict (GHL's "Anna" beats Verity's
    # "Annette").
    converge_ann_then_edit_first_name_in_ghl_and_verity(env)
    env.converge()
    run_id = env.last_run_id()

    # Action: ask by phone (as typed in GHL), by email in another case, and
    # by person number.
    answers = []
    for key in ("(555) 201-0001", ANN["email"].upper(), "1"):
        code, out, err = env.run("explain", "--format", "json", key)
        assert code == 0, err
        answers.append(json.loads(out))

    # Expected: the same person each time, with the winner, its rule and
    # reason, the values it beat, and every record of the person.
    assert answers[0] == answers[1] == answers[2]
    doc = answers[0]
    assert doc["person"]["id"] == 1
    first_name = next(v for v in doc["explain_values"] if v["field"] == "first_name")
    assert first_name == {"field": "first_name", "value": "Anna", "system": "ghl", "rule": "two-way",
                          "reason": "conflict: source order", "run_id": run_id,
                          "beaten": {"aloware": "Ann", "verity": "Annette"}}
    assert sorted(r["system"] for r in doc["explain_links"]) == ["aloware", "ghl", "verity"]
    assert [c["field"] for c in doc["explain_conflicts"]] == ["first_name"]

    # An unknown number is "not found" (exit 7), naming it.
    code, out, err = env.run("explain", "+15559999999")
    assert code == 7
    assert err.strip() == "dfreconcile: no person has +15559999999"
