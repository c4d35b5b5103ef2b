"""Drop discovery and the manifest: which drops are complete, and what they promise."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

MANIFEST = "manifest.json"
EXTRACT_ID = re.compile(r"^\d{8}T\d{6}-\d{6}$")
ENCODINGS = ("windows-1252", "utf-8")
# A writer that does not rename the manifest into place leaves it half-written for a moment:
# unparseable JSON last written less than this long ago is "still being written", older is broken.
MANIFEST_GRACE = timedelta(minutes=10)


class DropRejected(Exception):
    """The drop (or one of its files) is unusable; `reason` is safe to log (no patient data)."""

    def __init__(self, reason: str, *, file: str | None = None, rule: str = "contract") -> None:
        super().__init__(reason)
        self.reason = reason
        self.file = file
        self.rule = rule


class ManifestUnparseable(DropRejected):
    """manifest.json is there but is not JSON: broken, or a non-atomic writer is still writing it."""

    def __init__(self, reason: str, *, written_at: datetime) -> None:
        super().__init__(reason, file=MANIFEST, rule="manifest")
        self.written_at = written_at

    def still_being_written(self, now: datetime, grace: timedelta = MANIFEST_GRACE) -> bool:
        """Whether it was last written within `grace` before `now`.

        `now` must be the wall clock, not `as_of`: a file's mtime is wall-clock time, and
        `as_of` may be any instant (a replay, a test).
        """
        return now - self.written_at <= grace


@dataclass(frozen=True)
class FileEntry:
    """What the manifest promises about one file."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A drop's manifest.json (cosmic-extracts.md)."""

    extract_id: str
    sequence: int
    extracted_at: datetime
    window_from: date
    window_to: date
    encoding: str
    files: dict[str, FileEntry]


def list_complete_drops(landing_dir: Path) -> list[Path]:
    """Drop folders with a manifest, in folder-name order.

    A folder without `manifest.json` is still being written and is skipped silently. Name
    order is for listing only: names are local time and repeat an hour at the autumn
    fall-back, so drops are processed in manifest `sequence` order (pipeline.ingest_pending).
    """
    if not landing_dir.is_dir():
        return []
    folders = [p for p in landing_dir.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
    return sorted(folders, key=lambda p: p.name)


def manifest_being_written(folder: Path, now: datetime, grace: timedelta = MANIFEST_GRACE) -> bool:
    """Whether the folder's manifest.json is unparseable JSON last written within `grace` of
    `now` (the wall clock: see ManifestUnparseable.still_being_written)."""
    try:
        read_manifest(folder)
    except ManifestUnparseable as exc:
        return exc.still_being_written(now, grace)
    except (DropRejected, OSError):
        return False
    return False


def read_manifest(folder: Path) -> Manifest:
    """Parse and shape-check a manifest; raises DropRejected (rule `manifest`) naming the field.

    Unparseable JSON raises the subclass ManifestUnparseable: it may still be being written.
    """

    def bad(what: str) -> DropRejected:
        return DropRejected(f"manifest.json: {what}", file=MANIFEST, rule="manifest")

    path = folder / MANIFEST
    try:
        written_at = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # e.g. cut short by a writer still at it
        raise ManifestUnparseable(
            f"manifest.json: not readable JSON ({type(exc).__name__})", written_at=written_at
        ) from None
    # An OSError (permissions, IO) propagates: it is the machine's fault, not the drop's, and a
    # rejection would lose the drop for good (pipeline.ingest_pending leaves it pending).
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    extract_id = data.get("extract_id")
    if not isinstance(extract_id, str) or not EXTRACT_ID.match(extract_id):
        raise bad("extract_id missing or not YYYYMMDDTHHMMSS-NNNNNN")
    sequence = data.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise bad("sequence missing or not a non-negative integer")
    try:
        extracted_at = datetime.fromisoformat(str(data.get("extracted_at")))
    except ValueError:
        raise bad("extracted_at is not an ISO date-time") from None
    if extracted_at.tzinfo is None:
        raise bad("extracted_at has no UTC offset")
    window = data.get("window")
    try:
        window_from = date.fromisoformat(window["from"])
        window_to = date.fromisoformat(window["to"])
    except (TypeError, KeyError, ValueError):
        raise bad("window.from / window.to missing or not dates") from None
    if window_to < window_from:
        raise bad("window.to is before window.from")
    encoding = str(data.get("encoding", "")).lower().replace("_", "-")
    encoding = {"cp1252": "windows-1252", "utf8": "utf-8", "utf-8-sig": "utf-8"}.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise bad("encoding is neither windows-1252 nor utf-8")
    files_raw = data.get("files")
    if not isinstance(files_raw, dict) or not files_raw:
        raise bad("files missing or empty")
    files: dict[str, FileEntry] = {}
    for name, entry in files_raw.items():
        if not isinstance(entry, dict):
            raise bad(f"files.{name} is not an object")
        rows, sha = entry.get("rows"), entry.get("sha256")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise bad(f"files.{name}.rows missing or not a non-negative integer")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise bad(f"files.{name}.sha256 missing or not 64 hex digits")
        files[name] = FileEntry(rows=rows, sha256=sha.lower())
    return Manifest(
        extract_id=extract_id,
        sequence=sequence,
        extracted_at=extracted_at,
        window_from=window_from,
        window_to=window_to,
        encoding=encoding,
        files=files,
    )
