"""Reconciliation compares the record with what Clinic24 returns (issue 4, item 5)."""

from datetime import UTC, datetime

import polars as pl

from mvg_sync.sync.reconcile import compare, seen_in_clinic24

T1 = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
T2 = datetime(2026, 12, 4, 8, 30, tzinfo=UTC)


def appointment(key, status, start):
    return {
        "resourceType": "Appointment",
        "identifier": [{"system": "urn:cosmic:gavleborg:booking", "value": key}],
        "status": status,
        "start": start,
        "participant": [{"actor": {"type": "Location", "identifier": {"value": "SE2321000198-HC0001"}}}],
    }


def test_seen_reads_key_status_start_and_unit_from_fhir():
    seen = seen_in_clinic24([appointment("b1", "booked", "2026-12-03T09:30:00+01:00")])
    assert seen.rows() == [("b1", "booked", T1, "SE2321000198-HC0001")]


def test_compare_names_every_kind_of_drift():
    record = pl.DataFrame(
        {"key": ["same", "gone", "cancelled_there", "moved"], "status": ["booked"] * 4, "start_at": [T1] * 4},
        schema_overrides={"start_at": pl.Datetime("us", "UTC")},
    )
    seen = seen_in_clinic24(
        [
            appointment("same", "booked", "2026-12-03T09:30:00+01:00"),
            appointment("cancelled_there", "cancelled", "2026-12-03T09:30:00+01:00"),
            appointment("moved", "booked", T2.isoformat()),
            appointment("stranger", "booked", "2026-12-03T09:30:00+01:00"),
        ]
    ).select("key", "seen_status", "seen_start_at")
    drift = compare(record, seen)
    assert drift.missing_in_clinic24 == ["gone"]
    assert drift.unknown_to_record == ["stranger"]
    assert drift.status_differs == ["cancelled_there"]
    assert drift.start_differs == ["moved"]
    assert drift.has_drift


def test_no_drift_when_clinic24_matches_the_record():
    record = pl.DataFrame(
        {"key": ["b1"], "status": ["booked"], "start_at": [T1]}, schema_overrides={"start_at": pl.Datetime("us", "UTC")}
    )
    seen = seen_in_clinic24([appointment("b1", "booked", "2026-12-03T09:30:00+01:00")]).select(
        "key", "seen_status", "seen_start_at"
    )
    assert not compare(record, seen).has_drift
