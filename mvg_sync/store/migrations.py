"""Versioned migrations of the state store: the schema version is recorded, and a store upgrades itself on open.

A migration, once released, never changes: a store written by any earlier release replays
the same steps. Version 1 is the schema of release d2a810e (both `state.py`'s and
`sync/store.py`'s tables, created with IF NOT EXISTS, so a store of that release — which has
no `schema_version` table — is version 0 here and passes through step 1 unchanged, while a
store that only ever ingested gains the sync's tables). Version 2 makes the paths kept in
the store relative to the state folder (a state folder restored elsewhere works). Version 3
records R12 in `outbox.rule` of the entries held on the push (their reason said it already).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import duckdb

SNAPSHOTS = "snapshots"

_V1 = (
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
        path VARCHAR NOT NULL,         -- relative to the state folder from version 2 on
        accepted_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS outbox (
        change_id       VARCHAR PRIMARY KEY,   -- <plan_id>/<resource_type>/<key>
        plan_id         VARCHAR NOT NULL,      -- extract id (or run id) the plan came from
        resource_type   VARCHAR NOT NULL,      -- Appointment | ServiceRequest
        key             VARCHAR NOT NULL,      -- booking id or basis id
        change_kind     VARCHAR NOT NULL,      -- create rebook update cancel issue revoke complete
        rule            VARCHAR,               -- rule id that caused it (R06 …)
        content_hash    VARCHAR NOT NULL,
        source_sequence BIGINT NOT NULL,
        payload         VARCHAR NOT NULL,      -- the FHIR resource, JSON, sent as is
        target_status   VARCHAR NOT NULL,      -- booked/cancelled/active/revoked/completed
        target_start_at TIMESTAMPTZ,
        target_unit     VARCHAR,
        status          VARCHAR NOT NULL,      -- pending done held dead superseded
        reason          VARCHAR,               -- why held/dead/superseded/stale (no patient data)
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_outcome    VARCHAR,
        version         VARCHAR,
        extracted_at    TIMESTAMPTZ,           -- when Cosmic extracted the drop (R11 latency)
        created_at      TIMESTAMPTZ NOT NULL,
        settled_at      TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS clinic24_record (
        resource_type   VARCHAR NOT NULL,
        key             VARCHAR NOT NULL,
        status          VARCHAR NOT NULL,
        start_at        TIMESTAMPTZ,
        unit_hsa_id     VARCHAR,
        content_hash    VARCHAR,
        source_sequence BIGINT,
        version         VARCHAR,
        accepted_at     TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (resource_type, key)
    )""",
    """CREATE TABLE IF NOT EXISTS clinic24_observed (
        resource_type VARCHAR NOT NULL,            -- what Clinic24 was seen to hold when read back
        key           VARCHAR NOT NULL,            -- (in-doubt writes, reconciliation): the payload an
        payload       VARCHAR NOT NULL,            -- ending change starts from when no accepted
        observed_at   TIMESTAMPTZ NOT NULL,        -- outbox entry has it
        PRIMARY KEY (resource_type, key)
    )""",
    """CREATE TABLE IF NOT EXISTS holds (
        resource_type VARCHAR NOT NULL,
        key           VARCHAR NOT NULL,
        unit_hsa_id   VARCHAR,
        rule          VARCHAR NOT NULL,
        reason        VARCHAR NOT NULL,
        since         TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (resource_type, key)
    )""",
    """CREATE TABLE IF NOT EXISTS approvals (
        extract_id  VARCHAR PRIMARY KEY,
        status      VARCHAR NOT NULL,          -- held | approved | superseded
        cancels     BIGINT NOT NULL,
        live        BIGINT NOT NULL,
        reason      VARCHAR NOT NULL,
        held_at     TIMESTAMPTZ NOT NULL,
        approved_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS locations (
        unit_hsa_id VARCHAR PRIMARY KEY,
        fetched_at  TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS unit_departures (
        key         VARCHAR PRIMARY KEY,       -- booking id whose unit left Clinic24 (R09)
        unit_hsa_id VARCHAR NOT NULL,
        noted_at    TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sync_runs (
        run_id      VARCHAR PRIMARY KEY,
        plan_id     VARCHAR,
        as_of       TIMESTAMPTZ NOT NULL,
        outcome     VARCHAR NOT NULL,
        counts      VARCHAR NOT NULL,          -- JSON, counts only
        finished_at TIMESTAMPTZ NOT NULL
    )""",
)


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _V1:
        con.execute(statement)


def stored_path(path: str) -> str:
    """A snapshot path as the store keeps it: `snapshots/<extract_id>/<file>`, relative to the state folder.

    Taken from the last `snapshots` folder in the path, so an absolute path written by an
    earlier release in another place (a restored backup, a moved folder) rebases too. A path
    with no such folder is kept as it is (resolved against the state folder when relative).
    """
    parts = PurePosixPath(path.replace("\\", "/")).parts
    for n in range(len(parts) - 1, -1, -1):
        if parts[n] == SNAPSHOTS:
            return str(PurePosixPath(*parts[n:]))
    return path


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("SELECT dataset, path FROM snapshot_pointer").fetchall()
    for dataset, path in rows:
        relative = stored_path(str(path))
        if relative != path:
            con.execute("UPDATE snapshot_pointer SET path = ? WHERE dataset = ?", [relative, dataset])


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    # An entry Clinic24 refused for a missing primary guardian was settled `held` with the
    # planning rule (R06 …) left in `rule` and R12 only in its reason text; from version 3 the
    # rule column says R12 (store.outbox.settle), so readers match the rule, not the text.
    con.execute("UPDATE outbox SET rule = 'R12' WHERE status = 'held' AND reason LIKE 'R12%'")


# version -> step; each runs in the transaction that records its version
MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {1: _v1, 2: _v2, 3: _v3}
CURRENT = max(MIGRATIONS)


class StoreTooNew(RuntimeError):
    """The store was written by a newer release than this code."""


def version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version a store records; 0 for one that predates versioning (or is empty)."""
    try:
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def check_not_newer(found: int, where: str) -> None:
    if found > CURRENT:
        raise StoreTooNew(
            f"state store {where} has schema version {found}, newer than this mvg-sync understands "
            f"({CURRENT}): run the release that wrote it, or restore a backup taken before the upgrade"
        )


def dialect(con: duckdb.DuckDBPyConnection) -> str:
    """`duckdb` or `postgresql` (store/postgres.py's connection): a step whose SQL only one of
    them runs branches on this, leaving the released DuckDB statements as they are."""
    return getattr(con, "dialect", "duckdb")


def upgrade(con: duckdb.DuckDBPyConnection, where: str = "") -> int:
    """Bring the store to CURRENT, one version per transaction; returns the version found."""
    found = version(con)
    check_not_newer(found, where)
    for step in range(found + 1, CURRENT + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            # On PostgreSQL several processes may open an old store at once: BEGIN serialises
            # them (store/postgres.py), and the later ones find the step done.
            if version(con) >= step:
                con.execute("COMMIT")
                continue
            MIGRATIONS[step](con)
            con.execute("INSERT INTO schema_version VALUES (?, now())", [step])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return found
