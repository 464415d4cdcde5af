"""Data safety (issue 6, items 2 and 3): absence from a listing is never
proof of a delete (I10), and the safety valve measures what each source
changed, never holds back opt-outs and fails closed (I6)."""
import sqlite3

from conftest import view

OPTED_OUT_SMS = {"sms": True, "call": False, "email": False}


def people(n: int, first: int = 0, prefix: str = "P") -> list[dict]:
    """n GHL contacts in GHL's stored shape, phones +1555401xxxx."""
    return [{"firstName": f"{prefix}{i}", "lastName": "Safe", "phone": f"+1555401{i:04d}",
             "email": f"p{i}@example.com"} for i in range(first, first + n)]


def phone(i: int) -> str:
    return f"+1555401{i:04d}"


def by_phone(env, system: str) -> dict:
    """{E.164 phone: canonical view} of a system's records."""
    def digits(value):
        return "+1" + "".join(ch for ch in value or "" if ch.isdigit())[-10:]
    return {digits(view(system, r)["phone"]): view(system, r) for r in env.sim.records(system)}


# ----- item 2: a full listing that misses records deletes nothing ----------

def test_full_listing_that_misses_unindexed_records_deletes_nothing(env):
    # Setup: GHL deletes propagate; 20 people converged everywhere. Then
    # GHL's search indexes late (an hour); 8 people are added in Verity and
    # a run creates them in GHL, where search does not list them yet.
    env.write_config(system_options={"ghl": {"propagate_deletes": True}})
    env.sim.seed("ghl", people(20))
    env.converge()
    env.sim.config("ghl", index_delay=3600)
    env.sim.seed("verity", [{"firstName": f"N{i}", "lastName": "New", "phoneE164": phone(i)}
                            for i in range(100, 108)])
    env.converge()
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [28, 28, 28]
    before = env.all_records()
    env.reset_requests()

    # Action: a full run; GHL's listing leaves out the 8 new contacts.
    code, out, err = env.run("run", "--full")

    # Expected: nothing is deleted or unlinked anywhere; the 8 are only
    # candidates, too young to be checked (first seen within the lookback).
    assert code == 0, err
    assert env.all_records() == before
    assert env.write_requests() == {}
    assert env.query("SELECT count(*) FROM link WHERE deleted_run IS NOT NULL") == [(0,)]
    assert env.query("SELECT count(*) FROM snapshot WHERE gone_run IS NOT NULL") == [(0,)]
    assert env.query("SELECT count(*) FROM notice WHERE kind = 'deleted'") == [(0,)]
    ghl_new = sorted(r["id"] for r in env.sim.records("ghl") if r["lastName"] == "New")
    assert sorted(r for (r,) in env.query(
        "SELECT remote_id FROM snapshot WHERE system = 'ghl' AND missing_run IS NOT NULL")) == ghl_new

    # Action 2: an old GHL contact (P0) really is deleted; the lookback is
    # set to 0, so every candidate is old enough to be checked; full run.
    p0 = next(r["id"] for r in env.sim.records("ghl") if r["firstName"] == "P0")
    verity_p0 = next(r["id"] for r in before["verity"] if r["phoneE164"] == phone(0))
    env.sim.delete("ghl", p0)
    env.write_config(system_options={"ghl": {"propagate_deletes": True, "lookback": 0}})
    env.reset_requests()
    code, out, err = env.run("run", "--full")

    # Expected: each of the 9 candidates was read through its own endpoint;
    # only P0's answered "not found": it alone is unlinked and its Verity
    # record deleted; the 8 unindexed contacts stay linked everywhere.
    assert code == 0, err
    assert len(reads_of(env, ghl_new + [p0])) == 9
    assert env.write_requests() == {"verity": {"DELETE /api/v1/contacts/{id}": 1}}
    assert phone(0) not in by_phone(env, "verity")
    assert len(env.sim.records("verity")) == 27 and len(env.sim.records("ghl")) == 27
    assert env.query("SELECT system, remote_id FROM link WHERE deleted_run IS NOT NULL ORDER BY 1") == [
        ("ghl", p0), ("verity", verity_p0)]
    assert env.query("SELECT count(*) FROM snapshot WHERE missing_run IS NOT NULL "
                     "OR gone_run IS NOT NULL") == [(0,)]


