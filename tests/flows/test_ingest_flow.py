"""End to end through the Prefect task: generated drops in, snapshots and a counts artifact out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from prefect import flow
from prefect.client.orchestration import get_client

from mvg_sync.generator import generate_region, next_region, write_drop
from mvg_sync.ingest import describe_state
from mvg_sync.store.drops import load_snapshot
from tasks.ingest import ARTIFACT_KEY, ingest_drops

AS_OF = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)


def test_generated_drops_ingested_through_the_task(prefect_harness, tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    region = generate_region(seed=3, n_bookings=2000, as_of=AS_OF)
    write_drop(region, landing, encoding="windows-1252")
    later, _truth = next_region(region, seed=4, as_of=AS_OF + timedelta(minutes=5), creations=5, cancellations=3)
    write_drop(later, landing, encoding="utf-8")

    @flow
    def ingest_only(as_of: datetime):
        return ingest_drops(landing, state, as_of)

    report = ingest_only(AS_OF + timedelta(minutes=6))
    assert [d.outcome for d in report.drops] == ["accepted", "accepted"], [d.reason for d in report.drops]
    bookings = load_snapshot(state, "bookings")
    counts = next(f for f in report.drops[-1].files if f.file == "bokningar.csv")
    assert bookings.height == counts.accepted == counts.rows_in - counts.quarantined
    assert bookings["start_at"].dtype.time_zone == "UTC"
    assert "accepted 2" in describe_state(state)

    async def latest_artifact():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    artifacts = [a for a in asyncio.run(latest_artifact()) if a.key == ARTIFACT_KEY]
    assert artifacts, "no ingest-counts artifact"
    rows = artifacts[0].data
    rows = rows if isinstance(rows, list) else json.loads(rows)
    assert {r["file"] for r in rows} >= {"bokningar.csv", "tider.csv"}
    assert all("Personnummer" not in str(r) for r in rows)

    assert ingest_only(AS_OF + timedelta(minutes=7)).drops == []  # nothing new: nothing changes
