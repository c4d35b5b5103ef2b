"""The sync cycle's store work on the file store and on PostgreSQL, side by side in one run (issue 15).

Per backend, on a fresh store: `write_plan` of N changes (one transaction), `pending_entries`,
`settle` of every change in batches as the push does (one transaction per batch, all
accepted, so the record is written), and `load_record` (the record read as Arrow/Polars, as
planning does). The backends alternate within each pair (first one, then the other, then
swapped), and each line prints the PostgreSQL/DuckDB ratio with the load average: the
machine is shared, so only ratios within a pair mean much.

    python -m bench.store_backends --changes 20000 --pairs 2

PostgreSQL is a throwaway server started here (tests/pg.py), or MVG_STATE_URL's if set.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from mvg_sync import store
from mvg_sync.store import outbox

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
BATCH = 100  # entries per Clinic24 batch, settled in one transaction (sync/push.py push_pending)
PHASES = ("write_plan", "pending_entries", "settle", "load_record")


def plan(n: int) -> pl.DataFrame:
    keys = [f"{9_000_000 + i}" for i in range(n)]
    payload = {"resourceType": "Appointment", "status": "booked", "participant": [{"actor": {"reference": "x"}}] * 3}
    return pl.DataFrame(
        {
            "key": keys, "change_kind": ["create"] * n, "rule": ["R06"] * n,
            "content_hash": [f"{i:064x}" for i in range(n)], "source_sequence": [1] * n,
            "payload": [json.dumps({**payload, "id": k}) for k in keys], "target_status": ["booked"] * n,
            "target_start_at": [NOW + timedelta(minutes=15 * (i % 5000)) for i in range(n)],
            "target_unit": [f"SE2321000233-E{1001 + i % 40}" for i in range(n)],
            "extracted_at": [NOW - timedelta(minutes=2)] * n,
        },
        schema_overrides={"target_start_at": pl.Datetime("us", "UTC"), "extracted_at": pl.Datetime("us", "UTC")},
    )


def _entry(e, name: str):
    return e[name]


def settled(entries: list, at: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "change_id": [_entry(e, "change_id") for e in entries], "outcome": ["accepted"] * len(entries),
            "new_status": ["done"] * len(entries), "reason": [None] * len(entries),
            "version": ["1"] * len(entries), "settled_at": [at] * len(entries),
            "resource_type": [str(_entry(e, "resource_type")) for e in entries],
            "key": [_entry(e, "key") for e in entries], "target_status": [_entry(e, "target_status") for e in entries],
            "target_start_at": [_entry(e, "target_start_at") for e in entries],
            "target_unit": [_entry(e, "target_unit") for e in entries],
            "content_hash": [_entry(e, "content_hash") for e in entries],
            "source_sequence": [_entry(e, "source_sequence") for e in entries],
        },
        schema={
            "change_id": pl.Utf8, "outcome": pl.Utf8, "new_status": pl.Utf8, "reason": pl.Utf8, "version": pl.Utf8,
            "settled_at": pl.Datetime("us", "UTC"), "resource_type": pl.Utf8, "key": pl.Utf8,
            "target_status": pl.Utf8, "target_start_at": pl.Datetime("us", "UTC"), "target_unit": pl.Utf8,
            "content_hash": pl.Utf8, "source_sequence": pl.Int64,
        },
    )


def cycle(state_dir: Path, url: str | None, changes: pl.DataFrame) -> dict[str, float]:
    took: dict[str, float] = {}
    with store.connect(state_dir, url=url) as con:
        t = time.perf_counter()
        outbox.write_plan(con, {"Appointment": changes}, plan_id="P1", now=NOW)
        took["write_plan"] = time.perf_counter() - t
        t = time.perf_counter()
        entries = outbox.pending_entries(con)
        took["pending_entries"] = time.perf_counter() - t
        assert len(entries) == changes.height
        t = time.perf_counter()
        for start in range(0, len(entries), BATCH):
            outbox.settle(con, settled(entries[start : start + BATCH], NOW + timedelta(seconds=30)))
        took["settle"] = time.perf_counter() - t
        t = time.perf_counter()
        record = outbox.load_record(con, "Appointment")
        took["load_record"] = time.perf_counter() - t
        assert record.height == changes.height
    took["total"] = sum(took[p] for p in PHASES)
    return took


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    server = None
    base_url = os.environ.get("MVG_STATE_URL")
    if not base_url:
        from tests import pg

        server = pg.start()
        base_url = server.url()
    changes = plan(args.changes)
    ratios: dict[str, list[float]] = {p: [] for p in (*PHASES, "total")}
    print(f"store work of one sync cycle, {args.changes:,} changes, settle batches of {BATCH}; load {_load()}")
    try:
        with tempfile.TemporaryDirectory(prefix="mvg-bench-store-") as tmp:
            for pair in range(args.pairs):
                order = ("duckdb", "postgresql") if pair % 2 == 0 else ("postgresql", "duckdb")
                took: dict[str, dict[str, float]] = {}
                for backend in order:
                    state_dir = Path(tmp) / f"{backend}-{pair}"
                    sep = "&" if "?" in base_url else "?"
                    url = f"{base_url}{sep}schema=bench_{secrets.token_hex(4)}" if backend == "postgresql" else None
                    load = _load()
                    took[backend] = cycle(state_dir, url, changes)
                    cells = "  ".join(f"{p} {took[backend][p]:6.2f}" for p in (*PHASES, "total"))
                    print(f"pair {pair + 1} {backend:<10} {cells}  s  (load {load})")
                for p in ratios:
                    ratios[p].append(took["postgresql"][p] / took["duckdb"][p])
                print(f"pair {pair + 1} ratio pg/duckdb " + "  ".join(f"{p} {ratios[p][-1]:.2f}x" for p in ratios))
    finally:
        if server is not None:
            server.stop()
    print("median ratio pg/duckdb: " + "  ".join(f"{p} {statistics.median(v):.2f}x" for p, v in ratios.items())
          + f"  (load {_load()})")


if __name__ == "__main__":
    main()
