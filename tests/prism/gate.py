"""The official-spec gate of the end-to-end tests: every request dfreconcile
sends to GHL, and every answer of the GHL simulator, goes through Stoplight
Prism (`prism proxy`) with GHL's own OpenAPI specs (contacts and
conversations, ../shared/api/ghl), and a test fails on any violation Prism
reports with severity "error".

    dfreconcile --> front relay --> prism proxy --> back relay --> GHL simulator
                    (reads Prism's                  (forwards to this
                     sl-violations header)           test's simulator)

One Prism serves the whole session (it takes seconds to start); its upstream
is fixed, so the back relay forwards to whichever simulator the running test
started. The front relay records the `sl-violations` header Prism adds to
each answer. The only exceptions are in exceptions.json next to this file,
each with its reason: patches of the spec where the spec itself is wrong,
and violations that are not ours to fix.

Prism is installed by scripts/install-prism.sh (pinned, under
build/prism). Without it, or with DFRECONCILE_PRISM=0, the tests run without
the gate and pytest says so in its summary.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PRISM_BIN = Path(os.environ.get("PRISM_DIR") or REPO / "build" / "prism") / "node_modules" / ".bin" / "prism"
SPEC_DIR = Path(os.environ.get("GHL_SPEC_DIR") or REPO.parent / "shared" / "api" / "ghl")
SPECS = ("apps/contacts.json", "apps/conversations.json")
EXCEPTIONS = HERE / "exceptions.json"
START_TIMEOUT = 60.0
# Hop-by-hop headers a relay does not pass on.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length"}
# The simulator marks an answer it changed on a test's request (a fault).
FAULT_HEADER = "X-Sim-Fault"


def load_exceptions() -> dict:
    return json.loads(EXCEPTIONS.read_text())


def merged_spec(out_dir: Path) -> Path:
    """One OpenAPI document of the contacts and conversations specs (their
    paths and components do not collide), with exceptions.json's patches,
    written as out_dir/apps/ghl.json next to a copy of common/."""
    docs = [json.loads((SPEC_DIR / name).read_text()) for name in SPECS]
    spec = dict(docs[0])
    spec["paths"] = {}
    spec["components"] = {}
    for doc in docs:
        spec["paths"].update(doc["paths"])
        for kind, items in doc.get("components", {}).items():
            spec["components"].setdefault(kind, {}).update(items)
    for patch in load_exceptions()["spec_patches"]:
        node = spec
        *parents, last = patch["pointer"].strip("/").split("/")
        for key in parents:
            node = node[key]
        if last not in node:
            raise KeyError(f"exceptions.json: {patch['pointer']} is not in the spec")
        node[last] = patch["value"]
    (out_dir / "apps").mkdir(parents=True, exist_ok=True)
    (out_dir / "common").mkdir(parents=True, exist_ok=True)
    shutil.copy(SPEC_DIR / "common" / "common-schemas.json", out_dir / "common" / "common-schemas.json")
    path = out_dir / "apps" / "ghl.json"
    path.write_text(json.dumps(spec))
    return path


class _Relay(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, on_answer=None):
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.target: str | None = None
        self.on_answer = on_answer
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(self.server.target or "http://127.0.0.1:9")
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            answer_headers = resp.getheaders()
        except OSError as exc:
            data, answer_headers = json.dumps({"relay": str(exc)}).encode(), []
            resp = None
        finally:
            conn.close()
        if self.server.on_answer is not None and resp is not None:
            self.server.on_answer(self.command, self.path, resp.status, dict(answer_headers))
        try:
            self.send_response(resp.status if resp is not None else 502)
            for key, value in answer_headers:
                if key.lower() not in HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (a killed run)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _relay


class PrismGate:
    """Prism between the binary and the GHL simulator, for the session."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.reason = ""          # why the gate is off ("" while on)
        self.ran = False          # it validated this session's GHL traffic
        self.process: subprocess.Popen | None = None
        self.back = self.front = None
        self.lock = threading.Lock()
        self.violations: list[str] = []
        self.ignored = load_exceptions()["ignored_violations"]
        self.bypass = {rule["test"] for rule in load_exceptions().get("bypass_tests", [])}

    # -- life cycle --
    def start(self) -> bool:
        if os.environ.get("DFRECONCILE_PRISM", "1") == "0":
            self.reason = "DFRECONCILE_PRISM=0"
            return False
        if not PRISM_BIN.exists():
            self.reason = f"Prism is not installed ({PRISM_BIN}; run scripts/install-prism.sh)"
            return False
        if not all((SPEC_DIR / name).exists() for name in SPECS):
            self.reason = f"the GHL specs are not in {SPEC_DIR} (set GHL_SPEC_DIR)"
            return False
        spec = merged_spec(self.workdir / "spec")
        self.back = _Relay()
        self.front = _Relay(self._record)
        with socket_port() as port:
            pass
        log = open(self.workdir / "prism.log", "wb")
        self.process = subprocess.Popen(
            [str(PRISM_BIN), "proxy", str(spec), self.back.url, "-h", "127.0.0.1", "-p", str(port),
             ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.front.target = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if b"Prism is listening" in (self.workdir / "prism.log").read_bytes():
                self.ran = True
                return True
            time.sleep(0.1)
        self.stop()
        self.reason = f"Prism did not start (see {self.workdir / 'prism.log'})"
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for relay in (self.front, self.back):
            if relay is not None:
                relay.shutdown()
                relay.server_close()

    @property
    def active(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- per test --
    def covers(self, test_name: str) -> bool:
        """Whether the test's GHL traffic goes through the gate."""
        return self.active and test_name.split("[")[0] not in self.bypass

    def attach(self, ghl_url: str) -> str:
        """Routes the gate to this test's GHL simulator; returns the URL the
        binary is to use for GHL."""
        self.back.target = ghl_url
        with self.lock:
            self.violations = []
        return self.front.url

    def take(self) -> list[str]:
        with self.lock:
            found, self.violations = self.violations, []
        return found

    def _record(self, method: str, path: str, status: int, headers: dict) -> None:
        text = next((v for k, v in headers.items() if k.lower() == "sl-violations"), None)
        if not text:
            return
        faulted = any(k.lower() == FAULT_HEADER.lower() for k in headers)
        for v in json.loads(text):
            if v.get("severity") != "Error":
                continue
            where = ".".join(str(p) for p in v.get("location", []))
            # An answer the test made faulty on purpose is not the
            # simulator's to answer for; a request always is ours.
            if faulted and where.startswith("response"):
                continue
            line = f"{method} {path.split('?')[0]} -> {status}: {where}: {v.get('message')}"
            if any(rule["match"] in line and line.startswith(rule.get("only", ""))
                   for rule in self.ignored):
                continue
            with self.lock:
                self.violations.append(line)


class socket_port:
    """A free TCP port on 127.0.0.1 (closed again before Prism binds it)."""

    def __enter__(self) -> int:
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
