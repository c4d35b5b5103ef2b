"""Ingest + validate benchmark beside a bare DuckDB baseline on the same files (issue 12).

For a regional (~400k bookings) and a national (10M) drop, runs in alternation, each as a fresh
process: mvg-sync's `ingest_pending` (manifest, sha256, decode, pandera, gate, snapshots) and
the baseline, bare DuckDB reading every CSV of the manifest with `read_csv`, hashing each row
over all its columns and writing Parquet. Each pair prints wall and CPU seconds, peak RSS and
the ratio to the baseline, with the load average: the machine is shared and noisy, so only the
ratio within a pair means much.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from mvg_sync.timeutil import STOCKHOLM

OUT = Path(__file__).resolve().parent / "out" / "ingest"
# Drops are generated once and kept here; the 10 M drop is ~4.2 GB, so keep it outside the
# repository: MVG_BENCH_CACHE=/work/bench-cache (or --cache).
CACHE = Path(os.environ.get("MVG_BENCH_CACHE") or OUT)
AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)
# the target ratios to the baseline: CPU at 400 k, wall at 10 M; and peak memory at 10 M
TARGETS = {400_000: ("cpu", 1.5, None), 10_000_000: ("wall", 1.2, 4.0)}


def landing_for(n_bookings: int, cache: Path | None = None) -> Path:
    """Generate the drop once; later runs reuse the cache."""
    landing = Path(cache or CACHE) / f"landing-{n_bookings}"
    if any(landing.glob("*/manifest.json")):
        return landing
    from mvg_sync.generator import generate_region, write_drop

    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)
    started = time.perf_counter()
    region = generate_region(seed=7, n_bookings=n_bookings, as_of=AS_OF)
    write_drop(region, landing)
    print(f"generated {n_bookings:,} bookings in {time.perf_counter() - started:.1f} s -> {landing}")
    return landing


INGEST = """\
import json, time
from datetime import datetime
from pathlib import Path
from mvg_sync.ingest import ingest_pending
report = ingest_pending(Path({landing!r}), Path({state!r}), as_of=datetime.fromisoformat({as_of!r}))
print("BENCH-ROWS " + json.dumps(report.rows()))
"""

BASELINE = """\
import json
from pathlib import Path
import duckdb
landing, out = Path({landing!r}), Path({state!r})
con = duckdb.connect()
for manifest_path in sorted(landing.glob("*/manifest.json")):
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    encoding = "latin-1" if manifest["encoding"] == "windows-1252" else "utf-8"
    for name in manifest["files"]:
        src = str(manifest_path.parent / name).replace("'", "''")
        dst = str(out / (name + ".parquet")).replace("'", "''")
        con.execute(
            f"COPY (SELECT t.*, hash(t) AS row_hash FROM read_csv('{{src}}', delim=';', header=true, "
            f"quote='\\"', all_varchar=true, encoding='{{encoding}}') t) TO '{{dst}}' (FORMAT parquet)"
        )
