"""Named reads that several readers share: `status`, the run summary, the sync-health and ticket reports.

One query per figure (the R11 latency query serves the run summary and report 4 alike).
Every value is bound as a parameter; statuses, kinds and types come from `store.types`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime

import polars as pl

from mvg_sync.store.types import (
    Approval,
    ApprovalStatus,
    ChangeKind,
    Connection,
    HeldKey,
    HoldCount,
    OutboxCount,
    OutboxStatus,
    ResourceType,
    RunRow,
    first_row,
)

R11_TARGET_S = 300.0  # R11: p95 under 5 minutes from extract to Clinic24's acceptance
R12 = "R12"
_FAR = datetime(9999, 1, 1, tzinfo=UTC)

# R11: seconds from a drop's `extracted_at` to Clinic24's acceptance, per change accepted in
# [start, end). An acceptance before its extract's timestamp is clock skew between Cosmic and
# this host (or a back-dated `as_of`): counted apart, never allowed to pull the percentiles
# under the target.
R11_LATENCY_SQL = """
WITH accepted AS (
    SELECT extract(epoch FROM settled_at) - extract(epoch FROM extracted_at) AS s FROM outbox
    WHERE status = $done AND last_outcome = 'accepted' AND extracted_at IS NOT NULL
      AND settled_at >= $start AND settled_at < $end
)
SELECT count(*) FILTER (WHERE s >= 0) AS accepted,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FILTER (WHERE s >= 0) AS p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s) FILTER (WHERE s >= 0) AS p95_s,
       max(s) FILTER (WHERE s >= 0) AS max_s,
       avg(CASE WHEN s < $target THEN 1.0 ELSE 0.0 END) FILTER (WHERE s >= 0) AS share_under_5_min,
       count(*) FILTER (WHERE s < 0) AS clock_skewed
FROM accepted
"""


def tables(con: Connection) -> set[str]:
    """The tables the store has (a store that only ever ingested has no sync tables before v1 ran)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()}


def r11_latency(
    con: Connection, *, start: datetime, end: datetime | None = None, digits: int = 3
) -> dict[str, float | int | None]:
    """accepted, p50_s, p95_s, max_s, share_under_5_min, clock_skewed for [start, end)."""
    row = first_row(con.execute(R11_LATENCY_SQL, {
        "done": OutboxStatus.DONE, "start": start, "end": end or _FAR, "target": R11_TARGET_S}))
    names = ("accepted", "p50_s", "p95_s", "max_s", "share_under_5_min", "clock_skewed")
    out: dict[str, float | int | None] = dict(zip(names, row, strict=True))
    out["accepted"] = int(out["accepted"] or 0)
    out["clock_skewed"] = int(out["clock_skewed"] or 0)
    for key in ("p50_s", "p95_s", "max_s", "share_under_5_min"):
        value = out[key]
        out[key] = None if value is None else round(float(value), digits)
    return out


# --- report 4 (sync health): one frame per section; periods are half-open UTC [start, end) ---

_DROPS_SQL = """
SELECT outcome, count(*) AS drops
FROM drops WHERE processed_at >= $start AND processed_at < $end
GROUP BY outcome ORDER BY outcome
"""
_GAPS_SQL = """
SELECT after_sequence, before_sequence, missing, detected_at
FROM sequence_gaps WHERE detected_at >= $start AND detected_at < $end
ORDER BY detected_at, after_sequence
"""
_CHANGES_SQL = """
SELECT resource_type, change_kind, status, count(*) AS changes
FROM outbox WHERE created_at >= $start AND created_at < $end
GROUP BY resource_type, change_kind, status ORDER BY resource_type, change_kind, status
"""
_LATENCY_DAILY_SQL = """
SELECT CAST(timezone($tz, settled_at) AS DATE) AS day, count(*) AS accepted,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM settled_at) - extract(epoch FROM extracted_at)) AS p95_s
FROM outbox
WHERE status = $done AND last_outcome = 'accepted' AND extracted_at IS NOT NULL
  AND settled_at >= $start AND settled_at < $end AND settled_at >= extracted_at
GROUP BY CAST(timezone($tz, settled_at) AS DATE) ORDER BY day
"""
_QUARANTINE_SQL = """
SELECT coalesce(file, '(hela leveransen)') AS file, rule, reason, count(*) AS rows_quarantined,
       count(DISTINCT extract_id) AS drops
FROM quarantine WHERE quarantined_at >= $start AND quarantined_at < $end
GROUP BY coalesce(file, '(hela leveransen)'), rule, reason
ORDER BY rows_quarantined DESC, file, rule, reason
"""
_HOLDS_SQL = """
SELECT resource_type, rule, reason, count(*) AS held, min(since) AS oldest_since
FROM holds GROUP BY resource_type, rule, reason
ORDER BY rule <> $r12, held DESC, resource_type, rule, reason
"""
_DEAD_SQL = """
SELECT resource_type, change_kind, coalesce(reason, '') AS reason, count(*) AS dead
FROM outbox WHERE status = $dead GROUP BY resource_type, change_kind, coalesce(reason, '')
ORDER BY dead DESC, resource_type, change_kind, reason
"""
_DEPARTURES_SQL = """
SELECT unit_hsa_id, count(*) AS bookings, min(noted_at) AS noted_at
FROM unit_departures GROUP BY unit_hsa_id ORDER BY bookings DESC, unit_hsa_id
"""
_APPROVALS_SQL = """
SELECT extract_id, cancels, live, reason, held_at FROM approvals WHERE status = $held ORDER BY extract_id
"""

