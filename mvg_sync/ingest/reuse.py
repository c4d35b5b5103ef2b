"""Reuse of a file's snapshot when its bytes equal the previous accepted drop's (issue 12 item 2).

Each accepted drop leaves `files.json` beside its snapshots: per file, what its snapshot was
made from (the reuse key) and what parsing it found (counts, warnings, profile aggregates).
The next drop holding a file with the same key takes that snapshot instead of parsing the
file again: same bytes, same encoding, same ingest code and, where the normalised values
depend on them, the same reference date (R13 reads a 10-digit personnummer's century from
it) and manifest window (rule `window`) give the same snapshot, byte for byte.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from mvg_sync.cosmic_columns import FileLayout
from mvg_sync.fileperms import private_file
from mvg_sync.quality.checkpoint import DatasetProfile
from mvg_sync.store import drops as state

FILES = "files.json"


# Every module whose change could change a snapshot, its quarantine, its profile aggregates
# or a verdict on the file. tests/unit/test_ingest_reuse.py follows the imports of the
# normalising, reading and contract modules and fails on one missing here.
SNAPSHOT_MODULES = (
    "contracts.cosmic",
    "contracts.snapshots",
    "mvg_sync.cosmic_columns",
    "mvg_sync.ingest.localtime",
    "mvg_sync.ingest.normalise",
    "mvg_sync.ingest.normalisers",
    "mvg_sync.ingest.pipeline",
    "mvg_sync.ingest.reader",
    "mvg_sync.quality.checkpoint",  # DatasetProfile: the aggregates a reused file keeps
    "mvg_sync.rules.hsa",
    "mvg_sync.rules.patient_id",
    "mvg_sync.timeutil",
)


@cache
def code_fingerprint() -> str:
    """The ingest code and libraries a snapshot was made with: a new release parses again.

    The `SNAPSHOT_MODULES` by content, plus the Polars version (its Parquet writer makes the bytes).
    """
    import polars as pl

    digest = hashlib.sha256(pl.__version__.encode())
    for name in SNAPSHOT_MODULES:
        digest.update(Path(str(importlib.import_module(name).__file__)).read_bytes())
    return digest.hexdigest()


def key_of(layout: FileLayout, sha256: str, encoding: str, reference_date: date,
           window: tuple[date, date]) -> dict[str, str | None]:
    """What a file's snapshot, quarantine and verdict depend on besides the code."""
    has_patient_id = any(c.kind == "patient_id" for c in layout.columns)
    return {
        "sha256": sha256,
        "encoding": encoding,
        "reference_date": reference_date.isoformat() if has_patient_id else None,
        "window": f"{window[0].isoformat()}..{window[1].isoformat()}" if layout.windowed else None,
        "code": code_fingerprint(),
    }


@dataclass(frozen=True)
class Earlier:
    """A file of the previous accepted drop that the current drop's file equals."""

    extract_id: str
    snapshot: Path
    profile: DatasetProfile
    warnings: tuple[str, ...]


@dataclass
class Reusable:
    """The previous accepted drop's files, as its `files.json` recorded them."""

    extract_id: str | None = None
    folder: Path | None = None
    files: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of(cls, state_dir: Path, extract_id: str | None) -> Reusable:
        if extract_id is None:
            return cls()
        folder = state.snapshot_path(state_dir, extract_id, "x").parent
        try:
            files = json.loads((folder / FILES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()  # a drop from before this release, or purged: every file is parsed
        return cls(extract_id=extract_id, folder=folder, files=files)

    def find(self, layout: FileLayout, key: dict[str, str | None]) -> Earlier | None:
        entry = self.files.get(layout.file)
        if entry is None or self.folder is None or self.extract_id is None or entry.get("key") != key:
            return None
        snapshot = self.folder / f"{layout.dataset}.parquet"
        if not snapshot.is_file():
            return None
        return Earlier(extract_id=self.extract_id, snapshot=snapshot,
                       profile=DatasetProfile(**entry["profile"]), warnings=tuple(entry["warnings"]))


@dataclass
class Record:
    """The `files.json` of the drop being ingested."""

    files: dict[str, dict] = field(default_factory=dict)

    def add(self, layout: FileLayout, key: dict[str, str | None], warnings: list[str],
            profile: DatasetProfile) -> None:
        self.files[layout.file] = {"key": key, "warnings": list(warnings), "profile": asdict(profile)}

    def save(self, state_dir: Path, extract_id: str) -> None:
        path = state.snapshot_path(state_dir, extract_id, "x").parent / FILES
        path.write_text(json.dumps(self.files, indent=1), encoding="utf-8")
        private_file(path)


def link_snapshot(earlier: Path, path: Path) -> None:
    """The earlier snapshot as this drop's (a hard link: same bytes, no copy; a copy where the
    file system has none). Retention may delete the earlier folder; the link keeps the bytes."""
    path.unlink(missing_ok=True)
    try:
        os.link(earlier, path)
    except OSError:
        shutil.copyfile(earlier, path)
        private_file(path)
