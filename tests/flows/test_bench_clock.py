"""bench.sync_latency's task clock times a real flow whose tasks are called, submitted and waited
for, as booking_sync's are (it broke the bench twice when the flow began to submit tasks)."""

from __future__ import annotations

from bench.sync_latency import TaskClock
from tests.flows import timed_flow


def test_the_clock_times_called_submitted_and_waited_tasks(prefect_harness, monkeypatch):
    clock = TaskClock()
    for name in ("slow", "quick"):
        monkeypatch.setattr(timed_flow, name, getattr(timed_flow, name))  # restored after the test
    clock.install(timed_flow)
    assert timed_flow.cycle() == (0.3, 0.2, "done")
    by_name = sorted((c["name"], c["submitted"]) for c in clock.calls)
    assert by_name == [("quick", False), ("slow", True), ("slow", True)]
    assert all("end" in c and c["outer_s"] >= c["inner_s"] > 0 for c in clock.calls), clock.calls
    short, long = sorted(c["inner_s"] for c in clock.calls if c["name"] == "slow")
    assert short >= 0.2 and long >= 0.3  # each call got its own function's time
