"""The sync's own tables in the state store: outbox, Clinic24 record, holds, approvals.

Crash safety rests on three facts kept here:
1. every planned change is written to the outbox, with the exact payload it will send,
   before anything is pushed, in one transaction;
2. the record of what Clinic24 has changes only from an accepted answer, in the same
   transaction that settles the outbox entry;
3. planning converges the outbox to (desired − record): an open entry for the same key and
   content is kept (so a retry re-sends identical bytes), anything else open is superseded.
A crash between any two statements therefore leaves either the old or the new state, and the
next run re-plans from the record, re-sending at most what Clinic24 may already have (which
the API makes idempotent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from mvg_sync.store import transaction
from mvg_sync.store.migrations import upgrade
from mvg_sync.store.types import (
    ApprovalStatus,
    Connection,
    InDoubtEntry,
    OutboxStatus,
    PendingEntry,
    ResourceType,
    first_row,
)

PENDING, HELD, DEAD, DONE, SUPERSEDED = (
    OutboxStatus.PENDING, OutboxStatus.HELD, OutboxStatus.DEAD, OutboxStatus.DONE, OutboxStatus.SUPERSEDED)
APPOINTMENT, SERVICE_REQUEST = ResourceType.APPOINTMENT, ResourceType.SERVICE_REQUEST
# R12: the one rule an entry is held for on the push (Clinic24 refused the child's visit for a
# missing primary guardian: `sync.push.classify`); `settle` writes it into `outbox.rule`.
R12 = "R12"
REFUSED = "rejected"  # outbox.last_outcome of an answer in which Clinic24 refused the entry


def ensure_schema(con: Connection) -> None:
    """Bring a connection's database to the current schema (the store's migrations; idempotent).

    `mvg_sync.store.connect` does this on open; this is for in-memory databases in tests.
    """
    upgrade(con)


RECORD_COLUMNS = ("key", "status", "start_at", "unit_hsa_id", "content_hash", "source_sequence", "version",
                  "accepted_at")
# What a booking plan reads of the record (R06-R10 compare status, start, unit and hash).
PLAN_RECORD_COLUMNS = RECORD_COLUMNS[:5]


def load_record(con: Connection, resource_type: str, columns: tuple[str, ...] = RECORD_COLUMNS) -> pl.DataFrame:
    """What Clinic24 has accepted for one resource type, one row per key: `columns` of
    `RECORD_COLUMNS` (issue 12: the plan reads 5 of the 8 at 400 k rows, 0.7x the time)."""
    if not set(columns) <= set(RECORD_COLUMNS):
        raise ValueError(f"clinic24_record has no column {sorted(set(columns) - set(RECORD_COLUMNS))}")
    return con.sql(
        f"SELECT {', '.join(columns)} FROM clinic24_record WHERE resource_type = ?",  # noqa: S608 - names checked above
        params=[resource_type],
    ).pl()


def correct_record(con: Connection, *, missing: list[str], seen: pl.DataFrame, now: datetime) -> None:
    """Reconciliation (issue 4): make the Appointment record say what Clinic24 holds, in one transaction.

    `missing`: keys Clinic24 does not have (dropped from the record). `seen` (key, seen_status,
    seen_start_at, seen_unit): what it holds instead, recorded with no content hash, so the next
    ordinary plan repairs Clinic24 through the outbox, the guard and settlement. The one write of
    the record that is not an accepted answer; it never claims content Clinic24 accepted.
    """
    with transaction(con):
        if missing:
            con.register("_missing_keys", pl.DataFrame({"key": missing}, schema={"key": pl.String}))
            try:
                con.execute(
                    "DELETE FROM clinic24_record WHERE resource_type = ? "
                    "AND key IN (SELECT key FROM _missing_keys)",
                    [APPOINTMENT],
                )
            finally:
                con.unregister("_missing_keys")
        if seen.height:
            con.register("_seen_fix", seen.select("key", "seen_status", "seen_start_at", "seen_unit"))
            try:
                con.execute(
                    "INSERT INTO clinic24_record (resource_type, key, status, start_at, unit_hsa_id, "
                    "  content_hash, source_sequence, version, accepted_at) "
                    "SELECT ?, key, seen_status, seen_start_at, seen_unit, NULL, NULL, NULL, ? FROM _seen_fix "
                    "ON CONFLICT (resource_type, key) DO UPDATE SET status = excluded.status, "
                    "start_at = excluded.start_at, unit_hsa_id = excluded.unit_hsa_id, "
                    "content_hash = NULL, accepted_at = excluded.accepted_at",
                    [APPOINTMENT, now],
                )
            finally:
                con.unregister("_seen_fix")


def live_synced_count(con: Connection, *, since: datetime) -> int:
    """Bookings Clinic24 holds as booked from `since` on: the base of the mass-cancellation share.

    Past visits stay `booked` in the record for good (leaving the window sends nothing), so
    counting them would let the guard's share grow weaker every day.
    """
    return first_row(con.execute(
        "SELECT count(*) FROM clinic24_record WHERE resource_type = ? AND status = 'booked' "
        "AND (start_at IS NULL OR start_at >= ?)",
        [APPOINTMENT, since],
    ))[0]


def active_ticket_count(con: Connection) -> int:
    """Tickets Clinic24 holds as active: the base of the ticket-revocation share."""
    return first_row(con.execute(
        "SELECT count(*) FROM clinic24_record WHERE resource_type = ? AND status = 'active'", [SERVICE_REQUEST]
    ))[0]


def observe(
    con: Connection, resource_type: str, key: str, resource: dict, *,
    status: str, start_at: datetime | None, unit: str | None, content_hash: str | None,
    version: str | None, now: datetime,
) -> None:
    """Record what Clinic24 was seen to hold (read back), in one transaction.

    The record then says what Clinic24 really has — so the next plan sends what is needed
    to reach Cosmic's truth — and the payload is kept for ending changes.
    """
    with transaction(con):
        con.execute(
            "INSERT INTO clinic24_record VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?) "
            "ON CONFLICT (resource_type, key) DO UPDATE SET status = excluded.status, "
            "start_at = excluded.start_at, unit_hsa_id = excluded.unit_hsa_id, "
            "content_hash = excluded.content_hash, version = excluded.version, accepted_at = excluded.accepted_at",
            [resource_type, key, status, start_at, unit, content_hash, version, now],
        )
        con.execute(
            "INSERT INTO clinic24_observed VALUES (?, ?, ?, ?) ON CONFLICT (resource_type, key) "
            "DO UPDATE SET payload = excluded.payload, observed_at = excluded.observed_at",
            [resource_type, key, json.dumps(resource, ensure_ascii=False, separators=(",", ":")), now],
        )


@dataclass(frozen=True)
class OutboxWrite:
    """What one planning run did to the outbox."""

    inserted: int
    kept: int
    superseded: int


def write_plan(
    con: Connection,
    changes_by_type: dict[str, pl.DataFrame],
    *,
    plan_id: str,
    now: datetime,
) -> dict[str, OutboxWrite]:
    """Converge the open outbox entries to the planned changes, in ONE transaction.

    Each frame in `changes_by_type` (keyed by resource type) has: key, change_kind, rule,
    content_hash, source_sequence, payload (JSON text), target_status, target_start_at,
    target_unit, extracted_at. An open entry (pending or dead) with the same key and content
    hash is kept as it is, so a retry sends the same bytes and a dead letter stays dead until
    redriven; every other open entry of that resource type is superseded by this plan.
    """
    written: dict[str, OutboxWrite] = {}
    with transaction(con):
        for resource_type, changes in changes_by_type.items():
            written[resource_type] = _converge(con, changes, resource_type, plan_id, now)
    return written


def _converge(con, changes: pl.DataFrame, resource_type: str, plan_id: str, now: datetime) -> OutboxWrite:
    rows = changes.select(
        change_id=pl.lit(f"{plan_id}/{resource_type}/") + pl.col("key"),
        plan_id=pl.lit(plan_id),
        resource_type=pl.lit(resource_type),
        key="key", change_kind="change_kind", rule="rule", content_hash="content_hash",
        source_sequence="source_sequence", payload="payload", target_status="target_status",
        target_start_at="target_start_at", target_unit="target_unit", extracted_at="extracted_at",
    )
    con.register("plan_rows", rows)
    try:
        kept = first_row(con.execute(
            "SELECT count(*) FROM outbox o JOIN plan_rows p ON o.resource_type = p.resource_type AND o.key = p.key "
            "WHERE o.status IN (?, ?) AND o.content_hash = p.content_hash",
            [PENDING, DEAD],
        ))[0]
        superseded = con.execute(
            "UPDATE outbox SET status = ?, reason = 'superseded by plan ' || ?, settled_at = ? "
            "WHERE resource_type = ? AND status IN (?, ?, ?) AND NOT ("
            "  status IN (?, ?) AND EXISTS ("
            "    SELECT 1 FROM plan_rows p WHERE p.key = outbox.key AND p.content_hash = outbox.content_hash))",
            [SUPERSEDED, plan_id, now, resource_type, PENDING, HELD, DEAD, PENDING, DEAD],
        ).fetchone()[0]
        inserted = con.execute(
            "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
            "  source_sequence, payload, target_status, target_start_at, target_unit, status, attempts, "
            "  extracted_at, created_at) "
            "SELECT change_id, plan_id, resource_type, key, change_kind, rule, content_hash, source_sequence, "
            "  payload, target_status, target_start_at, target_unit, ?, 0, extracted_at, ? "
            "FROM plan_rows p WHERE NOT EXISTS ("
            "  SELECT 1 FROM outbox o WHERE o.resource_type = p.resource_type AND o.key = p.key "
            "  AND o.content_hash = p.content_hash AND o.status IN (?, ?))",
            [PENDING, now, PENDING, DEAD],
        ).fetchone()[0]
    finally:
        con.unregister("plan_rows")
    return OutboxWrite(inserted=inserted, kept=kept, superseded=superseded)


def replace_holds(
    con: Connection, holds: pl.DataFrame, *, resource_type: str, now: datetime
) -> None:
    """Replace the holds of one resource type (re-checked every run, R05/R12/R17…).

    `holds` has key, unit_hsa_id, rule, reason; a hold that persists keeps its `since`.
    """
    with transaction(con):
        con.register("new_holds", holds.select("key", "unit_hsa_id", "rule", "reason"))
        try:
            con.execute(
                "DELETE FROM holds WHERE resource_type = ? AND key NOT IN (SELECT key FROM new_holds)",
                [resource_type],
            )
            con.execute(
                "INSERT INTO holds SELECT ?, key, unit_hsa_id, rule, reason, ? FROM new_holds "
                "ON CONFLICT (resource_type, key) DO UPDATE SET rule = excluded.rule, reason = excluded.reason, "
                "unit_hsa_id = excluded.unit_hsa_id",
                [resource_type, now],
            )
        finally:
            con.unregister("new_holds")


def guardian_held_keys(con: Connection) -> list[str]:
    """Bookings currently held because the child has no primary guardian (R12), by the `rule` column:
    a guardian lookup's hold, or an entry Clinic24 refused on the push (`settle` records R12)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT key FROM holds WHERE resource_type = ? AND rule = ? "
            "UNION SELECT key FROM outbox WHERE resource_type = ? AND status = ? AND rule = ?",
            [APPOINTMENT, R12, APPOINTMENT, HELD, R12],
        ).fetchall()
    ]


