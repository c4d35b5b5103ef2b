"""Booking plan (R06-R10, R12, cancel guard): desired rows vs Clinic24's record -> changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.booking_plan import (
    apply_guardian_check,
    children_needing_guardian,
    guard_mass_cancellation,
    plan_booking_changes,
    previous_row_keys,
)
from mvg_sync.rules.booking_scope import HASHED_COLUMNS, desired_appointments, with_content_hash

UNIT = "SE2321000016-1001"
UNIT_B = "SE2321000016-2002"
VIDEO = "Primärvård|distans video|sjuksköterska|diabetes"
# A snapshot window in winter time (UTC+1): local midnight of 2026-11-19 is 23:00 UTC on the 18th.
WINDOW_FROM = date(2026, 11, 19)
WINDOW_TO = date(2027, 2, 24)

DESIRED_SCHEMA = {
    "booking_id": pl.String,
    "status": pl.String,
    "cancel_reason": pl.String,
    "start_at": pl.Datetime("us", "UTC"),
    "end_at": pl.Datetime("us", "UTC"),
    "care_service": pl.String,
    "clinic24_role": pl.String,
    "visit_kind": pl.String,
    "patient_id": pl.String,
    "patient_id_kind": pl.String,
    "patient_name": pl.String,
    "unit_hsa_id": pl.String,
    "resource_hsa_id": pl.String,
    "resource_name": pl.String,
    "booking_info": pl.String,
    "contact_type": pl.String,
    "visit_type": pl.String,
    "patient_may_rebook": pl.Boolean,
    "patient_may_cancel": pl.Boolean,
}
RECORD_SCHEMA = {
    "booking_id": pl.String,
    "status": pl.String,
    "start_at": pl.Datetime("us", "UTC"),
    "unit_hsa_id": pl.String,
    "content_hash": pl.String,
    "source_sequence": pl.Int64,
    "accepted_at": pl.Datetime("us", "UTC"),
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def row(booking_id: str, **overrides) -> dict:
    base = {
        "booking_id": booking_id,
        "status": "booked",
        "cancel_reason": None,
        "start_at": utc(2026, 12, 3, 8, 30),
        "end_at": utc(2026, 12, 3, 9, 0),
        "care_service": VIDEO,
        "clinic24_role": "sjukskoterska-diabetes",
        "visit_kind": "digital",
        "patient_id": "195811243269",
        "patient_id_kind": "personnummer",
        "patient_name": "Testsson, Test",
        "unit_hsa_id": UNIT,
        "resource_hsa_id": "SE2321000016-9001",
        "resource_name": "Sköterska, Sara",
        "booking_info": "Ta med blodsockerdagbok",
        "contact_type": "Distansbesök - video",
        "visit_type": "Återbesök",
        "patient_may_rebook": True,
        "patient_may_cancel": True,
    }
    base.update(overrides)
    return base


def desired(*rows: dict) -> pl.DataFrame:
    return with_content_hash(pl.DataFrame(list(rows), schema=DESIRED_SCHEMA))


def record_of(frame: pl.DataFrame) -> pl.DataFrame:
    """What Clinic24 holds after accepting `frame` (design.md clinic24_record)."""
    return frame.select(
        "booking_id", "status", "start_at", "unit_hsa_id", "content_hash"
    ).with_columns(
        pl.lit(1, dtype=pl.Int64).alias("source_sequence"),
        pl.lit(utc(2026, 11, 20, 8, 0)).alias("accepted_at"),
    )


def no_record() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)


def ids(*values: str) -> pl.Series:
    return pl.Series("booking_id", list(values), dtype=pl.String)


def plan(now: pl.DataFrame, record: pl.DataFrame, live=None, **kwargs):
    live = now.get_column("booking_id") if live is None else live
    kwargs.setdefault("departed_units", set())
    return plan_booking_changes(
        now, live, record, window_from=WINDOW_FROM, window_to=WINDOW_TO, **kwargs
    )


def kinds(result) -> list[tuple[str, str, str]]:
    return result.changes.select("booking_id", "change_kind", "rule").rows()


def empty_desired() -> pl.DataFrame:
    return desired()


# R06 ---------------------------------------------------------------------------------------


def test_r06_booked_without_record_is_created_with_the_desired_row():
    now = desired(row("1"))
    result = plan(now, no_record())
    assert kinds(result) == [("1", "create", "R06")]
    assert_frame_equal(result.changes.drop("change_kind", "rule"), now)


def test_r06_booked_again_after_cancelled_record_updates_the_same_identifier():
    before = desired(row("1", status="cancelled", cancel_reason="Patienten avbokar"))
    result = plan(desired(row("1")), record_of(before))
    assert kinds(result) == [("1", "update", "R06")]
    assert result.changes.get_column("status").to_list() == ["booked"]


# R07 ---------------------------------------------------------------------------------------


def test_r07_new_start_is_one_rebook_of_the_same_id_not_cancel_and_create():
    before = desired(row("1"))
    now = desired(row("1", start_at=utc(2026, 12, 4, 10, 0), end_at=utc(2026, 12, 4, 10, 30)))
    result = plan(now, record_of(before))
    assert kinds(result) == [("1", "rebook", "R07")]
    assert result.changes.get_column("start_at").to_list() == [utc(2026, 12, 4, 10, 0)]


def test_r07_new_unit_is_rebook():
    result = plan(desired(row("1", unit_hsa_id=UNIT_B)), record_of(desired(row("1"))))
    assert kinds(result) == [("1", "rebook", "R07")]


def test_r07_new_resource_is_rebook_when_previous_desired_is_known():
    before = desired(row("1"))
    now = desired(row("1", resource_hsa_id="SE2321000016-9002", resource_name="Läkare, Lars"))
    assert kinds(plan(now, record_of(before), previous_desired=before)) == [("1", "rebook", "R07")]
    # The record keeps no resource: without the previous rows it is still one update, never a cancel.
    assert kinds(plan(now, record_of(before))) == [("1", "update", "R10")]


def test_r07_accepted_ends_stand_in_for_the_previous_rows_and_the_plan_is_the_same():
    """Issue 12: the plan's cache gives R07 the accepted end and resource (`accepted_ends`)."""
    before = desired(row("1"), row("2"), row("3"))
    now = desired(
        row("1", end_at=utc(2026, 12, 3, 9, 15)),  # end only: rebook
        row("2", resource_hsa_id="SE2321000016-9002", resource_name="Läkare, Lars"),  # resource: rebook
        row("3", booking_info="Ny information"),  # neither: update
    )
    ends = before.select("booking_id", "end_at", "resource_hsa_id")
    from_ends = plan(now, record_of(before), accepted_ends=ends)
    assert kinds(from_ends) == [("1", "rebook", "R07"), ("2", "rebook", "R07"), ("3", "update", "R10")]
    assert_frame_equal(from_ends.changes, plan(now, record_of(before), previous_desired=before).changes)
    # both given (the cache for some keys, payloads for the rest): the same again
    halves = plan(now, record_of(before), previous_desired=before.filter(pl.col("booking_id") == "1"),
                  accepted_ends=ends.filter(pl.col("booking_id") != "1"))
    assert_frame_equal(halves.changes, from_ends.changes)


