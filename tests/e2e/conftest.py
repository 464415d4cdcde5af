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
  * a "converged" run is `dfreconcile run` exiting 0;
  * the texting system, GHL's conversation provider, call lists and opt-in
    rules are opt-in per test (Env.configure_flows); without them a test's
    configuration and request counts cover the three contact systems only.
"""
from __future__ import annotations

import json
import os
import sqlite3
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sim"))
sys.path.insert(0, str(REPO / "tests" / "prism"))

from client import start_simulators, stop  # noqa: E402
from gate import PrismGate  # noqa: E402

BINARY = Path(os.environ.get("DFRECONCILE_BIN") or REPO / "dfreconcile")
# Seconds for one invocation of the binary: a bound, not a timing check.
# The simulators limit like the real services (GHL: 100 requests per 10 s,
# Aloware's client default 5 per s), so a run of a few hundred requests
# takes about a minute by design.
RUN_TIMEOUT = 150

# Nothing may leave 127.0.0.1: no proxy for libcurl (the binary) nor for
# urllib (the simulator control client).
for _var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_var, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

# The systems dfreconcile reconciles (the simulator may serve more).
SYSTEMS = ("ghl", "aloware", "verity")
TOKENS = {"ghl": "ghl-test-token", "aloware": "aloware-test-token", "verity": "verity-test-token"}
LOCATION = "loc-demo"
# The texting system is opt-in per test: write_config(texting=True).
TEXTING = "texting"
TEXTING_TOKEN = "texting-test-token"

# The listing (changed-since) endpoint of each system, as the simulator
# counts it. A converged run calls exactly these, once per system.
LISTING = {"ghl": "POST /contacts/search", "aloware": "GET /api/v1/contacts",
           "verity": "GET /api/v1/contacts"}
# The request counts of a run that only read: one listing call per stream
# (Aloware also lists its calls).
ONLY_LISTINGS = {system: {LISTING[system]: 1} for system in SYSTEMS}
ONLY_LISTINGS["aloware"]["GET /api/v1/calls"] = 1
# The texting system's listings: its messages and its opt-out events.
TEXTING_LISTINGS = {"GET /api/v1/messages": 1, "GET /api/v1/optouts/events": 1}
# GHL's conversation provider for Call messages (configure_flows).
PROVIDER = "prov-test-1"
# The business number texts are exchanged with (the texting system's side).
OUR_NUMBER = "+15550000000"

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

# Aloware's relay mode: Aloware publishes no listing of contacts or calls, so
# a deployment that wants them polls a relay serving OUR listing contract
# (tests/sim/README.md). Most tests read Aloware's changes through it; tests
# of the documented-only default pass relay=False.
RELAY_OPTIONS = {"listing": True, "events": True}


def config_text(sim, state_path, *, fields: dict | None = None, writes: dict | None = None,
                system_options: dict | None = None, log_level: str = "info",
                texting: bool = False, extra: str = "", relay: bool = True) -> str:
    """The libconfig text of a configuration for the running simulators.

    fields: {"first_name": "always:verity"} -> fields = { ... };
    writes: {"backoff": 0} -> writes = { ... };
    system_options: {"ghl": {"max_attempts": 2}} -> extra settings per system;
    texting: also configure the texting system (last in source_order);
    extra: libconfig text appended as it is (call_lists, optouts, safety ...);
    relay: Aloware's listing and events through the relay (ours), explicitly."""
    def setting(key, value):
        if isinstance(value, bool):
            return f"{key} = {'true' if value else 'false'};"
        if isinstance(value, str):
            return f'{key} = "{value}";'
        return f"{key} = {value};"

    system_options = dict(system_options or {})
    if relay:
        system_options["aloware"] = {**RELAY_OPTIONS, **system_options.get("aloware", {})}
    systems = configured_systems(texting)
    order = ", ".join(f'"{system}"' for system in systems)
    lines = [
        "# written by tests/e2e/conftest.py",
        f'state_path = "{state_path}";',
        'default_country = "US";',
        f'log_level = "{log_level}";',
        f"source_order = [ {order} ];",
        "systems = {",
    ]
    for system in systems:
        lines.append(f"  {system} = {{")
        # GHL through the Prism gate when it runs (tests/prism/gate.py).
        url = getattr(sim, "api_urls", {}).get(system) or sim.base_url(system)
        lines.append(f'    base_url = "{url}";')
        lines.append(f'    token = "{TOKENS.get(system, TEXTING_TOKEN)}";')
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
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


def call_lists_text(*rules) -> str:
    """call_lists = {...} for Aloware from (tag, match, user_id) rules: the
    contact goes into the Power Dialer of Aloware user user_id. A target
    written "tag:N" becomes tag_id = "N" instead."""
    def target(value):
        value = str(value)
        return f'tag_id = "{value[4:]}"' if value.startswith("tag:") else f'user_id = "{value}"'
    entries = ",\n".join(f'    {{ tag = "{tag}"; match = "{match}"; {target(user)}; }}'
                          for tag, match, user in rules)
    return f'call_lists = {{\n  system = "aloware";\n  rules = (\n{entries}\n  );\n}};\n'


