"""Implementations of the `mvg-sync` sub-commands that operate the sync (operations.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mvg_sync.settings import load_settings
from mvg_sync.timeutil import utc_now

if TYPE_CHECKING:
    from mvg_sync.sync.summary import RunSummary

EXIT_OK, EXIT_FAILED, EXIT_HELD, EXIT_DRIFT = 0, 1, 3, 4


def sync(args: argparse.Namespace) -> int:
    """One cycle as the `booking_sync` Prefect flow; 0 done, 1 failed, 3 held for approval.

    SIGINT/SIGTERM stop it within seconds with 130/143 (issue 11.2, `mvg_sync.interrupts`);
    without PREFECT_API_URL the temporary Prefect server is the command's own child, stopped
    after the run's last report and killed by the kernel if the command dies (issue 14).
    """
    from mvg_sync import interrupts, prefect_server
    from mvg_sync.logfilter import configure_console

    settings = load_settings()
    check_folders(settings, landing=True, state="create")
    interrupts.install()
    verbose = bool(getattr(args, "verbose", False) or getattr(args, "debug", False))
    server = None
    try:
        from flows.booking_sync import booking_sync

        configure_console(verbose=verbose, debug=bool(getattr(args, "debug", False)))
        server = prefect_server.start_if_needed()
        state = booking_sync(as_of=args.as_of, return_state=True)
        interrupts.checkpoint()
    finally:
        prefect_server.stop(server)
    from flows.booking_sync import RunNotDone
    from mvg_sync.sync.summary import RunSummary

    result = state.result(raise_on_failure=False)
    cause = None
    if isinstance(result, RunNotDone):  # held for approval, or changes left pending
        summary = result.summary
    elif isinstance(result, dict):
        summary = RunSummary.from_dict(result)
    else:  # the flow raised: its exception is the result
        summary, cause = RunSummary(outcome="failed"), result
    for warning in summary.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if state.is_failed():
        if summary.outcome == "held":
            print(state.message)
            return EXIT_HELD
        message = state.message or "sync failed"
        if isinstance(cause, BaseException):
            from mvg_sync.logfilter import one_line

            message = one_line(cause)
            if isinstance(cause, Exception):
                raise cause  # the command line's top turns it into one line and a hint
        print(f"sync failed: {message}")
        return EXIT_FAILED
    print(_summary_line(summary))
    return EXIT_OK


def _summary_line(summary: RunSummary) -> str:
    """The run's one line on stdout: outcome, drop, push counts and R11 latency (JSON)."""
    return json.dumps(
        {"outcome": summary.outcome, "extract_id": summary.extract_id,
         "push": summary.steps.push, "latency": summary.latency},
        default=str,
    )


class FolderMissing(RuntimeError):
    """A configured folder does not exist; the message names it and its variable."""


def check_folders(settings, *, landing: bool = False, state: str | None = None) -> None:
    """A missing landing or state folder is an error naming the folder and its variable (issue 11.3).

    `state="create"` (the sync): the first run creates the state folder, provided its parent
    exists, so a mistyped path still fails instead of silently starting a new state.
    """
    if landing and not settings.landing_dir.is_dir():
        raise FolderMissing(
            f"landing folder {settings.landing_dir} does not exist (MVG_LANDING_DIR); "
            "create it or point MVG_LANDING_DIR at the folder Cosmic writes drops to"
        )
    if state is None or settings.state_dir.is_dir():
        return
    if state == "create" and settings.state_dir.parent.is_dir():
        settings.state_dir.mkdir(mode=0o700)
        return
    raise FolderMissing(
        f"state folder {settings.state_dir} does not exist (MVG_STATE_DIR)"
        + ("; no drop has been ingested yet there: point MVG_STATE_DIR at the integration's state folder, "
           "or run `mvg-sync sync` first" if state != "create" else "; create its parent folder or correct MVG_STATE_DIR")
    )


def approve(args: argparse.Namespace) -> int:
    """Release a drop held by the mass-cancellation guard; the next `sync` pushes it."""
    from mvg_sync.store import outbox as store
    from mvg_sync.store import plan_reads

    settings = load_settings()
    check_folders(settings, state="read")
    with plan_reads.open_state(settings.state_dir) as con:
        if store.approve(con, args.extract_id, now=utc_now()):
            print(f"Drop {args.extract_id} approved; the next sync pushes it.")
            return EXIT_OK
        print(f"No drop {args.extract_id} is waiting for approval.")
        return EXIT_FAILED