# R08 ---------------------------------------------------------------------------------------


def test_r08_cancel_by_status_carries_cosmic_reason():
    before = desired(row("1"))
    now = desired(row("1", status="cancelled", cancel_reason="Patienten avbokar"))
    result = plan(now, record_of(before))
    assert kinds(result) == [("1", "cancel", "R08")]
    assert result.changes.get_column("cancel_reason").to_list() == ["Patienten avbokar"]


def test_r08_no_blind_cancel_for_a_booking_clinic24_never_had():
    now = desired(row("1", status="cancelled", cancel_reason="Patienten avbokar"))
    assert plan(now, no_record()).changes.is_empty()


def test_r08_already_cancelled_in_clinic24_sends_nothing_even_if_reason_changes():
    before = desired(row("1", status="cancelled", cancel_reason="Patienten avbokar"))
    now = desired(row("1", status="cancelled", cancel_reason="Felaktig registrering"))
    assert plan(now, record_of(before)).changes.is_empty()


def test_r08_vanished_inside_window_is_cancelled_with_reason():
    before = desired(row("1"), row("2"))
    result = plan(desired(row("2")), record_of(before))
    assert kinds(result) == [("1", "cancel", "R08")]
    changed = result.changes.row(0, named=True)
    assert changed["status"] == "cancelled"
    assert changed["cancel_reason"] == "Bokningen borttagen i Cosmic"
    assert changed["start_at"] == utc(2026, 12, 3, 8, 30)


