"""Booking tickets from booking bases (R14-R19): due dates, eligibility, issue/revoke/complete plan.

Everything here is a pure function of the booking-basis snapshot, the catalogues, the ticket
record (what Clinic24 has accepted) and `as_of`. Decisions the rules leave open:

- Scope (R14 plus R01/R03): status `planned`, no booked time, a monitoring date, a web-bookable
  care service other than `Dold kontakt` (read as the booking scope reads it: first segment, any
  case), at a unit in Clinic24's unit list. A basis outside that scope is not a ticket matter
  and gets no report row.
- "Today" is the local date of `as_of` in Europe/Stockholm. A ticket is due when
  `today >= monitoring_date - 30 days` (R15): 30 days or less ahead -> at once, 31 -> pending.
- Rejected (reported, no ticket): no Clinic24 role (R05); a specialist-care unit, or a unit
  missing from the unit extract, without a referral (R17); contact type or visit type that
  contradicts the care service (R18 blocks: Clinic24 would book the wrong kind of visit); a
  monitoring date already passed (R15: the ticket's period would end before it starts, which
  Clinic24 refuses). A basis is rejected before its due date too, so staff can fix it in time.
- R16: the ticket record is what Clinic24 has. A basis with any record row is never issued
  again. A still-active ticket is left as it is when visible fields of its basis change: the
  record keeps neither the issue date nor `authored_at`, so the content hash of the ticket as
  issued cannot be rebuilt and an "update" would re-send on every run.
- R19: an active ticket whose basis is booked, closed, removed or has vanished from the
  snapshot ends: `complete` when a linked booking (the basis's `booking_id`, or a booking whose
  `basis_id` is the basis) says `Bokning via webbtidbok`, otherwise `revoke`. Without a
  bookings frame a basis that has a booking is deferred (no change, reason in the report). No
  record or a record that is not active -> nothing (no blind revoke; once ended, nothing more).
  A basis put back on the waiting list after its ticket ended (R27) gets no second ticket.
- Changes carry `authored_at` = `as_of` (UTC). An issue's `issue_date` is the local date of
  `as_of`; a revoke/complete keeps the ticket's period by using the local date its issue was
  accepted (record `accepted_at`, clamped to the monitoring date). A revoke for a vanished basis
  has only `basis_id`, `status`, `issue_date` and `authored_at`: the snapshot no longer holds
  the rest, so the push must take it from the last accepted ticket.
- `is_acute` plays no part: the rules do not mention it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from mvg_sync.rules.booking_scope import is_hidden_contact
from mvg_sync.timeutil import STOCKHOLM

TICKET_LEAD_DAYS = 30
WEB_BOOKING_MARKER = "Bokning via webbtidbok"
DIGITAL_SEGMENT = "distans video"
DIGITAL_CONTACT_TYPE = "Distansbesök - video"
PHYSICAL_CONTACT_TYPE = "Mottagningsbesök"
VISIT_TYPES = ("Nybesök", "Återbesök")
SPECIALIST_CARE = "Specialistvård"

# desired_tickets of docs/design.md, in its order.
DESIRED_TICKET_SCHEMA: dict[str, pl.DataType] = {
    "basis_id": pl.String(),
    "status": pl.String(),
    "care_service": pl.String(),
    "clinic24_role": pl.String(),
    "patient_id": pl.String(),
    "patient_id_kind": pl.String(),
    "patient_name": pl.String(),
    "unit_hsa_id": pl.String(),
    "issue_date": pl.Date(),
    "monitoring_date": pl.Date(),
    "authored_at": pl.Datetime("us", "UTC"),
    "contact_type": pl.String(),
    "visit_type": pl.String(),
    "referral_id": pl.String(),
    "content_hash": pl.String(),
}
CHANGES_SCHEMA: dict[str, pl.DataType] = {
    "change_kind": pl.String(),
    "rule": pl.String(),
    **DESIRED_TICKET_SCHEMA,
}
PENDING_SCHEMA: dict[str, pl.DataType] = {
    "basis_id": pl.String(),
    "unit_hsa_id": pl.String(),
    "due_date": pl.Date(),
}
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "basis_id": pl.String(),
    "unit_hsa_id": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
}
REPORT_SCHEMA: dict[str, pl.DataType] = {
    "basis_id": pl.String(),
    "unit_hsa_id": pl.String(),
    "status": pl.String(),
    "due_date": pl.Date(),
    "issued_at": pl.Datetime("us", "UTC"),
    "reason": pl.String(),
}

_CHANGE_STATUS = {"issue": "active", "revoke": "revoked", "complete": "completed"}
_RECORD_REPORT_STATUS = {"active": "issued", "completed": "used", "revoked": "revoked"}
_ENDED_BASIS_STATUSES = ("booked", "closed", "removed")
_BASIS_TEXT_COLUMNS = (
    "basis_id",
    "patient_id",
    "patient_id_kind",
    "patient_name",
    "care_service",
    "contact_type",
    "visit_type",
    "unit_hsa_id",
    "status",
    "booking_id",
    "referral_id",
)
_DEFERRED_REASON = "R19: booking not in this run, outcome deferred"


@dataclass(frozen=True)
class TicketPlan:
    """Output of `plan_tickets`.

    - `changes`: one row per ticket change to push (`CHANGES_SCHEMA`).
    - `pending`: one row per eligible basis whose ticket is not yet due (`PENDING_SCHEMA`).
    - `rejected`: one row per basis and broken rule, no ticket (`REJECTED_SCHEMA`).
    - `report`: one row per basis for tickets.csv, as it stands once `changes` are accepted.
    """

    changes: pl.DataFrame
    pending: pl.DataFrame
    rejected: pl.DataFrame
    report: pl.DataFrame


def local_date(as_of: datetime) -> date:
    """The Stockholm calendar date of `as_of`, the "today" of R15. `as_of` must be aware."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    return as_of.astimezone(STOCKHOLM).date()


