"""The ingest side of the state store: drops, quarantine, gaps, snapshot pointers (schema: store.migrations)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl

from mvg_sync import store
from mvg_sync.store import resolve_path, stored_path
from mvg_sync.store.types import (
    Connection,
    DropOutcome,
    DropRow,
    Gap,
    Pointer,
    QuarantineCount,
    first_row,
)

ACCEPTED, REJECTED = DropOutcome.ACCEPTED, DropOutcome.REJECTED

SNAPSHOTS = "snapshots"


def connect(
    state_dir: Path, *, memory_limit: str = "2GB", read_only: bool = False, wait_s: float | None = None
) -> Connection:
    """The state store (created and upgraded when needed): `with drops.connect(d) as con:`.

    The one opener is `mvg_sync.store.connect` (bounded waits across processes, migrations);
    this name stays for the callers that import it from here.
    """
    return store.connect(state_dir, memory_limit=memory_limit, read_only=read_only, wait_s=wait_s)


def snapshot_path(state_dir: Path, extract_id: str, dataset: str) -> Path:
    """Where an accepted snapshot lives."""
    return state_dir / SNAPSHOTS / extract_id / f"{dataset}.parquet"


def processed_drop_ids(con: Connection) -> set[str]:
    """Every drop folder name with a recorded outcome: discovery skips these."""
    return {str(r[0]) for r in con.execute("SELECT extract_id FROM drops").fetchall()}


def drop_outcome(con: Connection, extract_id: str) -> DropOutcome | None:
    """The recorded outcome of a drop, or None if it was never processed."""
    row = first_row(con.execute("SELECT outcome FROM drops WHERE extract_id = ?", [extract_id]))
    return None if row is None else DropOutcome(row[0])


def processed_at(con: Connection) -> dict[str, datetime]:
    """extract_id -> when it was processed, for every drop with a recorded outcome (retention ages them)."""
    return {str(e): p for e, p in con.execute("SELECT extract_id, processed_at FROM drops").fetchall()}


def drop_totals(con: Connection) -> dict[DropOutcome, int]:
    """Drops by outcome, all time."""
    rows = con.execute("SELECT outcome, count(*) FROM drops GROUP BY outcome ORDER BY outcome").fetchall()
    return {DropOutcome(o): int(n) for o, n in rows}


def recent_drops(con: Connection, limit: int) -> list[DropRow]:
    """The newest drops, newest first by the instant of the extract (extract_id is local time
    and repeats an hour at the autumn fall-back); a drop whose manifest was unusable has no
    extracted_at and stands at the time it was processed."""
    rows = con.execute(
        "SELECT extract_id, sequence, outcome, reason, counts FROM drops "
        "ORDER BY coalesce(extracted_at, processed_at) DESC, sequence DESC NULLS LAST, extract_id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [DropRow.of(*row) for row in rows]


def quarantine_counts(con: Connection, limit: int) -> list[QuarantineCount]:
    """Quarantined rows by file, rule and reason, most first."""
    rows = con.execute(
        "SELECT file, rule, reason, count(*) AS n FROM quarantine GROUP BY file, rule, reason "
        "ORDER BY n DESC, file, rule, reason LIMIT ?",
        [limit],
    ).fetchall()
    return [QuarantineCount(f, r, why, int(n)) for f, r, why, n in rows]


def sequence_gaps(con: Connection) -> list[Gap]:
    rows = con.execute(
        "SELECT after_sequence, before_sequence, missing, detected_at FROM sequence_gaps ORDER BY after_sequence"
    ).fetchall()
    return [Gap(*row) for row in rows]


def pointers(con: Connection) -> list[Pointer]:
    """The current snapshot of each dataset, by dataset name."""
    rows = con.execute(
        "SELECT dataset, extract_id, path, accepted_at FROM snapshot_pointer ORDER BY dataset"
    ).fetchall()
    return [Pointer(*row) for row in rows]


def latest_accepted(con: Connection) -> tuple[str, int, datetime] | None:
    """(extract_id, sequence, extracted_at) of the newest accepted drop.

    Newest by Cosmic's own counter, then the instant of the extract; never by extract_id: it is
    local time, and after the autumn fall-back a newer drop's id sorts before an older one's.
    """
    row = first_row(con.execute(
        "SELECT extract_id, sequence, extracted_at FROM drops WHERE outcome = ? "
        "ORDER BY sequence DESC, extracted_at DESC LIMIT 1",
        [ACCEPTED],
    ))
    return None if row is None else (str(row[0]), int(row[1]), row[2])


def drop_with_sequence(con: Connection, sequence: int) -> str | None:
    """A drop that passed the manifest (accepted, or rejected on content) with this sequence, if any."""
    row = first_row(con.execute(
        "SELECT extract_id FROM drops WHERE sequence = ? AND outcome IN (?, ?)", [sequence, ACCEPTED, REJECTED]))
    return None if row is None else str(row[0])


def latest_sequence(con: Connection) -> int | None:
    """Highest sequence of any drop that passed the manifest (accepted or rejected on content)."""
    row = first_row(con.execute(
        "SELECT max(sequence) FROM drops WHERE outcome IN (?, ?) AND sequence IS NOT NULL", [ACCEPTED, REJECTED]
    ))
    return None if row is None or row[0] is None else int(row[0])


def previous_counts(con: Connection) -> dict[str, int]:
    """Rows in per file of the newest accepted drop (by sequence, as latest_accepted) that held that file."""
    rows = con.execute(
        "SELECT counts FROM drops WHERE outcome = ? ORDER BY sequence DESC, extracted_at DESC LIMIT 20", [ACCEPTED]
    ).fetchall()
    seen: dict[str, int] = {}
    for (counts,) in rows:
        files = json.loads(counts or "{}").get("files", {})
        for name, entry in files.items():
            seen.setdefault(name, int(entry.get("rows_in", 0)))
    return seen


def record_drop(
    con: Connection,
    *,
    extract_id: str,
    sequence: int | None,
    extracted_at: datetime | None,
    window: tuple[object, object] | None,
    outcome: DropOutcome | str,
    reason: str | None,
    processed_at: datetime,
    counts: dict[str, object],
    quarantine: pl.DataFrame | None = None,
    snapshots: dict[str, Path] | None = None,
    gap: tuple[int, int] | None = None,
) -> None:
    """Record a drop's outcome with its quarantine rows, gap and snapshot pointers in ONE transaction.

    `quarantine` has the columns of the `quarantine` table except `extract_id` and
    `quarantined_at`, which are filled in here; it is bulk-inserted through Arrow.
    """
    window_from, window_to = window if window else (None, None)
    with store.transaction(con):
        con.execute(
            "INSERT INTO drops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [extract_id, sequence, extracted_at, window_from, window_to, DropOutcome(outcome), reason,
             processed_at, json.dumps(counts)],
        )
        if quarantine is not None and quarantine.height:
            rows = quarantine.select(
                pl.lit(extract_id).alias("extract_id"),
                pl.col("file").cast(pl.String),
                pl.col("source_row").cast(pl.Int64),
                (pl.col("record_key") if "record_key" in quarantine.columns else pl.lit(None))
                .cast(pl.String).alias("record_key"),
                pl.col("column_name").cast(pl.String),
                pl.col("rule").cast(pl.String),
                pl.col("reason").cast(pl.String),
                pl.lit(processed_at).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
            )
            con.register("_quarantine_rows", rows.to_arrow())
            try:
                con.execute("INSERT INTO quarantine SELECT * FROM _quarantine_rows")
            finally:
                con.unregister("_quarantine_rows")
        if gap is not None:
            after, before = gap
            con.execute(
                "INSERT INTO sequence_gaps VALUES (?, ?, ?, ?)",
                [after, before, before - after - 1, processed_at],
            )
        for dataset, path in (snapshots or {}).items():
            # kept relative to the state folder, so a restored or moved folder still works
            con.execute(
                "INSERT INTO snapshot_pointer VALUES (?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET "
                "extract_id = excluded.extract_id, path = excluded.path, accepted_at = excluded.accepted_at",
                [dataset, extract_id, stored_path(str(path)), processed_at],
            )


def snapshot_pointers(con: Connection) -> dict[str, tuple[str, str]]:
    """dataset -> (extract_id, path as stored: relative to the state folder) of the latest accepted snapshot."""
    rows = con.execute("SELECT dataset, extract_id, path FROM snapshot_pointer").fetchall()
    return {str(d): (str(e), str(p)) for d, e, p in rows}


def pointer_extract_id(con: Connection, dataset: str) -> str | None:
    """The drop whose snapshot of `dataset` is current (optional files keep the last one seen)."""
    row = con.execute("SELECT extract_id FROM snapshot_pointer WHERE dataset = ?", [dataset]).fetchall()
    return row[0][0] if row else None


def quarantined_keys(con: Connection, extract_id: str, file: str) -> list[str]:
    """Ids of the rows of one file that a drop quarantined: they exist in Cosmic but are unusable."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT record_key FROM quarantine WHERE extract_id = ? AND file = ? AND record_key IS NOT NULL",
            [extract_id, file],
        ).fetchall()
    ]


