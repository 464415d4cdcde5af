"""Opt-out and opt-in keywords as carriers read them: STOP-family words with
surrounding white space and punctuation opt the number out; START, UNSTOP
and YES opt it back in for SMS only, where optouts.keyword_opt_in allows
(default: only an opt-out the same system recorded, i.e. one that came from
a text); Verity's legacy optedOut flag counts as an opt-out."""
import pytest

from conftest import ANN, ANN_AS_TYPED

PHONE = ANN["phone"]
OPTED_OUT_SMS = {"sms": True, "call": False, "email": False}
NO_OPTOUTS = {"sms": False, "call": False, "email": False}


def keyword_config(env, keyword_opt_in: str | None = None):
    extra = f'optouts = {{ keyword_opt_in = "{keyword_opt_in}"; }};\n' if keyword_opt_in else ""
    env.configure_flows(extra=extra)


@pytest.mark.parametrize("body", ["Stop.", "STOP!", "stop all", "Opt out", " (revoke) ", "UNSUBSCRIBE!!"])
def test_stop_words_with_punctuation_opt_out(env, body):
    # Setup: Ann converged with every flow on; she texts `body`.
    keyword_config(env)
    ids = env.converge_person(ANN_AS_TYPED)
    env.seed_text("inbound", PHONE, body)

    # Action
    env.converge()
    run_id = env.last_run_id()

    # Expected: opted out of SMS everywhere, by the keyword.
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    assert env.optouts() == [(PHONE, "sms", "opted-out", "texting", "STOP keyword", run_id)]


def stop_then(env, ids, body: str) -> int:
    """Ann texts STOP (one run), then `body` (another run); the second run's id."""
    env.seed_text("inbound", PHONE, "STOP")
    env.converge()
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    env.seed_text("inbound", PHONE, body)
    env.converge()
    return env.last_run_id()


@pytest.mark.parametrize("body", ["START", "unstop", "Yes."])
def test_start_after_a_stop_text_opts_the_number_back_in_for_sms(env, body):
    # Setup: default keyword_opt_in (same-system); Ann converged.
    keyword_config(env)
    ids = env.converge_person(ANN_AS_TYPED)

    # Action: STOP, then `body`.
    run_id = stop_then(env, ids, body)

    # Expected: SMS opt-out lifted in GHL, Verity and the registry, logged.
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "inactive"}}
    assert env.sim.record("verity", ids["verity"])["optOuts"] == NO_OPTOUTS
    assert env.optouts() == [(PHONE, "sms", "opted-in", "texting",
                              "opt-in by a START keyword the configuration allows", run_id)]
    assert [row for row in env.optout_log() if row[0] == run_id] == [
        (run_id, PHONE, "sms", 1, "opt-in", "texting", "opt-in by a START keyword the configuration allows")]

    # And the next run is quiet: the opt-in holds.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()


def test_start_does_not_lift_an_opt_out_recorded_elsewhere_by_default(env):
    # Setup: Ann converged; Verity records an SMS opt-out (not a text).
    keyword_config(env)
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True}})
    env.converge()
    optout_run = env.last_run_id()

    # Action: she texts START.
    env.seed_text("inbound", PHONE, "START")
    env.converge()
    run_id = env.last_run_id()

    # Expected: the opt-out stands; the refusal is logged.
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {"SMS": {"status": "active"}}
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    assert env.optouts() == [(PHONE, "sms", "opted-out", "verity", "opt-out recorded by a system", optout_run)]
    assert [row for row in env.optout_log() if row[0] == run_id] == [
        (run_id, PHONE, "sms", 0, "opt-in-refused", "texting",
         "inbound message is a start keyword, but optouts.keyword_opt_in does not let it lift this opt-out")]


def test_start_lifts_any_sms_opt_out_when_configured_but_never_calls(env):
    # Setup: keyword_opt_in = "any"; Verity opts Ann out of SMS and calls.
    keyword_config(env, "any")
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True, "call": True}})
    env.converge()

    # Action: START.
    env.seed_text("inbound", PHONE, "START")
    env.converge()

    # Expected: SMS lifted, calls still opted out.
    assert env.sim.record("verity", ids["verity"])["optOuts"] == {"sms": False, "call": True, "email": False}
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"] == {
        "SMS": {"status": "inactive"}, "Call": {"status": "active"}}


def test_start_is_ignored_when_keyword_opt_in_is_never(env):
    keyword_config(env, "never")
    ids = env.converge_person(ANN_AS_TYPED)
    stop_then(env, ids, "START")
    assert env.sim.record("verity", ids["verity"])["optOuts"] == OPTED_OUT_SMS
    assert env.optouts()[0][:3] == (PHONE, "sms", "opted-out")


def test_verity_legacy_opted_out_flag_opts_out_every_channel(env):
    # Setup: Ann converged; Verity sets only the legacy flag.
    keyword_config(env)
    ids = env.converge_person(ANN_AS_TYPED)
    env.sim.edit("verity", ids["verity"], {"optedOut": True})

    # Action
    env.converge()

    # Expected: every channel opted out in GHL and the registry; Verity
    # already reads as opted out everywhere, so it gets no write.
    dnd = env.sim.record("ghl", ids["ghl"])["dndSettings"]
    assert dnd == {"SMS": {"status": "active"}, "Call": {"status": "active"}, "Email": {"status": "active"}}
    assert sorted(row[1] for row in env.optouts()) == ["call", "email", "sms"]
    verity = env.sim.record("verity", ids["verity"])
    assert (verity["optedOut"], verity["optOuts"]) == (True, NO_OPTOUTS)

    # And the next run is quiet.
    env.reset_requests()
    env.converge()
    assert env.all_counts() == env.only_listings()


def test_config_refuses_an_unknown_keyword_opt_in(env):
    env.configure_flows(extra='optouts = { keyword_opt_in = "always"; };\n')
    code, _, err = env.run("check-config")
    assert code == 2
    assert 'optouts.keyword_opt_in: must be "same-system", "any" or "never"' in err

