"""Issue 9, requests sent / minimum: a write costs the requests it needs and
no more, and none of the savings gives up data safety.

- Verity's create is idempotent by natural key (tests/sim/README.md: 409
  names the contact holding the phone or email), so a create is one POST,
  with no lookup first; a 409 (someone, or our own earlier create whose
  answer was lost, holds the key) is read and linked like a lookup's hit.
- An update of a record the run knows as of less than `recheck_after`
  seconds ago is sent without reading the record again; one known longer
  ago is known again by listing its system again (test_scale_poll2_recheck.py),
  and read first when that listing fails or with `recheck_after = 0`
  (test_safety_edits_links.py tests what that read protects).

Every test states the exact requests per route, from the simulators' counts.
"""

from conftest import ANN, ANN_AS_TYPED, view

VERITY_NO_LISTING = {"verity": {"listing": False}}


def run_ok(env) -> str:
    code, out, err = env.run("run")
    assert code == 0, f"run exited {code}\n{out}\n{err}"
    return err


# ----- Verity: a create is one POST ------------------------------------------

def test_a_verity_create_is_one_post_without_a_lookup(env):
    # Setup: Ann is in GHL only.
    env.seed("ghl", **ANN_AS_TYPED)

    # Action: the first run creates her in Aloware and Verity.
    env.reset_requests()
    run_ok(env)

    # Expected: Verity got its listing and one POST, nothing else.
    assert env.counts("verity") == {"GET /api/v1/contacts": 1, "POST /api/v1/contacts": 1}
    (ver,) = env.sim.records("verity")
    assert view("verity", ver) == ANN
    assert env.query("SELECT how FROM link WHERE system = 'verity'") == [("created",)]


def test_a_verity_create_answered_409_links_the_contact_holding_the_key(env):
    # Setup: Verity is not listed, so the run cannot know Ann is there
    # (under another first name) and plans a create.
    env.write_config(system_options=VERITY_NO_LISTING)
    env.seed("ghl", **ANN_AS_TYPED)
    ver_id = env.seed("verity", **dict(ANN, first_name="Annie"))

    # Action: one run, then the next.
    env.reset_requests()
    env.run("run")
    first = env.counts("verity")
    run_ok(env)

    # Expected: the POST answered 409, the contact it named was read and
    # linked as found (not created); no second Verity contact. Found by its
    # keys, it joined the merge whole: the conflict went by the source order,
    # and the PATCH that followed needed no second read (read this run).
    assert first == {"POST /api/v1/contacts": 1, "GET /api/v1/contacts/{id}": 1,
                     "PATCH /api/v1/contacts/{id}": 1}
    (ver,) = env.sim.records("verity")
    assert ver["id"] == ver_id
    assert env.query("SELECT remote_id, how FROM link WHERE system = 'verity'") == [(ver_id, "found")]
    assert view("verity", ver) == ANN
    assert view("aloware", env.only("aloware")) == ANN


def test_a_verity_create_whose_answer_was_lost_makes_no_duplicate(env):
    # Setup: Verity stores the create, then answers 500 (the client cannot
    # tell it from a failure before the effect). Verity is not listed, so
    # the next attempt cannot learn of the contact from a listing.
    env.write_config(system_options=VERITY_NO_LISTING, writes={"backoff": 0})
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.fault("verity", method="POST", route="/api/v1/contacts", kind="status", status=500,
                  after=True)

    # Action: the run whose create answer is lost.
    env.reset_requests()
    code, _, err = env.run("run")

    # Expected: the outcome was journalled unknown; the attempt that
    # followed (backoff 0: in the same run) sent the POST again, which was
    # answered 409 naming the contact the first made: read and linked. One
    # Verity contact.
    assert code == 1, err
    assert "op=create attempt=1 final=no outcome=unknown" in err
    assert env.counts("verity") == {"POST /api/v1/contacts": 2, "GET /api/v1/contacts/{id}": 1}
    (ver,) = env.sim.records("verity")
    assert view("verity", ver) == ANN
    assert env.query("SELECT remote_id, how FROM link WHERE system = 'verity'") == [(ver["id"], "found")]
    assert env.query("SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'superseded')") == [(0,)]
    env.reset_requests()
    run_ok(env)
    assert env.write_requests() == {}
    assert len(env.sim.records("verity")) == 1


def test_a_run_killed_after_a_verity_create_took_effect_makes_no_duplicate(env):
    # Setup: Verity stores the create at once and answers 3 s later; the run
    # is killed (SIGKILL) meanwhile, so nothing of the answer is recorded.
    env.write_config(system_options=VERITY_NO_LISTING, writes={"backoff": 0})
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.fault("verity", method="POST", route="/api/v1/contacts", kind="slow", delay=3)

    # Action 1: the run, killed once the contact exists.
    env.kill_run_when(lambda: env.sim.records("verity"), "Verity to store the create")
    (made,) = env.sim.records("verity")

    # Action 2: the next runs.
    env.reset_requests()
    run_ok(env)

    # Expected: one Verity contact, the one the killed run made, linked.
    (ver,) = env.sim.records("verity")
    assert ver["id"] == made["id"]
    assert env.counts("verity").get("POST /api/v1/contacts") == 1
    assert env.query("SELECT remote_id FROM link WHERE system = 'verity'") == [(made["id"],)]
    env.reset_requests()
    run_ok(env)
    assert env.write_requests() == {}


# ----- recheck_after: an update of a record the run knows recently -------------

def converged_ann(env, **config) -> dict:
    env.write_config(**config)
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()
    return {s: env.only(s)["id"] for s in ("ghl", "aloware", "verity")}


