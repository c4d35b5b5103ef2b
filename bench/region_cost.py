"""What one region costs (issue 15.4): initial load and one steady cycle as `mvg-sync sync` processes.

Per run: wall seconds, CPU seconds (user + system of the sync process and its children) and
peak RSS of the sync process, measured with wait4 from a small parent; then the state's size (DuckDB file,
snapshot Parquet, everything else). The syncs report to one Prefect test server started here,
as a deployment's runs report to the shared server, so the server's cost is not the region's.
The initial load runs with the sandbox's rate limit off (its push rate is bench.initial_load's);
the steady cycle (the next drop, ~1,000 changes) with it on; then
a run with nothing to do, which is what most scheduled runs are; then `mvg-sync report`. docs/scaling.md has the figures.

`--backend postgresql|both` runs the same steps with the store on PostgreSQL (issue 15): a
throwaway server from tests/pg.py's `start()` (a bench may import the tests' helper: it needs
only the stdlib and psycopg, and a second copy would drift), one fresh schema per run, with
MVG_STATE_URL set for the syncs. `both` alternates the backends and prints each figure beside
DuckDB's as a ratio; the store's size is the DuckDB file against `pg_total_relation_size` of
the schema's tables (with their indexes and TOAST).
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


def _sync(env: dict, as_of, command: str = "sync", pg=None) -> dict:
    server_before = _server_cpu(pg)
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-m", "mvg_sync.cli", command, "--as-of", as_of.isoformat()],
        env=env, capture_output=True, text=True, check=True,
    )
    figures = json.loads(done.stdout)
    if figures.pop("code") != 0:
        raise SystemExit(f"{command} failed: {figures['stderr']}")
    figures.pop("stderr")
    figures["server_cpu_s"] = _server_cpu(pg) - server_before
    figures["total_cpu_s"] = figures["cpu_s"] + figures["server_cpu_s"]
    return figures


def _pg_schema_bytes(server, schema: str) -> int:
    with server.admin("mvg") as con:
        return int(con.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'm')",
            [schema]).fetchone()[0])


def _server_cpu(pg) -> float:
    """CPU seconds the PostgreSQL server has used so far: the postmaster, its exited backends
    (reaped into its cutime/cstime) and its live children. Not in the sync's own figures."""
    if pg is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    root = int((pg.data / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # a backend that ended while we looked
        fields = text[text.rindex(")") + 2:].split()
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == root:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == root:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(n: int, root: Path, pg=None, schema: str | None = None) -> dict:
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
            env.pop("MVG_STATE_URL", None)
            env.pop("MVG_STATE_SCHEMA", None)
            if pg is not None:
                env["MVG_STATE_URL"] = pg.url(schema=schema)
            sandbox.set_faults(rate_limit=False)
            write_drop(region, landing)
            out["initial"] = _sync(env, as_of, pg=pg)
            sandbox.set_faults(rate_limit=True)
            later = as_of + timedelta(minutes=5)
            drop, truth = next_region(region, seed=11, as_of=later, **CHANGES)
            write_drop(drop, landing)
            out["changes"] = truth.height
            out["cycle"] = _sync(env, later, pg=pg)
            # a run with no new drop: what every scheduled run costs a region between drops
            out["idle"] = _sync(env, later + timedelta(minutes=1), pg=pg)
            # the four control reports for the day of the drops (the 06:00 flow's work)
            out["report"] = _sync(env, later + timedelta(days=1), command="report", pg=pg)
    finally:
        sandbox.stop()
    out["load_after"] = os.getloadavg()
    out["duckdb_mb"] = _size(state, "*.duckdb*") / 1e6
    out["store_mb"] = _pg_schema_bytes(pg, schema) / 1e6 if pg is not None else out["duckdb_mb"]
    out["snapshots_mb"] = _size(state, "**/*.parquet") / 1e6
    out["state_mb"] = _size(state) / 1e6
    out["landing_mb"] = _size(landing) / 1e6
    return out


STEPS = ("initial", "cycle", "idle", "report")
MEASURES = (("wall_s", "wall s"), ("cpu_s", "CPU s"), ("server_cpu_s", "+ PostgreSQL server CPU s"),
            ("total_cpu_s", "= CPU s, both"),
            ("peak_rss_mb", "peak RSS MB"))


def _one(n: int, backend: str, pg, run: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="region-cost-") as tmp:
        figures = measure(n, Path(tmp), pg, f"bench_{backend}_{run}" if pg is not None else None)
        for sub in ("gx", "snapshots"):
            folder = Path(tmp) / "state" / sub
            if folder.exists():
                figures[f"{sub}_folder_mb"] = _size(folder) / 1e6
    return figures


def _table(runs: list[tuple[str, dict]]) -> str:
    """Each figure per run, and PostgreSQL's over the DuckDB run before it as a ratio."""
    names = [f"{backend} #{i + 1}" for i, (backend, _) in enumerate(runs)]
    lines = ["| step | measure | " + " | ".join(names) + " | pg/duckdb |", "|---|---|" + "---|" * (len(runs) + 1)]

    def ratio(pick) -> str:
        duck = [pick(f) for b, f in runs if b == "duckdb"]
        pg = [pick(f) for b, f in runs if b == "postgresql"]
        if not duck or not pg or not min(duck):
            return ""
        return " ".join(f"{p / d:.2f}×" for d, p in zip(duck, pg, strict=False))

    for step in STEPS:
        for key, label in MEASURES:
            cells = " | ".join(f"{f[step][key]:.1f}" for _, f in runs)
            lines.append(f"| {step} | {label} | {cells} | {ratio(lambda f, s=step, k=key: f[s][k])} |")
    cells = " | ".join(f"{f['store_mb']:.1f}" for _, f in runs)
    lines.append(f"| store | size MB (DuckDB file / schema's tables) | {cells} | {ratio(lambda f: f['store_mb'])} |")
    cells = " | ".join(f"{f['snapshots_mb']:.1f}" for _, f in runs)
    lines.append(f"| snapshots | Parquet MB | {cells} | |")
    cells = " | ".join("{:.1f}→{:.1f}".format(f["load_before"][0], f["load_after"][0]) for _, f in runs)
    lines.append(f"| load | 1-min average before→after | {cells} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.region_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="bookings in the region (default 100,000)")
    parser.add_argument("--backend", choices=("duckdb", "postgresql", "both"), default="duckdb",
                        help="the store: the DuckDB file (default), PostgreSQL (a throwaway server), or both alternating")
    parser.add_argument("--pairs", type=int, default=1, help="with --backend both: DuckDB/PostgreSQL pairs (default 1)")
    args = parser.parse_args(argv)
    order = {"duckdb": ["duckdb"], "postgresql": ["postgresql"], "both": ["duckdb", "postgresql"] * args.pairs}
    backends = order[args.backend]
    pg = None
    if "postgresql" in backends:
        # the tests' throwaway server (so run from the repository root)
        from tests import pg as pg_helper

        pg = pg_helper.start()
    runs = []
    try:
        for i, backend in enumerate(backends):
            figures = _one(args.n, backend, pg if backend == "postgresql" else None, i)
            runs.append((backend, figures))
            print(f"-- {backend} #{i + 1}", flush=True)
            for key, value in figures.items():
                print(f"{key}: {value}", flush=True)
    finally:
        if pg is not None:
            pg.stop()
    print(f"\nregion cost, {args.n:,} bookings, cycle with {runs[0][1]['changes']:,} changes:")
    print(_table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
