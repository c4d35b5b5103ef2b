"""Great Expectations runs and Data Docs for each drop's profile, after the push (issue 12).

Ingest evaluates the suites with `gate.evaluate` and keeps the profile it judged under
`$MVG_STATE_DIR/gx/profiles/<extract_id>.parquet`. This step, run by the flow once the drop's
changes are pushed, validates the same profile through the GX checkpoint, renders Data Docs
under `$MVG_STATE_DIR/gx/`, and checks that GX reaches the gate's verdict. A profile stays
until it is documented, so a run that ends before this step (crash, Ctrl-C, held drop) leaves
it for the next run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mvg_sync.fileperms import private_dir, private_file
from mvg_sync.quality.checkpoint import PROFILE_SCHEMA, run_checkpoint
from mvg_sync.quality.gate import evaluate

log = logging.getLogger(__name__)

PROFILES = "profiles"


class VerdictMismatch(RuntimeError):
    """GX and the gate judged one profile differently: the gate no longer matches the suites."""


@dataclass
class DocumentReport:
    """The drops whose GX validation results and Data Docs were written by one call."""

    documented: list[str] = field(default_factory=list)


def docs_dir(state_dir: Path) -> Path:
    """Where Data Docs (and the profiles waiting for them) live."""
    return state_dir / "gx"


def profile_path(state_dir: Path, extract_id: str) -> Path:
    return docs_dir(state_dir) / PROFILES / f"{extract_id}.parquet"


def save_profile(state_dir: Path, extract_id: str, profile: pl.DataFrame) -> None:
    """Keep the profile the gate judged, for the GX run after the push (owner-only: the
    profile holds no row data, but the state folder is private as a whole)."""
    path = profile_path(state_dir, extract_id)
    private_dir(path.parent)
    partial = path.with_suffix(".partial")
    profile.write_parquet(partial)
    private_file(partial)
    os.replace(partial, path)


def pending(state_dir: Path) -> list[Path]:
    """Profiles not yet documented, oldest drop first (extract ids sort by time within a day;
    the order only decides which Data Docs page is written first)."""
    folder = docs_dir(state_dir) / PROFILES
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def document_drops(state_dir: Path) -> DocumentReport:
    """Run the GX checkpoint on every pending profile and render Data Docs.

    Imports GX only when a profile is pending. Raises `VerdictMismatch` (and keeps the
    profile) when GX's failures or warnings differ from the gate's: that is a bug in the
    gate, and the drop's verdict must then be looked at by a person.
    """
    report = DocumentReport()
    for path in pending(state_dir):
        extract_id = path.stem
        profile = pl.read_parquet(path).select(list(PROFILE_SCHEMA)).cast(PROFILE_SCHEMA)
        by_gx = run_checkpoint(profile, docs_dir(state_dir))
        by_gate = evaluate(profile)
        if (sorted(by_gx.failures), sorted(by_gx.warnings)) != (sorted(by_gate.failures), sorted(by_gate.warnings)):
            raise VerdictMismatch(
                f"drop {extract_id}: GX found failures {by_gx.failures} and warnings {by_gx.warnings}, "
                f"the gate {by_gate.failures} and {by_gate.warnings}; check the drop and mvg_sync/quality/gate.py"
            )
        path.unlink()
        report.documented.append(extract_id)
        log.info("Data Docs written for drop %s", extract_id)
    return report
