"""`run --dry-run` prints the exact plan and changes nothing anywhere."""
from conftest import ANN_AS_TYPED, ONLY_LISTINGS


def state_files(env) -> dict:
    """Name -> bytes of the state file and its companions (-wal, -shm)."""
    return {p.name: p.read_bytes() for p in sorted(env.dir.glob(env.state_path.name + "*"))
            if not p.name.endswith(".lock")}


def differences(before: dict, after: dict) -> dict:
    """File name -> what differs (presence, size, first differing offsets)."""
    out = {}
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            out[name] = "created" if a is None else "removed"
        elif a != b:
            offsets = [i for i in range(min(len(a), len(b))) if a[i] != b[i]][:8]
            out[name] = f"size {len(a)} -> {len(b)}, bytes differ at offsets {offsets}"
    return out


def test_dry_run_prints_the_plan_and_leaves_systems_and_state_unchanged(env):
    # Setup: Ann converged; then her first name is edited in Aloware and a
    # new contact, Bob, appears in GHL.
    ann_ghl = env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    ann_verity = env.only("verity")["id"]
    env.edit("aloware", env.only("aloware")["id"], first_name="Annie")
    env.seed("ghl", first_name="Bob", phone="+15552010002")
    records_before = env.all_records()
    tables_before = env.dump_state()
    env.reset_requests()

    # Action
    code, out, err = env.run("run", "--dry-run")

    # Expected: exit 0, the plan on stdout: system, field, old -> new, rule.
    assert code == 0, err
    assert out.splitlines() == [
        "dry run: nothing is sent and the state is left as it was",
        f'plan: ghl update {ann_ghl} person=1 field=first_name: "Ann" -> "Annie" (rule two-way)',
        f'plan: verity update {ann_verity} person=1 field=first_name: "Ann" -> "Annie" (rule two-way)',
        'plan: aloware create (new) person=2 field=first_name: "" -> "Bob" (rule two-way)',
        'plan: aloware create (new) person=2 field=phone: "" -> "+15552010002" (rule prefer-valid)',
        'plan: verity create (new) person=2 field=first_name: "" -> "Bob" (rule two-way)',
        'plan: verity create (new) person=2 field=phone: "" -> "+15552010002" (rule prefer-valid)',
        "plan: 4 writes",
    ]

    # Expected: only reads: the listings, and the new GHL contact read whole
    # (search answers carry no per-channel DND); no lookup, no write.
    assert env.all_counts() == dict(ONLY_LISTINGS, ghl={"POST /contacts/search": 1,
                                                        "GET /contacts/{id}": 1})
    # Expected: every system and the state exactly as before.
    assert env.all_records() == records_before
    assert env.dump_state() == tables_before

    # And the real run afterwards does what the plan said.
    env.converge()
    assert sorted(v["first_name"] for v in env.views("verity")) == ["Annie", "Bob"]
    assert sorted(v["first_name"] for v in env.views("aloware")) == ["Annie", "Bob"]


def test_dry_run_leaves_the_state_file_byte_for_byte(env):
    # Setup: Ann converged, then edited in Aloware, so the dry run has a plan.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.edit("aloware", env.only("aloware")["id"], first_name="Annie")
    files_before = state_files(env)

    # Action
    code, out, err = env.run("run", "--dry-run")

    # Expected: the plan was made, and not one byte of the state file (nor a
    # left-over -wal/-shm) differs: a dry run commits no transaction at all.
    assert code == 0, err
    assert out.splitlines()[-1] == "plan: 2 writes"
    assert differences(files_before, state_files(env)) == {}
