"""Ingest + validate benchmark: a regional (~400k bookings) and a national (10M) drop, wall time and peak RSS."""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from mvg_sync.timeutil import STOCKHOLM

OUT = Path(__file__).resolve().parent / "out" / "ingest"
AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)
TARGETS = {400_000: (10.0, None), 10_000_000: (11.0, 4.0)}


def landing_for(n_bookings: int) -> Path:
    """Generate the drop once; later runs reuse the cache."""
    landing = OUT / f"landing-{n_bookings}"
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


def measure(landing: Path) -> dict[str, object]:
    """Run ingest_pending in a fresh subprocess; its RUSAGE_CHILDREN max RSS is the peak."""
    state = Path(tempfile.mkdtemp(dir=OUT, prefix="state-"))
    code = (
        "import json, sys, time\n"
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "t0 = time.perf_counter()\n"
        "from mvg_sync.ingest import ingest_pending\n"
        "t1 = time.perf_counter()\n"
        f"report = ingest_pending(Path({str(landing)!r}), Path({str(state)!r}), "
        f"as_of=datetime.fromisoformat({AS_OF.isoformat()!r}))\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import_s': t1 - t0, 'ingest_s': t2 - t1, 'rows': report.rows()}))\n"
    )
    try:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"ingest subprocess failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(state, ignore_errors=True)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    return {"wall_s": wall, "peak_gb": peak_gb, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--sizes", default="400000,10000000", help="bookings per drop, comma-separated")
    args = parser.parse_args(argv)
    ok = True
    for size in (int(s) for s in args.sizes.split(",")):
        landing = landing_for(size)
        mb = sum(p.stat().st_size for p in landing.glob("*/*.csv")) / 1e6
        # one size per subprocess so RUSAGE_CHILDREN is that size's peak
        load_before = _loadavg()
        figures = measure(landing) if size == 0 else _isolated(size)
        wall_target, mem_target = TARGETS.get(size, (None, None))
        verdict = []
        if wall_target is not None:
            verdict.append(f"wall {'OK' if figures['wall_s'] <= wall_target else 'OVER'} (<= {wall_target:.0f} s)")
            ok &= figures["wall_s"] <= wall_target
        if mem_target is not None:
            verdict.append(f"peak {'OK' if figures['peak_gb'] <= mem_target else 'OVER'} (<= {mem_target:.0f} GB)")
            ok &= figures["peak_gb"] <= mem_target
        print(
            f"ingest {size:>11,} bookings ({mb:,.0f} MB CSV): wall {figures['wall_s']:.2f} s "
            f"(imports {figures['import_s']:.2f} s, ingest {figures['ingest_s']:.2f} s), "
            f"peak RSS {figures['peak_gb']:.2f} GB  {'; '.join(verdict)}  "
            f"(load average {load_before} before, {_loadavg()} after; 2 cores shared)"
        )
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


def _isolated(size: int) -> dict[str, object]:
    """Measure in a child that itself spawns the ingest child: a clean RUSAGE_CHILDREN per size."""
    landing = landing_for(size)
    code = (
        "import json\nfrom pathlib import Path\nfrom bench.ingest import measure\n"
        f"print(json.dumps(measure(Path({str(landing)!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