def ticket_due_date(monitoring_date: pl.Expr) -> pl.Expr:
    """R15: the day a ticket becomes due, 30 calendar days before the monitoring date.

    A basis is due when the local date of `as_of` is on or after this day, so a monitoring date
    30 days or less ahead is issued at once and one 31 days ahead waits one day.
    """
    return monitoring_date.dt.offset_by(f"-{TICKET_LEAD_DAYS}d")


def is_ticket_due(monitoring_date: pl.Expr, as_of: datetime) -> pl.Expr:
    """R15: whether the ticket is due on the Stockholm date of `as_of` (null date -> null)."""
    return ticket_due_date(monitoring_date) <= pl.lit(local_date(as_of), dtype=pl.Date())


def is_digital_care_service(care_service: pl.Expr) -> pl.Expr:
    """R04: the care service's second segment is `distans video`."""
    return (
        care_service.str.split("|").list.get(1, null_on_oob=True).str.strip_chars()
        == DIGITAL_SEGMENT
    ).fill_null(False)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def ticket_content_hash(row: Mapping[str, Any]) -> str:
    """R16: stable hash of one desired ticket row (every desired column but the hash itself).

    SHA-256 of canonical JSON, so it survives Polars upgrades and process restarts (the record
    keeps it across runs); `source_sequence` is not a desired column and never enters it.
    """
    payload = {
        column: _canonical(row.get(column))
        for column in DESIRED_TICKET_SCHEMA
        if column != "content_hash"
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def _require(
    frame: pl.DataFrame, name: str, columns: Collection[str], *, unique_basis: bool = False
) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    # Two rows for one basis would make two tickets for it (R16); basis ids are no patient data.
    if unique_basis:
        duplicated = frame.filter(pl.col("basis_id").is_duplicated())["basis_id"].unique()
        if len(duplicated):
            raise ValueError(f"{name} has duplicate basis ids {sorted(duplicated.to_list())[:5]}")


def _rejections(fresh: pl.DataFrame, today: date) -> pl.DataFrame:
    """R05, R15, R17, R18: one row per fresh in-scope basis and broken rule."""
    expected_contact = (
        pl.when(pl.col("is_digital"))
        .then(pl.lit(DIGITAL_CONTACT_TYPE))
        .otherwise(pl.lit(PHYSICAL_CONTACT_TYPE))
    )
    kind = pl.when(pl.col("is_digital")).then(pl.lit("digital")).otherwise(pl.lit("physical"))
    checks: list[tuple[str, pl.Expr, pl.Expr]] = [
        ("R05", _blank("clinic24_role"), pl.lit("care service has no Clinic24 role")),
        (
            "R15",
            pl.col("monitoring_date") < pl.lit(today, dtype=pl.Date()),
            pl.lit("monitoring date has passed"),
        ),
        (
            "R17",
            _blank("referral_id") & (pl.col("care_level") == SPECIALIST_CARE),
            pl.lit("specialist-care unit without referral"),
        ),
        (
            "R17",
            _blank("referral_id") & pl.col("care_level").is_null(),
            pl.lit("unit missing from unit extract (care level unknown) and no referral"),
        ),
        (
            "R18",
            pl.col("contact_type").is_null() | (pl.col("contact_type") != expected_contact),
            pl.format(
                "contact type '{}' contradicts {} care service (expected '{}')",
                pl.col("contact_type").fill_null(""),
                kind,
                expected_contact,
            ),
        ),
        (
            "R18",
            ~pl.col("visit_type").is_in(VISIT_TYPES).fill_null(False),
            pl.format(
                "visit type '{}' is not Nybesök or Återbesök", pl.col("visit_type").fill_null("")
            ),
        ),
    ]
    parts = [
        fresh.filter(broken.fill_null(False)).select(
            "basis_id", "unit_hsa_id", pl.lit(rule).alias("rule"), reason.alias("reason")
        )
        for rule, broken, reason in checks
    ]
    return (
        pl.concat(parts, how="vertical")
        .cast(REJECTED_SCHEMA)  # type: ignore[arg-type]
        .sort("basis_id", "rule", "reason")
    )


def _web_booked(bookings: pl.DataFrame) -> pl.Expr:
    """R19: a linked booking says `Bokning via webbtidbok` (the ticket was used)."""
    via_web = bookings.filter(
        pl.col("booking_info").str.contains(WEB_BOOKING_MARKER, literal=True).fill_null(False)
    )
    booking_ids = via_web["booking_id"].cast(pl.String()).drop_nulls().unique()
    basis_ids = (
        via_web["basis_id"].cast(pl.String()).drop_nulls().unique()
        if "basis_id" in via_web.columns
        else pl.Series([], dtype=pl.String())
    )
    return pl.col("booking_id").is_in(booking_ids).fill_null(False) | pl.col("basis_id").is_in(
        basis_ids
    ).fill_null(False)


def _with_hash(changes: pl.DataFrame) -> pl.DataFrame:
    hashes = [ticket_content_hash(row) for row in changes.iter_rows(named=True)]
    return changes.with_columns(pl.Series("content_hash", hashes, dtype=pl.String()))


def plan_tickets(
    bases: pl.DataFrame,
    bookings: pl.DataFrame | None,
    care_services: pl.DataFrame,
    units: pl.DataFrame,
    clinic24_units: Collection[str],
    ticket_record: pl.DataFrame,
    *,
    as_of: datetime,
) -> TicketPlan:
    """R14-R19 (with R01, R03, R04, R05): which tickets to issue, revoke or complete now.

    `bases` is the booking_bases snapshot, `bookings` the bookings snapshot (or None when the
    run has none), `care_services` and `units` the catalogues, `clinic24_units` Clinic24's unit
    list (R01), `ticket_record` what Clinic24 has accepted (`basis_id`, `status`, optionally
    `accepted_at`). Changes carry `authored_at` = `as_of` in UTC; an issue carries
    `issue_date` = the Stockholm date of `as_of`; a revoke/complete the local date the issue was
    accepted (clamped to the monitoring date), so its ticket period stays what it was.
    """
    today = local_date(as_of)
    authored_at = as_of.astimezone(UTC)
    _require(
        bases, "booking_bases", (*_BASIS_TEXT_COLUMNS, "monitoring_date", "booked_start_at"), unique_basis=True
    )
    _require(care_services, "care_services", ("care_service", "is_web_bookable", "clinic24_role"))
    _require(units, "units", ("unit_hsa_id", "care_level"))
    _require(ticket_record, "ticket_record", ("basis_id", "status"), unique_basis=True)
    if bookings is not None:
        _require(bookings, "bookings", ("booking_id", "booking_info"))

    record = ticket_record.select(
        pl.col("basis_id").cast(pl.String()),
        pl.col("status").cast(pl.String()).alias("record_status"),
        (
            pl.col("accepted_at")
            if "accepted_at" in ticket_record.columns
            else pl.lit(None, dtype=pl.Datetime("us", "UTC"))
        )
        .cast(pl.Datetime("us", "UTC"))
        .alias("accepted_at"),
    )
    catalogue = care_services.select(
        "care_service",
        pl.col("is_web_bookable").cast(pl.Boolean()),
        pl.col("clinic24_role").cast(pl.String()),
    ).unique("care_service", keep="first")
    levels = units.select("unit_hsa_id", pl.col("care_level").cast(pl.String())).unique(
        "unit_hsa_id", keep="first"
    )
    units_in_clinic24 = pl.Series(list(clinic24_units), dtype=pl.String())

    # Cast so that an all-null column (a tiny or empty snapshot) still has its design type.
    typed = bases.with_columns(
        pl.col(_BASIS_TEXT_COLUMNS).cast(pl.String()),
        pl.col("monitoring_date").cast(pl.Date()),
    )
    frame = (
        typed.join(catalogue, on="care_service", how="left")
        .join(levels, on="unit_hsa_id", how="left")
        .join(record, on="basis_id", how="left")
        .with_columns(
            due_date=ticket_due_date(pl.col("monitoring_date")),
            is_digital=is_digital_care_service(pl.col("care_service")),
            in_scope=(
                (pl.col("status") == "planned")
                & pl.col("booked_start_at").is_null()
                & pl.col("monitoring_date").is_not_null()
                & pl.col("is_web_bookable").fill_null(False)
                & ~is_hidden_contact(pl.col("care_service"))
                & pl.col("unit_hsa_id").is_in(units_in_clinic24)
            ).fill_null(False),
        )
    )

    # Issue side: in scope and never seen by Clinic24 (R16).
    fresh = frame.filter(pl.col("in_scope") & pl.col("record_status").is_null())
    rejected = _rejections(fresh, today)
    eligible = fresh.filter(~pl.col("basis_id").is_in(rejected["basis_id"]))
    due = eligible.filter(is_ticket_due(pl.col("monitoring_date"), as_of))
    pending = (
        eligible.filter(~is_ticket_due(pl.col("monitoring_date"), as_of))
        .select(list(PENDING_SCHEMA))
        .sort("basis_id")
    )
    issues = due.with_columns(
        change_kind=pl.lit("issue"),
        rule=pl.lit("R14"),
        issue_date=pl.lit(today, dtype=pl.Date()),
    )

    # End side (R19): only tickets Clinic24 holds as active.
    active = frame.filter(
        (pl.col("record_status") == "active") & pl.col("status").is_in(_ENDED_BASIS_STATUSES)
    )
    vanished_ids = record.filter(
        (pl.col("record_status") == "active") & ~pl.col("basis_id").is_in(typed["basis_id"])
    )
    vanished = vanished_ids.join(
        frame.clear().drop("record_status", "accepted_at"), on="basis_id", how="left"
    ).select(frame.columns)
    ended = pl.concat([active, vanished], how="vertical")
    if bookings is None:
        deferred = ended.filter(pl.col("booking_id").is_not_null())
        ended = ended.filter(pl.col("booking_id").is_null())
        web_booked = pl.lit(False)
    else:
        deferred = ended.clear()
        web_booked = _web_booked(bookings)
    accepted_local = pl.col("accepted_at").dt.convert_time_zone(STOCKHOLM.key).dt.date()
    endings = ended.with_columns(
        change_kind=pl.when(web_booked).then(pl.lit("complete")).otherwise(pl.lit("revoke")),
        rule=pl.lit("R19"),
        issue_date=pl.min_horizontal(accepted_local, pl.col("monitoring_date")),
    )

    changes = pl.concat(
        [
            part.with_columns(
                status=pl.col("change_kind").replace_strict(_CHANGE_STATUS),
                authored_at=pl.lit(authored_at, dtype=pl.Datetime("us", "UTC")),
                content_hash=pl.lit(None, dtype=pl.String()),
            ).select([pl.col(c).cast(t) for c, t in CHANGES_SCHEMA.items()])
            for part in (issues, endings)
        ],
        how="vertical",
    ).sort("basis_id")
    changes = _with_hash(changes)

    report = _report(
        frame, record, typed, pending, rejected, changes, deferred, authored_at=authored_at
    )
    return TicketPlan(changes=changes, pending=pending, rejected=rejected, report=report)


def _report(
    frame: pl.DataFrame,
    record: pl.DataFrame,
    bases: pl.DataFrame,
    pending: pl.DataFrame,
    rejected: pl.DataFrame,
    changes: pl.DataFrame,
    deferred: pl.DataFrame,
    *,
    authored_at: datetime,
) -> pl.DataFrame:
    """tickets.csv: one row per basis with a ticket matter, as it stands after `changes`.

    `issued_at` is when Clinic24 accepted the issue (record `accepted_at` of an active ticket),
    or `as_of` for an issue planned now; unknown once a ticket has ended in an earlier run.
    Ended tickets of bases gone from the snapshot are history and not listed.
    """
    null_time = pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    null_text = pl.lit(None, dtype=pl.String())
    due_of = frame.select("basis_id", "due_date")

    rows_pending = pending.select(
        "basis_id",
        "unit_hsa_id",
        pl.lit("pending").alias("status"),
        "due_date",
        null_time.alias("issued_at"),
        null_text.alias("reason"),
    )
    rows_rejected = (
        rejected.group_by("basis_id", maintain_order=True)
        .agg(
            pl.col("unit_hsa_id").first(),
            pl.format("{}: {}", "rule", "reason").str.join("; ").alias("reason"),
        )
        .join(due_of, on="basis_id", how="left")
        .select(
            "basis_id",
            "unit_hsa_id",
            pl.lit("rejected").alias("status"),
            "due_date",
            null_time.alias("issued_at"),
            "reason",
        )
    )
    accepted = record.select("basis_id", "accepted_at")
    rows_changed = (
        changes.join(accepted, on="basis_id", how="left")
        .join(due_of, on="basis_id", how="left")
        .select(
            "basis_id",
            "unit_hsa_id",
            pl.col("change_kind")
            .replace_strict({"issue": "issued", "complete": "used", "revoke": "revoked"})
            .alias("status"),
            "due_date",
            pl.when(pl.col("change_kind") == "issue")
            .then(pl.lit(authored_at, dtype=pl.Datetime("us", "UTC")))
            .otherwise(pl.col("accepted_at"))
            .alias("issued_at"),
            null_text.alias("reason"),
        )
    )
    deferred_ids = deferred["basis_id"]
    rows_recorded = (
        frame.filter(
            pl.col("record_status").is_not_null() & ~pl.col("basis_id").is_in(changes["basis_id"])
        )
        .filter(pl.col("basis_id").is_in(bases["basis_id"]))
        .select(
            "basis_id",
            "unit_hsa_id",
            pl.col("record_status")
            .replace_strict(_RECORD_REPORT_STATUS, default=pl.col("record_status"))
            .alias("status"),
            "due_date",
            pl.when(pl.col("record_status") == "active")
            .then(pl.col("accepted_at"))
            .otherwise(null_time)
            .alias("issued_at"),
            pl.when(pl.col("basis_id").is_in(deferred_ids))
            .then(pl.lit(_DEFERRED_REASON))
            .otherwise(null_text)
            .alias("reason"),
        )
    )
    return pl.concat(
        [
            part.select([pl.col(c).cast(t) for c, t in REPORT_SCHEMA.items()])
            for part in (rows_pending, rows_rejected, rows_changed, rows_recorded)
        ],
        how="vertical",
    ).sort("basis_id")
