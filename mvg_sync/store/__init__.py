"""The state store: its one way in (every connection, across processes, bounded waits, migrations) and its queries.

The package owns the whole schema and every query on it (issue 13.1): `drops` (ingest:
drops, quarantine, gaps, snapshot pointers), `outbox` (the sync: outbox, Clinic24 record,
holds, approvals, locations, runs), `queries` (the reads `status`, the run summary and the
reports share), `maintenance` (retention), `migrations` (the versioned schema), `types` (the
vocabulary as StrEnums, the typed rows, and `Connection`, the protocol a backend fits). No
module outside runs SQL on the store (tests/unit/test_store_owns_sql.py).

Portable SQL — every query here runs unchanged on DuckDB and on PostgreSQL 15:
- placeholders `?` (a list) or `$name` (a dict), never `$1`; statuses, kinds and types are
  bound from `store.types`, not written as literals;
- upserts as `INSERT … ON CONFLICT (…) DO UPDATE SET … = excluded.… | DO NOTHING`, never
  `INSERT OR REPLACE`;
- `extract(epoch FROM x)`, not `epoch(x)`; `percentile_cont(p) WITHIN GROUP (ORDER BY x)`, not
  `quantile_cont`; `count(*) FILTER (WHERE …)`; window functions in a subquery, never QUALIFY;
  explicit GROUP BY / ORDER BY columns, never `BY ALL`; `information_schema` with
  `current_schema()`; `timezone(zone, ts)`;
- no list parameters, `unnest`, list or DuckDB JSON functions: a set of keys is a frame,
  `con.register(name, frame)` … `con.unregister(name)` (in `finally`), joined or tested with
  EXISTS; `->>` on a JSON column is fine;
- an UPDATE/DELETE's `.fetchone()[0]` is the count of rows it changed (DuckDB's answer; the
  PostgreSQL adapter gives the same);
- two statements stay backend-specific and are named as such: `maintenance.reclaim_space`
  (CHECKPOINT) and this module's opener (`SET`, `duckdb_databases()`).

Why DuckDB with short-held connections (measured on this 2-core machine, see docs/design.md
"State store: concurrency"): DuckDB admits one writing process per file and has no busy
timeout — a second process fails at once with `Could not set lock on file`. SQLite in WAL
mode would let readers in during a write, but the snapshots and plans are DuckDB over
Polars/Arrow frames, and a second backend is PostgreSQL (issue 15). So the rules are:

- every open goes through `connect` (or `lease`, `transaction`), used with `with`;
- a lock conflict is not an error: the opener retries with a short back-off for a bounded
  time (`WRITE_WAIT_S`, `READ_WAIT_S`), says so after `NOTICE_AFTER_S`, and only then fails
  with one line (`StoreBusy`) — writers therefore serialise without losing work;
- nobody holds a connection across network IO or long compute: ingest computes in an
  in-memory DuckDB (`work_connection`) and opens the store to read and to record; the push
  settles through a `lease`, which keeps its connection between batches (an open plus close
  costs 70–340 ms here, per batch that would double an initial load) but closes it as soon
  as another process is waiting (the waiter touches `.store-wanted`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from mvg_sync.fileperms import private_dir, private_file
from mvg_sync.store.migrations import (
    CURRENT,
    StoreTooNew,
    check_not_newer,
    stored_path,
    upgrade,
    version,
)
from mvg_sync.store.types import Connection

__all__ = [
    "CURRENT", "Connection", "NoStore", "STATE_FILE", "StoreBusy", "StoreTooNew", "Lease", "connect", "lease",
    "exists", "resolve_path", "state_url", "use_url", "stored_path", "transaction", "work_connection",
]

log = logging.getLogger(__name__)

STATE_FILE = "state.duckdb"
WANTED = ".store-wanted"
# Longest a command or run waits for another process to let go of the store. Writers wait
# longer: the longest hold is an initial load's outbox transaction, and a sync must not fail.
WRITE_WAIT_S = 300.0
READ_WAIT_S = 120.0
NOTICE_AFTER_S = 1.0
_WANTED_FRESH_S = 1.0  # a waiter touches the marker every ~0.1 s
_COURTESY_S = 0.3  # how long a holder that let go, or an opener that sees a waiter, stands back


_IN_TRANSACTION: set[int] = set()  # connections inside a `transaction` block (ids; removed on exit)


class StoreBusy(RuntimeError):
    """Another process held the store for longer than the bounded wait."""


class NoStore(FileNotFoundError):
    """No state store in the folder yet (nothing has been ingested or synced)."""


def _is_lock_conflict(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def _want(state_dir: Path) -> None:
    try:
        (state_dir / WANTED).touch()
    except OSError:  # a read-only mount: the holder just keeps its lease a little longer
        pass


def wanted(state_dir: Path) -> bool:
    """Whether another process has been waiting for the store in the last few seconds."""
    try:
        return time.time() - (state_dir / WANTED).stat().st_mtime < _WANTED_FRESH_S
    except FileNotFoundError:
        return False


def _open(
    state_dir: Path, *, read_only: bool, wait_s: float | None, notice: Callable[[str], None] | None
) -> duckdb.DuckDBPyConnection:
    path = state_dir / STATE_FILE
    wait_s = (READ_WAIT_S if read_only else WRITE_WAIT_S) if wait_s is None else wait_s
    started = time.monotonic()
    pause, noticed, waited_once = 0.02, False, False
    if wanted(state_dir):  # someone is queued: let them in first (writers reopen often)
        time.sleep(_COURTESY_S)
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            if waited_once:
                (state_dir / WANTED).unlink(missing_ok=True)
            return con
        except duckdb.ConnectionException as exc:
            # This process already has the file open with the other mode: share that instance.
            if read_only and "different configuration" in str(exc):
                return duckdb.connect(str(path))
            if "different configuration" not in str(exc):
                raise
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc):
                raise
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise StoreBusy(
                f"state store {path} stayed locked by another process for {wait_s:.0f} s; nothing was "
                "changed: try again when that run ends (`mvg-sync status` shows it)"
            ) from None
        if waited >= NOTICE_AFTER_S and not noticed:
            (notice or log.warning)(
                f"state store {path} is in use by another process (a sync run?); waiting up to {wait_s:.0f} s"
            )
            noticed = True
        _want(state_dir)
        waited_once = True
        time.sleep(min(pause, max(wait_s - waited, 0.0)))
        pause = min(pause * 1.5, 0.1)


def _settings(con: duckdb.DuckDBPyConnection, state_dir: Path, memory_limit: str, *, writing: bool) -> None:
    con.execute("SET TimeZone = 'UTC'")
    if writing:
        tmp = private_dir(state_dir / "tmp")
        # DuckDB's limit covers only its buffer manager (STACK-NOTES): cap it and let it spill
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET temp_directory = '" + str(tmp).replace("'", "''") + "'")
        con.execute("SET preserve_insertion_order = true")  # source_row relies on file order


_CONFIGURED_URL: str | None = None
_UPGRADE_LOCK = threading.Lock()


def use_url(url: str | None) -> None:
    """The process's store URL, password included, as `Settings.state_dsn()` assembles it.

    `load_settings` calls this, so a deployment whose password lives in its Secret block
    (`mvg-state-password[-<region>]`) reaches the store without the password ever entering
    the environment, a run parameter or a log; callers keep calling `connect(state_dir)`.
    """
    global _CONFIGURED_URL
    _CONFIGURED_URL = url


def state_url(url: str | None = None) -> str | None:
    """The PostgreSQL URL of the store (`url`, else the one settings configured, else MVG_STATE_URL;
    issue 15), or None for the file store."""
    if url is None:
        url = _CONFIGURED_URL if _CONFIGURED_URL is not None else os.environ.get("MVG_STATE_URL", "")
    url = url.strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ValueError("MVG_STATE_URL must be a postgresql:// URL; leave it unset to keep the state in MVG_STATE_DIR")
    return url


def exists(state_dir: Path, *, url: str | None = None) -> bool:
    """Whether there is a store yet: state.duckdb in the folder, or the region's schema on PostgreSQL."""
    pg = state_url(url)
    if pg:
        from mvg_sync.store import postgres

        return postgres.exists(pg)
    return (state_dir / STATE_FILE).exists()


