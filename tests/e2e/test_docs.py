"""The documents users read match the binary: the example configuration is
accepted as shipped, and --help and the man pages name every command and
every setting the binary accepts."""
import re
import subprocess
from pathlib import Path

from conftest import BINARY, REPO


def binary(*args, cwd=None):
    proc = subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=30, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def connector_settings() -> dict:
    """{system: {setting: help}} from each connector's settings table
    (struct setting, core/config.h): what the loader reads for it."""
    tables = {}
    for path in sorted((REPO / "connectors").glob("*.c")):
        text = path.read_text()
        for system, body in re.findall(r'static const struct setting (\w+)_settings\[\] = \{(.*?)\n\};',
                                       text, re.S):
            tables[system] = dict(re.findall(
                r'\{ "([a-z_]+)", SETTING_\w+,.*?\n?\s*"([^"]+)" \}', body, re.S))
    return tables


def accepted_settings() -> set:
    """Every setting name the binary accepts: core/config.c's known-key
    lists (the generic settings) and the connectors' tables."""
    text = (REPO / "core" / "config.c").read_text()
    names = set()
    for block in re.findall(r'keys\[\] = \{(.*?)\};', text, re.S):
        names.update(re.findall(r'"([a-z_]+)"', block))
    for table in connector_settings().values():
        names.update(table)
    # The members of a call_lists rule that the lists system declares.
    for path in (REPO / "connectors").glob("*.c"):
        for block in re.findall(r'_list_keys\[\] = \{(.*?)\};', path.read_text(), re.S):
            names.update(re.findall(r'"([a-z_]+)"', block))
    return names


def test_every_connector_setting_is_in_the_example_and_check_config(tmp_path):
    # Setup: the connectors' tables; the example configuration.
    tables = connector_settings()
    assert {"location_id", "conversation_provider_id"} <= set(tables["ghl"]), tables
    example = (REPO / "etc" / "dfreconcile.conf").read_text()

    # Expected: each connector's own setting appears in the example (set,
    # or commented out with its explanation) inside that system's group.
    for system, table in tables.items():
        group = re.search(rf"^  {system} = \{{(.*?)^  \}};", example, re.S | re.M)
        assert group, system
        for name in table:
            assert re.search(rf"^\s*#?\s*{name} = ", group.group(1), re.M), (system, name)


def test_example_config_is_accepted_as_shipped(tmp_path):
    # Setup: the example, with its token files and state path moved into
    # tmp_path (they name /etc and /var on a real machine).
    text = (REPO / "etc" / "dfreconcile.conf").read_text()
    for name in re.findall(r'token_file = "(/etc/dfreconcile/[a-z]+\.token)"', text):
        (tmp_path / Path(name).name).write_text("example-token\n")
    text = re.sub(r'"/etc/dfreconcile/([a-z]+\.token)"', r'"\1"', text)
    text = text.replace('"/var/lib/dfreconcile/state.db"', '"state.db"')
    conf = tmp_path / "example.conf"
    conf.write_text(text)

    code, out, err = binary("-c", str(conf), "check-config")

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "configuration ok"
    for system in ("ghl", "aloware", "verity", "texting"):
        assert re.search(rf"^system \d: {system} ", out, re.M), out
    assert "example-token" not in out
    # check-config names each connector's own settings with their help.
    for system, table in connector_settings().items():
        for name, help_text in table.items():
            assert re.search(rf"^system \d {system}: {name} = .* \({re.escape(help_text)}\)$", out,
                             re.M), (name, out)


def test_help_names_every_command():
    code, out, _ = binary("--help")
    assert code == 0
    for command in ("run", "report", "status", "explain", "retry", "check-config", "link", "unlink",
                    "pin", "unpin", "undo"):
        assert re.search(rf"^  {command}\b", out, re.M), command
    for option in ("--full", "--dry-run", "--max-change-share", "--last", "--run", "--format", "--metrics",
                   "--yes"):
        assert option in out


def test_man_pages_document_every_setting_and_command():
    conf5 = (REPO / "man" / "dfreconcile.conf.5").read_text().replace("\\-", "-").replace("\\(", "(")
    page1 = (REPO / "man" / "dfreconcile.1").read_text().replace("\\-", "-")
    settings = accepted_settings()
    assert {"base_url", "sweep", "events", "opt_in", "user_id", "tag_id"} <= settings
    assert sorted(s for s in settings if s not in conf5) == []
    for command in ("run", "report", "status", "explain", "retry", "check-config", "link", "unlink",
                    "pin", "unpin", "undo"):
        assert re.search(rf"\\fB{command}\\fR|^\.B {command}$", page1, re.M), command
