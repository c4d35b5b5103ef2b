"""hsl_coverage: web-slot coverage (R20-R23) for today and the next 13 days, daily after the 07:00 release."""

from __future__ import annotations

from prefect import flow

from mvg_sync.logfilter import install_pii_filter
from mvg_sync.settings import load_settings
from mvg_sync.timeutil import resolve_as_of
from tasks.reports import publish_report_artifacts, write_hsl_outlook

OUTLOOK_DAYS = 14


@flow(name="hsl_coverage", flow_run_name="hsl-coverage")
def hsl_coverage(as_of: str | None = None) -> dict:
    """Write report 2 for the 14 days from today into MVG_REPORT_DIR/hsl_next_14_days/ and publish it.

    Today is the local date of `as_of` (ISO date-time with offset; default now).
    """
    install_pii_filter()
    settings = load_settings()
    now = resolve_as_of(as_of)
    written = write_hsl_outlook(settings.state_dir, settings.report_dir, now, OUTLOOK_DAYS)
    publish_report_artifacts(written, key="hsl-coverage", heading="HSL web-slot coverage, next 14 days")
    return written
