"""Booking scope (R01-R06, R10 hash): which bookings become desired Clinic24 rows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.booking_scope import (
    DESIRED_COLUMNS,
    HASHED_COLUMNS,
    content_hash,
    desired_appointments,
    visit_kind,
    with_content_hash,
)

UNIT = "SE2321000016-1001"
OTHER_UNIT = "SE2321000016-2002"
VIDEO = "Primärvård|distans video|sjuksköterska|diabetes"
PHYSICAL_SERVICE = "Primärvård|mottagning|läkare"
NO_WEB = "Primärvård|mottagning|kurator"
NO_ROLE = "Primärvård|distans video|psykolog"

BOOKING_SCHEMA = {
    "booking_id": pl.String,
    "patient_id": pl.String,
    "patient_id_kind": pl.String,
    "patient_name": pl.String,
    "start_at": pl.Datetime("us", "UTC"),
    "end_at": pl.Datetime("us", "UTC"),
    "status": pl.String,
    "care_service": pl.String,
    "contact_type": pl.String,
    "visit_type": pl.String,
    "unit_hsa_id": pl.String,
    "unit_name": pl.String,
    "resource_hsa_id": pl.String,
    "resource_name": pl.String,
    "profession": pl.String,
    "booking_info": pl.String,
    "basis_id": pl.String,
    "cancel_reason": pl.String,
    "registered_at": pl.Datetime("us", "UTC"),
    "changed_at": pl.Datetime("us", "UTC"),
    "source_row": pl.Int64,
}

CATALOGUE = pl.DataFrame(
    {
        "care_service": [VIDEO, PHYSICAL_SERVICE, NO_WEB, NO_ROLE, "Dold kontakt"],
        "is_web_bookable": [True, True, False, True, True],
        "clinic24_role": ["sjukskoterska-diabetes", "lakare", "kurator", "  ", "dold"],
        "patient_may_rebook": [True, False, True, True, True],
        "patient_may_cancel": [True, True, True, True, True],
    }
)


def booking(booking_id: str, **overrides) -> dict:
    row = {
        "booking_id": booking_id,
        "patient_id": "195811243269",
        "patient_id_kind": "personnummer",
        "patient_name": "Testsson, Test",
        "start_at": datetime(2026, 12, 3, 8, 30, tzinfo=UTC),
        "end_at": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        "status": "booked",
        "care_service": VIDEO,
        "contact_type": "Distansbesök - video",
        "visit_type": "Återbesök",
        "unit_hsa_id": UNIT,
        "unit_name": "Storvik Din hälsocentral",
        "resource_hsa_id": "SE2321000016-9001",
        "resource_name": "Sköterska, Sara",
        "profession": "Sjuksköterska",
        "booking_info": "Ta med blodsockerdagbok",
        "basis_id": None,
        "cancel_reason": None,
        "registered_at": datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
        "changed_at": datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        "source_row": 1,
    }
    row.update(overrides)
    return row


def bookings(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BOOKING_SCHEMA)


def reasons(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        list(rows),
        schema={"booking_id": pl.String, "reason": pl.String, "rule": pl.String},
        orient="row",
    )


def scope(*rows: dict):
    return desired_appointments(bookings(*rows), CATALOGUE, {UNIT})


def test_r01_unit_not_in_clinic24_is_out_of_scope():
    result = scope(booking("1", unit_hsa_id=OTHER_UNIT), booking("2"))
    assert_frame_equal(result.out_of_scope, reasons(("1", "unit-not-in-clinic24", "R01")))
    assert result.desired.get_column("booking_id").to_list() == ["2"]


def test_r02_service_not_web_bookable_is_out_of_scope():
    result = scope(booking("1", care_service=NO_WEB))
    assert_frame_equal(result.out_of_scope, reasons(("1", "not-web-bookable", "R02")))
    assert result.desired.is_empty()


def test_r02_service_missing_from_catalogue_is_not_web_bookable():
    result = scope(booking("1", care_service="Primärvård|distans video|okänd"))
    assert_frame_equal(result.out_of_scope, reasons(("1", "care-service-not-in-catalogue", "R02")))
    assert result.desired.is_empty() and result.held.is_empty()


@pytest.mark.parametrize("name", ["Dold kontakt", " dold kontakt ", "Dold kontakt|distans video|x"])
def test_r03_hidden_contact_never_synced_even_if_catalogue_says_web_bookable(name):
    catalogue = pl.concat(
        [
            CATALOGUE.filter(pl.col("care_service") != "Dold kontakt"),
            CATALOGUE.head(1).with_columns(pl.lit(name).alias("care_service")),
        ]
    )
    result = desired_appointments(bookings(booking("1", care_service=name)), catalogue, {UNIT})
    assert_frame_equal(result.out_of_scope, reasons(("1", "hidden-contact", "R03")))
    assert result.desired.is_empty()


@pytest.mark.parametrize(
    ("care_service", "expected"),
    [
        ("Primärvård|distans video|sjuksköterska|diabetes", "digital"),
        ("Psykisk hälsa| distans video |läkare", "digital"),
        ("Primärvård|mottagning|läkare", "physical"),
        ("distans video|Primärvård|läkare", "physical"),
        ("Primärvård", "physical"),
        (None, "physical"),
    ],
)
def test_r04_visit_kind_digital_only_for_distans_video_second_segment(care_service, expected):
    frame = pl.DataFrame({"care_service": [care_service]}, schema={"care_service": pl.String})
    assert frame.select(visit_kind(pl.col("care_service"))).item() == expected


def test_r04_desired_row_carries_visit_kind():
    result = scope(booking("1"), booking("2", care_service=PHYSICAL_SERVICE))
    assert result.desired.select("booking_id", "visit_kind").rows() == [
        ("1", "digital"),
        ("2", "physical"),
    ]


@pytest.mark.parametrize("status", ["booked", "cancelled"])
def test_r05_web_bookable_service_without_role_is_held(status):
    result = scope(booking("1", care_service=NO_ROLE, status=status, cancel_reason="x"))
    assert_frame_equal(result.held, reasons(("1", "missing-role", "R05")))
    assert result.desired.is_empty() and result.out_of_scope.is_empty()


@pytest.mark.parametrize(
    ("status", "frame", "reason"),
    [
        ("planned", "out_of_scope", "not-yet-booked"),
        ("preliminary", "out_of_scope", "not-yet-booked"),
        ("booked", "desired", None),
        ("arrived", "out_of_scope", "visit-under-way"),
        ("in_progress", "out_of_scope", "visit-under-way"),
        ("done", "out_of_scope", "visit-under-way"),
        ("cancelled", "desired", None),
    ],
)
def test_r06_each_status(status, frame, reason):
    result = scope(booking("1", status=status, cancel_reason="Patienten avbokar"))
    if frame == "desired":
        assert result.desired.select("booking_id", "status").rows() == [("1", status)]
        assert result.out_of_scope.is_empty()
    else:
        assert_frame_equal(result.out_of_scope, reasons(("1", reason, "R06")))
        assert result.desired.is_empty()
    assert result.held.is_empty()


def test_r06_desired_columns_and_values_follow_design():
    result = scope(booking("1"))
    assert tuple(result.desired.columns) == DESIRED_COLUMNS
    row = result.desired.row(0, named=True)
    assert row["clinic24_role"] == "sjukskoterska-diabetes"
    assert (row["patient_may_rebook"], row["patient_may_cancel"]) == (True, True)
    assert row["cancel_reason"] is None


def test_r08_cancelled_keeps_cosmic_reason_or_gets_default():
    result = scope(
        booking("1", status="cancelled", cancel_reason="Patienten avbokar"),
        booking("2", status="cancelled", cancel_reason=None),
        booking("3", status="booked", cancel_reason="stale text"),
    )
    assert result.desired.select("booking_id", "cancel_reason").rows() == [
        ("1", "Patienten avbokar"),
        ("2", "Avbokad i Cosmic"),
        ("3", None),
    ]


def test_r01_r06_every_booking_lands_in_exactly_one_frame():
    rows = [
        booking("1"),
        booking("2", unit_hsa_id=OTHER_UNIT),
        booking("3", care_service="Dold kontakt"),
        booking("4", care_service=NO_WEB),
        booking("5", care_service=NO_ROLE),
        booking("6", status="planned"),
        booking("7", status="done"),
    ]
    result = scope(*rows)
    ids = (
        result.desired.get_column("booking_id").to_list()
        + result.held.get_column("booking_id").to_list()
        + result.out_of_scope.get_column("booking_id").to_list()
    )
    assert sorted(ids) == [str(i) for i in range(1, 8)]


def test_r02_duplicate_catalogue_entry_is_refused():
    with pytest.raises(ValueError, match="more than once"):
        desired_appointments(bookings(booking("1")), pl.concat([CATALOGUE, CATALOGUE]), {UNIT})


def test_r10_content_hash_is_sha256_of_a_documented_canonical_text():
    # The hash is stored between runs and processes, so it must be a fixed function of the
    # values: sha256 over version tag + length-prefixed fields, instants as epoch µs.
    start = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
    frame = pl.DataFrame(
        {"s": ["Åsa"], "t": [start], "b": [True], "n": [None]},
        schema={"s": pl.String, "t": pl.Datetime("us", "UTC"), "b": pl.Boolean, "n": pl.String},
    )
    micros = str(int(start.timestamp()) * 1_000_000)
    text = f"mvg-appointment-v1,4:Åsa,{len(micros)}:{micros},1:1,~"
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert content_hash(frame, ["s", "t", "b", "n"]).to_list() == [expected]


def test_r10_content_hash_ignores_time_zone_of_the_same_instant():
    frame = scope(booking("1")).desired
    local = frame.with_columns(pl.col("start_at").dt.convert_time_zone("Europe/Stockholm"))
    assert content_hash(local).to_list() == frame.get_column("content_hash").to_list()


@pytest.mark.parametrize("column", [c for c in HASHED_COLUMNS if c != "booking_id"])
def test_r10_content_hash_changes_with_every_desired_column(column):
    base = scope(booking("1")).desired
    dtype = base.schema[column]
    if dtype == pl.Boolean:
        changed = ~pl.col(column)
    elif isinstance(dtype, pl.Datetime):
        changed = pl.col(column).dt.offset_by("1m")
    else:
        changed = pl.coalesce(pl.col(column), pl.lit("")) + "x"
    other = with_content_hash(base.with_columns(changed.alias(column)))
    assert other.get_column("content_hash").item() != base.get_column("content_hash").item()


def test_r10_content_hash_keeps_null_empty_and_separators_apart():
    frame = pl.DataFrame(
        {"a": ["x,1:y", "x", None, ""], "b": ["z", "1:y,z", "", None]},
        schema={"a": pl.String, "b": pl.String},
    )
    hashes = content_hash(frame, ["a", "b"]).to_list()
    assert len(set(hashes)) == 4
