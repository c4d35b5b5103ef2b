"""`mvg-sync demo`: sample drops, a local Clinic24, sync cycles with planted problems, reports.

Everything lands under `data/demo/` (landing, state, reports, sandbox), so a demo never
touches a real state folder. The story, one drop at a time:
1. the first drop of the morning: the initial load;
2. a drop with every kind of change (creations, rebookings, cancellations, scope changes);
3. a corrupt drop (a file that disagrees with its manifest): rejected whole;
4. a truncated export that would cancel a third of the bookings: held by the guard;
5. the next complete drop: supersedes the held one and syncs normally;
then the control reports, and `status` to show what is held and why.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

DEMO_ROOT = Path("data/demo")


def _say(step: str, text: str) -> None:
    print(f"[demo] {step:<10} {text}", flush=True)


def main(args: argparse.Namespace | None = None) -> int:
    from mvg_sync.timeutil import resolve_as_of

    root = DEMO_ROOT.resolve()
    shutil.rmtree(root, ignore_errors=True)
    (root / "landing").mkdir(parents=True)
    os.environ.update(
        MVG_LANDING_DIR=str(root / "landing"),
        MVG_STATE_DIR=str(root / "state"),
        MVG_REPORT_DIR=str(root / "reports"),
        GX_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    # The five drops are back-dated five minutes apart so that the last one is "now":
    # extracted_at is never in the future, and latency figures stay honest.
    now = resolve_as_of(getattr(args, "as_of", None))
    as_of = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=20)
    return run_story(root, as_of, n_bookings=int(os.environ.get("MVG_DEMO_BOOKINGS", "5000")))


def run_story(root: Path, as_of, *, n_bookings: int) -> int:
    from mvg_sync.clinic24.sandbox.runner import start_sandbox
    from mvg_sync.generator import generate_region, next_region, write_drop, write_sandbox_seed

    _say("generate", f"a region with {n_bookings} bookings at {as_of:%Y-%m-%d %H:%M}")
    region = generate_region(seed=2026, n_bookings=n_bookings, as_of=as_of)
    units, guardians = write_sandbox_seed(region, root / "seed")
    landing = root / "landing"
    with start_sandbox(root / "sandbox", units=units, guardians=guardians) as sandbox:
        os.environ["CLINIC24_BASE_URL"] = sandbox.base_url
        _say("sandbox", f"Clinic24 sandbox at {sandbox.base_url}")

        write_drop(region, landing)
        _cycle("1 initial", as_of)

        t2 = as_of + timedelta(minutes=5)
        region, truth = next_region(region, seed=1, as_of=t2, creations=25, rebookings=10, cancellations=8,
                                    vanishings=3, scope_changes=4, updates=6)
        write_drop(region, landing)
        _say("changes", ", ".join(f"{k}: {n}" for k, n in truth.group_by("expected_kind").len().iter_rows()))
        _cycle("2 changes", t2)

        t3 = t2 + timedelta(minutes=5)
        region, _ = next_region(region, seed=2, as_of=t3, creations=3)
        corrupt = write_drop(region, landing)
        with (corrupt / "bokningar.csv").open("ab") as f:
            f.write(b"tampered after the manifest was written\r\n")
        _say("corrupt", f"drop {corrupt.name}: bokningar.csv no longer matches its manifest")
        _cycle("3 corrupt", t3)

        t4 = t3 + timedelta(minutes=5)
        region, _ = next_region(region, seed=3, as_of=t4)
        kept = region.bookings.height * 2 // 3
        truncated = replace(region, bookings=region.bookings.head(kept))
        held_drop = write_drop(truncated, landing)
        _say("truncated", f"drop {held_drop.name} lost a third of its bookings")
        _cycle("4 guard", t4)

        t5 = t4 + timedelta(minutes=5)
        region, _ = next_region(region, seed=4, as_of=t5, creations=2)
        write_drop(region, landing)
        _cycle("5 complete", t5)

    from mvg_sync.cli import main as cli

    _say("reports", f"writing control reports to {root / 'reports'}")
    cli(["report", "--as-of", t5.isoformat(), "--out", str(root / "reports")])
    _say("status", "what operations see:")
    cli(["status"])
    _say("done", f"state: {root / 'state'} · reports: {root / 'reports'} · drops: {landing}")
    _say("next", "open the HTML reports in a browser; `mvg-sync status` shows holds and dead letters")
    return 0


def _cycle(label: str, as_of) -> None:
    from flows.booking_sync import booking_sync

    state = booking_sync(as_of=as_of.isoformat(), return_state=True)
    summary = state.result(raise_on_failure=False)
    if state.is_failed():
        _say(label, f"run ended {state.name}: {state.message}")
        return
    steps = summary.get("steps", {}) if isinstance(summary, dict) else {}
    ingest = steps.get("ingest", {})
    _say(label, f"ingest {ingest} · push {steps.get('push')} · latency {summary.get('latency')}")
