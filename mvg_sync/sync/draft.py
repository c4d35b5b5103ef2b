"""Drafting a sync cycle's plans (issue 4): bookings R01–R12 and tickets R14–R19, the plan-hash
cache, the guardian check (R12) and the mass-cancellation guard. Nothing is pushed here; the
only writes are the guard's approval rows and the hash cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from mvg_sync.clinic24.client import Clinic24Client
from mvg_sync.rules import booking_plan, booking_scope, tickets
from mvg_sync.store import outbox as store
from mvg_sync.store import plan_reads
from mvg_sync.store.drops import pointer_extract_id, quarantined_keys, read_snapshot, snapshot_files
from mvg_sync.store.plan_reads import SnapshotRef, current_snapshot, open_state
from mvg_sync.store.types import ApprovalStatus, ChangeKind, ResourceType
from mvg_sync.sync import accepted
from mvg_sync.timeutil import STOCKHOLM

log = logging.getLogger(__name__)

HOLD_COLUMNS = {"key": pl.Utf8, "unit_hsa_id": pl.Utf8, "rule": pl.Utf8, "reason": pl.Utf8}

__all__ = ["HOLD_COLUMNS", "BookingDraft", "GuardOutcome", "SnapshotRef", "TicketDraft", "apply_guard",
           "apply_guardians", "check_guardians", "draft_booking_plan", "draft_ticket_plan", "ticket_holds"]


def holds_frame(frame: pl.DataFrame | None, key: str) -> pl.DataFrame:
    """Rule holds in the `holds` table's shape, keyed by `key` (booking or basis id)."""
    if frame is None or frame.height == 0:
        return pl.DataFrame(schema=HOLD_COLUMNS)
    return frame.select(
        pl.col(key).alias("key"),
        pl.col("unit_hsa_id") if "unit_hsa_id" in frame.columns else pl.lit(None, pl.Utf8).alias("unit_hsa_id"),
        pl.col("rule"),
        pl.col("reason"),
    )


@dataclass
class BookingDraft:
    """A booking plan before the guardian check and the guard: nothing written yet."""

    snapshot: SnapshotRef
    changes: pl.DataFrame
    holds: pl.DataFrame
    unit_left: pl.DataFrame
    guardian_candidates: pl.DataFrame
    counts: dict = field(default_factory=dict)


def draft_booking_plan(
    state_dir: Path, clinic24_units: Collection[str], *, as_of: datetime
) -> BookingDraft | None:
    """R01–R12: desired Clinic24 state from the newest snapshot, minus what Clinic24 has.

    R08 reads the cancel/rebook log snapshot (`events`) for bookings moved beyond the window;
    R07/R08/R09 compare with, cancel and move the rows Clinic24 last accepted (read back from
    the accepted payloads, only for the bookings that may change); content hashes of rows
    unchanged since an earlier plan come from its cache under `plan-cache/` (issue 12).
    """
    with open_state(state_dir) as con:
        snapshot = current_snapshot(con)
        if snapshot is None:
            return None
        record = store.load_record(con, ResourceType.APPOINTMENT, store.PLAN_RECORD_COLUMNS).rename(
            {"key": "booking_id"})
        quarantined = quarantined_keys(con, snapshot.extract_id, "bokningar.csv")
        catalogue_drop = pointer_extract_id(con, "care_services")
        bad_services = quarantined_keys(con, catalogue_drop, "vardtjanster.csv") if catalogue_drop else []
        files = snapshot_files(con, state_dir, ["bookings", "care_services", "events"])
    all_bookings = read_snapshot(files["bookings"])
    care_services = read_snapshot(files["care_services"])
    # A care service whose catalogue row was quarantined is unknown, not out of scope: its
    # bookings are held as they are (R02/R09 would otherwise cancel them all).
    on_bad_service = all_bookings.filter(pl.col("care_service").is_in(bad_services))
    bookings = all_bookings.filter(~pl.col("care_service").is_in(bad_services))
    known = _known_hashes(state_dir)
    scope = booking_scope.desired_appointments(bookings, care_services, clinic24_units, known_hashes=known)
    _remember_hashes(state_dir, scope, known)
    departed = set(record.get_column("unit_hsa_id").unique().drop_nulls()) - set(clinic24_units)
    # A quarantined booking still exists in Cosmic: it is live (never cancelled as vanished)
    # but sends nothing until a drop delivers it clean.
    live_ids = pl.concat([all_bookings.get_column("booking_id"), pl.Series("booking_id", quarantined, pl.Utf8)])
    # R07/R08/R09 compare with, cancel and move the row Clinic24 last accepted; only the few
    # bookings the plan may change are read back (`previous_row_keys`).
    comparison = booking_plan.compare(scope.desired, record)
    wanted = booking_plan.previous_row_keys(
        scope.desired, record, window_from=snapshot.window_from, departed_units=departed, comparison=comparison
    )
    ends = _accepted_ends(wanted, scope.desired, record, known)
    plan = booking_plan.plan_booking_changes(
        scope.desired,
        live_ids,
        record,
        window_from=snapshot.window_from,
        window_to=snapshot.window_to,
        departed_units=departed,
        out_of_scope=scope.out_of_scope,
        previous_desired=_previous_desired(
            state_dir, wanted.filter(~wanted.is_in(ends.get_column("booking_id").implode())), scope.desired.schema
        ),
        events=read_snapshot(files["events"]),
        accepted_ends=ends,
        comparison=comparison,
    )
    candidates = booking_plan.children_needing_guardian(plan.changes)
    catalogue_holds = on_bad_service.select(
        pl.col("booking_id").alias("key"), "unit_hsa_id",
        pl.lit("R02").alias("rule"), pl.lit("care service quarantined in the catalogue").alias("reason"),
    )
    return BookingDraft(
        snapshot=snapshot,
        changes=plan.changes,
        holds=pl.concat(
            [_with_units(holds_frame(scope.held, "booking_id"), all_bookings), catalogue_holds,
             _with_units(holds_frame(plan.held, "booking_id"), record)],
            how="vertical_relaxed",
        ),
        unit_left=plan.unit_left,
        guardian_candidates=candidates.select("booking_id", "patient_id", "patient_id_kind"),
        counts={
            "bookings_in_snapshot": bookings.height,
            "desired": scope.desired.height,
            "out_of_scope": scope.out_of_scope.height,
        },
    )


