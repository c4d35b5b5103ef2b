"""`mvg-sync demo` end to end (shortened), and the PII scan of everything it leaves behind.

Issue 11.5: the demo is coherent: its reports cover the days its data is in, its latency is
honest (under R11), and the commands it prints at the end run as printed.

Issue 7: run the demo, then scan every log line, artifact and run parameter — and the
demo's own output — for the patients' personnummer and names. The patients are read
back from the drops the demo wrote, so the scan knows exactly what must not appear.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from mvg_sync.rules.patient_id import normalise_one

DIGITS = re.compile(r"\D")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    cwd = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "MVG_DEMO_BOOKINGS": "600"}
    done = subprocess.run(
        [sys.executable, "-m", "mvg_sync.cli", "demo"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )
    return cwd / "data" / "demo", done


def said(done, step: str) -> list[str]:
    """The demo's own lines for one step (`[demo] <step> <text>`), text only."""
    prefix = f"[demo] {step:<10} "
    return [line[len(prefix):] for line in done.stdout.splitlines() if line.startswith(prefix)]


def report_period(done) -> tuple[date, date]:
    (line,) = said(done, "reports")
    found = re.search(r"for (\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})", line)
    assert found, line
    return date.fromisoformat(found[1]), date.fromisoformat(found[2])


def rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def patients(demo_root: Path) -> tuple[set[str], set[str]]:
    """Every personnummer (as typed and normalised, 12 and 10 digits) and name in the drops."""
    ids, names = set(), set()
    for drop in (demo_root / "landing").iterdir():
        for name in ("bokningar.csv", "bokningsunderlag.csv", "av_ombokningar.csv"):
            path = drop / name
            if not path.exists():
                continue
            raw = path.read_bytes()
            text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("cp1252")
            for row in csv.DictReader(text.splitlines(), delimiter=";"):
                typed = row.get("Personnummer") or ""
                normalised, _, _ = normalise_one(typed, drop_date(drop))
                for value in (typed.strip(), normalised):
                    if value:
                        ids.add(DIGITS.sub("", value))
                        ids.add(DIGITS.sub("", value)[-10:])
                if row.get("Namn"):
                    names.add(row["Namn"])
    return ids, names


def drop_date(drop: Path):
    from datetime import date

    stamp = drop.name[:8]
    return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))


def paged(read, page: int = 200) -> list:
    """Every object `read(limit=, offset=)` returns, page by page (the server caps a page)."""
    found, offset = [], 0
    while True:
        batch = read(limit=page, offset=offset)
        found += batch
        if len(batch) < page:
            return found
        offset += page


def prefect_texts() -> list[str]:
    """Every log message, artifact and flow-run parameter/name on the Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        texts = [log.message for log in paged(client.read_logs)]
        texts += [f"{a.key} {a.data} {a.description}" for a in paged(client.read_artifacts)]
        texts += [f"{r.name} {r.parameters} {r.state_name} {r.state and r.state.message}"
                  for r in paged(client.read_flow_runs)]
    return texts


def test_demo_tells_the_whole_story(demo_run):
    demo_root, done = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "held for approval" in out, "the truncated drop must trip the guard"
    assert "sha256 differs from the manifest" in out, "the corrupt drop must be rejected by name"
    assert "needs-primary-guardian" in out, "a child without guardian must be held (R12)"
    for name in ("eservice", "hsl_coverage", "tickets", "sync_health"):
        for ext in ("html", "xlsx", "csv"):
            assert (demo_root / "reports" / f"{name}.{ext}").stat().st_size > 0


def test_no_personnummer_or_name_in_logs_artifacts_parameters_or_output(demo_run):
    demo_root, done = demo_run
    ids, names = patients(demo_root)
    assert len(ids) > 100 and len(names) > 100, "the scan needs the demo's patients"
    texts = prefect_texts() + done.stdout.splitlines() + done.stderr.splitlines()
    assert len(texts) > 50, "nothing to scan: logs and artifacts did not reach the server"
    blob_digits = [DIGITS.sub("", t) for t in texts]
    leaked_ids = {i for i in ids if len(i) >= 10 and any(i in d for d in blob_digits)}
    leaked_names = {n for n in names if any(n in t for t in texts)}
    assert not leaked_ids, f"{len(leaked_ids)} patient ids leaked"
    assert not leaked_names, f"{len(leaked_names)} patient names leaked"


def test_demo_reports_cover_the_days_its_data_is_in(demo_run):
    demo_root, done = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    start, end = report_period(done)
    drops = sorted(p.name for p in (demo_root / "landing").iterdir())
    assert start <= drop_date(demo_root / "landing" / drops[-1]) <= end, "the period must hold today's drops"
    reports = demo_root / "reports"

    events = rows(reports / "eservice.csv")
    assert events, "no e-service event in the demo's period"
    assert all(start <= date.fromisoformat(e["registered_at"][:10]) <= end for e in events)

    coverage = rows(reports / "hsl_coverage.csv")
    assert coverage and all(start <= date.fromisoformat(r["date"]) <= end for r in coverage)
    failing = [r for r in coverage if r["compliant"] == "false"]
    # the story plants one R22 gap (a unit and profession without web slots on the next
    # weekday); the rest of the region is covered: not "70 of 74 fail" from a wrong period
    assert 1 <= len(failing) <= len(coverage) // 10, f"{len(failing)} of {len(coverage)} fail"

    tickets = rows(reports / "tickets.csv")
    assert {"issued", "pending"} <= {t["status"] for t in tickets}

    health = rows(reports / "sync_health.csv")
    assert len(health) > 6, "sync health holds more than the latency summary"


def test_demo_latency_is_honest_under_r11(demo_run):
    from mvg_sync.reports.sync_health import (
        R11_TARGET_S,
        local_day_bounds,
        open_state_readonly,
        sync_health,
    )

    demo_root, done = demo_run
    start, end = report_period(done)
    con = open_state_readonly(demo_root / "state")
    try:
        health = sync_health(con, start=local_day_bounds(start, end)[0], end=local_day_bounds(start, end)[1])
    finally:
        con.close()
    latency = health.latency
    assert latency["accepted"] > 100 and latency["clock_skewed"] == 0, latency
    # drops are synced within seconds of their extraction: back-dated drops read 1452 s
    assert latency["p95_s"] < R11_TARGET_S, latency
    assert health.frames["drops"].height > 0


def test_the_commands_the_demo_prints_run_as_printed(demo_run):
    from prefect.settings import PREFECT_API_URL

    demo_root, done = demo_run
    commands = said(done, "next")
    assert len(commands) >= 2 and any(c.endswith(" status") for c in commands), done.stdout[-2000:]
    newest = max(p.name for p in (demo_root / "landing").iterdir())
    elsewhere = demo_root.parent.parent / "elsewhere"
    elsewhere.mkdir()
    # a fresh shell: none of the demo's settings, only the Prefect server of this session
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MVG_", "CLINIC24_"))}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    for command in commands:
        ran = subprocess.run(["/bin/sh", "-c", command], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, f"{command}\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}"
        if command.endswith(" status"):  # the demo's state, not an empty default one
            assert newest in ran.stdout and "R12" in ran.stdout, ran.stdout[-2000:]
        executable = [w for w in shlex.split(command) if "=" not in w][0]
        assert Path(executable).is_absolute()
    assert not (elsewhere / "data").exists(), "a printed command fell back to the default folders"
