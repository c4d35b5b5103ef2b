"""The store's vocabulary: the values its status, kind and type columns may hold.

They are `StrEnum`s, so a member is equal to (and serialises as) the string the store keeps:
`OutboxStatus.PENDING == "pending"`. Code names the member; SQL binds it as a parameter, so a
misspelt status is an AttributeError at import, not a query that silently matches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, Self


class OutboxStatus(StrEnum):
    """Where one planned change stands (`outbox.status`)."""

    PENDING = "pending"  # to push (or in flight: a crash leaves it pending, re-sent identically)
    HELD = "held"  # not pushed, with a rule and reason (R05, R12, R17, a guard hold…)
    DEAD = "dead"  # Clinic24 refused it for good; `redrive` re-queues it
    DONE = "done"  # settled by an answer (accepted or stale)
    SUPERSEDED = "superseded"  # a later plan replaced it before it was settled


OPEN_STATUSES: tuple[OutboxStatus, ...] = (OutboxStatus.PENDING, OutboxStatus.HELD, OutboxStatus.DEAD)


class ChangeKind(StrEnum):
    """What a change does to Clinic24 (`outbox.change_kind`)."""

    CREATE = "create"  # R06
    REBOOK = "rebook"  # R07/R08
    UPDATE = "update"
    CANCEL = "cancel"  # R06/R10
    ISSUE = "issue"  # a booking ticket fell due (tickets rules)
    REVOKE = "revoke"
    COMPLETE = "complete"


class ResourceType(StrEnum):
    """The FHIR resource a change is sent as (`outbox.resource_type`, `clinic24_record.resource_type`)."""

    APPOINTMENT = "Appointment"  # a booking
    SERVICE_REQUEST = "ServiceRequest"  # a booking ticket


class DropOutcome(StrEnum):
    """What became of one Cosmic drop (`drops.outcome`)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    STALE = "stale"


class ApprovalStatus(StrEnum):
    """A drop held by the mass-cancellation guard (`approvals.status`)."""

    HELD = "held"
    APPROVED = "approved"
    SUPERSEDED = "superseded"


class Result(Protocol):
    """What `Connection.execute` returns: rows to fetch (DuckDB's connection is its own cursor)."""

    def fetchone(self) -> tuple | None: ...
    def fetchall(self) -> list[tuple]: ...


class Relation(Protocol):
    """What `Connection.sql` returns: a result read as a Polars frame."""

    def pl(self) -> Any: ...
    def fetchall(self) -> list[tuple]: ...


class Connection(Protocol):
    """The methods the store uses on a connection: DuckDB's, or a PostgreSQL adapter's.

    `execute` takes `?` placeholders with a list, or `$name` ones with a dict; an UPDATE or
    DELETE answers one row holding the count of rows it changed (DuckDB does; an adapter
    must). `register(name, frame)` makes a Polars/Arrow frame readable as a table by that
    name until `unregister(name)`.
    """

    def execute(self, query: str, parameters: Sequence[object] | dict[str, object] | None = ...) -> Result: ...
    def executemany(self, query: str, parameters: Sequence[Sequence[object]]) -> Any: ...
    def sql(self, query: str, *, params: Sequence[object] | dict[str, object] | None = ...) -> Relation: ...
    def register(self, view_name: str, python_object: object) -> Any: ...
    def unregister(self, view_name: str) -> Any: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> Any: ...


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An outbox entry to push; `resource` is the stored payload, JSON text sent as it is."""

    change_id: str
    resource_type: ResourceType
    key: str
    resource: str
    target_status: str
    target_start_at: datetime | None
    target_unit: str | None
    content_hash: str
    source_sequence: int


@dataclass(frozen=True, slots=True)
class InDoubtEntry:
    """A pending entry the new plan would drop although Clinic24 may hold it (read back first)."""

    change_id: str
    key: str
    content_hash: str
    payload: dict


@dataclass(frozen=True, slots=True)
class DropRow:
    """One processed drop as `status` lists it; `counts` is the parsed JSON (counts only)."""

    extract_id: str
    sequence: int | None
    outcome: DropOutcome
    reason: str | None
    counts: dict

    @classmethod
    def of(cls, extract_id: str, sequence: int | None, outcome: str, reason: str | None, counts: str | None) -> Self:
        return cls(str(extract_id), sequence, DropOutcome(outcome), reason, json.loads(counts or "{}"))


@dataclass(frozen=True, slots=True)
class QuarantineCount:
    file: str | None
    rule: str
    reason: str
    rows: int


@dataclass(frozen=True, slots=True)
class Gap:
    after_sequence: int
    before_sequence: int
    missing: int
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class Pointer:
    """The current snapshot of one dataset (`path` relative to the state folder)."""

    dataset: str
    extract_id: str
    path: str
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    """A drop held by the mass-cancellation guard, waiting for `approve`."""

    extract_id: str
    cancels: int
    live: int
    reason: str


@dataclass(frozen=True, slots=True)
class HeldKey:
    """One held booking or ticket: from `holds`, or an outbox entry Clinic24 refused (R12)."""

    resource_type: ResourceType
    rule: str
    unit_hsa_id: str | None
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class OutboxCount:
    status: OutboxStatus
    resource_type: ResourceType
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class HoldCount:
    resource_type: ResourceType
    rule: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded sync run; `counts` is the parsed JSON (counts and a one-line cause)."""

    finished_at: datetime
    outcome: str
    counts: dict

    @property
    def cause(self) -> str | None:
        return self.counts.get("cause")


def rows_of(cls: type, rows: list[tuple]) -> Iterator:
    return (cls(*row) for row in rows)


def first_row(result: Result) -> tuple | None:
    """A SELECT's first row, its result read to the end: DuckDB refuses `register` on a
    connection while a result is left unread, and a PostgreSQL cursor is freed the same way."""
    rows = result.fetchall()
    return rows[0] if rows else None
