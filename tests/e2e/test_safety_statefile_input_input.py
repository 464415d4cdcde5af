"""Issue 6, item 8: bad input is contained (I8).

Each malformed input is either read exactly or quarantined with a reason
that names the field; ids stay exact strings and are percent-encoded in URL
paths; log lines cannot be forged; deep JSON in a field we ignore parses; a
malformed opt-out counts as opted out (the safe direction) and is reported.
Records are served raw by the simulators (tests/sim/README.md, seeding)."""
import re

from conftest import ANN, ANN_AS_TYPED, view

BOB = {"first_name": "Bob", "last_name": "Ray", "phone": "+15552010002",
       "email": "bob.ray@example.com", "city": "Waco", "investor_tier": "silver"}
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (error|warn|info|debug) event=|dfreconcile: )")


def reseed_raw(env, system: str, rid, **changes):
    """Replaces a seeded record by its stored form with changes, served as
    it is (no defaults, no checks); returns its (possibly new) id."""
    record = env.sim.record(system, rid)
    if "id" in changes:
        env.sim.delete(system, rid)
    record.update(changes)
    env.sim.seed(system, [record], raw=True)
    return record["id"]


def quarantined(env) -> list[tuple]:
    return env.query("SELECT system, remote_id, kind, reason FROM quarantine ORDER BY id")


def assert_log_lines_are_whole(err: str):
    for line in err.splitlines():
        assert LOG_LINE.match(line), f"not a log line: {line!r}"


def test_invalid_utf8_is_quarantined_naming_the_field_and_not_copied(env):
    # Setup: Ann in GHL, her first name holding the byte 0xFF (invalid UTF-8).
    rid = env.seed("ghl", **ANN_AS_TYPED)
    reseed_raw(env, "ghl", rid, firstName="Ann\udcff")

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: the record is quarantined, naming the field; nothing copied.
    assert code == 1, err
    assert quarantined(env) == [("ghl", rid, "malformed", "field firstName is not valid UTF-8")]
    assert env.sim.records("aloware") == [] and env.sim.records("verity") == []
    assert env.write_requests() == {}


def test_an_escaped_nul_is_quarantined_not_cut_short(env):
    # Setup: Ann in GHL whose first name is "Ann\u0000Evil".
    rid = env.seed("ghl", **ANN_AS_TYPED)
    reseed_raw(env, "ghl", rid, firstName="Ann\u0000Evil")

    code, out, err = env.run("run")

    # Expected: quarantined with the field named; no "Ann" anywhere else.
    assert code == 1, err
    assert quarantined(env) == [("ghl", rid, "malformed", "field firstName holds a NUL character")]
    assert env.sim.records("aloware") == [] and env.sim.records("verity") == []


def test_ids_beyond_64_bits_stay_distinct_and_exact(env):
    # Setup: two Aloware contacts whose numeric ids do not fit in 64 bits
    # and differ only in the last digit.
    ann = env.seed("aloware", **ANN)
    bob = env.seed("aloware", **BOB)
    reseed_raw(env, "aloware", ann, id=99999999999999999999)
    reseed_raw(env, "aloware", bob, id=99999999999999999998)

    # Action: one run.
    env.converge()

    # Expected: two links, with the ids exactly as the system wrote them,
    # to two persons; both reach GHL and Verity.
    links = {rid: person for (system, rid), person in env.links().items() if system == "aloware"}
    assert sorted(links) == ["99999999999999999998", "99999999999999999999"]
    assert links["99999999999999999998"] != links["99999999999999999999"]
    assert sorted(v["first_name"] for v in env.views("ghl")) == ["Ann", "Bob"]
    assert sorted(v["first_name"] for v in env.views("verity")) == ["Ann", "Bob"]
    assert env.query("SELECT remote_id FROM snapshot WHERE system = 'aloware' ORDER BY remote_id") == [
        ("99999999999999999998",), ("99999999999999999999",)]


