"""Plain-text summary of ingestion state for `mvg-sync status` (counts and reasons, no patient data)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mvg_sync import store
from mvg_sync.ingest.manifest import MANIFEST, manifest_being_written
from mvg_sync.store import drops as state
from mvg_sync.timeutil import utc_now


def describe_state(
    state_dir: Path, landing_dir: Path | None = None, *, last_drops: int = 20, now: datetime | None = None
) -> str:
    """Drops with outcome, quarantine counts by file/rule/reason, sequence gaps, snapshot pointers.

    With `landing_dir`, also the drops not processed yet: `pending` (manifest written, no row in
    `drops`) and `being written` (no manifest yet, or one that is not JSON yet and was written
    within MANIFEST_GRACE of `now`, the wall clock: default `timeutil.utc_now()`), oldest first,
    at most `last_drops` named.
    """
    now = utc_now() if now is None else now
    if not store.exists(state_dir):  # the file, or the schema on PostgreSQL (issue 15)
        landing = _describe_landing(landing_dir, set(), last_drops, now)
        return "\n".join(["ingestion: no drops processed yet", *landing])
    with store.connect(state_dir, read_only=True) as con:
        recent = state.recent_drops(con, last_drops)
        totals = state.drop_totals(con)
        quarantine = state.quarantine_counts(con, 50)
        gaps = state.sequence_gaps(con)
        pointers = state.pointers(con)
        known = state.processed_drop_ids(con) if landing_dir is not None else set()
    lines = _describe_landing(landing_dir, known, last_drops, now)
    lines.append("Drops: " + (", ".join(f"{o} {n}" for o, n in totals.items()) or "none"))
    for drop in recent:
        files = drop.counts.get("files", {})
        warnings = [*drop.counts.get("warnings", []), *(w for c in files.values() for w in c.get("warnings", []))]
        detail = ", ".join(
            f"{name} {c.get('accepted')}/{c.get('rows_in')} ok, {c.get('quarantined')} quarantined"
            for name, c in files.items()
            if c.get("rows_in") is not None and c.get("accepted") is not None
        )
        lines.append(f"  {drop.extract_id} seq {drop.sequence}: {drop.outcome}"
                     + (f" - {drop.reason}" if drop.reason else "") + (f" [{detail}]" if detail else ""))
        lines += [f"    warning: {w}" for w in warnings]
    lines.append("Quarantine (file / rule / reason: rows):" if quarantine else "Quarantine: empty")
    lines += [f"  {q.file or '-'} / {q.rule} / {q.reason}: {q.rows}" for q in quarantine]
    lines.append("Sequence gaps:" if gaps else "Sequence gaps: none")
    lines += [f"  {g.missing} missing between {g.after_sequence} and {g.before_sequence} "
              f"(seen {g.detected_at:%Y-%m-%d %H:%M})" for g in gaps]
    lines.append("Snapshots:" if pointers else "Snapshots: none accepted yet")
    lines += [f"  {p.dataset}: {p.extract_id}" for p in pointers]
    return "\n".join(lines)


def _describe_landing(landing_dir: Path | None, known: set[str], limit: int, now: datetime) -> list[str]:
    """Landing folders with no row in `drops`: complete ones wait for ingestion, others are
    still being written by Cosmic (the manifest comes last, and may itself be half-written)."""
    if landing_dir is None:
        return []
    if not landing_dir.is_dir():
        return [f"Landing: folder {landing_dir} missing"]
    waiting = sorted(
        (p.name, _landing_state(p, now)) for p in landing_dir.iterdir() if p.is_dir() and p.name not in known
    )
    pending = sum(1 for _, what in waiting if what == "pending")
    lines = [f"Landing: {pending} pending, {len(waiting) - pending} being written"]
    lines += [f"  {name}: {what}" for name, what in waiting[:limit]]
    if len(waiting) > limit:
        lines.append(f"  ... and {len(waiting) - limit} more")
    return lines


def _landing_state(folder: Path, now: datetime) -> str:
    if not (folder / MANIFEST).is_file():
        return "being written (no manifest yet)"
    if manifest_being_written(folder, now):
        return "being written (manifest not complete yet)"
    return "pending"
