"""GHL custom fields by key (issue 7, item 7): a custom field names its GHL
fieldKey ("contact.score"), resolved to the field's id once per run from
GET /locations/{locationId}/customFields, and its value is written in the
field's dataType (a number's text for NUMERICAL, YYYY-MM-DD for DATE, an
array of options for CHECKBOX). A key GHL does not define is reported naming the
field, and the other fields go on. A raw id still works (compatibility)."""
import json
import urllib.error
import urllib.request

from conftest import LOCATION, TOKENS, config_text

DEFINITIONS = "GET /locations/{locationId}/customFields"

# The location's definitions, in GHL's answer shape.
DEFS = [
    {"id": "cf_score", "name": "Score", "fieldKey": "contact.score", "dataType": "NUMERICAL"},
    {"id": "cf_since", "name": "Investor since", "fieldKey": "contact.investor_since",
     "dataType": "DATE"},
    {"id": "cf_accredited", "name": "Accredited", "fieldKey": "contact.accredited",
     "dataType": "CHECKBOX", "picklistOptions": ["Yes"]},
]

CUSTOM = """custom_fields = (
  { name = "investor_tier"; ghl = "cf_tier"; aloware = "csf1"; verity = "investorTier"; },
  { name = "score"; ghl = "contact.score"; verity = "score"; },
  { name = "investor_since"; ghl = "contact.investor_since"; verity = "since"; },
  { name = "accredited"; ghl = "contact.accredited"; verity = "accredited"; },
  { name = "referrer"; ghl = "contact.no_such_field"; verity = "referrer"; }
);
"""


def write_config(env):
    text = config_text(env.sim, env.state_path)
    head, _, _ = text.partition("custom_fields = (")
    env.config_path.write_text(head + CUSTOM)


def ghl_custom(record: dict) -> dict:
    return {e["id"]: e.get("value") for e in record.get("customFields") or []}


def ghl_request(env, method: str, path: str, body=None):
    req = urllib.request.Request(
        env.sim.base_url("ghl") + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKENS['ghl']}", "Version": "2021-07-28",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_custom_fields_by_key_are_written_in_their_types_and_an_unknown_key_is_reported(env):
    # Setup: the definitions in GHL; Ann in Verity with every custom field.
    env.sim.seed("ghl", DEFS, collection="customFields")
    write_config(env)
    env.sim.seed("verity", [{"firstName": "Ann", "lastName": "Lee", "phoneE164": "+15552030001",
                             "customFields": {"investorTier": "gold", "score": "42",
                                              "since": "2024-03-15", "accredited": "Yes",
                                              "referrer": "Bob"}}])
    env.reset_requests()

    # Action
    code, out, err = env.run("run")

    # Expected: the run ends normally; GHL holds Ann with each value in its
    # field's type, under the resolved ids; the unknown key wrote nothing.
    assert code == 0, err
    (ann,) = env.sim.records("ghl")
    assert ghl_custom(ann) == {"cf_tier": "gold", "cf_score": "42", "cf_since": "2024-03-15",
                               "cf_accredited": ["Yes"]}
    # The definitions were read once in the run.
    assert env.counts("ghl")[DEFINITIONS] == 1
    # The unknown key is reported naming the field and the key.
    notices = [(s, k, m) for _, _, s, _, k, m in env.notices(env.last_run_id())]
    assert notices == [("ghl", "custom-field",
                        "custom field referrer: GHL defines no custom field with key "
                        "contact.no_such_field: the field is not read or written in ghl")], notices
    assert "custom field referrer" in json.dumps(env.report_json())

    # Action 2: a second run with nothing changed.
    env.converge()

    # Expected: what GHL answers (a number, a date, an array) reads as what
    # Verity holds: nothing to write.
    assert env.outbox(env.last_run_id()) == []


def test_an_edit_in_ghl_of_a_typed_field_reaches_verity(env):
    env.sim.seed("ghl", DEFS, collection="customFields")
    write_config(env)
    (vid,) = env.sim.seed("verity", [{"firstName": "Ann", "phoneE164": "+15552030002",
                                      "customFields": {"score": "7"}}])
    env.converge()
    (ann,) = env.sim.records("ghl")

    # Action: the score edited in GHL to a number; a run.
    env.sim.edit("ghl", ann["id"], {"customFields": [{"id": "cf_score", "value": "12.5"}]})
    env.converge()

    # Expected: Verity holds the number as text.
    (rec,) = env.sim.records("verity")
    assert rec["customFields"]["score"] == "12.5"


def test_the_simulator_serves_definitions_and_refuses_values_of_the_wrong_type(env):
    env.sim.seed("ghl", DEFS, collection="customFields")
    status, body = ghl_request(env, "GET", f"/locations/{LOCATION}/customFields")
    assert status == 200
    keys = {d["fieldKey"]: d["dataType"] for d in body["customFields"]}
    assert keys["contact.score"] == "NUMERICAL" and keys["contact.accredited"] == "CHECKBOX"
    status, _ = ghl_request(env, "GET", "/locations/another-location/customFields")
    assert status == 403

    (cid,) = env.sim.seed("ghl", [{"firstName": "Ann"}])
    for entry in ({"id": "cf_score", "field_value": "many"}, {"id": "cf_score", "field_value": 3},
                  {"id": "cf_since", "field_value": "15/03/2024"},
                  {"id": "cf_accredited", "field_value": ["Maybe"]},
                  {"id": "cf_unknown", "field_value": "x"}):
        status, body = ghl_request(env, "PUT", f"/contacts/{cid}", {"customFields": [entry]})
        assert status == 422, (entry, body)
    # By key, in the right types: accepted and stored by id.
    status, body = ghl_request(env, "PUT", f"/contacts/{cid}", {"customFields": [
        {"key": "contact.score", "field_value": "3"}, {"id": "cf_since", "field_value": "2024-01-02"},
        {"id": "cf_accredited", "field_value": ["Yes"]}]})
    assert status == 200, body
    assert ghl_custom(env.sim.records("ghl")[0]) == {
        "cf_score": "3", "cf_since": "2024-01-02", "cf_accredited": ["Yes"]}


def test_definitions_that_cannot_be_read_leave_the_keyed_fields_alone_for_the_run(env):
    # Setup: the definitions endpoint fails (500) for the whole run.
    env.sim.seed("ghl", DEFS, collection="customFields")
    write_config(env)
    env.sim.seed("verity", [{"firstName": "Ann", "phoneE164": "+15552030003",
                             "customFields": {"investorTier": "gold", "score": "42"}}])
    env.sim.fault("ghl", method="GET", route="/locations/{locationId}/customFields",
                  kind="status", status=500, times=100)

    # Action
    code, _, err = env.run("run")

    # Expected: Ann is created in GHL with her name and the field named by
    # id; the keyed fields are neither written nor cleared, and each is
    # reported.
    assert code == 0, err
    (ann,) = env.sim.records("ghl")
    assert ann["firstName"] == "Ann"
    assert ghl_custom(ann) == {"cf_tier": "gold"}
    kinds = [(s, k, m.split(":")[0]) for _, _, s, _, k, m in env.notices(env.last_run_id())]
    assert kinds == [("ghl", "custom-field", f"custom field {name}")
                     for name in ("score", "investor_since", "accredited", "referrer")]

    # Action 2: the endpoint answers again; a full run (or, in time, the
    # sweep) reads GHL's records again.
    env.sim.clear_faults("ghl")
    code, _, err = env.run("run", "--full")
    assert code == 0, err

    # Expected: the score is written now.
    assert ghl_custom(env.sim.records("ghl")[0])["cf_score"] == "42"
