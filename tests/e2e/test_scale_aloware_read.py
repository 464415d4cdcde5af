"""Issue 9, requests on a long first sync: an Aloware contact (no listing:
it is known only by its lookup by phone) read less than `recheck_after`
seconds ago is updated without a second lookup, however long ago the run
began. The window counts from when the record itself was read, not from
the run's start: a first sync of 100,000 contacts reaches its Aloware
updates minutes after it began, and read every one of them twice.

The run outlasts `recheck_after` = 1 s because the create's lookup is
answered 1.5 s late (a `delay` fault). Nothing asserts timing: the
simulator's counts say which requests were sent.
"""

from conftest import ANN, ANN_AS_TYPED, view


def test_aloware_found_by_a_slow_lookup_is_updated_without_a_second_one(env):
    # Setup: no relay: Aloware is known only through its lookup by phone.
    # Ann is in GHL and, under another first name, in Aloware. The lookup
    # that finds her answers after recheck_after has passed since the run
    # began.
    env.write_config(relay=False, system_options={"aloware": {"recheck_after": 1}})
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("aloware", **dict(ANN, first_name="Annie"))
    env.sim.fault("aloware", method="GET", route="/api/v1/webhook/contact/phone-number",
                  kind="delay", delay=1.5)

    # Action: the first run.
    env.reset_requests()
    code, out, err = env.run("run")
    assert code == 0, f"run exited {code}\n{out}\n{err}"

    # Expected: the create's lookup found her (no create), and the update
    # that followed went without a second lookup: she was read a moment ago.
    assert env.counts("aloware") == {"GET /api/v1/webhook/contact/phone-number": 1,
                                     "POST /api/v1/webhook/forms": 1}
    assert view("aloware", env.only("aloware")) == ANN


def test_aloware_read_longer_ago_than_recheck_after_is_looked_up_again(env):
    # Setup: Ann and Bob converged (no relay; the sweep reads up to 50
    # Aloware contacts a run); a GHL user changes both first names. The
    # sweep's two lookups are each answered 1.5 s late, so whichever
    # contact it reads first was read more than recheck_after = 1 s before
    # its update.
    bob = dict(ANN, first_name="Bob", phone="+15552010002", email="bob@example.com")
    env.write_config(relay=False, system_options={"aloware": {"recheck_after": 1}})
    env.seed("ghl", **ANN_AS_TYPED)
    env.seed("ghl", **bob)
    env.converge()
    env.converge()
    for rec in env.sim.records("ghl"):
        env.edit("ghl", rec["id"], first_name=rec["firstName"] + "a")
    env.sim.fault("aloware", method="GET", route="/api/v1/webhook/contact/phone-number",
                  kind="delay", delay=1.5, times=2)

    # Action: the run that sweeps both and writes the new names.
    env.reset_requests()
    code, out, err = env.run("run")
    assert code == 0, f"run exited {code}\n{out}\n{err}"

    # Expected: the sweep's two lookups, and a third before the update of
    # the contact read first; both names written.
    counts = env.counts("aloware")
    assert counts["GET /api/v1/webhook/contact/phone-number"] >= 3, counts
    assert counts["POST /api/v1/webhook/forms"] == 2, counts
    assert sorted(view("aloware", r)["first_name"] for r in env.sim.records("aloware")) == ["Anna", "Boba"]
