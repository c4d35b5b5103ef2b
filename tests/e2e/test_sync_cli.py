"""`mvg-sync` as operations run it: guard hold and approve, status, reconcile, redrive (issue 4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mvg_sync.generator import next_region
from tests.e2e.sync_world import AS_OF, make_world


@pytest.fixture
def world(tmp_path, prefect_harness):
    w = make_world(tmp_path)
    yield w
    w.sandbox.stop()


def cli(world, *args):
    from prefect.settings import PREFECT_API_URL

    return world.cli(*args, extra_env={"PREFECT_API_URL": PREFECT_API_URL.value()})


def cancelled(world) -> int:
    return sum(1 for a in world.appointments().values() if a["status"] == "cancelled")


def test_mass_cancellation_is_held_with_exit_3_until_approved(world):
    world.drop(world.region)
    assert cli(world, "sync", "--as-of", AS_OF.isoformat()).returncode == 0
    before = world.appointments()
    later = AS_OF + timedelta(minutes=5)
    region, _ = next_region(world.region, seed=5, as_of=later)
    truncated = replace(region, bookings=region.bookings.head(region.bookings.height // 2))
    held_drop = world.drop(truncated).name

    held = cli(world, "sync", "--as-of", later.isoformat())
    assert held.returncode == 3, held.stdout + held.stderr[-2000:]
    assert f"mvg-sync approve {held_drop}" in held.stdout
    assert world.appointments() == before, "a held drop must push nothing"
    status = cli(world, "status")
    assert status.returncode == 0 and held_drop in status.stdout and "Awaiting approval" in status.stdout

    assert cli(world, "approve", "20990101T000000-000999").returncode == 1
    approved = cli(world, "approve", held_drop)
    assert approved.returncode == 0, approved.stdout
    pushed = cli(world, "sync", "--as-of", later.isoformat())
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr[-2000:]
    assert cancelled(world) > sum(1 for a in before.values() if a["status"] == "cancelled") + 20


def test_reconcile_reports_drift_and_the_next_sync_repairs_it(world):
    world.drop(world.region)
    assert cli(world, "sync", "--as-of", AS_OF.isoformat()).returncode == 0
    clean = cli(world, "reconcile")
    assert clean.returncode == 0, clean.stdout + clean.stderr[-2000:]
    stored = world.appointments()
    world.sandbox.reset()  # Clinic24 lost everything: drift of every appointment
    drift = cli(world, "reconcile")
    assert drift.returncode == 4, drift.stdout + drift.stderr[-2000:]
    assert f'"missing_in_clinic24": {len(stored)}' in drift.stdout
    assert cli(world, "sync", "--as-of", (AS_OF + timedelta(minutes=1)).isoformat()).returncode == 0
    assert {k: a["status"] for k, a in world.appointments().items()} == {k: a["status"] for k, a in stored.items()}
    assert cli(world, "reconcile").returncode == 0


def test_redrive_with_nothing_dead_is_a_quiet_success(world):
    world.drop(world.region)
    assert cli(world, "sync", "--as-of", AS_OF.isoformat()).returncode == 0
    done = cli(world, "redrive")
    assert done.returncode == 0 and "0 dead-lettered changes re-queued" in done.stdout
