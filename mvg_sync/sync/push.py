"""Pushing the outbox to Clinic24 and settling each answer (issue 5): classify, in-doubt read-back, push."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl

from mvg_sync import interrupts
from mvg_sync.clinic24 import fragments
from mvg_sync.clinic24.client import Clinic24Client, EntryOutcome, UpsertEntry
from mvg_sync.store import lease
from mvg_sync.store import outbox as store
from mvg_sync.store.plan_reads import open_state
from mvg_sync.store.types import OutboxStatus, ResourceType
from mvg_sync.sync import crashpoints

APPOINTMENT, SERVICE_REQUEST = ResourceType.APPOINTMENT, ResourceType.SERVICE_REQUEST
GUARDIAN_DIAGNOSTICS = "primary-guardian-missing"


_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,80}")


def classify(outcome: EntryOutcome) -> tuple[str, str | None]:
    """How a Clinic24 answer settles an outbox entry: (new status, reason).

    409 stale means Clinic24 already holds a newer state of the resource: the entry is done
    (and recorded, so it is not re-planned every run), with the note. A dead letter's reason
    keeps Clinic24's diagnostics only when it is a code-like token: free text from another
    system may name the patient, and reasons reach `status`, artifacts and reports.
    """
    if outcome.outcome == "accepted":
        return OutboxStatus.DONE, None
    if outcome.outcome == "stale":
        return OutboxStatus.DONE, "stale: Clinic24 holds a newer source-sequence (409)"
    if outcome.outcome == "rejected":
        if outcome.diagnostics == GUARDIAN_DIAGNOSTICS:
            return OutboxStatus.HELD, "R12 needs-primary-guardian"
        diagnostics = outcome.diagnostics or ""
        shown = diagnostics if _TOKEN.fullmatch(diagnostics) else "(diagnostics withheld)" if diagnostics else ""
        return OutboxStatus.DEAD, f"{outcome.http_status} {outcome.code or ''}: {shown}".strip(" :")
    return OutboxStatus.PENDING, f"transient: {outcome.http_status or 'no answer'}"


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
            held = read[resource_type](entry.key)
            if held is None:
                continue
            body = {k: v for k, v in held.items() if k not in ("id", "meta")}
            with open_state(state_dir) as con:
                store.observe(
                    con, resource_type, entry.key, body,
                    status=body["status"], start_at=fragments.instant(body.get("start")), unit=fragments.location(body),
                    content_hash=entry.content_hash if body == entry.payload else None,
                    version=(held.get("meta") or {}).get("versionId"), now=now,
                )
            found += 1
    return found


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
            rechecks = store.guardian_rechecks(con) if entries else set()
        if not entries:
            return {"sent": 0}
        # R11: a drop's changes first, then the R12 re-checks of children Clinic24 refused last
        # time (thousands a cycle, nearly all refused again), so they never stand in front of a
        # change's acceptance (issue 12). Stable: each group keeps its outbox order.
        entries.sort(key=lambda e: e.resource_type == ResourceType.APPOINTMENT and e.key in rechecks)
        type_of = {e.change_id: str(e.resource_type) for e in entries}  # summary keys stay plain strings
        entry_of = {e.change_id: e for e in entries}
        for e in entries:
            per_type = by_type.setdefault(str(e.resource_type), {"sent": 0})
            per_type["sent"] += 1

        def settle_batch(outcomes: list[EntryOutcome]) -> None:
            now = clock()
            rows = []
            for o in outcomes:
                new_status, reason = classify(o)
                counted = str(new_status)  # the run summary's keys stay plain strings (its dict form)
                tally[counted] = tally.get(counted, 0) + 1
                per_type = by_type[type_of[o.change_id]]
                per_type[counted] = per_type.get(counted, 0) + 1
                entry = entry_of[o.change_id]
                rows.append(
                    {"change_id": o.change_id, "outcome": o.outcome, "new_status": new_status,
                     "reason": reason, "version": o.version, "settled_at": now,
                     **{k: getattr(entry, k) for k in _RECORDED}}
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
                [UpsertEntry(e.change_id, e.resource_type, e.key, e.resource) for e in entries],
                on_batch_settled=settle_batch,
            )
        # Per resource type as well, so tickets show their own counts beside the bookings'.
        return {"sent": len(entries), **tally, **by_type}
