"""What one region costs (issue 15.4): initial load and one steady cycle as `mvg-sync sync` processes.

Per run: wall seconds, CPU seconds (user + system of the sync process and its children) and
peak RSS of the sync process, measured with wait4 from a small parent; then the state's size (DuckDB file,
snapshot Parquet, everything else). The syncs report to one Prefect test server started here,
as a deployment's runs report to the shared server, so the server's cost is not the region's.
The initial load runs with the sandbox's rate limit off (its push rate is bench.initial_load's);
the steady cycle (the next drop, ~1,000 changes) with it on; then
a run with nothing to do, which is what most scheduled runs are; then `mvg-sync report`. docs/scaling.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

CHANGES = {"creations": 300, "rebookings": 200, "cancellations": 150, "vanishings": 50,
           "scope_changes": 50, "updates": 250}


def _size(path: Path, pattern: str = "**/*") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


# A forked child's ru_maxrss starts at its parent's RSS, and this process holds the generated
# region: a small interpreter starts the command and reports its rusage instead.
WRAPPER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(process.pid, 0)
print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status),
                  "stderr": process.stderr.read().decode(errors="replace")[-2000:]}))
"""


def _sync(env: dict, as_of, command: str = "sync") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-m", "mvg_sync.cli", command, "--as-of", as_of.isoformat()],
        env=env, capture_output=True, text=True, check=True,
    )
    figures = json.loads(done.stdout)
    if figures.pop("code") != 0:
        raise SystemExit(f"{command} failed: {figures['stderr']}")
    figures.pop("stderr")
    return figures


def measure(n: int, root: Path) -> dict:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from mvg_sync.clinic24.sandbox.runner import start_sandbox
    from mvg_sync.generator import generate_region, next_region, write_drop, write_sandbox_seed
    from mvg_sync.timeutil import STOCKHOLM, utc_now

    as_of = utc_now().astimezone(STOCKHOLM).replace(second=0, microsecond=0)
    region = generate_region(seed=7, n_bookings=n, as_of=as_of)
    units, guardians = write_sandbox_seed(region, root / "seed")
    sandbox = start_sandbox(root / "sandbox", units=units, guardians=guardians)
    landing, state = root / "landing", root / "state"
    landing.mkdir()
    out = {"bookings": n, "load_before": os.getloadavg()}
    try:
        with prefect_test_harness(server_startup_timeout=120):
            env = {**os.environ, "MVG_LANDING_DIR": str(landing), "MVG_STATE_DIR": str(state),
                   "MVG_REPORT_DIR": str(root / "reports"), "CLINIC24_BASE_URL": sandbox.base_url,
                   "PREFECT_API_URL": PREFECT_API_URL.value(), "GX_ANALYTICS_ENABLED": "false",
                   "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
            sandbox.set_faults(rate_limit=False)
            write_drop(region, landing)
            out["initial"] = _sync(env, as_of)
            sandbox.set_faults(rate_limit=True)
            later = as_of + timedelta(minutes=5)
            drop, truth = next_region(region, seed=11, as_of=later, **CHANGES)
            write_drop(drop, landing)
            out["changes"] = truth.height
            out["cycle"] = _sync(env, later)
            # a run with no new drop: what every scheduled run costs a region between drops
            out["idle"] = _sync(env, later + timedelta(minutes=1))
            # the four control reports for the day of the drops (the 06:00 flow's work)
            out["report"] = _sync(env, later + timedelta(days=1), command="report")
    finally:
        sandbox.stop()
    out["load_after"] = os.getloadavg()
    out["duckdb_mb"] = _size(state, "*.duckdb*") / 1e6
    out["snapshots_mb"] = _size(state, "**/*.parquet") / 1e6
    out["state_mb"] = _size(state) / 1e6
    out["landing_mb"] = _size(landing) / 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.region_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="bookings in the region (default 100,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="region-cost-") as tmp:
        figures = measure(args.n, Path(tmp))
        for sub in ("gx", "snapshots"):
            folder = Path(tmp) / "state" / sub
            if folder.exists():
                figures[f"{sub}_folder_mb"] = _size(folder) / 1e6
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
