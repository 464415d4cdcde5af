"""Issue 8 item 2: monitoring. `run --metrics FILE` (or metrics_file) writes
a Prometheus textfile (node_exporter's textfile collector format) after
every run, whatever its exit status, atomically and readable by
node_exporter (0644); healthcheck_url is pinged on success (URL) and on
failure (URL/fail), off by default, bounded in time, never logged.

The file is checked by a strict parser of the text format written here
(and by `promtool check metrics` when the host has it: Debian's prometheus
package)."""
import http.server
import os
import re
import shutil
import stat
import subprocess
import threading

import pytest

from conftest import ANN_AS_TYPED, SYSTEMS

BOB = {"first_name": "Bob", "last_name": "Ray", "phone": "+15552010002"}

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
VALUE = re.compile(r"^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|NaN|[+-]Inf)$")


def parse_metrics(text: str) -> dict:
    """Strict parse of the text exposition format (0.0.4): HELP and TYPE at
    most once per family and before its samples, a family's samples
    together, valid names, labels and values, no duplicate series, a final
    newline. Returns {(name, frozenset(labels)): float}."""
    assert text.endswith("\n"), "the file must end with a newline"
    samples, helps, types, done, current = {}, set(), {}, set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        assert line == line.strip() and line, f"line {n}: blank or padded: {line!r}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert NAME.fullmatch(name), f"line {n}: bad name {name!r}"
                assert name not in done and name != current or parts[1] not in (helps if parts[1] == "HELP" else types), \
                    f"line {n}: {parts[1]} repeated or after samples"
                if parts[1] == "HELP":
                    assert name not in helps, f"line {n}: second HELP for {name}"
                    helps.add(name)
                else:
                    assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                    assert name not in types and name not in done and name != current, \
                        f"line {n}: TYPE for {name} repeated or after its samples"
                    types[name] = parts[3]
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)( -?\d+)?$", line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, labels, value = m.group(1), m.group(2), m.group(3)
        if name != current:
            assert name not in done, f"line {n}: samples of {name} are not together"
            if current:
                done.add(current)
            current = name
        pairs = {}
        if labels:
            body = labels[1:-1]
            pos = 0
            while pos < len(body):
                lm = LABEL.match(body, pos)
                assert lm, f"line {n}: bad label at {body[pos:]!r}"
                assert lm.group(1) not in pairs, f"line {n}: label {lm.group(1)} twice"
                pairs[lm.group(1)] = lm.group(2)
                pos = lm.end()
                if pos < len(body):
                    assert body[pos] == ",", f"line {n}: labels not separated by a comma"
                    pos += 1
        assert VALUE.match(value), f"line {n}: bad value {value!r}"
        key = (name, frozenset(pairs.items()))
        assert key not in samples, f"line {n}: duplicate series {line!r}"
        assert name in types, f"line {n}: {name} has no TYPE line"
        samples[key] = float(value)
    return samples


def metric(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def check_file(path) -> dict:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o644, oct(mode)
    text = path.read_text()
    if shutil.which("promtool"):
        proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        # promtool also lints (e.g. counters named _total); only errors fail.
        assert proc.returncode == 0 or "error" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    # Nothing left behind by the atomic write.
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name)) == [path.name]
    return parse_metrics(text)


def test_parser_rejects_what_the_format_forbids():
    good = '# HELP a x\n# TYPE a gauge\na{b="c"} 1\na{b="d"} 2.5\n'
    assert parse_metrics(good)[("a", frozenset({("b", "c")}))] == 1.0
    for bad in ('a 1\n', '# TYPE a gauge\na 1', '# TYPE a gauge\na{b="c} 1\n',
                '# TYPE a gauge\na 1\na 1\n', '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="y"} 1\n',
                '# TYPE a gauge\na one\n', '# TYPE a gauge\na{b="\\t"} 1\n',
                '# TYPE a gauge\na 1\n# TYPE a gauge\n'):
        with pytest.raises(AssertionError):
            parse_metrics(bad)