@pytest.mark.parametrize(
    ("start_at", "cancelled"),
    [
        # 00:30 local on window_from is 23:30 UTC the day before: inside the window.
        (utc(2026, 11, 18, 23, 30), True),
        # 23:30 local the day before window_from: history.
        (utc(2026, 11, 18, 22, 30), False),
        (utc(2026, 11, 10, 9, 0), False),
        # 23:59 local on window_to is inside; 00:30 local the day after is not.
        (utc(2027, 2, 24, 22, 59), True),
        (utc(2027, 2, 24, 23, 30), False),
    ],
)
def test_r08_vanish_window_edges_in_local_time(start_at, cancelled):
    before = desired(row("1", start_at=start_at, end_at=start_at.replace(hour=23, minute=59)))
    result = plan(empty_desired(), record_of(before))
    assert kinds(result) == ([("1", "cancel", "R08")] if cancelled else [])


def test_r08_vanish_cancel_is_the_previous_desired_row_when_known():
    before = desired(row("1"))
    result = plan(empty_desired(), record_of(before), previous_desired=before)
    expected = with_content_hash(
        before.with_columns(
            pl.lit("cancelled").alias("status"),
            pl.lit("Bokningen borttagen i Cosmic").alias("cancel_reason"),
        )
    )
    assert kinds(result) == [("1", "cancel", "R08")]
    assert_frame_equal(result.changes.drop("change_kind", "rule"), expected)


def test_r08_vanish_cancel_without_previous_row_carries_record_columns_only():
    before = desired(row("1"))
    changed = plan(empty_desired(), record_of(before)).changes.row(0, named=True)
    assert (changed["unit_hsa_id"], changed["patient_id"], changed["care_service"]) == (
        UNIT,
        None,
        None,
    )
    assert changed["content_hash"] != before.get_column("content_hash").item()


def test_r08_cancelled_record_that_vanished_sends_nothing():
    before = desired(row("1", status="cancelled", cancel_reason="Patienten avbokar"))
    assert plan(empty_desired(), record_of(before)).changes.is_empty()


# R08 amended: moved beyond the window (cancel/rebook log) ------------------------------------

# After WINDOW_TO (2027-02-24): the snapshot cannot show the booking any more.
BEYOND = utc(2027, 3, 10, 9, 0)
EVENT_SCHEMA = {
    "event_id": pl.String,
    "registered_at": pl.Datetime("us", "UTC"),
    "event_type": pl.String,
    "booking_id": pl.String,
    "new_start": pl.Datetime("us", "UTC"),
    "reason": pl.String,
}


def log(*events: tuple) -> pl.DataFrame:
    """Cancel/rebook log rows: (event_id, registered_at, event_type, booking_id, new_start, reason)."""
    return pl.DataFrame(list(events), schema=EVENT_SCHEMA, orient="row")


def rebooked(booking_id: str, new_start, *, event_id: str = "40000001", at=None) -> tuple:
    return (event_id, at or utc(2026, 11, 25, 10, 0), "rebook", booking_id, new_start,
            "Patienten ombokar")


def cancelled_event(booking_id: str, *, event_id: str = "40000002", at=None) -> tuple:
    return (event_id, at or utc(2026, 11, 25, 11, 0), "cancel", booking_id, None,
            "Patienten avbokar via e-tjänst")


def test_r08_vanished_with_ombokad_beyond_window_is_moved_to_nytid_not_cancelled():
    before = desired(row("1"), row("2"))
    result = plan(desired(row("2")), record_of(before), previous_desired=before,
                  events=log(rebooked("1", BEYOND)))
    assert kinds(result) == [("1", "rebook", "R08")]
    moved = result.changes.drop("change_kind", "rule")
    # NyTid, the same 30 minutes, every other field as Clinic24 has it.
    expected = with_content_hash(
        before.filter(pl.col("booking_id") == "1").with_columns(
            pl.lit(BEYOND).alias("start_at"), pl.lit(utc(2027, 3, 10, 9, 30)).alias("end_at")
        )
    )
    assert_frame_equal(moved, expected)
    assert result.held.is_empty()


