"""`mvg-sync demo` end to end (shortened), and the PII scan of everything it leaves behind.

Issue 7: run the demo, then scan every log line, artifact and run parameter — and the
demo's own output — for the patients' personnummer and names. The patients are read
back from the drops the demo wrote, so the scan knows exactly what must not appear.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
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


def prefect_texts() -> list[str]:
    """Every log message, artifact and flow-run parameter/name on the Prefect server."""
    from prefect.client.orchestration import get_client

    texts: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            logs = client.read_logs(limit=200, offset=offset)
            texts += [log.message for log in logs]
            if len(logs) < 200:
                break
            offset += 200
        texts += [f"{a.key} {a.data} {a.description}" for a in client.read_artifacts(limit=200)]
        texts += [f"{r.name} {r.parameters} {r.state_name} {r.state and r.state.message}" for r in client.read_flow_runs(limit=200)]
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
