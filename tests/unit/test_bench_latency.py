"""bench.sync_latency's reading of prefect.yaml: the bench measures the deployment as shipped (issue 12 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sync_latency import PREFECT_YAML, deployment_schedule

YAML = """
deployments:
  - name: booking-sync
    parameters: {{wait_for_drop_s: {wait}}}
    schedules:
      - cron: "{cron}"
        timezone: Europe/Stockholm
  - name: other
    schedules: [{{cron: "0 6 * * *"}}]
"""


@pytest.mark.parametrize(("cron", "wait", "expected"), [
    ("* * * * *", 40, (60.0, 40.0)),
    ("*/5 * * * *", 250, (300.0, 250.0)),
])
def test_interval_and_long_poll_come_from_the_deployment(cron, wait, expected):
    assert deployment_schedule(YAML.format(cron=cron, wait=wait)) == expected


def test_a_schedule_it_cannot_turn_into_an_interval_is_refused():
    with pytest.raises(ValueError, match="not every N minutes"):
        deployment_schedule(YAML.format(cron="0 6 * * *", wait=0))
    with pytest.raises(ValueError, match="no deployment named 'missing'"):
        deployment_schedule(YAML.format(cron="* * * * *", wait=0), name="missing")


def test_the_shipped_prefect_yaml_is_readable():
    interval, wait = deployment_schedule(Path(PREFECT_YAML).read_text(encoding="utf-8"))
    assert interval >= 60 and 0 < wait
