"""Booking-ticket rules R14-R19: due dates, eligibility, rejections, lifecycle, idempotency."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.tickets import (
    CHANGES_SCHEMA,
    PENDING_SCHEMA,
    REJECTED_SCHEMA,
    REPORT_SCHEMA,
    TicketPlan,
    local_date,
    plan_tickets,
    ticket_content_hash,
    ticket_due_date,
)

STHLM = ZoneInfo("Europe/Stockholm")
DIGITAL = "Primärvård|distans video|sjuksköterska|diabetes"
PHYSICAL = "Primärvård|mottagning|läkare|allmänmedicin"
NOT_WEB = "Primärvård|mottagning|läkare|intyg"
NO_ROLE = "Primärvård|mottagning|fysioterapeut|rygg"
HIDDEN = "Dold kontakt"
PRIMARY = "SE2321000233-PC01"
SPECIALIST = "SE2321000233-SC01"
UNKNOWN_LEVEL = "SE2321000233-XX01"
OUTSIDE = "SE2321000233-NO01"
PATIENT_ID = "191212121212"
PATIENT_NAME = "Tolvan Tolvansson"

BASIS_SCHEMA: dict[str, Any] = {
    "basis_id": pl.String,
    "patient_id": pl.String,
    "patient_id_kind": pl.String,
    "patient_name": pl.String,
    "care_service": pl.String,
    "contact_type": pl.String,
    "visit_type": pl.String,
    "unit_hsa_id": pl.String,
    "unit_name": pl.String,
    "monitoring_date": pl.Date,
    "status": pl.String,
    "booking_id": pl.String,
    "booked_start_at": pl.Datetime("us", "UTC"),
    "referral_id": pl.String,
    "is_acute": pl.Boolean,
    "registered_at": pl.Datetime("us", "UTC"),
    "changed_at": pl.Datetime("us", "UTC"),
    "source_row": pl.Int64,
}
RECORD_SCHEMA: dict[str, Any] = {
    "basis_id": pl.String,
    "status": pl.String,
    "content_hash": pl.String,
    "source_sequence": pl.Int64,
    "accepted_at": pl.Datetime("us", "UTC"),
}
BOOKING_SCHEMA: dict[str, Any] = {
    "booking_id": pl.String,
    "basis_id": pl.String,
    "status": pl.String,
    "booking_info": pl.String,
}
CARE_SERVICES = pl.DataFrame(
    {
        "care_service": [DIGITAL, PHYSICAL, NOT_WEB, NO_ROLE, HIDDEN],
        "is_web_bookable": [True, True, False, True, True],
        "clinic24_role": ["nurse", "doctor", "doctor", None, "doctor"],
        "patient_may_rebook": [True] * 5,
        "patient_may_cancel": [True] * 5,
    }
)
UNITS = pl.DataFrame(
    {
        "unit_hsa_id": [PRIMARY, SPECIALIST, OUTSIDE],
        "unit_name": ["HC Norr", "Diabetesmottagningen", "HC Söder"],
        "unit_type": ["Hälsocentral", "Specialistmottagning", "Hälsocentral"],
        "care_level": ["Primärvård", "Specialistvård", "Primärvård"],
        "is_public": [True, True, True],
    }
)
CLINIC24_UNITS = frozenset({PRIMARY, SPECIALIST, UNKNOWN_LEVEL})


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=STHLM)  # type: ignore[misc]


def basis(basis_id: str = "B1", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "basis_id": basis_id,
        "patient_id": PATIENT_ID,
        "patient_id_kind": "personnummer",
        "patient_name": PATIENT_NAME,
        "care_service": DIGITAL,
        "contact_type": "Distansbesök - video",
        "visit_type": "Återbesök",
        "unit_hsa_id": PRIMARY,
        "unit_name": "HC Norr",
        "monitoring_date": date(2026, 7, 1),
        "status": "planned",
        "booking_id": None,
        "booked_start_at": None,
        "referral_id": None,
        "is_acute": False,
        "registered_at": datetime(2026, 1, 5, 9, tzinfo=UTC),
        "changed_at": datetime(2026, 1, 5, 9, tzinfo=UTC),
        "source_row": 1,
    }
    row.update(overrides)
    return row


def bases(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BASIS_SCHEMA)


def record(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=RECORD_SCHEMA)


def bookings(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BOOKING_SCHEMA)


def plan(
    frame: pl.DataFrame,
    as_of: datetime,
    ticket_record: pl.DataFrame | None = None,
    booking_frame: pl.DataFrame | None = None,
) -> TicketPlan:
    return plan_tickets(
        frame,
        booking_frame if booking_frame is not None else bookings(),
        CARE_SERVICES,
        UNITS,
        CLINIC24_UNITS,
        ticket_record if ticket_record is not None else record(),
        as_of=as_of,
    )


def accept(result: TicketPlan, accepted_at: datetime, previous: pl.DataFrame) -> pl.DataFrame:
    """What the push would write into the record once Clinic24 accepted every change."""
    accepted = result.changes.select(
        "basis_id",
        "status",
        "content_hash",
        pl.lit(7, dtype=pl.Int64).alias("source_sequence"),
        pl.lit(accepted_at.astimezone(UTC), dtype=pl.Datetime("us", "UTC")).alias("accepted_at"),
    )
    kept = previous.filter(~pl.col("basis_id").is_in(accepted["basis_id"]))
    return pl.concat([kept, accepted]).sort("basis_id")


def kinds(result: TicketPlan) -> dict[str, str]:
    return dict(zip(result.changes["basis_id"], result.changes["change_kind"], strict=True))


def active(basis_id: str = "B1", accepted_at: datetime | None = None) -> dict[str, Any]:
    return {
        "basis_id": basis_id,
        "status": "active",
        "content_hash": "h",
        "source_sequence": 3,
        "accepted_at": accepted_at or datetime(2026, 6, 2, 6, 5, tzinfo=UTC),
    }


# R15: due date -------------------------------------------------------------------------------


def test_r15_due_date_is_monitoring_date_minus_thirty_calendar_days() -> None:
    frame = pl.DataFrame(
        {
            "monitoring_date": [
                date(2026, 4, 28),
                date(2026, 1, 15),
                date(2028, 3, 30),
                date(2026, 11, 24),
                None,
            ]
        },
        schema={"monitoring_date": pl.Date},
    )
    result = frame.select(ticket_due_date(pl.col("monitoring_date")).alias("due_date"))
    expected = pl.DataFrame(
        {
            "due_date": [
                date(2026, 3, 29),
                date(2025, 12, 16),
                date(2028, 2, 29),
                date(2026, 10, 25),
                None,
            ]
        },
        schema={"due_date": pl.Date},
    )
    assert_frame_equal(result, expected)


@pytest.mark.parametrize(
    ("days_ahead", "expected_kind"),
    [(0, "issue"), (1, "issue"), (29, "issue"), (30, "issue"), (31, None), (45, None)],
)
def test_r15_thirty_days_or_less_issued_at_once_more_waits(
    days_ahead: int, expected_kind: str | None
) -> None:
    as_of = local(2026, 6, 10, 8, 0)
    monitoring = date(2026, 6, 10) + timedelta(days=days_ahead)
    result = plan(bases(basis(monitoring_date=monitoring)), as_of)
    assert kinds(result) == ({"B1": expected_kind} if expected_kind else {})
    if expected_kind is None:
        expected = pl.DataFrame(
            {
                "basis_id": ["B1"],
                "unit_hsa_id": [PRIMARY],
                "due_date": [monitoring - timedelta(days=30)],
            },
            schema=PENDING_SCHEMA,
        )
        assert_frame_equal(result.pending, expected)
    else:
        assert result.pending.is_empty()


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        (local(2026, 7, 1, 23, 59, 59), False),  # the evening before the due day
        (local(2026, 7, 2, 0, 0, 0), True),  # the due day's first second
        (local(2026, 7, 2, 23, 59, 59), True),
        (local(2026, 7, 3, 7, 0, 0), True),  # the day after (29 days ahead)
    ],
)
def test_r15_due_day_itself_starts_at_local_midnight(as_of: datetime, due: bool) -> None:
    result = plan(bases(basis(monitoring_date=date(2026, 8, 1))), as_of)
    assert kinds(result) == ({"B1": "issue"} if due else {})
    assert result.pending.height == (0 if due else 1)


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        (datetime(2026, 3, 28, 23, 59, tzinfo=timezone(timedelta(hours=1))), False),
        # 00:30 CET on the spring-forward day is still 2026-03-28 in UTC.
        (datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1))), True),
        # 03:30 CEST, after the clocks jumped from 02:00 to 03:00.
        (datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2))), True),
        (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), False),
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), True),
    ],
)
def test_r15_due_day_on_spring_dst_change(as_of: datetime, due: bool) -> None:
    result = plan(bases(basis(monitoring_date=date(2026, 4, 28))), as_of)
    assert kinds(result) == ({"B1": "issue"} if due else {})
    if due:
        assert result.changes["issue_date"].to_list() == [date(2026, 3, 29)]


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        (datetime(2026, 10, 24, 23, 59, tzinfo=timezone(timedelta(hours=2))), False),
        (datetime(2026, 10, 25, 0, 30, tzinfo=timezone(timedelta(hours=2))), True),
        # 02:30 happens twice on the fall-back day; both are the due day.
        (datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=STHLM), True),
        (datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=STHLM), True),
        (datetime(2026, 10, 25, 23, 30, tzinfo=timezone(timedelta(hours=1))), True),
        (datetime(2026, 10, 24, 21, 59, tzinfo=UTC), False),
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), True),
    ],
)
def test_r15_due_day_on_autumn_dst_change(as_of: datetime, due: bool) -> None:
    result = plan(bases(basis(monitoring_date=date(2026, 11, 24))), as_of)
    assert kinds(result) == ({"B1": "issue"} if due else {})


def test_r15_utc_late_evening_is_already_the_next_local_day() -> None:
    as_of = datetime(2026, 6, 10, 22, 30, tzinfo=UTC)  # 00:30 on 11 June in Stockholm
    result = plan(bases(basis(monitoring_date=date(2026, 7, 11))), as_of)
    assert kinds(result) == {"B1": "issue"}
    assert result.changes["issue_date"].to_list() == [date(2026, 6, 11)]
    assert result.changes["authored_at"].to_list() == [datetime(2026, 6, 10, 22, 30, tzinfo=UTC)]


def test_r15_local_late_evening_is_not_yet_the_next_day() -> None:
    # 23:30 in Stockholm; in an offset far west the same instant reads as the afternoon.
    for as_of in (
        local(2026, 6, 10, 23, 30),
        datetime(2026, 6, 10, 16, 30, tzinfo=timezone(timedelta(hours=-5))),
    ):
        result = plan(bases(basis(monitoring_date=date(2026, 7, 11))), as_of)
        assert kinds(result) == {}
        assert result.pending["due_date"].to_list() == [date(2026, 6, 11)]


def test_r15_an_offset_whose_own_date_lags_uses_the_stockholm_date() -> None:
    as_of = datetime(2026, 6, 10, 19, 30, tzinfo=timezone(timedelta(hours=-5)))  # 02:30 local 11th
    assert local_date(as_of) == date(2026, 6, 11)
    result = plan(bases(basis(monitoring_date=date(2026, 7, 11))), as_of)
    assert kinds(result) == {"B1": "issue"}


def test_r15_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(bases(basis()), datetime(2026, 6, 10, 8, 0))  # noqa: DTZ001


def test_r15_monitoring_date_passed_is_rejected_but_today_is_issued() -> None:
    frame = bases(
        basis("B1", monitoring_date=date(2026, 6, 9)),
        basis("B2", monitoring_date=date(2026, 6, 10)),
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert kinds(result) == {"B2": "issue"}
    expected = pl.DataFrame(
        {
            "basis_id": ["B1"],
            "unit_hsa_id": [PRIMARY],
            "rule": ["R15"],
            "reason": ["monitoring date has passed"],
        },
        schema=REJECTED_SCHEMA,
    )
    assert_frame_equal(result.rejected, expected)


# R14: eligibility ----------------------------------------------------------------------------


def test_r14_issue_change_carries_the_desired_ticket() -> None:
    as_of = local(2026, 6, 10, 8, 15)
    result = plan(bases(basis(care_service=PHYSICAL, contact_type="Mottagningsbesök")), as_of)
    row = {
        "change_kind": "issue",
        "rule": "R14",
        "basis_id": "B1",
        "status": "active",
        "care_service": PHYSICAL,
        "clinic24_role": "doctor",
        "patient_id": PATIENT_ID,
        "patient_id_kind": "personnummer",
        "patient_name": PATIENT_NAME,
        "unit_hsa_id": PRIMARY,
        "issue_date": date(2026, 6, 10),
        "monitoring_date": date(2026, 7, 1),
        "authored_at": datetime(2026, 6, 10, 6, 15, tzinfo=UTC),
        "contact_type": "Mottagningsbesök",
        "visit_type": "Återbesök",
        "referral_id": None,
    }
    row["content_hash"] = ticket_content_hash(row)
    assert_frame_equal(result.changes, pl.DataFrame([row], schema=CHANGES_SCHEMA))
    expected_report = pl.DataFrame(
        {
            "basis_id": ["B1"],
            "unit_hsa_id": [PRIMARY],
            "status": ["issued"],
            "due_date": [date(2026, 6, 1)],
            "issued_at": [datetime(2026, 6, 10, 6, 15, tzinfo=UTC)],
            "reason": [None],
        },
        schema=REPORT_SCHEMA,
    )
    assert_frame_equal(result.report, expected_report)


def test_r14_r01_r03_only_planned_unbooked_web_bases_at_clinic24_units() -> None:
    frame = bases(
        basis("OK"),
        basis("BOOKED", status="booked", booking_id="K1"),
        basis("CLOSED", status="closed"),
        basis("REMOVED", status="removed"),
        basis("HAS_TIME", booked_start_at=datetime(2026, 6, 20, 8, tzinfo=UTC)),
        basis("NO_DATE", monitoring_date=None),
        basis("NOT_WEB", care_service=NOT_WEB, contact_type="Mottagningsbesök"),
        basis("UNKNOWN_SERVICE", care_service="Primärvård|mottagning|läkare|okänd"),
        basis("HIDDEN", care_service=HIDDEN, contact_type="Mottagningsbesök"),
        basis("NOT_IN_CLINIC24", unit_hsa_id=OUTSIDE),
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert kinds(result) == {"OK": "issue"}
    assert result.pending.is_empty()
    assert result.rejected.is_empty()
    assert result.report["basis_id"].to_list() == ["OK"]


def test_r14_empty_snapshot_gives_empty_typed_frames() -> None:
    result = plan(bases(), local(2026, 6, 10, 8, 0))
    assert_frame_equal(result.changes, pl.DataFrame(schema=CHANGES_SCHEMA))
    assert_frame_equal(result.pending, pl.DataFrame(schema=PENDING_SCHEMA))
    assert_frame_equal(result.rejected, pl.DataFrame(schema=REJECTED_SCHEMA))
    assert_frame_equal(result.report, pl.DataFrame(schema=REPORT_SCHEMA))


def test_r05_web_service_without_role_is_rejected() -> None:
    frame = bases(basis(care_service=NO_ROLE, contact_type="Mottagningsbesök"))
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert result.changes.is_empty()
    assert result.rejected.select("rule", "reason").rows() == [
        ("R05", "care service has no Clinic24 role")
    ]


# R17: referral at specialist-care units ------------------------------------------------------


def test_r17_specialist_care_without_referral_is_rejected_with_reason() -> None:
    frame = bases(
        basis("B1", unit_hsa_id=SPECIALIST),
        basis("B2", unit_hsa_id=SPECIALIST, referral_id="  "),
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert result.changes.is_empty()
    expected = pl.DataFrame(
        {
            "basis_id": ["B1", "B2"],
            "unit_hsa_id": [SPECIALIST, SPECIALIST],
            "rule": ["R17", "R17"],
            "reason": ["specialist-care unit without referral"] * 2,
        },
        schema=REJECTED_SCHEMA,
    )
    assert_frame_equal(result.rejected, expected)
    expected_report = pl.DataFrame(
        {
            "basis_id": ["B1", "B2"],
            "unit_hsa_id": [SPECIALIST, SPECIALIST],
            "status": ["rejected", "rejected"],
            "due_date": [date(2026, 6, 1)] * 2,
            "issued_at": [None, None],
            "reason": ["R17: specialist-care unit without referral"] * 2,
        },
        schema=REPORT_SCHEMA,
    )
    assert_frame_equal(result.report, expected_report)


def test_r17_specialist_care_with_referral_is_issued_with_it() -> None:
    result = plan(
        bases(basis(unit_hsa_id=SPECIALIST, referral_id="REM-42")), local(2026, 6, 10, 8, 0)
    )
    assert kinds(result) == {"B1": "issue"}
    assert result.changes["referral_id"].to_list() == ["REM-42"]


def test_r17_primary_care_needs_no_referral() -> None:
    result = plan(bases(basis(unit_hsa_id=PRIMARY)), local(2026, 6, 10, 8, 0))
    assert kinds(result) == {"B1": "issue"}
    assert result.rejected.is_empty()


def test_r17_unit_missing_from_unit_extract_needs_a_referral() -> None:
    frame = bases(
        basis("B1", unit_hsa_id=UNKNOWN_LEVEL),
        basis("B2", unit_hsa_id=UNKNOWN_LEVEL, referral_id="REM-7"),
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert kinds(result) == {"B2": "issue"}
    assert result.rejected.select("basis_id", "rule").rows() == [("B1", "R17")]


def test_r17_rejected_before_due_and_reason_holds_no_patient_data() -> None:
    frame = bases(basis(unit_hsa_id=SPECIALIST, monitoring_date=date(2026, 12, 1)))
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert result.pending.is_empty()
    assert result.report["status"].to_list() == ["rejected"]
    text = " ".join(result.rejected["reason"].to_list() + result.report["reason"].to_list())
    assert PATIENT_ID not in text
    assert PATIENT_NAME not in text
    assert "Tolvan" not in text


# R18: contact type and visit type ------------------------------------------------------------


@pytest.mark.parametrize(
    ("care_service", "contact_type", "reason"),
    [
        (
            DIGITAL,
            "Mottagningsbesök",
            "contact type 'Mottagningsbesök' contradicts digital care service "
            "(expected 'Distansbesök - video')",
        ),
        (
            PHYSICAL,
            "Distansbesök - video",
            "contact type 'Distansbesök - video' contradicts physical care service "
            "(expected 'Mottagningsbesök')",
        ),
        (
            PHYSICAL,
            None,
            "contact type '' contradicts physical care service (expected 'Mottagningsbesök')",
        ),
    ],
)
def test_r18_contact_type_contradicting_care_service_blocks_the_ticket(
    care_service: str, contact_type: str | None, reason: str
) -> None:
    frame = bases(basis(care_service=care_service, contact_type=contact_type))
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert result.changes.is_empty()
    assert result.rejected.select("rule", "reason").rows() == [("R18", reason)]


@pytest.mark.parametrize("visit_type", ["Nybesök", "Återbesök"])
def test_r18_matching_contact_and_visit_type_is_issued(visit_type: str) -> None:
    frame = bases(
        basis("B1", visit_type=visit_type),
        basis("B2", care_service=PHYSICAL, contact_type="Mottagningsbesök", visit_type=visit_type),
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert kinds(result) == {"B1": "issue", "B2": "issue"}


def test_r18_unknown_visit_type_and_every_broken_rule_are_reported() -> None:
    frame = bases(
        basis(unit_hsa_id=SPECIALIST, contact_type="Telefonkontakt", visit_type="Akutbesök")
    )
    result = plan(frame, local(2026, 6, 10, 8, 0))
    assert result.changes.is_empty()
    assert result.rejected["rule"].to_list() == ["R17", "R18", "R18"]
    assert result.report.select("status", "reason").rows() == [
        (
            "rejected",
            "R17: specialist-care unit without referral; "
            "R18: contact type 'Telefonkontakt' contradicts digital care service "
            "(expected 'Distansbesök - video'); "
            "R18: visit type 'Akutbesök' is not Nybesök or Återbesök",
        )
    ]


# R16: once per basis -------------------------------------------------------------------------


def test_r16_rerun_after_acceptance_changes_nothing() -> None:
    frame = bases(basis("B1"), basis("B2", monitoring_date=date(2026, 7, 20)))
    first_at = local(2026, 6, 10, 8, 0)
    first = plan(frame, first_at)
    assert kinds(first) == {"B1": "issue"}
    state = accept(first, first_at + timedelta(minutes=2), record())
    for as_of in (first_at, first_at + timedelta(minutes=5), local(2026, 6, 15, 8, 0)):
        again = plan(frame, as_of, state)
        assert again.changes.is_empty()
        assert again.report.filter(pl.col("basis_id") == "B1").select(
            "status", "issued_at"
        ).rows() == [("issued", datetime(2026, 6, 10, 6, 2, tzinfo=UTC))]
    # B2 falls due later and is issued exactly once too.
    later = plan(frame, local(2026, 6, 20, 8, 0), state)
    assert kinds(later) == {"B2": "issue"}
    state = accept(later, local(2026, 6, 20, 8, 1), state)
    assert plan(frame, local(2026, 6, 21, 8, 0), state).changes.is_empty()


def test_r16_same_snapshot_planned_twice_gives_the_same_change() -> None:
    # A crash before the push: the next run plans the identical change; the upsert by basis id
    # keeps it one ticket in Clinic24.
    frame = bases(basis())
    as_of = local(2026, 6, 10, 8, 0)
    assert_frame_equal(plan(frame, as_of).changes, plan(frame, as_of).changes)


def test_r16_active_ticket_is_left_when_basis_fields_change() -> None:
    frame = bases(basis(monitoring_date=date(2026, 7, 15), visit_type="Nybesök"))
    result = plan(frame, local(2026, 6, 10, 8, 0), record(active()))
    assert result.changes.is_empty()
    assert result.report["status"].to_list() == ["issued"]


def test_r16_ended_ticket_is_never_issued_again() -> None:
    ended = [{**active("B1"), "status": "revoked"}, {**active("B2"), "status": "completed"}]
    frame = bases(basis("B1"), basis("B2"))
    result = plan(frame, local(2026, 6, 10, 8, 0), record(*ended))
    assert result.changes.is_empty()
    assert result.report.select("basis_id", "status", "issued_at").rows() == [
        ("B1", "revoked", None),
        ("B2", "used", None),
    ]


def test_r16_duplicate_basis_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate basis ids"):
        plan(bases(basis("B1"), basis("B1")), local(2026, 6, 10, 8, 0))


def test_r16_content_hash_is_stable_and_covers_every_desired_column() -> None:
    row = plan(bases(basis()), local(2026, 6, 10, 8, 0)).changes.row(0, named=True)
    assert ticket_content_hash(row) == row["content_hash"]
    assert ticket_content_hash({**row, "source_sequence": 99}) == row["content_hash"]
    for column, value in (
        ("monitoring_date", date(2026, 7, 2)),
        ("visit_type", "Nybesök"),
        ("status", "revoked"),
        ("authored_at", datetime(2026, 6, 10, 7, tzinfo=UTC)),
    ):
        assert ticket_content_hash({**row, column: value}) != row["content_hash"]


# R19: lifecycle ------------------------------------------------------------------------------


def test_r19_booked_through_the_ticket_completes_it() -> None:
    frame = bases(basis(status="booked", booking_id="K1"))
    booked = bookings(
        {
            "booking_id": "K1",
            "basis_id": "B1",
            "status": "booked",
            "booking_info": "Bokning via webbtidbok",
        }
    )
    as_of = local(2026, 6, 12, 9, 0)
    result = plan(frame, as_of, record(active()), booked)
    assert result.changes.select("change_kind", "rule", "status", "issue_date").rows() == [
        ("complete", "R19", "completed", date(2026, 6, 2))
    ]
    assert result.changes["authored_at"].to_list() == [as_of.astimezone(UTC)]
    assert result.report.select("status", "issued_at").rows() == [
        ("used", datetime(2026, 6, 2, 6, 5, tzinfo=UTC))
    ]


def test_r19_web_booking_found_through_the_bookings_basis_id() -> None:
    frame = bases(basis(status="booked", booking_id=None))
    booked = bookings(
        {
            "booking_id": "K9",
            "basis_id": "B1",
            "status": "booked",
            "booking_info": "Tid: Bokning via webbtidbok 2026-06-11",
        }
    )
    result = plan(frame, local(2026, 6, 12, 9, 0), record(active()), booked)
    assert kinds(result) == {"B1": "complete"}


@pytest.mark.parametrize("booking_info", ["Bokad av sjuksköterska", None])
def test_r19_booked_by_staff_revokes_the_ticket(booking_info: str | None) -> None:
    frame = bases(basis(status="booked", booking_id="K1"))
    booked = bookings(
        {"booking_id": "K1", "basis_id": "B1", "status": "booked", "booking_info": booking_info}
    )
    result = plan(frame, local(2026, 6, 12, 9, 0), record(active()), booked)
    assert result.changes.select("change_kind", "rule", "status").rows() == [
        ("revoke", "R19", "revoked")
    ]
    assert result.report["status"].to_list() == ["revoked"]


@pytest.mark.parametrize("status", ["closed", "removed"])
def test_r19_closed_or_removed_basis_revokes_the_ticket(status: str) -> None:
    result = plan(bases(basis(status=status)), local(2026, 6, 12, 9, 0), record(active()))
    assert kinds(result) == {"B1": "revoke"}
    assert result.changes["care_service"].to_list() == [DIGITAL]


def test_r19_vanished_basis_with_active_ticket_is_revoked() -> None:
    result = plan(bases(basis("B2")), local(2026, 6, 12, 9, 0), record(active("B1")))
    assert kinds(result) == {"B1": "revoke", "B2": "issue"}
    revoke = result.changes.filter(pl.col("basis_id") == "B1")
    assert revoke.select("status", "issue_date").rows() == [("revoked", date(2026, 6, 2))]


def test_r19_vanished_basis_booked_through_the_ticket_is_completed() -> None:
    booked = bookings(
        {
            "booking_id": "K1",
            "basis_id": "B1",
            "status": "booked",
            "booking_info": "Bokning via webbtidbok",
        }
    )
    result = plan(bases(), local(2026, 6, 12, 9, 0), record(active("B1")), booked)
    assert kinds(result) == {"B1": "complete"}


@pytest.mark.parametrize("status", ["booked", "closed", "removed"])
def test_r19_no_blind_revoke_of_a_ticket_never_issued(status: str) -> None:
    frame = bases(basis(status=status, booking_id="K1" if status == "booked" else None))
    result = plan(frame, local(2026, 6, 12, 9, 0))
    assert result.changes.is_empty()
    assert result.report.is_empty()


def test_r19_no_blind_revoke_for_a_vanished_basis_without_record() -> None:
    result = plan(bases(), local(2026, 6, 12, 9, 0), record())
    assert result.changes.is_empty()


@pytest.mark.parametrize("ended", ["revoked", "completed"])
def test_r19_ended_ticket_gets_nothing_more(ended: str) -> None:
    frame = bases(basis("B1", status="closed"), basis("B2", status="booked", booking_id="K2"))
    state = record({**active("B1"), "status": ended}, {**active("B2"), "status": ended})
    result = plan(frame, local(2026, 6, 12, 9, 0), state)
    assert result.changes.is_empty()
    # Gone from the snapshot too: still nothing.
    assert plan(bases(), local(2026, 6, 12, 9, 0), state).changes.is_empty()


def test_r19_without_bookings_a_booked_basis_is_deferred() -> None:
    frame = bases(basis("B1", status="booked", booking_id="K1"), basis("B2", status="closed"))
    result = plan_tickets(
        frame,
        None,
        CARE_SERVICES,
        UNITS,
        CLINIC24_UNITS,
        record(active("B1"), active("B2")),
        as_of=local(2026, 6, 12, 9, 0),
    )
    assert kinds(result) == {"B2": "revoke"}
    assert result.report.select("basis_id", "status", "reason").rows() == [
        ("B1", "issued", "R19: booking not in this run, outcome deferred"),
        ("B2", "revoked", None),
    ]


def test_r16_r19_whole_lifecycle_is_idempotent() -> None:
    as_of = local(2026, 6, 10, 8, 0)
    frame = bases(basis())
    state = accept(plan(frame, as_of), as_of, record())
    booked_frame = bases(basis(status="booked", booking_id="K1"))
    booked = bookings(
        {
            "booking_id": "K1",
            "basis_id": "B1",
            "status": "booked",
            "booking_info": "Bokning via webbtidbok",
        }
    )
    ending = plan(booked_frame, as_of + timedelta(days=1), state, booked)
    assert kinds(ending) == {"B1": "complete"}
    state = accept(ending, as_of + timedelta(days=1), state)
    assert state.select("basis_id", "status").rows() == [("B1", "completed")]
    for later in (as_of + timedelta(days=1), as_of + timedelta(days=20)):
        assert plan(booked_frame, later, state, booked).changes.is_empty()


def test_r16_duplicate_record_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="ticket_record has duplicate basis ids"):
        plan(bases(basis()), local(2026, 6, 10, 8, 0), record(active("B1"), active("B1")))


@pytest.mark.parametrize(
    "hidden_service",
    ["Dold kontakt|mottagning|läkare|allmänmedicin", " dold KONTAKT ", "DOLD KONTAKT|x"],
)
def test_r03_hidden_contact_as_first_segment_or_any_case_gets_no_ticket(
    hidden_service: str,
) -> None:
    # Same reading of R03 as the booking scope: a web-bookable hidden contact stays hidden.
    catalogue = pl.concat(
        [
            CARE_SERVICES,
            pl.DataFrame(
                {
                    "care_service": [hidden_service],
                    "is_web_bookable": [True],
                    "clinic24_role": ["doctor"],
                    "patient_may_rebook": [True],
                    "patient_may_cancel": [True],
                }
            ),
        ]
    )
    frame = bases(
        basis("OK"),
        basis("HIDDEN", care_service=hidden_service, contact_type="Mottagningsbesök"),
    )
    result = plan_tickets(
        frame,
        bookings(),
        catalogue,
        UNITS,
        CLINIC24_UNITS,
        record(),
        as_of=local(2026, 6, 10, 8, 0),
    )
    assert kinds(result) == {"OK": "issue"}
    assert result.pending.is_empty()
    assert result.rejected.is_empty()
    assert result.report["basis_id"].to_list() == ["OK"]
