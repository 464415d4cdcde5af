"""Shared fixtures and helpers for the end-to-end tests of dfreconcile.

Every test gets its own simulator process (tests/sim/simulators.py) listening
on 127.0.0.1, its own configuration file and its own state file, all inside
pytest's tmp_path. The binary under test is $DFRECONCILE_BIN, or
<repo>/dfreconcile (build it with `make`).

Vocabulary used by the tests:
  * canonical field names (first_name, phone, investor_tier, ...) are the
    names dfreconcile uses in its state file; `seed` and `view` translate
    them to and from each system's stored shape, so tests read the same for
    all three systems;
  * a "converged" run is `dfreconcile run` exiting 0.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sim"))

from client import start_simulators, stop  # noqa: E402

BINARY = Path(os.environ.get("DFRECONCILE_BIN") or REPO / "dfreconcile")
RUN_TIMEOUT = 60  # seconds for one invocation of the binary

# Nothing may leave 127.0.0.1: no proxy for libcurl (the binary) nor for
# urllib (the simulator control client).
for _var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_var, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

# The systems dfreconcile reconciles (the simulator may serve more).
SYSTEMS = ("ghl", "aloware", "verity")
TOKENS = {"ghl": "ghl-test-token", "aloware": "aloware-test-token", "verity": "verity-test-token"}
LOCATION = "loc-demo"

# The listing (changed-since) endpoint of each system, as the simulator
# counts it. A converged run calls exactly these, once per system.
LISTING = {"ghl": "POST /contacts/search", "aloware": "GET /api/v1/contacts",
           "verity": "GET /api/v1/contacts"}
# The request counts of a run that only read: one listing call per stream
# (Aloware also lists its calls).
ONLY_LISTINGS = {system: {LISTING[system]: 1} for system in SYSTEMS}
ONLY_LISTINGS["aloware"]["GET /api/v1/calls"] = 1

# Canonical field -> each system's stored key. The custom field investor_tier
# is configured with keys cf_tier (GHL custom field id), csf1 (Aloware) and
# investorTier (a Verity customFields key); see `config_text`.
FIELD_KEYS = {
    "ghl": {"first_name": "firstName", "last_name": "lastName", "phone": "phone",
            "email": "email", "city": "city"},
    "aloware": {"first_name": "first_name", "last_name": "last_name", "phone": "phone_number",
                "email": "email", "city": "city"},
    "verity": {"first_name": "firstName", "last_name": "lastName", "phone": "phoneE164",
               "email": "email", "city": "city"},
}
CUSTOM_KEYS = {"ghl": "cf_tier", "aloware": "csf1", "verity": "investorTier"}
VIEW_FIELDS = ("first_name", "last_name", "phone", "email", "city", "investor_tier")


# ----- translating between canonical names and the systems' shapes ---------

def stored(system: str, fields: dict) -> dict:
    """A record in `system`'s stored shape from canonical field names.

    Keys that are not canonical are passed through unchanged (e.g. "id")."""
    out = {}
    for name, value in fields.items():
        if name == "investor_tier":
            if system == "ghl":
                out["customFields"] = [{"id": CUSTOM_KEYS["ghl"], "value": value}]
            elif system == "aloware":
                out["csf1"] = value
            else:
                out["customFields"] = {CUSTOM_KEYS["verity"]: value}
        else:
            out[FIELD_KEYS[system].get(name, name)] = value
    return out


def custom_value(system: str, record: dict):
    if system == "aloware":
        return record.get("csf1")
    custom = record.get("customFields")
    if system == "ghl":
        values = [e.get("value") for e in custom or [] if e.get("id") == CUSTOM_KEYS["ghl"]]
        return values[0] if values else None
    return (custom or {}).get(CUSTOM_KEYS["verity"])


def view(system: str, record: dict) -> dict:
    """The mapped fields of a stored record, under canonical names."""
    out = {name: record.get(key) for name, key in FIELD_KEYS[system].items()}
    out["investor_tier"] = custom_value(system, record)
    return {name: out[name] for name in VIEW_FIELDS}


# ----- the configuration ---------------------------------------------------

def config_text(sim, state_path, *, fields: dict | None = None, writes: dict | None = None,
                system_options: dict | None = None, log_level: str = "info") -> str:
    """The libconfig text of a configuration for the running simulators.

    fields: {"first_name": "always:verity"} -> fields = { ... };
    writes: {"backoff": 0} -> writes = { ... };
    system_options: {"ghl": {"max_attempts": 2}} -> extra settings per system."""
    def setting(key, value):
        if isinstance(value, bool):
            return f"{key} = {'true' if value else 'false'};"
        if isinstance(value, str):
            return f'{key} = "{value}";'
        return f"{key} = {value};"

    system_options = system_options or {}
    lines = [
        "# written by tests/e2e/conftest.py",
        f'state_path = "{state_path}";',
        'default_country = "US";',
        f'log_level = "{log_level}";',
        'source_order = [ "ghl", "aloware", "verity" ];',
        "systems = {",
    ]
    for system in SYSTEMS:
        lines.append(f"  {system} = {{")
        lines.append(f'    base_url = "{sim.base_url(system)}";')
        lines.append(f'    token = "{TOKENS[system]}";')
        if system == "ghl":
            lines.append(f'    location_id = "{LOCATION}";')
        for key, value in system_options.get(system, {}).items():
            lines.append("    " + setting(key, value))
        lines.append("  };")
    lines.append("};")
    if fields:
        lines.append("fields = {")
        lines += ["  " + setting(k, v) for k, v in fields.items()]
        lines.append("};")
    if writes:
        lines.append("writes = {")
        lines += ["  " + setting(k, v) for k, v in writes.items()]
        lines.append("};")
    lines += [
        "custom_fields = (",
        '  { name = "investor_tier"; rule = "two-way";',
        f'    ghl = "{CUSTOM_KEYS["ghl"]}"; aloware = "{CUSTOM_KEYS["aloware"]}"; '
        f'verity = "{CUSTOM_KEYS["verity"]}"; }}',
        ");",
    ]
    return "\n".join(lines) + "\n"


# ----- the environment of one test -----------------------------------------

class Env:
    """Simulators + configuration + state file of one test."""

    def __init__(self, tmp_path: Path, sim):
        self.dir = tmp_path
        self.sim = sim
        self.config_path = tmp_path / "dfreconcile.conf"
        self.state_path = tmp_path / "state.db"
        self.lock_path = tmp_path / "state.db.lock"
        self.write_config()

    # -- configuration --
    def write_config(self, **options) -> Path:
        """(Re)writes the configuration; options as for config_text."""
        self.config_path.write_text(config_text(self.sim, self.state_path, **options))
        return self.config_path

    # -- the binary --
    def command(self, *args) -> list[str]:
        return [str(BINARY), "-c", str(self.config_path), *args]

    def run(self, *args) -> tuple[int, str, str]:
        """Runs `dfreconcile -c CONF args...`; returns (code, stdout, stderr)."""
        proc = subprocess.run(self.command(*args), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout, proc.stderr

    def popen(self, *args) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)

    def converge(self) -> str:
        """One run that must exit 0; returns its stderr (the event log)."""
        code, out, err = self.run("run")
        assert code == 0, f"run exited {code}\nstdout:\n{out}\nstderr:\n{err}"
        return err

    def report_json(self, *args) -> dict:
        code, out, err = self.run("report", "--format", "json", *args)
        assert code == 0, err
        return json.loads(out)

    # -- the state file --
    def query(self, sql: str, params=()) -> list[tuple]:
        """Rows of one statement against the state file (opened and closed)."""
        assert self.state_path.exists(), "no state file yet"
        db = sqlite3.connect(self.state_path)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def dump_state(self) -> dict:
        """Every row of every table, sorted, by table name."""
        tables = [t for (t,) in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(self.query(f'SELECT * FROM "{t}"'), key=repr) for t in tables}

    def last_run_id(self) -> int:
        return self.query("SELECT max(id) FROM run")[0][0]

    def links(self) -> dict:
        """{(system, remote_id): person_id} from the link table."""
        return {(s, r): p for s, r, p in self.query("SELECT system, remote_id, person_id FROM link")}

    def outbox(self, run_id: int) -> list[tuple]:
        """(system, op, status, field, old, new) of the writes planned in run_id."""
        return self.query(
            "SELECT o.system, o.op, o.status, f.field, f.old_value, f.new_value "
            "FROM outbox o JOIN outbox_field f ON f.outbox_id = o.id "
            "WHERE o.run_id = ? ORDER BY o.system, f.field", (run_id,))

    # -- the simulators --
    def seed(self, system: str, **fields) -> str:
        """Seeds one contact given in canonical names; returns its id."""
        (rid,) = self.sim.seed(system, [stored(system, fields)])
        return rid

    def edit(self, system: str, rid, **fields) -> dict:
        return self.sim.edit(system, rid, stored(system, fields))

    def views(self, system: str) -> list[dict]:
        """The mapped fields of every record of a system, in id order."""
        return [view(system, r) for r in self.sim.records(system)]

    def only(self, system: str) -> dict:
        """The single record of a system (fails if there is not exactly one)."""
        records = self.sim.records(system)
        assert len(records) == 1, f"{system} holds {len(records)} records: {records}"
        return records[0]

    def reset_requests(self) -> None:
        """Zeroes the request counts and logs of the three systems."""
        for system in SYSTEMS:
            self.sim.reset_requests(system)

    def counts(self, system: str) -> dict:
        return self.sim.requests(system)["counts"]

    def all_counts(self) -> dict:
        """{system: {"<METHOD> <route>": n}} since the last reset."""
        return {system: self.counts(system) for system in SYSTEMS}

    def all_records(self) -> dict:
        return {s: self.sim.records(s) for s in SYSTEMS}

    def pending_faults(self, system: str) -> list:
        url = self.sim.base_url(system) + "/_sim/fault"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())["faults"]


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Polls predicate until true (bounded); a synchronisation aid only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def binary() -> Path:
    if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
        pytest.fail(f"dfreconcile binary not found at {BINARY}: run `make` or set DFRECONCILE_BIN")
    return BINARY


@pytest.fixture
def sim(tmp_path):
    """A fresh simulator process for this test."""
    process, handle = start_simulators(tmp_path, location_id=LOCATION)
    try:
        yield handle
    finally:
        stop(process)


@pytest.fixture
def env(tmp_path, sim, binary) -> Env:
    return Env(tmp_path, sim)


@pytest.fixture
def run(env):
    """run(*args) -> (exit code, stdout, stderr) of dfreconcile with this test's config."""
    return env.run


@pytest.fixture
def query(env):
    """query(sql, params=()) -> rows of the state file."""
    return env.query


# Sample person used across tests, in canonical form as dfreconcile agrees it.
ANN = {"first_name": "Ann", "last_name": "Lee", "phone": "+15552010001",
       "email": "ann.lee@example.com", "city": "Austin", "investor_tier": "gold"}
# The same person as a user typed it into GHL (national phone, mixed case).
ANN_AS_TYPED = dict(ANN, phone="(555) 201-0001", email="Ann.Lee@Example.COM")