def optouts_text(opt_in: str) -> str:
    """optouts = {...} with opt_in "same-system", "never" or "sys1,sys2"."""
    return f'optouts = {{ opt_in = "{opt_in}"; }};\n'


def configured_systems(texting: bool = False) -> tuple:
    """The systems a configuration names, in source order."""
    return SYSTEMS + (TEXTING,) if texting else SYSTEMS


# ----- the environment of one test -----------------------------------------

class Env:
    """Simulators + configuration + state file of one test."""

    def __init__(self, tmp_path: Path, sim):
        self.dir = tmp_path
        self.sim = sim
        self.config_path = tmp_path / "dfreconcile.conf"
        self.state_path = tmp_path / "state.db"
        self.lock_path = tmp_path / "state.db.lock"
        self.systems = SYSTEMS
        self.write_config()

    # -- configuration --
    def write_config(self, **options) -> Path:
        """(Re)writes the configuration; options as for config_text.

        The systems it names (texting=True adds the texting system) are the
        ones reset_requests, all_counts and all_records cover from then on."""
        self.systems = configured_systems(options.get("texting", False))
        self.relay = options.get("relay", True)
        self.sim.config("aloware", relay=self.relay)
        self.config_path.write_text(config_text(self.sim, self.state_path, **options))
        return self.config_path

    def configure_flows(self, *, lists=(), opt_in: str | None = None,
                        system_options: dict | None = None, **options) -> Path:
        """A configuration with every flow on: the texting system, GHL's
        conversation provider (calls become Call messages too), call-list
        rules (tag, match, list_id) for Aloware and optouts.opt_in.
        system_options are merged over those defaults; other options as
        for config_text."""
        merged = {"ghl": {"conversation_provider_id": PROVIDER}}
        for system, settings in (system_options or {}).items():
            merged[system] = {**merged.get(system, {}), **settings}
        extra = (call_lists_text(*lists) if lists else "") + (optouts_text(opt_in) if opt_in else "")
        return self.write_config(texting=True, system_options=merged,
                                 extra=extra + options.pop("extra", ""), **options)

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

    def kill_run_when(self, predicate, what: str, timeout: float = 20.0, *args) -> None:
        """Starts `run ARGS`, waits until predicate() holds, then kills the
        binary with SIGKILL (a crash at that point); fails if the run ended
        first."""
        proc = self.popen("run", *args)
        try:
            wait_until(lambda: predicate() or proc.poll() is not None, timeout=timeout, what=what)
            assert proc.poll() is None, "the run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL

    def run_until_converged(self, most: int = 6) -> list:
        """Runs until one exits 0 (at most `most` runs); the exit codes."""
        codes = []
        for _ in range(most):
            code, _, err = self.run("run")
            codes.append(code)
            assert code in (0, 1), err
            if code == 0:
                return codes
        raise AssertionError(f"no converged run in {most}: {codes}")

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
        """Zeroes the request counts and logs of the configured systems."""
        for system in self.systems:
            self.sim.reset_requests(system)

    def counts(self, system: str) -> dict:
        return self.sim.requests(system)["counts"]

    def all_counts(self) -> dict:
        """{system: {"<METHOD> <route>": n}} since the last reset."""
        return {system: self.counts(system) for system in self.systems}

    def all_records(self) -> dict:
        return {s: self.sim.records(s) for s in self.systems}

    def only_listings(self) -> dict:
        """The request counts of a run that only read (ONLY_LISTINGS, plus
        the texting system's two listings when it is configured)."""
        return {s: dict(ONLY_LISTINGS.get(s) or TEXTING_LISTINGS) for s in self.systems}

    def write_requests(self) -> dict:
        """{system: {route: n}} of the requests since the last reset that
        are not reads (every GET and GHL's search are reads); {} if none."""
        out = {}
        for system in self.systems:
            writes = {route: n for route, n in self.counts(system).items()
                      if not route.startswith("GET ") and route != LISTING["ghl"]}
            if writes:
                out[system] = writes
        return out

    def ids_of(self, phone: str) -> dict:
        """{system: id} of the contacts holding phone (last 10 digits
        compared, so GHL's typed form matches too), in the three systems."""
        def digits(value):
            return "".join(ch for ch in value or "" if ch.isdigit())[-10:]
        return {system: r["id"] for system in SYSTEMS for r in self.sim.records(system)
                if digits(phone) and digits(view(system, r)["phone"]) == digits(phone)}

    def converge_person(self, fields: dict) -> dict:
        """Seeds a contact in GHL (canonical fields), converges, and returns
        its {system: id} in the three systems (it must be in all three)."""
        self.seed("ghl", **fields)
        self.converge()
        ids = self.ids_of(fields["phone"])
        assert set(ids) == set(SYSTEMS), ids
        return ids

    # -- calls, texts, lists, notes and conversations in the simulators --
    def seed_call(self, contact_id, **fields) -> int:
        """Seeds one Aloware call of contact_id; returns the call id."""
        (cid,) = self.sim.seed("aloware", [dict(fields, contact_id=contact_id)], collection="calls")
        return cid

    def seed_text(self, direction: str, phone: str, body: str, **fields) -> str:
        """Seeds one texting message between `phone` and our number; an
        inbound one comes from `phone`. Returns the message id."""
        ends = {"from": phone, "to": OUR_NUMBER} if direction == "inbound" else \
            {"from": OUR_NUMBER, "to": phone}
        (mid,) = self.sim.seed(TEXTING, [dict(fields, direction=direction, body=body, **ends)],
                               collection="messages")
        return mid

    def seed_lists(self, *list_ids) -> None:
        """Empty Aloware Power Dialer lists with these ids, each the list of
        the Aloware user with the same id (what a rule's user_id names)."""
        self.sim.seed("aloware", [{"id": int(i), "name": f"list {i}", "user_id": int(i),
                                   "contact_ids": []} for i in list_ids], collection="lists")

    def lists(self) -> dict:
        """{list id: [contact ids]} of the Aloware lists."""
        return {r["id"]: r["contact_ids"] for r in self.sim.records("aloware", collection="lists")}

    def notes(self) -> list:
        return self.sim.records("ghl", collection="notes")

    def conversations(self) -> list:
        return self.sim.records("ghl", collection="conversations")

    def messages(self) -> list:
        """The GHL conversation messages."""
        return self.sim.records("ghl", collection="messages")

    def optout_events(self) -> list:
        """The texting system's opt-out events, without ids and times."""
        return [{k: v for k, v in e.items() if k not in ("id", "createdAt", "updatedAt")}
                for e in self.sim.records(TEXTING, collection="events")]

    # -- the state of the flows --
    def deliveries(self) -> list[tuple]:
        """(kind, source, source_id, target, status, attempts, remote_id,
        person, run_id, done_run) of every delivery, in order."""
        return self.query(
            "SELECT e.kind, e.source, e.source_id, d.target, d.status, d.attempts, d.remote_id, "
            "e.person_id, d.run_id, d.done_run FROM delivery d JOIN event e ON e.id = d.event_id "
            "ORDER BY d.id")

    def notices(self, run_id: int | None = None) -> list[tuple]:
        """(run_id, person, system, remote_id, kind, message), in order."""
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        return self.query("SELECT run_id, person_id, system, remote_id, kind, message FROM notice "
                          f"{where} ORDER BY id", params)

    def optout_log(self) -> list[tuple]:
        """(run_id, phone, channel, person, action, system, reason), in order."""
        return self.query("SELECT run_id, phone, channel, person_id, action, system, reason "
                          "FROM optout_log ORDER BY id")

    def optouts(self) -> list[tuple]:
        """(phone, channel, status, source, reason, run_id) of the registry."""
        return self.query("SELECT phone, channel, status, source, reason, run_id FROM optout "
                          "ORDER BY phone, channel")

    def list_members(self) -> list[tuple]:
        """(person, list_id, status, run_id) of every list membership."""
        return self.query("SELECT person_id, list_id, status, run_id FROM list_member "
                          "ORDER BY person_id, list_id")

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


