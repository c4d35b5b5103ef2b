"""Ingest every complete, unprocessed drop: manifest, decode, parse, normalise, validate, record."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from mvg_sync import state
from mvg_sync.ingest.columns import LAYOUT_BY_FILE, LAYOUTS, FileLayout
from mvg_sync.ingest.manifest import DropRejected, Manifest, list_complete_drops, read_manifest
from mvg_sync.ingest.normalise import Normalised, normalise
from mvg_sync.ingest.reader import FileScan, read_raw, scan_file
from mvg_sync.timeutil import STOCKHOLM

log = logging.getLogger(__name__)

# A file shrinking below this share of the previous accepted drop's rows is not trusted.
MIN_ROW_SHARE = 0.5
# Below this many previous rows the shrink check is noise (a handful of events may vanish).
SHRINK_CHECK_FLOOR = 20


@dataclass
class FileCounts:
    """Counts for one file of one drop; never any patient data."""

    file: str
    rows_in: int | None = None
    accepted: int | None = None
    quarantined: int | None = None
    rejected_reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class DropReport:
    """What happened to one drop."""

    extract_id: str
    outcome: str  # accepted | rejected | duplicate | stale
    reason: str | None = None
    sequence: int | None = None
    files: list[FileCounts] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class StagedDrop:
    """A drop that passed every check so far: snapshot files written, not yet pointed to."""

    paths: dict[str, Path] = field(default_factory=dict)
    quarantine: list[pl.DataFrame] = field(default_factory=list)
    profile: list[dict[str, object]] = field(default_factory=list)


@dataclass
class IngestReport:
    """Per-drop outcomes and per-file counts of one `ingest_pending` call."""

    drops: list[DropReport] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)

    @property
    def accepted(self) -> list[str]:
        return [d.extract_id for d in self.drops if d.outcome == "accepted"]

    def rows(self) -> list[dict[str, object]]:
        """One flat row per drop and file (for tables and artifacts)."""
        out: list[dict[str, object]] = []
        for drop in self.drops:
            base = {"extract_id": drop.extract_id, "outcome": drop.outcome, "drop_reason": drop.reason}
            if not drop.files:
                out.append({**base, "file": None, "rows_in": None, "accepted": None,
                            "quarantined": None, "file_reason": None})
            for f in drop.files:
                out.append({**base, "file": f.file, "rows_in": f.rows_in, "accepted": f.accepted,
                            "quarantined": f.quarantined, "file_reason": f.rejected_reason})
        return out


def ingest_pending(landing_dir: Path, state_dir: Path, *, as_of: datetime) -> IngestReport:
    """Process every complete, unprocessed drop under `landing_dir` in `extract_id` order."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    report = IngestReport()
    con = state.connect(state_dir)
    try:
        known = {row[0] for row in con.execute("SELECT extract_id FROM drops").fetchall()}
        pending = [folder for folder in list_complete_drops(landing_dir) if folder.name not in known]
        if pending:
            from mvg_sync.quality.checkpoint import warm_up

            warm_up(state_dir / "gx")
        for folder in pending:
            if folder.name in known:
                continue
            drop = _ingest_folder(con, folder, state_dir, as_of, report)
            known.add(drop.extract_id)
            report.drops.append(drop)
    finally:
        con.close()
    return report


def ingest_drop(folder: Path, state_dir: Path, *, as_of: datetime) -> DropReport:
    """Process one drop folder (processing it again yields `duplicate` and changes nothing)."""
    con = state.connect(state_dir)
    try:
        return _ingest_folder(con, folder, state_dir, as_of, IngestReport())
    finally:
        con.close()


