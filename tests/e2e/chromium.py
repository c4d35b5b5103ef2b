"""Headless Chromium over the DevTools protocol for report-page tests: launch, open, inspect, judge.

Needs the Debian package `chromium` (`make test` installs it). Screenshots go to
`test-artifacts/`.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import connect

from mvg_sync.reports.html import MAX_HTML_ROWS
from mvg_sync.reports.model import Report

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

# Beyond this the screenshot is cut: Chromium refuses taller captures on some builds.
MAX_SHOT_HEIGHT = 16000


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


@contextmanager
def launch_chromium(profile: Path) -> Iterator[Cdp]:
    """Start headless Chromium with a fresh profile in `profile`; stop it (and its helpers) after."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(f"headless Chromium is required at {CHROMIUM}; install it with: {INSTALL}")
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


@dataclass(frozen=True)
class RenderedPage:
    """What Chromium made of one page: DOM facts, screenshot, requests and console problems."""

    url: str
    state: dict
    png: bytes
    requests: list[str]
    errors: list[dict]


def _open(cdp: Cdp, url: str) -> None:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    cdp.session = cdp.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    cdp.events.clear()
    for domain in ("Page", "Runtime", "Log", "Network"):
        cdp.send(f"{domain}.enable")
    cdp.send("Page.navigate", {"url": url})
    cdp.wait_for("Page.loadEventFired")


def render_page(cdp: Cdp, page: Path, screenshot: str) -> RenderedPage:
    """Open `page` in a new tab, inspect it and save a full-page PNG as `test-artifacts/<screenshot>`."""
    url = page.resolve().as_uri()
    _open(cdp, url)
    state = json.loads(cdp.send(
        "Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True})["result"]["value"])
    metrics = cdp.send("Page.getLayoutMetrics")["cssContentSize"]
    shot = cdp.send("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": metrics["width"],
                 "height": min(metrics["height"], MAX_SHOT_HEIGHT), "scale": 1},
    }, timeout=60)
    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    (ARTIFACTS / screenshot).write_bytes(png)

    # let late console messages arrive before judging
    time.sleep(0.3)
    cdp.send("Runtime.evaluate", {"expression": "1"})
    events = cdp.events
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    errors = [e for e in events if
              (e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] in ("error", "assert", "warning"))
              or e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] in ("error", "warning"))]
    return RenderedPage(url=url, state=state, png=png, requests=requests, errors=errors)


def assert_report_rendered(page: RenderedPage, report: Report) -> None:
    """Offline, quiet, and every view a visible table and every chart a drawn SVG."""
    state = page.state
    assert page.png.startswith(b"\x89PNG") and len(page.png) > 10_000
    assert state["title"] == report.title
    assert page.requests == [page.url], f"unexpected requests: {page.requests}"
    assert state["resources"] == [] and state["images"] == 0
    assert page.errors == [], page.errors

    assert len(state["tables"]) == len(report.views)
    for table, view in zip(state["tables"], report.views, strict=True):
        width, height = table["size"]
        assert width > 0 and height > 0, view.name
        assert table["cols"] == view.frame.width, view.name
        assert table["declared"] == view.frame.height, view.name
        assert table["rows"] == max(1, min(view.frame.height, MAX_HTML_ROWS)), view.name

    assert len(state["charts"]) == len(report.charts)
    for chart, spec in zip(state["charts"], report.charts, strict=True):
        width, height = chart["size"]
        assert width > 0 and height > 0, spec.title
        assert chart["marks"] > 0 or chart["empty"], spec.title
