"""Normalised snapshot contracts: strict columns and types, grain, allowed values, invariants."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from contracts.snapshots import SNAPSHOT_MODELS, SnapshotContractError, validate_snapshot
from mvg_sync.ingest import testing as t
from mvg_sync.ingest.columns import LAYOUT_BY_DATASET
from mvg_sync.ingest.normalise import normalise


def snapshot(dataset: str) -> pl.DataFrame:
    layout = LAYOUT_BY_DATASET[dataset]
    rows = t.default_files()[layout.file]
    raw = pl.DataFrame(rows, schema=dict.fromkeys(layout.headers, pl.String))
    result = normalise(raw, layout, date(2026, 11, 26))
    assert result.quarantine.height == 0
    return result.frame


@pytest.mark.parametrize("dataset", sorted(SNAPSHOT_MODELS))
def test_valid_snapshot_passes(dataset):
    validate_snapshot(dataset, snapshot(dataset))


@pytest.mark.parametrize(
    ("dataset", "change", "failing"),
    [
        ("bookings", pl.lit("rescheduled").alias("status"), "status"),
        ("bookings", pl.lit("Första besök").alias("visit_type"), "visit_type"),
        ("bookings", pl.lit("5811243269").alias("patient_id"), "patient_id"),
        ("bookings", pl.lit("kod").alias("patient_id_kind"), "patient_id_kind"),
        ("bookings", pl.lit("SE12").alias("unit_hsa_id"), "unit_hsa_id"),
        ("bookings", pl.col("start_at").dt.replace_time_zone(None), "start_at"),
        ("bookings", pl.lit(None, pl.String).alias("patient_name"), "patient_name"),
        ("bookings", pl.col("start_at").alias("end_at"), "end_after_start"),
        ("bookings", pl.lit(None, pl.Datetime("us", "UTC")).alias("start_at"), "times_unless_planned"),
        ("booking_bases", pl.lit("open").alias("status"), "status"),
        ("events", pl.lit("move").alias("event_type"), "event_type"),
        ("slots", pl.col("start_at").alias("end_at"), "end_after_start"),
        ("slots", pl.lit("taken").alias("status"), "status"),
        ("units", pl.lit("Tandvård").alias("care_level"), "care_level"),
        ("care_services", pl.lit(None, pl.Boolean).alias("patient_may_cancel"), "patient_may_cancel"),
    ],
)
def test_targeted_invalid_value_fails(dataset, change, failing):
    with pytest.raises(SnapshotContractError, match=failing):
        validate_snapshot(dataset, snapshot(dataset).with_columns(change))


def test_planned_booking_may_lack_times():
    frame = snapshot("bookings").with_columns(
        pl.lit("planned").alias("status"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("start_at"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("end_at"),
    )
    validate_snapshot("bookings", frame)


@pytest.mark.parametrize(("dataset", "key"), [("bookings", "booking_id"), ("events", "event_id"),
                                              ("booking_bases", "basis_id"), ("units", "unit_hsa_id")])
def test_duplicate_key_fails(dataset, key):
    frame = snapshot(dataset)
    duplicate = frame.head(1).with_columns(pl.col("source_row") + 100)
    with pytest.raises(SnapshotContractError, match=key):
        validate_snapshot(dataset, pl.concat([frame, duplicate]))


def test_slot_grain_is_slot_and_care_service():
    frame = snapshot("slots")
    duplicate = frame.head(1).with_columns(pl.col("source_row") + 100)
    with pytest.raises(SnapshotContractError):
        validate_snapshot("slots", pl.concat([frame, duplicate]))
    other = duplicate.with_columns(pl.lit("Annan|tjänst|läkare").alias("care_service"))
    validate_snapshot("slots", pl.concat([frame, other]))


def test_strict_extra_column_fails():
    with pytest.raises(SnapshotContractError, match="column_in_schema"):
        validate_snapshot("bookings", snapshot("bookings").with_columns(pl.lit(1).alias("patient_age")))
