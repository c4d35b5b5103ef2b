"""booking_sync: ingest Cosmic drops, plan, guard, push to Clinic24, record (issues 4 and 5)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed

from mvg_sync.logfilter import install_pii_filter, one_line
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
        try:
            if wait_for_drop_s > 0:
                return _long_poll(settings, as_of, wait_for_drop_s)
            return _cycle(settings, as_of)
        except Exception as exc:
            _record_failure(settings.state_dir, one_line(exc))
            raise


def _record_failure(state_dir: Path, cause: str) -> None:
    """The failure's time and one-line cause, for `mvg-sync status` (issue 11.3)."""
    try:
        con = cycle.open_state(state_dir)
        try:
            now = utc_now()
            store.record_run(con, uuid.uuid4().hex[:12], plan_id=None, as_of=now, outcome="failed",
                             counts={"cause": cause}, now=now)
        finally:
            con.close()
    except Exception:  # noqa: BLE001, S110 - the state itself may be what failed; the run's own error stands
        pass


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
    ingested = ingest_drops(settings.landing_dir, settings.state_dir, as_of=now)
    summary["steps"]["ingest"] = health.ingest_summary(ingested)
    units = fetch_clinic24_units(settings)
    bookings, tickets = _plan(settings, units, now)
    if bookings is not None and (warning := _unit_mismatch(bookings, units, settings)):
        summary["warnings"] = [warning]
        get_run_logger().warning(warning)
    if bookings is None:
        summary["outcome"] = "nothing to do"
        publish_run_summary(settings.state_dir, run_id, summary, started)
        return summary
    summary["extract_id"] = bookings.snapshot.extract_id
    if bookings.snapshot.extract_id in ingested.accepted:
        # Only the run that brings the drop is named after it: idle runs planning from the
        # same snapshot kept their own names (issue 11.7: several runs shared one name).
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
    try:
        summary["steps"]["push"] = push_outbox(settings)
        push_error = None
    except Exception as exc:  # noqa: BLE001 - Clinic24 gone mid-push: the outbox keeps the rest, say so below
        summary["steps"]["push"], push_error = {"error": one_line(exc)}, exc
    summary["steps"]["retention"] = purge_expired(settings)
    left = _pending_left(settings.state_dir)
    if left:
        cause = one_line(push_error) if push_error else "Clinic24 did not accept them"
        summary["outcome"], summary["cause"] = "failed", f"{left} changes still pending ({cause})"
    summary.update(publish_run_summary(settings.state_dir, run_id, summary, started))
    if left:
        return Failed(message=f"{summary['cause']}; the next sync retries them.", data=summary)
    return summary


def _unit_mismatch(bookings, units: list[str], settings) -> str | None:
    """R01 leaves every booking out when no unit of the drop is one Clinic24 lists: say so and
    what to do (issue 11.3: `generate` + the default `sandbox` ended in 0 changes, silently)."""
    if bookings.counts.get("bookings_in_snapshot", 0) == 0 or bookings.counts.get("desired", 0) > 0:
        return None
    from mvg_sync.state import load_snapshot

    in_drop = load_snapshot(settings.state_dir, "bookings").get_column("unit_hsa_id").unique().to_list()
    if set(in_drop) & set(units):
        return None  # out of scope for other reasons (R02-R05), not a unit mismatch
    drop = bookings.snapshot.extract_id
    where = f"{settings.clinic24_base_url} lists {len(units)} units"
    todo = (
        f"start the sandbox with this drop's units: `mvg-sync sandbox --units {settings.landing_dir / drop}/enheter.csv`"
        if settings.is_sandbox else "check CLINIC24_BASE_URL and the units Clinic24 serves (R01)"
    )
    return f"no unit of drop {drop} is one Clinic24 knows ({where}); nothing is synced. To fix: {todo}"


def _pending_left(state_dir: Path) -> int:
    """Outbox entries still pending after the push: work left, so the run is not "done" (issue 14)."""
    con = cycle.open_state(state_dir)
    try:
        return con.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    finally:
        con.close()


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
