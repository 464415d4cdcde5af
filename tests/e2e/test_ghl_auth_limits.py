"""Issue 7 items 3 and 4: GHL's limits and credentials as the real API has them.

The GHL simulator sends X-RateLimit-* headers on every answer, keeps a daily
quota per location (reset on the next simulated day), answers 429 without
Retry-After by default, lets access tokens expire (401) and renews them at
POST /oauth/token (form-encoded, refresh token rotated). The binary paces by
the headers, keeps a reserve of the daily quota, stops writing before the
quota runs out (the writes wait untouched for the next day), renews OAuth
tokens once on expiry and stores the new pair atomically (0600), and reports
a static token that expired as a credentials failure (exit 6)."""
import json
import os
import stat
import time

from conftest import SYSTEMS

EXIT_PARTIAL = 1
EXIT_CREDENTIALS = 6
CLIENT_ID, CLIENT_SECRET = "ghl-client-id", "ghl-client-secret"
FIRST_REFRESH = "ghl-refresh-token-0"

PEOPLE = [{"first_name": f"P{i}", "last_name": "Lim", "phone": f"+1555301000{i}",
           "email": f"p{i}@example.com", "city": "Austin"} for i in range(6)]


def ghl_log(env) -> list:
    return [(e["method"], e["path"], e["status"]) for e in env.sim.requests("ghl")["log"]]


def statuses(env, status: int) -> list:
    return [e for e in ghl_log(env) if e[2] == status]


def seed_people(env, system: str) -> None:
    for person in PEOPLE:
        env.seed(system, **person)


def phones(env, system: str) -> set:
    return {v["phone"] for v in env.views(system)} if system != "ghl" else \
        {"+1" + "".join(ch for ch in v["phone"] if ch.isdigit())[-10:] for v in env.views(system)}


def oauth_config(env, token_file, **options) -> None:
    """GHL with OAuth instead of the static token."""
    env.write_config(system_options={"ghl": {"oauth_client_id": CLIENT_ID,
                                             "oauth_client_secret": CLIENT_SECRET,
                                             "oauth_token_file": str(token_file)}},
                     **options)
    text = env.config_path.read_text().replace('    token = "ghl-test-token";\n', "", 1)
    env.config_path.write_text(text)


def everything_secret(env) -> list:
    """Every refresh and access token the simulator ever handed out or
    knows, and the client secret: none may show in logs or the state."""
    return [CLIENT_SECRET, FIRST_REFRESH] + env.sim.oauth()["valid_refresh_tokens"]


def state_text(env) -> str:
    return repr(env.dump_state())


# ----- item 3: rate limits and quotas from the server -----------------------

def test_pacing_never_exceeds_x_ratelimit_remaining(env):
    # Setup: GHL allows a burst of 4 requests per 2 s (our client's own
    # bucket would allow 100 per 10 s); six new GHL contacts need about a
    # dozen GHL requests (search, then one GET each).
    env.sim.config("ghl", rate_limit=4, rate_window=2.0)
    seed_people(env, "ghl")
    env.reset_requests()

    # Action: one run.
    env.converge()

    # Expected: never a 429 (the client waited whenever the server said
    # none was left in the interval), and everyone reached the others.
    assert statuses(env, 429) == []
    assert len(ghl_log(env)) > 4
    want = {p["phone"] for p in PEOPLE}
    assert phones(env, "aloware") == want and phones(env, "verity") == want


def test_a_429_without_retry_after_is_waited_out(env):
    # Setup: GHL answers the search twice with 429 and no Retry-After
    # (GHL documents none), then works.
    seed_people(env, "ghl")
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="ratelimit",
                  retry_after=None, times=2)
    env.reset_requests()

    # Action and expected: the run converges after the two refusals.
    env.converge()
    assert ghl_log(env)[:3] == [("POST", "/contacts/search", 429)] * 2 + [("POST", "/contacts/search", 200)]
    assert phones(env, "verity") == {p["phone"] for p in PEOPLE}


