"""What drafting and committing a plan read from the store: the snapshot drop, accepted payloads, open ticket changes.

Plain SQL that runs unchanged on DuckDB and PostgreSQL 15 (issue 13 item 3, issue 15): `?`
placeholders, key lists passed as a registered frame (never an array parameter), windows in a
subquery (no QUALIFY), statuses and types bound as `mvg_sync.store.types` members.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from mvg_sync.store import transaction
from mvg_sync.store.drops import connect
from mvg_sync.store.types import OutboxStatus, ResourceType

ACCEPTED = "accepted"  # outbox.last_outcome of an answer Clinic24 accepted
# Ids per `IN (?, …)` list: well under any backend's parameter limit (PostgreSQL: 65,535).
_IDS_PER_QUERY = 1000


def open_state(state_dir: Path) -> duckdb.DuckDBPyConnection:
    """The state store, current schema; `with open_state(d) as con:` — held only for a step's SQL."""
    return connect(state_dir)


@dataclass(frozen=True)
class SnapshotRef:
    """The accepted drop whose snapshot the plan is made from."""

    extract_id: str
    sequence: int
    extracted_at: datetime
    window_from: date
    window_to: date


class OpenChange(NamedTuple):
    """A ticket change still open in the outbox (pending or dead), as first planned (R16)."""

    change_kind: str
    content_hash: str
    payload: dict


def current_snapshot(con: duckdb.DuckDBPyConnection) -> SnapshotRef | None:
    """The drop behind the latest accepted bookings snapshot, or None before the first."""
    row = con.execute(
        "SELECT d.extract_id, d.sequence, d.extracted_at, d.window_from, d.window_to "
        "FROM snapshot_pointer p JOIN drops d ON d.extract_id = p.extract_id WHERE p.dataset = ?",
        ["bookings"],
    ).fetchall()  # fetchall: a half-read result would block the connection's next statement
    if not row:
        return None
    extract_id, sequence, extracted_at, window_from, window_to = row[0]
    return SnapshotRef(extract_id, int(sequence), extracted_at, window_from, window_to)


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, column: str, values: Sequence[str]) -> Iterator[None]:
    """`values` as a one-column table `name` for the statements inside the block."""
    con.register(name, pl.DataFrame({column: list(values)}, schema={column: pl.String}))
    try:
        yield
    finally:
        con.unregister(name)


def last_accepted_payloads(
    con: duckdb.DuckDBPyConnection, resource_type: ResourceType, keys: Sequence[str]
) -> dict[str, dict]:
    """The payload Clinic24 last accepted per key: the newest accepted outbox entry or read-back.

    Filtering the outbox by key still reads the payload of nearly every stored vector; the
    newest entry per key is found first and only its payload read, in one transaction (one
    snapshot of the store).
    """
    if not keys:
        return {}
    with transaction(con), _registered(con, "_wanted_keys", "key", keys):
        newest = con.execute(
            "SELECT key, change_id FROM ("
            "  SELECT key, change_id, row_number() OVER (PARTITION BY key ORDER BY seen_at DESC) AS newest FROM ("
            "    SELECT key, change_id, settled_at AS seen_at FROM outbox "
            "    WHERE resource_type = ? AND status = ? AND last_outcome = ? "
            "    AND key IN (SELECT key FROM _wanted_keys)"
            "    UNION ALL SELECT key, CAST(NULL AS VARCHAR), observed_at FROM clinic24_observed "
            "    WHERE resource_type = ? AND key IN (SELECT key FROM _wanted_keys)) AS seen"
            ") AS ranked WHERE newest = 1",
            [resource_type, OutboxStatus.DONE, ACCEPTED, resource_type],
        ).fetchall()
        change_ids = [change_id for _, change_id in newest if change_id is not None]
        observed = [key for key, change_id in newest if change_id is None]
        rows = _outbox_payloads(con, change_ids)
        if observed:
            with _registered(con, "_observed_keys", "key", observed):
                rows += con.execute(
                    "SELECT key, payload FROM clinic24_observed "
                    "WHERE resource_type = ? AND key IN (SELECT key FROM _observed_keys)",
                    [resource_type],
                ).fetchall()
    return {key: json.loads(payload) for key, payload in rows}


def _outbox_payloads(con: duckdb.DuckDBPyConnection, change_ids: list[str]) -> list[tuple[str, str]]:
    """(key, payload) of outbox entries by primary key: a literal `IN` list is a point lookup
    on both backends, where a join with a registered frame would scan every payload."""
    rows: list[tuple[str, str]] = []
    for start in range(0, len(change_ids), _IDS_PER_QUERY):
        chunk = change_ids[start:start + _IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows += con.execute(f"SELECT key, payload FROM outbox WHERE change_id IN ({marks})", chunk).fetchall()  # noqa: S608 - placeholders only
    return rows


def accepted_appointments(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> dict[str, dict]:
    """The Appointments Clinic24 last accepted for `keys` (R07, R08: the rows to compare with)."""
    return last_accepted_payloads(con, ResourceType.APPOINTMENT, keys)


def open_ticket_changes(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> dict[str, OpenChange]:
    """Ticket changes still open in the outbox (pending or dead), by basis id (R16)."""
    if not keys:
        return {}
    with _registered(con, "_ticket_keys", "key", keys):
        rows = con.execute(
            "SELECT key, change_kind, content_hash, payload FROM outbox WHERE resource_type = ? "
            "AND status IN (?, ?) AND key IN (SELECT key FROM _ticket_keys)",
            [ResourceType.SERVICE_REQUEST, OutboxStatus.PENDING, OutboxStatus.DEAD],
        ).fetchall()
    return {key: OpenChange(kind, content_hash, json.loads(payload)) for key, kind, content_hash, payload in rows}