def guardian_rechecks(con: Connection) -> set[str]:
    """Bookings whose pending entry re-sends a visit Clinic24 refused last time under R12.

    Clinic24 refuses a child's digital visit until the primary guardian exists (`422
    primary-guardian-missing`, settled held under R12), and every plan sends it again (the
    plan supersedes the held entry): thousands a cycle in a region, nearly all refused again.
    The push sends them after a drop's own changes (R11, issue 12).
    """
    rows = con.execute(
        "SELECT key FROM ("
        "  SELECT key, rule, last_outcome, row_number() OVER (PARTITION BY key ORDER BY created_at DESC) AS newest "
        "  FROM outbox WHERE resource_type = ? AND status <> ? "
        "  AND key IN (SELECT key FROM outbox WHERE resource_type = ? AND status = ?)) AS settled "
        "WHERE newest = 1 AND rule = ? AND last_outcome = ?",
        [APPOINTMENT, PENDING, APPOINTMENT, PENDING, R12, REFUSED],
    ).fetchall()
    return {r[0] for r in rows}


def in_doubt_entries(con: Connection, resource_type: str, planned_keys: list[str]) -> list[InDoubtEntry]:
    """Pending entries the new plan would drop although Clinic24 may already hold them.

    A pending entry may have been applied (a crash before its answer was recorded, or a lost
    answer). When the new plan changes the same key it sends a full upsert and nothing is
    lost; when the plan has nothing for the key (a cancel of a booking the record never saw,
    a basis gone before its ticket was confirmed), superseding it could leave Clinic24 with a
    booking Cosmic no longer has. Those entries are read back before planning for real.
    """
    con.register("_planned_keys", pl.DataFrame({"key": planned_keys}, schema={"key": pl.String}))
    try:
        rows = con.execute(
            "SELECT change_id, key, content_hash, payload FROM outbox WHERE status = ? AND resource_type = ? "
            "AND NOT EXISTS (SELECT 1 FROM _planned_keys p WHERE p.key = outbox.key) ORDER BY created_at",
            [PENDING, resource_type],
        ).fetchall()
    finally:
        con.unregister("_planned_keys")
    return [InDoubtEntry(c, k, h, json.loads(p)) for c, k, h, p in rows]


