"""Report 4 (sync health, R11, R09 and the R12 held list) over a tiny state store built with the real schemas."""

from __future__ import annotations

import re
import stat
import zipfile
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.reports.sync_health import (
    build_sync_health_report,
    health_csv,
    local_day_bounds,
    open_state_readonly,
    sync_health,
)
from mvg_sync.store.drops import connect
from mvg_sync.store.outbox import ensure_schema

DAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
OUT_OF_PERIOD = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _outbox(con, change_id, kind, status, *, extracted, settled, outcome="accepted", reason=None,
            created=DAY, resource="Appointment", unit=None, rule="R06"):
    con.execute(
        "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
        "source_sequence, payload, target_status, target_unit, status, reason, attempts, last_outcome, "
        "extracted_at, created_at, settled_at) "
        "VALUES (?, 'p', ?, ?, ?, ?, 'h', 1, '{}', 'booked', ?, ?, ?, 1, ?, ?, ?, ?)",
        [change_id, resource, change_id, kind, rule, unit, status, reason, outcome, extracted, created, settled],
    )


@pytest.fixture
def state(tmp_path):
    con = connect(tmp_path)
    ensure_schema(con)
    # drops: 2 accepted, 1 rejected in the period; 1 accepted outside it
    for eid, outcome, at in [("d1", "accepted", DAY), ("d2", "accepted", DAY), ("d3", "rejected", DAY),
                             ("d0", "accepted", OUT_OF_PERIOD)]:
        con.execute("INSERT INTO drops (extract_id, outcome, processed_at) VALUES (?, ?, ?)", [eid, outcome, at])
    con.execute("INSERT INTO sequence_gaps VALUES (4, 7, 2, ?)", [DAY])
    # R11 latencies 60, 120, 600 s accepted in the period; one outside; one dead letter
    for i, seconds in enumerate((60, 120, 600)):
        _outbox(con, f"c{i}", "create", "done", extracted=DAY, settled=DAY + timedelta(seconds=seconds))
    _outbox(con, "old", "update", "done", extracted=OUT_OF_PERIOD,
            settled=OUT_OF_PERIOD + timedelta(seconds=9000), created=OUT_OF_PERIOD)
    _outbox(con, "dead1", "cancel", "dead", extracted=DAY, settled=DAY, outcome="rejected",
            reason="422 unknown-location")
    for row in range(3):
        con.execute("INSERT INTO quarantine VALUES ('d1', 'bokningar.csv', ?, ?, 'Personnummer', 'R13', "
                    "'bad check digit', ?)", [row + 1, f"B{row}", DAY])
    # holds as the sync writes them: two R12 children at SE1, one R05 booking at SE0 (a unit that
    # sorts first), one rejected ticket basis (R18) at SE1
    con.execute("INSERT INTO holds VALUES ('Appointment', 'K1', 'SE1', 'R12', 'needs-primary-guardian', ?)", [DAY])
    con.execute("INSERT INTO holds VALUES ('Appointment', 'K2', 'SE1', 'R12', 'needs-primary-guardian', ?)", [DAY])
    con.execute("INSERT INTO holds VALUES ('Appointment', 'K5', 'SE0', 'R05', 'missing-role', ?)", [DAY])
    con.execute("INSERT INTO holds VALUES ('ServiceRequest', 'U1', 'SE1', 'R18', ?, ?)",
                ["R18: contact type 'Mottagningsbesök' contradicts digital care service "
                 "(expected 'Distansbesök - video')", DAY])
    # Clinic24 refused a visit itself (422 primary-guardian-missing): settled held under rule R12
    _outbox(con, "K3", "create", "held", extracted=DAY, settled=DAY, outcome="rejected",
            reason="R12 needs-primary-guardian", unit="SE2", rule="R12")
    _outbox(con, "K4", "update", "superseded", extracted=DAY, settled=DAY,
            reason="superseded by plan p2")
    con.execute("INSERT INTO unit_departures VALUES ('K9', 'SE9', ?)", [DAY])
    con.execute("INSERT INTO approvals VALUES ('d2', 'held', 40, 100, 'cancels 40 of 100', ?, NULL)", [DAY])
    con.close()
    return tmp_path


def _health(state_dir):
    start, end = local_day_bounds(date(2026, 11, 25), date(2026, 11, 25))
    con = open_state_readonly(state_dir)
    try:
        return sync_health(con, start=start, end=end)
    finally:
        con.close()


def test_r11_latency_percentiles_and_share_under_five_minutes_in_the_period(state):
    latency = _health(state).latency
    assert latency["accepted"] == 3
    assert latency["p50_s"] == 120.0
    assert latency["max_s"] == 600.0
    assert latency["p95_s"] == pytest.approx(552.0)  # linear between 120 and 600
    assert latency["share_under_5_min"] == pytest.approx(2 / 3, abs=1e-3)


