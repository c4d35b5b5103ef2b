"""Report pages in headless Chromium: every table and chart drawn, no console error, no request.

Drives Chromium over the DevTools protocol (websockets client) and keeps a full-page
screenshot of each report in `test-artifacts/`. Needs the Debian package `chromium`.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from websockets.sync.client import connect

from mvg_sync.reports.control import eservice_and_hsl_reports, write_reports
from mvg_sync.reports.samples import sample_datasets

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get update && apt-get install -y chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# STACK-NOTES: the flags that keep headless Chromium quiet and off the network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "--window-size=1280,900", "--hide-scrollbars", "--mute-audio"]

CHECK_JS = """
(() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const tables = [...document.querySelectorAll('table')].map(t => ({
    size: box(t), rows: t.tBodies[0].rows.length, cols: t.tHead.rows[0].cells.length,
    declared: Number(t.dataset.rows)}));
  const charts = [...document.querySelectorAll('svg.chart')].map(s => ({
    size: box(s), marks: s.querySelectorAll('.mark').length,
    empty: s.textContent.includes('Inga data')}));
  const images = document.images.length;
  const resources = performance.getEntriesByType('resource').map(r => r.name);
  return JSON.stringify({tables, charts, images, resources, title: document.title});
})()
"""


class Cdp:
    """A minimal DevTools client: one browser websocket, one flattened page session."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    datasets = sample_datasets(units=6, events=300, event_days=28, slot_days=28)
    reports = eservice_and_hsl_reports(
        datasets, as_of=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        registered_from=date(2026, 11, 2), registered_to=date(2026, 11, 29),
    )
    write_reports(reports, out)
    return out, {r.name: r for r in reports}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(f"headless Chromium is required at {CHROMIUM}; install it with: {INSTALL}")
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start its DevTools endpoint (exit {proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = Cdp(f"ws://127.0.0.1:{port}{path}")
        try:
            yield cdp
        finally:
            cdp.close()
    finally:
        # the browser's own process group: its renderers and helpers go with it
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _open(cdp: Cdp, url: str) -> None:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    cdp.session = cdp.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    cdp.events.clear()
    for domain in ("Page", "Runtime", "Log", "Network"):
        cdp.send(f"{domain}.enable")
    cdp.send("Page.navigate", {"url": url})
    cdp.wait_for("Page.loadEventFired")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eservice", "hsl_coverage"])
def test_report_page_renders_offline_in_chromium(browser, report_dir, name):
    out, reports = report_dir
    report = reports[name]
    page = out / f"{name}.html"
    url = page.as_uri()
    _open(browser, url)

    state = json.loads(browser.send(
        "Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True})["result"]["value"])
    metrics = browser.send("Page.getLayoutMetrics")["cssContentSize"]
    shot = browser.send("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": metrics["width"],
                 "height": min(metrics["height"], 16000), "scale": 1},
    }, timeout=60)
    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    (ARTIFACTS / f"report-{name}.png").write_bytes(png)

    # let late console messages arrive before judging
    time.sleep(0.3)
    browser.send("Runtime.evaluate", {"expression": "1"})
    events = browser.events
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    errors = [e for e in events if
              (e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] in ("error", "assert", "warning"))
              or e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] in ("error", "warning"))]

    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert state["title"] == report.title
    assert requests == [url], f"unexpected requests: {requests}"
    assert state["resources"] == [] and state["images"] == 0
    assert errors == [], errors

    assert len(state["tables"]) == len(report.views)
    for table, view in zip(state["tables"], report.views, strict=True):
        width, height = table["size"]
        assert width > 0 and height > 0, view.name
        assert table["cols"] == view.frame.width, view.name
        assert table["declared"] == view.frame.height
        assert table["rows"] == max(1, min(view.frame.height, 2000)), view.name

    assert len(state["charts"]) == len(report.charts)
    for chart, spec in zip(state["charts"], report.charts, strict=True):
        width, height = chart["size"]
        assert width > 0 and height > 0, spec.title
        assert chart["marks"] > 0 or chart["empty"], spec.title
