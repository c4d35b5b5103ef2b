"""Crash safety: SIGKILL `mvg-sync sync` at its worst moments, rerun, compare with a clean run.

Issue 4: "the sandbox's final state equals an undisturbed run, with no blind cancel and no
change lost". Each scenario gets its own world built from the same seed, so the clean
run's Clinic24 state is the reference for every crashed one.
"""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest

from mvg_sync.generator import next_region
from tests.e2e.sync_world import AS_OF, comparable, make_world, prefect_env

LATER = AS_OF + timedelta(minutes=5)


def two_drops(world) -> None:
    """An initial drop and a next one with every kind of change, both pending at once."""
    world.drop(world.region)
    region, _ = next_region(
        world.region, seed=3, as_of=LATER, creations=5, rebookings=4, cancellations=3,
        vanishings=2, scope_changes=2, updates=3,
    )
    world.drop(region)


def sync(world, *, crash_at: str | None = None, extra_env: dict | None = None):
    env = {**prefect_env(), **(extra_env or {})}
    if crash_at:
        env["MVG_CRASH_AT"] = crash_at
    return world.cli("sync", "--as-of", LATER.isoformat(), extra_env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, prefect_harness):
    """The undisturbed run: two cycles (the second must send nothing). On the file store (it is
    set up before the function-scoped `backend`): a crashed run on either backend must equal it."""
    world = make_world(tmp_path_factory.mktemp("clean"))
    try:
        two_drops(world)
        first = sync(world)
        assert first.returncode == 0, first.stderr[-3000:]
        second = sync(world)
        assert second.returncode == 0, second.stderr[-3000:]
        yield comparable(world)
    finally:
        world.sandbox.stop()


# Every crash point runs on both stores (`backend`, issue 15.2): measured on this 2-core machine,
# a PostgreSQL variant takes about as long as its DuckDB one (this file: 226 s vs 221 s, plus the
# DuckDB-only reference), so no subset was needed to stay inside CI's 90 minutes.
@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_at",
    [
        "before-record-drop",  # first drop's snapshots staged, the drop not recorded
        "after-drop:1",        # first drop recorded, the second not yet read
        "after-plan",          # outbox written, nothing pushed
        "before-settle:1",     # Clinic24 applied the first batch, answer not recorded
        "after-settle:1",      # first batch recorded, the rest not sent
        "before-settle:2",     # mid-way: second batch applied, not recorded
    ],
)
def test_crash_then_rerun_equals_the_undisturbed_run(tmp_path, reference, crash_at, backend):
    world = make_world(tmp_path)
    try:
        two_drops(world)
        crashed = sync(world, crash_at=crash_at)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
        rerun = sync(world)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert comparable(world) == reference
    finally:
        world.sandbox.stop()


@pytest.mark.slow
def test_crash_with_sandbox_faults_still_converges(tmp_path, reference, backend):
    faults = {"fail_before_share": 0.2, "fail_after_share": 0.1, "throttle_share": 0.05, "seed": 11}
    world = make_world(tmp_path, faults=faults)
    try:
        two_drops(world)
        crashed = sync(world, crash_at="before-settle:2")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
        for _ in range(3):  # transient failures may leave entries pending for the next run
            rerun = sync(world)
            assert rerun.returncode == 0, rerun.stderr[-3000:]
        world.sandbox.set_faults(fail_before_share=0, fail_after_share=0, throttle_share=0)
        assert sync(world).returncode == 0
        assert comparable(world) == reference
    finally:
        world.sandbox.stop()