# Tables each query needs; a state store without the sync's tables (no sync yet) reads as empty.
_HEALTH: dict[str, tuple[str, tuple[str, ...], dict[str, pl.DataType]]] = {
    "drops": (_DROPS_SQL, ("drops",), {"outcome": pl.String(), "drops": pl.Int64()}),
    "gaps": (_GAPS_SQL, ("sequence_gaps",), {
        "after_sequence": pl.Int64(), "before_sequence": pl.Int64(), "missing": pl.Int64(),
        "detected_at": pl.Datetime("us", "UTC")}),
    "changes": (_CHANGES_SQL, ("outbox",), {
        "resource_type": pl.String(), "change_kind": pl.String(), "status": pl.String(),
        "changes": pl.Int64()}),
    "latency_daily": (_LATENCY_DAILY_SQL, ("outbox",), {
        "day": pl.Date(), "accepted": pl.Int64(), "p95_s": pl.Float64()}),
    "quarantine": (_QUARANTINE_SQL, ("quarantine",), {
        "file": pl.String(), "rule": pl.String(), "reason": pl.String(),
        "rows_quarantined": pl.Int64(), "drops": pl.Int64()}),
    "holds": (_HOLDS_SQL, ("holds",), {
        "resource_type": pl.String(), "rule": pl.String(), "reason": pl.String(),
        "held": pl.Int64(), "oldest_since": pl.Datetime("us", "UTC")}),
    "dead_letters": (_DEAD_SQL, ("outbox",), {
        "resource_type": pl.String(), "change_kind": pl.String(), "reason": pl.String(),
        "dead": pl.Int64()}),
    "unit_departures": (_DEPARTURES_SQL, ("unit_departures",), {
        "unit_hsa_id": pl.String(), "bookings": pl.Int64(), "noted_at": pl.Datetime("us", "UTC")}),
    "awaiting_approval": (_APPROVALS_SQL, ("approvals",), {
        "extract_id": pl.String(), "cancels": pl.Int64(), "live": pl.Int64(),
        "reason": pl.String(), "held_at": pl.Datetime("us", "UTC")}),
}