def reads_of(env, ghl_ids) -> list:
    """Paths of the GHL GET /contacts/{id} requests for these ids, in order."""
    paths = {f"/contacts/{rid}" for rid in ghl_ids}
    return [e["path"] for e in env.sim.requests("ghl")["log"] if e["method"] == "GET" and e["path"] in paths]


def test_missing_records_are_checked_within_the_per_run_budget_the_rest_wait(env):
    # Setup: 3 people converged; GHL checks one missing record per run and
    # its lookback is 0 (every record is old enough to be checked).
    env.write_config(system_options={"ghl": {"lookback": 0, "delete_checks": 1}})
    ids = env.sim.seed("ghl", people(3))
    env.converge()
    env.sim.delete("ghl", ids[0])
    env.sim.delete("ghl", ids[1])
    env.reset_requests()

    # Action: a full run (both are missing from its listing).
    code, out, err = env.run("run", "--full")
    assert code == 0, err

    # Expected: one was read by id and unlinked; the other waits. (A full
    # run also reads each listed GHL contact whole: only reads of the
    # missing ones count here.)
    assert reads_of(env, ids[:2]) == [f"/contacts/{ids[0]}"]
    assert env.query("SELECT remote_id FROM link WHERE deleted_run IS NOT NULL") == [(ids[0],)]
    assert env.query("SELECT remote_id FROM snapshot WHERE missing_run IS NOT NULL") == [(ids[1],)]

    # Action 2: an ordinary run (no full listing); Expected: the other is
    # checked and unlinked; nothing is left missing.
    env.reset_requests()
    env.converge()
    assert env.counts("ghl").get("GET /contacts/{id}") == 1
    assert sorted(env.query("SELECT remote_id FROM link WHERE deleted_run IS NOT NULL")) == [
        (ids[0],), (ids[1],)]
    assert env.query("SELECT count(*) FROM snapshot WHERE missing_run IS NOT NULL") == [(0,)]


# ----- item 3: the safety valve --------------------------------------------

def small_verity_large_ghl(env, **flows):
    """100 GHL contacts, 20 of them also in Verity (which creates nothing),
    converged everywhere; returns {phone: verity id} of the 20. Neither
    side paces (the valve is what these tests are about, not rate limits)."""
    options = {"verity": {"create": False}, "ghl": {"rate_limit": 0}, "aloware": {"rate_limit": 0}}
    env.sim.config("ghl", rate_limit=0)
    if flows:
        env.configure_flows(system_options=options, **flows)
    else:
        env.write_config(system_options=options)
    env.sim.seed("ghl", people(100))
    env.sim.seed("verity", [{"firstName": f"P{i}", "lastName": "Safe", "phoneE164": phone(i),
                             "email": f"p{i}@example.com"} for i in range(20)])
    env.converge()
    assert [len(env.sim.records(s)) for s in ("ghl", "aloware", "verity")] == [100, 100, 20]
    return {phone(i): r["id"] for i, r in enumerate(env.sim.records("verity"))}


def blank_names(env, verity_ids: dict, n: int) -> None:
    for i in range(n):
        env.edit("verity", verity_ids[phone(i)], first_name="", last_name="")