def _ingest_folder(
    con: duckdb.DuckDBPyConnection, folder: Path, state_dir: Path, as_of: datetime, report: IngestReport
) -> DropReport:
    try:
        manifest = read_manifest(folder)
    except DropRejected as exc:
        return _reject(con, folder.name, None, exc, as_of, files=[])
    drop = DropReport(extract_id=manifest.extract_id, outcome="accepted", sequence=manifest.sequence)

    previous = state.drop_outcome(con, manifest.extract_id)
    if previous is not None:
        drop.outcome, drop.reason = "duplicate", f"drop already processed ({previous})"
        log.info("drop %s: duplicate, already %s", manifest.extract_id, previous)
        return drop
    newest = state.latest_accepted(con)
    same_sequence = con.execute(
        "SELECT extract_id FROM drops WHERE sequence = ? AND outcome IN ('accepted', 'rejected')",
        [manifest.sequence],
    ).fetchone()
    if same_sequence is not None:
        drop.outcome, drop.reason = "duplicate", f"sequence {manifest.sequence} already processed"
    elif newest is not None and (manifest.extract_id < newest[0] or manifest.sequence < newest[1]):
        drop.outcome = "stale"
        drop.reason = f"older than the newest accepted drop {newest[0]}"
    if drop.outcome != "accepted":
        log.warning("drop %s: %s (%s)", manifest.extract_id, drop.outcome, drop.reason)
        _record(con, manifest, drop, as_of)
        return drop

    gap = None
    last_sequence = state.latest_sequence(con)
    if last_sequence is not None and manifest.sequence > last_sequence + 1:
        gap = (last_sequence, manifest.sequence)
        report.gaps.append(gap)
        log.warning(
            "sequence gap: %d drop(s) missing between %d and %d",
            manifest.sequence - last_sequence - 1, last_sequence, manifest.sequence,
        )

    try:
        staged = _validate_drop(con, folder, manifest, drop, state_dir, as_of)
        quarantine = pl.concat(staged.quarantine) if staged.quarantine else None
        _record(con, manifest, drop, as_of, quarantine=quarantine, snapshots=staged.paths, gap=gap)
    except DropRejected as exc:
        state.discard_snapshot_folder(state_dir, manifest.extract_id)
        return _reject(con, manifest.extract_id, manifest, exc, as_of, files=drop.files, gap=gap,
                       warnings=drop.warnings)
    except BaseException:
        state.discard_snapshot_folder(state_dir, manifest.extract_id)
        raise
    log.info(
        "drop %s accepted: %s", manifest.extract_id,
        ", ".join(f"{f.file} {f.accepted}/{f.rows_in} ({f.quarantined} quarantined)" for f in drop.files),
    )
    return drop


