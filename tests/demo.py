#!/usr/bin/env python3
"""The built-in demo: dfreconcile against local simulators of GHL, Aloware
and Verity (tests/sim), end to end over real HTTP on 127.0.0.1.

1. start the simulators of GHL, Aloware, Verity and the texting system,
   seeded with a few hundred contacts: some only in one system, some in two
   or three under different ids (phones written differently), some with
   conflicting values, some with invalid phones, one malformed record; GHL
   tags that map to Aloware call lists;
2. run a full reconcile and print its report;
3. as users would: edit records in each system (one conflicting edit of the
   same field in two systems), log Aloware calls, exchange texts (one of them
   a STOP), opt a contact out in Verity, move GHL tags, delete a GHL contact;
   run again;
4. print the second report (calls and messages delivered, list changes,
   opt-outs applied, what could not be done) and the status, stop the
   simulators;
5. write both runs' HTML report (build/demo/report.html) and, when
   chromium is installed (scripts/install-deps.sh), its screenshot
   (build/demo/report.png, as docs/report.png in the README).

The state file and config stay in build/demo/ for a look with sqlite3.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "sim"))
import client  # noqa: E402

BIN = os.environ.get("DFRECONCILE_BIN", str(ROOT / "dfreconcile"))
FIRST = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]
LAST = ["Lee", "Ray", "Ng", "Diaz", "Moss", "Park", "Quinn", "Shaw", "Tran", "Voss"]


def person(i):
    """The i-th demo person: (first, last, national phone, email)."""
    first, last = FIRST[i % len(FIRST)], LAST[i // len(FIRST) % len(LAST)]
    return first, last, f"555{2000000 + i:07d}", f"{first}.{last}{i}@example.com".lower()


def ghl(i, **extra):
    first, last, phone, email = person(i)
    rec = {"firstName": first, "lastName": last, "phone": f"({phone[:3]}) {phone[3:6]}-{phone[6:]}",
           "email": email, "city": "Austin", "tags": ["demo"]}
    rec.update(extra)
    return rec


def aloware(i, **extra):
    first, last, phone, email = person(i)
    rec = {"first_name": first, "last_name": last, "phone_number": "+1" + phone, "email": email}
    rec.update(extra)
    return rec


def verity(i, **extra):
    first, last, phone, email = person(i)
    rec = {"firstName": first, "lastName": last, "phoneE164": "+1" + phone, "email": email,
           "customFields": {"investorTier": "silver"}}
    rec.update(extra)
    return rec


def seed(sim):
    """About 400 contacts across the systems, and two Aloware call lists."""
    g = [ghl(i) for i in range(0, 150)]                      # 0-149 in GHL
    a = [aloware(i) for i in range(100, 200)]                # 100-199 in Aloware (100-149 shared)
    v = [verity(i) for i in range(140, 260)]                 # 140-259 in Verity (140-149 in all three)
    a[5]["first_name"] = "Annabel"                           # conflicting values before the first run
    v[3]["lastName"] = "Different"
    for i in (100, 101, 102):                                # GHL tags that map to call lists
        g[i]["tags"] = ["demo", "CALL_NOW"]
    g[103]["tags"] = ["demo", "hot-lead"]
    g += [ghl(300 + i, phone=bad) for i, bad in enumerate(["555-01", "call me", "+0123", "12"])]
    # Power Dialer lists of Aloware users 101 and 102 (the rules name the user).
    sim.seed("aloware", [{"id": 101, "name": "DF_CALL_NOW", "user_id": 101, "contact_ids": []},
                         {"id": 102, "name": "DF_HOT", "user_id": 102, "contact_ids": []}], collection="lists")
    # Aloware's calls exist only in relay mode (our listing contract): the
    # demo shows that mode, so calls reach GHL.
    sim.config("aloware", relay=True)
    # GHL's burst limit (100 per 10 s) would make the demo's first sync of
    # ~400 contacts take minutes; pacing is shown by its own tests
    # (test_ghl_auth_limits.py), so the demo's simulator does not limit.
    sim.config("ghl", rate_limit=0)
    sim.seed("ghl", g)
    sim.seed("aloware", a)
    sim.seed("verity", v)
    sim.seed("verity", [{"id": "ver_bad", "firstName": "Broken", "phoneE164": 5551234,
                         "updatedAt": sim.now("verity")}], raw=True)


def by_phone(records, key, phone):
    return next(r for r in records if r.get(key) == phone)


def edit(sim):
    """Users at work between two runs."""
    g = sim.records("ghl")
    a = sim.records("aloware")
    v = sim.records("verity")
    sim.edit("ghl", g[0]["id"], {"firstName": "Annie"})
    sim.edit("ghl", g[1]["id"], {"city": "Denver"})
    sim.edit("aloware", a[0]["id"], {"email": "new.address@example.com"})
    sim.edit("verity", v[0]["id"], {"customFields": {"investorTier": "gold"}})
    # The same person's first name changed in GHL and Verity: a conflict.
    target = by_phone(v, "phoneE164", "+15552000145")
    gtarget = next(r for r in g if r.get("email") == target["email"])
    sim.edit("ghl", gtarget["id"], {"firstName": "Maximilian"})
    sim.edit("verity", target["id"], {"firstName": "Max"})
    # Tags: one contact leaves the call list, another joins it.
    sim.edit("ghl", by_phone(g, "phone", "(555) 200-0100")["id"], {"tags": ["demo"]})
    sim.edit("ghl", by_phone(g, "phone", "(555) 200-0104")["id"], {"tags": ["demo", "call_now"]})
    # Calls logged in Aloware, texts in the texting system.
    for phone, direction, seconds in (("+15552000110", "outbound", 125), ("+15552000111", "inbound", 42)):
        contact = by_phone(a, "phone_number", phone)
        sim.seed("aloware", [{"contact_id": contact["id"], "direction": direction, "duration": seconds,
                              "disposition": "Interested", "status": "completed",
                              "recording_url": "https://recordings.example/" + phone[1:]}],
                 collection="calls")
    sim.seed("texting", [
        {"direction": "inbound", "from": "+15552000120", "to": "+15550009999", "body": "Is the fund still open?"},
        {"direction": "outbound", "from": "+15550009999", "to": "+15552000120", "body": "It is. Shall I call you?"},
        {"direction": "inbound", "from": "+15552000101", "to": "+15550009999", "body": "STOP"},
        {"direction": "inbound", "from": "+15552000121", "to": "+15550009999", "body": "don't stop the updates"},
    ], collection="messages")
    # An opt-out recorded in Verity; a contact deleted in GHL.
    sim.edit("verity", by_phone(v, "phoneE164", "+15552000150")["id"], {"optOuts": {"call": True}})
    sim.delete("ghl", g[25]["id"])  # the sweep re-reads GHL 20 a run: 21-40 in run 2


def write_config(workdir, sim):
    conf = workdir / "demo.conf"
    conf.write_text(f"""# Written by tests/demo.py
