"""`mvg-sync report` in-process: all four reports written, fixed CSV columns, clear failure without data."""

from __future__ import annotations

import csv
import io
import re
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
    # owner-only, aggregates too (issue 14)
    for name in ("sync_health.csv", "tickets.csv", "eservice.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_report_counts_are_integers_in_csv_and_xlsx_and_tables_are_named(state_dir, tmp_path,
                                                                          monkeypatch):
    from openpyxl import load_workbook

    monkeypatch.setenv("MVG_STATE_DIR", str(state_dir))
    out = tmp_path / "out"
    assert main(["report", "--as-of", AS_OF.isoformat(), "--from", "2026-11-01",
                 "--to", "2026-11-25", "--out", str(out)]) == 0
    health = list(csv.DictReader(io.StringIO((out / "sync_health.csv").read_text("utf-8"))))
    counted = [r["value"] for r in health if r["measure"] in ("drops", "rows_quarantined", "accepted")]
    assert counted and all(v.isdigit() for v in counted), counted  # `4`, never `4.0`
    slots = [r["web_slots"] for r in csv.DictReader(io.StringIO((out / "hsl_coverage.csv").read_text()))]
    assert slots and all(v.isdigit() for v in slots)

    seen_counts = 0
    for name in ("eservice", "hsl_coverage", "tickets", "sync_health"):
        workbook = load_workbook(out / f"{name}.xlsx")
        for ws in workbook.worksheets:
            assert len(ws.tables) == 1, (name, ws.title)
            table = next(iter(ws.tables))
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table), table
            assert not re.fullmatch(r"(Frame|FastTable|Table)\d+", table), table
            header = [c.value for c in ws[1]]
            for row in ws.iter_rows(min_row=2):
                for label, cell in zip(header, row, strict=True):
                    assert ".000" not in cell.number_format, (name, ws.title, label)
                    if "andel" in str(label).lower():
                        assert cell.number_format == "0.0%", (name, ws.title, label)
                    elif isinstance(cell.value, int) and not isinstance(cell.value, bool):
                        assert cell.number_format in ("#,##0", "0"), (name, ws.title, label)
                        seen_counts += 1
    assert seen_counts > 50


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


def test_big_xlsx_sheets_take_the_fast_path_with_table_filter_frozen_header_and_dates(tmp_path):
    import re
    import zipfile
    from datetime import UTC, date, timedelta
    from xml.etree import ElementTree

    import polars as pl

    from mvg_sync.reports.model import Report, View
    from mvg_sync.reports.write import FAST_SHEET_ROWS, write_report

    n = FAST_SHEET_ROWS + 5
    start = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 local, just after the spring DST change
    frame = pl.DataFrame({
        "Text": ['=HYPERLINK("x","y")', " <b>&amp", None] + [f"r{i}" for i in range(n - 3)],
        "Dag": [date(2026, 1, 1) + timedelta(days=i % 40) for i in range(n)],
        "När": [start + timedelta(minutes=i) for i in range(n)],
        "Antal": list(range(n)),
        "Andel": [None, float("nan")] + [0.25] * (n - 2),
        "Flagga": [i % 2 == 0 for i in range(n)],
    })
    report = Report(name="big", title="T", intro="", views=(View("Stor", frame, percent_columns=("Andel",)),))
    path = write_report(report, tmp_path)[1]
    with zipfile.ZipFile(path) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        table = next(z.read(n_).decode() for n_ in z.namelist() if n_.startswith("xl/tables/"))
        styles = z.read("xl/styles.xml").decode()
    ElementTree.fromstring(sheet)  # well-formed despite '<', '&' in the data
    assert f'<dimension ref="A1:F{n + 1}"/>' in sheet
    assert 'ySplit="1"' in sheet and 'state="frozen"' in sheet
    assert f'ref="A1:F{n + 1}"' in table and f'<autoFilter ref="A1:F{n + 1}"/>' in table
    assert "<f>" not in sheet and "HYPERLINK" in sheet
    assert '<t xml:space="preserve"> &lt;b&gt;&amp;amp</t>' in sheet
    assert '<c r="A4"' not in sheet  # null -> no cell
    assert '<c r="E3"' not in sheet  # NaN -> no cell
    # 2026-03-29 01:30 UTC is 03:30 local (CEST): serial 46110 + 3.5/24
    cell = re.search(r'<c r="C2" s="(\d+)"><v>([0-9.]+)</v></c>', sheet)
    assert cell and abs(float(cell.group(2)) - (46110 + 3.5 / 24)) < 1e-9
    xfs = re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", styles).group(1)
    xf = re.findall(r"<xf [^>]*>", xfs)[int(cell.group(1))]
    fmt_id = re.search(r'numFmtId="(\d+)"', xf).group(1)
    assert f'numFmtId="{fmt_id}" formatCode="yyyy-mm-dd hh:mm"' in styles
    assert re.search(r'<c r="B2" s="\d+"><v>46023</v></c>', sheet)  # 2026-01-01
    assert '<c r="F2" t="b"><v>1</v></c>' in sheet


@pytest.mark.parametrize(
    ("date_from", "date_to", "hsl"),
    [
        ("2026-11-25", "2026-11-30", ("2026-11-26", "2026-11-30")),  # reaches today: from today
        ("2026-11-26", "2026-11-30", ("2026-11-26", "2026-11-30")),
        ("2026-11-18", "2026-11-25", ("2026-11-18", "2026-11-25")),  # wholly past: kept as asked
    ],
)
def test_r20_hsl_coverage_starts_where_the_slot_extract_does(date_from, date_to, hsl):
    """R20: a period running into today checks HSL coverage from today; its e-service part
    keeps every day asked for."""
    import argparse
    from datetime import date

    from mvg_sync.reports.cli import period_from_args

    args = argparse.Namespace(date_from=date_from, date_to=date_to, booked_from=None, booked_to=None)
    period = period_from_args(args, AS_OF)
    assert (period.registered_from, period.registered_to) == (date.fromisoformat(date_from), date.fromisoformat(date_to))
    assert (period.hsl_from, period.hsl_to) == tuple(date.fromisoformat(d) for d in hsl)