def test_r08_move_keeps_the_elapsed_length_across_a_dst_change():
    # 45 minutes in winter time, moved to the morning after the spring-forward night.
    before = desired(row("1", start_at=utc(2026, 12, 3, 8, 30), end_at=utc(2026, 12, 3, 9, 15)))
    new_start = utc(2027, 3, 28, 0, 30)  # 01:30 CET; the end falls after 02:00 -> 03:00
    result = plan(empty_desired(), record_of(before), previous_desired=before,
                  events=log(rebooked("1", new_start)))
    changed = result.changes.row(0, named=True)
    assert (changed["start_at"], changed["end_at"]) == (new_start, utc(2027, 3, 28, 1, 15))


def test_r08_a_move_clinic24_already_has_sends_nothing():
    before = desired(row("1", start_at=BEYOND, end_at=utc(2027, 3, 10, 9, 30)))
    result = plan(empty_desired(), record_of(before), previous_desired=before,
                  events=log(rebooked("1", BEYOND)))
    assert result.changes.is_empty()
    assert result.held.is_empty()


def test_r08_ombokad_to_a_time_inside_the_window_that_vanished_is_still_cancelled():
    before = desired(row("1"))
    inside = utc(2027, 2, 24, 22, 59)  # 23:59 local on window_to
    result = plan(empty_desired(), record_of(before), previous_desired=before,
                  events=log(rebooked("1", inside)))
    assert kinds(result) == [("1", "cancel", "R08")]


def test_r08_the_latest_log_event_decides():
    before = desired(row("1"), row("2"))
    events = log(
        # 1: cancelled, then rebooked beyond the window (later registration) -> moved
        cancelled_event("1", event_id="40000001", at=utc(2026, 11, 20, 8, 0)),
        rebooked("1", BEYOND, event_id="40000002", at=utc(2026, 11, 21, 8, 0)),
        # 2: rebooked beyond the window, then cancelled -> the vanish cancels it
        rebooked("2", BEYOND, event_id="40000003", at=utc(2026, 11, 20, 8, 0)),
        cancelled_event("2", event_id="40000004", at=utc(2026, 11, 21, 8, 0)),
    )
    result = plan(empty_desired(), record_of(before), previous_desired=before, events=events)
    assert kinds(result) == [("1", "rebook", "R08"), ("2", "cancel", "R08")]


def test_r08_a_moved_booking_later_cancelled_in_cosmic_is_cancelled_with_the_log_reason():
    moved = desired(row("1", start_at=BEYOND, end_at=utc(2027, 3, 10, 9, 30)))
    events = log(rebooked("1", BEYOND, event_id="40000001"), cancelled_event("1", event_id="40000002"))
    result = plan(empty_desired(), record_of(moved), previous_desired=moved, events=events)
    assert kinds(result) == [("1", "cancel", "R08")]
    assert result.changes.get_column("cancel_reason").to_list() == ["Patienten avbokar via e-tjänst"]
    # Without a cancel event a booking starting beyond the window is left alone, as before.
    assert plan(empty_desired(), record_of(moved), events=log(rebooked("1", BEYOND))).changes.is_empty()


def test_r08_a_move_without_the_accepted_row_is_held_never_cancelled():
    before = desired(row("1"))
    result = plan(empty_desired(), record_of(before), events=log(rebooked("1", BEYOND)))
    assert result.changes.is_empty()
    assert result.held.rows() == [("1", "moved-beyond-window-without-accepted-row", "R08")]


def test_r08_a_live_booking_ignores_the_log():
    before = desired(row("1"))
    now = desired(row("1", booking_info="Ny information"))
    result = plan(now, record_of(before), previous_desired=before, events=log(rebooked("1", BEYOND)))
    assert kinds(result) == [("1", "update", "R10")]


