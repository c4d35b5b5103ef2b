"""control_reports and hsl_coverage flows over a real ingested drop: files and patient-free artifacts."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.control_reports import control_reports
from flows.hsl_coverage import hsl_coverage
from mvg_sync.generator import generate_region, write_drop
from mvg_sync.ingest import ingest_pending
from mvg_sync.store.drops import load_snapshot
from mvg_sync.timeutil import STOCKHOLM

AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)
PERSONNUMMER = re.compile(r"(?<!\d)\d{12}(?!\d)|(?<!\d)\d{8}-\d{4}(?!\d)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("flows")
    landing, state = root / "landing", root / "state"
    landing.mkdir()
    region = generate_region(seed=5, n_bookings=1200, as_of=AS_OF)
    write_drop(region, landing)
    ingest_pending(landing, state, as_of=AS_OF)
    patient_ids = set(load_snapshot(state, "bookings")["patient_id"].to_list())
    assert len(patient_ids) > 100
    return state, root / "reports", patient_ids


def _artifacts(key: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def _assert_patient_free(text: str, patient_ids: set[str]) -> None:
    assert not PERSONNUMMER.search(text), "a personnummer-shaped value is in an artifact"
    found = [p for p in patient_ids if p[:8] in text and p[8:] in text]
    assert not found, f"{len(found)} patients' numbers are in an artifact"


def test_control_reports_flow_writes_four_reports_and_patient_free_artifacts(prefect_harness, folders, monkeypatch):
    state, reports, patient_ids = folders
    monkeypatch.setenv("MVG_STATE_DIR", str(state))
    monkeypatch.setenv("MVG_REPORT_DIR", str(reports))
    written = control_reports(period="last_week", as_of=AS_OF.isoformat())

    folder = reports / "last_week"
    names = sorted(p.rsplit("/", 1)[-1] for p in written["files"])
    assert names == sorted(f"{n}.{e}" for n in ("eservice", "hsl_coverage", "tickets", "sync_health")
                           for e in ("html", "xlsx", "csv"))
    assert all((folder / n).exists() for n in names)
    page = (folder / "eservice.html").read_text("utf-8")
    assert "2026-11-16 – 2026-11-22" in page  # the ISO week before Thursday 2026-11-26

    markdown = _artifacts("control-reports-last-week")
    table = _artifacts("control-reports-last-week-counts")
    assert markdown and table
    md_text = markdown[0].data
    assert "tickets.csv" in md_text and "Bokningsbiljetter" in md_text
    rows = table[0].data if isinstance(table[0].data, list) else json.loads(table[0].data)
    measures = {(r["report"], r["measure"]) for r in rows}
    assert ("tickets", "rows: Alla biljetter") in measures
    assert ("sync_health", "rows: Översikt") in measures
    assert all(r["value"] is not None for r in rows)
    _assert_patient_free(md_text + json.dumps(rows, ensure_ascii=False), patient_ids)


def test_hsl_coverage_flow_looks_fourteen_days_ahead(prefect_harness, folders, monkeypatch):
    state, reports, patient_ids = folders
    monkeypatch.setenv("MVG_STATE_DIR", str(state))
    monkeypatch.setenv("MVG_REPORT_DIR", str(reports))
    written = hsl_coverage(as_of=AS_OF.isoformat())

    folder = reports / "hsl_next_14_days"
    assert sorted(p.rsplit("/", 1)[-1] for p in written["files"]) == [
        "hsl_coverage.csv", "hsl_coverage.html", "hsl_coverage.xlsx"]
    lines = (folder / "hsl_coverage.csv").read_text("utf-8").splitlines()
    dates = sorted({line.split(",")[1] for line in lines[1:]})
    assert dates and dates[0] >= "2026-11-26" and dates[-1] <= "2026-12-09"
    markdown = _artifacts("hsl-coverage")[0].data
    assert "2026-11-26 – 2026-12-09" in markdown
    _assert_patient_free(markdown, patient_ids)
