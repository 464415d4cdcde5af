"""Issue 9, the idle cursor: after a changed-since listing read to the end, a
stream's cursor moves to the moment that listing began (our clock), so once
the lookback window holds no change an idle run lists nothing; a change made
after it, or one dated inside the lookback but indexed late, is still seen.

Every test states exact request counts (the simulators' counters) and the
records each run took in (its `event=polled` lines), never timing. The
sleeps only let the (1 s) lookback pass.
"""

import re
import time

from conftest import ANN_AS_TYPED, SYSTEMS, view

LOOKBACK_1 = {s: {"lookback": 1} for s in SYSTEMS}


def polled(err: str) -> dict:
    """{system: records taken in} from a run's event=polled lines."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"event=polled system=(\w+) records=(\d+)", err)}


def test_an_idle_run_past_the_lookback_lists_nothing_and_a_later_change_is_seen(env):
    # Setup: Ann, typed into GHL, is created in Aloware and Verity; the run
    # after it lists those creates once. Each run starts past the lookback
    # (1 s) of the one before.
    env.write_config(system_options=LOOKBACK_1)
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    time.sleep(1.5)
    env.converge()
    time.sleep(1.5)

    # Action: an idle run.
    env.reset_requests()
    err = env.converge()

    # Expected: one listing request per stream, and not one record in them
    # (the cursor is where the last complete listing began, not the date
    # of the newest record, which the lookback would re-read for ever).
    assert env.all_counts() == env.only_listings()
    assert polled(err) == {"ghl": 0, "aloware": 0, "verity": 0}

    # Action: a Verity user edits Ann right after; the next run.
    ver_id = env.only("verity")["id"]
    env.edit("verity", ver_id, first_name="Anna")
    env.reset_requests()
    err = env.converge()

    # Expected: it was listed and reached the other systems.
    assert polled(err)["verity"] == 1
    for system in SYSTEMS:
        assert view(system, env.only(system))["first_name"] == "Anna", system


def test_a_change_indexed_late_but_dated_inside_the_lookback_is_still_observed(env):
    # Setup: Ann converged (default lookback, 300 s). GHL now indexes
    # changes an hour late, and its user renames Ann.
    env.seed("ghl", **ANN_AS_TYPED)
    env.converge()
    env.converge()
    ghl_id = env.only("ghl")["id"]
    env.sim.config("ghl", index_delay=3600)
    env.edit("ghl", ghl_id, first_name="Anna")

    # Action 1: a run while the change is not in GHL's search yet.
    env.converge()

    # Expected: nothing of it was seen (the search shows the old copy).
    assert view("verity", env.only("verity"))["first_name"] == "Ann"

    # Action 2: the change is indexed (GHL's clock moves an hour on); the
    # next run. Its cursor is where run 1's complete listing began, after
    # the change's date, but the change is inside the lookback behind it.
    env.sim.advance_clock("ghl", 3600)
    env.converge()

    # Expected: observed and written everywhere.
    for system in SYSTEMS:
        assert view(system, env.only(system))["first_name"] == "Anna", system