def test_a_nearly_spent_daily_quota_stops_writes_and_the_next_day_finishes_them(env):
    # Setup: six people new in Verity must be created in GHL (a look-up and
    # a create each). GHL's daily quota has 14 requests left and we keep a
    # reserve of 5, so only some creates fit today.
    env.write_config(system_options={"ghl": {"quota_reserve": 5}})
    seed_people(env, "verity")
    env.sim.config("ghl", daily_limit=1000)
    env.sim.quota(used=1000 - 14)
    env.reset_requests()

    # Action 1: the run of the day.
    code, out, err = env.run("run")

    # Expected: a partial run that says why, on stderr and in the report;
    # GHL never answered 429 (we stopped before the quota ran out) and its
    # quota was not spent below the reserve by writes.
    assert code == EXIT_PARTIAL, err
    assert "ghl: daily request quota nearly used up" in err
    assert "quota_reserve 5" in err
    assert statuses(env, 429) == []
    assert env.sim.quota()["used"] <= 1000 - 5
    made = len(env.sim.records("ghl"))
    assert 0 < made < len(PEOPLE)
    report = env.report_json()
    assert "ghl: daily request quota nearly used up" in report["run"]["message"]
    # Expected: the creates not sent wait untouched (no attempt counted, no
    # error), while Aloware got all six.
    waiting = env.query("SELECT op, status, attempts, last_error FROM outbox WHERE system = 'ghl' "
                        "AND status = 'pending'")
    assert waiting == [("create", "pending", 0, None)] * (len(PEOPLE) - made)
    assert phones(env, "aloware") == {p["phone"] for p in PEOPLE}

    # Action 2: the next simulated day's run.
    for system in SYSTEMS:
        env.sim.advance_clock(system, 86400)
    code, out, err = env.run("run")

    # Expected: it finishes them: everyone is in GHL once, nothing waits.
    assert code == 0, err
    assert phones(env, "ghl") == {p["phone"] for p in PEOPLE}
    assert len(env.sim.records("ghl")) == len(PEOPLE)
    assert env.query("SELECT count(*) FROM outbox WHERE system = 'ghl' AND status <> 'done' "
                     "AND status <> 'superseded'") == [(0,)]
    assert statuses(env, 429) == []


# ----- item 4: credentials ---------------------------------------------------

def test_oauth_tokens_are_renewed_when_they_expire_mid_run_and_nothing_is_lost(env, tmp_path):
    # Setup: GHL through OAuth; the token file holds only the refresh token
    # an admin pasted. The first access token expires after 3 requests.
    token_file = tmp_path / "ghl-tokens.json"
    token_file.write_text(FIRST_REFRESH + "\n")
    oauth_config(env, token_file)
    seed_people(env, "ghl")
    env.sim.oauth(expire_after=3)
    env.reset_requests()

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: it converged: one renewal before the first request, one
    # after the 401 mid-run, and everyone reached the other systems.
    assert code == 0, err
    oauth = env.sim.oauth()
    assert oauth["refreshed"] == 2 and oauth["refused"] == 0 and oauth["expired"] == 1
    log = ghl_log(env)
    assert log.count(("POST", "/oauth/token", 200)) == 2
    assert len(statuses(env, 401)) == 1
    assert phones(env, "verity") == {p["phone"] for p in PEOPLE}
    # Expected: the token file holds the newest pair, 0600, as JSON; the
    # used refresh tokens are gone from the simulator.
    stored = json.loads(token_file.read_text())
    assert oauth["valid_refresh_tokens"] == [stored["refresh_token"]]
    assert stored["access_token"].startswith("ghl-access-2-")
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name]
    # Expected: no token nor the client secret in the log or the state.
    secrets = everything_secret(env) + [stored["access_token"]]
    text = err + out + state_text(env) + env.config_path.read_text()
    assert [s for s in secrets if s in text] == [CLIENT_SECRET]  # only the config holds it
    assert CLIENT_SECRET not in err + out + state_text(env)

    # Action 2: the next run uses the stored access token (still valid).
    env.reset_requests()
    env.converge()
    assert env.sim.oauth()["refreshed"] == 2
    assert statuses(env, 401) == []


def test_a_refresh_the_server_refuses_is_a_credentials_failure_and_nothing_is_lost(env, tmp_path):
    # Setup: people new in Verity must reach GHL; the refresh token in the
    # file is no longer valid (the app was uninstalled, or it was used).
    token_file = tmp_path / "ghl-tokens.json"
    token_file.write_text(json.dumps({"refresh_token": "revoked-refresh-token"}))
    oauth_config(env, token_file)
    seed_people(env, "verity")
    env.reset_requests()

    # Action: a run.
    code, out, err = env.run("run")

    # Expected: exit 6, named; GHL got only the refresh; the GHL writes
    # wait untouched; the other systems got theirs; the file is unchanged.
    assert code == EXIT_CREDENTIALS, err
    assert "ghl: credentials could not be renewed: OAuth token refresh refused (HTTP 400 invalid_grant)" in err
    assert "revoked-refresh-token" not in err + state_text(env)
    assert ghl_log(env) == [("POST", "/oauth/token", 400)]
    assert env.query("SELECT op, status, attempts, last_error FROM outbox WHERE system = 'ghl' "
                     "AND status <> 'superseded'") == [("create", "pending", 0, None)] * len(PEOPLE)
    assert phones(env, "aloware") == {p["phone"] for p in PEOPLE}
    assert json.loads(token_file.read_text()) == {"refresh_token": "revoked-refresh-token"}

    # Action 2: the admin authorises again (a new refresh token in the file).
    token_file.write_text(FIRST_REFRESH)
    env.converge()
    assert phones(env, "ghl") == {p["phone"] for p in PEOPLE}