HASH_CACHE = "plan-cache"


def _hash_cache_path(state_dir: Path) -> Path:
    # Named by the canonical form and the Polars release: fingerprints are Polars row hashes.
    return state_dir / HASH_CACHE / f"hashes-{booking_scope.HASH_VERSION}-polars-{pl.__version__}.arrow"


def _known_hashes(state_dir: Path) -> pl.DataFrame | None:
    """The previous plan's `hash_cache_rows` (issue 12: hash only what changed).

    A cache, not state: missing, unreadable or of another shape, it is ignored and every row
    is hashed, with the same result.
    """
    return _known_hashes_in(_hash_cache_path(state_dir))


def _known_hashes_in(path: Path) -> pl.DataFrame | None:
    """The cache file at `path`, or None when it is missing, unreadable or of another shape."""
    try:
        known = pl.read_ipc(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    if known.columns != ["booking_id", *booking_scope.FINGERPRINT_COLUMNS, "content_hash",
                         *booking_scope.CACHED_ROW_COLUMNS]:
        return None
    return known


def _accepted_ends(
    keys: pl.Series, desired: pl.DataFrame, record: pl.DataFrame, known: pl.DataFrame | None
) -> pl.DataFrame:
    """R07's end and resource of what Clinic24 accepted, from the plan's cache, for the `keys`
    still desired whose record holds the very hash the cache kept (issue 12: reading the
    accepted payloads back was a quarter of a plan).

    The hash covers every desired column, so an equal hash is an equal row: the values are
    those of the accepted payload. Any other key (no cache, another hash, a booking no longer
    desired, whose cancel or move needs the whole row) is read back from the payloads.
    """
    columns = ("booking_id", *booking_scope.CACHED_ROW_COLUMNS)
    if known is None or keys.len() == 0:
        return pl.DataFrame(schema={c: desired.schema[c] for c in columns})
    still_desired = desired.select("booking_id").filter(pl.col("booking_id").is_in(keys.implode()))
    return (
        still_desired.join(record.select("booking_id", "content_hash"), on="booking_id", how="inner")
        .join(known.select("content_hash", *columns), on=["booking_id", "content_hash"], how="inner")
        .select(columns)
    )


# Rewrite the cache once this share of the desired rows is digested anew per plan: below
# it, re-digesting what changed since the cache costs less than writing the cache again.
REHASH_SHARE = 0.02


def _remember_hashes(state_dir: Path, scope: booking_scope.ScopeResult, known: pl.DataFrame | None) -> None:
    """Keep this plan's fingerprints and hashes for the next plans, atomically and owner-only.

    Written when there is no cache or when more than `REHASH_SHARE` of the rows had to be
    digested: a drop's ~1,000 changes are cheaper to digest again than a 400 k-row cache is
    to write, so the cache is rewritten every few drops, not every plan.
    """
    if known is not None and scope.rehashed <= REHASH_SHARE * scope.desired.height:
        return
    path = _hash_cache_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    booking_scope.hash_cache_rows(scope.desired).write_ipc(partial, compression="uncompressed")
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    for stale in path.parent.glob("hashes-*.arrow"):
        if stale != path:  # made by another hash version or Polars release: never read again
            stale.unlink(missing_ok=True)


def _previous_desired(state_dir: Path, keys: pl.Series, schema: pl.Schema) -> pl.DataFrame:
    """The desired rows Clinic24 last accepted for `keys` (R07, R08), from the accepted payloads."""
    with open_state(state_dir) as con:
        resources = plan_reads.accepted_appointments(con, keys.cast(pl.String).to_list())
    return accepted.accepted_rows(resources, schema)



# R12 pre-checks per run by `GET RelatedPerson` (one rate-limited request each, ~1 s at the
# API's 20/s); children beyond it are checked by their visit's batched upsert (see below).
GUARDIAN_LOOKUPS_PER_RUN = 20


def check_guardians(
    state_dir: Path, draft: BookingDraft, client: Clinic24Client, *, max_lookups: int = GUARDIAN_LOOKUPS_PER_RUN
) -> pl.DataFrame:
    """R12: whether each child in the draft may be pushed (has a primary guardian, or is
    left for Clinic24 to check on the upsert).

    A child new to the plan is looked up first (`GET RelatedPerson`, one request each), up to
    `max_lookups` per run in patient-id order. Every other child is checked by pushing the
    visit itself: Clinic24 refuses it per entry with `422 primary-guardian-missing` until the
    guardian exists, which settles the entry as held (R12) — the same check, atomic with the
    write, a hundred children per request instead of one. That is how a child already held is
    re-checked every run, and how an initial load's thousands of children are checked
    without ~5 minutes of lookups (issue 4 (c)); nothing is created for a child without a
    guardian either way.
    """
    with open_state(state_dir) as con:
        waiting = set(store.guardian_held_keys(con))
    candidates = draft.guardian_candidates
    recheck_by_push = (
        candidates.group_by("patient_id").agg(pl.col("booking_id").is_in(list(waiting)).all().alias("all_waiting"))
        .filter("all_waiting").get_column("patient_id").to_list()
    )
    new = (
        candidates.filter(~pl.col("patient_id").is_in(recheck_by_push))
        .select("patient_id", "patient_id_kind").unique().sort("patient_id")
    )
    looked_up, left_to_push = new.head(max_lookups), new.slice(max_lookups)
    rows = [{"patient_id": pid, "has_primary_guardian": True}
            for pid in [*recheck_by_push, *left_to_push.get_column("patient_id").to_list()]]
    rows += [
        {"patient_id": pid, "has_primary_guardian": client.has_primary_guardian(pid, kind)}
        for pid, kind in looked_up.iter_rows()
    ]
    return pl.DataFrame(rows, schema={"patient_id": pl.Utf8, "has_primary_guardian": pl.Boolean})


def apply_guardians(draft: BookingDraft, has_guardian: pl.DataFrame) -> BookingDraft:
    """R12: children's digital visits without a guardian are held, the rest go on."""
    changes, held = booking_plan.apply_guardian_check(draft.changes, has_guardian)
    held = _with_units(holds_frame(held, "booking_id"), draft.changes)
    draft.changes = changes
    draft.holds = pl.concat([draft.holds, held], how="vertical_relaxed")
    return draft


def _with_units(holds: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Holds listed per unit (R12: "listed for the unit"), the unit taken from the booking row."""
    if holds.height == 0:
        return holds
    units = (
        rows.select(pl.col("booking_id").alias("key"), pl.col("unit_hsa_id").alias("_unit"))
        .join(holds.select("key"), on="key", how="semi")
        .unique("key")
    )
    return (
        holds.join(units, on="key", how="left")
        .with_columns(pl.coalesce("unit_hsa_id", "_unit").alias("unit_hsa_id"))
        .drop("_unit")
    )


@dataclass(frozen=True)
class GuardOutcome:
    """Whether the mass-cancellation guard lets this plan through."""

    held: bool
    approved: bool
    newly_held: bool
    cancels: int
    live: int
    reason: str


def apply_guard(
    state_dir: Path,
    draft: BookingDraft,
    ticket_draft: TicketDraft | None,
    *,
    max_share: float,
    floor: int,
    now: datetime,
) -> GuardOutcome:
    """Hold a drop that would cancel too much until `mvg-sync approve <extract_id>`.

    The same share and floor apply to booking cancellations (of live bookings from the
    window's first day on) and to ticket revocations (of active tickets): a truncated
    `bokningsunderlag.csv` would otherwise withdraw tickets that R16 never re-issues.
    """
    window_start = datetime.combine(draft.snapshot.window_from, datetime.min.time(), tzinfo=STOCKHOLM)
    with open_state(state_dir) as con:
        live = store.live_synced_count(con, since=window_start)
        decision = booking_plan.guard_mass_cancellation(draft.changes, live, max_share=max_share, floor=floor)
        hold, cancels, reason = decision.hold, decision.cancels, decision.reason
        if ticket_draft is not None:
            active = store.active_ticket_count(con)
            revokes = ticket_draft.changes.filter(pl.col("change_kind") == ChangeKind.REVOKE).height
            if revokes > max_share * active and revokes > floor:
                hold, cancels = True, cancels + revokes
                reason = f"{reason}; {revokes} ticket revocations exceed {max_share:.1%} of {active} active tickets"
        extract_id = draft.snapshot.extract_id
        store.supersede_other_approvals(con, extract_id)
        if not hold:
            return GuardOutcome(False, False, False, cancels, live, reason)
        status = store.approval_status(con, extract_id)
        if status == ApprovalStatus.APPROVED:
            return GuardOutcome(False, True, False, cancels, live, reason)
        store.hold_for_approval(con, extract_id, cancels=cancels, live=live, reason=reason, now=now)
        log.warning("Drop %s held for approval: %s", extract_id, reason)
        return GuardOutcome(True, False, status is None, cancels, live, reason)


@dataclass
class TicketDraft:
    """A ticket plan (R14–R19): changes to push and bases that get no ticket, with reasons."""

    changes: pl.DataFrame
    holds: pl.DataFrame
    counts: dict = field(default_factory=dict)


def draft_ticket_plan(
    state_dir: Path, clinic24_units: Collection[str], *, as_of: datetime
) -> TicketDraft | None:
    """R14–R19 from the newest booking-basis snapshot and the ticket record."""
    with open_state(state_dir) as con:
        files = snapshot_files(con, state_dir, ["booking_bases", "bookings", "care_services", "units"])
        if files["booking_bases"] is None:
            return None
        record = store.load_record(con, ResourceType.SERVICE_REQUEST).rename({"key": "basis_id"})
        snapshot = current_snapshot(con)
        quarantined = quarantined_keys(con, snapshot.extract_id, "bokningsunderlag.csv") if snapshot else []
    bases = read_snapshot(files["booking_bases"])
    # A quarantined basis is not gone (R19 would revoke its ticket): leave its ticket alone.
    record = record.filter(~pl.col("basis_id").is_in(quarantined))
    plan = tickets.plan_tickets(
        bases,
        read_snapshot(files["bookings"]),
        read_snapshot(files["care_services"]),
        read_snapshot(files["units"]),
        clinic24_units,
        record,
        as_of=as_of,
    )
    holds = ticket_holds(plan.rejected)
    return TicketDraft(
        changes=plan.changes,
        holds=holds,
        counts={"not_due": plan.pending.height, "rejected": holds.height},
    )


def ticket_holds(rejected: pl.DataFrame) -> pl.DataFrame:
    """R05/R15/R17/R18: one hold per rejected basis, its first rule and every broken rule's reason.

    `holds` is keyed by basis, so one row per broken rule would keep only the first of them.
    """
    per_basis = rejected.sort("basis_id", "rule", "reason").group_by("basis_id", maintain_order=True).agg(
        pl.col("unit_hsa_id").first(),
        pl.col("rule").first(),
        pl.format("{}: {}", "rule", "reason").str.join("; ").alias("reason"),
    )
    return holds_frame(per_basis, "basis_id")
