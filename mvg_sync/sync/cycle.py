"""The steps of one sync cycle as plain functions: draft, guard, commit, push (issue 4, 5).

The Prefect tasks in `tasks/sync.py` wrap these one to one; the rules themselves live in
`mvg_sync.rules`. Each step opens its own DuckDB connection from a state folder and takes
the Clinic24 client as an argument only where it talks to Clinic24.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import orjson
import polars as pl

from mvg_sync import interrupts
from mvg_sync.clinic24.client import Clinic24Client, EntryOutcome, UpsertEntry
from mvg_sync.clinic24.payloads import PayloadError, build_appointment, build_service_request
from mvg_sync.rules import booking_plan, booking_scope, tickets
from mvg_sync.store import lease, transaction
from mvg_sync.store import outbox as store
from mvg_sync.store.drops import connect, load_snapshot, pointer_extract_id, quarantined_keys
from mvg_sync.sync import accepted, crashpoints
from mvg_sync.timeutil import STOCKHOLM

log = logging.getLogger(__name__)

APPOINTMENT = "Appointment"
SERVICE_REQUEST = "ServiceRequest"
GUARDIAN_DIAGNOSTICS = "primary-guardian-missing"
HOLD_COLUMNS = {"key": pl.Utf8, "unit_hsa_id": pl.Utf8, "rule": pl.Utf8, "reason": pl.Utf8}


def open_state(state_dir: Path) -> duckdb.DuckDBPyConnection:
    """The state store, current schema; `with open_state(d) as con:` — held only for a step's SQL."""
    return connect(state_dir)


@dataclass(frozen=True)
class SnapshotRef:
    """The accepted drop whose snapshot the plan is made from."""

    extract_id: str
    sequence: int
    extracted_at: datetime
    window_from: date
    window_to: date


def current_snapshot(con: duckdb.DuckDBPyConnection) -> SnapshotRef | None:
    """The drop behind the latest accepted bookings snapshot, or None before the first."""
    row = con.execute(
        "SELECT d.extract_id, d.sequence, d.extracted_at, d.window_from, d.window_to "
        "FROM snapshot_pointer p JOIN drops d USING (extract_id) WHERE p.dataset = 'bookings'"
    ).fetchall()
    if not row:
        return None
    extract_id, sequence, extracted_at, window_from, window_to = row[0]
    return SnapshotRef(extract_id, int(sequence), extracted_at, window_from, window_to)


