"""Machine errors during ingest (issue 14): the drop stays pending, the run fails naming the cause."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mvg_sync.ingest import ingest_drop, ingest_pending, pipeline
from mvg_sync.ingest.faults import IngestInterrupted, is_machine_error
from mvg_sync.store import drops as state_store
from mvg_sync.store.drops import load_snapshot
from tests import cosmic_drops as t

AS_OF = datetime(2026, 11, 26, 7, 10, tzinfo=UTC)
DROP = "20261126T080200-000002"


def _enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _polars_enospc(*_: object, **__: object) -> None:
    # what Polars raised for a full tmpfs in the state folder (measured on this machine)
    raise pl.exceptions.ComputeError(
        "parquet: File out of specification: underlying IO error: No space left on device (os error 28)"
    )


def _store_enospc(*_: object, **__: object) -> None:
    raise duckdb.IOException('IO Error: Could not write file "state.duckdb.wal": No space left on device')


def _memory(*_: object, **__: object) -> None:
    raise MemoryError()


def _permission(*_: object, **__: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", "bokningar.csv")


def _interrupted_io(*_: object, **__: object) -> None:
    raise InterruptedError(errno.EINTR, "Interrupted system call")


# (where, what to patch, the fault, what the one-line message must name, the next step it gives)
FAULTS = [
    ("snapshot write", (pl.LazyFrame, "sink_parquet"), _polars_enospc,
     "ComputeError: parquet: File out of specification: underlying IO error: No space left on device (os error 28)",
     "free disk space under MVG_STATE_DIR"),
    ("file scan", (pipeline, "scan_file"), _enospc, "OSError: [Errno 28] No space left on device",
     "free disk space under MVG_STATE_DIR"),
    ("store write", (state_store, "record_drop"), _store_enospc,
     'IOException: IO Error: Could not write file "state.duckdb.wal": No space left on device',
     "free disk space under MVG_STATE_DIR"),
    ("normalising", (pipeline, "normalise_rows"), _memory, "MemoryError: (no message)", "free memory"),
    ("reading a file", (pipeline, "check_bytes"), _permission,
     "PermissionError: [Errno 13] Permission denied: 'bokningar.csv'", "read/write access"),
    ("interrupted IO", (pipeline, "scan_file"), _interrupted_io,
     "InterruptedError: [Errno 4] Interrupted system call", "check the disk"),
]


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, Path]:
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1)
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF).drops] == ["accepted"]
    # bookings changed: parsed again (an unchanged file would reuse drop 1's snapshot, issue 12)
    files = t.default_files()
    files["bokningar.csv"][0]["Bokningsinformation"] = "Bokning via webbtidbok"
    t.write_drop(landing, 2, files)
    return landing, state


def drop_log(state: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        return con.execute("SELECT extract_id, outcome FROM drops ORDER BY extract_id").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(("where", "target", "fault", "cause", "next_step"), FAULTS, ids=[f[0] for f in FAULTS])
def test_machine_error_leaves_the_drop_pending_and_names_the_cause(base, monkeypatch, where, target, fault, cause,
                                                                   next_step):
    landing, state = base
    with monkeypatch.context() as patch:
        patch.setattr(*target, fault)
        with pytest.raises(IngestInterrupted) as raised:
            ingest_pending(landing, state, as_of=AS_OF)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"drop {DROP} left pending: the machine failed while ingesting ({cause});")
    assert next_step in message
    assert "rejected" not in message and "cannot rollback" not in message
    # not a verdict: nothing recorded, nothing staged, nothing pointed to
    assert drop_log(state) == [("20261126T080100-000001", "accepted")]
    assert not (state / "snapshots" / DROP).exists()
    assert not (state / "tmp" / DROP).exists()
    assert load_snapshot(state, "bookings")["booking_id"].to_list() == ["B1", "B2", "B3"]

    # the machine is fixed: the next run takes the drop
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [(d.extract_id, d.outcome) for d in report.drops] == [(DROP, "accepted")]


class _DiskFullAtCommit:
    """A real connection whose COMMIT fails as on a full disk: DuckDB has already ended the
    transaction, so the ROLLBACK after it fails with `no transaction is active`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, *args: object):
        if sql == "COMMIT":
            self._con.execute("ROLLBACK")
            raise duckdb.IOException('IO Error: Could not write file "state.duckdb.wal": No space left on device')
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def __enter__(self) -> _DiskFullAtCommit:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()


def test_full_disk_at_commit_names_the_full_disk_not_the_failed_rollback(base, monkeypatch):
    landing, state = base
    real_connect = state_store.connect
    with monkeypatch.context() as patch:
        patch.setattr(state_store, "connect", lambda *a, **k: _DiskFullAtCommit(real_connect(*a, **k)))
        with pytest.raises(IngestInterrupted) as raised:
            ingest_drop(landing / DROP, state, as_of=AS_OF)
    assert "No space left on device" in str(raised.value)
    assert "cannot rollback" not in str(raised.value)
    assert isinstance(raised.value.__cause__, duckdb.IOException)
    assert drop_log(state) == [("20261126T080100-000001", "accepted")]
    assert ingest_drop(landing / DROP, state, as_of=AS_OF).outcome == "accepted"


def test_a_drop_before_the_fault_stays_recorded_and_the_faulty_one_pending(tmp_path, monkeypatch):
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1)
    t.write_drop(landing, 2)
    real = pipeline.scan_file
    calls = {"n": 0}

    def full_after_first_drop(*args: object, **kwargs: object):
        calls["n"] += 1
        if calls["n"] > len(t.default_files()):  # every file of the first drop scanned
            _enospc()
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "scan_file", full_after_first_drop)
        with pytest.raises(IngestInterrupted, match=f"drop {DROP} left pending"):
            ingest_pending(landing, state, as_of=AS_OF)
    assert drop_log(state) == [("20261126T080100-000001", "accepted")]
    assert [d.extract_id for d in ingest_pending(landing, state, as_of=AS_OF).drops] == [DROP]


def test_a_bug_is_still_a_rejection_not_a_machine_error():
    assert not is_machine_error(RuntimeError("bug"))
    assert not is_machine_error(pl.exceptions.ComputeError("cannot compare string with numeric type"))
    assert not is_machine_error(duckdb.InvalidInputException("CSV Error on Line: 3"))
    masked = duckdb.TransactionException("cannot rollback - no transaction is active")
    masked.__context__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_machine_error(masked)
    # DuckDB's parse error past the first batch, as Arrow hands it over: the data's fault
    assert not is_machine_error(OSError("Invalid Input Error: CSV Error on Line: 4001\nExpected Number of Columns"))
    assert is_machine_error(OSError('IO Error: Could not write file "tmp/x": No space left on device'))
