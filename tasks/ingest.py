"""Thin Prefect tasks for ingestion: run `ingest_pending` and publish counts as a table artifact."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from mvg_sync.ingest import IngestReport, ingest_pending
from mvg_sync.ingest import wait_for_drop as _wait_for_drop
from mvg_sync.quality.document import document_drops

ARTIFACT_KEY = "ingest-counts"


def counts_table(report: IngestReport) -> list[dict[str, object]]:
    """One row per drop and file; counts and reasons only, NaN turned into None."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in report.rows()
    ]


@task(name="ingest-drops")
def ingest_drops(landing_dir: Path, state_dir: Path, as_of: datetime) -> IngestReport:
    """Ingest every complete, unprocessed drop; the artifact shows per-drop, per-file counts."""
    logger = get_run_logger()
    report = ingest_pending(Path(landing_dir), Path(state_dir), as_of=as_of)
    for drop in report.drops:
        logger.info("drop %s: %s%s", drop.extract_id, drop.outcome, f" ({drop.reason})" if drop.reason else "")
    for after, before in report.gaps:
        logger.warning("sequence gap: %d drop(s) missing between %d and %d", before - after - 1, after, before)
    if report.drops:
        create_table_artifact(
            key=ARTIFACT_KEY,
            table=counts_table(report),
            description="Cosmic drops ingested: outcome and rows in / accepted / quarantined per file",
        )
    else:
        logger.info("no new drops")
    return report


@task(name="wait-for-drop", cache_policy=NO_CACHE)
def wait_for_drop(landing_dir: Path, state_dir: Path, timeout_s: float) -> dict:
    """Wait up to `timeout_s` for a new drop to land, so it is synced at once, not next tick."""
    started = time.monotonic()
    landed = _wait_for_drop(Path(landing_dir), Path(state_dir), timeout_s=timeout_s)
    waited = round(time.monotonic() - started, 1)
    get_run_logger().info("%s after %.1f s", "a new drop landed" if landed else "no new drop", waited)
    return {"waited_s": waited, "drop_landed": landed}


@task(name="document-drop-quality", cache_policy=NO_CACHE)
def document_drop_quality(state_dir: Path) -> list[str]:
    """GX validation results and Data Docs for the drops ingested since the last call, after
    their push, so GX's import and context cost stays off the path to Clinic24 (issue 12)."""
    report = document_drops(Path(state_dir))
    if report.documented:
        get_run_logger().info("Data Docs written for %d drop(s)", len(report.documented))
    return report.documented