def test_metrics_after_a_converged_run_a_write_failure_credentials_and_the_valve(env, tmp_path):
    path = tmp_path / "textfile" / "dfreconcile.prom"
    path.parent.mkdir()
    env.write_config(writes={"backoff": 0}, extra=f'metrics_file = "{path}";\nsafety = {{ min_records = 0; }};')
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("ghl", **BOB)
    env.reset_requests()

    # Action 1: the first run creates both persons in Aloware and Verity.
    env.converge()
    m = check_file(path)
    run = env.last_run_id()
    assert metric(m, "dfreconcile_last_run_exit_status") == 0
    assert metric(m, "dfreconcile_last_run_id") == run
    assert metric(m, "dfreconcile_last_success_timestamp_seconds") > 0
    assert metric(m, "dfreconcile_last_run_duration_seconds") >= 0
    for system in SYSTEMS:
        assert metric(m, "dfreconcile_requests", system=system) == sum(env.counts(system).values())
        assert metric(m, "dfreconcile_system_credentials_refused", system=system) == 0
        for cls in ("temporary", "refused", "unknown", "credentials", "budget", "input"):
            assert metric(m, "dfreconcile_failures", system=system, **{"class": cls}) == 0
    assert metric(m, "dfreconcile_records_read", system="ghl") == 2
    assert metric(m, "dfreconcile_records_written", system="aloware") == 2
    assert metric(m, "dfreconcile_records_written", system="verity") == 2
    assert metric(m, "dfreconcile_writes", status="pending") == 0
    assert metric(m, "dfreconcile_oldest_pending_write_age_seconds") == 0
    # GHL states its daily quota in every answer; the others state none.
    assert metric(m, "dfreconcile_quota_limit", system="ghl") == 200000
    assert metric(m, "dfreconcile_quota_remaining", system="ghl") == 200000 - sum(env.counts("ghl").values())
    assert not [k for k in m if k[0] == "dfreconcile_quota_remaining" and ("system", "ghl") not in k[1]]
    lags = {k: v for k, v in m.items() if k[0] == "dfreconcile_stream_lag_seconds"}
    assert ("dfreconcile_stream_lag_seconds", frozenset({("system", "ghl"), ("stream", "contacts")})) in lags

    # Action 2: GHL answers 500 to updates: a write waits (exit 1).
    (ann_v,) = [r["id"] for r in env.sim.records("verity") if r["lastName"] == "Lee"]
    env.sim.fault("ghl", method="PUT", route="/contacts/{id}", kind="status", status=500, times=10)
    env.edit("verity", ann_v, first_name="Annabel")
    code, out, err = env.run("run")
    assert code == 1, err
    m = check_file(path)
    assert metric(m, "dfreconcile_last_run_exit_status") == 1
    assert metric(m, "dfreconcile_writes", status="pending") == 1
    assert metric(m, "dfreconcile_failures", system="ghl", **{"class": "temporary"}) == 1
    env.sim.clear_faults("ghl")

    # Action 3: GHL refuses the token (401): exit 6, and the file says so.
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace('token = "ghl-test-token"', 'token = "expired-token"'))
    code, out, err = env.run("run")
    assert code == 6, err
    m = check_file(path)
    assert metric(m, "dfreconcile_last_run_exit_status") == 6
    assert metric(m, "dfreconcile_system_credentials_refused", system="ghl") == 1
    assert metric(m, "dfreconcile_failures", system="ghl", **{"class": "credentials"}) >= 1
    assert "expired-token" not in path.read_text()
    env.config_path.write_text(text)

    # Action 4: both persons blanked in Verity: the valve holds (exit 4).
    env.converge()
    for r in env.sim.records("verity"):
        env.edit("verity", r["id"], first_name="", last_name="")
    code, out, err = env.run("run", "--metrics", str(tmp_path / "other.prom"))
    assert code == 4, err
    m = check_file(tmp_path / "other.prom")
    assert metric(m, "dfreconcile_last_run_exit_status") == 4
    assert metric(m, "dfreconcile_last_run_id") == env.last_run_id()

    # A dry run leaves the file as it was.
    before = path.read_text()
    code, out, err = env.run("run", "--dry-run")
    assert path.read_text() == before


class Pings(http.server.BaseHTTPRequestHandler):
    seen: list = []
    hang = threading.Event()

    def do_GET(self):
        Pings.seen.append(self.path)
        if Pings.hang.is_set():
            Pings.hang.wait(0)  # no answer: the client must give up on its own
            threading.Event().wait(30)
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def pinger():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pings)
    server.daemon_threads = True
    Pings.seen = []
    Pings.hang.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_healthcheck_pings_on_success_and_failure_never_logs_the_url(env, pinger):
    secret = "f1d2c3b4-uuid-secret"
    url = f"http://127.0.0.1:{pinger.server_address[1]}/ping/{secret}"

    # Off by default: a converged run pings nothing.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    assert Pings.seen == []

    env.write_config(extra=f'healthcheck_url = "{url}";')
    code, out, err = env.run("-v", "run")
    assert code == 0, err
    assert Pings.seen == [f"/ping/{secret}"]
    assert secret not in err

    # A failing run (GHL refuses the token) pings URL/fail.
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace('token = "ghl-test-token"', 'token = "expired-token"'))
    code, out, err = env.run("-v", "run")
    assert code == 6, err
    assert Pings.seen == [f"/ping/{secret}", f"/ping/{secret}/fail"]
    assert secret not in err
    code, out, err = env.run("check-config")
    assert secret not in out + err
    env.config_path.write_text(text)

    # A ping that gets no answer does not hold the run or change its status.
    Pings.hang.set()
    code, out, err = env.run("run")
    assert code == 0, err
    assert "event=healthcheck-failed" in err and secret not in err
