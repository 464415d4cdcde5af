"""Issue 9: a listed record is compared before it is parsed (httpcpu).

A listing's answer is split into its records by their brackets, and each is
digested as bytes, together with how its connector reads them; a record the
state holds unchanged by that digest is not parsed at all. What the binary
reads must not change: values holding the characters the splitter looks at
(quotes, backslashes, brackets) are read exactly, an edit among unchanged
records is found, and a change to how a record is read (a custom field's
key) is found although the record's bytes did not change."""
from conftest import ANN_AS_TYPED, config_text, view


def snapshot_rows(env):
    return env.query("SELECT * FROM snapshot ORDER BY system, remote_id")


TRICKY = 'Le "Bracket" }]{[ \\ Inn, \\" x'


def test_values_with_quotes_brackets_and_backslashes_are_read_exactly(env):
    # Setup: Ann converged and re-read, and Bob, whose city holds every
    # character the splitter looks at, only in Verity.
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("verity", first_name="Bob", last_name="Ray", phone="+15552010002", email="bob@example.com",
             city=TRICKY)
    env.converge()
    env.converge()
    before = snapshot_rows(env)

    # Action: a run within the lookback lists every record again.
    env.converge()

    # Expected: Bob's city reached GHL and Aloware exactly, and nothing was
    # observed or moved in the state by the run that listed them unchanged.
    bob = [view("ghl", r) for r in env.sim.records("ghl") if view("ghl", r)["first_name"] == "Bob"]
    assert [b["city"] for b in bob] == [TRICKY]
    run_id = env.last_run_id()
    assert env.query("SELECT count(*) FROM observed WHERE run_id = ?", (run_id,)) == [(0,)]
    assert snapshot_rows(env) == before

    # Action: Bob's city changes in Verity, Ann's stays.
    (verity_bob,) = [r for r in env.sim.records("verity") if r["firstName"] == "Bob"]
    env.sim.edit("verity", verity_bob["id"], {"city": TRICKY + "]"})
    env.converge()

    # Expected: that one edit observed, and sent.
    run_id = env.last_run_id()
    assert env.query("SELECT system, field, old_value, new_value FROM observed WHERE run_id = ?",
                     (run_id,)) == [("verity", "city", TRICKY, TRICKY + "]")]
    bob = [view("ghl", r) for r in env.sim.records("ghl") if view("ghl", r)["first_name"] == "Bob"]
    assert [b["city"] for b in bob] == [TRICKY + "]"]


CUSTOM = """custom_fields = (
  { name = "investor_tier"; ghl = "cf_tier"; verity = "%s"; }
);
"""


def ghl_custom(record: dict) -> dict:
    return {e["id"]: e.get("value") for e in record.get("customFields") or []}


def write_config(env, verity_key):
    text = config_text(env.sim, env.state_path)
    head, _, _ = text.partition("custom_fields = (")
    env.config_path.write_text(head + CUSTOM % verity_key)


def test_a_new_key_for_a_custom_field_reads_unchanged_records_again(env):
    # Setup: Ann in Verity holding two tiers under two keys; the field is
    # read from "tier"; converged and re-read.
    write_config(env, "tier")
    env.sim.seed("verity", [{"firstName": "Ann", "lastName": "Lee", "phoneE164": "+15552010001",
                             "customFields": {"tier": "gold",
                                                                               "tier2": "silver"}}])
    env.converge()
    env.converge()
    assert ghl_custom(env.only("ghl")) == {"cf_tier": "gold"}

    # Action: the field is now read from "tier2"; Ann's record is unchanged.
    write_config(env, "tier2")
    env.converge()

    # Expected: the value under the new key is observed and sent.
    run_id = env.last_run_id()
    assert env.query("SELECT system, field, old_value, new_value FROM observed WHERE run_id = ?",
                     (run_id,)) == [("verity", "investor_tier", "gold", "silver")]
    assert ghl_custom(env.only("ghl")) == {"cf_tier": "silver"}
