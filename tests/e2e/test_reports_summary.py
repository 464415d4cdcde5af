"""Issue 8 item 1: reports that start with the answer. The report opens
with a summary per system (records read, created, updated, cleared,
deleted, list changes, opt-outs, calls and texts delivered, failed,
waiting, quarantined) and one line per problem with its cause; details are
filterable; JSON is typed and validates against docs/report.schema.json;
CSV (one section) round-trips through python's csv module."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ANN, ANN_AS_TYPED, REPO

sys.path.insert(0, str(REPO / "tests"))
import demo  # noqa: E402

SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
SYSTEMS = ("ghl", "aloware", "verity", "texting")


def demo_env(env):
    """The demo's seed and configuration (tests/demo.py) in this test's
    simulators, with the state file in the test's directory."""
    demo.seed(env.sim)
    conf = demo.write_config(env.dir, env.sim)
    conf.write_text(conf.read_text().replace('state_path = "state.db";',
                                             f'state_path = "{env.state_path}";'))
    env.config_path = conf
    for system in SYSTEMS:
        env.sim.reset_requests(system)


def run_demo(env):
    """The demo's two runs: a full reconcile, users at work, a run."""
    demo_env(env)
    code, _, err = env.run("run", "--full")
    assert code in (0, 1), err
    demo.edit(env.sim)
    code, _, err = env.run("run")
    assert code in (0, 1), err


# -- a small JSON Schema (draft-07 subset) validator: type, properties,
# required, additionalProperties, items, enum --
TYPES = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}