def test_drops_gaps_and_changes_per_kind_count_only_the_period(state):
    frames = _health(state).frames
    assert_frame_equal(frames["drops"], pl.DataFrame({"outcome": ["accepted", "rejected"], "drops": [2, 1]}))
    assert frames["gaps"]["missing"].to_list() == [2]
    assert_frame_equal(frames["changes"], pl.DataFrame({
        "resource_type": ["Appointment"] * 4, "change_kind": ["cancel", "create", "create", "update"],
        "status": ["dead", "done", "held", "superseded"], "changes": [1, 3, 1, 1]}))


def test_r09_quarantine_holds_dead_letters_departures_and_approvals(state):
    f = _health(state).frames
    assert f["quarantine"].select("file", "rule", "reason", "rows_quarantined", "drops").rows() == [
        ("bokningar.csv", "R13", "bad check digit", 3, 1)]
    assert f["holds"].select("rule", "reason", "held").rows() == [
        ("R12", "needs-primary-guardian", 2), ("R05", "missing-role", 1),
        ("R18", "R18: contact type 'Mottagningsbesök' contradicts digital care service "
                "(expected 'Distansbesök - video')", 1)]
    assert f["dead_letters"].rows() == [("Appointment", "cancel", "422 unknown-location", 1)]
    assert f["unit_departures"].select("unit_hsa_id", "bookings").rows() == [("SE9", 1)]
    assert f["awaiting_approval"].select("extract_id", "cancels", "live").rows() == [("d2", 40, 100)]


def test_r11_csv_is_long_and_patient_free_and_report_is_shared(state):
    health = _health(state)
    csv = health_csv(health)
    assert csv.columns == ["section", "key", "measure", "value"]
    p95 = csv.filter((pl.col("section") == "latency") & (pl.col("measure") == "p95_s"))["value"].item()
    assert float(p95) == pytest.approx(552.0)
    # counts print as integers (`2`, never `2.0`)
    assert csv.filter(pl.col("section") == "holds")["value"].to_list() == ["2", "1", "1"]
    assert csv.filter(pl.col("section") == "held_by_unit").select("key", "value").rows() == [
        ("SE1/R12", "2"), ("SE2/R12", "1"), ("SE0/R05", "1"), ("SE1/R18", "1")]
    counts = csv.filter(pl.col("measure").is_in(["accepted", "drops", "changes", "held", "dead"]))
    assert counts.height > 5 and not counts["value"].str.contains(r"\.").any()
    # without the snapshots, ids only: the files stay shared
    report = build_sync_health_report(health)
    assert not report.holds_patient_data
    assert "Väntar på godkännande" in [v.name for v in report.views]


def test_r11_empty_store_without_sync_tables_reads_as_empty(tmp_path):
    connect(tmp_path).close()  # ingestion's tables only, no sync yet
    health = _health(tmp_path)
    assert health.latency["accepted"] == 0 and health.latency["p95_s"] is None
    assert health.frames["changes"].height == 0 and health.frames["holds"].height == 0
    assert build_sync_health_report(health).views[0].frame.height > 0


ENGLISH_WORDS = re.compile(
    r"\b(done|held|dead|pending|superseded|accepted|rejected|Appointment|ServiceRequest|create|"
    r"cancel|needs-primary-guardian|missing-role|contradicts|contact type|care service)\b")


def _datasets() -> dict[str, pl.DataFrame]:
    """The snapshot rows the held list joins: bookings K1–K5, basis U1, units SE0–SE2."""
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    bookings = pl.DataFrame({
        "booking_id": ["K1", "K2", "K3", "K4", "K5"],
        "patient_id": ["201801012384", "201905052383", "202002022389", "199001012380", "198506062385"],
        "patient_name": ["Ada Ettsson", "Bo Tvåsson", "Cid Tresson", "Dan Fyrsson", "Eva Femsson"],
        "care_service": ["Barnhälsa|distans video"] * 3 + ["Allmän"] * 2,
        "unit_hsa_id": ["SE1", "SE1", "SE2", "SE1", "SE0"],
        "start_at": [start + timedelta(hours=i) for i in (2, 1, 0, 3, 4)],
    })
    bases = pl.DataFrame({"basis_id": ["U1"], "patient_id": ["197001012382"], "patient_name": ["Fia Sexsson"],
                          "care_service": ["Allmän"], "unit_hsa_id": ["SE1"],
                          "monitoring_date": [date(2026, 12, 20)]})
    units = pl.DataFrame({"unit_hsa_id": ["SE0", "SE1", "SE2"],
                          "unit_name": ["Alfta hälsocentral", "Bollnäs hälsocentral", "Edsbyn hälsocentral"]})
    return {"bookings": bookings, "booking_bases": bases, "units": units}