def connect(
    state_dir: Path,
    *,
    read_only: bool = False,
    wait_s: float | None = None,
    memory_limit: str = "2GB",
    notice: Callable[[str], None] | None = None,
    url: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """The state store, upgraded to the current schema; use it with `with` (it closes on exit).

    Read-only: `NoStore` when there is no store yet (nothing is created). Writing: the folder
    and store are created when missing. Waits up to `wait_s` for another process (see the
    module docstring); `StoreTooNew` when a newer release wrote the store. With a
    postgresql:// `url` or MVG_STATE_URL the store is that server's (store/postgres.py);
    snapshots stay in `state_dir` either way.
    """
    pg = state_url(url)
    if pg:
        from mvg_sync.store import postgres

        return postgres.connect(pg, read_only=read_only, wait_s=wait_s, notice=notice)  # type: ignore[return-value]
    if read_only and not (state_dir / STATE_FILE).exists():
        raise NoStore(f"no state yet at {state_dir}")
    if not read_only:
        private_dir(state_dir)
    con = _open(state_dir, read_only=read_only, wait_s=wait_s, notice=notice)
    if not read_only:
        # Issue 14: the store holds personnummer; DuckDB creates its files 0666 & ~umask.
        for path in (state_dir / STATE_FILE, state_dir / f"{STATE_FILE}.wal"):
            private_file(path)
    try:
        found = version(con)
        check_not_newer(found, str(state_dir / STATE_FILE))
        if found < CURRENT and read_only:
            con.close()
            with connect(state_dir, wait_s=wait_s, notice=notice):
                pass  # upgraded by the writing open
            con = _open(state_dir, read_only=True, wait_s=wait_s, notice=notice)
        writing = not _is_read_only(con)
        _settings(con, state_dir, memory_limit, writing=writing)
        if found < CURRENT and writing:
            # Threads of one process share the file's DuckDB instance, so its lock does not keep
            # them apart: two tasks opening a new store at once both migrated it (issue 12's
            # concurrent tasks). Other processes wait for the file lock instead.
            with _UPGRADE_LOCK:
                upgrade(con, str(state_dir / STATE_FILE))
        return con
    except BaseException:
        con.close()
        raise


def _is_read_only(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return bool(row and row[0])


@contextmanager
def transaction(target: Path | Connection, **open_args) -> Iterator[Connection]:
    """`with transaction(state_dir) as con:` (opens the store) or `with transaction(con):` —
    COMMIT when the block ends, ROLLBACK (and re-raise) when it raises. Inside another
    transaction it joins that one (the outer block commits or rolls back)."""
    if not isinstance(target, str | Path):  # a connection (or a test's wrapper of one)
        if id(target) in _IN_TRANSACTION:  # a failed BEGIN would abort the outer one: don't try
            yield target
            return
        target.execute("BEGIN TRANSACTION")
        _IN_TRANSACTION.add(id(target))
        try:
            yield target
            target.execute("COMMIT")
        except BaseException:
            try:
                target.execute("ROLLBACK")
            except Exception:  # a failed COMMIT has ended the transaction already (any backend's error)
                pass
            raise
        finally:
            _IN_TRANSACTION.discard(id(target))
        return
    with connect(Path(target), **open_args) as con, transaction(con):
        yield con


class Lease:
    """One writer's connection kept across many short steps (the push's batches).

    `with lease.connection() as con:` opens the store when needed; at the end of the block
    the connection is closed if another process is waiting for the store, so a `status`
    during a long push answers within a batch instead of after the push.
    """

    def __init__(self, state_dir: Path, **open_args) -> None:
        self.state_dir = state_dir
        self._open_args = open_args
        self._con: duckdb.DuckDBPyConnection | None = None
        self.released = 0

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is None:
            # connect() stands back while the waiter is still queued, then waits its turn
            self._con = connect(self.state_dir, **self._open_args)
        try:
            yield self._con
        finally:
            if wanted(self.state_dir):
                self.close()
                self.released += 1

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lease(state_dir: Path, **open_args) -> Lease:
    return Lease(state_dir, **open_args)


@contextmanager
def work_connection(state_dir: Path, *, memory_limit: str = "2GB") -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB for long compute (reading a drop): holds no lock on the store."""
    con = duckdb.connect()
    try:
        private_dir(state_dir)
        _settings(con, state_dir, memory_limit, writing=True)
        yield con
    finally:
        con.close()


def resolve_path(state_dir: Path, stored: str) -> Path:
    """A path as the store keeps it (relative to the state folder since version 2), made usable."""
    path = Path(stored)
    return path if path.is_absolute() else state_dir / path


def state_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the store a connection is open on (None for an in-memory one)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).parent if row and row[0] else None

