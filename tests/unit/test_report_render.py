"""Report files: HTML self-contained, XLSX sheets, CSV columns, permissions, pseudonymisation."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import zipfile
from datetime import UTC, date, datetime

import polars as pl
import pytest

from mvg_sync.reports import Chart, Report, View, pseudonymise, write_report
from mvg_sync.reports.control import eservice_and_hsl_reports, write_reports
from mvg_sync.reports.html import MAX_HTML_ROWS, render_html
from mvg_sync.reports.samples import sample_datasets

AS_OF = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def datasets():
    return sample_datasets(units=4, events=120, event_days=21, slot_days=21)


@pytest.fixture(scope="module")
def reports(datasets):
    return eservice_and_hsl_reports(
        datasets, as_of=AS_OF, registered_from=date(2026, 11, 2), registered_to=date(2026, 11, 22)
    )


def _xlsx_text(path) -> str:
    with zipfile.ZipFile(path) as z:
        return "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))


def _all_text(paths) -> str:
    return "".join(_xlsx_text(p) if p.suffix == ".xlsx" else p.read_text("utf-8") for p in paths)


def _csv_rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))


def test_r29_files_and_fixed_csv_columns(tmp_path, reports):
    paths = write_reports(reports, tmp_path)
    assert sorted(p.name for p in paths) == sorted([
        "eservice.html", "eservice.xlsx", "eservice.csv",
        "hsl_coverage.html", "hsl_coverage.xlsx", "hsl_coverage.csv"])
    header = (tmp_path / "eservice.csv").read_text("utf-8").splitlines()[0]
    assert header == "event_id,event_type,unit_hsa_id,registered_at,previous_start,new_start,breaches"
    header = (tmp_path / "hsl_coverage.csv").read_text("utf-8").splitlines()[0]
    assert header.startswith("unit_hsa_id,date,profession,web_slots,compliant")


def test_r29_csv_values_match_the_detail_frame(tmp_path, reports, datasets):
    write_reports(reports, tmp_path)
    rows = _csv_rows(tmp_path / "eservice.csv")
    expected = reports[0].csv["eservice"]
    assert [r["event_id"] for r in rows] == expected["event_id"].to_list()
    assert [r["breaches"] for r in rows] == expected["breaches"].to_list()
    assert {r["event_type"] for r in rows} <= {"cancel", "rebook"}
    assert all(re.fullmatch(r"(R2[4-7](;R2[4-7])*)?", r["breaches"]) for r in rows)
    assert any(r["breaches"] for r in rows) and any(not r["breaches"] for r in rows)
    # local time with offset, so a reader needs no knowledge of the time zone
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", rows[0]["registered_at"])


def test_r22_csv_compliant_is_lowercase_true_false_and_non_compliant_first(tmp_path, reports):
    write_reports(reports, tmp_path)
    values = [r["compliant"] for r in _csv_rows(tmp_path / "hsl_coverage.csv")]
    assert set(values) == {"true", "false"}
    assert values == sorted(values)  # "false" < "true": every non-compliant row comes first


def test_xlsx_one_sheet_per_view_header_frozen_autofilter_dates(tmp_path, reports):
    report = reports[0]
    path = write_report(report, tmp_path)[1]
    with zipfile.ZipFile(path) as z:
        workbook = z.read("xl/workbook.xml").decode()
        sheets = re.findall(r'<sheet name="([^"]+)"', workbook)
        assert sheets == [v.name for v in report.views]
        for i in range(1, len(sheets) + 1):
            sheet = z.read(f"xl/worksheets/sheet{i}.xml").decode()
            assert 'ySplit="1"' in sheet and 'state="frozen"' in sheet
        tables = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/tables/")]
        assert tables and all("<autoFilter" in t for t in tables)
        styles = z.read("xl/styles.xml").decode()
    assert 'formatCode="yyyy-mm-dd"' in styles and 'formatCode="yyyy-mm-dd hh:mm"' in styles
    # "När" (registered_at) is a number with a date style, not a text
    detail = report.views[1].frame
    first = detail["När"][0]
    serial = (first.replace(tzinfo=None) - datetime(1899, 12, 30)).total_seconds() / 86400  # noqa: DTZ001
    with zipfile.ZipFile(path) as z:
        sheet2 = z.read("xl/worksheets/sheet2.xml").decode()
    assert f"<v>{serial:.6f}"[:12] in sheet2


def test_xlsx_keeps_formula_like_text_as_text(tmp_path):
    frame = pl.DataFrame({"Bokningsinformation": ['=HYPERLINK("x","y")'], "Antal": [1]})
    report = Report(name="t", title="T", intro="", views=(View("Vy", frame),))
    path = write_report(report, tmp_path)[1]
    with zipfile.ZipFile(path) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        strings = z.read("xl/sharedStrings.xml").decode()
    assert "<f>" not in sheet
    assert "HYPERLINK" in strings


def test_every_report_is_owner_only_whatever_the_umask(tmp_path, reports):
    out = tmp_path / "rapporter"
    old_umask = os.umask(0o022)
    try:
        paths = write_reports(reports, out)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name  # aggregates too (issue 14)
    assert not list(out.glob(".*")), "temporary files left behind"


def test_pseudonymised_files_hold_no_personnummer_or_names(tmp_path, reports, datasets):
    ids = set(datasets["events"]["patient_id"])
    names = set(datasets["events"]["patient_name"])
    shown_ids = {f"{i[:8]}-{i[8:]}" for i in ids}

    plain = _all_text(write_reports(reports, tmp_path / "plain"))
    assert any(i in plain for i in shown_ids) and any(n in plain for n in names)

    paths = write_reports(reports, tmp_path / "pseudo", pseudonymised=True)
    text = _all_text(paths)
    assert not re.search(r"(?<![\d.])(19|20)\d{10}(?!\d)", text)
    assert not re.search(r"(?<![\d.])\d{8}-\d{4}(?!\d)", text)
    assert not any(i in text for i in ids | shown_ids)
    assert not any(n in text for n in names)
    assert "Testsson" not in text
    assert "XXXXXXXX-XXXX" in text
    assert "pseudonymiserad" in (tmp_path / "pseudo" / "eservice.html").read_text("utf-8")
    # still personal data (pseudonymous): owner-only all the same
    assert stat.S_IMODE((tmp_path / "pseudo" / "eservice.xlsx").stat().st_mode) == 0o600


def test_pseudonymise_drops_free_text_and_keeps_event_ids(reports):
    report = pseudonymise(reports[0])
    detail = report.views[1].frame
    assert "Namn" not in detail.columns and "Bokningsinformation" not in detail.columns
    assert set(detail["Personnummer"].drop_nulls()) == {"XXXXXXXX-XXXX"}
    assert detail["HändelseID"].to_list() == reports[0].views[1].frame["HändelseID"].to_list()


def test_html_is_self_contained_and_has_every_table_and_chart(reports):
    for report in reports:
        page = render_html(report)
        assert page.count("<table") == len(report.views)
        assert page.count('<svg class="chart"') == len(report.charts)
        assert "<script" not in page.lower()
        assert not re.search(r"https?:|(src|href)\s*=\s*[\"']?//|url\(", page, re.I)
        assert "default-src 'none'" in page
        for view in report.views:
            assert f"<h2>{view.name}</h2>" in page


def test_html_escapes_values_and_caps_long_tables():
    frame = pl.DataFrame({"Text": ["<b>&</b>"] * (MAX_HTML_ROWS + 5)})
    report = Report(name="t", title="<T>", intro="", views=(View("Vy", frame),))
    page = render_html(report)
    assert "<b>&</b>" not in page and "&lt;b&gt;&amp;&lt;/b&gt;" in page
    assert page.count("<tr>") == MAX_HTML_ROWS + 1  # header row + capped body rows
    assert f"Visar de första {MAX_HTML_ROWS} av {MAX_HTML_ROWS + 5}" in page


def test_chart_kinds_render_marks_and_empty_chart_says_so():
    frame = pl.DataFrame({"Vecka": ["2026-W47", "2026-W48"], "A": [1, 3], "B": [0.2, 0.5]})
    charts = (
        Chart("Staplar", frame, "Vecka", ("A",)),
        Chart("Staplade liggande", frame, "Vecka", ("A", "B"), stacked=True, horizontal=True),
        Chart("Linje", frame, "Vecka", ("B",), kind="line", percent=True),
        Chart("Tom", frame.clear(), "Vecka", ("A",)),
    )
    page = render_html(Report(name="t", title="T", intro="", views=(), charts=charts))
    svgs = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    assert len(svgs) == 4
    assert svgs[0].count('<rect class="mark"') == 2
    assert svgs[1].count('<rect class="mark"') == 4
    assert '<polyline class="mark"' in svgs[2]
    assert "100\u00a0%" in svgs[2] and "W48 – B: 50,0\u00a0%" in svgs[2]
    assert "Inga data i perioden." in svgs[3]


def test_report_objects_refuse_bad_names():
    frame = pl.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match="sheet name"):
        View("Fel/namn", frame)
    with pytest.raises(ValueError, match="sheet name"):
        View("x" * 32, frame)
    with pytest.raises(ValueError, match="lowercase"):
        Report(name="Eservice Rapport", title="", intro="", views=())
    with pytest.raises(ValueError, match="duplicate"):
        Report(name="r", title="", intro="", views=(View("V", frame), View("V", frame)))
    with pytest.raises(ValueError, match="lacks columns"):
        Chart("c", frame, "x", ("a",))


def test_r29_detail_views_put_breaches_unit_event_and_times_first_csv_keeps_spec_order(reports):
    detail = reports[0].views[1].frame
    assert detail.columns[:7] == ["Avvikelser", "Avvikelser (förklaring)", "Enhet", "Typ", "När",
                                  "Tidigare tid", "Ny tid"]
    assert set(detail["Typ"]) == {"Avbokad", "Ombokad"}
    summary = reports[0].views[2].frame
    assert summary.columns[:3] == ["Enhet", "Vecka", "Händelser med avvikelse"]
    assert reports[0].csv["eservice"].columns[:7] == [
        "event_id", "event_type", "unit_hsa_id", "registered_at", "previous_start", "new_start",
        "breaches"]


def test_xlsx_table_names_are_ascii_sheet_names_valid_for_excel(tmp_path):
    from openpyxl import load_workbook

    from mvg_sync.reports.write import table_name

    taken: set[str] = set()
    assert table_name("Täckning per dag", taken) == "Tackning_per_dag"
    assert table_name("Översikt", taken) == "Oversikt"
    assert table_name("Översikt", taken) == "Oversikt_2"  # unique in the workbook
    assert table_name("R24", taken) == "T_R24"  # a cell reference is no table name
    assert table_name("2026", taken) == "T_2026"
    assert table_name("Släppta kl 07", taken) == "Slappta_kl_07"

    frame = pl.DataFrame({"Antal": [11000, 3], "Andel": [0.5, 1.0], "Sekunder": [1.25, 2.0]})
    views = (View("Avbokningar", frame), View("Döda ändringar", frame.head(0)))
    path = write_report(Report(name="t", title="T", intro="", views=views), tmp_path)[1]
    workbook = load_workbook(path)
    assert [list(ws.tables) for ws in workbook.worksheets] == [["Avbokningar"], ["Doda_andringar"]]
    sheet = workbook.worksheets[0]
    assert sheet["A2"].value == 11000 and sheet["A2"].number_format == "#,##0"
    assert sheet["C2"].number_format == "#,##0.0"


def test_xlsx_big_sheet_counts_are_integers_and_its_table_is_named(tmp_path):
    from openpyxl import load_workbook

    from mvg_sync.reports.write import FAST_SHEET_ROWS

    n = FAST_SHEET_ROWS + 3
    frame = pl.DataFrame({"Sekvens": list(range(n)), "Antal": [7] * n, "Andel": [0.5] * n})
    view = View("Täckning per dag", frame, percent_columns=("Andel",), id_columns=("Sekvens",))
    path = write_report(Report(name="big", title="T", intro="", views=(view,)), tmp_path)[1]
    sheet = load_workbook(path).worksheets[0]
    assert list(sheet.tables) == ["Tackning_per_dag"]
    assert sheet.tables["Tackning_per_dag"].ref == f"A1:C{n + 1}"
    assert [sheet.cell(n + 1, c).number_format for c in (1, 2, 3)] == ["0", "#,##0", "0.0%"]
    assert sheet.cell(n + 1, 2).value == 7
