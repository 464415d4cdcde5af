"""The Verity and texting contracts (ours, tests/sim/README.md) as the
simulators enforce them: a page cursor expires (410) and the stream starts
again from its durable cursor next run; a create answered 5xx after it took
effect is never made twice (sent again, it is answered 409 naming the first)."""
from conftest import ANN_AS_TYPED

PEOPLE = [{"first_name": f"V{i}", "last_name": "Cursor", "phone": f"+1555301{i:04d}"} for i in range(1, 4)]


def test_an_expired_verity_cursor_fails_the_stream_and_the_next_run_reads_everything(env):
    # Setup: three Verity contacts, read one per page; cursors expire at once.
    env.write_config(system_options={"verity": {"page_size": 1}})
    for person in PEOPLE:
        env.seed("verity", **person)
    env.sim.config("verity", cursor_ttl=0)

    # Action 1: a run; the second page's cursor has expired.
    code, _, err = env.run("run")

    # Expected: the run is partial (exit 1) and says why; what was read
    # before is kept.
    assert code == 1, err
    assert "cursor expired" in err
    assert [r["path"] for r in env.sim.requests("verity")["log"] if r["status"] == 410] == ["/api/v1/contacts"]

    # Action 2: cursors live again; the next run finishes.
    env.sim.config("verity", cursor_ttl=3600)
    env.converge()

    # Expected: every Verity contact reached GHL, once.
    assert sorted(v["first_name"] for v in env.views("ghl")) == ["V1", "V2", "V3"]


def test_a_verity_create_answered_500_after_it_took_effect_is_not_made_twice(env):
    # Setup: Ann in GHL only; Verity will take the create, then answer 500.
    env.seed("ghl", **ANN_AS_TYPED)
    env.sim.fault("verity", method="POST", route="/api/v1/contacts", kind="status", status=500,
                  after=True)

    # Action: two runs (the first cannot know the create took).
    env.run("run")
    env.converge()

    # Expected: one Verity contact, linked. The create was sent again (no
    # lookup first: Verity's create is idempotent by key) and answered 409
    # naming the contact the first made, which created nothing.
    (rec,) = env.sim.records("verity")
    assert rec["firstName"] == "Ann"
    assert env.query("SELECT remote_id FROM link WHERE system = 'verity'") == [(rec["id"],)]
    posts = [r for r in env.sim.requests("verity")["log"] if r["method"] == "POST"]
    assert [r["status"] for r in posts] == [500, 409]
