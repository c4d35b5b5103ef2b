"""Booking plan (R06-R10, R12): desired rows vs Clinic24's record -> the appointment changes to push."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from mvg_sync.rules.booking_scope import (
    DESIRED_COLUMNS,
    DIGITAL,
    REASON_NOT_IN_CATALOGUE,
    REASON_NOT_WEB_BOOKABLE,
    REASON_UNIT_NOT_IN_CLINIC24,
    REASON_VISIT_UNDER_WAY,
    with_content_hash,
)
from mvg_sync.rules.patient_id import age_on
from mvg_sync.timeutil import STOCKHOLM_TZ

CREATE = "create"
REBOOK = "rebook"
UPDATE = "update"
CANCEL = "cancel"

REASON_VANISHED = "Bokningen borttagen i Cosmic"
REASON_SERVICE_LEFT_SCOPE = "Vårdtjänsten synkas inte längre till Min vård"
REASON_UNIT_LEFT_SCOPE = "Bokningen flyttad till en enhet utanför Min vård"
REASON_NO_LONGER_BOOKED = "Bokningen är inte längre bokad i Cosmic"
REASON_UNIT_LEFT_CLINIC24 = "unit-left-clinic24"
REASON_NEEDS_GUARDIAN = "needs-primary-guardian"
REASON_MOVED_UNKNOWN_ROW = "moved-beyond-window-without-accepted-row"

# The cancel/rebook log's event types as normalised (contracts/snapshots.py `Events`).
LOG_CANCEL = "cancel"
LOG_REBOOK = "rebook"

CHILD_MAX_AGE = 12
_CHANGE_COLUMNS = ("change_kind", "booking_id", "rule", *DESIRED_COLUMNS[1:])
_HELD_SCHEMA = {"booking_id": pl.String, "reason": pl.String, "rule": pl.String}


@dataclass(frozen=True)
class PlanResult:
    """`changes`: one row per appointment change to push (design.md `changes`), sorted by
    `booking_id`. `unit_left`: `booking_id`, `unit_hsa_id`, `start_at`, `reason`, `rule` of
    bookings Clinic24 holds at a unit that left Clinic24 (R09): nothing is sent for them.
    `held`: `booking_id`, `reason`, `rule` of changes the plan cannot build (R08: a booking
    moved beyond the window whose accepted row is unknown): nothing is sent, nothing lost."""

    changes: pl.DataFrame
    unit_left: pl.DataFrame
    held: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_HELD_SCHEMA))


@dataclass(frozen=True)
class GuardDecision:
    """Outcome of the mass-cancellation guard; `reason` carries counts only, no patient data."""

    hold: bool
    cancels: int
    live_synced: int
    max_share: float
    floor: int
    reason: str


def _exit_reason(rule: pl.Expr, reason: pl.Expr) -> pl.Expr:
    return (
        pl.when(reason.is_in([REASON_NOT_WEB_BOOKABLE, REASON_NOT_IN_CATALOGUE]) | (rule == "R03"))
        .then(pl.lit(REASON_SERVICE_LEFT_SCOPE))
        .when(reason == REASON_UNIT_NOT_IN_CLINIC24)
        .then(pl.lit(REASON_UNIT_LEFT_SCOPE))
        .otherwise(pl.lit(REASON_NO_LONGER_BOOKED))
    )


def _cancel_rows(
    cancels: pl.DataFrame,
    desired_schema: pl.Schema,
    previous_desired: pl.DataFrame | None,
) -> pl.DataFrame:
    """Cancelled desired rows for bookings no longer in `desired` (vanished or out of scope).

    `cancels` holds `booking_id`, `rule`, `cancel_reason`, `rec_start_at`, `rec_unit_hsa_id`.
    The row is the booking's previous desired row when the caller has one (so the payload
    builder gets patient, service and role); otherwise only what the record knows.
    """
    filled = cancels
    if previous_desired is not None:
        previous = previous_desired.select(
            c for c in DESIRED_COLUMNS if c not in ("status", "cancel_reason", "content_hash")
        )
        filled = cancels.join(previous, on="booking_id", how="left")
    missing = [
        pl.lit(None, dtype=desired_schema[c]).alias(c)
        for c in DESIRED_COLUMNS
        if c not in filled.columns and c not in ("status", "content_hash")
    ]
    filled = filled.with_columns(missing)
    has_previous = pl.col("patient_id").is_not_null() | pl.col("care_service").is_not_null()
    rows = filled.with_columns(
        pl.lit("cancelled").alias("status"),
        pl.when(has_previous)
        .then(pl.col("start_at"))
        .otherwise(pl.col("rec_start_at").cast(desired_schema["start_at"]))
        .alias("start_at"),
        pl.when(has_previous)
        .then(pl.col("unit_hsa_id"))
        .otherwise(pl.col("rec_unit_hsa_id").cast(desired_schema["unit_hsa_id"]))
        .alias("unit_hsa_id"),
    )
    hashed = with_content_hash(rows)
    return hashed.with_columns(rows.get_column("rule"), pl.lit(CANCEL).alias("change_kind"))


def latest_log_events(events: pl.DataFrame) -> pl.DataFrame:
    """R08: the cancel/rebook log's latest event per booking: `booking_id`, `log_type`,
    `log_new_start`, `log_reason`.

    Latest by `registered_at` (Cosmic's `Datum`), ties broken by `event_id`: events are never
    rewritten, so the later id was registered later. `events` is the `events` snapshot
    (av_ombokningar.csv normalised: `event_type` `cancel`/`rebook`, `new_start` = NyTid).
    """
    return (
        events.sort("registered_at", "event_id")
        .group_by("booking_id")
        .agg(
            pl.col("event_type").last().alias("log_type"),
            pl.col("new_start").last().alias("log_new_start"),
            pl.col("reason").last().alias("log_reason"),
        )
    )


def _move_rows(
    moves: pl.DataFrame, desired_schema: pl.Schema, previous_desired: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """R08 amended: (rebook rows, held rows) for bookings moved beyond the window.

    `moves` holds `booking_id` and `log_new_start` (NyTid). The row is the booking's previous
    desired row (what Clinic24 last accepted) with `start_at` = NyTid and `end_at` = NyTid +
    its old length (an elapsed duration, so a move across a DST change keeps the minutes);
    every other field is kept. Without a previous row nothing can be sent that keeps the
    fields: the booking is held, never cancelled (the visit still exists).
    """
    columns = [c for c in DESIRED_COLUMNS if c != "content_hash"]
    if previous_desired is None:
        previous = pl.DataFrame(schema={c: desired_schema[c] for c in columns})
    else:
        previous = previous_desired.select(columns)
    joined = moves.select("booking_id", "log_new_start").join(previous, on="booking_id", how="inner")
    new_start = pl.col("log_new_start").cast(desired_schema["start_at"])
    rows = joined.with_columns(
        pl.lit("booked").alias("status"),
        pl.lit(None, dtype=desired_schema["cancel_reason"]).alias("cancel_reason"),
        new_start.alias("start_at"),
        (new_start + (pl.col("end_at") - pl.col("start_at"))).cast(desired_schema["end_at"]).alias("end_at"),
    )
    changes = with_content_hash(rows).with_columns(
        pl.lit("R08").alias("rule"), pl.lit(REBOOK).alias("change_kind")
    )
    held = moves.join(previous.select("booking_id"), on="booking_id", how="anti").select(
        pl.col("booking_id").cast(pl.String),
        pl.lit(REASON_MOVED_UNKNOWN_ROW).alias("reason"),
        pl.lit("R08").alias("rule"),
    )
    return changes, held


@dataclass(frozen=True)
class Comparison:
    """The desired rows beside Clinic24's record, joined once (issue 12: `previous_row_keys`
    and `plan_booking_changes` each joined the 400 k rows twice).

    `joined`: the desired columns the verdict reads, with the record's `rec_*` columns (null
    without a record). `orphans`: record rows Clinic24 holds as booked that are not desired.
    """

    joined: pl.DataFrame
    orphans: pl.DataFrame


_VERDICT_COLUMNS = ("booking_id", "status", "content_hash", "start_at", "end_at", "unit_hsa_id", "resource_hsa_id")


def _record_columns(record: pl.DataFrame) -> pl.DataFrame:
    return record.select(
        pl.col("booking_id"),
        pl.col("status").alias("rec_status"),
        pl.col("start_at").alias("rec_start_at"),
        pl.col("unit_hsa_id").alias("rec_unit_hsa_id"),
        pl.col("content_hash").alias("rec_content_hash"),
    )


def compare(desired: pl.DataFrame, record: pl.DataFrame) -> Comparison:
    """`desired` (R01-R06's rows) beside `record` (`clinic24_record`): see `Comparison`."""
    rec = _record_columns(record)
    joined = desired.lazy().select(_VERDICT_COLUMNS).join(rec.lazy(), on="booking_id", how="left")
    orphans = rec.lazy().filter(pl.col("rec_status") == "booked").join(
        desired.lazy().select("booking_id"), on="booking_id", how="anti"
    )
    joined, orphans = pl.collect_all([joined, orphans])
    return Comparison(joined=joined, orphans=orphans)


def previous_row_keys(
    desired: pl.DataFrame,
    record: pl.DataFrame,
    *,
    window_from: date,
    departed_units: Collection[str],
    comparison: Comparison | None = None,
) -> pl.Series:
    """The bookings whose previous desired row `plan_booking_changes` needs (R07, R08, R09).

    Booked rows whose hash differs from Clinic24's booked record (R07 compares end and
    resource with what was sent), and bookings Clinic24 holds as booked from `window_from` on
    that are no longer desired (R08/R09 cancels carry the whole row; R08 moves keep every
    field). History and departed units are left out: they send nothing, and the record keeps
    them for good, so asking for them would grow with every day of the integration.
    `comparison`: `compare(desired, record)` when the caller has it already.
    """
    comparison = comparison or compare(desired, record)
    changed = comparison.joined.filter(
        (pl.col("status") == "booked")
        & (pl.col("rec_status") == "booked")
        & pl.col("content_hash").ne_missing(pl.col("rec_content_hash"))
    ).get_column("booking_id")
    local_start = pl.col("rec_start_at").dt.convert_time_zone(STOCKHOLM_TZ).dt.date()
    gone = (
        comparison.orphans
        .filter(
            (local_start >= window_from).fill_null(True)
            & ~pl.col("rec_unit_hsa_id").is_in(list(departed_units)).fill_null(False)
        )
        .get_column("booking_id")
    )
    return pl.concat([changed, gone]).unique().sort()


def plan_booking_changes(
    desired: pl.DataFrame,
    live_booking_ids: pl.Series,
    record: pl.DataFrame,
    *,
    window_from: date,
    window_to: date,
    departed_units: Collection[str],
    out_of_scope: pl.DataFrame | None = None,
    previous_desired: pl.DataFrame | None = None,
    events: pl.DataFrame | None = None,
    accepted_ends: pl.DataFrame | None = None,
    comparison: Comparison | None = None,
) -> PlanResult:
    """R06-R10: compare desired rows with Clinic24's record and list the changes to push.

    Bookings in `desired` (record = `clinic24_record`, what Clinic24 last accepted):
    - R06 booked, no record -> `create`. Scope entry (R09) is the same case: a booking that
      enters the scope has no record (or a cancelled one, next line), so it is created.
    - R06 booked, record cancelled (booked again, or back in scope) -> `update` of the same
      identifier back to booked, rule R06: Clinic24 never deletes, so it is the same resource.
    - R07 booked, record booked, hash differs and start or unit differs from the record, or
      end or resource differs from `previous_desired` (when given; the record keeps only
      start and unit) -> `rebook`, an update of the same identifier, never cancel + create.
    - R10 booked, record booked, any other hash difference -> `update`; equal hash -> nothing.
    - R08 cancelled, record booked -> `cancel` with Cosmic's reason. Cancelled with no record
      -> nothing (no blind cancel: Clinic24 answers 404 to a cancel of what it never had).
      Cancelled with a cancelled record -> nothing, even if the reason text changed.
    Bookings Clinic24 holds as booked that are not in `desired`:
    - R09 the record's unit is in `departed_units` (left Clinic24's unit list) -> nothing
      sent, listed in `unit_left`. Checked first: Clinic24 took the unit down itself.
    - the booking is still in the snapshot (`live_booking_ids`) and `out_of_scope` names it:
      `visit-under-way` (R06) -> nothing; any other reason -> `cancel`, rule R09, with a
      reason saying why (care service left the scope; moved to a unit outside Clinic24; no
      longer booked). Live but not in `out_of_scope` (held, e.g. R05, or quarantined by
      ingestion) -> nothing: its fate is unknown, so Clinic24 keeps what it has. Without
      `out_of_scope` no scope exit is detected (the safe default).
    - R08 vanished from the snapshot while the record's start lies in
      [`window_from`, `window_to`] (inclusive, Europe/Stockholm local dates of the NEW
      snapshot) -> `cancel`, reason `Bokningen borttagen i Cosmic`. Start before
      `window_from` -> history, nothing; after `window_to` (only if the window shrank) or
      unknown -> nothing, since the snapshot says nothing about those dates.
    - R08 amended, with `events` (the cancel/rebook log snapshot, see `latest_log_events`):
      vanished while the log's latest event for it is `Ombokad` (`rebook`) with a `NyTid`
      whose local date is after `window_to` -> moved, not cancelled: `rebook`, rule R08, of
      the previous desired row to NyTid with the same length and every other field kept
      (`_move_rows`); nothing when the record already starts at NyTid. Without a previous
      row the booking is listed in `held` (nothing sent). The full row corrects it once it
      enters the window (R07/R10 above). Vanished while the latest event is `Avbokad`
      (`cancel`) and the record's start is after `window_to` (a move the plan made, then
      cancelled in Cosmic) -> `cancel`, rule R08, with the log's reason: the snapshot
      cannot show it, the log does.
    Cancel rows for bookings not in `desired` are built from `previous_desired` (the desired
    rows Clinic24 was last sent, if the caller keeps them) and otherwise carry only the
    record's `start_at` and `unit_hsa_id`; `content_hash` is computed over the row as sent.
    `previous_desired` needs only the bookings of `previous_row_keys`. `accepted_ends`
    (`booking_id`, `end_at`, `resource_hsa_id`, optional) gives R07 the end and resource
    Clinic24 accepted for bookings still desired, in place of their `previous_desired` rows
    (the caller's cheaper source of the same values); R07 reads both. `comparison`:
    `compare(desired, record)` when the caller has it already.
    """
    start_dtype = record.schema["start_at"]
    if not isinstance(start_dtype, pl.Datetime) or start_dtype.time_zone is None:
        raise ValueError("clinic24_record.start_at must be a timezone-aware Datetime")
    id_dtype = record.schema["booking_id"]
    # The verdict needs only a few columns: join those (the whole frame is hundreds of
    # thousands of rows), then take the full rows of the few that change.
    comparison = comparison or compare(desired, record)
    joined = comparison.joined.lazy()
    moved = (pl.col("start_at") != pl.col("rec_start_at")) | (
        pl.col("unit_hsa_id") != pl.col("rec_unit_hsa_id")
    )
    compared = [f.select("booking_id", "end_at", "resource_hsa_id") for f in (previous_desired, accepted_ends)
                if f is not None]
    if compared:
        joined = joined.join(
            pl.concat(compared).unique("booking_id", keep="first").lazy().select(
                "booking_id",
                pl.col("end_at").alias("prev_end_at"),
                pl.col("resource_hsa_id").alias("prev_resource_hsa_id"),
                pl.lit(True).alias("_has_prev"),
            ),
            on="booking_id",
            how="left",
        )
        moved = moved | (
            pl.col("_has_prev").fill_null(False)
            & (
                pl.col("end_at").ne_missing(pl.col("prev_end_at"))
                | pl.col("resource_hsa_id").ne_missing(pl.col("prev_resource_hsa_id"))
            )
        )
    booked = pl.col("status") == "booked"
    rec_status = pl.col("rec_status")
    changed = pl.col("content_hash").ne_missing(pl.col("rec_content_hash"))
    verdict = (
        pl.when(booked & rec_status.is_null())
        .then(pl.lit(f"{CREATE}|R06"))
        .when(booked & (rec_status == "cancelled"))
        .then(pl.lit(f"{UPDATE}|R06"))
        .when(booked & (rec_status == "booked") & changed & moved.fill_null(True))
        .then(pl.lit(f"{REBOOK}|R07"))
        .when(booked & (rec_status == "booked") & changed)
        .then(pl.lit(f"{UPDATE}|R10"))
        .when((pl.col("status") == "cancelled") & (rec_status == "booked"))
        .then(pl.lit(f"{CANCEL}|R08"))
        .otherwise(None)
    )
    verdicts = (
        joined.select("booking_id", verdict.alias("_verdict"))
        .filter(pl.col("_verdict").is_not_null())
        .collect()
    )
    from_desired = (
        desired.join(verdicts, on="booking_id", how="inner")
        .with_columns(
            pl.col("_verdict").str.split_exact("|", 1)
            .struct.rename_fields(["change_kind", "rule"])
            .alias("_v")
        )
        .unnest("_v")
        .select(_CHANGE_COLUMNS)
    )

    # Bookings Clinic24 holds as booked that planning no longer wants there.
    orphans = comparison.orphans
    # Joins, not `is_in` of a whole snapshot's ids: the orphans are few, the ids many.
    live = (
        orphans.select("booking_id")
        .join(
            pl.DataFrame({"booking_id": live_booking_ids.cast(id_dtype)}),
            on="booking_id",
            how="semi",
        )
        .get_column("booking_id")
        .implode()
    )
    if out_of_scope is None:
        out_of_scope = pl.DataFrame(
            schema={
                "booking_id": desired.schema["booking_id"],
                "reason": pl.String,
                "rule": pl.String,
            }
        )
    orphans = orphans.join(
        out_of_scope.select(
            "booking_id", pl.col("reason").alias("oos_reason"), pl.col("rule").alias("oos_rule")
        ),
        on="booking_id",
        how="left",
    )
    local_start = pl.col("rec_start_at").dt.convert_time_zone(STOCKHOLM_TZ).dt.date()
    departed = pl.col("rec_unit_hsa_id").is_in(list(departed_units)).fill_null(False)
    is_live = pl.col("booking_id").is_in(live)
    unit_left = (
        orphans.filter(departed)
        .select(
            "booking_id",
            pl.col("rec_unit_hsa_id").alias("unit_hsa_id"),
            pl.col("rec_start_at").alias("start_at"),
            pl.lit(REASON_UNIT_LEFT_CLINIC24).alias("reason"),
            pl.lit("R09").alias("rule"),
        )
        .sort("booking_id")
    )
    remaining = orphans.filter(~departed)
    exits = remaining.filter(
        is_live
        & pl.col("oos_reason").is_not_null()
        & (pl.col("oos_reason") != REASON_VISIT_UNDER_WAY)
    ).with_columns(
        pl.lit("R09").alias("rule"),
        _exit_reason(pl.col("oos_rule"), pl.col("oos_reason")).alias("cancel_reason"),
    )
    gone = remaining.filter(~is_live)
    if events is None:
        gone = gone.with_columns(
            pl.lit(None, dtype=pl.String).alias("log_type"),
            pl.lit(None, dtype=start_dtype).alias("log_new_start"),
            pl.lit(None, dtype=pl.String).alias("log_reason"),
        )
    else:
        gone = gone.join(
            latest_log_events(events).with_columns(pl.col("booking_id").cast(id_dtype)),
            on="booking_id",
            how="left",
        )
    new_local = pl.col("log_new_start").dt.convert_time_zone(STOCKHOLM_TZ).dt.date()
    moved_beyond = ((pl.col("log_type") == LOG_REBOOK) & (new_local > window_to)).fill_null(False)
    at_new_start = pl.col("rec_start_at").eq_missing(pl.col("log_new_start").cast(start_dtype))
    moves, unbuildable = _move_rows(
        gone.filter(moved_beyond & ~at_new_start), desired.schema, previous_desired
    )
    cancelled_after_move = gone.filter(
        ((pl.col("log_type") == LOG_CANCEL) & (local_start > window_to)).fill_null(False)
    ).with_columns(
        pl.lit("R08").alias("rule"),
        pl.coalesce(pl.col("log_reason"), pl.lit(REASON_VANISHED)).alias("cancel_reason"),
    )
    vanished = gone.filter(
        ~moved_beyond & local_start.is_between(window_from, window_to, closed="both").fill_null(False)
    ).with_columns(
        pl.lit("R08").alias("rule"),
        pl.lit(REASON_VANISHED).alias("cancel_reason"),
    )
    cancel_base = pl.concat(
        [
            frame.select("booking_id", "rule", "cancel_reason", "rec_start_at", "rec_unit_hsa_id")
            for frame in (exits, vanished, cancelled_after_move)
        ]
    )
    from_record = _cancel_rows(cancel_base, desired.schema, previous_desired).select(
        _CHANGE_COLUMNS
    )
    changes = pl.concat([from_desired, from_record, moves.select(_CHANGE_COLUMNS)]).sort(
        "booking_id", maintain_order=True
    )
    return PlanResult(changes=changes, unit_left=unit_left, held=unbuildable)


def _visit_date() -> pl.Expr:
    return pl.col("start_at").dt.convert_time_zone(STOCKHOLM_TZ).dt.date()


def children_needing_guardian(changes: pl.DataFrame) -> pl.DataFrame:
    """R12: booked digital creates/rebooks/updates for a patient aged 0-12 on the visit date.

    Age is taken on the visit's local (Europe/Stockholm) date, not on the run date, so no
    `today` is needed: a 12-year-old whose visit falls after the 13th birthday is an adult
    visit here. Samordningsnummer count with day - 60 (`patient_id.age_on`). An age that
    cannot be computed is listed too (safe side: ask Clinic24 rather than risk a 422).
    Cancels are never held. One row per booking: `booking_id`, `patient_id`,
    `patient_id_kind`, `unit_hsa_id`, `visit_date`, `age_on_visit`.
    """
    age = age_on(pl.col("patient_id"), _visit_date())
    return (
        changes.filter(
            pl.col("change_kind").is_in([CREATE, REBOOK, UPDATE])
            & (pl.col("status") == "booked")
            & (pl.col("visit_kind") == DIGITAL)
        )
        .with_columns(_visit_date().alias("visit_date"), age.alias("age_on_visit"))
        .filter(
            pl.col("age_on_visit").is_null() | pl.col("age_on_visit").is_between(0, CHILD_MAX_AGE)
        )
        .select(
            "booking_id",
            "patient_id",
            "patient_id_kind",
            "unit_hsa_id",
            "visit_date",
            "age_on_visit",
        )
    )


def apply_guardian_check(
    changes: pl.DataFrame, has_guardian: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """R12: split `changes` into (to push, held) using Clinic24's primary-guardian answers.

    `has_guardian` has `patient_id`, `has_primary_guardian` (Boolean). A child of
    `children_needing_guardian` is held unless some row says True for the patient; a patient
    the caller did not ask about counts as without guardian (never push on a guess). Held
    rows: `booking_id`, `reason` `needs-primary-guardian`, `rule` `R12`; they are
    re-planned every run and pushed once the guardian exists.
    """
    confirmed = has_guardian.filter(pl.col("has_primary_guardian").fill_null(False)).get_column(
        "patient_id"
    )
    blocked = children_needing_guardian(changes).filter(
        ~pl.col("patient_id").is_in(confirmed.implode()).fill_null(False)
    )
    to_push = changes.join(blocked.select("booking_id"), on="booking_id", how="anti")
    held = blocked.select(
        "booking_id",
        pl.lit(REASON_NEEDS_GUARDIAN).alias("reason"),
        pl.lit("R12").alias("rule"),
    )
    return to_push, held


def guard_mass_cancellation(
    changes: pl.DataFrame, live_synced_count: int, *, max_share: float, floor: int
) -> GuardDecision:
    """Mass-cancellation guard (operations.md `MVG_MAX_CANCEL_SHARE`, `MVG_CANCEL_GUARD_FLOOR`).

    Hold the drop when its cancels (every `change_kind` `cancel`, R08 and R09 alike) exceed
    `max_share` x `live_synced_count` (bookings Clinic24 holds as booked) AND exceed `floor`.
    Both comparisons are strict, as the operator contract says "more than".
    """
    if live_synced_count < 0 or floor < 0 or not 0 <= max_share <= 1:
        raise ValueError("guard: live_synced_count, floor >= 0 and 0 <= max_share <= 1 required")
    cancels = changes.filter(pl.col("change_kind") == CANCEL).height
    limit = max_share * live_synced_count
    hold = cancels > limit and cancels > floor
    share = f"{max_share:.1%} of {live_synced_count} live synced bookings ({limit:g})"
    if hold:
        reason = f"held: {cancels} cancellations exceed {share} and the floor of {floor}"
    else:
        reason = f"passed: {cancels} cancellations, limit {share}, floor {floor}"
    return GuardDecision(
        hold=hold,
        cancels=cancels,
        live_synced=live_synced_count,
        max_share=max_share,
        floor=floor,
        reason=reason,
    )
