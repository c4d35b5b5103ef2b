"""Ingest every complete, unprocessed drop: manifest, decode, parse, normalise, validate, record."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING

import duckdb
import polars as pl
from polars.io.plugins import register_io_source

from mvg_sync.cosmic_columns import LAYOUT_BY_FILE, LAYOUTS, FileLayout
from mvg_sync.fileperms import private_dir, private_file
from mvg_sync.ingest import reuse
from mvg_sync.ingest.faults import interrupt_on_machine_error, is_machine_error
from mvg_sync.ingest.manifest import (
    MANIFEST,
    MANIFEST_GRACE,
    DropRejected,
    Manifest,
    ManifestUnparseable,
    list_complete_drops,
    read_manifest,
)
from mvg_sync.ingest.normalise import (
    QUARANTINE_SCHEMA,
    check_columns,
    check_grain,
    key_headers,
    normalise_rows,
)
from mvg_sync.ingest.reader import (
    CsvParseError,
    CsvSource,
    FileScan,
    check_bytes,
    copy_with_lf_row_ends,
    csv_source,
    iter_raw_batches,
    scan_file,
)
from mvg_sync.quality.checkpoint import PROFILE_SCHEMA, DatasetProfile
from mvg_sync.quality.document import save_profile
from mvg_sync.quality.gate import evaluate
from mvg_sync.rules.patient_id import mask_patient_ids
from mvg_sync.store import StoreBusy, StoreTooNew, work_connection
from mvg_sync.store import drops as state
from mvg_sync.store.types import DropOutcome
from mvg_sync.sync import crashpoints
from mvg_sync.timeutil import STOCKHOLM, utc_now

if TYPE_CHECKING:
    from contracts.snapshots import SnapshotContractError

log = logging.getLogger(__name__)

# A file shrinking below this share of the previous accepted drop's rows is not trusted.
MIN_ROW_SHARE = 0.5
# Below this many previous rows the shrink check is noise (a handful of events may vanish).
SHRINK_CHECK_FLOOR = 20
# Rows per batch streamed from a CSV to its snapshot: memory is bounded by a few batches
# in flight (one read ahead, one normalised, one written). Issue 12, measured on a national
# drop (10 M bookings, 4.2 GB): 1 M rows peaked at 4.65 GB, 500 k at 3.29 GB, 250 k at 2.42 GB
# with 0.92x the wall; a regional drop took 0.96-1.00x the CPU of 1 M (farm-bench, 7 and 9 pairs).
BATCH_ROWS = 250_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    outcome: DropOutcome
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
        return [d.extract_id for d in self.drops if d.outcome == DropOutcome.ACCEPTED]

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


def ingest_pending(
    landing_dir: Path,
    state_dir: Path,
    *,
    as_of: datetime,
    batch_rows: int = BATCH_ROWS,
    now: datetime | None = None,
) -> IngestReport:
    """Process every complete, unprocessed drop under `landing_dir` in manifest `sequence` order.

    Ties (a re-delivery) are broken by `extracted_at`. Never by folder name: `extract_id` is
    local time, so after the autumn fall-back a newer drop's name sorts before an older one's.
    A manifest.json that is not JSON yet is skipped as still being written until it has been
    so for MANIFEST_GRACE by its mtime against `now`, the wall clock (default
    `timeutil.utc_now()`; not `as_of`, which may be any instant), then rejected.
    `batch_rows` bounds memory; it changes nothing in what is written.
    Raises `faults.IngestInterrupted` (one line: the drop, the cause, what to do) when the
    machine fails: the drops before stay recorded, that drop and the later ones stay pending.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    now = utc_now() if now is None else now
    report = IngestReport()
    with interrupt_on_machine_error():
        with state.connect(state_dir) as con:
            known = state.processed_drop_ids(con)
        pending = sorted(_unprocessed(landing_dir, known, now), key=_processing_order)
    # Reading a drop is long compute: it runs in its own in-memory DuckDB, and the store is
    # opened only to look up and to record each drop (other processes get in between).
    with interrupt_on_machine_error(), work_connection(state_dir) as work:
        for folder, manifest in pending:
            if folder.name in known:
                continue
            # A machine error (full disk, memory, permissions, IO) is no verdict on the drop:
            # it stays unrecorded, the run fails naming the cause, and the next run takes it.
            with interrupt_on_machine_error(folder.name):
                drop = _ingest_folder(DropContext(work=work, folder=folder, state_dir=state_dir, as_of=as_of,
                                                  batch_rows=batch_rows, report=report), manifest)
            known.add(drop.extract_id)
            report.drops.append(drop)
            crashpoints.reached("after-drop")  # one drop recorded, later ones not yet read
    return report