def test_r07_r08_previous_row_keys_are_the_changed_and_the_gone_from_the_window_start():
    record = record_of(
        desired(
            row("1"),  # unchanged
            row("2"),  # changed -> R07/R10 compares with its previous row
            row("3"),  # gone, in the window
            row("4", start_at=utc(2026, 11, 1, 9, 0), end_at=utc(2026, 11, 1, 9, 30)),  # history
            row("5", unit_hsa_id=UNIT_B),  # gone, but its unit left Clinic24
            row("6", start_at=BEYOND, end_at=utc(2027, 3, 10, 9, 30)),  # gone, beyond the window
        )
    )
    now = desired(row("1"), row("2", end_at=utc(2026, 12, 3, 9, 15)), row("7"))
    keys = previous_row_keys(now, record, window_from=WINDOW_FROM, departed_units={UNIT_B})
    assert keys.to_list() == ["2", "3", "6"]


# R09 ---------------------------------------------------------------------------------------

CATALOGUE = pl.DataFrame(
    {
        "care_service": [VIDEO, "Primärvård|mottagning|kurator", "Dold kontakt"],
        "is_web_bookable": [True, False, True],
        "clinic24_role": ["sjukskoterska-diabetes", "kurator", None],
        "patient_may_rebook": [True, True, True],
        "patient_may_cancel": [True, True, True],
    }
)


_DESIRED_ONLY = ("clinic24_role", "visit_kind", "patient_may_rebook", "patient_may_cancel")


def bookings(*rows: dict) -> pl.DataFrame:
    """Normalised bookings (design.md) carrying the same values as desired-style `row`s."""
    extra = {
        "unit_name": "Storvik",
        "profession": "Sjuksköterska",
        "basis_id": None,
        "registered_at": utc(2026, 11, 1),
        "changed_at": utc(2026, 11, 2),
        "source_row": 1,
    }
    records = [{**{k: v for k, v in r.items() if k not in _DESIRED_ONLY}, **extra} for r in rows]
    return pl.DataFrame(records, infer_schema_length=None).with_columns(
        pl.col("basis_id").cast(pl.String), pl.col("cancel_reason").cast(pl.String)
    )


def plan_from_bookings(snapshot: pl.DataFrame, record: pl.DataFrame, **kwargs):
    scope = desired_appointments(snapshot, CATALOGUE, {UNIT, UNIT_B})
    return scope, plan(
        scope.desired,
        record,
        live=snapshot.get_column("booking_id"),
        out_of_scope=scope.out_of_scope,
        **kwargs,
    )


@pytest.mark.parametrize("care_service", ["Dold kontakt", "Primärvård|mottagning|kurator"])
def test_r09_scope_exit_by_care_service_is_cancelled(care_service):
    before = desired(row("1"))
    _, result = plan_from_bookings(
        bookings(row("1", care_service=care_service)), record_of(before), previous_desired=before
    )
    assert kinds(result) == [("1", "cancel", "R09")]
    changed = result.changes.row(0, named=True)
    assert changed["cancel_reason"] == "Vårdtjänsten synkas inte längre till Min vård"
    # The cancel is the row Clinic24 knows (with its role), not the out-of-scope service.
    assert (changed["care_service"], changed["clinic24_role"]) == (VIDEO, "sjukskoterska-diabetes")


def test_r09_scope_exit_is_not_detected_without_out_of_scope():
    before = desired(row("1"))
    result = plan(empty_desired(), record_of(before), live=ids("1"))
    assert result.changes.is_empty()


def test_r09_scope_entry_is_created():
    snapshot = bookings(row("1"))
    _, result = plan_from_bookings(snapshot, no_record())
    assert kinds(result) == [("1", "create", "R06")]


def test_r09_unit_left_clinic24_sends_nothing_and_is_listed():
    before = desired(row("1"), row("2", unit_hsa_id=UNIT_B))
    result = plan(
        desired(row("2", unit_hsa_id=UNIT_B)),
        record_of(before),
        live=ids("1", "2"),
        departed_units={"SE2321000016-1001"},
    )
    assert result.changes.is_empty()
    assert_frame_equal(
        result.unit_left,
        pl.DataFrame(
            {
                "booking_id": ["1"],
                "unit_hsa_id": [UNIT],
                "start_at": [utc(2026, 12, 3, 8, 30)],
                "reason": ["unit-left-clinic24"],
                "rule": ["R09"],
            },
            schema_overrides={"start_at": pl.Datetime("us", "UTC")},
        ),
    )


