"""Errors of the machine during ingest (disk full, memory, permissions, IO): never a verdict on a drop."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import polars as pl

from mvg_sync.rules.patient_id import mask_patient_ids

# Polars reports an OS failure inside its own error type, e.g. a full disk while writing
# Parquet: `ComputeError: parquet: … underlying IO error: No space left on device (os error 28)`.
_POLARS_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_DUCKDB_MACHINE = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.FatalException)
# DuckDB's error met while streaming through Arrow arrives as a bare OSError (no errno) with
# DuckDB's text, e.g. `Invalid Input Error: CSV Error on Line: 4001 …` for a malformed row
# beyond the first batch: that one is the data's fault, not the machine's.
_DUCKDB_DATA_ERROR = re.compile(r"(Invalid Input|Conversion|Parser) Error: ")
_MAX_CAUSE_CHARS = 240


class IngestInterrupted(RuntimeError):
    """The machine failed while a drop was being ingested: nothing about the drop is recorded.

    The drop stays pending (no row in `drops`, its staged snapshots removed), so the next run
    reads it again; the run itself fails with this one-line message.
    """


def is_machine_error(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is the machine failing, not the data.

    Full disk, out of memory, permissions and interrupted or failed IO say nothing about the
    drop: rejecting it for them would lose a good drop for good (issue 14).
    """
    return machine_cause(exc) is not None


def machine_cause(exc: BaseException) -> BaseException | None:
    """The first machine error in `exc`'s chain (`__cause__`, else `__context__`), or None.

    The chain matters because a failed write can be masked by a second error while
    cleaning up (DuckDB's `cannot rollback - no transaction is active` after a full disk).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is None and _DUCKDB_DATA_ERROR.match(str(current)):
            return None
        if isinstance(current, (OSError, MemoryError, *_DUCKDB_MACHINE)):
            return current
        if isinstance(current, pl.exceptions.PolarsError) and _POLARS_OS_ERROR.search(str(current)):
            return current
        current = current.__cause__ or current.__context__
    return None


def _errno_of(cause: BaseException) -> int | None:
    if isinstance(cause, OSError) and cause.errno is not None:
        return cause.errno
    found = _POLARS_OS_ERROR.search(str(cause))
    if found:
        return int(found.group(1))
    text = str(cause).lower()
    if "no space left" in text:
        return errno.ENOSPC
    if "permission denied" in text:
        return errno.EACCES
    return None


def what_to_do(cause: BaseException) -> str:
    """The operator's next step for a machine error."""
    code = _errno_of(cause)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space under MVG_STATE_DIR, then run `mvg-sync sync` again"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "give the sync's user read/write access to MVG_STATE_DIR and read access to the drop, then run again"
    if isinstance(cause, (MemoryError, duckdb.OutOfMemoryException)) or code == errno.ENOMEM:
        return "free memory on this machine, then run `mvg-sync sync` again"
    return "check the disk and the machine, then run `mvg-sync sync` again"


def one_line(cause: BaseException) -> str:
    """`Type: message` on one line, masked and cut short (a message may quote a path or data)."""
    text = " ".join(str(cause).split()) or "(no message)"
    if len(text) > _MAX_CAUSE_CHARS:
        text = text[: _MAX_CAUSE_CHARS - 1] + "…"
    return f"{type(cause).__name__}: {mask_patient_ids(text)}"


def interrupted(extract_id: str | None, exc: BaseException) -> IngestInterrupted:
    """The one-line error a run fails with when the machine fails during ingest."""
    cause = machine_cause(exc) or exc
    what = f"drop {extract_id} left pending" if extract_id else "ingest stopped"
    return IngestInterrupted(
        f"{what}: the machine failed while ingesting ({one_line(cause)}); nothing was recorded "
        f"for the drop and the next run takes it — {what_to_do(cause)}"
    )


@contextmanager
def interrupt_on_machine_error(extract_id: str | None = None) -> Iterator[None]:
    """Turn a machine error raised inside into `IngestInterrupted`; anything else passes through."""
    try:
        yield
    except IngestInterrupted:
        raise
    except Exception as exc:
        if is_machine_error(exc):
            raise interrupted(extract_id, exc) from exc
        raise
