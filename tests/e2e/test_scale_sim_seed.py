"""The simulators' seed file (the bench's way to load up to 1,000,000
people) dates what it loads by the clock, never after it: a real service
does not date a record in the future. Its records may share a millisecond,
as a real bulk import's do; a millisecond each dated most of the bench's
100,000 GHL contacts, loaded in seconds, up to a minute ahead, and every
run logged a warning for each."""

from __future__ import annotations

import json

from client import start_simulators, stop


def test_records_loaded_from_a_seed_file_are_not_dated_after_the_clock(tmp_path):
    # Setup: a seed file of 5,000 GHL contacts without an update time.
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"ghl": [{"firstName": f"P{i}", "phone": f"+1555{i:07d}"}
                                        for i in range(5000)]}))

    # Action: the simulators load it.
    process, sim = start_simulators(tmp_path, seed=str(seed), lean=True)
    try:
        records = sim.records("ghl")
        now = sim.now("ghl")
    finally:
        stop(process)

    # Expected: all 5,000, none dated after the clock's time once loaded
    # (ISO-8601 in one format: they compare as text).
    assert len(records) == 5000
    assert max(r["dateUpdated"] for r in records) <= now