def _frame(con: Connection, sql: str, params: dict, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = con.sql(sql, params=params).pl()
    assert isinstance(frame, pl.DataFrame)
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def health_frames(
    con: Connection, *, start: datetime, end: datetime, tz: str, present: set[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Report 4's sections for [start, end) (holds, dead letters, departures and approvals are
    the current state, not the period's); days of the latency series are local to `tz`."""
    present = tables(con) if present is None else present
    values = {"start": start, "end": end, "tz": tz, "done": OutboxStatus.DONE, "dead": OutboxStatus.DEAD,
              "held": ApprovalStatus.HELD, "r12": R12}
    frames: dict[str, pl.DataFrame] = {}
    for name, (sql, needs, schema) in _HEALTH.items():
        if not set(needs) <= present:
            frames[name] = pl.DataFrame(schema=schema)
            continue
        frames[name] = _frame(con, sql, {k: v for k, v in values.items() if f"${k}" in sql}, schema)
    return frames


HELD_SCHEMA: dict[str, pl.DataType] = {
    "resource_type": pl.String(), "key": pl.String(), "unit_hsa_id": pl.String(),
    "rule": pl.String(), "reason": pl.String(), "since": pl.Datetime("us", "UTC"),
}

# The holds table is re-planned every run (outbox.replace_holds). An outbox entry settled `held`
# is the other kind: Clinic24 refused the visit itself, and `outbox.settle` records the rule it
# is held for (R12) in its `rule` column. The newest such entry per key counts once, and not
# at all when the key is in `holds` too.
_HELD_SQL = """
WITH outbox_held AS (
    SELECT resource_type, key, target_unit AS unit_hsa_id, rule,
           coalesce(reason, '') AS reason, coalesce(settled_at, created_at) AS since,
           row_number() OVER (PARTITION BY resource_type, key ORDER BY created_at DESC) AS newest
    FROM outbox WHERE status = $held
)
SELECT resource_type, key, unit_hsa_id, rule, reason, since FROM holds
UNION ALL
SELECT o.resource_type, o.key, o.unit_hsa_id, o.rule, o.reason, o.since FROM outbox_held o
WHERE o.newest = 1
  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.resource_type = o.resource_type AND h.key = o.key)
"""


def held_entries(con: Connection, present: set[str] | None = None) -> pl.DataFrame:
    """Every held booking and basis now: one row per (resource_type, key), `HELD_SCHEMA`."""
    present = tables(con) if present is None else present
    if not {"holds", "outbox"} <= present:
        return pl.DataFrame(schema=HELD_SCHEMA)
    return _frame(con, _HELD_SQL, {"held": OutboxStatus.HELD}, HELD_SCHEMA)


# --- `status` and the run's open items ---

def held_keys(con: Connection) -> list[HeldKey]:
    """Every held booking and ticket with its rule, unit and reason: `holds`, and the outbox
    entries Clinic24 refused on the push, matched by their `rule` (R12), never by reason text."""
    rows = con.execute(
        "SELECT resource_type, rule, unit_hsa_id, key, reason FROM holds "
        "UNION ALL SELECT resource_type, rule, target_unit, key, coalesce(reason, '') FROM outbox "
        "WHERE status = ? AND rule = ?",
        [OutboxStatus.HELD, R12],
    ).fetchall()
    return [HeldKey(ResourceType(rt), rule, unit, key, why) for rt, rule, unit, key, why in rows]


def outbox_counts(con: Connection, statuses: Collection[OutboxStatus]) -> list[OutboxCount]:
    """Outbox entries in `statuses`, counted by status, resource type and reason."""
    wanted = pl.DataFrame({"status": [str(s) for s in statuses]}, schema={"status": pl.String})
    con.register("_wanted_statuses", wanted)
    try:
        rows = con.execute(
            "SELECT status, resource_type, coalesce(reason, '') AS reason, count(*) FROM outbox "
            "WHERE status IN (SELECT status FROM _wanted_statuses) "
            "GROUP BY status, resource_type, coalesce(reason, '') ORDER BY status, resource_type, reason"
        ).fetchall()
    finally:
        con.unregister("_wanted_statuses")
    return [OutboxCount(OutboxStatus(s), ResourceType(rt), why, int(n)) for s, rt, why, n in rows]


def hold_counts(con: Connection) -> list[HoldCount]:
    rows = con.execute(
        "SELECT resource_type, rule, reason, count(*) FROM holds GROUP BY resource_type, rule, reason "
        "ORDER BY resource_type, rule, reason"
    ).fetchall()
    return [HoldCount(ResourceType(rt), rule, why, int(n)) for rt, rule, why, n in rows]


def awaiting_approval(con: Connection) -> list[Approval]:
    """Drops the mass-cancellation guard holds, by extract id."""
    rows = con.execute(
        "SELECT extract_id, cancels, live, reason FROM approvals WHERE status = ? ORDER BY extract_id",
        [ApprovalStatus.HELD],
    ).fetchall()
    return [Approval(*row) for row in rows]


def departed_count(con: Connection) -> int:
    """Bookings not synced because their unit left Clinic24 (R09)."""
    return int(first_row(con.execute("SELECT count(*) FROM unit_departures"))[0])


def last_run(con: Connection, *, outcome: str | None = None) -> RunRow | None:
    """The newest recorded sync run (with `outcome`: the newest with that outcome)."""
    query = "SELECT finished_at, outcome, counts FROM sync_runs"
    params: list[object] = []
    if outcome is not None:
        query += " WHERE outcome = ?"
        params.append(outcome)
    row = first_row(con.execute(query + " ORDER BY finished_at DESC LIMIT 1", params))
    return None if row is None else RunRow(row[0], row[1], json.loads(row[2] or "{}"))


# --- report 3 (tickets) ---

_TICKET_RECORD_SQL = (
    "SELECT key AS basis_id, status, accepted_at FROM clinic24_record WHERE resource_type = $rt"
)
# The record is overwritten when a ticket ends; the accepted issue in the outbox keeps its time.
_TICKET_ISSUES_SQL = (
    "SELECT key AS basis_id, min(settled_at) AS issued_at FROM outbox "
    "WHERE resource_type = $rt AND change_kind = $issue AND status = $done AND last_outcome = 'accepted' "
    "GROUP BY key"
)


def ticket_state(con: Connection) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """(ticket record: basis_id, status, accepted_at; issue acceptances: basis_id, issued_at;
    Clinic24's cached unit list) — empty where the sync has not created its tables yet."""
    present = tables(con)
    record = pl.DataFrame(schema={"basis_id": pl.String, "status": pl.String,
                                  "accepted_at": pl.Datetime("us", "UTC")})
    issues = pl.DataFrame(schema={"basis_id": pl.String, "issued_at": pl.Datetime("us", "UTC")})
    locations: list[str] = []
    if "clinic24_record" in present:
        record = _frame(con, _TICKET_RECORD_SQL, {"rt": ResourceType.SERVICE_REQUEST}, dict(record.schema))
    if "outbox" in present:
        issues = _frame(con, _TICKET_ISSUES_SQL, {
            "rt": ResourceType.SERVICE_REQUEST, "issue": ChangeKind.ISSUE, "done": OutboxStatus.DONE},
            dict(issues.schema))
    if "locations" in present:
        locations = [r[0] for r in con.execute("SELECT unit_hsa_id FROM locations ORDER BY unit_hsa_id").fetchall()]
    return record, issues, locations
