"""Report pages in headless Chromium: every table and chart drawn, no console error, no request.

Reports 1-2 from sample data; `test_reports_rendered.py` covers all four as `mvg-sync report`
writes them. Chromium is driven by `tests/e2e/chromium.py`; screenshots land in `test-artifacts/`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mvg_sync.reports.control import eservice_and_hsl_reports, write_reports
from mvg_sync.reports.samples import sample_datasets
from tests.e2e.chromium import assert_report_rendered, launch_chromium, render_page


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    datasets = sample_datasets(units=6, events=300, event_days=28, slot_days=28)
    reports = eservice_and_hsl_reports(
        datasets, as_of=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        registered_from=date(2026, 11, 2), registered_to=date(2026, 11, 29),
    )
    write_reports(reports, out)
    return out, {r.name: r for r in reports}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile")) as cdp:
        yield cdp


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eservice", "hsl_coverage"])
def test_report_page_renders_offline_in_chromium(browser, report_dir, name):
    out, reports = report_dir
    page = render_page(browser, out / f"{name}.html", f"report-{name}.png")
    assert_report_rendered(page, reports[name])