def test_r09_unit_left_also_covers_vanished_bookings():
    before = desired(row("1"))
    result = plan(empty_desired(), record_of(before), departed_units={UNIT})
    assert result.changes.is_empty()
    assert result.unit_left.get_column("booking_id").to_list() == ["1"]


@pytest.mark.parametrize("status", ["arrived", "in_progress", "done"])
def test_r06_r09_visit_under_way_is_neither_cancelled_nor_updated(status):
    before = desired(row("1"))
    _, result = plan_from_bookings(
        bookings(row("1", status=status, booking_info="changed")), record_of(before)
    )
    assert result.changes.is_empty()


def test_r05_r09_held_booking_keeps_what_clinic24_has():
    before = desired(row("1"))
    catalogue = CATALOGUE.with_columns(pl.lit(None, dtype=pl.String).alias("clinic24_role"))
    snapshot = bookings(row("1"))
    scope = desired_appointments(snapshot, catalogue, {UNIT})
    result = plan(scope.desired, record_of(before), live=ids("1"), out_of_scope=scope.out_of_scope)
    assert scope.held.get_column("rule").to_list() == ["R05"]
    assert result.changes.is_empty()


# R10 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("booking_info", "Ny information"), ("visit_type", "Nybesök"), ("contact_type", "Telefon")],
)
def test_r10_other_visible_change_is_update(column, value):
    before = desired(row("1"))
    result = plan(desired(row("1", **{column: value})), record_of(before))
    assert kinds(result) == [("1", "update", "R10")]


def test_r10_unchanged_booking_sends_nothing():
    before = desired(row("1"), row("2", status="cancelled", cancel_reason="x"))
    result = plan(before, record_of(before))
    assert result.changes.is_empty() and result.unit_left.is_empty()


def test_r06_r10_changes_have_design_columns():
    result = plan(desired(row("1")), no_record())
    assert result.changes.columns == [
        "change_kind",
        "booking_id",
        "rule",
        *HASHED_COLUMNS[1:],
        "content_hash",
    ]


