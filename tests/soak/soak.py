#!/usr/bin/env python3
"""The soak test of dfreconcile (issue 6, "Tests"): `make soak`.

Users keep editing every system at about 150 edits a minute while cron-like
runs of the real binary follow one another; half of those runs are killed
with SIGKILL at a random moment. When the edits stop, ordinary runs go on
until the binary converges, and then every field of every record in every
system is compared with what the merge rules say of the last user edits.

1. start the simulators (GHL, Aloware, Verity, texting) on 127.0.0.1 and
   seed SOAK_PEOPLE people (default 300): some in one system, some in two
   or three under different ids and differently written phones;
2. `run --full`, then ordinary runs until one exits 0 and sends nothing:
   the baseline, in which every person is in all three contact systems
   with the same values (checked);
3. SOAK_RUNS runs (default 10) one after another, short gaps, while an
   editor thread applies user edits through the simulators' control API
   (POST /_sim/edit, /_sim/seed): names, email, city, the custom field and
   tags in their owner system, opt-outs (GHL dnd, Verity optOuts, Aloware
   DNC, a texting STOP), Aloware calls, inbound texts and new contacts
   (at most 50, in any system). SOAK_KILLS of the
   runs (default half, chosen by the seeded random generator) get SIGKILL
   at a random moment of the run;
4. the edits stop; ordinary runs until one exits 0 and writes nothing (at
   most SOAK_CONVERGE, default 8);
5. the checks, one per group, each printed as "ok" or "FAIL", then the
   figures and a closing line "N passed, N failed"; exit 1 on any failure.

The oracle. Each (person, field) has exactly one owner system for the whole
soak (chosen at random among the systems that carry the field), and only
the owner ever edits it. So under the configured rules (the defaults: names,
email and the custom field two-way, city prefer:ghl-unless-blank, tags
union) there is never a conflict: the merge takes "changed in one system",
and the right final value of the field, in every system that carries it, is
the owner's last edit (tags: the owner's last set). Edited values are never
blank. Opt-outs are sticky (I4) and nobody opts back in: a (phone, channel)
that any system opted out must end opted out in GHL, Verity and the texting
register (Aloware's DNC cannot be written through its API: not checked).
Each Aloware call must end as exactly one GHL note and one Call message,
each text as exactly one GHL message, each new contact as exactly one
record in each contact system with the values it was created with.

Settings (environment): SOAK_SEED (printed; the same seed gives the same
population, owners, edits and kill choices; timing still varies),
SOAK_PEOPLE, SOAK_RUNS, SOAK_KILLS, SOAK_RATE (edits a minute, 150),
SOAK_GAP (seconds between runs, 2), SOAK_LATENCY (seconds added to every
API answer, 0.1), SOAK_CONVERGE, SOAK_DIR (work directory, default
build/soak: config, state file and runs.log, the binary's stderr, kept for
a look with sqlite3), DFRECONCILE_BIN (default ./dfreconcile). With the
defaults it takes about a minute and a half (80 to 105 s measured: setup
2-3 s, 10 runs of up to 15 s each with 2 s gaps, two converging runs).

Conditions, and why:
- latency: every API answer of the soak phase is 0.1 s late (the
  simulators' `delay` fault, queued 10^9 times), as real APIs are; without
  it a run is over in 0.2 s and no user ever edits a record while a run
  writes it. The setup's bulk sync runs without latency and without the
  binary's rate limits; the soak's runs keep the binary's default limits.
- scaled time: runs come seconds apart instead of cron's minute, so the
  configuration sets writes.backoff = 1 (a failed write is retried by the
  next run, as with cron and the default 60 s).
- GHL allows duplicate contacts (as many real locations do), so a create
  sent twice shows as a duplicate instead of being refused. Aloware and
  Verity refuse a second contact with the same phone by contract, so
  duplicates there cannot happen; GHL notes and messages are counted too.
- half the edits hit a "hot" tenth of the people: users work on a few
  contacts at a time.

Only the standard library, plus the shared helpers of tests/e2e/conftest.py
(which imports pytest: run it with the test suite's Python, as `make soak`
does).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "sim"))

from client import start_simulators, stop  # noqa: E402
from simulators import to_ms  # noqa: E402
from conftest import (LOCATION, OUR_NUMBER, PROVIDER,  # noqa: E402
                      config_text, stored, view)

BIN = Path(os.environ.get("DFRECONCILE_BIN") or ROOT / "dfreconcile")
RUN_TIMEOUT = 120            # seconds one run may take before it counts as hung
CONTACTS = ("ghl", "aloware", "verity")
MAX_NEW = 50                 # contacts users create during the soak, at most
CHANNELS = ("sms", "call", "email")
GHL_DND = {"sms": "SMS", "call": "Call", "email": "Email"}
# The fields the editor changes, and the systems that carry each.
EDIT_FIELDS = {
    "first_name": CONTACTS, "last_name": CONTACTS, "email": CONTACTS, "city": CONTACTS,
    "investor_tier": CONTACTS, "tags": ("ghl", "verity"),
}
FIRST = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]
LAST = ["Lee", "Ray", "Ng", "Diaz", "Moss", "Park", "Quinn", "Shaw", "Tran", "Voss"]


def env_int(name, default):
    return int(os.environ.get(name) or default)


def log(*args):
    print(*args, flush=True)


# ----- the population -------------------------------------------------------

def phone_of(i):
    return f"+1555{3000000 + i:07d}"


def digits10(value):
    return "".join(ch for ch in str(value or "") if ch.isdigit())[-10:]


def base_values(i):
    return {"first_name": FIRST[i % len(FIRST)], "last_name": LAST[i // len(FIRST) % len(LAST)],
            "phone": phone_of(i), "email": f"p{i}@soak.example.com", "city": "Austin",
            "investor_tier": "silver"}


def contact_record(system, i):
    """Person i as a user typed it into `system`."""
    record = stored(system, base_values(i))
    if system == "ghl":   # national format
        p = phone_of(i)[2:]
        record["phone"] = f"({p[:3]}) {p[3:6]}-{p[6:]}"
    if system != "aloware":
        record["tags"] = ["soak"]
    return record


def seed_population(sim, rng, people):
    """Each person in one, two or three systems; returns {i: systems}."""
    shapes = [("ghl",), ("aloware",), ("verity",), ("ghl", "aloware"), ("ghl", "verity"),
              ("aloware", "verity"), CONTACTS]
    weights = [25, 15, 15, 15, 10, 5, 15]
    where = {i: rng.choices(shapes, weights)[0] for i in range(people)}
    batches = defaultdict(list)
    for i, systems in where.items():
        for system in systems:
            batches[system].append(contact_record(system, i))
    for system, records in batches.items():
        sim.seed(system, records)
    return where


# ----- reading the systems --------------------------------------------------

def tags_of(record):
    return sorted({str(t).lower() for t in record.get("tags") or []})


def field_of(system, record, field):
    if field == "tags":
        return tags_of(record)
    value = view(system, record)[field]
    return value.lower() if field == "email" and isinstance(value, str) else value


def ghl_optouts(record):
    settings = record.get("dndSettings") or {}
    out = set()
    for channel, key in GHL_DND.items():
        status = (settings.get(key) or {}).get("status")
        if record.get("dnd") is True or (status is not None and status != "inactive"):
            out.add(channel)
    return out


def texting_optouts(events):
    """{phone: {channels}} from the texting register's events (last wins)."""
    last = {}
    for e in sorted(events, key=lambda e: (e.get("createdAt") or "", e.get("id") or "")):
        if e.get("type") in ("optout", "optin"):
            last[(e.get("phone"), e.get("channel") or "sms")] = e["type"]
    out = defaultdict(set)
    for (phone, channel), kind in last.items():
        if kind == "optout":
            out[phone].add(channel)
    return out


