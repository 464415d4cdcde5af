"""What cannot be done is said: a contact Aloware cannot hold becomes a
notice; a broken configuration is refused with its file and line."""
import pytest

from conftest import config_text


def test_contact_without_phone_is_not_created_in_aloware_but_in_verity(env):
    # Setup: a GHL contact with an email and no phone (Aloware keys contacts
    # by phone, so it cannot hold this one).
    ghl_id = env.seed("ghl", first_name="Dee", last_name="Ng", email="Dee@Example.com")

    # Action
    env.converge()

    # Expected: Verity has it, Aloware has nothing, and a notice says why.
    assert env.sim.records("aloware") == []
    verity = env.only("verity")
    assert (verity["firstName"], verity["lastName"], verity["email"], verity["phoneE164"]) == (
        "Dee", "Ng", "dee@example.com", None)
    run_id = env.last_run_id()
    assert env.query("SELECT run_id, person_id, system, remote_id, kind, message FROM notice") == [
        (run_id, 1, "aloware", None, "cannot-create", "aloware needs a valid phone to create a contact")]
    assert sorted(env.query("SELECT system, remote_id, person_id FROM link")) == [
        ("ghl", ghl_id, 1), ("verity", verity["id"], 1)]
    assert env.report_json()["notices"] == [{
        "run_id": run_id, "system": "aloware", "person_id": 1, "remote_id": "", "kind": "cannot-create",
        "message": "aloware needs a valid phone to create a contact"}]


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of text containing needle."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("needle, broken, message", [
    # a syntax error: a setting without a value
    ('default_country = "US";', 'default_country = ;', "syntax error"),
    # a value out of range, inside the systems group
    ('location_id = "loc-demo";', 'location_id = "loc-demo"; page_size = 9999;',
     "systems.ghl.page_size: must be between 1 and 500"),
    # an unknown merge rule
    ('source_order =', 'fields = { first_name = "loudest"; };\nsource_order =',
     'fields.first_name: unknown rule "loudest"'),
])
def test_check_config_on_a_broken_config_exits_2_and_names_file_and_line(env, needle, broken, message):
    # Setup: the test's valid configuration with one line broken.
    code, out, err = env.run("check-config")
    assert (code, out.splitlines()[-1]) == (0, "configuration ok")
    text = config_text(env.sim, env.state_path)
    line = line_of(text, needle)
    env.config_path.write_text(text.replace(needle, broken, 1))

    # Action
    code, out, err = env.run("check-config")

    # Expected: exit 2, one message naming the file and line, nothing touched.
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"dfreconcile: {env.config_path}:{line}: "), err
    assert message in err
    assert not env.state_path.exists()
