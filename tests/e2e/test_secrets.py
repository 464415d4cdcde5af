"""Secrets stay put (I9): no configured token in any output or in the state."""
import sqlite3

from conftest import ANN_AS_TYPED, TEXTING_TOKEN, TOKENS

ALL_TOKENS = dict(TOKENS, texting=TEXTING_TOKEN)


def leaked(text) -> list:
    """The tokens found in text (str or bytes)."""
    if isinstance(text, str):
        text = text.encode()
    return [name for name, token in ALL_TOKENS.items() if token.encode() in text]


def test_no_token_in_any_output_nor_in_the_state_file(env):
    # Setup: debug logging (every request is logged); Ann in GHL, Cy in
    # Aloware, and failures on Aloware and Verity so that error messages and
    # retries are logged too.
    env.configure_flows(log_level="debug", lists=[("vip", "exact", "101")])
    env.seed_lists(101)
    ghl_id = env.seed("ghl", **dict(ANN_AS_TYPED, tags=["vip"]))
    (cy_id,) = env.sim.seed("aloware", [
        {"first_name": "Cy", "phone_number": "+1 555 201 0003", "email": "cy@example.com"}])
    env.sim.fault("aloware", method="GET", route="/api/v1/webhook/contact/phone-number",
                  kind="status", status=503, times=1)
    env.sim.fault("verity", method="POST", route="/api/v1/contacts", kind="status", status=500, times=1)
    outputs = {}

    # Action: a run, an edit and another run (updates through every
    # connector, with its token in a header, query string or body), plus a
    # run that fails to reach GHL at all, all at debug level.
    code, out, err = env.run("-v", "run")
    outputs["run 1"] = out + err
    assert "event=http" in err  # debug logging was on
    # The state file stays open here, so its -wal file survives the runs.
    keep_open = sqlite3.connect(env.state_path)
    try:
        keep_open.execute("SELECT count(*) FROM run").fetchall()
        env.edit("ghl", ghl_id, first_name="Anna")
        env.edit("aloware", cy_id, city="Reno")
        # Every flow through every connector: a call, texts, a STOP.
        env.seed_call(cy_id)
        env.seed_text("inbound", "+15552010003", "Hello")
        env.seed_text("inbound", "+15552010003", "STOP")
        code, out, err = env.run("-v", "run")
        outputs["run 2"] = out + err
        env.sim.fault("ghl", kind="status", status=401, times=10)
        code, out, err = env.run("-v", "run")
        outputs["run 3 (GHL refuses)"] = out + err
        code, out, err = env.run("-v", "run", "--dry-run")
        outputs["dry run"] = out + err
        for args in (("report",), ("report", "--format", "json"), ("report", "--run", "1"),
                     ("report", "--run", "1", "--format", "json"), ("status",), ("check-config",),
                     ("explain", "cy@example.com"), ("explain", "--format", "json", "1")):
            code, out, err = env.run("-v", *args)
            assert code == 0, (args, err)
            outputs[" ".join(args)] = out + err
        wal = env.state_path.with_name(env.state_path.name + "-wal")
        assert wal.exists()
        files = {p.name: p.read_bytes() for p in env.dir.glob(env.state_path.name + "*")}
    finally:
        keep_open.close()

    # Expected: the runs did real work (so the check means something) ...
    assert env.query("SELECT count(*) FROM outbox WHERE status = 'done'")[0][0] >= 4
    assert env.query("SELECT count(*) FROM delivery WHERE status = 'done'")[0][0] == 3
    assert env.query("SELECT count(*) FROM optout WHERE status = 'opted-out'")[0][0] == 1
    assert env.query("SELECT count(*) FROM run")[0][0] == 3
    # ... and no token appears anywhere.
    assert {what: leaked(text) for what, text in outputs.items() if leaked(text)} == {}
    assert {name: leaked(data) for name, data in files.items() if leaked(data)} == {}
    assert leaked(env.state_path.read_bytes()) == []