_PENDING_SQL = (
    "SELECT change_id, resource_type, key, payload, target_status, target_start_at, target_unit, "
    "content_hash, source_sequence FROM outbox WHERE status = ?"
)


def pending_entries(con: Connection, resource_type: str | None = None) -> list[PendingEntry]:
    """Open entries to push, oldest first, with their stored payloads as JSON text
    (`resource`: the client sends the text as it is, so it is never parsed here)."""
    # Two statements rather than `? IS NULL OR …`: PostgreSQL cannot type a bare NULL parameter.
    if resource_type is None:
        rows = con.execute(_PENDING_SQL + " ORDER BY created_at, change_id", [PENDING]).fetchall()
    else:
        rows = con.execute(
            _PENDING_SQL + " AND resource_type = ? ORDER BY created_at, change_id", [PENDING, resource_type]
        ).fetchall()
    return [
        PendingEntry(c, ResourceType(r), k, p, ts, start, unit, h, seq)
        for c, r, k, p, ts, start, unit, h, seq in rows
    ]


def pending_count(con: Connection) -> int:
    """Entries waiting to be pushed (the flow's long-poll checks it before waiting for a drop)."""
    return first_row(con.execute("SELECT count(*) FROM outbox WHERE status = ?", [PENDING]))[0]


# How each client outcome settles an outbox entry. `rejected` is decided per entry below.
_SETTLE_SQL = """
UPDATE outbox SET
    status = s.new_status, reason = s.reason, last_outcome = s.outcome, version = s.version,
    rule = coalesce(s.rule, outbox.rule),
    attempts = outbox.attempts + 1,
    settled_at = CASE WHEN s.new_status = $pending THEN NULL ELSE s.settled_at END
FROM settled s WHERE outbox.change_id = s.change_id AND outbox.status = $pending
"""

