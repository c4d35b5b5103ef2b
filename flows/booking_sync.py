"""booking_sync: ingest Cosmic drops, plan, guard, push to Clinic24, record (issues 4 and 5)."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed

from mvg_sync.logfilter import install_pii_filter
from mvg_sync.settings import load_settings
from mvg_sync.sync import cycle, health, store
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
    Docs of the drops ingested are written last, after the push.
    """
    install_pii_filter()
    settings = load_settings()
    with cycle.exclusive_run(settings.state_dir) as alone:
        if not alone:
            return {"outcome": "skipped: another sync is running", "steps": {}}
        if wait_for_drop_s > 0:
            result = _long_poll(settings, as_of, wait_for_drop_s)
        else:
            result = _cycle(settings, as_of)
        document_drop_quality(settings.state_dir)  # after the push: GX is off the hot path
        return result


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
        if not _approved_in_ui(settings.state_dir, bookings.snapshot.extract_id):
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
    summary["steps"]["retention"] = purge_expired(settings)
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
    with cycle.open_state(state_dir) as con:
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
    except Exception:  # noqa: BLE001, S110 - best effort: the held outcome follows either way
        pass


def _mark_offered(path: Path, outcome: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{outcome} {utc_now().isoformat()}\n")
