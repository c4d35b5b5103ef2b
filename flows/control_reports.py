"""control_reports: the four control reports for yesterday (daily 06:00) or last week (Mondays 06:00)."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from mvg_sync.logfilter import install_pii_filter
from mvg_sync.settings import load_settings
from mvg_sync.timeutil import resolve_as_of
from tasks.reports import publish_report_artifacts, write_control_reports


@flow(name="control_reports", flow_run_name="control-reports {period}")
def control_reports(period: Literal["yesterday", "last_week"] = "yesterday", as_of: str | None = None) -> dict:
    """Write reports 1-4 for the period into MVG_REPORT_DIR/<period>/ and publish their aggregates.

    `as_of` (ISO date-time with offset) is "now"; the period is the local day or ISO week
    before it. Returns the files written and patient-free aggregates.
    """
    install_pii_filter()
    settings = load_settings()
    now = resolve_as_of(as_of)
    written = write_control_reports(settings.state_dir, settings.report_dir, now, period)
    publish_report_artifacts(written, key=f"control-reports-{period.replace('_', '-')}",
                             heading=f"Control reports ({period})")
    return written