def test_r08_naive_record_times_are_refused():
    record = record_of(desired(row("1"))).with_columns(
        pl.col("start_at").dt.replace_time_zone(None)
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(empty_desired(), record)


# R12 ---------------------------------------------------------------------------------------

VISIT = utc(2026, 12, 3, 8, 30)  # 09:30 local, 2026-12-03


@pytest.mark.parametrize(
    ("patient_id", "needs_check"),
    [
        ("201412041234", True),  # 12th birthday the day after the visit: 11
        ("201412031234", True),  # 12th birthday on the visit date: 12
        ("201312041234", True),  # 13th birthday the day after the visit: still 12
        ("201312031234", False),  # 13 on the visit date
        ("201312021234", False),  # 13th birthday the day before the visit
        ("202612011234", True),  # a baby: 0
        ("195811243269", False),
    ],
)
def test_r12_child_age_on_the_visit_date(patient_id, needs_check):
    changes = plan(desired(row("1", patient_id=patient_id, start_at=VISIT)), no_record()).changes
    assert children_needing_guardian(changes).get_column("booking_id").to_list() == (
        ["1"] if needs_check else []
    )


def test_r12_age_counts_on_the_local_visit_date():
    # 00:30 local on the 13th birthday is still the day before in UTC.
    start = utc(2026, 12, 2, 23, 30)
    changes = plan(
        desired(row("1", patient_id="201312031234", start_at=start, end_at=utc(2026, 12, 3, 0))),
        no_record(),
    ).changes
    assert children_needing_guardian(changes).is_empty()


def test_r12_samordningsnummer_child_is_checked():
    # Born 2016-05-10: day 10 + 60 = 70.
    changes = plan(
        desired(row("1", patient_id="201605701234", patient_id_kind="samordningsnummer")),
        no_record(),
    ).changes
    assert children_needing_guardian(changes).select("booking_id", "age_on_visit").rows() == [
        ("1", 10)
    ]


def test_r12_physical_visits_and_cancels_need_no_guardian():
    child = "201605101234"
    before = desired(row("2", patient_id=child))
    now = desired(
        row("1", patient_id=child, visit_kind="physical"),
        row("2", patient_id=child, status="cancelled", cancel_reason="x"),
    )
    changes = plan(now, record_of(before)).changes
    assert sorted(changes.get_column("change_kind").to_list()) == ["cancel", "create"]
    assert children_needing_guardian(changes).is_empty()


def test_r12_apply_guardian_check_holds_children_without_primary_guardian():
    now = desired(
        row("1", patient_id="201605101234"),
        row("2", patient_id="201707071234"),
        row("3", patient_id="201808081234"),
        row("4"),
    )
    changes = plan(now, no_record()).changes
    answers = pl.DataFrame(
        {"patient_id": ["201605101234", "201707071234"], "has_primary_guardian": [True, False]}
    )
    to_push, held = apply_guardian_check(changes, answers)
    assert to_push.get_column("booking_id").to_list() == ["1", "4"]
    assert_frame_equal(
        held,
        pl.DataFrame(
            {
                "booking_id": ["2", "3"],
                "reason": ["needs-primary-guardian"] * 2,
                "rule": ["R12"] * 2,
            }
        ),
    )


# Mass-cancellation guard (protects R08/R09 cancels) --------------------------------------


def cancels(n: int) -> pl.DataFrame:
    return pl.DataFrame({"change_kind": ["cancel"] * n + ["create"] * 5})


@pytest.mark.parametrize(
    ("n", "live", "hold"),
    [
        (51, 1000, True),  # above 5 % and above the floor
        (50, 1000, False),  # exactly 5 %: not more than the share
        (21, 100, True),  # above the floor and the share
        (20, 100, False),  # exactly the floor: not more than it
        (30, 10_000, False),  # above the floor, below the share
    ],
)
def test_r08_guard_mass_cancellation_thresholds(n, live, hold):
    decision = guard_mass_cancellation(cancels(n), live, max_share=0.05, floor=20)
    assert (decision.hold, decision.cancels, decision.live_synced) == (hold, n, live)
    assert decision.reason.startswith("held" if hold else "passed")


def test_r08_guard_refuses_nonsense_settings():
    with pytest.raises(ValueError):
        guard_mass_cancellation(cancels(1), 10, max_share=1.5, floor=20)


# Content hash (R10; issue 12 item 3) ---------------------------------------------------------


def test_r10_content_hash_values_equal_the_stored_hashlib_form():
    """A state written before the vectorised hash holds these values: nothing is re-pushed."""
    import hashlib

    from mvg_sync.rules.booking_scope import canonical_text, content_hash

    frame = pl.DataFrame(
        [row("1"), row("2", booking_info=None, patient_name="Öberg, Åsa", resource_name="")],
        schema=DESIRED_SCHEMA,
    )
    expected = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in canonical_text(frame)]
    assert content_hash(frame).to_list() == expected
    assert len(set(expected)) == 2


def test_r10_known_hashes_are_reused_for_unchanged_rows_only():
    from mvg_sync.rules.booking_scope import hash_cache_rows

    known = hash_cache_rows(desired(row("1"), row("2")).with_columns(pl.Series("content_hash", ["known-1", "known-2"])))
    now = pl.DataFrame([row("2", booking_info="ändrad"), row("1"), row("3")], schema=DESIRED_SCHEMA)
    hashed = with_content_hash(now, known)
    fresh = with_content_hash(now)
    assert hashed.get_column("booking_id").to_list() == ["2", "1", "3"]
    # Row 1 is unchanged: its known hash is taken as is (not digested again); 2 changed, 3 is new.
    assert hashed.get_column("content_hash").to_list() == [
        fresh.item(0, "content_hash"), "known-1", fresh.item(2, "content_hash")
    ]
    assert_frame_equal(with_content_hash(now, hash_cache_rows(desired(row("1"), row("2")))), fresh)
    # A null and an empty text are different content.
    blank = pl.DataFrame([row("1", booking_info="")], schema=DESIRED_SCHEMA)
    assert with_content_hash(blank, known).item(0, "content_hash") != "known-1"