def wait_for_drop(
    landing_dir: Path,
    state_dir: Path,
    *,
    timeout_s: float,
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Long-poll the landing folder: True as soon as an unprocessed drop's manifest is readable.

    A scheduled sync calls this first so a drop that lands between two schedule ticks is
    taken within `poll_s` instead of waiting for the next tick (issue 4 (b): the tick's wait,
    not the cycle, dominated the latency). False after `timeout_s` without one; the caller
    runs its cycle anyway (tickets fall due, held children are re-checked without a drop).
    Only the folder listing is polled: the state store is read once, for the processed ids.
    """
    deadline = clock() + max(timeout_s, 0.0)
    with state.connect(state_dir) as con:
        known = state.processed_drop_ids(con)
    while True:
        if _unprocessed(landing_dir, known, utc_now()):
            return True
        left = deadline - clock()
        if left <= 0:
            return False
        sleep(min(poll_s, left))


def ingest_drop(
    folder: Path, state_dir: Path, *, as_of: datetime, batch_rows: int = BATCH_ROWS, now: datetime | None = None
) -> DropReport | None:
    """Process one drop folder (processing it again yields `duplicate` and changes nothing).

    None while its manifest.json is still being written (as in `ingest_pending`).
    """
    manifest = _read_manifest(folder, utc_now() if now is None else now)
    if manifest is None:
        return None
    with interrupt_on_machine_error(folder.name), work_connection(state_dir) as work:
        return _ingest_folder(DropContext(work=work, folder=folder, state_dir=state_dir, as_of=as_of,
                                          batch_rows=batch_rows, report=IngestReport()), manifest)


def _unprocessed(landing_dir: Path, known: set[str], now: datetime) -> list[tuple[Path, Manifest | DropRejected]]:
    """Drop folders not in `known` whose manifest is complete, each with its manifest or why
    it is unusable (a manifest still being written is left for later)."""
    read = [(folder, _read_manifest(folder, now)) for folder in list_complete_drops(landing_dir)
            if folder.name not in known]
    return [(folder, manifest) for folder, manifest in read if manifest is not None]


def _read_manifest(folder: Path, now: datetime) -> Manifest | DropRejected | None:
    """The manifest, why it is unusable, or None while it may still be being written."""
    try:
        return read_manifest(folder)
    except ManifestUnparseable as exc:
        if exc.still_being_written(now):
            log.info("drop %s: manifest.json not complete yet (being written); skipped", folder.name)
            return None
        minutes = int(MANIFEST_GRACE.total_seconds() // 60)
        return DropRejected(f"{exc.reason} for over {minutes} minutes", file=exc.file, rule=exc.rule)
    except DropRejected as exc:
        return exc


def _processing_order(item: tuple[Path, Manifest | DropRejected]) -> tuple:
    """Unreadable manifests first (their rejection touches no sequence), then by sequence."""
    folder, manifest = item
    if isinstance(manifest, DropRejected):
        return (0, 0, _EPOCH, folder.name)
    return (1, manifest.sequence, manifest.extracted_at, folder.name)


@dataclass
class DropContext:
    """One drop on its way through ingest: what every step of it reads (issue 12 item 6).

    Built once per drop folder; the steps add the report's files and warnings to `drop`.
    """

    work: duckdb.DuckDBPyConnection  # in-memory DuckDB for the parsing (not the store)
    folder: Path
    state_dir: Path
    as_of: datetime
    batch_rows: int
    report: IngestReport
    manifest: Manifest | None = None  # once read and naming this folder
    gap: tuple[int, int] | None = None
    newest: tuple[str, int, datetime] | None = None  # the newest accepted drop, when looked up
    previous_counts: dict[str, int] = field(default_factory=dict)  # its rows in per file
    drop: DropReport = field(init=False)

    def __post_init__(self) -> None:
        self.drop = DropReport(extract_id=self.folder.name, outcome=DropOutcome.ACCEPTED)

    @property
    def extract_id(self) -> str:
        return self.drop.extract_id

    @property
    def tmp(self) -> Path:
        """UTF-8 and LF copies of landing files while the drop is read (owner-only, issue 14)."""
        return self.state_dir / "tmp" / self.extract_id

    def source(self, name: str) -> Path:
        return self.folder / name


def _ingest_folder(ctx: DropContext, manifest: Manifest | DropRejected) -> DropReport:
    # A drop is known by its folder name: discovery skips the names in `drops`, and retention
    # deletes the folders it names.
    folder, state_dir = ctx.folder, ctx.state_dir
    with state.connect(state_dir) as known:
        previous = state.drop_outcome(known, folder.name)
        named = None
        if not isinstance(manifest, DropRejected) and manifest.extract_id != folder.name:
            named = state.drop_outcome(known, manifest.extract_id)
        newest = state.latest_accepted(known)
        same_sequence = None if isinstance(manifest, DropRejected) else state.drop_with_sequence(
            known, manifest.sequence)
        last_sequence = state.latest_sequence(known)
        # what the files are judged against, read here: one store open fewer per drop
        ctx.newest, ctx.previous_counts = newest, state.previous_counts(known)
    if previous is not None:
        log.info("drop %s: duplicate, already %s", folder.name, previous)
        return DropReport(extract_id=folder.name, outcome=DropOutcome.DUPLICATE,
                          reason=f"drop already processed ({previous})",
                          sequence=None if isinstance(manifest, DropRejected) else manifest.sequence)
    if isinstance(manifest, DropRejected):
        return _reject(ctx, manifest)
    if manifest.extract_id != folder.name:
        # Recorded under the manifest's id, the folder would be read again every run and never
        # purged; and a manifest that names another drop is not trusted for its sequence either.
        reason = f"manifest.json: extract_id {manifest.extract_id} differs from the folder name {folder.name}"
        if named is not None:
            reason += f"; {manifest.extract_id} already processed ({named})"
        return _reject(ctx, DropRejected(reason, file=MANIFEST, rule="manifest"))
    ctx.manifest = manifest
    drop = ctx.drop
    drop.sequence = manifest.sequence
    if same_sequence is not None:
        drop.outcome, drop.reason = DropOutcome.DUPLICATE, f"sequence {manifest.sequence} already processed"
    elif newest is not None and (manifest.sequence, manifest.extracted_at) < (newest[1], newest[2]):
        drop.outcome = DropOutcome.STALE
        drop.reason = f"older than the newest accepted drop {newest[0]}"
    if drop.outcome != DropOutcome.ACCEPTED:
        log.warning("drop %s: %s (%s)", manifest.extract_id, drop.outcome, drop.reason)
        _record(ctx)
        return drop

    if last_sequence is not None and manifest.sequence > last_sequence + 1:
        ctx.gap = (last_sequence, manifest.sequence)
        ctx.report.gaps.append(ctx.gap)
        log.warning(
            "sequence gap: %d drop(s) missing between %d and %d",
            manifest.sequence - last_sequence - 1, last_sequence, manifest.sequence,
        )

    try:
        staged = _validate_drop(ctx, manifest)
        quarantine = pl.concat(staged.quarantine) if staged.quarantine else None
        crashpoints.reached("before-record-drop")  # snapshots staged, the drop not yet recorded
        _record(ctx, quarantine=quarantine, snapshots=staged.paths)
    except DropRejected as exc:
        state.discard_snapshot_folder(state_dir, manifest.extract_id)
        return _reject(ctx, exc)
    except Exception as exc:  # noqa: BLE001 - one drop's bug must not wedge every later drop
        state.discard_snapshot_folder(state_dir, manifest.extract_id)
        if is_machine_error(exc) or isinstance(exc, StoreBusy | StoreTooNew):
            raise  # not the drop's fault: it stays pending (ingest_pending says why)
        # Raised, it would leave the drop unrecorded and fail every later run on the same drop.
        # The reason names the type only (a message may quote data); the traceback goes to the
        # log, where the PII filter masks it.
        log.exception("drop %s: internal error while validating it", manifest.extract_id)
        return _reject(ctx, DropRejected(f"internal error: {type(exc).__name__}", file=None, rule="internal"))
    except BaseException:  # interrupted: nothing recorded, the drop is processed next run
        state.discard_snapshot_folder(state_dir, manifest.extract_id)
        raise
    log.info(
        "drop %s accepted: %s", manifest.extract_id,
        ", ".join(f"{f.file} {f.accepted}/{f.rows_in} ({f.quarantined} quarantined)" for f in drop.files),
    )
    return drop


def _validate_drop(ctx: DropContext, manifest: Manifest) -> StagedDrop:
    """Every file-level check; writes the snapshots and returns them staged, or raises DropRejected."""
    for name in manifest.files:
        if name not in LAYOUT_BY_FILE:
            ctx.drop.warnings.append(f"{name}: not a Cosmic file this integration reads; ignored")
    for layout in LAYOUTS:
        if not layout.optional and layout.file not in manifest.files:
            raise DropRejected(f"manifest.json: lists no {layout.file}", file="manifest.json", rule="manifest")
    layouts = [layout for layout in LAYOUTS if layout.file in manifest.files]
    for layout in layouts:
        if not ctx.source(layout.file).is_file():
            raise DropRejected(f"{layout.file}: listed in the manifest but missing", file=layout.file,
                               rule="manifest")

    # Hash every file first (threads: hashlib releases the GIL): a corrupt drop costs no parsing.
    with ThreadPoolExecutor(max_workers=2) as pool:
        scans = dict(zip(
            [lay.file for lay in layouts],
            pool.map(lambda lay: scan_file(ctx.source(lay.file), manifest.encoding), layouts),
            strict=True,
        ))
    try:
        return _validate_scanned(ctx, manifest, layouts, scans)
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)


def _validate_scanned(
    ctx: DropContext, manifest: Manifest, layouts: list[FileLayout], scans: dict[str, FileScan]
) -> StagedDrop:
    for layout in layouts:
        scan, entry = scans[layout.file], manifest.files[layout.file]
        if scan.sha256 != entry.sha256:
            truncated = "" if scan.ends_with_newline or scan.size == 0 else " (truncated: last row has no line end)"
            raise DropRejected(f"{layout.file}: sha256 differs from the manifest{truncated}",
                               file=layout.file, rule="manifest")

    previous, newest = ctx.previous_counts, ctx.newest
    reusable = reuse.Reusable.of(ctx.state_dir, newest[0] if newest else None)
    files = FileContext(
        reference_date=manifest.extracted_at.astimezone(STOCKHOLM).date(),
        window=(manifest.window_from, manifest.window_to),
        previous=previous,
    )
    staged = StagedDrop()
    record = reuse.Record()
    # One file at a time, and each file in batches streamed to its snapshot: peak memory is
    # a batch of the largest file, not the file (national drops are GBs).
    for layout in layouts:
        counts = FileCounts(file=layout.file)
        ctx.drop.files.append(counts)
        path = state.snapshot_path(ctx.state_dir, manifest.extract_id, layout.dataset)
        private_dir(path.parent)
        key = reuse.key_of(layout, scans[layout.file].sha256, manifest.encoding, files.reference_date, files.window)
        earlier = reusable.find(layout, key)
        if earlier is not None:
            ingested = _reuse_file(ctx, manifest, layout, counts, files, earlier, path)
        else:
            ingested = _ingest_file(ctx, manifest, layout, scans[layout.file], counts, files, path)
        record.add(layout, key, counts.warnings, ingested.profile)
        staged.paths[layout.dataset] = path
        staged.profile.append(ingested.profile.row(
            extracted_at=manifest.extracted_at, previous_rows=previous.get(layout.file), as_of=ctx.as_of,
        ))
        if ingested.quarantine.height:
            staged.quarantine.append(ingested.quarantine.with_columns(pl.lit(layout.file).alias("file")))
    record.save(ctx.state_dir, manifest.extract_id)
    _check_quality(staged.profile, ctx.drop, ctx.state_dir)
    return staged


@dataclass(frozen=True)
class FileContext:
    """What the files of one drop are judged against, beyond their own bytes."""

    reference_date: date  # the extract's local date: R13's century for 10-digit personnummer
    window: tuple[date, date]  # the manifest's window (rule `window`)
    previous: dict[str, int]  # rows in per file of the previous accepted drop


@dataclass
class _IngestedFile:
    """What one file left behind once its snapshot is written: quarantine and aggregates."""

    quarantine: pl.DataFrame
    profile: DatasetProfile


def _check_counts(manifest: Manifest, layout: FileLayout, counts: FileCounts, rows_in: int, files: FileContext) -> None:
    """The row count against the manifest, then against the previous accepted drop's."""
    name = layout.file
    counts.rows_in = rows_in
    expected = manifest.files[name].rows
    if rows_in != expected:
        raise DropRejected(f"{name}: {rows_in} data rows but the manifest says {expected}",
                           file=name, rule="manifest")
    before = files.previous.get(name)
    # Fewer bookings, down to none at all, are cancellations: the mass-cancellation guard
    # judges them against what is live in Clinic24 and an operator can approve them, where
    # a rejection could not be approved (issue 11). A first drop with no bookings cancels
    # nothing and is accepted: its slots are still needed for the HSL report.
    if (layout.dataset != "bookings" and before is not None and before >= SHRINK_CHECK_FLOOR
            and rows_in < MIN_ROW_SHARE * before):
        raise DropRejected(
            f"{name}: {rows_in} data rows, under {MIN_ROW_SHARE:.0%} of the previous accepted "
            f"drop's {before}",
            file=name,
        )


def _reuse_file(
    ctx: DropContext,
    manifest: Manifest,
    layout: FileLayout,
    counts: FileCounts,
    files: FileContext,
    earlier: reuse.Earlier,
    path: Path,
) -> _IngestedFile:
    """A file byte-identical to the previous accepted drop's (same sha256, encoding and, where
    they matter, reference date and window, same ingest code): its snapshot, counts and
    quarantine rows are that drop's, and the checks that depend on more than its bytes (the
    manifest's row count, the shrink check) run again. Issue 12: the catalogue, units and
    often the slots are the same drop after drop; parsing them again found nothing new."""
    try:
        counts.warnings = list(earlier.warnings)
        _check_counts(manifest, layout, counts, earlier.profile.rows_in, files)
        counts.accepted = earlier.profile.accepted
        counts.quarantined = earlier.profile.rows_in - earlier.profile.accepted
        with state.connect(ctx.state_dir) as known:
            quarantine = state.quarantine_rows(known, earlier.extract_id, layout.file)
        reuse.link_snapshot(earlier.snapshot, path)
    except DropRejected as exc:
        counts.rejected_reason = exc.reason
        raise
    log.info("drop %s: %s unchanged since drop %s; its snapshot reused", ctx.extract_id, layout.file,
             earlier.extract_id)
    return _IngestedFile(quarantine=quarantine, profile=earlier.profile)


def _ingest_file(
    ctx: DropContext,
    manifest: Manifest,
    layout: FileLayout,
    scan: FileScan,
    counts: FileCounts,
    files: FileContext,
    path: Path,
) -> _IngestedFile:
    """Read, normalise and write one file batch by batch, then run the file-level checks.

    The checks see the whole file through what the batches leave behind (row count, key
    hashes, the contract's verdict) and raise in the same order as on a file read whole.
    """
    name = layout.file
    try:
        names = check_bytes(ctx.source(name), manifest.encoding, scan)
        columns_error: DropRejected | None = None
        try:
            counts.warnings = check_columns(names, layout)
        except DropRejected as exc:
            columns_error = exc
        source = csv_source(ctx.source(name), manifest.encoding, scan, ctx.tmp)

        def read(source: CsvSource) -> _WrittenSnapshot:
            batches = iter_raw_batches(ctx.work, source, names, batch_rows=ctx.batch_rows)
            if columns_error is None:
                return _write_snapshot(batches, layout, files.reference_date, path, manifest.files[name].rows,
                                       files.window, may_hold_nul=scan.has_nul)
            # nothing to normalise: count the rows, for the checks that come first
            counted = _WrittenSnapshot(profile=DatasetProfile(layout.dataset))
            for batch in batches:
                counted.profile.rows_in += batch.height
                counted.first = batch.head(0) if counted.first is None else counted.first
            return counted

        try:
            written = read(source)
        except CsvParseError as exc:
            # Checked only once the parser fails: a valid file never pays for the extra pass.
            lf_copy = private_dir(ctx.tmp) / f"{name}.lf"
            if not exc.mixed_line_ends_possible or not copy_with_lf_row_ends(source.path, lf_copy):
                raise
            private_file(lf_copy)
            counts.warnings.append(f"{name}: rows end with both CRLF and LF; read with either as a row end")
            source = replace(source, path=lf_copy)
            written = read(source)
        _check_counts(manifest, layout, counts, written.profile.rows_in, files)
        if columns_error is not None:
            raise columns_error
        if not written.keys_unique():
            # duplicates, or a hash collision: the exact check reads the key columns again
            keys = key_headers(layout)
            check_grain(pl.concat([b.select(keys) for b in iter_raw_batches(
                ctx.work, source, names, batch_rows=ctx.batch_rows)]), layout)
        assert written.first is not None
        _check_raw_contract(name, written.first)
        counts.accepted = written.profile.accepted
        counts.quarantined = written.profile.rows_in - written.profile.accepted
        _check_snapshot_contract(name, layout.dataset, written)
    except DropRejected as exc:
        counts.rejected_reason = exc.reason
        raise
    return _IngestedFile(quarantine=written.quarantine(), profile=written.profile)


@dataclass
class _WrittenSnapshot:
    """What streaming a file into its snapshot keeps: key hashes, quarantine and the contract's
    verdict, never a copy of the rows (issue 12: the IPC copies of keys and samples cost ~2 s
    per million rows)."""

    profile: DatasetProfile
    first: pl.DataFrame | None = None  # the raw columns and types (no rows)
    key_hashes: list[pl.Series] = field(default_factory=list)  # one u64 per row with its whole key
    quarantines: list[pl.DataFrame] = field(default_factory=list)
    held: list[pl.DataFrame] | None = field(default_factory=list)  # every accepted row, while few
    contract_failure: SnapshotContractError | None = None  # the first sampled batch that broke it

    def quarantine(self) -> pl.DataFrame:
        return pl.concat(self.quarantines) if self.quarantines else pl.DataFrame(schema=QUARANTINE_SCHEMA)

    def keys_unique(self) -> bool:
        """True when no two rows share a whole key: distinct hashes prove it (equal keys hash
        equal); equal hashes may be a collision, so the caller then compares the keys."""
        hashes = pl.concat(self.key_hashes) if self.key_hashes else pl.Series(dtype=pl.UInt64)
        return hashes.n_unique() == hashes.len()


def _write_snapshot(
    batches: Iterator[pl.DataFrame],
    layout: FileLayout,
    reference_date: date,
    path: Path,
    expected_rows: int,
    window: tuple[date, date] | None = None,
    *,
    may_hold_nul: bool = True,
) -> _WrittenSnapshot:
    """Normalise each batch and stream the good rows into one Parquet file (Polars' own writer).

    The snapshot contract sees every accepted row while there are at most FULL_CHECK_MAX_ROWS
    (checked whole after the file, as a file read whole would be: units, care services). Past that
    each batch's sample is checked as it passes and then let go, so no batch's strings are
    held (a sample of a Polars string column keeps its whole batch's buffers alive: 5 GB
    measured over a national bookings file); the first failure is raised in its turn.
    """
    # pandera is imported on first use: commands that only import ingest do not pay for it
    import contracts.snapshots
    from contracts.snapshots import FULL_CHECK_MAX_ROWS, SAMPLE_ROWS, SnapshotContractError

    written = _WrittenSnapshot(profile=DatasetProfile(layout.dataset))
    keys = key_headers(layout)
    fraction = min(1.0, SAMPLE_ROWS / expected_rows) if expected_rows else 1.0
    failure: list[BaseException] = []

    def check_sample(frame: pl.DataFrame, seed: int) -> None:
        if written.contract_failure is None:
            try:
                contracts.snapshots.validate_snapshot(layout.dataset, frame.sample(fraction=fraction, seed=seed))
            except SnapshotContractError as exc:
                written.contract_failure = exc

    def normalised_batches() -> Iterator[pl.DataFrame]:
        try:
            for index, raw in enumerate(_prefetched(batches)):
                if written.first is None:
                    written.first = raw.head(0)
                # grain (check_grain): rows with a null key part are not part of it
                written.key_hashes.append(raw.select(keys).drop_nulls().hash_rows())
                result = normalise_rows(raw, layout, reference_date, row_offset=written.profile.rows_in,
                                        window=window, may_hold_nul=may_hold_nul)
                written.profile.observe(result.frame, raw.height)
                if result.quarantine.height:
                    written.quarantines.append(result.quarantine)
                if written.held is not None:
                    written.held.append(result.frame)
                    if written.profile.accepted > FULL_CHECK_MAX_ROWS:
                        for seed, frame in enumerate(written.held):
                            check_sample(frame, seed)
                        written.held = None
                else:
                    check_sample(result.frame, index)
                del raw
                yield result.frame
        except BaseException as exc:  # re-raised below: Polars would wrap it in its own error
            failure.append(exc)

    empty = pl.DataFrame(schema=dict.fromkeys(layout.headers, pl.String))
    schema = normalise_rows(empty, layout, reference_date).frame.schema

    def source(*_: object) -> Iterator[pl.DataFrame]:
        yield from normalised_batches()

    register_io_source(source, schema=schema).sink_parquet(path, compression="lz4", statistics=False)
    private_file(path)  # Polars writes 0666 & ~umask; the snapshot holds personnummer (issue 14)
    if failure:
        raise failure[0]
    return written


def _prefetched(batches: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Read the next batch in a thread while this one is normalised (DuckDB releases the GIL)."""
    queue: Queue[tuple[pl.DataFrame | None, BaseException | None]] = Queue(maxsize=1)

    def produce() -> None:
        try:
            for batch in batches:
                queue.put((batch, None))
            queue.put((None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            queue.put((None, exc))

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    thread.start()
    while True:
        batch, error = queue.get()
        if error is not None:
            thread.join()
            raise error
        if batch is None:
            thread.join()
            return
        yield batch


def _check_raw_contract(name: str, raw: pl.DataFrame) -> None:
    """The raw-edge contract (contracts.cosmic): names and string types, after the named checks."""
    import pandera.errors

    from contracts.cosmic import validate_raw

    try:
        validate_raw(name, raw)
    except (pandera.errors.SchemaErrors, pandera.errors.SchemaError):
        raise DropRejected(f"{name}: breaks the raw-file contract (columns or types)", file=name) from None


def _check_snapshot_contract(name: str, dataset: str, written: _WrittenSnapshot) -> None:
    """The normalised snapshot's contract (contracts.snapshots); a failure rejects the drop.

    The reason names the failing checks (column and check names); it is masked all the same,
    so no value shaped like a personnummer can reach the drop log or the quarantine.
    """
    import contracts.snapshots

    failure = written.contract_failure
    if written.held is not None:
        try:
            contracts.snapshots.validate_snapshot(dataset, pl.concat(written.held))
        except contracts.snapshots.SnapshotContractError as exc:
            failure = exc
    if failure is not None:
        raise DropRejected(
            f"{name}: breaks the snapshot contract ({mask_patient_ids(str(failure))})", file=name, rule="contract"
        ) from None


def _check_quality(profile: list[dict[str, object]], drop: DropReport, state_dir: Path) -> None:
    """The suites' gate on the drop profile, without GX on the way to the push (issue 12); the
    GX run and Data Docs follow from the same profile after the push (`quality.document`)."""
    frame = pl.DataFrame(profile, schema=PROFILE_SCHEMA)
    save_profile(state_dir, drop.extract_id, frame)
    result = evaluate(frame)
    drop.warnings.extend(result.warnings)
    if result.failures:
        raise DropRejected("quality: " + "; ".join(result.failures), file=None, rule="quality")


def _counts_json(drop: DropReport) -> dict[str, object]:
    return {
        "files": {f.file: {k: v for k, v in asdict(f).items() if k != "file"} for f in drop.files},
        "warnings": drop.warnings,
    }


def _record(
    ctx: DropContext, *, quarantine: pl.DataFrame | None = None, snapshots: dict[str, Path] | None = None
) -> None:
    """The drop's outcome, counts, quarantine, gap and snapshot pointers, in one transaction."""
    manifest, drop = ctx.manifest, ctx.drop
    with state.connect(ctx.state_dir) as con:
        state.record_drop(
            con,
            extract_id=drop.extract_id,
            sequence=manifest.sequence if manifest else None,
            extracted_at=manifest.extracted_at if manifest else None,
            window=(manifest.window_from, manifest.window_to) if manifest else None,
            outcome=drop.outcome,
            reason=drop.reason,
            processed_at=ctx.as_of,
            counts=_counts_json(drop),
            quarantine=quarantine,
            snapshots=snapshots,
            gap=ctx.gap if manifest else None,
        )


def _reject(ctx: DropContext, exc: DropRejected) -> DropReport:
    """Record the drop as rejected, with one quarantine row naming the file and the reason."""
    drop = ctx.drop
    drop.outcome, drop.reason = DropOutcome.REJECTED, exc.reason
    log.warning("drop %s rejected: %s", drop.extract_id, exc.reason)
    quarantine = pl.DataFrame(
        {"file": [exc.file], "source_row": [None], "column_name": [None], "rule": [exc.rule],
         "reason": [exc.reason]},
        schema={"file": pl.String, "source_row": pl.Int64, "column_name": pl.String, "rule": pl.String,
                "reason": pl.String},
    )
    _record(ctx, quarantine=quarantine)
    return drop
