"""All four control reports as `mvg-sync report` writes them, opened in headless Chromium (issue 6).

A real state folder: a generated region's drop is ingested and synced to the sandbox by the
booking_sync flow (so tickets and sync health have content), then the report command runs.
Each HTML page must draw every table and chart with no console error and no request; a
screenshot of each is kept in `test-artifacts/report-cli-<name>.png`.
"""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from mvg_sync.clinic24.sandbox.runner import start_sandbox
from mvg_sync.generator import generate_region, write_sandbox_seed
from mvg_sync.ingest import ingest_pending
from mvg_sync.reports.cli import build_control_reports, load_datasets, period_from_args
from mvg_sync.timeutil import STOCKHOLM
from tests.e2e.chromium import assert_report_rendered, launch_chromium, render_page
from tests.e2e.sync_world import World

# Before any day this test will run on: the sync stamps its outbox with the wall clock, and a
# drop extracted after that clock would give report 4 negative latencies.
AS_OF = datetime(2026, 11, 25, 8, 0, tzinfo=STOCKHOLM)
REPORTS = ("eservice", "hsl_coverage", "tickets", "sync_health")
AS_OF_DAY = AS_OF.astimezone(STOCKHOLM).date()


def _outbox_days(state: Path) -> tuple[date, date]:
    """Local first and last day the sync wrote changes (the outbox is stamped by the wall clock)."""
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        first, last = con.execute("SELECT min(created_at), max(created_at) FROM outbox").fetchone()
    finally:
        con.close()
    assert first is not None, "the sync wrote no outbox entries"
    return first.astimezone(STOCKHOLM).date(), last.astimezone(STOCKHOLM).date()


@pytest.fixture(scope="module")
def written(tmp_path_factory, prefect_harness):
    """(report folder, the command's stdout, the reports rebuilt from the same state and period)."""
    from flows.booking_sync import booking_sync
    from mvg_sync.cli import main

    root = tmp_path_factory.mktemp("reports-e2e")
    region = generate_region(seed=7, n_bookings=300, as_of=AS_OF)
    units, guardians = write_sandbox_seed(region, root / "seed")
    sandbox = start_sandbox(root / "sandbox", units=units, guardians=guardians)
    world = World(root, root / "landing", root / "state", sandbox, region)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in world.env().items():
                mp.setenv(name, value)
            world.drop(world.region)
            ingested = ingest_pending(world.landing, world.state, as_of=AS_OF)
            assert [d.outcome for d in ingested.drops] == ["accepted"]
            synced = booking_sync(as_of=AS_OF.isoformat(), return_state=True)
            assert synced.is_completed(), synced.message

            first, last = _outbox_days(world.state)
            # two weeks of registrations up to as_of, stretched to the days the sync ran
            date_from = min(first, AS_OF_DAY) - timedelta(days=13)
            date_to = max(last, AS_OF_DAY)
            # what `--from/--to` mean to the command
            period = period_from_args(argparse.Namespace(date_from=date_from.isoformat(), date_to=date_to.isoformat(),
                                                         booked_from=None, booked_to=None), AS_OF)
            out = root / "out"
            stdout = io.StringIO()
            with redirect_stdout(stdout):
                code = main(["report", "--as-of", AS_OF.isoformat(),
                             "--from", date_from.isoformat(), "--to", date_to.isoformat(),
                             "--out", str(out)])
            assert code == 0
            reports = build_control_reports(world.state, load_datasets(world.state),
                                            as_of=AS_OF, period=period)
    finally:
        world.sandbox.stop()
    return out, stdout.getvalue(), {r.name: r for r in reports}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile")) as cdp:
        yield cdp


def test_report_command_writes_the_four_pages(written):
    out, stdout, reports = written
    listed = [Path(line) for line in stdout.splitlines()]
    assert [p for p in listed if p.suffix == ".html"] == [out / f"{n}.html" for n in REPORTS]
    assert all(p.is_file() for p in listed)
    assert tuple(reports) == REPORTS


@pytest.mark.slow
@pytest.mark.parametrize("name", REPORTS)
def test_report_page_from_the_command_renders_offline_in_chromium(browser, written, name):
    out, _, reports = written
    report = reports[name]
    page = render_page(browser, out / f"{name}.html", f"report-cli-{name}.png")
    assert_report_rendered(page, report)
    # a page of empty tables would pass the checks above: each report must show synced data
    assert any(t["declared"] > 0 for t in page.state["tables"]), name
    assert any(c["marks"] > 0 for c in page.state["charts"]), name