def _holds(frame: pl.DataFrame | None, key: str) -> pl.DataFrame:
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
        record = store.load_record(con, APPOINTMENT).rename({"key": "booking_id"})
        quarantined = quarantined_keys(con, snapshot.extract_id, "bokningar.csv")
        catalogue_drop = pointer_extract_id(con, "care_services")
        bad_services = quarantined_keys(con, catalogue_drop, "vardtjanster.csv") if catalogue_drop else []
    all_bookings = load_snapshot(state_dir, "bookings")
    care_services = load_snapshot(state_dir, "care_services")
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
    wanted = booking_plan.previous_row_keys(
        scope.desired, record, window_from=snapshot.window_from, departed_units=departed
    )
    plan = booking_plan.plan_booking_changes(
        scope.desired,
        live_ids,
        record,
        window_from=snapshot.window_from,
        window_to=snapshot.window_to,
        departed_units=departed,
        out_of_scope=scope.out_of_scope,
        previous_desired=_previous_desired(state_dir, wanted, scope.desired.schema),
        events=load_snapshot(state_dir, "events"),
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
            [_with_units(_holds(scope.held, "booking_id"), all_bookings), catalogue_holds,
             _with_units(_holds(plan.held, "booking_id"), record)],
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
    try:
        known = pl.read_ipc(_hash_cache_path(state_dir))
    except (OSError, pl.exceptions.PolarsError):
        return None
    if known.columns != ["booking_id", *booking_scope.FINGERPRINT_COLUMNS, "content_hash"]:
        return None
    return known


# Rewrite the cache once this share of the desired rows is digested anew per plan: below
# it, re-digesting what changed since the cache costs less than writing the cache again.
REHASH_SHARE = 0.02


def _remember_hashes(state_dir: Path, scope: booking_scope.ScopeResult, known: pl.DataFrame | None) -> None:
    """Keep this plan's fingerprints and hashes for the next plans, atomically and owner-only.

    Written when there is no cache or when more than `REHASH_SHARE` of the rows had to be
    digested: a drop's ~1,000 changes are cheaper to digest again than a 400 k-row cache is
    to write, so the cache is rewritten every few drops, not every plan.
    """
    import os

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
        resources = _accepted_appointments(con, keys.cast(pl.String).to_list())
    return accepted.accepted_rows(resources, schema)


def _accepted_appointments(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict]:
    """`_last_accepted_payloads` for Appointments, fetching only the payloads it returns."""
    return _last_accepted_payloads(con, APPOINTMENT, keys)


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, keys: list[str]) -> Iterator[None]:
    con.register(name, pl.DataFrame({"key": keys}, schema={"key": pl.String}))
    try:
        yield
    finally:
        con.unregister(name)


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
    held = _with_units(_holds(held, "booking_id"), draft.changes)
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
            revokes = ticket_draft.changes.filter(pl.col("change_kind") == "revoke").height
            if revokes > max_share * active and revokes > floor:
                hold, cancels = True, cancels + revokes
                reason = f"{reason}; {revokes} ticket revocations exceed {max_share:.1%} of {active} active tickets"
        extract_id = draft.snapshot.extract_id
        store.supersede_other_approvals(con, extract_id)
        if not hold:
            return GuardOutcome(False, False, False, cancels, live, reason)
        status = store.approval_status(con, extract_id)
        if status == "approved":
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
    bases = load_snapshot(state_dir, "booking_bases")
    if bases is None:
        return None
    with open_state(state_dir) as con:
        record = store.load_record(con, SERVICE_REQUEST).rename({"key": "basis_id"})
        snapshot = current_snapshot(con)
        quarantined = quarantined_keys(con, snapshot.extract_id, "bokningsunderlag.csv") if snapshot else []
    # A quarantined basis is not gone (R19 would revoke its ticket): leave its ticket alone.
    record = record.filter(~pl.col("basis_id").is_in(quarantined))
    plan = tickets.plan_tickets(
        bases,
        load_snapshot(state_dir, "bookings"),
        load_snapshot(state_dir, "care_services"),
        load_snapshot(state_dir, "units"),
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
    return _holds(per_basis, "basis_id")


ENDING_KINDS = ("cancel", "revoke", "complete")


def _last_accepted_payloads(con: duckdb.DuckDBPyConnection, resource_type: str, keys: list[str]) -> dict[str, dict]:
    """The payload Clinic24 last accepted per key (R07, R08, R19).

    Filtering the outbox by key still reads the payload of nearly every stored vector; the
    newest entry per key is found first and only its payload read, in one transaction. Plain
    SQL for both backends (issue 15: no QUALIFY, rowid or list parameters; the same as
    shape's store/plan_reads.py, which replaces this on merge).
    """
    if not keys:
        return {}
    with transaction(con), _registered(con, "_wanted_keys", keys):
        newest = con.execute(
            "SELECT key, change_id FROM ("
            "  SELECT key, change_id, row_number() OVER (PARTITION BY key ORDER BY seen_at DESC) AS newest FROM ("
            "    SELECT key, change_id, settled_at AS seen_at FROM outbox "
            "    WHERE resource_type = ? AND status = 'done' AND last_outcome = 'accepted' "
            "    AND key IN (SELECT key FROM _wanted_keys)"
            "    UNION ALL SELECT key, CAST(NULL AS VARCHAR), observed_at FROM clinic24_observed "
            "    WHERE resource_type = ? AND key IN (SELECT key FROM _wanted_keys)) AS seen"
            ") AS ranked WHERE newest = 1",
            [resource_type, resource_type],
        ).fetchall()
        change_ids = [change_id for _, change_id in newest if change_id is not None]
        observed = [key for key, change_id in newest if change_id is None]
        rows: list[tuple[str, str]] = []
        for at in range(0, len(change_ids), 1000):  # a literal IN list: a point lookup on both backends
            chunk = change_ids[at:at + 1000]
            rows += con.execute(
                f"SELECT key, payload FROM outbox WHERE change_id IN ({', '.join('?' * len(chunk))})", chunk  # noqa: S608
            ).fetchall()
        if observed:
            with _registered(con, "_observed_keys", observed):
                rows += con.execute(
                    "SELECT key, payload FROM clinic24_observed "
                    "WHERE resource_type = ? AND key IN (SELECT key FROM _observed_keys)",
                    [resource_type],
                ).fetchall()
    return {key: json.loads(payload) for key, payload in rows}


def _ended(accepted: dict, row: dict, sequence: int) -> dict:
    """The last accepted resource with only its status (and cancel reason) changed.

    A booking that vanished from Cosmic, or a basis that left the snapshot, has no row to
    build from; ending what Clinic24 holds is exactly what R08/R19 ask for.
    """
    resource = {**accepted, "status": row["status"]}
    if resource["resourceType"] == "Appointment" and row["status"] == "cancelled":
        resource["cancelationReason"] = {"text": row.get("cancel_reason") or "Avbokad i Cosmic"}
    resource["extension"] = [
        {**ext, "valueInteger": sequence} if ext.get("url", "").endswith(":source-sequence") else ext
        for ext in accepted.get("extension", [])
    ]
    return resource


def _open_ticket_changes(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, tuple[str, str, dict]]:
    """Ticket changes still open in the outbox (pending or dead): key -> (kind, hash, payload)."""
    if not keys:
        return {}
    with _registered(con, "_ticket_keys", keys):  # a frame, not a list parameter (issue 15)
        rows = con.execute(
            "SELECT key, change_kind, content_hash, payload FROM outbox WHERE resource_type = ? "
            "AND status IN ('pending', 'dead') AND key IN (SELECT key FROM _ticket_keys)",
            [SERVICE_REQUEST],
        ).fetchall()
    return {key: (kind, content_hash, json.loads(payload)) for key, kind, content_hash, payload in rows}


def _timeless(ticket: dict) -> dict:
    """A ticket without the moment it was planned: authoredOn, issue date, source sequence."""
    period = {k: v for k, v in ticket.get("occurrencePeriod", {}).items() if k != "start"}
    extensions = [e for e in ticket.get("extension", []) if not e.get("url", "").endswith(":source-sequence")]
    return {**ticket, "authoredOn": None, "occurrencePeriod": period, "extension": extensions}


def _outbox_rows(
    con: duckdb.DuckDBPyConnection | Path,
    changes: pl.DataFrame,
    *,
    resource_type: str,
    key: str,
    builder: Callable[..., dict],
    snapshot: SnapshotRef,
    failed: list[dict],
) -> pl.DataFrame:
    """Changes with their exact FHIR payloads, ready for the outbox.

    A change whose payload cannot be built (e.g. an ending change for a booking Clinic24 was
    never seen to accept) is left out and appended to `failed` as a hold with its reason:
    one bad row never stops the plan for everyone else. Given a state folder, the store is
    open only for the two look-ups, not while the payloads are built.
    """
    if isinstance(con, Path):
        with open_state(con) as opened:
            lookups = _lookups(opened, changes, resource_type, key)
    else:
        lookups = _lookups(con, changes, resource_type, key)
    return _build_rows(changes, resource_type=resource_type, key=key, builder=builder, snapshot=snapshot,
                       failed=failed, lookups=lookups)


def _lookups(con: duckdb.DuckDBPyConnection, changes: pl.DataFrame, resource_type: str, key: str) -> tuple[dict, dict]:
    ending = changes.filter(pl.col("change_kind").is_in(ENDING_KINDS))
    accepted = _last_accepted_payloads(con, resource_type, ending.get_column(key).to_list())
    # R16: a ticket change planned again while still open (its answer lost in a crash or a 5xx)
    # carries a new authoredOn; keep the first plan, whose bytes Clinic24 may already hold.
    still_open = (
        _open_ticket_changes(con, changes.get_column(key).to_list()) if resource_type == SERVICE_REQUEST else {}
    )
    return accepted, still_open


def _build_rows(
    changes: pl.DataFrame, *, resource_type: str, key: str, builder: Callable[..., dict], snapshot: SnapshotRef,
    failed: list[dict], lookups: tuple[dict, dict],
) -> pl.DataFrame:
    accepted, still_open = lookups
    payloads, hashes, buildable = [], changes.get_column("content_hash").to_list(), []
    for n, row in enumerate(changes.iter_rows(named=True)):
        try:
            if row["change_kind"] in ENDING_KINDS and row[key] in accepted:
                resource = _ended(accepted[row[key]], row, snapshot.sequence)
            else:
                resource = builder(row, source_sequence=snapshot.sequence)
        except PayloadError as exc:
            failed.append({"key": row[key], "unit_hsa_id": row.get("unit_hsa_id"), "rule": "payload",
                           "reason": str(exc)})
            buildable.append(False)
            continue
        buildable.append(True)
        kind, first_hash, first = still_open.get(row[key], (None, None, None))
        if kind == row["change_kind"] and _timeless(first) == _timeless(resource):
            hashes[n] = first_hash
        payloads.append(orjson.dumps(resource).decode())  # compact UTF-8 JSON, as json.dumps gave, ~5x faster
    changes = changes.filter(pl.Series(buildable, dtype=pl.Boolean))
    hashes = [h for h, ok in zip(hashes, buildable, strict=True) if ok]
    start = pl.col("start_at") if "start_at" in changes.columns else pl.lit(None, pl.Datetime("us", "UTC"))
    return changes.select(
        pl.col(key).alias("key"),
        "change_kind",
        "rule",
        pl.Series("content_hash", hashes, dtype=pl.Utf8),
        pl.lit(snapshot.sequence, pl.Int64).alias("source_sequence"),
        pl.Series("payload", payloads, dtype=pl.Utf8),
        pl.col("status").alias("target_status"),
        start.cast(pl.Datetime("us", "UTC")).alias("target_start_at"),
        pl.col("unit_hsa_id").alias("target_unit"),
        pl.lit(snapshot.extracted_at, pl.Datetime("us", "UTC")).alias("extracted_at"),
    )


def commit_plan(
    state_dir: Path,
    *,
    run_id: str,
    bookings: BookingDraft | None,
    ticket_draft: TicketDraft | None,
    snapshot: SnapshotRef,
    now: datetime,
) -> dict:
    """Write the outbox and the holds before any push (the crash-safety step).

    The payloads are built with the store closed (an initial load builds hundreds of
    thousands); it is open again only to write them.
    """
    by_type: dict[str, pl.DataFrame] = {}
    failed: dict[str, list[dict]] = {APPOINTMENT: [], SERVICE_REQUEST: []}
    if bookings is not None:
        by_type[APPOINTMENT] = _outbox_rows(
            state_dir, bookings.changes, resource_type=APPOINTMENT, key="booking_id",
            builder=build_appointment, snapshot=snapshot, failed=failed[APPOINTMENT],
        )
    if ticket_draft is not None:
        by_type[SERVICE_REQUEST] = _outbox_rows(
            state_dir, ticket_draft.changes, resource_type=SERVICE_REQUEST, key="basis_id",
            builder=build_service_request, snapshot=snapshot, failed=failed[SERVICE_REQUEST],
        )
    with open_state(state_dir) as con:
        written = store.write_plan(con, by_type, plan_id=run_id, now=now)
        crashpoints.reached("after-plan")
        held = {"bookings": 0, "tickets": 0}
        if bookings is not None:
            holds = pl.concat([bookings.holds, pl.DataFrame(failed[APPOINTMENT], schema=HOLD_COLUMNS)])
            store.replace_holds(con, holds, resource_type=APPOINTMENT, now=now)
            held["bookings"] = holds.height
            store.replace_unit_departures(
                con, bookings.unit_left.select(pl.col("booking_id").alias("key"), "unit_hsa_id"), now=now
            )
        if ticket_draft is not None:
            holds = pl.concat([ticket_draft.holds, pl.DataFrame(failed[SERVICE_REQUEST], schema=HOLD_COLUMNS)])
            store.replace_holds(con, holds, resource_type=SERVICE_REQUEST, now=now)
            held["tickets"] = holds.height
    counts = {**{rt: vars(w) for rt, w in written.items()}, "holds": held}
    if ticket_draft is not None:
        # Bases that get no ticket this run (R15 not yet due, R05/R17/R18 rejected) belong in
        # the run's ticket counts too: a run without a new drop still issues what fell due.
        counts[SERVICE_REQUEST] = {**counts[SERVICE_REQUEST], **ticket_draft.counts}
    return counts


_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,80}")