# The official-spec gate: Prism between the binary and the GHL simulator,
# one for the session (tests/prism/gate.py). A test whose GHL traffic Prism
# finds in violation of GHL's spec fails (pytest_runtest_makereport).
_GATE: PrismGate | None = None


@pytest.fixture(scope="session")
def prism_gate(tmp_path_factory):
    global _GATE
    gate = PrismGate(tmp_path_factory.mktemp("prism"))
    gate.start()
    _GATE = gate
    yield gate
    gate.stop()


@pytest.fixture
def sim(request, tmp_path, prism_gate):
    """A fresh simulator process for this test; GHL behind Prism when the
    gate runs (sim.api_urls holds the URL the binary is to use)."""
    process, handle = start_simulators(tmp_path, location_id=LOCATION)
    if prism_gate.covers(request.node.name):
        handle.api_urls = {"ghl": prism_gate.attach(handle.base_url("ghl"))}
    try:
        yield handle
    finally:
        stop(process)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or _GATE is None or not _GATE.covers(item.name) or "sim" not in item.fixturenames:
        return
    found = _GATE.take()
    if found and report.passed:
        report.outcome = "failed"
        report.longrepr = ("GHL traffic violates GHL's official OpenAPI spec (Prism; exceptions "
                           "belong in tests/prism/exceptions.json):\n  " + "\n  ".join(found))


def pytest_terminal_summary(terminalreporter):
    if _GATE is None:
        return
    if _GATE.ran:
        terminalreporter.write_line("GHL official-spec validation (Prism): ON")
    else:
        terminalreporter.write_line(
            f"GHL official-spec validation (Prism): SKIPPED: {_GATE.reason}", yellow=True, bold=True)


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
