"""Issue 9, the simulators' own HTTP transport (tests/sim/README.md, "HTTP
transport"): a strict HTTP/1.1 parser with keep-alive, in front of the
same handlers. Each test talks to the simulators over a raw socket and
checks the exact answer: requests the real services would refuse get the
documented status in the system's own error shape and the connection is
closed; a request the transport refuses never reaches a system, so it is
not counted; well-formed requests behave as before (keep-alive,
pipelining, chunked bodies, Expect: 100-continue).
"""
from __future__ import annotations

import json
import socket

import pytest

from client import start_simulators, stop

GHL_AUTH = "Authorization: Bearer ghl-test-token\r\nVersion: 2021-07-28\r\n"
VERITY_AUTH = "Authorization: Bearer verity-test-token\r\n"


@pytest.fixture
def sims(tmp_path):
    process, handle = start_simulators(tmp_path)
    try:
        yield handle
    finally:
        stop(process)


class Conn:
    """A raw HTTP/1.1 connection that reads answers by Content-Length."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def answer(self) -> tuple[int, dict, bytes]:
        """(status, {lower-case header: value}, body) of the next answer."""
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed before an answer: {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._fill(), "connection closed inside a body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status), headers, body

    def closed(self) -> bool:
        """The server closed the connection (after what was read)."""
        try:
            return self.buf == b"" and not self._fill()
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def counted(sims, system: str) -> dict:
    return sims.requests(system)["counts"]


# ----- well-formed requests ------------------------------------------------------

def test_keep_alive_serves_several_requests_on_one_connection(sims):
    # Setup: one Verity contact.
    (ver_id,) = sims.seed("verity", [{"firstName": "Ann", "phoneE164": "+15550001111"}])
    conn = Conn(sims.ports["verity"])

    # Action: three requests, one after the other, on the same connection.
    answers = []
    for _ in range(3):
        conn.send(f"GET /api/v1/contacts/{ver_id} HTTP/1.1\r\nHost: x\r\n{VERITY_AUTH}\r\n")
        answers.append(conn.answer())

    # Expected: three full answers, the connection still open, three counted.
    for status, headers, body in answers:
        assert status == 200
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert json.loads(body)["contact"]["firstName"] == "Ann"
        assert headers.get("connection", "keep-alive") != "close"
    assert counted(sims, "verity") == {"GET /api/v1/contacts/{id}": 3}
    conn.send(f"GET /api/v1/contacts/{ver_id} HTTP/1.1\r\n{VERITY_AUTH}Connection: close\r\n\r\n")
    status, headers, _ = conn.answer()
    assert status == 200 and headers["connection"] == "close"
    assert conn.closed()
    conn.close()


def test_pipelined_requests_are_answered_in_order(sims):
    conn = Conn(sims.ports["verity"])

    # Action: two requests in one write, the second a POST with a body.
    body = json.dumps({"firstName": "Bo", "phoneE164": "+15550002222"})
    conn.send(f"GET /api/v1/contacts/nope HTTP/1.1\r\n{VERITY_AUTH}\r\n"
              f"POST /api/v1/contacts HTTP/1.1\r\n{VERITY_AUTH}Content-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n{body}")

    # Expected: the 404 first, then the 201 of the create.
    assert conn.answer()[0] == 404
    status, _, answer = conn.answer()
    assert status == 201 and json.loads(answer)["contact"]["firstName"] == "Bo"
    conn.close()


def test_a_chunked_body_and_expect_100_continue_are_served(sims):
    conn = Conn(sims.ports["verity"])
    body = json.dumps({"firstName": "Cy", "phoneE164": "+15550003333"}).encode()

    # Action: a POST that waits for 100 Continue, then sends its body in two chunks.
    conn.send(f"POST /api/v1/contacts HTTP/1.1\r\n{VERITY_AUTH}Transfer-Encoding: chunked\r\n"
              "Expect: 100-continue\r\n\r\n")
    interim = conn.sock.recv(64)
    half = len(body) // 2
    conn.send(b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n"
              % (half, body[:half], len(body) - half, body[half:]))

    # Expected: the interim answer, then the create.
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    status, _, answer = conn.answer()
    assert status == 201 and json.loads(answer)["contact"]["firstName"] == "Cy"
    assert [r["firstName"] for r in sims.records("verity")] == ["Cy"]
    conn.close()


def test_the_target_keeps_its_query_and_escapes(sims):
    # Setup: a contact looked up by a phone sent as %2B.
    sims.seed("verity", [{"firstName": "Di", "phoneE164": "+15550004444"}])
    conn = Conn(sims.ports["verity"])

    # Action
    conn.send(f"GET /api/v1/contacts/lookup?phone=%2B15550004444 HTTP/1.1\r\n{VERITY_AUTH}\r\n")

    # Expected
    status, _, body = conn.answer()
    assert status == 200 and [c["firstName"] for c in json.loads(body)["contacts"]] == ["Di"]
    conn.close()


# ----- what the transport refuses ------------------------------------------------

@pytest.mark.parametrize("request_line, status", [
    ("GARBAGE", 400),                                   # not method SP target SP version
    ("GET /api/v1/contacts", 400),                      # HTTP/0.9 style, no version
    ("GET  /api/v1/contacts HTTP/1.1", 400),            # two spaces
    ("GET api/v1/contacts HTTP/1.1", 400),              # not an origin-form target
    ("GET /api/v1/contacts HTTP/1.x", 400),             # not a version
    ("GET /api/v1/contacts HTTP/2.0", 505),             # a version not served
    ("get /api/v1/contacts HTTP/1.1", 400),             # methods are upper case
    ("BREW /api/v1/contacts HTTP/1.1", 501),            # a method no route serves
])
def test_a_malformed_request_line_gets_its_error_and_a_close(sims, request_line, status):
    conn = Conn(sims.ports["verity"])

    # Action
    conn.send(f"{request_line}\r\n{VERITY_AUTH}\r\n")

    # Expected: the status in Verity's error shape, the connection closed,
    # nothing counted.
    got, headers, body = conn.answer()
    assert got == status
    assert headers["connection"] == "close"
    assert set(json.loads(body)) == {"error"}
    assert conn.closed()
    conn.close()
    assert counted(sims, "verity") == {}


def test_a_refused_request_has_the_systems_error_shape(sims):
    # GHL's errors carry statusCode and message.
    conn = Conn(sims.ports["ghl"])
    conn.send("GARBAGE\r\n\r\n")
    status, _, body = conn.answer()
    assert status == 400
    assert json.loads(body) == {"statusCode": 400, "message": "bad request line"}
    conn.close()


def test_an_oversized_header_gets_431(sims):
    conn = Conn(sims.ports["ghl"])

    # Action: one header of 70,000 bytes (the limit is 65,536 for the head).
    conn.send(f"GET /contacts/x HTTP/1.1\r\n{GHL_AUTH}X-Big: {'a' * 70000}\r\n\r\n")

    # Expected
    status, headers, body = conn.answer()
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(body)["message"] == "request header fields too large"
    conn.close()
    assert counted(sims, "ghl") == {}


def test_too_many_headers_get_431(sims):
    conn = Conn(sims.ports["verity"])
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    conn.send(f"GET /api/v1/contacts HTTP/1.1\r\n{VERITY_AUTH}{many}\r\n")
    status, _, body = conn.answer()
    assert status == 431 and json.loads(body) == {"error": "too many headers"}
    conn.close()


@pytest.mark.parametrize("headers, status, message", [
    ("", 411, "length required"),                                  # no Content-Length
    ("Content-Length: abc\r\n", 400, "invalid content-length"),
    ("Content-Length: -1\r\n", 400, "invalid content-length"),
    ("Content-Length: 2\r\nContent-Length: 3\r\n", 400, "invalid content-length"),
    ("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", 400,
     "both content-length and transfer-encoding"),
    ("Transfer-Encoding: gzip\r\n", 501, "transfer-encoding not supported"),
    ("Bad Header: x\r\nContent-Length: 0\r\n", 400, "invalid header line"),
    (" folded\r\nContent-Length: 0\r\n", 400, "invalid header line"),
    ("Expect: something\r\nContent-Length: 0\r\n", 417, "expectation failed"),
    ("Content-Length: 2000000000\r\n", 413, "payload too large"),
    ("Transfer-Encoding: chunked\r\n\r\nzz", 400, "invalid chunk size"),
])
def test_a_post_with_bad_framing_gets_its_error(sims, headers, status, message):
    conn = Conn(sims.ports["verity"])

    # Action
    conn.send(f"POST /api/v1/contacts HTTP/1.1\r\n{VERITY_AUTH}{headers}\r\n")

    # Expected: the status, nothing created, nothing counted, closed.
    got, answer_headers, body = conn.answer()
    assert (got, json.loads(body)) == (status, {"error": message})
    assert answer_headers["connection"] == "close"
    assert conn.closed()
    conn.close()
    assert sims.records("verity") == []
    assert counted(sims, "verity") == {}


def test_a_get_needs_no_content_length(sims):
    conn = Conn(sims.ports["verity"])
    conn.send(f"GET /api/v1/contacts HTTP/1.1\r\n{VERITY_AUTH}\r\n")
    status, _, body = conn.answer()
    assert status == 200 and json.loads(body) == {"contacts": [], "nextCursor": None}
    conn.close()


def test_http_1_0_closes_after_the_answer(sims):
    conn = Conn(sims.ports["verity"])
    conn.send(f"GET /api/v1/contacts HTTP/1.0\r\n{VERITY_AUTH}\r\n")
    status, _, _ = conn.answer()
    assert status == 200
    assert conn.closed()
    conn.close()


def test_a_head_ended_by_bare_line_feeds_gets_400(sims):
    conn = Conn(sims.ports["verity"])
    conn.send("GET /api/v1/contacts HTTP/1.1\nAuthorization: Bearer verity-test-token\n\n")
    status, headers, body = conn.answer()
    assert (status, json.loads(body)) == (400, {"error": "bad line ending"})
    assert headers["connection"] == "close"
    conn.close()
    assert counted(sims, "verity") == {}
