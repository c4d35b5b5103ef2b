"""R11 latency figures of a sync run (mvg_sync.sync.health)."""

from datetime import UTC, datetime, timedelta

import duckdb

from mvg_sync.store import outbox as store
from mvg_sync.sync import health

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_r11_latency_percentiles_leave_clock_skew_out():
    con = duckdb.connect()
    store.ensure_schema(con)
    for i, seconds in enumerate([30, 40, 50, 60, 600, -120]):
        con.execute(
            "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, content_hash, "
            "source_sequence, payload, target_status, status, last_outcome, extracted_at, created_at, settled_at) "
            "VALUES (?, 'p', 'Appointment', ?, 'create', 'h', 1, '{}', 'booked', 'done', 'accepted', ?, ?, ?)",
            [f"c{i}", f"b{i}", T0, T0, T0 + timedelta(seconds=seconds)],
        )
    figures = health.latency_since(con, T0 - timedelta(hours=1))
    assert figures["accepted"] == 5
    assert figures["clock_skewed"] == 1
    assert figures["p50_s"] == 50.0
    assert figures["max_s"] == 600.0
