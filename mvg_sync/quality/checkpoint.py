"""Great Expectations on per-drop profiles: checks no single row can see (volume, mix, freshness).

The gate that decides a drop evaluates the same suites without GX (`gate.py`); this module
runs them through GX for validation results and Data Docs after the push (`document.py`).

GX has no Polars engine and its SQL path fails on DuckDB (STACK-NOTES), so it validates a
one-row-per-dataset pandas profile of the drop, never the rows themselves. Suites are data
(`contracts/gx/<dataset>.json`); each expectation's `meta.severity` decides whether a failure
rejects the drop (`reject`) or is recorded as a warning (`warn`).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from mvg_sync.fileperms import private_dir, private_tree

SUITES_DIR = Path(__file__).resolve().parents[2] / "contracts" / "gx"
CHECKPOINT = "drop-profile"

# column watched for null share, and the status counted for the status mix, per dataset
WATCHED_NULLS = {"bookings": "resource_hsa_id", "booking_bases": "referral_id"}
STATUS_SHARE = {
    "bookings": ("status", "cancelled"),
    "events": ("event_type", "cancel"),
    "slots": ("status", "booked"),
}
PROFILE_SCHEMA = {
    "dataset": pl.String,
    "rows": pl.Int64,
    "previous_rows": pl.Int64,
    "row_ratio": pl.Float64,
    "quarantined_share": pl.Float64,
    "watched_null_share": pl.Float64,
    "status_share": pl.Float64,
    "extract_age_minutes": pl.Float64,
}


@dataclass
class QualityResult:
    """Failures reject the drop; warnings are recorded and shown."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_suites() -> list[dict[str, Any]]:
    """The suites as stored (one JSON file per dataset)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SUITES_DIR.glob("*.json"))]


@dataclass
class DatasetProfile:
    """Running aggregates of one dataset of a drop, fed batch by batch (no row data kept)."""

    dataset: str
    rows_in: int = 0
    accepted: int = 0
    status_matches: int = 0
    status_present: int = 0
    watched_nulls: int = 0

    def observe(self, frame: pl.DataFrame, rows_in: int) -> None:
        """Add one batch: `frame` its accepted rows, `rows_in` the rows it was read from."""
        self.rows_in += rows_in
        self.accepted += frame.height
        if self.dataset in STATUS_SHARE and frame.height:
            column, value = STATUS_SHARE[self.dataset]
            self.status_matches += int(frame.select((pl.col(column) == value).sum()).item())
            self.status_present += frame.height - frame[column].null_count()
        watched = WATCHED_NULLS.get(self.dataset)
        if watched:
            self.watched_nulls += frame[watched].null_count()

    def row(self, *, extracted_at: datetime, previous_rows: int | None, as_of: datetime) -> dict[str, object]:
        """The profile row: size, change, shares, freshness."""
        quarantined = self.rows_in - self.accepted
        share = None
        if self.dataset in STATUS_SHARE and self.accepted and self.status_present:
            share = self.status_matches / self.status_present
        watched = WATCHED_NULLS.get(self.dataset)
        return {
            "dataset": self.dataset,
            "rows": self.rows_in,
            "previous_rows": previous_rows,
            "row_ratio": self.rows_in / previous_rows if previous_rows else None,
            "quarantined_share": quarantined / self.rows_in if self.rows_in else 0.0,
            "watched_null_share": self.watched_nulls / self.accepted if watched and self.accepted else None,
            "status_share": share,
            "extract_age_minutes": (as_of - extracted_at).total_seconds() / 60,
        }


_LOCK = threading.Lock()
_CONTEXT: dict[str, Any] = {}


def _docs_site(docs_dir: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def _context(docs_dir: Path) -> Any:
    """One ephemeral GX context per process (creating it costs seconds); the docs site follows
    the state folder of the current call."""
    with _LOCK:
        if "context" in _CONTEXT:
            context = _CONTEXT["context"]
            if _CONTEXT["docs_dir"] != docs_dir:
                context.update_data_docs_site(site_name="mvg-sync", site_config=_docs_site(docs_dir))
                _CONTEXT["docs_dir"] = docs_dir
            return context
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        context = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        for site in list(context.get_site_names()):  # the default site would write to /tmp
            context.delete_data_docs_site(site)
        context.add_data_docs_site(site_name="mvg-sync", site_config=_docs_site(docs_dir))
        batch = (
            context.data_sources.add_pandas("drop-profiles")
            .add_dataframe_asset("profile")
            .add_batch_definition_whole_dataframe("whole-profile")
        )
        definitions = []
        for stored in load_suites():
            suite = context.suites.add(gx.ExpectationSuite(name=stored["name"]))
            for spec in stored["expectations"]:
                suite.add_expectation_configuration(
                    ExpectationConfiguration(
                        type=spec["type"], kwargs=spec["kwargs"],
                        meta={**spec["meta"], "dataset": stored["dataset"]},
                    )
                )
            suite.save()
            definitions.append(context.validation_definitions.add(
                gx.ValidationDefinition(name=stored["name"], data=batch, suite=suite)
            ))
        # Data Docs are built once per run below: the per-validation docs action re-renders
        # the site six times (measured 2 s of Jinja compiling per drop).
        context.checkpoints.add(gx.Checkpoint(name=CHECKPOINT, validation_definitions=definitions, actions=[]))
        _CONTEXT.update(context=context, docs_dir=docs_dir)
        return context


def run_checkpoint(profile: pl.DataFrame, docs_dir: Path) -> QualityResult:
    """Validate a drop profile through the checkpoint (Data Docs under `docs_dir`)."""
    context = _context(docs_dir)
    frame = profile.to_pandas()
    result = context.checkpoints.get(CHECKPOINT).run(batch_parameters={"dataframe": frame})
    private_dir(docs_dir)
    context.build_data_docs(site_names=["mvg-sync"], resource_identifiers=list(result.run_results))
    private_tree(docs_dir)  # GX writes its pages 0666 & ~umask; owner-only (issue 14)
    outcome = QualityResult()
    for run in result.run_results.values():
        for item in run.results:
            if item.success:
                continue
            config = item.expectation_config
            meta = config.meta or {}
            text = f"{meta.get('dataset', '?')}: {config.kwargs.get('column')} outside " \
                   f"[{config.kwargs.get('min_value')}, {config.kwargs.get('max_value')}] ({meta.get('why', '')})"
            (outcome.failures if meta.get("severity") == "reject" else outcome.warnings).append(text)
    return outcome