def test_an_update_of_a_record_polled_in_the_same_run_is_sent_without_a_second_read(env):
    # Setup: Ann converged; Verity's user changes her first name.
    ids = converged_ann(env)
    env.edit("verity", ids["verity"], first_name="Anna")

    # Action: the run that writes it to GHL and Aloware (default
    # recheck_after: both were listed by this run moments earlier).
    env.reset_requests()
    run_ok(env)

    # Expected: listings and the two updates; no read of either record.
    assert env.counts("ghl") == {"POST /contacts/search": 1, "PUT /contacts/{id}": 1}
    assert env.counts("aloware") == {"GET /api/v1/contacts": 1, "GET /api/v1/calls": 1,
                                     "POST /api/v1/webhook/forms": 1}
    assert env.counts("verity") == {"GET /api/v1/contacts": 1}
    assert view("ghl", env.only("ghl"))["first_name"] == "Anna"
    assert view("aloware", env.only("aloware"))["first_name"] == "Anna"


def test_recheck_after_0_reads_every_record_before_its_update(env):
    ids = converged_ann(env, system_options={s: {"recheck_after": 0} for s in ("ghl", "aloware", "verity")})
    env.edit("verity", ids["verity"], first_name="Anna")

    env.reset_requests()
    run_ok(env)

    # Expected: each update is preceded by a read of its record.
    assert env.counts("ghl") == {"POST /contacts/search": 1, "GET /contacts/{id}": 1, "PUT /contacts/{id}": 1}
    assert env.counts("aloware") == {"GET /api/v1/contacts": 1, "GET /api/v1/calls": 1,
                                     "GET /api/v1/webhook/contact/phone-number": 1,
                                     "POST /api/v1/webhook/forms": 1}


def test_a_record_listed_longer_ago_than_recheck_after_is_listed_again_not_read(env):
    # Setup: recheck_after = 1 s, and GHL's listing answers 1.5 s late, so
    # by the time of the update GHL was read more than a second ago.
    ids = converged_ann(env, system_options={"ghl": {"recheck_after": 1}})
    env.edit("verity", ids["verity"], first_name="Anna")
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="delay", delay=1.5)

    env.reset_requests()
    run_ok(env)

    # Expected: GHL's changes are listed again before its update (the
    # re-check, test_scale_poll2_recheck.py), instead of reading the record.
    assert env.counts("ghl") == {"POST /contacts/search": 2, "PUT /contacts/{id}": 1}
    assert view("ghl", env.only("ghl"))["first_name"] == "Anna"


def test_a_user_edit_made_after_a_long_ago_read_is_still_not_overwritten(env):
    # Setup: as above, but GHL's re-check listing fails (503), so the record
    # is read before the update; a GHL user changes the very field as that
    # read arrives.
    ids = converged_ann(env, system_options={"ghl": {"recheck_after": 1, "max_attempts": 1}})
    env.edit("verity", ids["verity"], first_name="Anna")
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="delay", delay=1.5)
    env.sim.fault("ghl", method="POST", route="/contacts/search", kind="status", status=503)
    env.sim.fault("ghl", kind="edit", fields={"firstName": "Annabel"}, method="GET", route="/contacts/{id}")

    env.run("run")
    env.converge()

    # Expected: the GHL user's edit, the later one, everywhere.
    assert env.pending_faults("ghl") == []
    assert view("ghl", env.only("ghl"))["first_name"] == "Annabel"
    assert view("verity", env.only("verity"))["first_name"] == "Annabel"
    assert view("aloware", env.only("aloware"))["first_name"] == "Annabel"


# ----- Aloware without a listing (documented API only) --------------------------

def test_aloware_found_by_its_phone_is_updated_without_a_second_lookup(env):
    # Setup: no relay: Aloware is known only through its lookup by phone.
    # Ann is in GHL and, under another first name, in Aloware.
    env.write_config(relay=False)
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("aloware", **dict(ANN, first_name="Annie"))

    # Action: the first run.
    env.reset_requests()
    run_ok(env)

    # Expected: the create's lookup found her (no POST to create), and the
    # update that followed in the same run went without a second lookup.
    assert env.counts("aloware") == {"GET /api/v1/webhook/contact/phone-number": 1,
                                     "POST /api/v1/webhook/forms": 1}
    assert view("aloware", env.only("aloware")) == ANN


def test_aloware_not_read_this_run_is_looked_up_before_its_update(env):
    # Setup: no relay and no sweep: nothing reads Ann's Aloware contact in
    # the run that updates it.
    ids = converged_ann(env, relay=False, system_options={"aloware": {"sweep": 0}})
    env.edit("verity", ids["verity"], first_name="Anna")

    env.reset_requests()
    run_ok(env)

    # Expected: one lookup by phone before the update.
    assert env.counts("aloware") == {"GET /api/v1/webhook/contact/phone-number": 1,
                                     "POST /api/v1/webhook/forms": 1}
    assert view("aloware", env.only("aloware"))["first_name"] == "Anna"


def test_aloware_swept_this_run_is_updated_without_a_second_lookup(env):
    # Setup: no relay; the sweep (50 per run by default without a listing)
    # reads Ann's Aloware contact in the run that updates it.
    ids = converged_ann(env, relay=False)
    env.edit("verity", ids["verity"], first_name="Anna")

    env.reset_requests()
    run_ok(env)

    # Expected: the sweep's lookup, then the update.
    assert env.counts("aloware") == {"GET /api/v1/webhook/contact/phone-number": 1,
                                     "POST /api/v1/webhook/forms": 1}
    assert view("aloware", env.only("aloware"))["first_name"] == "Anna"
