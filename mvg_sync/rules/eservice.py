"""E-service cancellations and rebookings: which events are the patient's own (R28) and which break R24-R27."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from mvg_sync.timeutil import STOCKHOLM_TZ as LOCAL_TZ

# R28: Cosmic's own reason texts; the reason, not the user, makes an event an e-service event.
ESERVICE_CANCEL_REASON = "Patienten avbokar via e-tjänst"
ESERVICE_REBOOK_REASON = "Patienten ombokar via e-tjänst"
ESERVICE_REASONS = (ESERVICE_CANCEL_REASON, ESERVICE_REBOOK_REASON)
ESERVICE_USER = "Mtwweb ServiceUser"

# R26: the one unit whose web-bookable services patients may neither rebook nor cancel.
RADIOTHERAPY_UNIT = "Strålbehandlingsmottagning Gävle"
RADIOTHERAPY_MARK = "strålbehandling"

# R24 / R25 limits.
MIN_NOTICE = timedelta(hours=24)
REBOOK_DAYS_BEFORE = 7
REBOOK_DAYS_AFTER = 14

BREACH_RULES = ("R24", "R25", "R26", "R27")

# eservice.csv (operations.md), in this order.
CSV_COLUMNS = (
    "event_id",
    "event_type",
    "unit_hsa_id",
    "registered_at",
    "previous_start",
    "new_start",
    "breaches",
)


def _normalise_reason(reason: str) -> str:
    return " ".join(reason.split()).casefold()


_ESERVICE_KEYS = frozenset(_normalise_reason(r) for r in ESERVICE_REASONS)


def is_eservice_event(reason: str | None) -> bool:
    """R28: an event is the patient's own action in MVG exactly when its reason is an e-service reason.

    The user is deliberately ignored: the e-service reason under a staff user is still an
    e-service event, and a staff reason under `Mtwweb ServiceUser` is not. Whitespace and
    letter case are forgiven because Cosmic's texts are typed into a catalogue by people.
    """
    if reason is None:
        return False
    return _normalise_reason(reason) in _ESERVICE_KEYS


def is_eservice_expr(reason: pl.Expr) -> pl.Expr:
    """R28 as a Polars expression (same normalisation as `is_eservice_event`)."""
    key = (
        reason.str.strip_chars()
        .str.replace_all(r"\s+", " ")
        .str.to_lowercase()
    )
    return key.is_in(sorted(_ESERVICE_KEYS)).fill_null(False)


def local_date(col: str | pl.Expr) -> pl.Expr:
    """Local Swedish calendar date of a UTC date-time column."""
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.dt.convert_time_zone(LOCAL_TZ).dt.date()


def r24_late_change_expr() -> pl.Expr:
    """R24: changed later than 24 hours before the visit.

    Breach when `registered_at > previous_start - 24h` (elapsed time, so a DST night counts
    as the hours it really has). Exactly 24 hours before is allowed.
    """
    return (pl.col("registered_at") > pl.col("previous_start") - MIN_NOTICE).fill_null(False)


def r25_rebook_window_expr() -> pl.Expr:
    """R25: a rebooking moved the visit outside [original date - 7 days, original date + 14 days].

    Compared on local dates, bounds inclusive. Cancellations and rebookings without a new
    start are never R25 breaches.
    """
    days = (local_date("new_start") - local_date("previous_start")).dt.total_days()
    return (
        (pl.col("event_type") == "rebook")
        & ((days < -REBOOK_DAYS_BEFORE) | (days > REBOOK_DAYS_AFTER))
    ).fill_null(False)


def r26_not_allowed_expr() -> pl.Expr:
    """R26: done on a care service the patient may not rebook (rebook) or cancel (cancel).

    Needs `patient_may_rebook` / `patient_may_cancel` from the catalogue (null when the care
    service is missing from it: then only the radiotherapy test applies) plus `unit_name`.
    Radiotherapy (`Strålbehandlingsmottagning Gävle`) is a breach whatever the catalogue
    says: the unit's name, or a care service naming `Strålbehandling`.
    """
    catalogue_says_no = (
        ((pl.col("event_type") == "rebook") & (pl.col("patient_may_rebook") == False))  # noqa: E712
        | ((pl.col("event_type") == "cancel") & (pl.col("patient_may_cancel") == False))  # noqa: E712
    ).fill_null(False)
    radiotherapy = (
        (pl.col("unit_name").str.strip_chars().str.to_lowercase() == RADIOTHERAPY_UNIT.lower())
        | pl.col("care_service").str.to_lowercase().str.contains(RADIOTHERAPY_MARK, literal=True)
    ).fill_null(False)
    return catalogue_says_no | radiotherapy


def r27_put_back_event_ids(cancels: pl.LazyFrame, booking_bases: pl.LazyFrame) -> pl.LazyFrame:
    """R27: ids of e-service cancellations whose booking basis WAS put back on the waiting list.

    The predicate (a cancellation is fine when either holds):
    (a) some basis has the event's `patient_id`, `unit_hsa_id` and `care_service`, and
        `registered_at >= event.registered_at` - whatever its status now, because a basis put
        back and since booked, closed or removed was still put back; or
    (b) the event's own basis (`basis_id`) has status `planned` and
        `changed_at >= event.registered_at` - Cosmic re-opening the same basis.
    Every other e-service cancellation is an R27 breach.
    """
    ev = cancels.select("event_id", "registered_at", "patient_id", "unit_hsa_id",
                        "care_service", "basis_id")
    bases = booking_bases.select(
        pl.col("basis_id").alias("b_basis_id"),
        pl.col("patient_id"),
        pl.col("unit_hsa_id"),
        pl.col("care_service"),
        pl.col("status").alias("b_status"),
        pl.col("registered_at").alias("b_registered_at"),
        pl.col("changed_at").alias("b_changed_at"),
    )
    new_basis = (
        ev.join(bases, on=["patient_id", "unit_hsa_id", "care_service"], how="inner")
        .filter(pl.col("b_registered_at") >= pl.col("registered_at"))
        .select("event_id")
    )
    reopened = (
        ev.filter(pl.col("basis_id").is_not_null())
        .join(bases.select("b_basis_id", "b_status", "b_changed_at"),
              left_on="basis_id", right_on="b_basis_id", how="inner")
        .filter((pl.col("b_status") == "planned")
                & (pl.col("b_changed_at") >= pl.col("registered_at")))
        .select("event_id")
    )
    return pl.concat([new_basis, reopened]).unique()


def breaches_expr() -> pl.Expr:
    """The `breaches` column: rule ids of the true `breach_r2x` flags, ascending, `;`-joined, '' if none."""
    parts = [pl.when(pl.col(f"breach_{r.lower()}")).then(pl.lit(r)) for r in BREACH_RULES]
    return pl.concat_str(parts, separator=";", ignore_nulls=True).fill_null("")


@dataclass(frozen=True)
class EserviceResult:
    """Output of `eservice_report`.

    `detail`: one row per e-service event in the period (grain `event_id`), CSV columns first.
    `summary`: one row per unit and ISO week (grain `unit_hsa_id`, `week`) over ALL events in
    the period, staff actions included, so the e-service share can be computed.
    """

    detail: pl.DataFrame
    summary: pl.DataFrame

    @property
    def csv(self) -> pl.DataFrame:
        """The fixed eservice.csv columns (operations.md)."""
        return self.detail.select(CSV_COLUMNS)


def _period_filter(
    registered_from: date,
    registered_to: date,
    booked_from: date | None,
    booked_to: date | None,
    unit: str | None,
) -> pl.Expr:
    reg_day = local_date("registered_at")
    keep = reg_day.is_between(registered_from, registered_to, closed="both")
    if booked_from is not None or booked_to is not None:
        def inside(day: pl.Expr) -> pl.Expr:
            cond = pl.lit(True)
            if booked_from is not None:
                cond = cond & (day >= booked_from)
            if booked_to is not None:
                cond = cond & (day <= booked_to)
            return cond

        # R29: "monitoring/booking-date period" - any of the basis' monitoring date, the
        # booked date before the event or (rebookings) the new date falls in the period.
        in_period = [
            inside(pl.col("monitoring_date")),
            inside(local_date("previous_start")),
            inside(local_date("new_start")),
        ]
        keep = keep & pl.any_horizontal(in_period).fill_null(False)
    if unit is not None:
        keep = keep & (pl.col("unit_hsa_id") == unit)
    return keep


def eservice_report(
    events: pl.DataFrame | pl.LazyFrame,
    care_services: pl.DataFrame | pl.LazyFrame,
    booking_bases: pl.DataFrame | pl.LazyFrame,
    *,
    registered_from: date,
    registered_to: date,
    booked_from: date | None = None,
    booked_to: date | None = None,
    unit: str | None = None,
) -> EserviceResult:
    """R28/R29: e-service events in the period with breaches of R24-R27, and per unit and week totals.

    Periods are local Swedish dates, inclusive. The registration period filters on the event's
    `registered_at`; the booking/monitoring period (either bound may be open) keeps an event
    when its basis' monitoring date, its previous start date or its new start date is inside.
    Staff actions (R28) are left out of `detail` but counted in `summary`.
    """
    if registered_from > registered_to:
        raise ValueError("registered_from is after registered_to")
    ev = events.lazy()
    bases = booking_bases.lazy()
    catalogue = care_services.lazy().select(
        "care_service", "patient_may_rebook", "patient_may_cancel"
    )
    monitoring = bases.select("basis_id", "monitoring_date")

    enriched = (
        ev.join(monitoring, on="basis_id", how="left")
        .filter(_period_filter(registered_from, registered_to, booked_from, booked_to, unit))
        .with_columns(is_eservice=is_eservice_expr(pl.col("reason")))
    )

    es = (
        enriched.filter(pl.col("is_eservice"))
        .join(catalogue, on="care_service", how="left")
    )
    put_back = r27_put_back_event_ids(
        es.filter(pl.col("event_type") == "cancel"), bases
    ).with_columns(is_put_back=pl.lit(True))
    detail = (
        es.join(put_back, on="event_id", how="left")
        .with_columns(
            breach_r24=r24_late_change_expr(),
            breach_r25=r25_rebook_window_expr(),
            breach_r26=r26_not_allowed_expr(),
            breach_r27=(pl.col("event_type") == "cancel") & pl.col("is_put_back").is_null(),
        )
        .with_columns(breaches=breaches_expr())
        .select(
            *CSV_COLUMNS,
            "breach_r24",
            "breach_r25",
            "breach_r26",
            "breach_r27",
            "unit_name",
            "monitoring_date",
            local_date("previous_start").alias("booking_date"),
            "patient_id",
            "patient_name",
            "care_service",
            "contact_type",
            pl.col("comment").alias("booking_info"),
            pl.when(pl.col("event_type") == "rebook").then(pl.col("reason")).alias("rebook_reason"),
            pl.when(pl.col("event_type") == "cancel").then(pl.col("reason")).alias("cancel_reason"),
            "user_name",
            (pl.col("user_name") == ESERVICE_USER).fill_null(False).alias("is_eservice_user"),
            "booking_id",
            "basis_id",
        )
        .sort("registered_at", "event_id")
    )

    detail_df, all_df = pl.collect_all([detail, enriched.select(
        "unit_hsa_id", "unit_name", "registered_at", "event_type", "is_eservice")])
    summary = summarise_by_unit_week(all_df, detail_df)
    return EserviceResult(detail=detail_df, summary=summary)


def iso_week_expr(col: str) -> pl.Expr:
    """`YYYY-Www` ISO week of the local date of a UTC date-time column."""
    d = local_date(col)
    return pl.format(
        "{}-W{}", d.dt.iso_year(), d.dt.week().cast(pl.String).str.zfill(2)
    )


def summarise_by_unit_week(all_events: pl.DataFrame, detail: pl.DataFrame) -> pl.DataFrame:
    """R28/R29 summary, one row per unit and ISO week: volumes, e-service shares, breaches per rule.

    `all_events` holds every event in the period (staff actions too) with `is_eservice`;
    `detail` the e-service rows with their `breach_r2x` flags.
    """
    volumes = (
        all_events.lazy()
        .with_columns(week=iso_week_expr("registered_at"))
        .group_by("unit_hsa_id", "week")
        .agg(
            pl.col("unit_name").first(),
            (pl.col("event_type") == "cancel").sum().alias("cancellations"),
            (pl.col("event_type") == "rebook").sum().alias("rebookings"),
            ((pl.col("event_type") == "cancel") & pl.col("is_eservice")).sum()
            .alias("eservice_cancellations"),
            ((pl.col("event_type") == "rebook") & pl.col("is_eservice")).sum()
            .alias("eservice_rebookings"),
        )
    )
    breaches = (
        detail.lazy()
        .with_columns(week=iso_week_expr("registered_at"))
        .group_by("unit_hsa_id", "week")
        .agg(
            *[pl.col(f"breach_{r.lower()}").sum().alias(f"breaches_{r.lower()}")
              for r in BREACH_RULES],
            (pl.col("breaches") != "").sum().alias("events_with_breach"),
        )
    )
    count_cols = [f"breaches_{r.lower()}" for r in BREACH_RULES] + ["events_with_breach"]

    def share(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den > 0).then(num / den)

    return (
        volumes.join(breaches, on=["unit_hsa_id", "week"], how="left")
        .with_columns(pl.col(count_cols).fill_null(0).cast(pl.UInt32))
        .with_columns(
            pl.col("cancellations", "rebookings", "eservice_cancellations",
                   "eservice_rebookings").cast(pl.UInt32),
        )
        .with_columns(
            eservice_share=share(
                pl.col("eservice_cancellations") + pl.col("eservice_rebookings"),
                pl.col("cancellations") + pl.col("rebookings"),
            ),
            eservice_cancel_share=share(pl.col("eservice_cancellations"), pl.col("cancellations")),
            eservice_rebook_share=share(pl.col("eservice_rebookings"), pl.col("rebookings")),
        )
        .select(
            "unit_hsa_id", "unit_name", "week", "cancellations", "rebookings",
            "eservice_cancellations", "eservice_rebookings", "eservice_share",
            "eservice_cancel_share", "eservice_rebook_share", *count_cols,
        )
        .sort("unit_hsa_id", "week")
        .collect()
    )
