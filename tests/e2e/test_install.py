"""Runs on a real host: `make install DESTDIR=...` lays out the documented
tree with the documented modes, the systemd units pass `systemd-analyze
verify`, and a plain make without the -dev packages names them."""
import os
import shutil
import stat
import subprocess

import pytest

from conftest import REPO


def make(*args, **env):
    proc = subprocess.run(["make", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_install_lays_out_the_documented_tree_with_the_documented_modes(tmp_path):
    # Action: a staged install, as a package build does it.
    code, out, err = make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr/local",
                          "SYSCONFDIR=/etc", "LOCALSTATEDIR=/var")

    # Expected: every file where the README says, with its mode.
    assert code == 0, err
    expected = {
        "usr/local/bin/dfreconcile": 0o755,
        "usr/local/share/man/man1/dfreconcile.1": 0o644,
        "usr/local/share/man/man5/dfreconcile.conf.5": 0o644,
        "usr/local/share/doc/dfreconcile/dfreconcile.conf": 0o644,
        "usr/local/share/doc/dfreconcile/crontab.example": 0o644,
        "usr/local/lib/systemd/system/dfreconcile.service": 0o644,
        "usr/local/lib/systemd/system/dfreconcile.timer": 0o644,
        "etc/dfreconcile": 0o750,
        "etc/dfreconcile/dfreconcile.conf": 0o600,
        "var/lib/dfreconcile": 0o700,
    }
    assert {name: mode(tmp_path / name) for name in expected} == expected
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(name for name in expected if (tmp_path / name).is_file())
    # The unit names the installed paths; the staged install changes no
    # account and says what to run on the target host instead.
    unit = (tmp_path / "usr/local/lib/systemd/system/dfreconcile.service").read_text()
    assert "ExecStart=/usr/local/bin/dfreconcile -c /etc/dfreconcile/dfreconcile.conf -q run" in unit
    assert "ReadWritePaths=/var/lib/dfreconcile" in unit
    assert "useradd --system --gid dfreconcile" in out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    # Setup: the units as installed, the service pointing at the staged binary
    # (verify checks that ExecStart names an executable).
    code, out, err = make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    assert code == 0, err
    units = tmp_path / "usr/local/lib/systemd/system"
    check = tmp_path / "check"
    check.mkdir()
    service = (units / "dfreconcile.service").read_text()
    (check / "dfreconcile.service").write_text(
        service.replace("/usr/local/bin/dfreconcile", str(tmp_path / "usr/local/bin/dfreconcile")))
    shutil.copy(units / "dfreconcile.timer", check / "dfreconcile.timer")

    # Action
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(check / "dfreconcile.service"), str(check / "dfreconcile.timer")],
                          capture_output=True, text=True, timeout=60)

    # Expected: no complaint at all; the hardening is in place.
    assert (proc.returncode, proc.stderr) == (0, "")
    for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "User=dfreconcile",
                 "StateDirectoryMode=0700", "LimitCORE=0"):
        assert line in service.splitlines()


def test_a_build_without_the_dev_packages_names_them_and_the_command(tmp_path):
    # Setup: pkg-config finds nothing (as on a machine without the -dev
    # packages); a build directory of its own.

    # Action
    code, out, err = make(f"BUILD={tmp_path}/build", "PKG_CONFIG=false", "dfreconcile")

    # Expected: it stops before compiling, naming every package and the command.
    assert code != 0
    assert ("dfreconcile: cannot build: missing Debian packages: libcurl4-openssl-dev "
            "libjson-c-dev libsqlite3-dev libconfig-dev") in err
    assert "apt-get install libcurl4-openssl-dev libjson-c-dev libsqlite3-dev libconfig-dev" in err
    assert not (tmp_path / "build").exists()
