"""Full sync cycle on a regional drop (~400k bookings, ~1,000 changes) after an initial load: wall time per step.

Issue 4 (a): target <= 10 s of work, Prefect server start-up excluded. The loaded region is
bench.initial_load's cache (built first when missing); each run works on a private copy with
the sandbox rate limit ON. The steps are the `mvg_sync.sync` draft, commit and push functions and
`ingest_pending` the flow's tasks wrap, called directly in this process; then the real
`booking_sync` flow runs once over a second copy against a local Prefect server, and its wall
time is printed next to the sum of the steps.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.initial_load import (
    CYCLE_STEPS,
    N_BOOKINGS,
    OUT,
    Timer,
    build,
    cached_meta,
    copy_loaded,
    env_for,
    print_phases,
    regenerate,
    run_cycle,
    settings_for,
)

TARGET_S = 10.0
# ~1,000 changes of every kind the generator knows (R06-R10)
CHANGES = {"creations": 300, "rebookings": 200, "cancellations": 150, "vanishings": 50,
           "scope_changes": 100, "updates": 200}


def quiet_services() -> None:
    """No analytics (nothing outside is reachable) and only warnings from Prefect's loggers."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def warm_imports() -> float:
    """Import what the steps import lazily, so the step times are work, not imports."""
    started = time.perf_counter()
    import great_expectations  # noqa: F401
    import pandera.polars  # noqa: F401

    import contracts.snapshots  # noqa: F401
    import mvg_sync.ingest.pipeline  # noqa: F401
    import mvg_sync.quality.checkpoint  # noqa: F401
    import mvg_sync.sync.commit  # noqa: F401
    import mvg_sync.sync.draft  # noqa: F401
    import mvg_sync.sync.push  # noqa: F401

    return time.perf_counter() - started


def world(name: str, n_bookings: int, drop) -> Path:
    """A private copy of the loaded region with the next drop landed in it."""
    from mvg_sync.generator import write_drop

    root = OUT / name
    copy_loaded(n_bookings, root)
    write_drop(drop, root / "landing")
    return root


def steps(root: Path, as_of: datetime, *, profile: bool) -> tuple[Timer, dict, str]:
    from mvg_sync.clinic24.sandbox.runner import start_sandbox

    timer = Timer()
    profiler = cProfile.Profile() if profile else None
    with start_sandbox(root / "sandbox") as sandbox:
        assert sandbox.set_faults(rate_limit=True)["rate_limit"] is True
        settings = settings_for(root, sandbox.base_url)
        if profiler:
            profiler.enable()
        result = run_cycle(settings, as_of, timer)
        if profiler:
            profiler.disable()
    text = ""
    if profiler:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(25)
        text = buffer.getvalue()
    return timer, result, text


def flow_run(root: Path, as_of: datetime) -> dict:
    """The real booking_sync flow, in this process, against a local Prefect test server."""
    from prefect.testing.utilities import prefect_test_harness

    from mvg_sync.clinic24.sandbox.runner import start_sandbox

    with start_sandbox(root / "sandbox") as sandbox:
        assert sandbox.set_faults(rate_limit=True)["rate_limit"] is True
        saved = {k: os.environ.get(k) for k in env_for(root, sandbox.base_url)}
        os.environ.update(env_for(root, sandbox.base_url))
        try:
            started = time.perf_counter()
            with prefect_test_harness(server_startup_timeout=60):
                server_s = time.perf_counter() - started
                from flows.booking_sync import booking_sync

                started = time.perf_counter()
                state = booking_sync(as_of=as_of.isoformat(), return_state=True)
                wall = time.perf_counter() - started
                summary = state.result(raise_on_failure=False)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {"server_start_s": server_s, "wall_s": wall, "state": state.type.value, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_cycle", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_BOOKINGS, help=f"bookings in the region (default {N_BOOKINGS})")
    parser.add_argument("--no-flow", action="store_true", help="skip the run of the real flow")
    parser.add_argument("--profile", action="store_true", help="cProfile the steps (top 25 by cumulative time)")
    parser.add_argument("--fast-setup", action="store_true",
                        help="when no loaded cache exists, build it with the sandbox rate limit off")
    args = parser.parse_args(argv)
    quiet_services()
    from mvg_sync.generator import next_region

    setup = Timer()
    meta = cached_meta(args.n)
    if meta is None:
        print(f"no loaded region cached: initial load of {args.n:,} bookings first "
              f"(rate limit {'off' if args.fast_setup else 'on'})")
        with setup.phase("initial load"):
            meta = build(args.n, rate_limit=not args.fast_setup)["meta"]
    with setup.phase("regenerate region"):
        region = regenerate(meta)
    as_of = datetime.fromisoformat(meta["as_of"]) + timedelta(minutes=5)
    with setup.phase("next drop"):
        drop, truth = next_region(region, seed=11, as_of=as_of, **CHANGES)
    with setup.phase("copy cache + write drop"):
        root = world("cycle-steps", args.n, drop)
    with setup.phase("imports"):
        warm_imports()
    timer, result, profile = steps(root, as_of, profile=args.profile)
    total = timer.total(CYCLE_STEPS)
    print(f"Sync cycle: region of {args.n:,} bookings (loaded {meta['as_of']}), next drop with "
          f"{truth.height:,} changes in the ground truth, sandbox rate limit ON")
    print("  setup (not measured): " + ", ".join(f"{k} {v:.1f} s" for k, v in setup.phases.items()))
    print(f"  drops {result.get('drops')}; outcome {result.get('outcome')}; guard {result.get('guard')}")
    print(f"  changes {result.get('changes')}; held {result.get('holds')}; guardian candidates {result.get('guardian_candidates')}")
    print(f"  outbox {result.get('outbox')}; push {result.get('push')}")
    print("  wall time per step (the flow's functions, called directly):")
    print_phases(timer, CYCLE_STEPS)
    verdict = "met" if total <= TARGET_S else "MISSED"
    if result.get("outcome") != "done":
        verdict = f"not comparable: the cycle ended {result.get('outcome')}"
    print(f"    {'sum of steps':<22} {total:8.2f} s   target <= {TARGET_S:.0f} s: {verdict}")
    if total > TARGET_S:
        worst = max(timer.phases, key=timer.phases.get)
        print(f"  dominated by: {worst} ({timer.phases[worst]:.1f} s, {timer.phases[worst] / total:.0%} of the cycle)")
        rest = total - timer.phases[worst]
        print(f"  the other steps together: {rest:.1f} s ({'within' if rest <= TARGET_S else 'over'} the target on their own)")
    if profile:
        print(profile)
    ok = total <= TARGET_S and result.get("outcome") == "done"
    if not args.no_flow:
        root = world("cycle-flow", args.n, drop)
        f = flow_run(root, as_of)
        steps_of = f["summary"].get("steps", {}) if isinstance(f["summary"], dict) else {}
        print(f"  real booking_sync flow against a local Prefect server: {f['state']}, push {steps_of.get('push')}")
        print(f"    server start-up (excluded)   {f['server_start_s']:8.2f} s")
        print(f"    flow run wall                {f['wall_s']:8.2f} s   (sum of steps above {total:.2f} s; "
              f"Prefect + retention + run summary overhead {f['wall_s'] - total:+.2f} s)   "
              f"target <= {TARGET_S:.0f} s: {'met' if f['wall_s'] <= TARGET_S else 'MISSED'}")
        ok &= f["state"] == "COMPLETED"
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
