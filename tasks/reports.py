"""Prefect tasks of the report flows: compute and write the reports, publish patient-free artifacts."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mvg_sync.reports.cli import (
    build_control_reports,
    build_hsl_outlook,
    default_period,
    load_datasets,
)
from mvg_sync.reports.control import write_reports
from mvg_sync.reports.model import Report


def _clean(value: object) -> object:
    # Table artifacts refuse NaN, and None shows as "None": both become empty text.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _summary(reports: list[Report], paths: list[Path], folder: Path) -> dict:
    """Aggregates only: each report's facts and row counts per view, and the files written.

    Facts and view names are counts, periods and unit ids by construction; no frame cell
    is copied, so no personnummer or name can reach the artifact.
    """
    rows: list[dict[str, object]] = []
    for report in reports:
        rows += [{"report": report.name, "measure": k, "value": _clean(v)} for k, v in report.facts]
        rows += [{"report": report.name, "measure": f"rows: {v.name}", "value": v.frame.height}
                 for v in report.views]
    return {"folder": str(folder), "files": [str(p) for p in paths], "aggregates": rows,
            "titles": {r.name: r.title for r in reports}}


@task(name="write-control-reports", cache_policy=NO_CACHE)
def write_control_reports(state_dir: Path, report_dir: Path, as_of: datetime, period: str) -> dict:
    """Reports 1-4 for `period` (`yesterday` / `last_week`) into `report_dir/<period>/`."""
    folder = report_dir / period
    datasets = load_datasets(state_dir)
    reports = build_control_reports(state_dir, datasets, as_of=as_of,
                                    period=default_period(as_of, period))
    paths = write_reports(reports, folder)
    get_run_logger().info("Wrote %d report files to %s", len(paths), folder)
    return _summary(reports, paths, folder)


@task(name="write-hsl-outlook", cache_policy=NO_CACHE)
def write_hsl_outlook(state_dir: Path, report_dir: Path, as_of: datetime, days: int) -> dict:
    """Report 2 for today and the next days into `report_dir/hsl_next_<days>_days/`."""
    folder = report_dir / f"hsl_next_{days}_days"
    report = build_hsl_outlook(load_datasets(state_dir), as_of=as_of, days=days)
    paths = write_reports([report], folder)
    get_run_logger().info("Wrote %d report files to %s", len(paths), folder)
    return _summary([report], paths, folder)


def summary_markdown(summary: dict, heading: str) -> str:
    """The artifact page: per report its facts and view sizes, then the files (paths only)."""
    lines = [f"# {heading}", ""]
    for name, title in summary["titles"].items():
        lines += [f"## {title} (`{name}`)", "", "| measure | value |", "|---|---|"]
        lines += [f"| {r['measure']} | {r['value']} |" for r in summary["aggregates"] if r["report"] == name]
        lines.append("")
    lines += ["## Files", "", *(f"- `{p}`" for p in summary["files"])]
    return "\n".join(lines)


@task(name="publish-report-artifacts", cache_policy=NO_CACHE)
def publish_report_artifacts(summary: dict, key: str, heading: str) -> None:
    """A markdown and a table artifact (`<key>`, `<key>-counts`): aggregates and file paths."""
    create_markdown_artifact(key=key, markdown=summary_markdown(summary, heading),
                             description=f"{heading}: aggregates and files written")
    table = [*summary["aggregates"],
             *({"report": "files", "measure": "path", "value": p} for p in summary["files"])]
    create_table_artifact(key=f"{key}-counts", table=table, description=heading)
