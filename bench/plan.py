"""Plan at 400 k bookings (issue 12 item 3): `draft_booking_plan` beside a bare DuckDB hash diff, as a ratio.

Both sides work on the same two accepted bookings snapshots of one state folder: the loaded
region's drop and the next drop with ~1,000 changes (bench.sync_cycle's mix). The baseline
reads both Parquet files, hashes the compared columns and full-outer-joins on the booking id,
in one DuckDB query. The state folder is built once and cached under /tmp (a region is
generated and ingested, its first plan is recorded as accepted without a sandbox, then the
next drop is ingested). Each timed plan first gets the hash cache the previous drop's plan
left (as a new drop meets it); one plan without it is shown too.
Target: `draft_booking_plan` <= 2x the bare diff.

Within each timed plan, the time spent in its reads is summed: both store connections (open,
queries, close: the snapshot's look-ups, the record, the accepted payloads read back), the three
snapshot files and the hash cache. That is the least any plan that recomputes from the whole
state costs before a rule runs; the rest is R01-R10 themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

from mvg_sync.timeutil import STOCKHOLM

CACHE = Path(os.environ.get("MVG_BENCH_PLAN_CACHE", "/tmp/mvg-bench-plan"))
N_BOOKINGS = 400_000
SEED = 7
AS_OF = datetime(2026, 11, 26, 8, 0, tzinfo=STOCKHOLM)
TARGET_RATIO = 2.0
CHANGES = {"creations": 300, "rebookings": 200, "cancellations": 150, "vanishings": 50,
           "scope_changes": 100, "updates": 200}
# The columns a booking change is judged on (every column of the snapshot but its file row).
_SKIP = ("source_row",)


def cache_dir(n: int) -> Path:
    return CACHE / f"plan-{n}"


def build(n: int) -> dict:
    """Generate, ingest, record the first plan as accepted, ingest the next drop; return meta."""
    from mvg_sync.generator import generate_region, next_region, write_drop
    from mvg_sync.ingest import ingest_pending
    from mvg_sync.store import plan_reads
    from mvg_sync.sync import commit
    from mvg_sync.sync import draft as drafting

    root = cache_dir(n)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    landing, state = root / "landing", root / "state"
    started = time.perf_counter()
    region = generate_region(seed=SEED, n_bookings=n, as_of=AS_OF)
    write_drop(region, landing)
    ingest_pending(landing, state, as_of=AS_OF)
    units = list(region.clinic24_units)
    draft = drafting.draft_booking_plan(state, units, as_of=AS_OF)
    commit.commit_plan(state, run_id="initial", bookings=draft, ticket_draft=None,
                      snapshot=draft.snapshot, now=AS_OF)
    con = plan_reads.open_state(state)
    try:
        # What a successful initial load leaves behind: every entry accepted and recorded.
        con.execute("UPDATE outbox SET status = 'done', last_outcome = 'accepted', version = '1', "
                    "attempts = 1, settled_at = ?", [AS_OF])
        con.execute("INSERT INTO clinic24_record SELECT resource_type, key, target_status, target_start_at, "
                    "target_unit, content_hash, source_sequence, '1', settled_at FROM outbox")
    finally:
        con.close()
    later = AS_OF + timedelta(minutes=5)
    drop, _ = next_region(region, seed=11, as_of=later, **CHANGES)
    write_drop(drop, landing)
    ingest_pending(landing, state, as_of=later)
    meta = {"n": n, "as_of": later.isoformat(), "units": units, "build_s": time.perf_counter() - started}
    (root / "meta.json").write_text(json.dumps(meta))
    return meta


def snapshot_paths(state: Path) -> tuple[str, str]:
    """The bookings Parquet of the previous and the current accepted drop."""
    import duckdb

    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        ids = [r[0] for r in con.execute(
            "SELECT extract_id FROM drops WHERE outcome = 'accepted' ORDER BY sequence DESC LIMIT 2").fetchall()]
    finally:
        con.close()
    current, previous = (state / "snapshots" / i / "bookings.parquet" for i in ids)
    return str(previous), str(current)


def bare_diff(previous: str, current: str) -> tuple[float, int]:
    """The baseline: read both snapshots, hash the compared columns, full outer join on key."""
    import duckdb

    con = duckdb.connect()
    try:
        columns = [c for c in con.read_parquet(current).columns if c not in _SKIP]
        hashed = ", ".join(f'"{c}"' for c in columns)  # names from the snapshot's own schema
        query = (
            f"WITH a AS (SELECT booking_id, hash({hashed}) AS h FROM read_parquet($previous)), "  # noqa: S608
            f"b AS (SELECT booking_id, hash({hashed}) AS h FROM read_parquet($current)) "
            "SELECT count(*) FROM a FULL OUTER JOIN b USING (booking_id) WHERE a.h IS DISTINCT FROM b.h"
        )
        started = time.perf_counter()
        changed = con.execute(query, {"previous": previous, "current": current}).fetchone()[0]
        return time.perf_counter() - started, changed
    finally:
        con.close()


def previous_plan_cache(state: Path, units: list[str]) -> Path:
    """The hash cache the previous drop's plan left behind (the steady state a new drop meets).

    Rebuilt from the previous bookings snapshot when missing or of another shape (built by
    older code: the plan would ignore it and hash every row, and the figure would be the cold one).
    """
    import polars as pl

    from mvg_sync.rules import booking_scope
    from mvg_sync.store.drops import load_snapshot
    from mvg_sync.sync import draft as drafting

    saved = state.parent / f"previous-{drafting._hash_cache_path(state).name}"
    if saved.exists() and drafting._known_hashes_in(saved) is None:
        saved.unlink()
    if not saved.exists():
        previous, _ = snapshot_paths(state)
        scope = booking_scope.desired_appointments(
            pl.read_parquet(previous), load_snapshot(state, "care_services"), units
        )
        booking_scope.hash_cache_rows(scope.desired).write_ipc(saved, compression="uncompressed")
    return saved


@contextlib.contextmanager
def reads_timed(spent: list[float]):
    """Within the block, the plan's reads add their seconds to `spent` (see the module docstring)."""
    from mvg_sync.sync import draft as drafting

    def timed_call(read):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return read(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - started)
        return call

    @contextlib.contextmanager
    def timed_store(state_dir):
        started = time.perf_counter()
        try:
            with opened(state_dir) as con:
                yield con
        finally:
            spent.append(time.perf_counter() - started)

    opened, snapshot, cached = drafting.open_state, drafting.read_snapshot, drafting._known_hashes
    drafting.open_state, drafting.read_snapshot = timed_store, timed_call(snapshot)
    drafting._known_hashes = timed_call(cached)
    try:
        yield
    finally:
        drafting.open_state, drafting.read_snapshot, drafting._known_hashes = opened, snapshot, cached


