"""booking_sync: ingest Cosmic drops, plan, guard, push to Clinic24, record (issues 4 and 5)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from prefect import flow, runtime
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed

from mvg_sync.logfilter import install_pii_filter
from mvg_sync.settings import load_settings
from mvg_sync.sync import cycle, health, store
from mvg_sync.timeutil import resolve_as_of, utc_now
from tasks.ingest import ingest_drops, wait_for_drop
from tasks.sync import (
    check_child_guardians,
    confirm_in_doubt_writes,
    draft_booking_plan,
    draft_ticket_plan,
    fetch_clinic24_units,
    mass_cancellation_guard,
    name_flow_run,
    publish_run_summary,
    purge_expired,
    push_outbox,
    write_outbox,
)

APPROVAL_TIMEOUT_S = 4 * 3600


class MassCancellationApproval(RunInput):
    """The form operations fill in to release a drop held by the guard."""

    approve: bool
    approved_by: str


@flow(name="booking_sync")
def booking_sync(as_of: str | None = None, wait_for_drop_s: float = 0.0) -> dict:
    """One cycle: ingest → validate → plan → guard → push → record (more when long-polling).

    `as_of` (ISO date-time with offset) is "now" for due dates and ages; default: the wall
    clock when each cycle starts. `wait_for_drop_s` > 0 is the deployment's long-poll (see
    `_long_poll`): cycles run as drops land for that long, so a drop is synced within a
    second of landing rather than at the next tick; the command line uses 0, one cycle.
    Returns a patient-free summary (the last cycle's, with `cycles` listing each when
    long-polling); a drop held for approval ends the run Failed with a message saying which
    drop and how to release it (exit status 3 on the command line). A run that finds another
    one running (a lock in the state folder) does nothing.
    """
    install_pii_filter()
    settings = load_settings()
    with cycle.exclusive_run(settings.state_dir) as alone:
        if not alone:
            return {"outcome": "skipped: another sync is running", "steps": {}}
        if wait_for_drop_s > 0:
            return _long_poll(settings, as_of, wait_for_drop_s)
        return _cycle(settings, as_of)


def _long_poll(settings, as_of: str | None, window_s: float):
    """Wait for drops for `window_s` and run a cycle for each as it lands; at least one cycle.

    With no drop in the window, the one cycle runs at its end (tickets fall due and held
    children are re-checked without a drop). A drop that lands while a cycle runs is taken
    by the next cycle of the same run if the window is still open, else by the next run:
    one cycle per run let a drop landing during the cycle wait for the next tick.
    """
    deadline = time.monotonic() + window_s
    cycles: list[dict] = []
    while True:
        wait = wait_for_drop(settings.landing_dir, settings.state_dir, max(deadline - time.monotonic(), 0.0))
        if cycles and not wait["drop_landed"]:
            break
        result = _cycle(settings, as_of, wait=wait)
        if not isinstance(result, dict):  # a drop held for approval: the run ends Failed
            return result
        cycles.append(result)
        if time.monotonic() >= deadline:
            break
    return {**cycles[-1], "cycles": cycles}


def _cycle(settings, as_of: str | None, *, wait: dict | None = None):
    now = resolve_as_of(as_of)
    started = utc_now()
    run_id = uuid.uuid4().hex[:12]
    summary: dict = {"run_id": run_id, "as_of": now, "started_at": started, "outcome": "done", "steps": {}}
    if wait is not None:
        summary["steps"]["wait"] = wait
    summary["steps"]["ingest"] = health.ingest_summary(ingest_drops(settings.landing_dir, settings.state_dir, as_of=now))
    units = fetch_clinic24_units(settings)
    bookings, tickets = _plan(settings, units, now)
    if bookings is None:
        summary["outcome"] = "nothing to do"
        publish_run_summary(settings.state_dir, run_id, summary, started)
        return summary
    summary["extract_id"] = bookings.snapshot.extract_id
    name_flow_run(bookings.snapshot.extract_id)

    guard = mass_cancellation_guard(bookings, tickets, settings)
    summary["steps"]["guard"] = {"cancels": guard.cancels, "live": guard.live, "held": int(guard.held)}
    if guard.held:
        if not (guard.newly_held and _approved_in_ui(settings.state_dir, bookings.snapshot.extract_id)):
            summary["outcome"] = "held"
            publish_run_summary(settings.state_dir, run_id, summary, started)
            return Failed(
                message=(
                    f"Drop {bookings.snapshot.extract_id} held for approval: {guard.reason}. "
                    f"Release it with `mvg-sync approve {bookings.snapshot.extract_id}`."
                ),
                data=summary,
            )
        bookings, tickets = _plan(settings, units, now)  # the pause may have lasted hours

    summary["steps"]["plan"] = write_outbox(settings.state_dir, run_id, bookings, tickets, bookings.snapshot)
    summary["steps"]["push"] = push_outbox(settings)
    summary["steps"]["retention"] = purge_expired(settings, now)
    summary.update(publish_run_summary(settings.state_dir, run_id, summary, started))
    return summary


def _plan(settings, units: list[str], now):
    """Draft both plans; read back unconfirmed writes they would drop, and re-draft if found."""
    bookings = draft_booking_plan(settings.state_dir, units, now)
    if bookings is None:
        return None, None
    tickets = draft_ticket_plan(settings.state_dir, units, now)
    if confirm_in_doubt_writes(settings, bookings, tickets):
        bookings = draft_booking_plan(settings.state_dir, units, now)
        tickets = draft_ticket_plan(settings.state_dir, units, now)
    return check_child_guardians(bookings, settings), tickets


def _approved_in_ui(state_dir: Path, extract_id: str) -> bool:
    """In a deployment, pause for an operator's approval instead of failing the run.

    Only the run that first holds a drop pauses: Prefect frees the concurrency slot of a
    paused run, so later scheduled runs would otherwise pile up paused on the same drop;
    they end held instead. Outside a deployment (the command line) there is nobody to ask:
    the run ends held and `mvg-sync approve` releases the drop for the next run.
    """
    if not runtime.deployment.id:
        return False
    answer = pause_flow_run(
        wait_for_input=MassCancellationApproval, timeout=APPROVAL_TIMEOUT_S, key=f"approve-{extract_id}"
    )
    if not answer.approve:
        return False
    con = cycle.open_state(state_dir)
    try:
        return store.approve(con, extract_id, now=utc_now())
    finally:
        con.close()
