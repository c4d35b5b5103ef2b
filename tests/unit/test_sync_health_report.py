"""Report 4 (sync health, R11 and R09) over a tiny state store built with the real schemas."""

from __future__ import annotations

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
from mvg_sync.state import connect
from mvg_sync.sync.store import ensure_schema

DAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
OUT_OF_PERIOD = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _outbox(con, change_id, kind, status, *, extracted, settled, outcome="accepted", reason=None,
            created=DAY, resource="Appointment"):
    con.execute(
        "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
        "source_sequence, payload, target_status, status, reason, attempts, last_outcome, extracted_at, "
        "created_at, settled_at) VALUES (?, 'p', ?, ?, ?, 'R06', 'h', 1, '{}', 'booked', ?, ?, 1, ?, ?, ?, ?)",
        [change_id, resource, change_id, kind, status, reason, outcome, extracted, created, settled],
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
    con.execute("INSERT INTO holds VALUES ('Appointment', 'K1', 'SE1', 'R12', 'needs primary guardian', ?)", [DAY])
    con.execute("INSERT INTO holds VALUES ('Appointment', 'K2', 'SE1', 'R12', 'needs primary guardian', ?)", [DAY])
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
        "resource_type": ["Appointment", "Appointment"], "change_kind": ["cancel", "create"],
        "status": ["dead", "done"], "changes": [1, 3]}))


def test_r09_quarantine_holds_dead_letters_departures_and_approvals(state):
    f = _health(state).frames
    assert f["quarantine"].select("file", "rule", "reason", "rows_quarantined", "drops").rows() == [
        ("bokningar.csv", "R13", "bad check digit", 3, 1)]
    assert f["holds"].select("rule", "reason", "held").rows() == [("R12", "needs primary guardian", 2)]
    assert f["dead_letters"].rows() == [("Appointment", "cancel", "422 unknown-location", 1)]
    assert f["unit_departures"].select("unit_hsa_id", "bookings").rows() == [("SE9", 1)]
    assert f["awaiting_approval"].select("extract_id", "cancels", "live").rows() == [("d2", 40, 100)]


def test_r11_csv_is_long_and_patient_free_and_report_is_shared(state):
    health = _health(state)
    csv = health_csv(health)
    assert csv.columns == ["section", "key", "measure", "value"]
    p95 = csv.filter((pl.col("section") == "latency") & (pl.col("measure") == "p95_s"))["value"].item()
    assert p95 == pytest.approx(552.0)
    assert csv.filter(pl.col("section") == "holds")["value"].to_list() == [2.0]
    report = build_sync_health_report(health)
    assert not report.holds_patient_data
    assert "Väntar på godkännande" in [v.name for v in report.views]


def test_r11_empty_store_without_sync_tables_reads_as_empty(tmp_path):
    connect(tmp_path).close()  # ingestion's tables only, no sync yet
    health = _health(tmp_path)
    assert health.latency["accepted"] == 0 and health.latency["p95_s"] is None
    assert health.frames["changes"].height == 0 and health.frames["holds"].height == 0
    assert build_sync_health_report(health).views[0].frame.height > 0
