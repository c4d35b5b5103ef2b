"""booking_sync: ingest Cosmic drops, plan, guard, push to Clinic24, record (issues 4 and 5)."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed

from mvg_sync.fileperms import private_dir, private_file
from mvg_sync.logfilter import install_pii_filter, one_line
from mvg_sync.settings import load_settings
from mvg_sync.store import outbox as store
from mvg_sync.store import plan_reads
from mvg_sync.sync import health, runlock
from mvg_sync.sync.summary import GuardStep, RunSummary
from mvg_sync.timeutil import resolve_as_of, utc_now
from tasks.ingest import document_drop_quality, ingest_drops, wait_for_drop
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


class RunNotDone(Exception):
    """The run ends Failed on purpose (a drop held for approval, changes left pending): the
    message says what to do and `summary` is the run's summary. A Failed state must carry an
    exception: one carrying the summary dict made Prefect's engine log a traceback for every
    held run ("… cannot be resolved into an exception")."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary

    def __reduce__(self):
        return (RunNotDone, (str(self), self.summary))


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
    one running (a lock in the state folder) does nothing. GX validation results and Data
    Docs of the drops ingested are written last, after the push. The result is the
    `RunSummary`'s dict form, as it always was (the command line, tests and the UI read it).
    """
    install_pii_filter()
    settings = load_settings()
    with runlock.exclusive_run(settings.state_dir) as alone:
        if not alone:
            return RunSummary.skipped().as_dict()
        try:
            if wait_for_drop_s > 0:
                result = _long_poll(settings, as_of, wait_for_drop_s)
            else:
                result = _cycle(settings, as_of)
        except Exception as exc:
            _record_failure(settings.state_dir, one_line(exc))
            raise
        _document_quality(settings.state_dir)
        return result.as_dict() if isinstance(result, RunSummary) else result


def _document_quality(state_dir: Path) -> None:
    """GX validation results and Data Docs, after the push (GX is off the hot path, issue 12).

    The gate has already decided every drop; a failure here (GX, or GX disagreeing with the
    gate) is logged as an error and shown as a failed task, and leaves the profiles for the
    next run, but never replaces the cycle's own outcome (a held drop stays exit 3).
    """
    try:
        document_drop_quality(state_dir)
    except Exception as exc:  # noqa: BLE001 - logged; the run's outcome is the cycle's
        get_run_logger().error("Data Docs not written: %s; the next run tries again", one_line(exc))


def _record_failure(state_dir: Path, cause: str) -> None:
    """The failure's time and one-line cause, for `mvg-sync status` (issue 11.3)."""
    try:
        with plan_reads.open_state(state_dir) as con:
            now = utc_now()
            store.record_run(con, uuid.uuid4().hex[:12], plan_id=None, as_of=now, outcome="failed",
                             counts={"cause": cause}, now=now)
    except Exception as exc:  # noqa: BLE001 - the state itself may be what failed; the run's own error stands
        get_run_logger().warning("the failure could not be recorded for `mvg-sync status`: %s", one_line(exc))


def window_left(window_s: float, scheduled: datetime | None, now: datetime) -> float:
    """What is left of a run's long-poll window, which is counted from its scheduled start.

    A run that starts late (queued behind the previous one, whose last cycle ran past the
    tick, or behind a run paused for approval) polls only the rest of its window: the queue
    drains instead of every queued run polling a whole window (prefect.yaml: `ENQUEUE`).
    """
    if scheduled is None:
        return window_s
    late = max((now - scheduled).total_seconds(), 0.0)  # a worker's clock a little behind: on time
    return max(window_s - late, 0.0)


def _scheduled_start() -> datetime | None:
    try:
        return runtime.flow_run.scheduled_start_time
    except Exception:  # noqa: BLE001 - no run context (a plain function call): the window as given
        return None


