"""Normalised snapshot contracts: strict columns and types, grain, allowed values, invariants."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from contracts.snapshots import SNAPSHOT_MODELS, SnapshotContractError, validate_snapshot
from mvg_sync.cosmic_columns import LAYOUT_BY_DATASET
from mvg_sync.generator.personnummer import luhn_check_digit
from mvg_sync.ingest.normalise import normalise
from mvg_sync.rules.patient_id import normalise_one
from tests import cosmic_drops as t


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


REFERENCE_DATE = date(2026, 11, 26)
PATIENT_DATASETS = ("bookings", "booking_bases", "events")


def _luhn_digit(nine: str) -> str:
    return str(luhn_check_digit(np.array([[int(c) for c in nine]]))[0])


def _with_patient(dataset: str, patient_id: str, kind: str) -> pl.DataFrame:
    return snapshot(dataset).with_columns(
        pl.lit(patient_id).alias("patient_id"), pl.lit(kind).alias("patient_id_kind")
    )


@pytest.mark.parametrize("dataset", PATIENT_DATASETS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("581124+3269", ("185811243269", "personnummer")),  # born 1858: `+` means 100+ years
        ("581184+3266", ("185811843266", "samordningsnummer")),
        ("17581124-3269", ("175811243269", "personnummer")),  # 12-digit form keeps its century
    ],
)
def test_r13_contract_accepts_what_the_normaliser_emits_for_old_centuries(dataset, raw, expected):
    patient_id, kind, error = normalise_one(raw, REFERENCE_DATE)
    assert (patient_id, kind, error) == (*expected, None)
    validate_snapshot(dataset, _with_patient(dataset, patient_id, kind))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    born=st.dates(min_value=date(1700, 1, 1), max_value=REFERENCE_DATE),
    serial=st.integers(min_value=0, max_value=999),
    coordination=st.booleans(),
    twelve_digits=st.booleans(),
)
def test_r13_every_id_the_normaliser_accepts_passes_the_contract(born, serial, coordination, twelve_digits):
    day = born.day + (60 if coordination else 0)
    nine = f"{born:%y%m}{day:02d}{serial:03d}"
    ten = nine + _luhn_digit(nine)
    if twelve_digits:
        raw = f"{born.year // 100:02d}{ten[:6]}-{ten[6:]}"
    else:
        age = REFERENCE_DATE.year - born.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (born.month, born.day))
        raw = f"{ten[:6]}{'+' if age >= 100 else '-'}{ten[6:]}"
    patient_id, kind, error = normalise_one(raw, REFERENCE_DATE)
    assume(error is None)  # a 10-digit form names at most 199 years back
    validate_snapshot("bookings", _with_patient("bookings", patient_id, kind))


@pytest.mark.parametrize(
    "patient_id",
    ["5811243269", "18581324-326", "185813243269", "185811003269", "185811323269", "18581124326X"],
)
def test_r13_contract_still_refuses_what_the_normaliser_never_emits(patient_id):
    with pytest.raises(SnapshotContractError, match="patient_id"):
        validate_snapshot("bookings", _with_patient("bookings", patient_id, "personnummer"))
