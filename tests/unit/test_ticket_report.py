"""Report 3 rows (R14-R19): status as Clinic24 holds it, issue time, time to booking, week, summary."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from mvg_sync.rules.ticket_report import CSV_COLUMNS, summarise_tickets, ticket_report

AS_OF = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
T = pl.Datetime("us", "UTC")


def _plan_report(rows):
    return pl.DataFrame(rows, schema={"basis_id": pl.String, "unit_hsa_id": pl.String,
                                      "status": pl.String, "due_date": pl.Date,
                                      "issued_at": T, "reason": pl.String}, orient="row")


def _bases(rows):
    return pl.DataFrame(rows, schema={"basis_id": pl.String, "care_service": pl.String,
                                      "monitoring_date": pl.Date, "status": pl.String,
                                      "booking_id": pl.String, "changed_at": T}, orient="row")


UNITS = pl.DataFrame({"unit_hsa_id": ["SE1"], "unit_name": ["HC Ett"]})
NO_RECORD = pl.DataFrame(schema={"basis_id": pl.String, "status": pl.String, "accepted_at": T})
NO_ISSUES = pl.DataFrame(schema={"basis_id": pl.String, "issued_at": T})


def test_r14_issue_planned_but_not_accepted_is_pending_and_due():
    plan = _plan_report([("B1", "SE1", "issued", date(2026, 11, 20), AS_OF, None)])
    bases = _bases([("B1", "cs", date(2026, 12, 20), "planned", None, None)])
    out = ticket_report(plan, NO_RECORD, NO_ISSUES, bases, None, UNITS, as_of=AS_OF)
    row = out.detail.row(0, named=True)
    assert (row["status"], row["is_due"], row["issued_at"]) == ("pending", True, None)
    assert row["week"] == "2026-W47"  # week of the due date 2026-11-20


def test_r15_not_yet_due_ticket_is_pending_and_not_due():
    plan = _plan_report([("B1", "SE1", "pending", date(2026, 12, 1), None, None)])
    bases = _bases([("B1", "cs", date(2026, 12, 31), "planned", None, None)])
    row = ticket_report(plan, NO_RECORD, NO_ISSUES, bases, None, UNITS, as_of=AS_OF).detail.row(0, named=True)
    assert (row["status"], row["is_due"], row["week"]) == ("pending", False, "2026-W49")


def test_r19_used_ticket_keeps_issue_time_from_the_outbox_and_measures_time_to_booking():
    issued = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    made = datetime(2026, 11, 3, 21, 0, tzinfo=UTC)
    # the record row was overwritten by the completion: only the outbox knows the issue time
    record = pl.DataFrame({"basis_id": ["B1"], "status": ["completed"],
                           "accepted_at": [datetime(2026, 11, 4, tzinfo=UTC)]}, schema_overrides={"accepted_at": T})
    issues = pl.DataFrame({"basis_id": ["B1"], "issued_at": [issued]}, schema_overrides={"issued_at": T})
    plan = _plan_report([("B1", "SE1", "used", date(2026, 11, 1), None, None)])
    bases = _bases([("B1", "cs", date(2026, 12, 1), "booked", "K1", datetime(2026, 11, 4, tzinfo=UTC))])
    bookings = pl.DataFrame({"booking_id": ["K1"], "basis_id": ["B1"], "registered_at": [made]},
                            schema_overrides={"registered_at": T})
    row = ticket_report(plan, record, issues, bases, bookings, UNITS, as_of=AS_OF).detail.row(0, named=True)
    assert row["issued_at"] == issued and row["booked_at"] == made
    assert row["hours_to_booking"] == 36.0
    assert row["week"] == "2026-W45" and row["unit_name"] == "HC Ett"


def test_r19_booked_time_falls_back_to_the_basis_change_without_bookings():
    issued = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    record = pl.DataFrame({"basis_id": ["B1"], "status": ["revoked"], "accepted_at": [issued]},
                          schema_overrides={"accepted_at": T})
    issues = pl.DataFrame({"basis_id": ["B1"], "issued_at": [issued]}, schema_overrides={"issued_at": T})
    plan = _plan_report([("B1", "SE1", "revoked", date(2026, 11, 1), None, None)])
    bases = _bases([("B1", "cs", date(2026, 12, 1), "booked", None, datetime(2026, 11, 2, 15, tzinfo=UTC))])
    row = ticket_report(plan, record, issues, bases, None, UNITS, as_of=AS_OF).detail.row(0, named=True)
    assert row["hours_to_booking"] == 6.0


def test_r17_rejected_rows_keep_their_reason_and_csv_columns_lead_with_operations_md():
    plan = _plan_report([("B2", "SE1", "rejected", date(2026, 11, 20), None,
                          "R17: specialist-care unit without referral")])
    bases = _bases([("B2", "cs", date(2026, 12, 20), "planned", None, None)])
    out = ticket_report(plan, NO_RECORD, NO_ISSUES, bases, None, UNITS, as_of=AS_OF)
    assert out.csv.columns == list(CSV_COLUMNS)
    assert out.csv.columns[:6] == ["basis_id", "unit_hsa_id", "status", "due_date", "issued_at", "reason"]
    assert out.csv.row(0, named=True)["reason"] == "R17: specialist-care unit without referral"


def test_r14_unit_and_monitoring_period_narrow_the_rows():
    plan = _plan_report([("B1", "SE1", "pending", date(2026, 12, 1), None, None),
                         ("B2", "SE2", "pending", date(2026, 12, 1), None, None),
                         ("B3", "SE1", "pending", date(2027, 1, 10), None, None)])
    bases = _bases([("B1", "cs", date(2026, 12, 31), "planned", None, None),
                    ("B2", "cs", date(2026, 12, 31), "planned", None, None),
                    ("B3", "cs", date(2027, 2, 9), "planned", None, None)])
    out = ticket_report(plan, NO_RECORD, NO_ISSUES, bases, None, UNITS, as_of=AS_OF, unit="SE1",
                        monitoring_to=date(2027, 1, 31))
    assert out.detail["basis_id"].to_list() == ["B1"]


def test_r19_summary_counts_statuses_per_unit_and_week_with_median_of_used():
    detail = pl.DataFrame({
        "unit_hsa_id": ["SE1", "SE1", "SE1", "SE1"],
        "unit_name": ["HC Ett"] * 4,
        "week": ["2026-W45", "2026-W45", "2026-W45", "2026-W46"],
        "status": ["used", "used", "revoked", "pending"],
        "hours_to_booking": [2.0, 4.0, 100.0, None],
    })
    expected = pl.DataFrame({
        "unit_hsa_id": ["SE1", "SE1"], "unit_name": ["HC Ett", "HC Ett"],
        "week": ["2026-W45", "2026-W46"],
        "pending": [0, 1], "issued": [0, 0], "used": [2, 0], "revoked": [1, 0], "rejected": [0, 0],
        "median_hours_to_booking": [3.0, None],
    })
    assert_frame_equal(summarise_tickets(detail), expected)


def test_r17_r18_report_views_say_status_and_reason_in_swedish_while_csv_keeps_codes():
    from mvg_sync.reports.tickets import build_tickets_report

    plan = _plan_report([
        ("B2", "SE1", "rejected", date(2026, 11, 20), None,
         "R17: specialist-care unit without referral; R18: contact type 'Mottagningsbesök' "
         "contradicts digital care service (expected 'Distansbesök - video')"),
        ("B3", "SE1", "pending", date(2026, 12, 20), None, None),
    ])
    bases = _bases([("B2", "cs", date(2026, 12, 20), "planned", None, None),
                    ("B3", "cs", date(2027, 1, 19), "planned", None, None)])
    out = ticket_report(plan, NO_RECORD, NO_ISSUES, bases, None, UNITS, as_of=AS_OF)
    report = build_tickets_report(out, as_of=AS_OF)
    detail = {v.name: v.frame for v in report.views}["Alla biljetter"]
    assert detail.columns[:3] == ["Status", "Orsak", "Enhet"]  # what a manager acts on first
    assert detail.sort("UnderlagsID").select("Status", "Orsak").rows() == [
        ("Avvisad", "R17: specialistvårdsenhet utan remiss; R18: kontakttyp 'Mottagningsbesök' "
                    "motsäger digital vårdtjänst (väntat 'Distansbesök - video')"),
        ("Väntande", None),
    ]
    # the spec's CSV values stay as they are, for tools
    assert set(report.csv["tickets"]["status"]) == {"rejected", "pending"}
    assert report.csv["tickets"].sort("basis_id")["reason"][0].startswith("R17: specialist-care")
