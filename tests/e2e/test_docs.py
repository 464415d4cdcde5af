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


def accepted_settings() -> set:
    """Every setting name core/config.c accepts (its known-key lists)."""
    text = (REPO / "core" / "config.c").read_text()
    names = set()
    for block in re.findall(r'keys\[\] = \{(.*?)\};', text, re.S):
        names.update(re.findall(r'"([a-z_]+)"', block))
    return names


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