def classify(outcome: EntryOutcome) -> tuple[str, str | None]:
    """How a Clinic24 answer settles an outbox entry: (new status, reason).

    409 stale means Clinic24 already holds a newer state of the resource: the entry is done
    (and recorded, so it is not re-planned every run), with the note. A dead letter's reason
    keeps Clinic24's diagnostics only when it is a code-like token: free text from another
    system may name the patient, and reasons reach `status`, artifacts and reports.
    """
    if outcome.outcome == "accepted":
        return "done", None
    if outcome.outcome == "stale":
        return "done", "stale: Clinic24 holds a newer source-sequence (409)"
    if outcome.outcome == "rejected":
        if outcome.diagnostics == GUARDIAN_DIAGNOSTICS:
            return "held", "R12 needs-primary-guardian"
        diagnostics = outcome.diagnostics or ""
        shown = diagnostics if _TOKEN.fullmatch(diagnostics) else "(diagnostics withheld)" if diagnostics else ""
        return "dead", f"{outcome.http_status} {outcome.code or ''}: {shown}".strip(" :")
    return "pending", f"transient: {outcome.http_status or 'no answer'}"


def resolve_in_doubt(
    state_dir: Path,
    drafts: dict[str, pl.DataFrame],
    client: Clinic24Client,
    *,
    now: datetime,
) -> int:
    """Read back pending writes the new plan would drop, and record what Clinic24 holds.

    `drafts` maps a resource type to its draft changes. Returns how many resources were
    found in Clinic24 (the caller re-plans when it is more than zero): a create whose answer
    was lost and whose booking Cosmic then cancelled is cancelled, not forgotten.
    """
    keys_of = {APPOINTMENT: "booking_id", SERVICE_REQUEST: "basis_id"}
    read = {APPOINTMENT: client.get_appointment, SERVICE_REQUEST: client.get_service_request}
    found = 0
    # The store is closed while Clinic24 is read; each observation is written as it comes.
    with open_state(state_dir) as con:
        in_doubt = {
            resource_type: store.in_doubt_entries(con, resource_type, changes.get_column(keys_of[resource_type]).to_list())
            for resource_type, changes in drafts.items()
        }
    for resource_type, entries in in_doubt.items():
        for entry in entries:
            held = read[resource_type](entry["key"])
            if held is None:
                continue
            body = {k: v for k, v in held.items() if k not in ("id", "meta")}
            with open_state(state_dir) as con:
                store.observe(
                    con, resource_type, entry["key"], body,
                    status=body["status"], start_at=_instant(body.get("start")), unit=_location(body),
                    content_hash=entry["content_hash"] if body == entry["payload"] else None,
                    version=(held.get("meta") or {}).get("versionId"), now=now,
                )
            found += 1
    return found


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _location(resource: dict) -> str | None:
    """The unit HSA-id of an Appointment's Location participant or a ticket's performer."""
    actors = [p.get("actor", {}) for p in resource.get("participant", [])] + resource.get("performer", [])
    return next((a["identifier"]["value"] for a in actors if a.get("type") == "Location"), None)


