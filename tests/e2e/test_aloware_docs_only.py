"""Aloware as it really is: by default dfreconcile calls only the endpoints
Aloware documents (lookup by phone, the Lead API, remove-from-all-lists),
and the simulator serves nothing else (its listings answer 404 unless the
relay is on). First sync, edits found by the sweep, contacts found by
phone, and call lists through the Lead API with remove-all + re-add."""
import urllib.error
import urllib.request

from conftest import ANN, ANN_AS_TYPED, call_lists_text

LOOKUP = "GET /api/v1/webhook/contact/phone-number"
FORMS = "POST /api/v1/webhook/forms"
REMOVE_ALL = "POST /api/v1/webhook/powerdialer-remove-contact-from-lists"
DOCUMENTED = {LOOKUP, FORMS, REMOVE_ALL}


def documented_only(env, lists: str = "", **options):
    """The default configuration (no Aloware listing or events), the
    simulator without its relay."""
    env.write_config(relay=False, extra=lists, **options)


def aloware_routes(env) -> set:
    return set(env.counts("aloware"))


def test_defaults_poll_no_aloware_listing_and_the_simulator_serves_none(env):
    # Setup: the documented-only default; the simulator's relay is off.
    documented_only(env)
    code, out, err = env.run("check-config")
    assert code == 0, err
    (line,) = [l for l in out.splitlines() if l.startswith("system 2: aloware ")]
    assert line.endswith(" listing=off events=off"), line

    # Action: a first run with nothing anywhere.
    env.reset_requests()
    env.converge()

    # Expected: the run exits 0 (not partial: converge checks it), Aloware
    # is not asked for anything (nothing linked to sweep), and the
    # simulator's listing is a 404 as on the real Aloware.
    assert env.counts("aloware") == {}
    try:
        urllib.request.urlopen(env.sim.base_url("aloware") + "/api/v1/contacts?api_token=aloware-test-token")
        raise AssertionError("the listing answered without the relay")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_first_sync_creates_in_aloware_through_documented_endpoints_only(env):
    # Setup: Ann in GHL only; the documented-only default.
    documented_only(env)
    ghl_id = env.seed("ghl", **ANN_AS_TYPED)
    env.reset_requests()

    # Action
    env.converge()

    # Expected: Aloware holds Ann, made by the Lead API and found by phone
    # (look up, create, look up), and nothing else was called.
    (rec,) = env.sim.records("aloware")
    assert (rec["first_name"], rec["last_name"], rec["phone_number"], rec["email"]) == \
        ("Ann", "Lee", ANN["phone"], ANN["email"])
    assert aloware_routes(env) <= DOCUMENTED
    assert env.counts("aloware")[FORMS] == 1
    assert env.links()  # linked
    assert env.ids_of(ANN["phone"])["ghl"] == ghl_id

    # And a second run sends nothing to Aloware but the sweep's lookups.
    env.reset_requests()
    env.converge()
    assert aloware_routes(env) <= {LOOKUP}


def test_an_existing_aloware_contact_is_found_by_phone_not_duplicated(env):
    # Setup: Ann in Aloware (first name "Annie") and in GHL; no listing.
    documented_only(env)
    aid = env.seed("aloware", first_name="Annie", last_name="Lee", phone=ANN["phone"])
    env.seed("ghl", **ANN_AS_TYPED)

    # Action
    env.converge()

    # Expected: one Aloware contact, linked, updated by the Lead API with
    # force_update (GHL is first in the source order).
    (rec,) = env.sim.records("aloware")
    assert rec["id"] == aid
    assert rec["first_name"] == "Ann"
    assert env.query("SELECT remote_id FROM link WHERE system = 'aloware'") == [(str(aid),)]


def test_aloware_edits_reach_the_others_through_the_sweep(env):
    # Setup: Ann converged; no listing (the sweep defaults to 50 per run).
    documented_only(env)
    ids = env.converge_person(ANN_AS_TYPED)

    # Action: a user renames her in Aloware; one run.
    env.sim.edit("aloware", ids["aloware"], {"first_name": "Anna"})
    env.reset_requests()
    env.converge()

    # Expected: the sweep's lookup found it; GHL and Verity have it; only
    # documented endpoints were called.
    assert env.sim.record("ghl", ids["ghl"])["firstName"] == "Anna"
    assert env.sim.record("verity", ids["verity"])["firstName"] == "Anna"
    assert aloware_routes(env) <= DOCUMENTED