def test_mass_blank_in_a_small_source_trips_the_valve_however_large_the_targets(env):
    # Setup: 18 of Verity's 20 records lose their names (90% of Verity,
    # 18% of GHL and Aloware).
    verity_ids = small_verity_large_ghl(env)
    blank_names(env, verity_ids, 18)
    ghl_before, aloware_before = env.sim.records("ghl"), env.sim.records("aloware")
    env.reset_requests()

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: exit 4; nothing written; the message says what was and was
    # not sent.
    assert code == 4, err
    assert ("dfreconcile: safety valve: verity changed 18 of 20 records (90%, more than 50%), "
            "cleared 36 fields in 18 records (90%, more than 50%) and lost 0 records (0%); "
            "sent: 0 opt-outs, 0 deliveries; not sent: 36 updates, 0 creates, 0 deletes. "
            "If this is intended, run again with --max-change-share 0.90 or higher") in err.splitlines()
    assert env.write_requests() == {}
    assert env.sim.records("ghl") == ghl_before and env.sim.records("aloware") == aloware_before
    assert env.query("SELECT status, exit_code FROM run WHERE id = ?", (env.last_run_id(),)) == [
        ("safety-valve", 4)]

    # Action 2: cron runs again (nothing new changed).
    code, out, err = env.run("run")

    # Expected: the valve still holds the same changes back.
    assert code == 4, err
    assert "dfreconcile: safety valve: verity changed 18 of 20 records" in err
    assert env.write_requests() == {}
    assert env.sim.records("ghl") == ghl_before

    # Action 3: the admin confirms with a raised bound.
    code, out, err = env.run("run", "--max-change-share", "1")

    # Expected: the blanks go to GHL and Aloware; a later run is quiet.
    assert code == 0, err
    blanked = {phone(i) for i in range(18)}
    for system in ("ghl", "aloware"):
        for p, v in by_phone(env, system).items():
            expect = ("", "") if p in blanked else (f"P{int(p[-4:])}", "Safe")
            assert (v["first_name"] or "", v["last_name"] or "") == expect, (system, p, v)
    env.reset_requests()
    env.converge()
    assert env.write_requests() == {}


def test_a_small_change_in_a_small_system_does_not_trip(env):
    # Setup: 3 people; one of them is renamed in Verity.
    env.sim.seed("ghl", people(3))
    env.converge()
    vid = next(r["id"] for r in env.sim.records("verity") if r["phoneE164"] == phone(1))
    env.edit("verity", vid, first_name="", last_name="Renamed")

    # Action / Expected: it goes through (1 of 3 is below min_records).
    env.converge()
    assert by_phone(env, "ghl")[phone(1)]["last_name"] == "Renamed"


def test_thirteen_stops_among_24_contacts_reach_every_system(env):
    # Setup: 24 people converged with the texting system; 13 text STOP.
    env.configure_flows(system_options={"ghl": {"rate_limit": 0}, "aloware": {"rate_limit": 0}})
    env.sim.config("ghl", rate_limit=0)   # pacing is not what this test is about
    env.sim.seed("ghl", people(24))
    env.converge()
    for i in range(13):
        env.seed_text("inbound", phone(i), "STOP")

    # Action: one run.
    env.converge()

    # Expected: each of the 13 is opted out in GHL, Verity and the texting
    # system; the other 11 are not.
    ghl = {r["phone"]: r for r in env.sim.records("ghl")}
    verity = {r["phoneE164"]: r for r in env.sim.records("verity")}
    for i in range(24):
        out = i < 13
        assert (ghl[phone(i)].get("dndSettings") or {}).get("SMS", {}).get("status") == \
            ("active" if out else None), i
        assert verity[phone(i)]["optOuts"]["sms"] is out, i
    assert sorted(e["phone"] for e in env.optout_events()) == [phone(i) for i in range(13)]