def _long_poll(settings, as_of: str | None, window_s: float):
    """Wait for drops until `window_s` after the run's scheduled start and run a cycle for
    each as it lands; at least one cycle.

    With no drop in the window, the one cycle runs at its end (tickets fall due and held
    children are re-checked without a drop). A drop that lands while a cycle runs is taken
    by the next cycle of the same run if the window is still open, else by the next run:
    one cycle per run let a drop landing during the cycle wait for the next tick.
    """
    deadline = time.monotonic() + window_left(window_s, _scheduled_start(), utc_now())
    cycles: list[RunSummary] = []
    while True:
        wait = wait_for_drop(settings.landing_dir, settings.state_dir, max(deadline - time.monotonic(), 0.0))
        if cycles and not wait["drop_landed"]:
            break
        result = _cycle(settings, as_of, wait=wait)
        if not isinstance(result, RunSummary):  # a drop held for approval: the run ends Failed
            return result
        cycles.append(result)
        if time.monotonic() >= deadline:
            break
    return replace(cycles[-1], cycles=cycles)


def _cycle(settings, as_of: str | None, *, wait: dict | None = None):
    now = resolve_as_of(as_of)
    started = utc_now()
    run_id = uuid.uuid4().hex[:12]
    summary = RunSummary.start(run_id, now, started)
    summary.steps.wait = wait
    ingested = ingest_drops(settings.landing_dir, settings.state_dir, as_of=now)
    summary.steps.ingest = health.ingest_summary(ingested)
    # Asked for after ingest, in this thread, not beside it: a run stopped (SIGINT) while a
    # request waited for Clinic24 in a task's thread waited out every retry (40 s, tested in
    # test_interrupts); beside ingest it saved only ~0.1 s (docs/benchmarks.md, session 6).
    units = fetch_clinic24_units(settings)
    bookings, tickets = _plan(settings, units, now)
    if bookings is not None and (warning := _unit_mismatch(bookings, units, settings)):
        summary.warnings = [warning]
        get_run_logger().warning(warning)
    if bookings is None:
        summary.outcome = "nothing to do"
        publish_run_summary(settings.state_dir, run_id, summary, started)
        return summary
    summary.extract_id = bookings.snapshot.extract_id
    if bookings.snapshot.extract_id in ingested.accepted:
        # Only the run that brings the drop is named after it: idle runs planning from the
        # same snapshot kept their own names (issue 11.7: several runs shared one name).
        name_flow_run(bookings.snapshot.extract_id)

    guard = mass_cancellation_guard(bookings, tickets, settings)
    summary.steps.guard = GuardStep(cancels=guard.cancels, live=guard.live, held=int(guard.held))
    if guard.held:
        if not _approved_in_ui(settings.state_dir, bookings.snapshot.extract_id):
            summary.outcome = "held"
            publish_run_summary(settings.state_dir, run_id, summary, started)
            message = (
                f"Drop {bookings.snapshot.extract_id} held for approval: {guard.reason}. "
                f"Release it with `mvg-sync approve {bookings.snapshot.extract_id}`."
            )
            return Failed(message=message, data=RunNotDone(message, summary))
        bookings, tickets = _plan(settings, units, now)  # the pause may have lasted hours

    summary.steps.plan = write_outbox(settings.state_dir, run_id, bookings, tickets, bookings.snapshot)
    try:
        summary.steps.push = push_outbox(settings)
        push_error = None
    except Exception as exc:  # noqa: BLE001 - Clinic24 gone mid-push: the outbox keeps the rest, say so below
        summary.steps.push, push_error = {"error": one_line(exc)}, exc
    summary.steps.retention = purge_expired(settings, now)
    left = _pending_left(settings.state_dir)
    if left:
        cause = one_line(push_error) if push_error else "Clinic24 did not accept them"
        summary.outcome, summary.cause = "failed", f"{left} changes still pending ({cause})"
    summary.latency, summary.open_items = publish_run_summary(settings.state_dir, run_id, summary, started)
    if left:
        message = f"{summary.cause}; the next sync retries them."
        return Failed(message=message, data=RunNotDone(message, summary))
    return summary


def _unit_mismatch(bookings, units: list[str], settings) -> str | None:
    """R01 leaves every booking out when no unit of the drop is one Clinic24 lists: say so and
    what to do (issue 11.3: `generate` + the default `sandbox` ended in 0 changes, silently)."""
    if bookings.counts.get("bookings_in_snapshot", 0) == 0 or bookings.counts.get("desired", 0) > 0:
        return None
    from mvg_sync.store.drops import load_snapshot

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
    with plan_reads.open_state(state_dir) as con:
        return store.pending_count(con)