SETTLED_SCHEMA = {
    "change_id": pl.Utf8, "outcome": pl.Utf8, "new_status": pl.Utf8, "reason": pl.Utf8, "version": pl.Utf8,
    "settled_at": pl.Datetime("us", "UTC"), "resource_type": pl.Utf8, "key": pl.Utf8, "target_status": pl.Utf8,
    "target_start_at": pl.Datetime("us", "UTC"), "target_unit": pl.Utf8, "content_hash": pl.Utf8,
    "source_sequence": pl.Int64,
}
_RECORDED = ("resource_type", "key", "target_status", "target_start_at", "target_unit", "content_hash",
             "source_sequence")


def push_pending(
    state_dir: Path, client: Clinic24Client, *, clock: Callable[[], datetime],
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Send every pending outbox entry and settle each answer as its batch completes.

    The store is held through a lease: kept between batches, let go whenever another
    process waits for it (a `status`, a report), so nothing waits for the whole push.
    `progress(done, total)` is called after each settled batch (issue 11.8). A SIGINT/SIGTERM
    on the command line lets the batch in hand settle, then stops (issue 11.2, `interrupts`).
    """
    lock = threading.Lock()
    tally: dict[str, int] = {}
    by_type: dict[str, dict[str, int]] = {}
    with lease(state_dir) as held_store:
        with held_store.connection() as con:
            entries = store.pending_entries(con)
        if not entries:
            return {"sent": 0}
        type_of = {e["change_id"]: e["resource_type"] for e in entries}
        entry_of = {e["change_id"]: e for e in entries}
        for e in entries:
            per_type = by_type.setdefault(e["resource_type"], {"sent": 0})
            per_type["sent"] += 1

        def settle_batch(outcomes: list[EntryOutcome]) -> None:
            now = clock()
            rows = []
            for o in outcomes:
                new_status, reason = classify(o)
                tally[new_status] = tally.get(new_status, 0) + 1
                per_type = by_type[type_of[o.change_id]]
                per_type[new_status] = per_type.get(new_status, 0) + 1
                entry = entry_of[o.change_id]
                rows.append(
                    {"change_id": o.change_id, "outcome": o.outcome, "new_status": new_status,
                     "reason": reason, "version": o.version, "settled_at": now,
                     **{k: entry[k] for k in _RECORDED}}
                )
            frame = pl.DataFrame(rows, schema=SETTLED_SCHEMA)
            with lock:
                crashpoints.reached("before-settle")
                with held_store.connection() as con:
                    store.settle(con, frame)
                crashpoints.reached("after-settle")
            if progress is not None:
                progress(sum(tally.values()), len(entries))
            interrupts.checkpoint()

        with interrupts.deferred():
            client.upsert(
                [UpsertEntry(e["change_id"], e["resource_type"], e["key"], e["resource"]) for e in entries],
                on_batch_settled=settle_batch,
            )
        # Per resource type as well, so tickets show their own counts beside the bookings'.
        return {"sent": len(entries), **tally, **by_type}


@contextmanager
def exclusive_run(state_dir: Path) -> Iterator[bool]:
    """Hold the state folder's sync lock for one cycle; yields False when another run has it.

    Prefect's deployment limit keeps scheduled runs apart, but not a command-line `sync` or a
    run that resumes from a pause; an OS file lock covers every case and dies with its process.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "sync.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