def test_a_tripped_valve_still_sends_opt_outs_calls_and_texts(env):
    # Setup: as above with every flow on; 18 of Verity's 20 records lose
    # their names; P19 texts STOP and has an Aloware call; a number that is
    # no contact anywhere texts STOP too.
    verity_ids = small_verity_large_ghl(env, opt_in=None)
    blank_names(env, verity_ids, 18)
    env.seed_text("inbound", phone(19), "STOP")
    stranger = "+15554019999"   # no contact anywhere
    env.seed_text("inbound", stranger, "STOP")
    aloware_19 = next(r["id"] for r in env.sim.records("aloware") if r["phone_number"] == phone(19))
    ghl_19 = next(r["id"] for r in env.sim.records("ghl") if r["phone"] == phone(19))
    env.seed_call(aloware_19, direction="inbound", duration=60, disposition="Interested",
                  status="completed", created_at="2025-06-01T12:00:00.000Z")
    names_before = {s: {p: (v["first_name"], v["last_name"]) for p, v in by_phone(env, s).items()}
                    for s in ("ghl", "aloware")}
    env.reset_requests()

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: exit 4; P19's opt-out reached GHL, Verity and the texting
    # system, the stranger's the texting system; the call became a note in
    # GHL and P19's STOP text a message; no name was blanked anywhere.
    assert code == 4, err
    line = next(l for l in err.splitlines() if l.startswith("dfreconcile: safety valve:"))
    assert line.startswith("dfreconcile: safety valve: verity changed 18 of 20 records (90%, more than 50%)"), line
    assert "sent: 4 opt-outs, 2 deliveries; not sent: 36 updates, 0 creates, 0 deletes." in line, line
    assert env.sim.record("ghl", ghl_19)["dndSettings"]["SMS"] == {"status": "active"}
    assert env.sim.record("verity", verity_ids[phone(19)])["optOuts"] == OPTED_OUT_SMS
    assert sorted(e["phone"] for e in env.optout_events()) == [phone(19), stranger]
    assert [n["contactId"] for n in env.notes()] == [ghl_19]
    for s in ("ghl", "aloware"):
        assert {p: (v["first_name"], v["last_name"]) for p, v in by_phone(env, s).items()} == names_before[s]
    writes = env.write_requests()
    assert writes.pop("verity") == {"PATCH /api/v1/contacts/{id}": 1}
    assert writes.pop("texting") == {"POST /api/v1/optouts": 2}
    assert writes.pop("ghl")["PUT /contacts/{id}"] == 1
    assert writes == {}

    # Action 2: the admin confirms; Expected: the blanks go through, the
    # opt-out stays.
    code, out, err = env.run("run", "--max-change-share", "1")
    assert code == 0, err
    assert not by_phone(env, "ghl")[phone(0)]["first_name"]
    assert env.sim.record("ghl", ghl_19)["dndSettings"]["SMS"] == {"status": "active"}


def test_later_runs_after_a_budget_cut_first_sync_finish_it(env):
    # Setup: the same 100 people in GHL and (named differently) in Aloware;
    # Aloware allows 30 requests per run, so the first sync is cut short
    # there; failed writes may be retried at once.
    env.write_config(system_options={"aloware": {"max_requests": 30, "page_size": 20, "rate_limit": 0},
                                     "ghl": {"rate_limit": 0}},
                     writes={"backoff": 0})
    env.sim.config("ghl", rate_limit=0)   # pacing is not what this test is about
    env.sim.seed("ghl", people(100))
    env.sim.seed("aloware", [{"first_name": f"A{i}", "last_name": "Old", "phone_number": phone(i)}
                             for i in range(100)])

    # Action: the first sync, then cron runs again (bounded).
    codes, err = [], ""
    for _ in range(12):
        code, out, err = env.run("run")
        codes.append(code)
        assert code in (0, 1), (codes, err)
        if code == 0:
            break

    # Expected: no run tripped the valve on its own re-planned writes, and
    # the sync completed: Aloware and Verity hold what GHL holds.
    assert codes[-1] == 0, codes
    ghl = {p: (v["first_name"], v["last_name"]) for p, v in by_phone(env, "ghl").items()}
    assert len(ghl) == 100
    for system in ("aloware", "verity"):
        assert {p: (v["first_name"], v["last_name"]) for p, v in by_phone(env, system).items()} == ghl, system


def test_an_error_while_counting_stops_the_run_before_any_write(env):
    # Setup: Ann converged; a write is waiting in the outbox (journalled by
    # an earlier run); then the state's journal of observed changes, which
    # the valve counts from, is damaged.
    env.sim.seed("ghl", people(3))
    env.converge()
    person, vid = env.query("SELECT person_id, remote_id FROM link WHERE system = 'verity' "
                            "ORDER BY person_id LIMIT 1")[0]
    db = sqlite3.connect(env.state_path)
    db.execute("INSERT INTO outbox (run_id, person_id, system, remote_id, op) VALUES (1, ?, 'verity', ?, 'update')",
               (person, vid))
    db.execute("INSERT INTO outbox_field (outbox_id, field, old_value, new_value) "
               "VALUES (last_insert_rowid(), 'city', NULL, 'Waco')")
    db.execute("DROP TABLE observed")
    db.commit()
    db.close()
    env.reset_requests()

    # Action: one run.
    code, out, err = env.run("run")

    # Expected: the run stops (exit 5) with the valve named; nothing sent.
    assert code == 5, err
    assert "dfreconcile: safety valve: cannot count the changes of ghl:" in err, err
    assert env.write_requests() == {}
    assert env.query("SELECT status FROM outbox WHERE op = 'update'") == [("pending",)]
