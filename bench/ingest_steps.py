"""Where a regional ingest's CPU goes, step by step, beside the bare DuckDB baseline (issue 12).

`python -m bench.ingest` gives the ratio of whole processes; this says what the ratio is made of.
In one fresh process it runs ingest's steps one after the other on the generated regional drop,
with the process CPU (user + system, every thread) read around each step:

- imports: Polars, DuckDB, pyarrow and the ingest code (the baseline imports DuckDB alone);
- scan: sha256 of every byte (the manifest's check) and the encoding probes (`reader.scan_file`);
- read: DuckDB's CSV parse and the hand-over of its strings to Polars (`reader.iter_raw_batches`);
- normalise: types, R13, HSA-ids, local times and quarantine reasons (`normalise.normalise_rows`);
- write: the snapshot's Parquet file (Polars, lz4, as ingest writes it);
- contract: pandera's import and the snapshot contract on each file's sample.

Then the whole `ingest_pending` and the bare baseline, each as a fresh process, as bench.ingest
runs them. The steps run in sequence, not streamed as ingest streams them, so their sum is not
the whole: the difference is the streaming, the store and the gate. `floor` is the baseline plus
the steps it does not do (imports beyond DuckDB, scan, normalise, contract): the least an ingest
built on DuckDB's parser and these normalisers could cost, if reading, handing over and writing
cost no more than the baseline's own COPY.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from bench.ingest import AS_OF, BASELINE, INGEST, _loadavg, _timed, landing_for

STEPS = ("imports", "scan", "read", "normalise", "write", "contract")

_STEPS_CHILD = """\
import json, resource, shutil, tempfile
from pathlib import Path
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
spent = dict.fromkeys({steps!r}, 0.0)
start = cpu()
import polars as pl
from mvg_sync.cosmic_columns import LAYOUT_BY_FILE
from mvg_sync.ingest import ingest_pending  # noqa: F401  (the whole ingest's imports)
from mvg_sync.ingest.manifest import read_manifest
from mvg_sync.ingest.normalise import normalise_rows
from mvg_sync.ingest.reader import check_bytes, csv_source, iter_raw_batches, scan_file
from mvg_sync.store import work_connection
from mvg_sync.timeutil import STOCKHOLM
spent["imports"] = cpu() - start
folder = sorted(Path({landing!r}).glob("*/manifest.json"))[0].parent
manifest = read_manifest(folder)
reference = manifest.extracted_at.astimezone(STOCKHOLM).date()
scratch = Path(tempfile.mkdtemp(prefix="steps-"))  # owner-only; removed below
frames = {{}}
try:
    with work_connection(scratch) as con:
        for name in manifest.files:
            layout = LAYOUT_BY_FILE.get(name)
            if layout is None:
                continue
            path = folder / name
            mark = cpu()
            scan = scan_file(path, manifest.encoding)
            names = check_bytes(path, manifest.encoding, scan)
            source = csv_source(path, manifest.encoding, scan, scratch / "tmp")
            spent["scan"] += cpu() - mark
            mark = cpu()
            batches = list(iter_raw_batches(con, source, names, batch_rows=250_000))
            spent["read"] += cpu() - mark
            mark = cpu()
            done, rows = [], 0
            for raw in batches:
                done.append(normalise_rows(raw, layout, reference, row_offset=rows,
                                           window=(manifest.window_from, manifest.window_to),
                                           may_hold_nul=scan.has_nul).frame)
                rows += raw.height
            frame = pl.concat(done)
            spent["normalise"] += cpu() - mark
            del batches
            mark = cpu()
            frame.write_parquet(scratch / (layout.dataset + ".parquet"), compression="lz4", statistics=False)
            spent["write"] += cpu() - mark
            frames[layout.dataset] = frame
    mark = cpu()
    import contracts.snapshots
    from contracts.snapshots import SAMPLE_ROWS
    for dataset, frame in frames.items():
        contracts.snapshots.validate_snapshot(dataset, frame.sample(min(SAMPLE_ROWS, frame.height), seed=0))
    spent["contract"] = cpu() - mark
    print("BENCH-STEPS " + json.dumps(spent))
finally:
    shutil.rmtree(scratch, ignore_errors=True)
"""


def _steps(landing: Path) -> dict[str, float]:
    code = _STEPS_CHILD.format(steps=STEPS, landing=str(landing))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    marked = [line for line in done.stdout.splitlines() if line.startswith("BENCH-STEPS ")]
    if done.returncode != 0 or not marked:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(marked[-1].removeprefix("BENCH-STEPS "))


def _bare_import_cpu() -> float:
    """CPU of a fresh process importing DuckDB alone (what the baseline's imports cost)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import duckdb"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_steps", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400_000, help="bookings in the drop (default 400000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of steps, ingest and baseline (default 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    landing = landing_for(args.size)
    load_before = _loadavg()
    rounds = []
    for _ in range(args.rounds):
        steps = _steps(landing)
        steps["bare imports"] = _bare_import_cpu()
        steps["whole ingest"] = _timed(INGEST, landing)["cpu_s"]
        steps["bare DuckDB"] = _timed(BASELINE, landing)["cpu_s"]
        rounds.append(steps)
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    base = median["bare DuckDB"]
    print(f"Ingest of {args.size:,} bookings (drop as of {AS_OF:%Y-%m-%d}), CPU-s, median of {args.rounds} rounds, "
          f"load average {load_before} before, {_loadavg()} after")
    print(f"  {'step':<14} {'CPU-s':>6}  {'x bare':>7}")
    for step in (*STEPS, "whole ingest", "bare DuckDB"):
        print(f"  {step:<14} {median[step]:6.2f}  {median[step] / base:6.2f}x")
    extra = median["imports"] - median["bare imports"]
    floor = base + extra + median["scan"] + median["normalise"] + median["contract"]
    print(f"  {'floor':<14} {floor:6.2f}  {floor / base:6.2f}x   (bare + imports beyond DuckDB {extra:.2f} "
          "+ scan + normalise + contract)")
    print(f"  steps in sequence {sum(median[s] for s in STEPS):.2f} CPU-s; the whole ingest streams them and adds "
          "the store, the gate and the threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
