"""`mvg-sync demo`: sample drops, a local Clinic24, sync cycles with planted problems, reports.

Everything lands under `data/demo/` (landing, state, reports, sandbox), so a demo never
touches a real state folder. The story, one drop at a time:
1. the first drop of the morning: the initial load;
2. a drop with every kind of change (creations, rebookings, cancellations, scope changes);
3. a corrupt drop (a file that disagrees with its manifest): rejected whole;
4. a truncated export that would cancel a third of the bookings: held by the guard;
5. the next complete drop: supersedes the held one and syncs normally;
then the control reports for today (the day its data is in), `status` to show what is held
and why, and the exact commands to look again later.

Each drop is extracted "now", just before its cycle, as Cosmic does: back-dated drops made
their sync look minutes late (p95 1452 s, a false R11 breach; issue 11).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the demo imports Polars lazily (its --help stays fast)
    import polars as pl

DEMO_ROOT = Path("data/demo")


def _say(step: str, text: str) -> None:
    print(f"[demo] {step:<10} {text}", flush=True)


def _now() -> datetime:
    """The wall clock in Stockholm, to the second (extract ids carry seconds)."""
    from mvg_sync.timeutil import STOCKHOLM, utc_now

    return utc_now().astimezone(STOCKHOLM).replace(microsecond=0)


def main(args: argparse.Namespace | None = None) -> int:
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
    return run_story(root, n_bookings=int(os.environ.get("MVG_DEMO_BOOKINGS", "5000")))


def run_story(root: Path, *, n_bookings: int, clock=_now) -> int:
    """The five drops, each extracted at `clock()` right before its cycle, then the reports."""
    from mvg_sync.clinic24.sandbox.runner import start_sandbox
    from mvg_sync.generator import generate_region, next_region, write_drop, write_sandbox_seed

    as_of = clock()
    _say("generate", f"a region with {n_bookings} bookings at {as_of:%Y-%m-%d %H:%M}")
    region = generate_region(seed=2026, n_bookings=n_bookings, as_of=as_of)
    units, guardians = write_sandbox_seed(region, root / "seed")
    landing = root / "landing"
    with start_sandbox(root / "sandbox", units=units, guardians=guardians) as sandbox:
        os.environ["CLINIC24_BASE_URL"] = sandbox.base_url
        _say("sandbox", f"Clinic24 sandbox at {sandbox.base_url}")

        region = _extracted_now(region, clock)
        write_drop(region, landing)
        _cycle("1 initial", region.as_of)

        t2 = _later(region.as_of, clock)
        region, truth = next_region(region, seed=1, as_of=t2, creations=25, rebookings=10, cancellations=8,
                                    vanishings=3, scope_changes=4, updates=6)
        write_drop(region, landing)
        _say("changes", ", ".join(f"{k}: {n}" for k, n in truth.group_by("expected_kind").len().iter_rows()))
        _cycle("2 changes", t2)

        t3 = _later(t2, clock)
        region, _ = next_region(region, seed=2, as_of=t3, creations=3)
        corrupt = write_drop(region, landing)
        with (corrupt / "bokningar.csv").open("ab") as f:
            f.write(b"tampered after the manifest was written\r\n")
        _say("corrupt", f"drop {corrupt.name}: bokningar.csv no longer matches its manifest")
        _cycle("3 corrupt", t3)

        t4 = _later(t3, clock)
        region, _ = next_region(region, seed=3, as_of=t4)
        kept = region.bookings.height * 2 // 3
        truncated = replace(region, bookings=region.bookings.head(kept))
        held_drop = write_drop(truncated, landing)
        _say("truncated", f"drop {held_drop.name} lost a third of its bookings")
        _cycle("4 guard", t4)

        t5 = _later(t4, clock)
        region, _ = next_region(region, seed=4, as_of=t5, creations=2)
        write_drop(region, landing)
        _cycle("5 complete", t5)

    from mvg_sync.cli import main as cli

    # The demo's data is today's: the scheduled reports' default (yesterday) would be empty.
    # The period runs on to the weekday where the story planted its R22 gap (HSL coverage),
    # and starts on the newest day with a patient's own e-service event: today, except before
    # Cosmic's first registration of the day (a demo run at 01:00 showed an empty report 1).
    first = newest_eservice_day(region.events, t5.date()).isoformat()
    last = max(t5.date(), region.r22_gap[2]).isoformat()
    _say("reports", f"writing control reports for {first} to {last} to {root / 'reports'}")
    if cli(["report", "--as-of", t5.isoformat(), "--from", first, "--to", last, "--out", str(root / "reports")]):
        _say("failed", "the control reports could not be written (see above); the demo stops here")
        return 1
    _say("status", "what operations see:")
    cli(["status"])
    _say("done", f"state: {root / 'state'} · reports: {root / 'reports'} · drops: {landing}")
    for name in ("eservice", "hsl_coverage", "tickets", "sync_health"):
        _say("open", str(root / "reports" / f"{name}.html"))
    for command in next_commands(root, first, last):
        _say("next", command)
    return 0


def newest_eservice_day(events: pl.DataFrame, today: date) -> date:
    """The newest local day, up to `today`, on which a patient cancelled or rebooked through the
    e-service (R28) in the Cosmic log `events` (raw columns), or `today` when there is none."""
    import polars as pl

    from mvg_sync.rules.eservice import is_eservice_expr

    days = events.filter(is_eservice_expr(pl.col("Orsak").cast(pl.String))).get_column("Datum").dt.date()
    newest = days.filter(days <= today).max()
    return newest if newest is not None else today


def next_commands(root: Path, date_from: str, date_to: str) -> list[str]:
    """Commands to look at the demo's state again, exactly as they run from any folder."""
    env = " ".join(f"{name}={shlex.quote(str(root / sub))}" for name, sub in
                   (("MVG_LANDING_DIR", "landing"), ("MVG_STATE_DIR", "state"), ("MVG_REPORT_DIR", "reports")))
    script = Path(sys.executable).with_name("mvg-sync")
    exe = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m mvg_sync.cli"
    return [f"{env} {exe} status", f"{env} {exe} report --from {date_from} --to {date_to}"]


def _extracted_now(region, clock):
    """The region as extracted now: generating 5000 bookings takes a while."""
    return replace(region, as_of=clock())


def _later(previous: datetime, clock) -> datetime:
    """Now, but at least a second after the previous drop, so extract ids keep their order."""
    return max(clock(), previous + timedelta(seconds=1))


def _cycle(label: str, as_of) -> None:
    from flows.booking_sync import booking_sync

    state = booking_sync(as_of=as_of.isoformat(), return_state=True)
    summary = state.result(raise_on_failure=False)
    if state.is_failed():
        _say(label, f"run ended {state.name}: {state.message}")
        return
    from mvg_sync.sync.summary import RunSummary

    run = RunSummary.from_dict(summary)
    _say(label, f"ingest {run.steps.ingest or {}} · push {run.steps.push} · latency {run.latency}")
