"""The integration's DuckDB state store: schema, connections and small read/write helpers."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

STATE_FILE = "state.duckdb"
SNAPSHOTS = "snapshots"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS drops (
        extract_id VARCHAR PRIMARY KEY,
        sequence BIGINT,
        extracted_at TIMESTAMPTZ,
        window_from DATE,
        window_to DATE,
        outcome VARCHAR NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'duplicate', 'stale')),
        reason VARCHAR,
        processed_at TIMESTAMPTZ NOT NULL,
        counts JSON
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        extract_id VARCHAR NOT NULL,
        file VARCHAR,
        source_row BIGINT,
        record_key VARCHAR,            -- the row's own id (BokningsID, UnderlagsID, ...), never patient data
        column_name VARCHAR,
        rule VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        quarantined_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sequence_gaps (
        after_sequence BIGINT NOT NULL,
        before_sequence BIGINT NOT NULL,
        missing BIGINT NOT NULL,
        detected_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS snapshot_pointer (
        dataset VARCHAR PRIMARY KEY,
        extract_id VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        accepted_at TIMESTAMPTZ NOT NULL
    )""",
)


def connect(state_dir: Path, *, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the state store and its schema; safe to call repeatedly."""
    state_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(state_dir / STATE_FILE))
    tmp = state_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    # DuckDB's limit covers only its buffer manager (STACK-NOTES): cap it and let it spill
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET temp_directory = '" + str(tmp).replace("'", "''") + "'")
    con.execute("SET preserve_insertion_order = true")  # source_row relies on file order
    con.execute("SET TimeZone = 'UTC'")
    for statement in _SCHEMA:
        con.execute(statement)
    return con


def snapshot_path(state_dir: Path, extract_id: str, dataset: str) -> Path:
    """Where an accepted snapshot lives."""
    return state_dir / SNAPSHOTS / extract_id / f"{dataset}.parquet"


def processed_drop_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every drop folder name with a recorded outcome: discovery skips these."""
    return {str(r[0]) for r in con.execute("SELECT extract_id FROM drops").fetchall()}


def drop_outcome(con: duckdb.DuckDBPyConnection, extract_id: str) -> str | None:
    """The recorded outcome of a drop, or None if it was never processed."""
    row = con.execute("SELECT outcome FROM drops WHERE extract_id = ?", [extract_id]).fetchone()
    return None if row is None else str(row[0])


def latest_accepted(con: duckdb.DuckDBPyConnection) -> tuple[str, int, datetime] | None:
    """(extract_id, sequence, extracted_at) of the newest accepted drop.

    Newest by Cosmic's own counter, then the instant of the extract; never by extract_id: it is
    local time, and after the autumn fall-back a newer drop's id sorts before an older one's.
    """
    row = con.execute(
        "SELECT extract_id, sequence, extracted_at FROM drops WHERE outcome = 'accepted' "
        "ORDER BY sequence DESC, extracted_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), row[2])


def latest_sequence(con: duckdb.DuckDBPyConnection) -> int | None:
    """Highest sequence of any drop that passed the manifest (accepted or rejected on content)."""
    row = con.execute(
        "SELECT max(sequence) FROM drops WHERE outcome IN ('accepted', 'rejected') AND sequence IS NOT NULL"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def previous_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in per file of the newest accepted drop (by sequence, as latest_accepted) that held that file."""
    rows = con.execute(
        "SELECT counts FROM drops WHERE outcome = 'accepted' ORDER BY sequence DESC, extracted_at DESC LIMIT 20"
    ).fetchall()
    seen: dict[str, int] = {}
    for (counts,) in rows:
        files = json.loads(counts or "{}").get("files", {})
        for name, entry in files.items():
            seen.setdefault(name, int(entry.get("rows_in", 0)))
    return seen


def record_drop(
    con: duckdb.DuckDBPyConnection,
    *,
    extract_id: str,
    sequence: int | None,
    extracted_at: datetime | None,
    window: tuple[object, object] | None,
    outcome: str,
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
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO drops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [extract_id, sequence, extracted_at, window_from, window_to, outcome, reason,
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
            con.execute("INSERT INTO quarantine SELECT * FROM _quarantine_rows")
            con.unregister("_quarantine_rows")
        if gap is not None:
            after, before = gap
            con.execute(
                "INSERT INTO sequence_gaps VALUES (?, ?, ?, ?)",
                [after, before, before - after - 1, processed_at],
            )
        for dataset, path in (snapshots or {}).items():
            con.execute(
                "INSERT OR REPLACE INTO snapshot_pointer VALUES (?, ?, ?, ?)",
                [dataset, extract_id, str(path), processed_at],
            )
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)
        raise


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after an error, keeping that error the one raised.

    A failed write (a full disk) can end DuckDB's transaction itself; ROLLBACK then fails with
    `cannot rollback - no transaction is active`, which would hide the real cause (issue 14).
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def snapshot_pointers(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
    """dataset -> (extract_id, path) of the latest accepted snapshot."""
    rows = con.execute("SELECT dataset, extract_id, path FROM snapshot_pointer").fetchall()
    return {str(d): (str(e), str(p)) for d, e, p in rows}


def pointer_extract_id(con: duckdb.DuckDBPyConnection, dataset: str) -> str | None:
    """The drop whose snapshot of `dataset` is current (optional files keep the last one seen)."""
    row = con.execute("SELECT extract_id FROM snapshot_pointer WHERE dataset = ?", [dataset]).fetchall()
    return row[0][0] if row else None


def quarantined_keys(con: duckdb.DuckDBPyConnection, extract_id: str, file: str) -> list[str]:
    """Ids of the rows of one file that a drop quarantined: they exist in Cosmic but are unusable."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT record_key FROM quarantine WHERE extract_id = ? AND file = ? AND record_key IS NOT NULL",
            [extract_id, file],
        ).fetchall()
    ]


def load_snapshot(state_dir: Path, dataset: str) -> pl.DataFrame | None:
    """The latest accepted snapshot of a dataset (design.md names), or None before the first."""
    if not (state_dir / STATE_FILE).exists():
        return None
    con = duckdb.connect(str(state_dir / STATE_FILE), read_only=True)
    try:
        row = con.execute("SELECT path FROM snapshot_pointer WHERE dataset = ?", [dataset]).fetchone()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    return None if row is None else pl.read_parquet(row[0])


def discard_snapshot_folder(state_dir: Path, extract_id: str) -> None:
    """Remove Parquet written for a drop whose outcome was not committed."""
    shutil.rmtree(state_dir / SNAPSHOTS / extract_id, ignore_errors=True)