def type_ok(value, name):
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def validate(value, schema, path="$"):
    """Every violation of schema by value, as path: reason lines."""
    errors = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(type_ok(value, n) for n in names):
            return [f"{path}: {value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing {key}")
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(item, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def test_the_validator_catches_what_the_schema_forbids():
    assert validate({"run": {}}, SCHEMA)
    assert validate(1, {"type": "string"}) == ["$: 1 is not string"]
    assert validate([1, "2"], {"type": "array", "items": {"type": "integer"}}) == ["$[1]: '2' is not integer"]


def test_summary_figures_equal_the_writes_the_simulators_received(env):
    # Setup and action: the demo (about 400 contacts, two runs: creates,
    # updates, a conflict, list moves, calls, texts, a STOP, an opt-out).
    run_demo(env)
    counts = {s: env.sim.requests(s)["counts"] for s in SYSTEMS}

    # Expected: the summary of runs 1..2 equals what each simulator received.
    report = env.report_json("--run", "1..2")
    summary = {row["system"]: row for row in report["summary"]["systems"]}
    assert sorted(summary) == sorted(SYSTEMS)

    def n(system, *routes):
        return sum(counts[system].get(r, 0) for r in routes)

    ghl, aloware, verity, texting = (summary[s] for s in SYSTEMS)
    assert ghl["created"] == n("ghl", "POST /contacts/") > 0
    assert ghl["updated"] == n("ghl", "PUT /contacts/{id}") > 0
    assert ghl["calls_delivered"] == n("ghl", "POST /contacts/{id}/notes") == 2
    assert ghl["calls_delivered"] + ghl["texts_delivered"] == n(
        "ghl", "POST /conversations/messages/inbound", "POST /conversations/messages/outbound") == 6
    # Aloware's Lead API (the form webhook) creates, updates and adds to a
    # Power Dialer list; removing has its own route.
    assert aloware["created"] + aloware["updated"] + aloware["list_changes"] == n(
        "aloware", "POST /api/v1/webhook/forms", "POST /api/v1/webhook/powerdialer-add-contact-to-lists",
        "POST /api/v1/webhook/powerdialer-remove-contact-from-lists")
    assert aloware["created"] > 0 and aloware["updated"] > 0 and aloware["list_changes"] == 7
    assert verity["created"] == n("verity", "POST /api/v1/contacts") > 0
    assert verity["updated"] == n("verity", "PATCH /api/v1/contacts/{id}") > 0
    assert texting["created"] == n("texting", "POST /api/v1/optouts") == 2
    for system in SYSTEMS:
        row = summary[system]
        assert row["deleted"] == sum(v for k, v in counts[system].items() if k.startswith("DELETE ")) == 0
        assert row["failed"] == row["waiting"] == 0
        assert row["requests"] == sum(counts[system].values())
    # ... and what was read and quarantined, per system, from the runs' rows.
    quarantined = dict(env.query("SELECT system, count(*) FROM quarantine GROUP BY system"))
    assert {s: summary[s]["quarantined"] for s in SYSTEMS if summary[s]["quarantined"]} == quarantined
    assert quarantined == {"verity": 2}  # ver_bad, read in both runs
    assert summary["texting"]["optouts"] == 1 and summary["verity"]["optouts"] == 1
    assert report["summary"]["problems"] == []

    # The text report opens with the same summary, before any detail.
    code, text, err = env.run("report", "--run", "1..2")
    assert code == 0, err
    lines = text.splitlines()
    # The header, then the last run's message when it has one (run 2 has
    # none: its quarantine is known from run 1 and unchanged, exit 0).
    top = lines.index("summary (runs 1..2):")
    assert top in (1, 2), lines[:4]
    lines = lines[top - 2:] if top == 2 else [lines[0], ""] + lines[top:]
    assert lines[3].split() == ["system", "read", "created", "updated", "cleared", "deleted", "lists",
                                "opt-outs", "calls", "texts", "failed", "waiting", "quarantined", "requests"]
    row = next(line.split() for line in lines[4:9] if line.split()[0] == "ghl")
    assert [int(v) for v in row[1:]] == [ghl[k] for k in (
        "read", "created", "updated", "cleared", "deleted", "list_changes", "optouts", "calls_delivered",
        "texts_delivered", "failed", "waiting", "quarantined", "requests")]
    assert lines.index("problems:") < lines.index("changes seen:")


def test_json_is_typed_and_validates_against_the_documented_schema(env):
    run_demo(env)
    for args in ((), ("--run", "1"), ("--run", "1..2"), ("--section", "writes"), ("--limit", "2")):
        report = env.report_json(*args)
        assert validate(report, SCHEMA) == [], args
    report = env.report_json("--run", "1")
    # One object per write, its fields inside; sets (tags) as arrays.
    write = next(w for w in report["writes"] if w["system"] == "verity" and w["op"] == "create")
    assert isinstance(write["outbox_id"], int) and write["attempts"] == 1 and write["status"] == "done"
    assert {f["field"] for f in write["fields"]} >= {"first_name", "phone"}
    tags = [f for w in report["writes"] for f in w["fields"] if f["field"] == "tags"]
    assert tags and all(isinstance(f["new_value"], list) for f in tags)
    assert ["CALL_NOW", "demo"] in [f["new_value"] for f in tags]


def test_details_filter_by_system_person_section_run_and_limit(env):
    run_demo(env)
    full = env.report_json("--run", "2")
    by_system = env.report_json("--run", "2", "--system", "verity")
    assert by_system["writes"] == [w for w in full["writes"] if w["system"] == "verity"] != []
    assert by_system["summary"] == full["summary"]  # the summary answers for the whole range
    assert by_system["deliveries"] == []
    ghl_deliveries = env.report_json("--run", "2", "--system", "ghl")["deliveries"]
    assert ghl_deliveries == full["deliveries"] and len(ghl_deliveries) == 6

    person = full["conflicts"][0]["person_id"]
    mine = env.report_json("--run", "2", "--person", str(person))
    assert mine["conflicts"] == full["conflicts"]
    assert mine["writes"] == [w for w in full["writes"] if w["person_id"] == person] != []

    only = env.report_json("--run", "2", "--section", "opt-outs")
    assert "optouts" in only and "writes" not in only and "observed" not in only
    assert only["optouts"] == full["optouts"]

    limited = env.report_json("--run", "2", "--limit", "2")
    assert limited["writes"] == full["writes"][:2]
    assert limited["omitted"]["writes"] == len(full["writes"]) - 2 > 0
    code, text, _ = env.run("report", "--run", "2", "--limit", "2")
    assert f"  ... {len(full['writes']) - 2} more not shown (--limit)" in text

    both = env.report_json("--run", "1..2")
    assert [r["id"] for r in both["runs"]] == [1, 2]
    assert len(both["writes"]) > len(full["writes"])
    # Run 1 saw every record for the first time: a first sight is not a
    # change (the snapshot and the link hold it), so only run 2 observed.
    assert both["observed"] == full["observed"] != []
    assert env.report_json("--since", both["runs"][1]["started_at"])["range"] == {"from": 2, "to": 2}

    for bad in (("--run", "2..1"), ("--section", "everything"), ("--limit", "0"), ("--format", "xml"),
                ("--format", "csv")):
        code, _, err = env.run("report", *bad)
        assert code == 2, (bad, err)


@pytest.mark.parametrize("section,key", [
    ("changes", "observed"), ("conflicts", "conflicts"), ("writes", "writes"), ("opt-outs", "optouts"),
    ("deliveries", "deliveries"), ("quarantine", "quarantine"), ("notices", "notices")])
def test_csv_of_each_section_round_trips(env, section, key):
    run_demo(env)
    rows = env.report_json("--run", "1..2")[key]
    assert rows
    # Raw bytes: RFC 4180 lines end in CRLF (text mode would fold them).
    proc = subprocess.run(env.command("report", "--run", "1..2", "--format", "csv", "--section", section),
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.endswith("\r\n") and "\r\n" in out.splitlines(keepends=True)[0]
    parsed = list(csv.DictReader(io.StringIO(out, newline="")))

    def text(v):
        if v is None:
            return ""
        if isinstance(v, list):
            return "\n".join(v)
        if isinstance(v, dict):
            return json.dumps(v, separators=(",", ":"))
        return str(v)

    expected = []
    for row in rows:
        flat = {k: v for k, v in row.items() if k != "fields"}
        for sub in row.get("fields") or [{}]:
            expected.append({k: text(v) for k, v in {**flat, **sub}.items()})
    assert [{k: r[k] for k in e} for r, e in zip(parsed, expected)] == expected
    assert len(parsed) == len(expected)


def test_a_refused_token_and_an_unreadable_system_are_named_in_the_summary(env):
    # Setup: Ann converged; then GHL refuses the token and Verity answers
    # every listing with 503.
    ids = env.converge_person(ANN_AS_TYPED)
    env.edit("aloware", ids["aloware"], first_name="Annie")
    env.config_path.write_text(env.config_path.read_text().replace(
        'token = "ghl-test-token"', 'token = "expired-token"'))
    env.sim.fault("verity", kind="status", status=503, times=1000)

    # Action
    code, _, err = env.run("run")
    assert code == 6, err

    # Expected: one problem line per cause.
    problems = env.report_json()["summary"]["problems"]
    run_id = env.last_run_id()
    kinds = {(p["system"], p["kind"]) for p in problems}
    assert ("ghl", "credentials") in kinds and ("verity", "unreadable") in kinds
    ghl = next(p for p in problems if p["kind"] == "credentials")
    assert ghl["run_id"] == run_id and "HTTP 401" in ghl["cause"] and "expired-token" not in ghl["cause"]
    verity = next(p for p in problems if p["system"] == "verity")
    assert verity["cause"].startswith("reading contacts: ") and "503" in verity["cause"]
    code, text, _ = env.run("report")
    assert f"  run {run_id} ghl credentials: credentials refused: " in text
    assert f"  run {run_id} verity unreadable: reading contacts: " in text
    assert ANN["first_name"]  # the person is the one converged above