def _validate_drop(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    manifest: Manifest,
    drop: DropReport,
    state_dir: Path,
    as_of: datetime,
) -> StagedDrop:
    """Every file-level check; writes the snapshots and returns them staged, or raises DropRejected."""
    for name in manifest.files:
        if name not in LAYOUT_BY_FILE:
            drop.warnings.append(f"{name}: not a Cosmic file this integration reads; ignored")
    for layout in LAYOUTS:
        if not layout.optional and layout.file not in manifest.files:
            raise DropRejected(f"manifest.json: lists no {layout.file}", file="manifest.json", rule="manifest")
    layouts = [layout for layout in LAYOUTS if layout.file in manifest.files]
    for layout in layouts:
        if not (folder / layout.file).is_file():
            raise DropRejected(f"{layout.file}: listed in the manifest but missing", file=layout.file,
                               rule="manifest")

    # Hash every file first (threads: hashlib releases the GIL): a corrupt drop costs no parsing.
    tmp = state_dir / "tmp" / manifest.extract_id
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            scans = dict(zip(
                [lay.file for lay in layouts],
                pool.map(lambda lay: scan_file(folder / lay.file, manifest.encoding, tmp / lay.file), layouts),
                strict=True,
            ))
        return _validate_scanned(con, folder, manifest, drop, state_dir, as_of, layouts, scans)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _validate_scanned(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    manifest: Manifest,
    drop: DropReport,
    state_dir: Path,
    as_of: datetime,
    layouts: list[FileLayout],
    scans: dict[str, FileScan],
) -> StagedDrop:
    for layout in layouts:
        scan, entry = scans[layout.file], manifest.files[layout.file]
        if scan.sha256 != entry.sha256:
            truncated = "" if scan.ends_with_newline or scan.size == 0 else " (truncated: last row has no line end)"
            raise DropRejected(f"{layout.file}: sha256 differs from the manifest{truncated}",
                               file=layout.file, rule="manifest")

    previous = state.previous_counts(con)
    reference_date = manifest.extracted_at.astimezone(STOCKHOLM).date()
    from contracts.snapshots import validate_snapshot
    from mvg_sync.quality.checkpoint import profile_row

    staged = StagedDrop()
    # One file at a time, its snapshot written and its frames released before the next:
    # peak memory is the largest file, not the drop (national drops are GBs).
    for layout in layouts:
        counts = FileCounts(file=layout.file)
        drop.files.append(counts)
        normalised = _validate_file(
            con, folder, manifest, layout, scans[layout.file], counts, previous, reference_date
        )
        validate_snapshot(layout.dataset, normalised.frame)
        path = state.snapshot_path(state_dir, manifest.extract_id, layout.dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        normalised.frame.write_parquet(path, compression="lz4", statistics=False)
        staged.paths[layout.dataset] = path
        staged.profile.append(profile_row(
            layout.dataset, normalised, extracted_at=manifest.extracted_at,
            previous_rows=previous.get(layout.file), as_of=as_of,
        ))
        if normalised.quarantine.height:
            staged.quarantine.append(normalised.quarantine.with_columns(pl.lit(layout.file).alias("file")))
        del normalised
    _check_quality(staged.profile, drop, state_dir)
    return staged


def _validate_file(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    manifest: Manifest,
    layout: FileLayout,
    scan: FileScan,
    counts: FileCounts,
    previous: dict[str, int],
    reference_date: object,
) -> Normalised:
    name = layout.file
    try:
        raw = read_raw(con, folder / name, manifest.encoding, scan)
        counts.rows_in = raw.height
        expected = manifest.files[name].rows
        if raw.height != expected:
            raise DropRejected(f"{name}: {raw.height} data rows but the manifest says {expected}",
                               file=name, rule="manifest")
        if layout.dataset == "bookings" and raw.height == 0:
            raise DropRejected(f"{name}: empty (0 data rows); it would cancel every booking", file=name)
        before = previous.get(name)
        if before is not None and before >= SHRINK_CHECK_FLOOR and raw.height < MIN_ROW_SHARE * before:
            raise DropRejected(
                f"{name}: {raw.height} data rows, under {MIN_ROW_SHARE:.0%} of the previous accepted "
                f"drop's {before}",
                file=name,
            )
        result = normalise(raw, layout, reference_date)  # type: ignore[arg-type]
        _check_raw_contract(name, raw)
    except DropRejected as exc:
        counts.rejected_reason = exc.reason
        raise
    counts.accepted = result.frame.height
    counts.quarantined = result.rows_quarantined
    counts.warnings = result.warnings
    return result


def _check_raw_contract(name: str, raw: pl.DataFrame) -> None:
    """The raw-edge contract (contracts.cosmic): names and string types, after the named checks."""
    import pandera.errors

    from contracts.cosmic import validate_raw

    try:
        validate_raw(name, raw)
    except (pandera.errors.SchemaErrors, pandera.errors.SchemaError):
        raise DropRejected(f"{name}: breaks the raw-file contract (columns or types)", file=name) from None


def _check_quality(profile: list[dict[str, object]], drop: DropReport, state_dir: Path) -> None:
    from mvg_sync.quality.checkpoint import check_drop

    result = check_drop(profile, state_dir=state_dir)
    drop.warnings.extend(result.warnings)
    if result.failures:
        raise DropRejected("quality: " + "; ".join(result.failures), file=None, rule="quality")


def _counts_json(drop: DropReport) -> dict[str, object]:
    return {
        "files": {f.file: {k: v for k, v in asdict(f).items() if k != "file"} for f in drop.files},
        "warnings": drop.warnings,
    }


def _record(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    drop: DropReport,
    as_of: datetime,
    *,
    quarantine: pl.DataFrame | None = None,
    snapshots: dict[str, Path] | None = None,
    gap: tuple[int, int] | None = None,
) -> None:
    state.record_drop(
        con,
        extract_id=manifest.extract_id,
        sequence=manifest.sequence,
        extracted_at=manifest.extracted_at,
        window=(manifest.window_from, manifest.window_to),
        outcome=drop.outcome,
        reason=drop.reason,
        processed_at=as_of,
        counts=_counts_json(drop),
        quarantine=quarantine,
        snapshots=snapshots,
        gap=gap,
    )


def _reject(
    con: duckdb.DuckDBPyConnection,
    extract_id: str,
    manifest: Manifest | None,
    exc: DropRejected,
    as_of: datetime,
    *,
    files: list[FileCounts],
    gap: tuple[int, int] | None = None,
    warnings: list[str] | None = None,
) -> DropReport:
    drop = DropReport(extract_id=extract_id, outcome="rejected", reason=exc.reason,
                      sequence=manifest.sequence if manifest else None, files=files,
                      warnings=warnings or [])
    log.warning("drop %s rejected: %s", extract_id, exc.reason)
    quarantine = pl.DataFrame(
        {"file": [exc.file], "source_row": [None], "column_name": [None], "rule": [exc.rule],
         "reason": [exc.reason]},
        schema={"file": pl.String, "source_row": pl.Int64, "column_name": pl.String, "rule": pl.String,
                "reason": pl.String},
    )
    if manifest is None:
        state.record_drop(
            con, extract_id=extract_id, sequence=None, extracted_at=None, window=None,
            outcome="rejected", reason=exc.reason, processed_at=as_of, counts=_counts_json(drop),
            quarantine=quarantine,
        )
    else:
        _record(con, manifest, drop, as_of, quarantine=quarantine, gap=gap)
    return drop