def contacts_by_person(sim, people):
    """{system: {i: [records]}} by phone (last 10 digits), and strays."""
    index = {digits10(phone_of(i)): i for i in range(people)}
    out, strays = {}, Counter()
    for system in CONTACTS:
        per = defaultdict(list)
        for record in sim.records(system):
            i = index.get(digits10(view(system, record)["phone"]))
            if i is None:
                strays[system] += 1
            else:
                per[i].append(record)
        out[system] = per
    return out, strays


def write_count(sim):
    """Requests that are not reads (GET and GHL's search are reads)."""
    total = 0
    for system in CONTACTS + ("texting",):
        for route, n in sim.requests(system)["counts"].items():
            if not route.startswith("GET ") and route != "POST /contacts/search":
                total += n
    return total


def reset_counts(sim):
    for system in CONTACTS + ("texting",):
        sim.reset_requests(system)


# ----- the binary -------------------------------------------------------------

class Runner:
    def __init__(self, conf, workdir):
        self.conf, self.workdir = conf, workdir
        self.log = open(workdir / "runs.log", "a", encoding="utf-8")

    def start(self, *args):
        self.log.write(f"\n=== dfreconcile {' '.join(args)} at {time.strftime('%H:%M:%S')}\n")
        self.log.flush()
        return subprocess.Popen([str(BIN), "-c", str(self.conf), *args], cwd=self.workdir,
                                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def run(self, *args):
        """(exit code, seconds) of one run to its end."""
        t0 = time.monotonic()
        proc = self.start(*args)
        try:
            code = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = "hung"
        self.log.write(f"=== exit {code}\n")
        return code, time.monotonic() - t0


def converge(runner, sim, bound, *args):
    """Runs until one exits 0 and sends no write (at most `bound` runs).
    Returns (converged, [(exit code, writes, seconds)])."""
    history = []
    for n in range(bound):
        reset_counts(sim)
        code, seconds = runner.run("run", *(args if n == 0 else ()))
        writes = write_count(sim)
        history.append((code, writes, round(seconds, 2)))
        if code == 0 and writes == 0:
            return True, history
    return False, history


# ----- the users ----------------------------------------------------------------

class Editor(threading.Thread):
    """Applies user edits at `rate` a minute until stopped (bounded)."""

    def __init__(self, sim, rng, people, ids, owners, rate, max_edits):
        super().__init__(daemon=True)
        self.sim, self.rng, self.people, self.ids, self.owners = sim, rng, people, ids, owners
        self.interval, self.max_edits = 60.0 / rate, max_edits
        self.stop_event = threading.Event()
        self.hot = rng.sample(range(people), max(1, people // 10))
        self.n = 0
        self.last = {}                      # (i, field) -> expected final value
        self.optouts = defaultdict(set)     # phone -> channels some user opted out
        self.calls, self.texts = [], []     # ids of Aloware calls and texting messages
        self.created = {}                   # person i -> the system a user created it in
        self.kinds = Counter()
        self.errors = []

    def run(self):
        t0 = time.monotonic()
        while not self.stop_event.is_set() and self.n < self.max_edits:
            try:
                self.one()
            except Exception as exc:        # a simulator error is a harness failure
                self.errors.append(repr(exc))
                if len(self.errors) > 20:
                    return
            self.n += 1
            self.stop_event.wait(max(0.0, t0 + self.n * self.interval - time.monotonic()))

    def person(self):
        # Users work on a few contacts at a time: half the edits hit a hot tenth.
        return self.rng.choice(self.hot) if self.rng.random() < 0.5 else self.rng.randrange(self.people)

    def one(self):
        i, roll, n = self.person(), self.rng.random(), self.n
        if roll < 0.06:
            return self.optout(i)
        if roll < 0.09:
            (cid,) = self.sim.seed("aloware", [{"contact_id": self.ids["aloware"][i], "direction": "inbound",
                                                "status": "completed", "duration": 30 + n}],
                                   collection="calls")
            self.calls.append(cid)
            self.kinds["call"] += 1
            return
        if roll < 0.15 and len(self.created) < MAX_NEW:
            i, system = self.people + len(self.created), self.rng.choice(CONTACTS)
            self.created[i] = system
            self.sim.seed(system, [contact_record(system, i)])
            self.kinds["new contact"] += 1
            return
        if roll < 0.18:
            (mid,) = self.sim.seed("texting", [{"direction": "inbound", "from": phone_of(i), "to": OUR_NUMBER,
                                                "body": f"hello {n}"}], collection="messages")
            self.texts.append(mid)
            self.kinds["text"] += 1
            return
        field = self.rng.choice(sorted(EDIT_FIELDS))
        system = self.owners[(i, field)]
        value = {"first_name": f"First{n}", "last_name": f"Last{n}", "email": f"p{i}.e{n}@soak.example.com",
                 "city": f"City{n}", "investor_tier": f"tier{n}", "tags": ["soak", f"e{n}"]}[field]
        fields = {"tags": value} if field == "tags" else stored(system, {field: value})
        # Record the expectation first: an edit that reached the system but
        # whose answer was lost still counts as made.
        self.last[(i, field)] = value
        self.sim.edit(system, self.ids[system][i], fields)
        self.kinds[field] += 1

    def optout(self, i):
        system = self.rng.choice(("ghl", "verity", "aloware", "texting"))
        phone = phone_of(i)
        if system == "ghl":
            self.optouts[phone] |= set(CHANNELS)
            self.sim.edit("ghl", self.ids["ghl"][i], {"dnd": True})
        elif system == "aloware":
            self.optouts[phone] |= {"call", "sms"}
            self.sim.edit("aloware", self.ids["aloware"][i], {"is_dnc": True})
        elif system == "verity":
            channel = self.rng.choice(CHANNELS)
            self.optouts[phone].add(channel)
            # As a user's form would: the other channels as they are now.
            current = dict(self.sim.record("verity", self.ids["verity"][i])["optOuts"])
            current[channel] = True
            self.sim.edit("verity", self.ids["verity"][i], {"optOuts": current})
        else:
            self.optouts[phone].add("sms")
            (mid,) = self.sim.seed("texting", [{"direction": "inbound", "from": phone, "to": OUR_NUMBER,
                                                "body": "STOP"}], collection="messages")
            self.texts.append(mid)
        self.kinds[f"optout:{system}"] += 1


# ----- the soak ----------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            log(f"ok    {what}")
        else:
            self.failed += 1
            log(f"FAIL  {what}" + (f"\n      {detail}" if detail else ""))


def sample(items, n=5):
    items = list(items)
    return "; ".join(str(x) for x in items[:n]) + (f" ... ({len(items)} in all)" if len(items) > n else "")


def main():
    seed = env_int("SOAK_SEED", int.from_bytes(os.urandom(4), "big"))
    people, runs = env_int("SOAK_PEOPLE", 300), env_int("SOAK_RUNS", 10)
    kills, rate = env_int("SOAK_KILLS", runs // 2), env_int("SOAK_RATE", 150)
    gap, bound = float(os.environ.get("SOAK_GAP") or 2), env_int("SOAK_CONVERGE", 8)
    latency = float(os.environ.get("SOAK_LATENCY") or 0.1)
    workdir = Path(os.environ.get("SOAK_DIR") or ROOT / "build" / "soak")
    rng = random.Random(seed)
    log(f"soak: SOAK_SEED={seed} people={people} runs={runs} kills={kills} rate={rate}/min "
        f"gap={gap}s latency={latency}s binary={BIN}")
    if not os.access(BIN, os.X_OK):
        log(f"soak: no binary at {BIN} (run make, or set DFRECONCILE_BIN)")
        return 2
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(var, None)
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    proc, sim = start_simulators(workdir, location_id=LOCATION)
    try:
        return soak(sim, rng, seed, workdir, people, runs, kills, rate, gap, latency, bound, started)
    finally:
        stop(proc)


def soak(sim, rng, seed, workdir, people, runs, kills, rate, gap, latency, bound, started):
    checks = Checks()
    sim.config("ghl", allow_duplicates=True)
    # Aloware's calls and edits are read through our listing contract: the
    # relay mode config_text writes by default, served by the simulator.
    sim.config("aloware", relay=True)
    state = workdir / "state.db"
    conf = workdir / "soak.conf"

    def configure(setup):
        # The setup's bulk sync runs without the binary's rate limits; the
        # soak runs with them, as in production.
        options = {s: {"rate_limit": 0} if setup else {} for s in CONTACTS + ("texting",)}
        options["ghl"]["conversation_provider_id"] = PROVIDER
        conf.write_text(config_text(sim, state, texting=True, writes={"backoff": 1},
                                    system_options=options))
    configure(setup=True)
    runner = Runner(conf, workdir)

    # 1-2. population and baseline
    where = seed_population(sim, rng, people)
    log(f"seeded {people} people: " + ", ".join(
        f"{'+'.join(k)} {v}" for k, v in sorted(Counter(where.values()).items(), key=str)))
    ok, history = converge(runner, sim, bound, "--full", "--max-change-share", "1")
    log(f"baseline runs (exit, writes, s): {history}")
    checks.check(ok, "baseline: run --full, then ordinary runs, converge (exit 0, then no write)",
                 f"runs: {history}")
    per, strays = contacts_by_person(sim, people)
    ids, baseline, bad = {s: {} for s in CONTACTS}, {}, []
    for i in range(people):
        for system in CONTACTS:
            records = per[system].get(i, [])
            if len(records) != 1:
                bad.append(f"person {i}: {len(records)} records in {system}")
                continue
            ids[system][i] = records[0]["id"]
        if any(i not in ids[s] for s in CONTACTS):
            continue
        for field, systems in EDIT_FIELDS.items():
            values = {s: field_of(s, per[s][i][0], field) for s in systems}
            if len(set(map(repr, values.values()))) != 1:
                bad.append(f"person {i} {field}: {values}")
            baseline[(i, field)] = values[systems[0]]
    checks.check(not bad and not strays,
                 "baseline: every person once in each contact system, all fields agree",
                 sample(bad) + (f" strays {dict(strays)}" if strays else ""))
    if bad:
        log("soak: no usable baseline, stopping here")
        log(f"{checks.passed} passed, {checks.failed} failed")
        return 1
    setup_done = time.monotonic()

    # 3. edits while runs follow one another, some killed
    configure(setup=False)
    # Real APIs answer in tens to hundreds of milliseconds; without latency
    # a run would be over before any user could edit a record it writes.
    for system in CONTACTS + ("texting",):
        sim.fault(system, kind="delay", delay=latency, times=10 ** 9)
    owners = {(i, f): rng.choice(systems) for i in range(people) for f, systems in EDIT_FIELDS.items()}
    to_kill = set(rng.sample(range(runs), min(kills, runs)))
    log(f"runs to kill: {sorted(n + 1 for n in to_kill)}")
    reset_counts(sim)
    editor = Editor(sim, random.Random(rng.random()), people, ids, owners, rate,
                    max_edits=int(rate * (runs * (RUN_TIMEOUT + gap)) / 60) + 1)
    durations, codes, killed, pending = [history[-1][2] or 0.5], [], 0, 0
    editor.start()
    soak_start = time.monotonic()
    for n in range(runs):
        time.sleep(gap)
        pending += n in to_kill
        t0 = time.monotonic()
        proc = runner.start("run")
        # A random moment of the run, from the length of the runs not
        # killed so far; a run that ends first passes its kill on.
        limit = rng.uniform(0.05, 0.95) * statistics.median(durations) if pending else RUN_TIMEOUT
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            code = "SIGKILL" if pending else "hung"
            killed += bool(pending)
            pending -= bool(pending)
        else:
            if not pending:
                durations.append(time.monotonic() - t0)
        runner.log.write(f"=== exit {code}\n")
        codes.append((code, round(time.monotonic() - t0, 2)))
        log(f"soak run {n + 1}: {code} after {codes[-1][1]} s, {editor.n} edits so far")
    editor.stop_event.set()
    editor.join(timeout=30)
    soak_seconds = time.monotonic() - soak_start
    soak_writes = write_count(sim)

    # 4. converge
    ok, history = converge(runner, sim, bound)
    log(f"converging runs (exit, writes, s): {history}")
    checks.check(ok, f"converged after the edits stopped (exit 0, then a run without writes; at most {bound} runs)",
                 f"runs: {history}")

    # 5. the oracle
    per, strays = contacts_by_person(sim, people + MAX_NEW)
    # New contacts: as created, everywhere (tags: none if made in Aloware).
    expected = dict(baseline)
    for i, system in editor.created.items():
        owners.update({(i, f): f"nobody (created in {system})" for f in EDIT_FIELDS})
        expected.update({(i, f): base_values(i)[f] for f in EDIT_FIELDS if f != "tags"})
        expected[(i, "tags")] = [] if system == "aloware" else ["soak"]
    everyone = list(range(people)) + sorted(editor.created)
    lost, changed, cells, lost_by = [], [], 0, Counter()
    for (i, field), systems in ((k, EDIT_FIELDS[k[1]]) for k in sorted(expected)):
        edited = (i, field) in editor.last
        want = editor.last.get((i, field), expected[(i, field)])
        if field == "tags" and edited:
            want = sorted(want)
        elif field == "email" and isinstance(want, str):
            want = want.lower()
        wrong = {}
        for system in systems:
            records = per[system].get(i) or []
            for record in records:
                got = field_of(system, record, field)
                if got != want:
                    wrong[system] = got
        if wrong:
            cells += len(wrong)
            (lost if edited else changed).append(f"person {i} {field}: want {want!r} "
                                                 f"(owner {owners[(i, field)]}), got {wrong}")
            if edited:
                lost_by[f"{field} owned by {owners[(i, field)]}"] += 1
    edited_values = len(editor.last)
    checks.check(not lost, f"every edited value is the owner's last edit everywhere "
                 f"({len(lost)} of {edited_values} edited values lost)", sample(lost))
    checks.check(not changed, f"every value nobody edited is as seeded or created ({len(changed)} differ)",
                 sample(changed))

    dups, missing = [], []
    for system in CONTACTS:
        for i in everyone:
            n = len(per[system].get(i) or [])
            if n > 1:
                dups.append(f"{system} person {i}: {n} records {[r['id'] for r in per[system][i]]}")
            elif n == 0:
                missing.append(f"{system} person {i}")
    notes = sim.records("ghl", collection="notes")
    messages = sim.records("ghl", collection="messages")
    # GHL's message export has no altId: a delivered call or text is its
    # GHL message of the same type, date (the event's) and, for a text, body
    # (docs/DESIGN.md); the simulators stamp every seed with its own time.
    def key(message_type, when, body):
        return (message_type, to_ms(when), body)
    made = Counter(key(m["messageType"], m["dateAdded"], m.get("body") if m["messageType"] == "TYPE_SMS"
                       else None) for m in messages if m.get("dateAdded"))
    for cid in editor.calls:
        marker = f"aloware_call_id: {cid}"
        n_notes = sum(1 for note in notes if (note.get("body") or "").endswith(marker))
        call = sim.record("aloware", cid, collection="calls")
        n_messages = made[key("TYPE_CALL", call["created_at"], None)]
        for what, n in (("note", n_notes), ("Call message", n_messages)):
            if n > 1:
                dups.append(f"call {cid}: {n} GHL {what}s")
            elif n == 0:
                missing.append(f"call {cid}: no GHL {what}")
    for mid in editor.texts:
        text = sim.record("texting", mid, collection="messages")
        n = made[key("TYPE_SMS", text["createdAt"], text["body"])]
        if n > 1:
            dups.append(f"text {mid}: {n} GHL messages")
        elif n == 0:
            missing.append(f"text {mid}: no GHL message")
    checks.check(not dups, f"no duplicates: one record per person per system, one note/message per "
                 f"call and text ({len(dups)} duplicates)", sample(dups))
    checks.check(not missing and not strays, f"nothing missing: every person (and the {len(editor.created)} "
                 f"created during the soak) in every contact system, "
                 f"every call and text delivered ({len(missing)} missing)",
                 sample(missing) + (f" strays {dict(strays)}" if strays else ""))

    register = texting_optouts(sim.records("texting", collection="events"))
    held_back, wrong_out = [], []
    for i in everyone:
        phone = phone_of(i)
        want = editor.optouts.get(phone, set())
        have = {"ghl": set().union(*(ghl_optouts(r) for r in per["ghl"].get(i) or [])),
                "verity": set().union(*({c for c in CHANNELS if (r.get("optOuts") or {}).get(c)}
                                        for r in per["verity"].get(i) or [])),
                "texting": register.get(phone, set())}
        for system, channels in have.items():
            if want - channels:
                held_back.append(f"{phone} {system}: missing {sorted(want - channels)}")
            if channels - want:
                wrong_out.append(f"{phone} {system}: not opted out by anyone {sorted(channels - want)}")
    out_pairs = sum(len(c) for c in editor.optouts.values())
    checks.check(not held_back, f"every opt-out reached GHL, Verity and texting ({out_pairs} phone/channel "
                 f"opt-outs; {len(held_back)} held back)", sample(held_back))
    checks.check(not wrong_out, f"no opt-out that no user made ({len(wrong_out)})", sample(wrong_out))

    # Every finding in full (the checks above print five of each).
    with open(workdir / "findings.txt", "w", encoding="utf-8") as out:
        for title, items in (("values lost", lost), ("unedited values that differ", changed),
                             ("duplicates", dups), ("missing", missing),
                             ("opt-outs held back", held_back), ("opt-outs nobody made", wrong_out)):
            out.write(f"# {title}: {len(items)}\n" + "".join(f"{item}\n" for item in items))

    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
    finally:
        db.close()
    checks.check(integrity == ["ok"], "PRAGMA integrity_check of the state file is ok", sample(integrity))
    checks.check(killed == min(kills, runs), f"harness: {killed} of {min(kills, runs)} planned SIGKILLs "
                 "landed while a run was going", f"run outcomes: {codes}")
    checks.check(not editor.errors, f"harness: every user edit was applied ({len(editor.errors)} errors)",
                 sample(editor.errors))

    total = time.monotonic() - started
    log("figures:")
    log(f"  seed                SOAK_SEED={seed} to repeat")
    log(f"  runs during edits   {runs} ({killed} killed with SIGKILL); outcomes {codes}")
    log(f"  converging runs     {len(history)}: {history}")
    log(f"  edits applied       {editor.n} in {soak_seconds:.0f} s "
        f"({60 * editor.n / max(soak_seconds, 1):.0f}/min): {dict(sorted(editor.kinds.items()))}")
    log(f"  writes sent         {soak_writes} during the edits, "
        f"{sum(h[1] for h in history)} while converging")
    log(f"  values lost         {len(lost)} of {edited_values} edited (person, field) values; "
        f"{cells} wrong (system, person, field) cells in all")
    if lost_by:
        log(f"  lost, by field      {dict(sorted(lost_by.items()))}")
    log(f"  unedited differ     {len(changed)} (seeded values, and {len(editor.created)} contacts created "
        "during the soak)")
    log(f"  duplicates          {len(dups)}; missing {len(missing)}")
    log(f"  opt-outs held back  {len(held_back)}; wrongly set {len(wrong_out)}")
    log(f"  integrity_check     {' '.join(integrity)}")
    log(f"  duration            {total:.0f} s (setup {setup_done - started:.0f} s); "
        f"work directory {workdir} (every finding in findings.txt)")
    log(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