def _plan(settings, units: list[str], now):
    """Draft both plans; read back unconfirmed writes they would drop, and re-draft if found."""
    bookings, tickets = _draft_both(settings.state_dir, units, now)
    if bookings is None:
        return None, None
    if confirm_in_doubt_writes(settings, bookings, tickets):
        bookings, tickets = _draft_both(settings.state_dir, units, now)
    return check_child_guardians(bookings, settings), tickets


def _draft_both(state_dir: Path, units: list[str], now):
    """The booking and the ticket plan side by side (issue 12: latency). Neither waits for the
    other: both only read the store and the snapshots, and DuckDB and Polars do their work
    outside the interpreter lock, so the ticket plan's ~0.5 s hides under the booking plan's."""
    tickets = draft_ticket_plan.submit(state_dir, units, now)
    try:
        bookings = draft_booking_plan(state_dir, units, now)
    finally:
        tickets.wait()  # a booking plan that raised still lets the ticket plan end before the flow does
    return bookings, tickets.result()


def approval_key(extract_id: str) -> str:
    """The pause key of a drop's approval form: lowercase letters, digits and dashes only.

    Prefect names the form's inputs `paused-<key>-schema` etc. and refuses anything else
    (`20261203T114700-000002` failed on its `T`). The digest of the exact id keeps two ids
    that differ only in case or punctuation apart.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", extract_id.lower()).strip("-")
    digest = hashlib.sha256(extract_id.encode()).hexdigest()[:8]
    return f"approve-{slug}-{digest}"


def _approved_in_ui(state_dir: Path, extract_id: str) -> bool:
    """In a deployment, pause for an operator's approval instead of failing the run.

    The form is offered once per held drop: a run that finds a drop whose form was already
    answered or left unanswered until the timeout ends held, so that a newer drop is taken
    by the next run instead of waiting for another form. While a run is paused it keeps the
    state folder's lock, so later scheduled runs skip rather than pile up paused. A form
    that cannot be shown or read (Prefect refused it, the answer did not validate) is no
    answer: the run ends held with the `mvg-sync approve` hint and the next run offers the
    form again, so a broken form never leaves the command line as the only way out.
    Outside a deployment (the command line) there is nobody to ask: the run ends held and
    `mvg-sync approve` releases the drop for the next run.
    """
    if not runtime.deployment.id:
        return False
    key = approval_key(extract_id)
    offered = state_dir / "approval_forms" / key
    if offered.exists():
        return False
    logger = get_run_logger()
    try:
        answer = pause_flow_run(wait_for_input=MassCancellationApproval, timeout=APPROVAL_TIMEOUT_S, key=key)
    except FlowPauseTimeout:
        _mark_offered(offered, "timeout")
        logger.warning("Nobody answered the approval form for drop %s within %d h; it stays held.",
                       extract_id, APPROVAL_TIMEOUT_S // 3600)
        return False
    except Exception as exc:  # noqa: BLE001 - any failure of the form leaves the drop held, never the run broken
        _leave_pause()
        logger.warning("The approval form for drop %s failed (%s: %s); the drop stays held and the next "
                       "run offers the form again, or release it with `mvg-sync approve %s`.",
                       extract_id, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", extract_id)
        return False
    _mark_offered(offered, "approved" if answer.approve else "rejected")
    if not answer.approve:
        logger.warning("Drop %s rejected in the approval form; it stays held until a newer drop supersedes it.",
                       extract_id)
        return False
    with plan_reads.open_state(state_dir) as con:
        return store.approve(con, extract_id, now=utc_now())
def _leave_pause() -> None:
    """Put a run the failed form left Paused back to Running, so it can record and end held.

    Prefect sets Paused before it stores the form: a form refused after that (the bad key of
    issue 11) left the run Paused, and the server refuses task runs of a paused flow run.
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(runtime.flow_run.id).state
            if current is not None and current.is_paused():
                client.set_flow_run_state(runtime.flow_run.id, Running(), force=True)
    except Exception as exc:  # noqa: BLE001 - best effort: the held outcome follows either way
        get_run_logger().warning("the paused run could not be set back to Running: %s", one_line(exc))


def _mark_offered(path: Path, outcome: str) -> None:
    private_dir(path.parent)
    path.write_text(f"{outcome} {utc_now().isoformat()}\n")
    private_file(path)
