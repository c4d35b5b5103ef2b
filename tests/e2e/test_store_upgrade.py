"""A state store written by release d2a810e, restored into another folder: upgraded on open, and a sync on it works."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from mvg_sync.generator import next_region
from mvg_sync.store import drops as state
from mvg_sync.store import migrations
from tests.e2e.sync_world import World, prefect_env
from tests.fixtures.store_v1.make import COUNTS, LAST_AS_OF, chain
from tests.unit.test_state_store import restore_v1


@pytest.fixture
def world(tmp_path, prefect_harness):
    from mvg_sync.clinic24.sandbox.runner import start_sandbox
    from mvg_sync.generator import write_sandbox_seed

    regions = chain()
    units, guardians = write_sandbox_seed(regions[0], tmp_path / "seed")
    sandbox = start_sandbox(tmp_path / "sandbox", units=units, guardians=guardians)
    w = World(tmp_path, tmp_path / "landing", restore_v1(tmp_path / "restored" / "state"), sandbox, regions[-1])
    w.landing.mkdir()
    yield w
    sandbox.stop()


def test_a_sync_on_an_upgraded_v1_store_pushes_the_next_drop(world):
    later = LAST_AS_OF + timedelta(minutes=5)
    region, truth = next_region(world.region, seed=9, as_of=later, creations=4, updates=3)
    world.drop(region)
    done = world.cli("sync", "--as-of", later.isoformat(), extra_env=prefect_env())
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]

    con = duckdb.connect(str(world.state / "state.duckdb"), read_only=True)
    try:
        assert migrations.version(con) == migrations.CURRENT
        drops = con.execute("SELECT count(*) FROM drops").fetchone()[0]
        pointers = state.snapshot_pointers(con)
        record = dict(con.execute(
            "SELECT key, status FROM clinic24_record WHERE resource_type = 'Appointment'").fetchall())
    finally:
        con.close()
    assert drops == COUNTS["drops"] + 1, "the next drop was ingested on top of the upgraded store"
    assert all(not p.startswith("/") for _, p in pointers.values()), pointers
    # This sandbox is new (the store's Clinic24 is gone): creates and updates are full upserts.
    stored = world.appointments()
    pushed = [str(b) for b, kind in truth.select("booking_id", "expected_kind").iter_rows()
              if kind in ("create", "update")]
    assert len(pushed) == 7, truth
    for booking_id in pushed:
        assert stored[booking_id]["status"] == "booked", booking_id
        assert record[booking_id] == "booked", booking_id
