"""`mvg-sync report` in-process: all four reports written, fixed CSV columns, clear failure without data."""

from __future__ import annotations

import csv
import io
import stat
from datetime import datetime

import pytest

from mvg_sync.cli import main
from mvg_sync.generator import generate_region, write_drop
from mvg_sync.ingest import ingest_pending
from mvg_sync.timeutil import STOCKHOLM

AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)

EXPECTED_COLUMNS = {
    "eservice.csv": ["event_id", "event_type", "unit_hsa_id", "registered_at", "previous_start",
                     "new_start", "breaches"],
    "hsl_coverage.csv": ["unit_hsa_id", "date", "profession", "web_slots", "compliant"],
    "tickets.csv": ["basis_id", "unit_hsa_id", "status", "due_date", "issued_at", "reason"],
    "sync_health.csv": ["section", "key", "measure", "value"],
}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    landing, state = root / "landing", root / "state"
    landing.mkdir()
    write_drop(generate_region(seed=3, n_bookings=1500, as_of=AS_OF), landing)
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [d.outcome for d in report.drops] == ["accepted"]
    return state


def _header(path) -> list[str]:
    return next(csv.reader(io.StringIO(path.read_text("utf-8"))))


def test_report_writes_all_four_reports_with_the_csv_columns(state_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVG_STATE_DIR", str(state_dir))
    out = tmp_path / "out"
    code = main(["report", "--as-of", AS_OF.isoformat(), "--from", "2026-11-01",
                 "--to", "2026-11-25", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.rsplit("/", 1)[-1] for p in printed)
    assert names == sorted(f"{n}.{ext}" for n in ("eservice", "hsl_coverage", "tickets", "sync_health")
                           for ext in ("html", "xlsx", "csv"))
    for name, columns in EXPECTED_COLUMNS.items():
        assert _header(out / name)[: len(columns)] == columns, name
    statuses = {row["status"] for row in csv.DictReader(io.StringIO((out / "tickets.csv").read_text()))}
    assert statuses and statuses <= {"pending", "issued", "used", "revoked", "rejected"}
    # aggregates only: shared; report 1 names patients: owner-only
    assert stat.S_IMODE((out / "sync_health.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "tickets.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "eservice.csv").stat().st_mode) == 0o600


def test_report_default_period_is_yesterday(state_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVG_STATE_DIR", str(state_dir))
    monkeypatch.setenv("MVG_REPORT_DIR", str(tmp_path / "default"))
    assert main(["report", "--as-of", AS_OF.isoformat()]) == 0
    assert (tmp_path / "default" / "sync_health.html").exists()
    page = (tmp_path / "default" / "eservice.html").read_text("utf-8")
    assert "2026-11-25 – 2026-11-25" in page


def test_report_without_an_accepted_drop_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVG_STATE_DIR", str(tmp_path / "empty-state"))
    assert main(["report", "--as-of", AS_OF.isoformat(), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "no drop has been ingested yet" in err
    assert not (tmp_path / "o").exists()


def test_report_rejects_a_reversed_period(state_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVG_STATE_DIR", str(state_dir))
    code = main(["report", "--as-of", AS_OF.isoformat(), "--from", "2026-11-20", "--to", "2026-11-10",
                 "--out", str(tmp_path / "o")])
    assert code == 1
    assert "--from 2026-11-20 is after --to 2026-11-10" in capsys.readouterr().err
