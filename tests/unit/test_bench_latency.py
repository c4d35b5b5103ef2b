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


def test_latency_from_landing_reads_a_real_store_with_the_r11_sql(tmp_path):
    # The bench ran 8 minutes and then failed on the R11 query's `done` parameter (session 5):
    # its figures come from the store's own SQL, so they are checked against a real store here.
    from datetime import UTC, datetime, timedelta

    import duckdb

    from bench.sync_latency import landed_latency
    from mvg_sync.store import outbox as store

    extracted, landed = datetime(2026, 11, 26, 8, 0, tzinfo=UTC), datetime(2026, 11, 26, 8, 0, 5, tzinfo=UTC)
    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    store.ensure_schema(con)
    for i, seconds in enumerate([7, 9, 11]):
        con.execute(
            "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, content_hash, "
            "source_sequence, payload, target_status, status, last_outcome, extracted_at, created_at, settled_at) "
            "VALUES (?, 'p', 'Appointment', ?, 'create', 'h', 1, '{}', 'booked', 'done', 'accepted', ?, ?, ?)",
            [f"c{i}", f"b{i}", extracted, extracted, extracted + timedelta(seconds=seconds)],
        )
    con.close()
    figures = landed_latency(tmp_path, [{"extracted_at": extracted, "landed_at": landed}],
                             extracted - timedelta(hours=1))
    assert figures["accepted"] == 3
    assert figures["p50_s"] == 4.0  # 9 s from extraction, 4 s from landing
    assert figures["max_s"] == 6.0


def test_the_bench_plays_the_collision_strategy_of_prefect_yaml():
    from bench.sync_latency import collision_strategy

    shipped = PREFECT_YAML.read_text(encoding="utf-8")
    assert collision_strategy(shipped) == "ENQUEUE"
    assert deployment_schedule(shipped) == (300.0, 290.0)
    cancel = YAML.format(cron="* * * * *", wait=40).replace(
        "    schedules:\n", "    concurrency_limit: {limit: 1, collision_strategy: CANCEL_NEW}\n    schedules:\n", 1)
    assert collision_strategy(cancel) == "CANCEL_NEW"
    assert collision_strategy(YAML.format(cron="* * * * *", wait=40)) == "ENQUEUE"  # Prefect's default


def test_a_phase_counts_tasks_that_ran_side_by_side_once():
    """The ticket plan runs beside the booking plan: the plan phase is their union, not their sum."""
    from datetime import UTC, datetime, timedelta

    from bench.sync_latency import covered_s

    t0 = datetime(2026, 12, 4, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    assert covered_s([(at(0), at(1.0)), (at(0.1), at(0.6)), (at(0.8), at(1.5)), (at(2), at(2.5))]) == 2.0
    assert covered_s([(at(0), at(1)), (at(1), at(2))]) == 2.0
    assert covered_s([]) == 0.0


def test_a_task_submitted_beside_ingest_adds_to_the_plan_only_what_outlasts_ingest():
    from datetime import UTC, datetime, timedelta

    from bench.sync_latency import phase_split

    t0 = datetime(2026, 12, 4, tzinfo=UTC)

    def call(name: str, start: float, end: float, *, submitted: bool = False) -> dict:
        return {"name": name, "start": t0 + timedelta(seconds=start), "end": t0 + timedelta(seconds=end),
                "outer_s": end - start, "inner_s": end - start, "submitted": submitted}

    calls = [
        call("fetch_clinic24_units", 1.0, 4.1, submitted=True),  # waited for when ingest ends
        call("ingest_drops", 1.0, 4.0),
        call("draft_ticket_plan", 4.1, 5.0, submitted=True),
        call("draft_booking_plan", 4.1, 5.1),
        call("push_outbox", 5.1, 7.1),
    ]
    runs = [{"cycles": [{"start": t0, "end": t0 + timedelta(seconds=10)}]}]
    split = phase_split({"landed_at": (t0 + timedelta(seconds=0.5)).isoformat()}, runs, calls)
    assert round(split["wait for a cycle"], 6) == 0.5
    assert round(split["ingest"], 6) == 3.0
    assert round(split["plan"], 6) == 1.1  # 0.1 s of units after ingest, the booking plan's 1.0 s
    assert round(split["push"], 6) == 2.0
