"""Test-side helper for the simulators in simulators.py (stdlib only).

    from client import start_simulators, stop
    proc, sim = start_simulators(tmp_path, location_id="loc-demo")
    try:
        sim.seed("ghl", [{"firstName": "Ann", "phone": "+15550001111"}])
        ...
    finally:
        stop(proc)

or, equivalently, ``with simulators(tmp_path) as sim: ...``.

``Sim`` only drives the ``/_sim/`` control API; the code under test talks to
``sim.base_url(system)`` itself.  Only 127.0.0.1 is ever contacted.

The record methods take an optional ``collection`` (e.g. ``sim.seed("aloware",
calls, collection="calls")``); without one they work on the system's default
collection (contacts; texting: messages).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# The three contact systems.  Kept as it was: existing test code builds one
# reconciler config section per entry (with a token per entry).
SYSTEMS = ("ghl", "aloware", "verity")
# Every simulated system, the texting system included.
ALL_SYSTEMS = SYSTEMS + ("texting",)
SIMULATOR = Path(__file__).resolve().with_name("simulators.py")
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class SimError(Exception):
    """A control call answered with an HTTP error."""

    def __init__(self, status: int, body):
        super().__init__(f"simulator answered {status}: {body}")
        self.status = status
        self.body = body


class Sim:
    """Control-API client for one running simulator process."""

    def __init__(self, port_file, timeout=30):
        # timeout: seconds a control call may take; the bench's listings of
        # a million records take minutes.
        self.timeout = timeout
        with open(port_file, encoding="utf-8") as handle:
            info = json.load(handle)
        self.ports = {name: int(info[name]) for name in ALL_SYSTEMS if name in info}
        self.pid = info.get("pid")

    def base_url(self, system: str) -> str:
        return f"http://{HOST}:{self.ports[system]}"

    def _call(self, system: str, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url(system) + "/_sim" + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                # surrogateescape: a record may hold invalid UTF-8 on purpose.
                return json.loads((response.read() or b"null").decode("utf-8", "surrogateescape"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
            raise SimError(exc.code, payload) from None

    # ----- records (collection=None: the system's default collection) -----
    @staticmethod
    def _with_collection(body: dict, collection) -> dict:
        return body if collection is None else {**body, "collection": collection}

    @staticmethod
    def _query(collection) -> str:
        return "" if collection is None else "?" + urllib.parse.urlencode(
            {"collection": collection})

    def seed(self, system: str, records: list, raw: bool = False, collection=None) -> list:
        """Store records (stored shape); returns their ids."""
        body = self._with_collection({"records": records, "raw": raw}, collection)
        return self._call(system, "POST", "/seed", body)["ids"]

    def edit(self, system: str, id, fields: dict, collection=None) -> dict:
        """Change fields as a user would (None clears); returns the record."""
        body = self._with_collection({"id": id, "fields": fields}, collection)
        return self._call(system, "POST", "/edit", body)

    def delete(self, system: str, id, collection=None) -> None:
        self._call(system, "POST", "/delete", self._with_collection({"id": id}, collection))

    def records(self, system: str, collection=None) -> list:
        return self._call(system, "GET", "/records" + self._query(collection))["records"]

    def record(self, system: str, id, collection=None) -> dict | None:
        """The stored record, or None if there is none with that id."""
        try:
            path = "/records/" + urllib.parse.quote(str(id), safe="") + self._query(collection)
            return self._call(system, "GET", path)["record"]
        except SimError as exc:
            if exc.status == 404:
                return None
            raise

    # ----- request accounting -----
    def requests(self, system: str) -> dict:
        """{"counts": {"<METHOD> <route>": n}, "total": n, "log": [...]}"""
        return self._call(system, "GET", "/requests")

    def reset_requests(self, system: str | None = None) -> None:
        for name in (system,) if system else self.ports:
            self._call(name, "POST", "/requests/reset", {})

    # ----- faults, config, clock -----
    def fault(self, system: str, **spec) -> list:
        """spec: method, route, kind (status|malformed|delay|ratelimit|slow|edit),
        status, times, retry_after, delay; for edit: fields and optionally id."""
        return self._call(system, "POST", "/fault", spec)["faults"]

    def clear_faults(self, system: str) -> None:
        self._call(system, "DELETE", "/fault")

    def config(self, system: str, **settings) -> dict:
        """settings: index_delay, rate_limit, rate_window, allow_duplicates, strict_version."""
        return self._call(system, "POST", "/config", settings)["config"]

    def advance_clock(self, system: str, seconds: float) -> str:
        """Move the system's clock; returns its new ISO 'now'."""
        return self._call(system, "POST", "/clock", {"advance": seconds})["now"]

    def now(self, system: str) -> str:
        return self._call(system, "GET", "/clock")["now"]

    # ----- GHL: OAuth tokens and the daily quota -----
    def oauth(self, **settings) -> dict:
        """GHL's tokens: expire_after (n requests), expire_now, static_token,
        refresh_tokens, clients; returns the counts (refreshed, refused,
        expired, valid_refresh_tokens, ...)."""
        return self._call("ghl", "POST" if settings else "GET", "/oauth", settings or None)

    def quota(self, used: int | None = None) -> dict:
        """GHL's daily quota {day, used, limit}; used= sets today's count."""
        if used is None:
            return self._call("ghl", "GET", "/quota")
        return self._call("ghl", "POST", "/quota", {"used": used})

    def reset(self) -> None:
        """Reset every system: records, counts, faults, config, clock."""
        for name in self.ports:
            self._call(name, "POST", "/reset", {})


def _command_line(port_file: Path, options: dict) -> list[str]:
    """start_simulators(..., ghl_token="x", verbose=True) -> --ghl-token x --verbose"""
    args = [sys.executable, str(SIMULATOR), "--port-file", str(port_file)]
    # DFRECONCILE_SIM_LEAN=1 runs every test against the lean mode, to
    # check that it answers as the default one does.
    if os.environ.get("DFRECONCILE_SIM_LEAN") and "lean" not in options:
        args.append("--lean")
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return args


def start_simulators(tmpdir, **options):
    """Launch simulators.py; returns (process, Sim) once it listens.

    options map to command-line flags: ghl_port, ghl_token, aloware_port,
    aloware_token, verity_port, verity_token, texting_port, texting_token,
    location_id, seed (a file path), verbose=True, ...
    stderr goes to <tmpdir>/simulators.log.  Raises RuntimeError if the
    simulator is not listening within 10 s.
    """
    tmpdir = Path(tmpdir)
    port_file = tmpdir / "sim-ports.json"
    with contextlib.suppress(FileNotFoundError):
        port_file.unlink()
    log_path = tmpdir / "simulators.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(_command_line(port_file, options), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if port_file.exists():
            return process, Sim(port_file)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"simulators did not start (exit={process.returncode}); "
                       f"log: {log_path.read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM the simulator process; SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


@contextlib.contextmanager
def simulators(tmpdir, **options):
    """Context manager around start_simulators/stop; yields the Sim."""
    process, sim = start_simulators(tmpdir, **options)
    try:
        yield sim
    finally:
        stop(process)


if __name__ == "__main__":  # smoke test: python3 client.py
    import tempfile
    with tempfile.TemporaryDirectory() as tmp, simulators(tmp) as sim:
        print("ports:", sim.ports, "ghl now:", sim.now("ghl"))
        print("seeded:", sim.seed("verity", [{"firstName": "Smoke"}]))
        sim.reset()