def test_tag_moves_use_the_lead_api_and_remove_all_then_re_add(env):
    # Setup: Aloware users 101 and 102 each have a Power Dialer list;
    # rules call_now -> user 101, hot -> user 102. Ann converged without
    # tags; then a user puts her on list 103 by hand in Aloware.
    env.seed_lists(101, 102, 103)
    documented_only(env, call_lists_text(("call_now", "exact", "101"), ("hot", "exact", "102")))
    ids = env.converge_person(ANN_AS_TYPED)
    aid = ids["aloware"]

    def tag_and_run(*tags):
        env.edit("ghl", ids["ghl"], tags=list(tags))
        env.reset_requests()
        env.converge()
        return env.last_run_id()

    # Action 1: tagged call_now and hot.
    run_a = tag_and_run("call_now", "hot")
    # Expected: one Lead API request per list, nothing undocumented.
    assert env.lists() == {101: [aid], 102: [aid], 103: []}
    assert env.write_requests()["aloware"] == {FORMS: 2}
    assert aloware_routes(env) <= DOCUMENTED
    assert env.list_members() == [(1, "101", "member", run_a), (1, "102", "member", run_a)]

    # Someone adds her to list 103 in Aloware (not through dfreconcile).
    lists = {r["id"]: r for r in env.sim.records("aloware", collection="lists")}
    env.sim.edit("aloware", 103, {"contact_ids": [aid]}, collection="lists")
    assert lists[103]["contact_ids"] == []

    # Action 2: call_now removed in GHL.
    run_b = tag_and_run("hot")
    # Expected: removed from every list, re-added to 102 only; 103 is lost
    # and the report's notice says exactly that.
    assert env.lists() == {101: [], 102: [aid], 103: []}
    assert env.write_requests()["aloware"] == {REMOVE_ALL: 1, FORMS: 1}
    assert env.list_members() == [(1, "101", "removed", run_b), (1, "102", "member", run_a)]
    assert [(n[2], n[3], n[4], n[5]) for n in env.notices(run_b)] == [
        ("aloware", str(aid), "list-remove",
         "Aloware removes a contact from every Power Dialer list at once: removed from all, then "
         "re-added at the bottom to the lists of users [102] its tags still call for; lists set "
         "in Aloware by hand cannot be restored")]

    # And a quiet run changes no list.
    env.reset_requests()
    env.converge()
    assert env.write_requests().get("aloware") is None


def test_an_aloware_tag_rule_adds_the_tag_and_reports_it_cannot_remove_it(env):
    # Setup: rule vip -> Aloware tag 55; Ann converged.
    documented_only(env, call_lists_text(("vip", "exact", "tag:55")))
    ids = env.converge_person(ANN_AS_TYPED)
    aid = ids["aloware"]

    # Action 1: tagged vip in GHL.
    env.edit("ghl", ids["ghl"], tags=["vip"])
    env.reset_requests()
    env.converge()
    # Expected: the Lead API's tag_id gave her the tag.
    assert env.sim.record("aloware", aid)["tag_ids"] == [55]
    assert env.write_requests()["aloware"] == {FORMS: 1}

    # Action 2: vip removed.
    env.edit("ghl", ids["ghl"], tags=[])
    env.reset_requests()
    env.converge()
    run_id = env.last_run_id()
    # Expected: nothing sent (Aloware cannot take a tag off), the tag stays,
    # and the report says so.
    assert env.write_requests().get("aloware") is None
    assert env.sim.record("aloware", aid)["tag_ids"] == [55]
    assert [(n[4], n[5]) for n in env.notices(run_id)] == [
        ("list-remove", "Aloware's API cannot take a tag off a contact (the Lead API only adds tags): "
                        "tag_id [55] left on the contact, remove it in Aloware")]
