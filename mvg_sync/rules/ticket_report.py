"""Report 3 rows: each booking ticket's state, issue time and time to booking (R14-R19).

Pure functions over `plan_tickets(...).report`, the ticket record, the issue acceptances from
the outbox and the basis/booking snapshots. Decisions the rules leave open:

- The report shows tickets as Clinic24 holds them at `as_of`. `plan_tickets` reports a ticket
  it plans to issue now as `issued`; until Clinic24 has accepted it (no record row) it is
  listed here as `pending` with `is_due` true, and no `issued_at`.
- `issued_at` is when Clinic24 accepted the issue: the outbox's settlement of the accepted
  `issue` change, else the record's `accepted_at` while the ticket is still active (the record
  is overwritten when a ticket ends, so only the outbox remembers an ended ticket's issue).
- `booked_at` is when the booking was made: `registered_at` of the booking linked to the basis
  (the basis's `booking_id`, or a booking naming the basis), else the basis's `changed_at`
  when the basis is `booked`. Time to booking is only given when both ends are known and the
  booking came after the issue.
- `week` is the ISO week (Stockholm) of `issued_at`, or of `due_date` for tickets not issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from mvg_sync.rules.tickets import local_date
from mvg_sync.timeutil import STOCKHOLM_TZ as LOCAL_TZ

STATUSES = ("pending", "issued", "used", "revoked", "rejected")

# tickets.csv (operations.md) first, then the extra columns.
CSV_COLUMNS = (
    "basis_id",
    "unit_hsa_id",
    "status",
    "due_date",
    "issued_at",
    "reason",
    "is_due",
    "monitoring_date",
    "booked_at",
    "hours_to_booking",
    "week",
)
DETAIL_SCHEMA: dict[str, pl.DataType] = {
    "basis_id": pl.String(),
    "unit_hsa_id": pl.String(),
    "unit_name": pl.String(),
    "care_service": pl.String(),
    "status": pl.String(),
    "is_due": pl.Boolean(),
    "due_date": pl.Date(),
    "monitoring_date": pl.Date(),
    "issued_at": pl.Datetime("us", "UTC"),
    "booked_at": pl.Datetime("us", "UTC"),
    "hours_to_booking": pl.Float64(),
    "week": pl.String(),
    "reason": pl.String(),
}
_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class TicketReport:
    """`detail`: one row per basis with a ticket matter (`DETAIL_SCHEMA`).

    `summary`: one row per unit and ISO week with counts per status and the median hours
    from issue to booking of used tickets. `csv`: tickets.csv (`CSV_COLUMNS`).
    """

    detail: pl.DataFrame
    summary: pl.DataFrame
    csv: pl.DataFrame


def _iso_week(day: pl.Expr) -> pl.Expr:
    return pl.format("{}-W{}", day.dt.iso_year(), day.dt.week().cast(pl.String).str.zfill(2))


def _booked_at(bases: pl.DataFrame, bookings: pl.DataFrame | None) -> pl.DataFrame:
    """basis_id -> when its booking was made (see module docstring)."""
    fallback = bases.select(
        "basis_id",
        pl.when(pl.col("status") == "booked").then(pl.col("changed_at").cast(_UTC))
        .alias("basis_booked_at"),
    )
    if bookings is None or bookings.height == 0:
        return fallback.rename({"basis_booked_at": "booked_at"})
    made = bookings.select("booking_id", pl.col("registered_at").cast(_UTC).alias("made_at"))
    by_id = (
        bases.select("basis_id", "booking_id").drop_nulls("booking_id")
        .join(made, on="booking_id", how="inner")
        .group_by("basis_id").agg(pl.col("made_at").min().alias("by_id"))
    )
    parts = [fallback, by_id]
    if "basis_id" in bookings.columns:
        by_basis = (
            bookings.drop_nulls("basis_id")
            .group_by("basis_id").agg(pl.col("registered_at").cast(_UTC).min().alias("by_basis"))
        )
        parts.append(by_basis)
    out = fallback.select("basis_id")
    for part in parts:
        out = out.join(part, on="basis_id", how="left")
    names = [c for c in ("by_id", "by_basis", "basis_booked_at") if c in out.columns]
    return out.select("basis_id", pl.coalesce(names).alias("booked_at"))


def ticket_report(
    plan_report: pl.DataFrame,
    ticket_record: pl.DataFrame,
    issue_accepted: pl.DataFrame,
    bases: pl.DataFrame,
    bookings: pl.DataFrame | None,
    units: pl.DataFrame,
    *,
    as_of: datetime,
    unit: str | None = None,
    monitoring_from: date | None = None,
    monitoring_to: date | None = None,
) -> TicketReport:
    """R14-R19 control report rows from `plan_tickets(...).report` (tickets.csv grain).

    `ticket_record` has `basis_id`, `status`, `accepted_at` (what Clinic24 holds);
    `issue_accepted` has `basis_id`, `issued_at` (acceptance of each ticket's issue, from the
    outbox). `unit` and the monitoring-date period narrow the rows.
    """
    today = local_date(as_of)
    recorded = ticket_record.select(pl.col("basis_id").cast(pl.String)).unique()
    accepted = (
        issue_accepted.select(pl.col("basis_id").cast(pl.String), pl.col("issued_at").cast(_UTC))
        .group_by("basis_id").agg(pl.col("issued_at").min().alias("issue_accepted_at"))
    )
    basis_cols = bases.select(
        pl.col("basis_id").cast(pl.String), pl.col("care_service").cast(pl.String),
        pl.col("monitoring_date").cast(pl.Date),
    )
    names = units.select(pl.col("unit_hsa_id").cast(pl.String),
                         pl.col("unit_name").cast(pl.String)).unique("unit_hsa_id", keep="first")
    not_yet = (pl.col("status") == "issued") & ~pl.col("basis_id").is_in(recorded["basis_id"])
    frame = (
        plan_report.join(accepted, on="basis_id", how="left")
        .join(basis_cols, on="basis_id", how="left")
        .join(names, on="unit_hsa_id", how="left")
        .join(_booked_at(bases, bookings), on="basis_id", how="left")
        .with_columns(
            status=pl.when(not_yet).then(pl.lit("pending")).otherwise(pl.col("status")),
            issued_at=pl.when(not_yet).then(pl.lit(None, dtype=_UTC))
            .otherwise(pl.coalesce("issue_accepted_at", "issued_at")),
            is_due=(pl.col("due_date") <= pl.lit(today, dtype=pl.Date)).fill_null(False),
        )
        .with_columns(
            booked_at=pl.when(pl.col("status").is_in(("used", "revoked")))
            .then(pl.col("booked_at")),
        )
        .with_columns(
            hours_to_booking=pl.when(pl.col("booked_at") >= pl.col("issued_at")).then(
                (pl.col("booked_at") - pl.col("issued_at")).dt.total_seconds() / 3600.0),
            week=pl.coalesce(
                _iso_week(pl.col("issued_at").dt.convert_time_zone(LOCAL_TZ).dt.date()),
                _iso_week(pl.col("due_date")),
            ),
        )
    )
    if unit is not None:
        frame = frame.filter(pl.col("unit_hsa_id") == unit)
    if monitoring_from is not None:
        frame = frame.filter(pl.col("monitoring_date") >= monitoring_from)
    if monitoring_to is not None:
        frame = frame.filter(pl.col("monitoring_date") <= monitoring_to)
    detail = frame.select([pl.col(c).cast(t) for c, t in DETAIL_SCHEMA.items()]).sort("basis_id")
    return TicketReport(detail=detail, summary=summarise_tickets(detail),
                        csv=detail.select(CSV_COLUMNS))


def summarise_tickets(detail: pl.DataFrame) -> pl.DataFrame:
    """One row per unit and week: tickets per status (R14-R19) and median hours issue -> booking.

    The median is over used tickets (booked through the ticket, R19); null when none.
    """
    counts = [(pl.col("status") == s).sum().cast(pl.Int64).alias(s) for s in STATUSES]
    return (
        detail.group_by("unit_hsa_id", "unit_name", "week")
        .agg(
            *counts,
            pl.col("hours_to_booking").filter(pl.col("status") == "used").median()
            .alias("median_hours_to_booking"),
        )
        .sort("unit_hsa_id", "week")
    )