def quarantine_rows(con: Connection, extract_id: str, file: str) -> pl.DataFrame:
    """The quarantine rows one drop recorded for one file, as ingest made them (issue 12: a file
    equal to the previous accepted drop's is not parsed again, and its rows are recorded anew)."""
    rows = con.execute(
        "SELECT source_row, record_key, column_name, rule, reason FROM quarantine "
        "WHERE extract_id = ? AND file = ? ORDER BY source_row, column_name",
        [extract_id, file],
    ).fetchall()
    schema = {"source_row": pl.Int64, "record_key": pl.String, "column_name": pl.String, "rule": pl.String,
              "reason": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def load_snapshot(state_dir: Path, dataset: str) -> pl.DataFrame | None:
    """The latest accepted snapshot of a dataset (design.md names), or None before the first."""
    try:
        with store.connect(state_dir, read_only=True) as con:
            files = snapshot_files(con, state_dir, [dataset])
    except store.NoStore:  # asked by the backend, not by a file name: a server store has no file
        return None
    return read_snapshot(files[dataset])


def snapshot_files(con: Connection, state_dir: Path, datasets: list[str]) -> dict[str, Path | None]:
    """Where the latest accepted snapshot of each dataset lives (None before the first), from one
    read of the pointers: a plan reads its datasets through one open of the store, and all of
    them as of the same moment (issue 12: every `load_snapshot` opened the store once more)."""
    rows = dict(con.execute("SELECT dataset, path FROM snapshot_pointer").fetchall())
    return {d: resolve_path(state_dir, rows[d]) if d in rows else None for d in datasets}


def read_snapshot(path: Path | None) -> pl.DataFrame | None:
    """A snapshot file `snapshot_files` named, or None for a dataset with no snapshot yet."""
    return None if path is None else pl.read_parquet(path)


def discard_snapshot_folder(state_dir: Path, extract_id: str) -> None:
    """Remove Parquet written for a drop whose outcome was not committed."""
    shutil.rmtree(state_dir / SNAPSHOTS / extract_id, ignore_errors=True)