# The settled frame carries what the record needs, so settling a batch never joins the
# whole outbox (that join grew with every batch of an initial load).
_RECORD_SQL = """
INSERT INTO clinic24_record
SELECT s.resource_type, s.key, s.target_status, s.target_start_at, s.target_unit, s.content_hash,
       s.source_sequence, s.version, s.settled_at
FROM settled s
WHERE s.new_status = $done AND s.outcome IN ('accepted', 'stale')
ON CONFLICT (resource_type, key) DO UPDATE SET
    status = excluded.status, start_at = excluded.start_at, unit_hsa_id = excluded.unit_hsa_id,
    content_hash = excluded.content_hash, source_sequence = excluded.source_sequence,
    version = excluded.version, accepted_at = excluded.accepted_at
"""


def settle(con: Connection, outcomes: pl.DataFrame) -> None:
    """Record one batch's answers: outbox status and, for accepted ones, the record.

    `outcomes` has change_id, outcome, new_status, reason, version, settled_at and the
    entry's resource_type, key, target_status, target_start_at, target_unit, content_hash,
    source_sequence — see `mvg_sync.sync.push.push_pending`; optionally `rule`, the rule an
    entry is held or dead for. Without it an entry settled `held` is recorded under R12 (the
    only answer the push holds for), so `guardian_held_keys` and `status` find it by its rule.
    One transaction per batch, so a crash loses at most the answers of the batch in flight,
    which the next run re-sends identically.
    """
    if "rule" not in outcomes.columns:
        outcomes = outcomes.with_columns(
            rule=pl.when(pl.col("new_status") == HELD.value).then(pl.lit(R12)).otherwise(pl.lit(None, pl.String)))
    with transaction(con):
        con.register("settled", outcomes)
        try:
            con.execute(_RECORD_SQL, {"done": DONE})
            con.execute(_SETTLE_SQL, {"pending": PENDING})
        finally:
            con.unregister("settled")


