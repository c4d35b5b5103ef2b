"""Retention's deletes on the state store (MVG_RETENTION_DAYS): quarantine rows and settled outbox entries."""

from __future__ import annotations

from datetime import datetime

from mvg_sync.store import transaction
from mvg_sync.store.types import Connection, OutboxStatus

# Settled outbox entries older than the cut-off, except the newest accepted entry per
# resource: the sync builds a cancel/revoke payload from what Clinic24 last accepted, so that
# entry lives as long as the resource does.
_PURGE_OUTBOX = """
DELETE FROM outbox WHERE status IN ($done, $superseded) AND coalesce(settled_at, created_at) < $cutoff
AND change_id NOT IN (
    SELECT change_id FROM (
        SELECT change_id, row_number() OVER (
            PARTITION BY resource_type, key ORDER BY settled_at DESC, change_id DESC) AS newest
        FROM outbox WHERE status = $done AND last_outcome = 'accepted'
    ) accepted WHERE newest = 1
)
"""


def purge_before(con: Connection, cutoff: datetime) -> tuple[int, int]:
    """Delete, in one transaction, quarantine rows and done/superseded outbox entries from before
    `cutoff`; returns (quarantine rows, outbox entries) deleted.

    Quarantine rows of a drop that `snapshot_pointer` still names stay whatever their age:
    planning reads the current snapshot's quarantine to tell a quarantined booking from a
    vanished one (R08).
    """
    with transaction(con):
        quarantine = con.execute(
            "DELETE FROM quarantine WHERE quarantined_at < ? "
            "AND extract_id NOT IN (SELECT extract_id FROM snapshot_pointer)",
            [cutoff],
        ).fetchone()[0]
        outbox = con.execute(
            _PURGE_OUTBOX, {"cutoff": cutoff, "done": OutboxStatus.DONE, "superseded": OutboxStatus.SUPERSEDED}
        ).fetchone()[0]
    return int(quarantine), int(outbox)


def reclaim_space(con: Connection) -> None:
    """Write deleted rows out of the file: DuckDB keeps them in its blocks until a checkpoint.

    The one statement here that is not plain SQL: a PostgreSQL adapter maps it to nothing
    (autovacuum reclaims the space; CHECKPOINT there needs the pg_checkpoint role).
    """
    con.execute("CHECKPOINT")
