"""Retention: purge patient data older than MVG_RETENTION_DAYS from the landing folder and the state store."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mvg_sync import store
from mvg_sync.store import drops, maintenance

log = logging.getLogger(__name__)

def purge(
    state_dir: Path, landing_dir: Path, *, older_than_days: int, now: datetime, as_of: datetime | None = None
) -> dict:
    """Delete what is older than `older_than_days` before `now`; returns counts (no patient data).

    `now` is the wall clock. A run's `as_of` stamps what it records (a drop's `processed_at`,
    its quarantine rows), so with `as_of` given the cut-off is measured from the earlier of the
    two: a back-dated run never purges the drops it has just processed (issue 14), and a run
    dated ahead never purges what a real day's data still needs. Either way the cut-off only
    moves earlier, so nothing is purged that the wall clock alone would keep.

    - drop folders in `landing_dir` that were processed (any outcome) before the cut-off;
    - quarantine rows quarantined before the cut-off;
    - done/superseded outbox entries settled before the cut-off, except the newest accepted
      entry per (resource_type, key);
    - snapshot folders of drops processed before the cut-off, except those `snapshot_pointer`
      points to (a folder with no drop row is aged by its modification time).

    Unprocessed drops, open outbox entries (pending, held, dead) and the `drops` log itself
    (extract ids, outcomes and counts only) are never touched. Neither is anything of a drop
    that `snapshot_pointer` still names, whatever its age (its drop folder, quarantine rows and
    snapshot folder): planning reads the current snapshot's quarantine to tell a quarantined
    booking from a vanished one (R08), and a drop stays current as long as no later drop
    replaces its dataset.
    """
    if now.tzinfo is None or (as_of is not None and as_of.tzinfo is None):
        raise ValueError("now and as_of must be timezone-aware")
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    cutoff = min(now, as_of or now) - timedelta(days=older_than_days)
    counts = {"cutoff": cutoff.isoformat(), "drop_folders": 0, "quarantine_rows": 0,
              "outbox_entries": 0, "snapshot_folders": 0}
    if not store.exists(state_dir):  # the file, or the schema on PostgreSQL (issue 15)
        return counts

    with store.connect(state_dir) as con:
        processed = drops.processed_at(con)
        current = {extract_id for extract_id, _ in drops.snapshot_pointers(con).values()}
        counts["quarantine_rows"], counts["outbox_entries"] = maintenance.purge_before(con, cutoff)
        maintenance.reclaim_space(con)

    old = {
        extract_id
        for extract_id, processed_at in processed.items()
        if processed_at < cutoff and extract_id not in current
    }
    if landing_dir.is_dir():
        for folder in sorted(landing_dir.iterdir()):
            if folder.name in old and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
                counts["drop_folders"] += 1
    snapshots = state_dir / drops.SNAPSHOTS
    if snapshots.is_dir():
        for folder in sorted(snapshots.iterdir()):
            if folder.name in current or not folder.is_dir() or folder.is_symlink():
                continue
            if folder.name in processed:
                expired = folder.name in old
            else:
                expired = datetime.fromtimestamp(folder.stat().st_mtime, tz=UTC) < cutoff
            if expired:
                shutil.rmtree(folder)
                counts["snapshot_folders"] += 1
    log.info(
        "retention (%d days): %d drop folders, %d quarantine rows, %d outbox entries, %d snapshot folders purged",
        older_than_days, counts["drop_folders"], counts["quarantine_rows"], counts["outbox_entries"],
        counts["snapshot_folders"],
    )
    return counts
