"""The Prism gate itself (tests/prism/gate.py): a request that violates
GHL's official spec is caught, and the spec's own error is patched."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from conftest import LOCATION


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer ghl-test-token", "Version": "2021-04-15",
        "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_gate_reports_a_request_the_spec_forbids(sim, prism_gate):
    if not prism_gate.active:
        pytest.skip(f"GHL official-spec validation (Prism) SKIPPED: {prism_gate.reason}")
    url = sim.api_urls["ghl"]
    (contact,) = sim.seed("ghl", [{"firstName": "Ann", "phone": "+15552010001"}])
    (conv,) = sim.seed("ghl", [{"locationId": LOCATION, "contactId": contact}], collection="conversations")

    # Action 1: an SMS without conversationProviderId (the spec requires it).
    post(url + "/conversations/messages/inbound",
         {"type": "SMS", "contactId": contact, "conversationId": conv, "message": "hi"})

    # Expected: Prism's violation is recorded (and taken here, so that
    # this test itself passes).
    found = prism_gate.take()
    assert any("required property 'conversationProviderId'" in v for v in found), found

    # Action 2: direction as a string, as GHL takes it; the spec's object
    # type is patched in tests/prism/exceptions.json.
    post(url + "/conversations/messages/inbound",
         {"type": "SMS", "contactId": contact, "conversationId": conv, "message": "hi",
          "direction": "outbound", "conversationProviderId": "prov-test-1"})
    assert prism_gate.take() == []
