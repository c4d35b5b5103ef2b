"""Prefect tasks of the booking sync: thin wrappers that show each step in the UI.

Retries only where the network is involved (Clinic24). No task caches: inputs are frames
and settings, and a sync step must run every time it is asked to.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from mvg_sync.clinic24.client import Clinic24Client, Clinic24Error, InsecureBaseURL
from mvg_sync.retention import purge
from mvg_sync.settings import Settings
from mvg_sync.store import outbox as store
from mvg_sync.store import plan_reads
from mvg_sync.store.types import ResourceType
from mvg_sync.sync import commit, health, push
from mvg_sync.sync import draft as drafting
from mvg_sync.sync.summary import Counts, RunSummary
from mvg_sync.timeutil import utc_now


def _client(settings: Settings) -> Clinic24Client:
    client_id, secret = settings.clinic24_credentials()
    return Clinic24Client(settings.clinic24_base_url, client_id, secret)


def _transport_failure(task, task_run, state) -> bool:
    """Retry a Clinic24 task once, and only for a transport failure that escaped the client.

    The client's own RetryPolicy has already spent its budget on a Clinic24Error (unreachable,
    throttled, 5xx): retrying it on top stretched an unreachable Clinic24 to 77 s and re-sent
    refused credentials (issues 11, 14). A wrong URL or setting, a store that stayed busy for
    its bounded wait, and bugs fail at once too; the next scheduled run comes within minutes.
    """
    error = state.result(raise_on_failure=False)
    return isinstance(error, httpx.TransportError) and not isinstance(error, Clinic24Error | InsecureBaseURL)


NETWORK_RETRIES = {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": _transport_failure}


@task(name="fetch-clinic24-units", **NETWORK_RETRIES, cache_policy=NO_CACHE)
def fetch_clinic24_units(settings: Settings) -> list[str]:
    """R01: Clinic24's own unit list, cached in the state store for the record."""
    with _client(settings) as client:
        units = client.list_locations()
    with plan_reads.open_state(settings.state_dir) as con:
        store.save_locations(con, units, now=utc_now())
    get_run_logger().info("Clinic24 lists %d units", len(units))
    return units


@task(name="draft-booking-plan", cache_policy=NO_CACHE)
def draft_booking_plan(state_dir: Path, units: list[str], as_of: datetime) -> drafting.BookingDraft | None:
    """R01–R10: what should change in Clinic24 (nothing written yet)."""
    draft = drafting.draft_booking_plan(state_dir, units, as_of=as_of)
    if draft is not None:
        get_run_logger().info(
            "Plan from %s: %d changes, %d held", draft.snapshot.extract_id, draft.changes.height, draft.holds.height
        )
    return draft


@task(name="name-flow-run", cache_policy=NO_CACHE)
def name_flow_run(extract_id: str) -> None:
    """Name the run after the drop it plans from, so the UI lists runs by drop id."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=f"sync {extract_id} ({flow_run.id[:8]})")


@task(name="check-child-guardians", **NETWORK_RETRIES, cache_policy=NO_CACHE)
def check_child_guardians(draft: drafting.BookingDraft, settings: Settings) -> drafting.BookingDraft:
    """R12: children's digital visits wait for a primary guardian in Clinic24."""
    if draft.guardian_candidates.height == 0:
        return draft
    with _client(settings) as client:
        answers = drafting.check_guardians(settings.state_dir, draft, client)
    return drafting.apply_guardians(draft, answers)


@task(name="confirm-in-doubt-writes", **NETWORK_RETRIES, cache_policy=NO_CACHE)
def confirm_in_doubt_writes(
    settings: Settings, bookings: drafting.BookingDraft, tickets: drafting.TicketDraft | None
) -> int:
    """Read back unconfirmed writes the plan would drop; the count says whether to re-plan."""
    drafts = {ResourceType.APPOINTMENT: bookings.changes}
    if tickets is not None:
        drafts[ResourceType.SERVICE_REQUEST] = tickets.changes
    with _client(settings) as client:
        found = push.resolve_in_doubt(settings.state_dir, drafts, client, now=utc_now())
    if found:
        get_run_logger().warning("%d unconfirmed writes found in Clinic24; re-planning", found)
    return found


@task(name="mass-cancellation-guard", cache_policy=NO_CACHE)
def mass_cancellation_guard(
    draft: drafting.BookingDraft, tickets: drafting.TicketDraft | None, settings: Settings
) -> drafting.GuardOutcome:
    """Hold a drop that would cancel (or revoke) more than MVG_MAX_CANCEL_SHARE of what is live."""
    return drafting.apply_guard(
        settings.state_dir, draft, tickets, max_share=settings.max_cancel_share,
        floor=settings.cancel_guard_floor, now=utc_now(),
    )