def redrive(con: Connection) -> int:
    """Re-queue every dead letter; returns how many."""
    return con.execute(
        "UPDATE outbox SET status = ?, reason = 'redriven', attempts = 0, settled_at = NULL WHERE status = ?",
        [PENDING, DEAD],
    ).fetchone()[0]


def approval_status(con: Connection, extract_id: str) -> ApprovalStatus | None:
    row = first_row(con.execute("SELECT status FROM approvals WHERE extract_id = ?", [extract_id]))
    return ApprovalStatus(row[0]) if row else None


def hold_for_approval(
    con: Connection, extract_id: str, *, cancels: int, live: int, reason: str, now: datetime
) -> None:
    con.execute(
        "INSERT INTO approvals VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (extract_id) DO NOTHING",
        [extract_id, ApprovalStatus.HELD, cancels, live, reason, now],
    )


def approve(con: Connection, extract_id: str, *, now: datetime) -> bool:
    """Release a held drop; False when no such hold exists."""
    updated = con.execute(
        "UPDATE approvals SET status = ?, approved_at = ? WHERE extract_id = ? AND status = ?",
        [ApprovalStatus.APPROVED, now, extract_id, ApprovalStatus.HELD],
    ).fetchone()[0]
    return updated > 0


def supersede_other_approvals(con: Connection, extract_id: str) -> None:
    """A newer snapshot makes older held drops moot."""
    con.execute(
        "UPDATE approvals SET status = ? WHERE status = ? AND extract_id <> ?",
        [ApprovalStatus.SUPERSEDED, ApprovalStatus.HELD, extract_id],
    )


def save_locations(con: Connection, hsa_ids: list[str], *, now: datetime) -> None:
    with transaction(con):
        con.execute("DELETE FROM locations")
        if hsa_ids:
            con.executemany("INSERT INTO locations VALUES (?, ?)", [(h, now) for h in hsa_ids])


def cached_locations(con: Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT unit_hsa_id FROM locations ORDER BY 1").fetchall()]


def replace_unit_departures(con: Connection, departed: pl.DataFrame, *, now: datetime) -> None:
    """Bookings not synced because their unit left Clinic24 (R09), for sync health."""
    with transaction(con):
        con.execute("DELETE FROM unit_departures")
        if departed.height:
            con.register("departed", departed.select("key", "unit_hsa_id"))
            try:
                con.execute("INSERT INTO unit_departures SELECT key, unit_hsa_id, ? FROM departed", [now])
            finally:
                con.unregister("departed")


def record_run(
    con: Connection, run_id: str, *, plan_id: str | None, as_of: datetime,
    outcome: str, counts: dict, now: datetime,
) -> None:
    con.execute(
        "INSERT INTO sync_runs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
        "plan_id = excluded.plan_id, as_of = excluded.as_of, outcome = excluded.outcome, "
        "counts = excluded.counts, finished_at = excluded.finished_at",
        [run_id, plan_id, as_of, outcome, json.dumps(counts, sort_keys=True, default=str), now],
    )
