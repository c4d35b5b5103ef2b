"""The long-poll window is counted from the run's scheduled start (issue 12: prefect.yaml's ENQUEUE).

A run queued behind the previous one's last cycle, or behind a run paused for approval, polls
only what is left of its own window, so queued runs drain instead of each polling 290 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect import flow

from flows.booking_sync import _scheduled_start, window_left
from mvg_sync.timeutil import utc_now

NOW = datetime(2026, 12, 3, 8, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(("scheduled", "left"), [
    (NOW - timedelta(seconds=10), 280.0),  # a worker's usual start-up
    (NOW - timedelta(seconds=200), 90.0),  # queued behind a long last cycle
    (NOW - timedelta(hours=3), 0.0),  # queued behind a 3-hour approval pause: one cycle, then done
    (NOW + timedelta(seconds=2), 290.0),  # the worker's clock a little behind the server's
    (None, 290.0),  # no run context
])
def test_the_window_left_is_counted_from_the_scheduled_start(scheduled, left):
    assert window_left(290.0, scheduled, NOW) == left


@flow
def _reads_its_schedule() -> tuple[datetime | None, datetime]:
    return _scheduled_start(), utc_now()


def test_a_flow_run_reads_its_scheduled_start(prefect_harness):
    scheduled, now = _reads_its_schedule()
    assert scheduled is not None
    assert abs((now - scheduled).total_seconds()) < 30
    assert 260.0 < window_left(290.0, scheduled, now) <= 290.0