def test_a_static_token_that_expires_mid_run_is_reported_and_nothing_is_lost(env):
    # Setup: six people new in Verity must reach GHL; the Private
    # Integration token stops working after GHL's first 3 requests.
    seed_people(env, "verity")
    env.sim.oauth(expire_after=3)
    env.reset_requests()

    # Action: a run.
    code, out, err = env.run("run")

    # Expected: exit 6 naming GHL; after the 401 nothing more was sent to
    # GHL; GHL's unsent creates wait untouched (0 attempts, no error).
    assert code == EXIT_CREDENTIALS, err
    assert "ghl: credentials refused (HTTP 401)" in err
    log = ghl_log(env)
    assert log[-1][2] == 401 and len(statuses(env, 401)) == 1 and len(log) == 4
    made = len(env.sim.records("ghl"))
    assert made < len(PEOPLE)
    rows = env.query("SELECT status, attempts, last_error FROM outbox WHERE system = 'ghl' "
                     "AND status NOT IN ('done', 'superseded')")
    assert len(rows) == len(PEOPLE) - made
    assert all(attempts == 0 and error is None for _, attempts, error in rows), rows
    assert phones(env, "aloware") == {p["phone"] for p in PEOPLE}

    # Action 2: the admin puts the new token in the config.
    env.sim.oauth(static_token="ghl-new-token")
    env.config_path.write_text(env.config_path.read_text().replace("ghl-test-token", "ghl-new-token"))
    env.converge()

    # Expected: everyone in GHL exactly once.
    assert phones(env, "ghl") == {p["phone"] for p in PEOPLE}
    assert len(env.sim.records("ghl")) == len(PEOPLE)


def test_an_opt_out_still_reaches_ghl_within_the_quota_reserve(env):
    # Setup: Ann is in every system. GHL's daily quota is down to 4 left,
    # below our reserve of 10. Then Ann opts out of texts in Verity and a
    # new person appears in Verity.
    env.write_config(system_options={"ghl": {"quota_reserve": 10}})
    ids = env.converge_person(dict(PEOPLE[0]))
    env.sim.config("ghl", daily_limit=1000)
    env.sim.quota(used=1000 - 4)
    env.sim.edit("verity", ids["verity"], {"optOuts": {"sms": True}})
    env.seed("verity", **PEOPLE[1])
    env.reset_requests()

    # Action: a run.
    code, out, err = env.run("run")

    # Expected: the opt-out went out to GHL (I4: always the safe direction);
    # the create waits untouched for the next day; the run says so.
    assert code == EXIT_PARTIAL, err
    assert env.sim.record("ghl", ids["ghl"])["dndSettings"]["SMS"] == {"status": "active"}
    assert len(env.sim.records("ghl")) == 1
    assert env.query("SELECT op, status, attempts FROM outbox WHERE system = 'ghl' AND status = 'pending'") == [
        ("create", "pending", 0)]
    assert "ghl: daily request quota nearly used up" in err
    assert statuses(env, 429) == []


def test_an_access_token_due_to_expire_is_renewed_before_it_is_used(env, tmp_path):
    # Setup: the token file holds an access token that expires within the
    # two-minute margin, and a valid refresh token.
    token_file = tmp_path / "ghl-tokens.json"
    token_file.write_text(json.dumps({"access_token": "old-access-token", "refresh_token": FIRST_REFRESH,
                                      "expires_at": int(time.time()) + 30}))
    oauth_config(env, token_file)
    env.seed("ghl", **PEOPLE[0])
    env.reset_requests()

    # Action and expected: renewed first, so GHL never saw the old token.
    env.converge()
    assert ghl_log(env)[0] == ("POST", "/oauth/token", 200)
    assert statuses(env, 401) == []
    assert json.loads(token_file.read_text())["refresh_token"] == env.sim.oauth()["valid_refresh_tokens"][0]


def test_a_wrong_client_secret_is_a_credentials_failure(env, tmp_path):
    token_file = tmp_path / "ghl-tokens.json"
    token_file.write_text(FIRST_REFRESH + "\n")
    oauth_config(env, token_file)
    env.config_path.write_text(env.config_path.read_text().replace(CLIENT_SECRET, "wrong-secret"))
    env.seed("ghl", **PEOPLE[0])

    code, out, err = env.run("run")

    assert code == EXIT_CREDENTIALS, err
    assert "OAuth token refresh refused (HTTP 401 invalid_client)" in err
    assert "wrong-secret" not in err + state_text(env)
    # The refresh token was not used up, and the file is as it was.
    assert env.sim.oauth()["valid_refresh_tokens"] == [FIRST_REFRESH]
    assert token_file.read_text() == FIRST_REFRESH + "\n"