state_path = "state.db";
default_country = "US";
source_order = ["ghl", "aloware", "verity", "texting"];
systems = {{
  ghl = {{ base_url = "{sim.base_url('ghl')}"; token = "ghl-test-token"; location_id = "loc-demo";
          rate_limit = 0; page_size = 100; conversation_provider_id = "demo-provider";
          sweep = 20; sweep_interval = 0; }};
  # Relay mode: base_url also serves our listing contract (the simulator's
  # relay is on), so Aloware's contacts and calls are polled.
  aloware = {{ base_url = "{sim.base_url('aloware')}"; token = "aloware-test-token"; rate_limit = 0;
              listing = true; events = true; }};
  verity = {{ base_url = "{sim.base_url('verity')}"; token = "verity-test-token"; rate_limit = 0; }};
  texting = {{ base_url = "{sim.base_url('texting')}"; token = "texting-test-token"; rate_limit = 0; }};
}};
custom_fields = ( {{ name = "investor_tier"; ghl = "cf_tier"; aloware = "csf1"; verity = "investorTier"; }} );
call_lists = {{
  system = "aloware";
  rules = ( {{ tag = "call_now"; match = "case-insensitive"; user_id = "101"; }},
            {{ tag = "^hot"; match = "regex"; user_id = "102"; }} );
}};
""")
    return conf


def dfreconcile(conf, *args):
    print(f"$ dfreconcile -c {conf.name} {' '.join(args)}", flush=True)
    proc = subprocess.run([BIN, "-q", "-c", str(conf), *args], cwd=conf.parent, timeout=120)
    print(f"(exit {proc.returncode})", flush=True)
    return proc.returncode


def html_report(conf):
    """The HTML report of run 2 and, with chromium, its screenshot."""
    page = conf.parent / "report.html"
    with open(page, "w") as out:
        subprocess.run([BIN, "-q", "-c", str(conf), "report", "--run", "2", "--format", "html"],
                       cwd=conf.parent, stdout=out, timeout=120, check=True)
    print(f"\nHTML report: {page}")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium: no screenshot (scripts/install-deps.sh installs it)")
        return
    shot = conf.parent / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,1300", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    print(f"screenshot: {shot}" if shot.exists() else "chromium made no screenshot")


def main():
    workdir = ROOT / "build" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with client.simulators(workdir) as sim:
        seed(sim)
        conf = write_config(workdir, sim)
        print("== run 1: first full reconcile", flush=True)
        codes = [dfreconcile(conf, "run", "--full")]
        dfreconcile(conf, "report", "--run", "1", "--limit", "10")
        print("\n== users edit records in each system; run 2", flush=True)
        edit(sim)
        codes.append(dfreconcile(conf, "run"))
        dfreconcile(conf, "report", "--run", "2")
        print("\n== status", flush=True)
        dfreconcile(conf, "status")
    html_report(conf)
    print(f"\ndemo finished; state and config in {workdir}")
    # Run 1 quarantines the malformed record, so it is partial by design.
    return 0 if all(c in (0, 1) for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
