"""Implementations of the `mvg-sync` sub-commands that operate the sync (operations.md)."""

from __future__ import annotations

import argparse
import json
import logging

from mvg_sync.settings import load_settings
from mvg_sync.timeutil import utc_now

EXIT_OK, EXIT_FAILED, EXIT_HELD, EXIT_DRIFT = 0, 1, 3, 4


def sync(args: argparse.Namespace) -> int:
    """One cycle as the `booking_sync` Prefect flow; 0 done, 1 failed, 3 held for approval."""
    from flows.booking_sync import booking_sync

    state = booking_sync(as_of=args.as_of, return_state=True)
    if state.is_failed():
        summary = state.result(raise_on_failure=False)
        print(state.message or "sync failed")
        if isinstance(summary, dict) and summary.get("outcome") == "held":
            return EXIT_HELD
        return EXIT_FAILED
    summary = state.result()
    print(_summary_line(summary))
    return EXIT_OK


def _summary_line(summary: dict) -> str:
    steps = summary.get("steps", {})
    return json.dumps(
        {"outcome": summary.get("outcome"), "extract_id": summary.get("extract_id"),
         "push": steps.get("push"), "latency": summary.get("latency")},
        default=str,
    )


def approve(args: argparse.Namespace) -> int:
    """Release a drop held by the mass-cancellation guard; the next `sync` pushes it."""
    from mvg_sync.sync import cycle, store

    with cycle.open_state(load_settings().state_dir) as con:
        if store.approve(con, args.extract_id, now=utc_now()):
            print(f"Drop {args.extract_id} approved; the next sync pushes it.")
            return EXIT_OK
        print(f"No drop {args.extract_id} is waiting for approval.")
        return EXIT_FAILED


def status(args: argparse.Namespace) -> int:
    """Drops, quarantine, held bookings, changes waiting or dead-lettered.

    Read-only: creates nothing (a folder with no store says so), and waits a bounded time,
    saying so on stderr, while a sync holds the store (mvg_sync.store).
    """
    from mvg_sync.ingest import describe_state
    from mvg_sync.store import STATE_FILE, connect
    from mvg_sync.sync import health

    settings = load_settings()
    print(describe_state(settings.state_dir, settings.landing_dir))
    if not (settings.state_dir / STATE_FILE).exists():
        print(f"no state yet at {settings.state_dir}")
        return EXIT_OK
    with connect(settings.state_dir, read_only=True) as con:
        items = health.open_items(con)
    print(health.open_items_markdown(items))
    return EXIT_OK


def redrive(args: argparse.Namespace) -> int:
    """Re-queue dead letters and push them now."""
    from mvg_sync.clinic24.client import Clinic24Client
    from mvg_sync.sync import cycle, store

    settings = load_settings()
    with cycle.open_state(settings.state_dir) as con:
        count = store.redrive(con)
    print(f"{count} dead-lettered changes re-queued")
    if not count:
        return EXIT_OK
    client_id, secret = settings.clinic24_credentials()
    with Clinic24Client(settings.clinic24_base_url, client_id, secret) as client:
        result = cycle.push_pending(settings.state_dir, client, clock=utc_now)
    print(json.dumps(result))
    return EXIT_OK if not result.get("dead") else EXIT_FAILED


def reconcile(args: argparse.Namespace) -> int:
    """Compare Clinic24's appointments with the record; 0 no drift, 4 drift, 1 failed."""
    from mvg_sync.sync.reconcile import run_reconcile

    logging.basicConfig(level=logging.INFO)
    drift = run_reconcile(load_settings())
    print(json.dumps(drift.summary(), default=str))
    return EXIT_DRIFT if drift.has_drift else EXIT_OK


def report(args: argparse.Namespace) -> int:
    """Write the control reports."""
    from mvg_sync.reports.cli import main as report_main

    return report_main(args)


def setup_prefect(args: argparse.Namespace) -> int:
    """Create Prefect blocks and variables from the environment."""
    from mvg_sync.deploy import setup_from_environment

    return setup_from_environment()