def timed_plan(state: Path, units: list[str], as_of: datetime, cache: Path | None) -> tuple[float, int, float]:
    """One `draft_booking_plan`, timed, after putting the previous plan's cache (or none) in
    place: seconds, changes, and seconds of those in its reads."""
    from mvg_sync.sync import draft as drafting

    target = drafting._hash_cache_path(state)
    target.unlink(missing_ok=True)
    if cache is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, target)
    reads: list[float] = []
    with reads_timed(reads):
        started = time.perf_counter()
        draft = drafting.draft_booking_plan(state, units, as_of=as_of)
        seconds = time.perf_counter() - started
    return seconds, draft.changes.height, sum(reads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_BOOKINGS, help=f"bookings in the region (default {N_BOOKINGS})")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides (default 3)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached state folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    meta_file = cache_dir(args.n) / "meta.json"
    if args.rebuild or not meta_file.exists():
        print(f"building the cached state for {args.n:,} bookings under {cache_dir(args.n)} (once)")
        meta = build(args.n)
        print(f"  built in {meta['build_s']:.0f} s")
    meta = json.loads(meta_file.read_text())
    state, units, as_of = cache_dir(args.n) / "state", meta["units"], datetime.fromisoformat(meta["as_of"])
    previous, current = snapshot_paths(state)
    import mvg_sync.sync.commit  # noqa: F401  (imports are not planning)
    import mvg_sync.sync.draft  # noqa: F401

    cache = previous_plan_cache(state, units)
    cold_s, _, _ = timed_plan(state, units, as_of, None)  # also warms the file cache and lazy imports
    plans, diffs, reads = [], [], []
    for _ in range(args.rounds):
        seconds, changes, read_s = timed_plan(state, units, as_of, cache)
        plans.append(seconds)
        reads.append(read_s)
        seconds, differing = bare_diff(previous, current)
        diffs.append(seconds)
    plan_s, diff_s, read_s = statistics.median(plans), statistics.median(diffs), statistics.median(reads)
    ratio = plan_s / diff_s if diff_s else float("inf")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Plan at {args.n:,} bookings, median of {args.rounds} alternating rounds, load average {load}")
    print(f"  draft_booking_plan       {plan_s:6.2f} s   ({changes:,} changes)   runs: "
          + " ".join(f"{s:.2f}" for s in plans))
    print(f"  bare DuckDB hash diff    {diff_s:6.2f} s   ({differing:,} rows differ)   runs: "
          + " ".join(f"{s:.2f}" for s in diffs))
    print(f"    of which its reads     {read_s:6.2f} s   ({read_s / diff_s if diff_s else float('inf'):.2f} x the bare diff:"
          " store look-ups, record, read-back, snapshots, hash cache)   runs: " + " ".join(f"{s:.2f}" for s in reads))
    print(f"  (without the previous plan's hash cache: {cold_s:.2f} s, every row hashed)")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  ratio                    {ratio:6.2f} x   target <= {TARGET_RATIO:g} x: {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
