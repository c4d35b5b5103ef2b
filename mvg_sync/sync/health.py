"""Sync health figures from the state store: latency (R11), holds, dead letters. Counts only."""

from __future__ import annotations

from datetime import datetime

from mvg_sync.store import queries
from mvg_sync.store.queries import r11_latency
from mvg_sync.store.types import OPEN_STATUSES, Connection, DropOutcome


def ingest_summary(report) -> dict:
    """Drops by outcome and rows by fate, from an `IngestReport` (counts only).

    A rejected drop's files carry None for what was never counted (the file that failed and
    those after it): None adds nothing, and never crashes the run (issues 11 and 14). Rows
    count as accepted or quarantined only in an accepted drop: a rejected drop keeps none.
    """
    outcomes: dict[str, int] = {}
    rows = {"rows_in": 0, "accepted": 0, "quarantined": 0}
    for drop in report.drops:
        outcomes[drop.outcome] = outcomes.get(drop.outcome, 0) + 1
        for f in drop.files:
            rows["rows_in"] += f.rows_in or 0
            if drop.outcome == DropOutcome.ACCEPTED:
                rows["accepted"] += f.accepted or 0
                rows["quarantined"] += f.quarantined or 0
    return {"drops": len(report.drops), **{f"drops_{k}": v for k, v in outcomes.items()},
            "gaps": len(report.gaps), **rows}


def latency_since(con: Connection, since: datetime) -> dict:
    """R11: seconds from a drop's `extracted_at` to Clinic24's acceptance, for changes accepted since `since`.

    An acceptance stamped before its extract (clock skew between Cosmic and this host, or a
    back-dated `as_of`) is counted as `clock_skewed`, not averaged into the percentiles.
    """
    latency = r11_latency(con, start=since, digits=1)  # the query the sync-health report uses
    return {k: latency[k] for k in ("accepted", "clock_skewed", "p50_s", "p95_s", "max_s")}


def open_items(con: Connection) -> dict:
    """Counts of what is not accepted yet, by state and reason (no patient data)."""
    return {
        "outbox": [
            {"status": str(o.status), "resource_type": str(o.resource_type), "reason": o.reason, "count": o.count}
            for o in queries.outbox_counts(con, OPEN_STATUSES)
        ],
        "holds": [{"resource_type": str(h.resource_type), "rule": h.rule, "reason": h.reason, "count": h.count}
                  for h in queries.hold_counts(con)],
        "awaiting_approval": [
            {"extract_id": a.extract_id, "cancels": a.cancels, "live": a.live, "reason": a.reason}
            for a in queries.awaiting_approval(con)
        ],
        "unit_left_clinic24": queries.departed_count(con),
    }


def open_items_markdown(items: dict) -> str:
    """The open items as a short markdown page for the Prefect UI."""
    lines = ["# Open items", ""]
    if items["awaiting_approval"]:
        lines += ["## Awaiting approval (mass-cancellation guard)", ""]
        lines += [
            f"- `{a['extract_id']}`: {a['reason']} — run `mvg-sync approve {a['extract_id']}`"
            for a in items["awaiting_approval"]
        ]
        lines.append("")
    lines += ["## Held (not pushed, re-checked every run)", "", "| resource | rule | reason | count |", "|---|---|---|---|"]
    lines += [f"| {h['resource_type']} | {h['rule']} | {h['reason']} | {h['count']} |" for h in items["holds"]]
    lines += ["", "## Outbox", "", "| status | resource | reason | count |", "|---|---|---|---|"]
    lines += [f"| {o['status']} | {o['resource_type']} | {o['reason']} | {o['count']} |" for o in items["outbox"]]
    lines += ["", f"Bookings not synced because their unit left Clinic24 (R09): {items['unit_left_clinic24']}"]
    return "\n".join(lines)