def status(args: argparse.Namespace) -> int:
    """Drops, quarantine, holds by rule and unit, changes waiting or dead-lettered, the last failure."""
    from mvg_sync import statusview

    settings = load_settings()
    check_folders(settings, landing=True, state="read")
    data = statusview.collect(settings.state_dir, settings.landing_dir)
    print(statusview.as_json(data) if getattr(args, "json", False) else statusview.render(data))
    return EXIT_OK


def redrive(args: argparse.Namespace) -> int:
    """Re-queue dead letters and push them now."""
    from mvg_sync.clinic24.client import Clinic24Client
    from mvg_sync.store import outbox as store
    from mvg_sync.store import plan_reads
    from mvg_sync.sync import push

    settings = load_settings()
    check_folders(settings, state="read")
    with plan_reads.open_state(settings.state_dir) as con:
        count = store.redrive(con)
    print(f"{count} dead-lettered changes re-queued")
    if not count:
        return EXIT_OK
    client_id, secret = settings.clinic24_credentials()
    with Clinic24Client(settings.clinic24_base_url, client_id, secret) as client:
        result = push.push_pending(settings.state_dir, client, clock=utc_now)
    print(json.dumps(result))
    return EXIT_OK if not result.get("dead") else EXIT_FAILED


def reconcile(args: argparse.Namespace) -> int:
    """Compare Clinic24's appointments with the record; 0 no drift, 4 drift, 1 failed."""
    from mvg_sync.logfilter import configure_console
    from mvg_sync.sync.reconcile import run_reconcile

    configure_console(verbose=bool(getattr(args, "verbose", False) or getattr(args, "debug", False)),
                      debug=bool(getattr(args, "debug", False)))
    settings = load_settings()
    check_folders(settings, state="read")
    drift = run_reconcile(settings)
    print(json.dumps(drift.summary(), default=str))
    return EXIT_DRIFT if drift.has_drift else EXIT_OK


def report(args: argparse.Namespace) -> int:
    """Write the control reports; `--period` as the scheduled flow names it, `--unit` checked first."""
    from mvg_sync.reports.cli import main as report_main

    settings = load_settings()
    check_folders(settings, state="read")
    if getattr(args, "period", None):
        if args.date_from or args.date_to:
            raise ValueError("--period and --from/--to both name the registration period: give one")
        from mvg_sync.reports.cli import default_period
        from mvg_sync.timeutil import resolve_as_of

        period = default_period(resolve_as_of(args.as_of), args.period)
        args.date_from, args.date_to = period.registered_from.isoformat(), period.registered_to.isoformat()
    if args.unit:
        check_unit(settings.state_dir, args.unit)
    return report_main(args)


class UnknownUnit(ValueError):
    """`--unit` names no unit the integration knows; the message names where units come from."""


def check_unit(state_dir, unit: str) -> None:
    """An unknown `--unit` is an error, not empty reports (issue 11.3).

    Known units are those of Cosmic's latest units file (enheter.csv) and those Clinic24
    listed at the last sync (R01).
    """
    from mvg_sync.store.drops import load_snapshot

    units = load_snapshot(state_dir, "units")
    known = set(units.get_column("unit_hsa_id").to_list()) if units is not None else set()
    from mvg_sync import store

    if store.exists(state_dir):  # the file, or the schema on PostgreSQL (issue 15)
        from mvg_sync.store import outbox

        with store.connect(state_dir, read_only=True) as con:  # waits while a sync holds it
            known |= set(outbox.cached_locations(con))  # empty until a sync lists Clinic24's units
    if unit not in known:
        sample = ", ".join(sorted(known)[:3]) + (" …" if len(known) > 3 else "")
        raise UnknownUnit(
            f"unknown unit {unit!r}: not among the {len(known)} units of Cosmic's latest enheter.csv and "
            f"Clinic24's unit list in {state_dir} (MVG_STATE_DIR)" + (f", e.g. {sample}" if known else "")
        )


def setup_prefect(args: argparse.Namespace) -> int:
    """Create Prefect blocks and variables from the environment (or a region file)."""
    if getattr(args, "regions", None):
        from pathlib import Path

        from mvg_sync.regions import setup_regions

        return setup_regions(Path(args.regions))
    from mvg_sync.deploy import setup_from_environment

    return setup_from_environment()