def test_an_id_with_path_segments_is_percent_encoded_and_hits_only_its_record(env):
    # Setup: Verity holds Eve under the id "evil/../ver_000002" and Bob
    # under ver_000002; both converged into GHL and Aloware.
    eve_phone = "+15552010005"
    eve = env.seed("verity", first_name="Eve", last_name="Ng", phone=eve_phone,
                   email="eve@example.com", city="Reno", investor_tier="gold")
    bob = env.seed("verity", **BOB)
    assert bob == "ver_000002"
    evil = reseed_raw(env, "verity", eve, id="evil/../ver_000002")
    env.converge()
    bob_before = env.sim.record("verity", bob)
    ghl_eve = env.ids_of(eve_phone)["ghl"]

    # Action: Eve's city changes in GHL; the next run patches Verity.
    env.edit("ghl", ghl_eve, city="Elko")
    env.reset_requests()
    env.converge()

    # Expected: the PATCH reached Eve's record; Bob's is untouched.
    assert env.sim.record("verity", evil)["city"] == "Elko"
    assert env.sim.record("verity", bob) == bob_before
    assert env.write_requests()["verity"] == {"PATCH /api/v1/contacts/{id}": 1}
    paths = [r["path"] for r in env.sim.requests("verity")["log"] if r["method"] == "PATCH"]
    assert paths == ["/api/v1/contacts/evil%2F..%2Fver_000002"]


def test_an_id_with_a_newline_cannot_forge_a_log_line(env):
    # Setup: a GHL contact whose id holds a newline and a fake log line.
    forged = "x\n2026-01-01T00:00:00Z info event=forged admin=true"
    rid = env.seed("ghl", **ANN_AS_TYPED)
    reseed_raw(env, "ghl", rid, id=forged)

    # Action: a run at debug level (every request is logged).
    code, out, err = env.run("-v", "run")

    # Expected: every line of the event log is a whole event of ours; the
    # id appears escaped.
    assert_log_lines_are_whole(err)
    assert "event=forged" not in "\n".join(l for l in err.splitlines() if l.startswith("2026-01-01"))
    assert "x\\n2026-01-01T00:00:00Z" in err


def test_json_nested_deeper_than_32_levels_in_an_ignored_field_parses(env):
    # Setup: Ann in GHL carries an extra field nested 40 levels deep.
    rid = env.seed("ghl", **ANN_AS_TYPED)
    deep = "leaf"
    for _ in range(40):
        deep = {"n": deep}
    reseed_raw(env, "ghl", rid, integrationMeta=deep)

    # Action: one run.
    env.converge()

    # Expected: the listing was read; Ann reached Aloware and Verity.
    assert view("aloware", env.only("aloware")) == ANN
    assert view("verity", env.only("verity")) == ANN
    assert quarantined(env) == []


def test_a_malformed_ghl_dnd_setting_counts_as_opted_out_and_is_reported(env):
    # Setup: Ann converged; then GHL's SMS DND setting becomes a bare
    # string instead of {"status": ...}.
    ids = env.converge_person(ANN_AS_TYPED)
    reseed_raw(env, "ghl", ids["ghl"], dndSettings={"SMS": "active"}, dateUpdated=env.sim.now("ghl"))

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: SMS counts as opted out: Verity gets it; the record is
    # quarantined with the field named, so the admin sees it (exit 1).
    assert code == 1, err
    assert env.sim.record("verity", ids["verity"])["optOuts"] == {"sms": True, "call": False, "email": False}
    assert ("ghl", ids["ghl"], "malformed-optout",
            'field dndSettings.SMS is not {"status": ...}: read as opted out until it is fixed') \
        in quarantined(env)
    assert (ANN["phone"], "sms") in [(p, c) for p, c, status, *_ in env.optouts() if status == "opted-out"]


def test_a_malformed_verity_optouts_value_counts_as_opted_out_everywhere(env):
    # Setup: Ann converged; then Verity's optOuts becomes the string "yes".
    ids = env.converge_person(ANN_AS_TYPED)
    reseed_raw(env, "verity", ids["verity"], optOuts="yes", updatedAt=env.sim.now("verity"))

    code, out, err = env.run("run")

    # Expected: every channel counts as opted out: GHL gets DND on each.
    assert code == 1, err
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {
        "SMS": {"status": "active"}, "Call": {"status": "active"}, "Email": {"status": "active"}}
    assert ("verity", ids["verity"], "malformed-optout",
            "field optOuts is not an object: read as opted out on every channel until it is fixed") \
        in quarantined(env)
