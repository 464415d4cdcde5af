"""Issue 8 item 1: the self-contained HTML report, opened in headless
Chromium (Debian's `chromium`; scripts/install-deps.sh installs it):
the page renders with its script run to the end, its figures equal the
JSON report's, a table filter works, and the console shows no error. One
file: no network, inline CSS and JS."""
import html.parser
import re
import shutil
import subprocess

import pytest

from test_reports_summary import run_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: run scripts/install-deps.sh as root")


def chromium(*args) -> subprocess.CompletedProcess:
    """Headless Chromium (as root it needs --no-sandbox), console on stderr."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


class Cells(html.parser.HTMLParser):
    """The summary cells (data-system, data-key -> text), the rows of each
    table (id -> [(style, [cell texts])]) and the body's attributes."""

    def __init__(self):
        super().__init__()
        self.summary, self.tables, self.body, self.ids = {}, {}, {}, {}
        self._cell = self._table = self._row = None
        self._text = ""
        self._id = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self._row = (a.get("style") or "", [])
        if tag == "td":
            self._cell = (a.get("data-system"), a.get("data-key"))
            self._text = ""
        if tag in ("span", "b") and a.get("id"):
            self._id, self._text = a["id"], ""

    def handle_data(self, data):
        self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell:
            if self._cell[0] is not None:
                self.summary[self._cell] = self._text
            if self._row:
                self._row[1].append(self._text)
            self._cell = None
        if tag == "tr" and self._row and self._table:
            if self._row[1]:
                self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if tag in ("span", "b") and self._id:
            self.ids[self._id] = self._text
            self._id = None


def test_html_report_renders_in_chromium_with_the_json_figures(env, tmp_path):
    # Setup: the demo's two runs.
    run_demo(env)
    report = env.report_json("--run", "1..2")
    code, page, err = env.run("report", "--run", "1..2", "--format", "html")
    assert code == 0, err
    path = tmp_path / "report.html"
    path.write_text(page)

    # One file: nothing it would fetch.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)

    # Action: Chromium loads it, runs its script, and a link's filter
    # (#filter=t-writes:verity) narrows the writes table.
    proc = chromium("--dump-dom", f"{path.as_uri()}#filter=t-writes:verity")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Cells()
    dom.feed(proc.stdout)

    # Expected: the script ran to its end, without a console error.
    assert dom.body.get("data-ready") == "1"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    # ... the figures in the DOM are the JSON report's ...
    keys = ("read", "created", "updated", "cleared", "deleted", "list_changes", "optouts",
            "calls_delivered", "texts_delivered", "failed", "waiting", "quarantined", "requests")
    expected = {(row["system"], k): str(row[k]) for row in report["summary"]["systems"] for k in keys}
    assert dom.summary == expected
    assert (dom.ids["from"], dom.ids["to"], dom.ids["status"]) == ("1", "2", report["run"]["status"])
    # ... every detail table has the JSON's rows (a write: a row per field) ...
    for key in ("observed", "conflicts", "optouts", "deliveries", "quarantine", "notices"):
        assert len(dom.tables[f"t-{key}"]) == len(report[key]), key
    assert len(dom.tables["t-writes"]) == sum(max(1, len(w["fields"])) for w in report["writes"])
    # ... and the filter shows only Verity's writes.
    shown = [cells for style, cells in dom.tables["t-writes"] if "none" not in style]
    verity = sum(max(1, len(w["fields"])) for w in report["writes"] if w["system"] == "verity")
    assert len(shown) == verity > 0 and all(cells[3] == "verity" for cells in shown)
    assert dom.ids["t-writes-shown"] == str(verity)


def test_html_report_screenshot(env, tmp_path):
    run_demo(env)
    code, page, err = env.run("report", "--run", "2", "--format", "html")
    assert code == 0, err
    path = tmp_path / "report.html"
    path.write_text(page)
    shot = tmp_path / "report.png"
    proc = chromium("--hide-scrollbars", "--window-size=1200,1400", f"--screenshot={shot}", path.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