def test_r12_held_bookings_are_listed_per_unit_first_with_booking_ids_and_patients(state):
    report = build_sync_health_report(_health(state), datasets=_datasets())
    views = {v.name: v.frame for v in report.views}
    listing = views["Spärrade bokningar"]
    assert listing.columns[:5] == ["Regel", "Orsak", "Enhet", "Typ", "ID"]
    assert listing.select("Regel", "Enhet", "ID").rows() == [
        ("R12", "Bollnäs hälsocentral", "K2"),  # same unit: earlier visit first
        ("R12", "Bollnäs hälsocentral", "K1"),
        ("R12", "Edsbyn hälsocentral", "K3"),  # held by Clinic24's answer (outbox), unit from the entry
        ("R05", "Alfta hälsocentral", "K5"),
        ("R18", "Bollnäs hälsocentral", "U1"),
    ]
    # the rule id stands in its own column, the reason beside it in Swedish
    assert set(listing.filter(pl.col("Regel") == "R12")["Orsak"]) == {"behöver primär vårdnadshavare"}
    assert listing["Orsak"][3] == "vårdtjänsten saknar roll i Clinic24"
    assert listing["Orsak"][4] == ("kontakttyp 'Mottagningsbesök' motsäger digital vårdtjänst "
                                   "(väntat 'Distansbesök - video')")
    assert listing["Typ"].to_list() == ["Bokning"] * 4 + ["Bokningsbiljett"]
    assert listing["Personnummer"][0] == "20190505-2383" and listing["Namn"][0] == "Bo Tvåsson"
    assert listing["Bevakningsdatum"][4] == date(2026, 12, 20)
    per_unit = views["Spärrade per enhet"]
    assert per_unit.select("Enhet", "Regel", "Antal").rows() == [
        ("Bollnäs hälsocentral", "R12", 2), ("Edsbyn hälsocentral", "R12", 1),
        ("Alfta hälsocentral", "R05", 1), ("Bollnäs hälsocentral", "R18", 1)]
    overview = dict(views["Översikt"].rows())
    assert overview["Spärrade: behöver primär vårdnadshavare (R12)"] == 3
    assert overview["Spärrade: övriga regler"] == 2
    # it names patients: owner-only files
    assert report.holds_patient_data


def test_held_list_files_are_owner_only_and_pseudonymised_has_no_personnummer(state, tmp_path):
    from mvg_sync.reports.control import write_reports

    report = build_sync_health_report(_health(state), datasets=_datasets())
    ids = _datasets()["bookings"]["patient_id"].to_list() + ["197001012382"]
    plain = write_reports([report], tmp_path / "plain")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in plain)
    html = (tmp_path / "plain" / "sync_health.html").read_text("utf-8")
    assert "20190505-2383" in html and "Bo Tvåsson" in html and "K2" in html

    pseudo = write_reports([report], tmp_path / "pseudo", pseudonymised=True)
    text = "".join(_file_text(p) for p in pseudo)
    assert not any(i in text or f"{i[:8]}-{i[8:]}" in text for i in ids)
    assert "sson" not in text
    assert "XXXXXXXX-XXXX" in text and "K2" in text and "R12" in text


def _file_text(path) -> str:
    if path.suffix != ".xlsx":
        return path.read_text("utf-8")
    with zipfile.ZipFile(path) as z:
        return "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))


def test_sync_health_page_and_workbook_say_statuses_and_reasons_in_swedish(state, tmp_path):
    from openpyxl import load_workbook

    from mvg_sync.reports.html import render_html
    from mvg_sync.reports.write import write_report

    report = build_sync_health_report(_health(state), datasets=_datasets())
    views = {v.name: v.frame for v in report.views}
    assert set(views["Ändringar per typ"]["Status"]) == {"Klar", "Spärrad", "Misslyckad", "Ersatt"}
    assert views["Misslyckade ändringar"]["Orsak"].to_list() == [
        "avvisad av Clinic24 (HTTP 422, unknown-location)"]
    assert views["Karantän"].select("Regel", "Orsak").rows() == [("R13", "fel kontrollsiffra")]
    assert set(views["Leveranser"]["Utfall"]) == {"Godkänd", "Avvisad"}
    page = render_html(report)
    # what a manager acts on comes before the operational charts
    assert page.index("<h2>Spärrade bokningar</h2>") < page.index("<h2>Diagram</h2>")
    # table cells and chart labels only: the page's own markup is English by nature
    cells = " ".join(re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", page))
    chart_text = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", page))
    assert cells and chart_text
    assert not ENGLISH_WORDS.search(cells), ENGLISH_WORDS.search(cells)
    assert not ENGLISH_WORDS.search(chart_text), ENGLISH_WORDS.search(chart_text)

    path = write_report(report, tmp_path)[1]
    workbook = load_workbook(path)
    values = [str(c.value) for ws in workbook.worksheets for row in ws.iter_rows() for c in row
              if isinstance(c.value, str)]
    assert values and not any(ENGLISH_WORDS.search(v) for v in values), \
        [v for v in values if ENGLISH_WORDS.search(v)]
