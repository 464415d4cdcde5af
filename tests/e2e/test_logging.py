"""Logs an admin can ship: one JSON object per line with --log-format json
(every value exactly as it was, whatever it holds), and syslog(3) with
log_target = "syslog"."""
import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import ANN_AS_TYPED, BINARY


def test_json_log_lines_are_objects_with_every_key_and_exact_values(env):
    # Setup: Ann in GHL; a Verity contact whose id holds a quote, a space and
    # a newline (the kind of value that would forge a text line).
    env.seed("ghl", **ANN_AS_TYPED)
    now = env.sim.now("verity")
    odd_id = 'ver "odd"\nevent=forged'
    env.sim.seed("verity", raw=True, records=[
        {"id": odd_id, "firstName": "Odd", "phoneE164": "+15552019999", "updatedAt": now}])

    # Action
    code, out, err = env.run("--log-format", "json", "run")

    # Expected: every line is one JSON object with ts, level and event; the
    # odd id comes back exactly; nothing was forged.
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines and all({"ts", "level", "event"} <= set(o) for o in lines), err
    assert [o["event"] for o in lines][0] == "run-start"
    assert lines[-1]["event"] == "run-end"
    assert any(o.get("record") == odd_id for o in lines), err
    assert not any(o["event"] == "forged" for o in lines)
    assert code in (0, 1)


def test_log_format_in_the_config_and_a_bad_value_named(env):
    # Setup: the config asks for JSON; then for an unknown format.
    text = env.config_path.read_text()
    env.config_path.write_text(text + 'log_format = "json";\n')
    code, out, err = env.run("run")
    assert all(json.loads(line)["level"] in ("info", "warn", "error") for line in err.splitlines())

    env.config_path.write_text(text + 'log_format = "xml";\n')
    code, out, err = env.run("run")
    assert code == 2
    assert "log_format: must be text or json" in err


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) to give the binary a /dev/log of the test's own")
def test_log_target_syslog_sends_every_line_to_dev_log(env, tmp_path):
    # Setup: a syslog socket of the test's own, mounted as /dev/log in a
    # private mount namespace (the host's /dev is left alone); the config
    # sends the log there.
    sock_path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(5)
    env.config_path.write_text(env.config_path.read_text() + 'log_target = "syslog";\n')
    devcopy = tmp_path / "dev"
    devcopy.mkdir()
    script = (f"mount --bind /dev {devcopy} && mount -t tmpfs tmpfs /dev && "
              f"for n in null zero random urandom; do touch /dev/$n && mount --bind {devcopy}/$n /dev/$n; done && "
              f"touch /dev/log && mount --bind {sock_path} /dev/log && "
              f"exec {BINARY} -c {env.config_path} run")

    # Action
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    # Expected: nothing on stderr; the lines arrived at the socket as
    # daemon-facility messages from dfreconcile, first run-start, last run-end.
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    received = []
    sock.settimeout(1)
    for _ in range(1000):
        try:
            received.append(sock.recv(65536).decode())
        except (socket.timeout, BlockingIOError):
            break
    sock.close()
    assert received, "no syslog message arrived"
    # <30> is facility daemon (3) * 8 + info (6).
    assert all(m.startswith("<30>") or m.startswith("<28>") for m in received), received
    assert "dfreconcile[" in received[0] and "event=run-start" in received[0]
    assert "event=run-end" in received[-1]


def test_progress_lines_with_verbose_count_what_each_stage_did(env):
    # Setup: three Verity contacts, one per page, and Ann in GHL: a first run
    # reads 3 Verity pages and makes 4 creates in Aloware, 1 in Verity... A
    # progress line at every step (progress_interval = 0) to count them.
    env.write_config(system_options={"verity": {"page_size": 1}}, extra="progress_interval = 0;")
    env.seed("ghl", **ANN_AS_TYPED)
    for i in range(3):
        env.seed("verity", first_name=f"V{i}", last_name="Test", phone=f"+1555302{i:04d}")

    # Action: -v (or a terminal) asks for progress.
    code, out, err = env.run("-v", "run")
    quiet_code, quiet_out, quiet_err = env.run("run")

    # Expected: Verity's listing counted page by page (a last empty page
    # may follow), the writes counted one by one against their total; and
    # none of it without -v (stderr is no terminal here).
    assert code == 0, err
    progress = [line.split(" ", 2)[2] for line in err.splitlines() if "event=progress" in line]
    verity = [p for p in progress if "stage=contacts system=verity" in p]
    assert [p.split()[3] for p in verity][:3] == ["done=1", "done=2", "done=3"]
    writes = [p.split()[3:5] for p in progress if "stage=write" in p]
    total = len(writes)
    assert total >= 4 and writes == [[f"done={i}", f"total={total}"] for i in range(1, total + 1)]
    assert "event=progress" not in quiet_err