print("BENCH-ROWS []")
"""


def run_child(template: str, landing: Path) -> dict[str, object]:
    """One fresh process on its own empty state folder: wall, CPU seconds, peak RSS, its rows."""
    CACHE.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(dir=CACHE, prefix="state-"))
    code = template.format(landing=str(landing), state=str(state), as_of=AS_OF.isoformat())
    try:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, cwd=Path(__file__).resolve().parent.parent)
        out, err = child.communicate()
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if child.returncode != 0:
        raise RuntimeError(f"child failed:\n{err[-3000:]}")
    # the marked line only: a library may print to stdout too
    marked = [line for line in out.splitlines() if line.startswith("BENCH-ROWS ")]
    if not marked:
        raise RuntimeError(f"child printed no BENCH-ROWS line:\n{out[-2000:]}")
    return {"wall_s": wall, "rows": json.loads(marked[-1].removeprefix("BENCH-ROWS "))}


_LAST_ROWS: list = []


def _timed(template: str, landing: Path) -> dict[str, float]:
    """Wall, CPU seconds and peak RSS of one child (RUSAGE_CHILDREN: run in a parent of its own)."""

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_child(template, landing)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if template is INGEST:
        _LAST_ROWS.append(result["rows"])
    return {"wall_s": result["wall_s"], "cpu_s": cpu, "peak_gb": after.ru_maxrss / 1024 / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="400000,10000000", help="bookings per drop, comma-separated")
    parser.add_argument("--pairs", type=int, default=3, help="alternating mvg-sync/baseline pairs per size")
    parser.add_argument("--cache", type=Path, default=None,
                        help=f"folder of the generated drops and scratch state (default $MVG_BENCH_CACHE or {OUT})")
    args = parser.parse_args(argv)
    if args.cache is not None:
        global CACHE
        CACHE = args.cache
        os.environ["MVG_BENCH_CACHE"] = str(args.cache)  # the measured children read it too
    ok = True
    for size in (int(s) for s in args.sizes.split(",")):
        landing = landing_for(size)
        mb = sum(p.stat().st_size for p in landing.glob("*/*.csv")) / 1e6
        print(f"ingest {size:,} bookings ({mb:,.0f} MB CSV), {args.pairs} pairs, each a fresh process:")
        ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
        peaks = []
        for i in range(args.pairs):
            figures = _isolated_pair(landing)
            ours, base = figures["ours"], figures["base"]
            ratios["wall"].append(ours["wall_s"] / base["wall_s"])
            ratios["cpu"].append(ours["cpu_s"] / base["cpu_s"])
            peaks.append(ours["peak_gb"])
            print(f"  pair {i + 1}: mvg-sync wall {ours['wall_s']:6.2f} s cpu {ours['cpu_s']:6.2f} s "
                  f"peak {ours['peak_gb']:.2f} GB | bare DuckDB wall {base['wall_s']:6.2f} s cpu {base['cpu_s']:6.2f} s "
                  f"| ratio wall {ratios['wall'][-1]:.2f}x cpu {ratios['cpu'][-1]:.2f}x "
                  f"(load average {figures['load']})")
        kind, target, mem_target = TARGETS.get(size, ("cpu", None, None))
        median = statistics.median(ratios[kind])
        verdict = ""
        if target is not None:
            verdict = f"  target {kind} <= {target}x: {'OK' if median <= target else 'OVER'}"
            ok &= median <= target
        if mem_target is not None:
            verdict += f"; peak <= {mem_target} GB: {'OK' if max(peaks) <= mem_target else 'OVER'}"
            ok &= max(peaks) <= mem_target
        print(f"  median ratio wall {statistics.median(ratios['wall']):.2f}x cpu {statistics.median(ratios['cpu']):.2f}x, "
              f"peak {max(peaks):.2f} GB{verdict}")
        for row in figures["rows"]:
            print(f"    {row['outcome']:<9} {row['file'] or '-':<22} in {row['rows_in']}  ok {row['accepted']}  "
                  f"quarantined {row['quarantined']}  {row['drop_reason'] or ''}")
    return 0 if ok else 1


def _loadavg() -> str:
    """1-minute load average: the machine is shared, figures mean little without it."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _isolated_pair(landing: Path) -> dict[str, object]:
    """Each side in its own parent, so RUSAGE_CHILDREN's peak RSS is that side's alone."""
    load = _loadavg()
    sides = {}
    for side in ("ours", "base"):
        code = (
            "import json\nfrom pathlib import Path\nfrom bench.ingest import INGEST, BASELINE, _timed, _LAST_ROWS\n"
            f"r = _timed({'INGEST' if side == 'ours' else 'BASELINE'}, Path({str(landing)!r}))\n"
            "print(json.dumps({'figures': r, 'rows': _LAST_ROWS[-1] if _LAST_ROWS else []}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        sides[side] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"ours": sides["ours"]["figures"], "base": sides["base"]["figures"],
            "rows": sides["ours"]["rows"], "load": f"{load} before, {_loadavg()} after"}


if __name__ == "__main__":
    raise SystemExit(main())