@task(name="draft-ticket-plan", cache_policy=NO_CACHE)
def draft_ticket_plan(state_dir: Path, units: list[str], as_of: datetime) -> drafting.TicketDraft | None:
    """R14–R19: tickets that fall due, complete or are withdrawn."""
    return drafting.draft_ticket_plan(state_dir, units, as_of=as_of)


@task(name="write-outbox", cache_policy=NO_CACHE)
def write_outbox(
    state_dir: Path,
    run_id: str,
    bookings: drafting.BookingDraft | None,
    tickets: drafting.TicketDraft | None,
    snapshot: plan_reads.SnapshotRef,
) -> dict:
    """Every planned change is stored, with its payload, before anything is pushed."""
    return commit.commit_plan(
        state_dir, run_id=run_id, bookings=bookings, ticket_draft=tickets, snapshot=snapshot, now=utc_now()
    )


@task(name="push-outbox", cache_policy=NO_CACHE)
def push_outbox(settings: Settings) -> dict:
    """Send pending changes in batches; each answer settles its entry as it arrives.

    No task-level retries: the client retries each batch itself, and what still fails
    stays pending in the outbox for the next run.
    """
    with _client(settings) as client:
        return push.push_pending(settings.state_dir, client, clock=utc_now, progress=PushProgress())


PROGRESS_KEY = "booking-sync-push-progress"


class PushProgress:
    """Done/total, rate and ETA of a push (issue 11.8: an initial load ran for minutes, silent).

    A Prefect progress artifact from the first settled batch on, and a line on stderr when it
    is a terminal or the command runs with -v. Both throttled to one update per
    `every_s`, and always the last (100 %). Counts only.
    """

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.started = time.monotonic()
        self.shown_at = float("-inf")
        self.artifact_id = None
        self.to_terminal = sys.stderr.isatty() or os.environ.get("MVG_VERBOSE") == "1"

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.shown_at < self.every_s:
            return
        self.shown_at = now
        percent = round(100.0 * done / total, 1) if total else 100.0
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        line = (f"push: {done:,}/{total:,} changes ({percent:.0f} %), {rate:,.0f}/s, "
                + (f"ETA {eta:,.0f} s" if eta is not None and done < total else f"done in {elapsed:,.0f} s"))
        description = f"Changes settled by Clinic24: {line.removeprefix('push: ')}"
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(progress=percent, key=PROGRESS_KEY, description=description)
        else:
            update_progress_artifact(self.artifact_id, progress=percent, description=description)
        if self.to_terminal:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


@task(name="purge-expired", cache_policy=NO_CACHE)
def purge_expired(settings: Settings, as_of: datetime | None = None) -> dict:
    """Retention: processed drops, quarantine rows and old outbox entries past MVG_RETENTION_DAYS.

    Measured from the earlier of the wall clock and the run's `as_of` (see `purge`): a run
    with a future `--as-of` purges nothing a real day's data still needs, and a back-dated
    one never purges the drops it has just processed.
    """
    counts = purge(
        settings.state_dir, settings.landing_dir, older_than_days=settings.retention_days, now=utc_now(),
        as_of=as_of,
    )
    return {k: v for k, v in counts.items() if k != "cutoff"}


@task(name="publish-run-summary", cache_policy=NO_CACHE)
def publish_run_summary(state_dir: Path, run_id: str, summary: RunSummary, since: datetime) -> tuple[Counts, Counts]:
    """Counts per kind, holds, dead letters and latency: aggregates only, no patient data.

    Returns this run's (latency, open items).
    """
    with plan_reads.open_state(state_dir) as con:
        latency = health.latency_since(con, since)
        open_items = health.open_items(con)
        store.record_run(
            con, run_id, plan_id=summary.extract_id, as_of=summary.as_of,
            outcome=summary.outcome, counts=summary.stored_counts(latency), now=utc_now(),
        )
    rows = [{"step": step, "measure": name, "value": value} for step, name, value in summary.steps.flat()]
    rows += [{"step": "latency", "measure": k, "value": v} for k, v in latency.items() if v is not None]
    create_table_artifact(key="booking-sync-counts", table=rows, description=f"Sync run {run_id}")
    create_markdown_artifact(
        key="booking-sync-open-items",
        markdown=health.open_items_markdown(open_items),
        description="Held and dead-lettered changes: counts and reasons",
    )
    return latency, open_items
