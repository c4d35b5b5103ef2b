"""Safe concurrency (issue 13): `status` every 0.5 s and a `report` during a sync of a few thousand changes.

Each is its own process, as operations run them. The bar: no command and no run fails
because another holds the state store; every `status` answers, within 2 s of waiting for
the store or saying that it waits (mvg_sync.store: bounded waits, notice after 1 s); and
the sync leaves Clinic24 exactly as an undisturbed run of the same drop does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.sync_world import AS_OF, comparable, make_world, prefect_env

N_BOOKINGS = 4000
POLL_S = 0.5
WAIT_NOTICE = "in use by another process"


def run_sync(world) -> subprocess.CompletedProcess:
    return world.cli("sync", "--as-of", AS_OF.isoformat(), extra_env=prefect_env(), timeout=900)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, prefect_harness):
    world = make_world(tmp_path_factory.mktemp("undisturbed"), n_bookings=N_BOOKINGS, seed=13)
    try:
        world.drop(world.region)
        done = run_sync(world)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        yield comparable(world)
    finally:
        world.sandbox.stop()


def _timed(world, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    answer = world.cli(*args, extra_env=prefect_env(), timeout=600)
    return time.monotonic() - started, answer


def test_status_and_report_during_a_sync_all_answer_and_change_nothing(tmp_path, undisturbed, backend):
    from mvg_sync import store
    from mvg_sync.sync import health

    world = make_world(tmp_path, n_bookings=N_BOOKINGS, seed=13)
    statuses: list[tuple[float, subprocess.CompletedProcess]] = []
    reports: list[subprocess.CompletedProcess] = []
    reads: list[tuple[float, list[str]]] = []  # the store's own answer time, and what it said
    try:
        world.drop(world.region)
        world.state.mkdir()  # as deployed: the folder exists, no sync has run yet
        idle = _timed(world, "status")
        assert idle[1].returncode == 0 and f"no state yet at {world.state}" in idle[1].stdout
        assert not store.exists(world.state), "status must not create a store"
        env = {**os.environ, **world.env(), **prefect_env()}
        sync = subprocess.Popen(
            [sys.executable, "-m", "mvg_sync.cli", "sync", "--as-of", AS_OF.isoformat()],
            env=env, cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

        def cli_status_loop() -> None:
            """`mvg-sync status` in its own process, again 0.5 s after each answer; one report."""
            while sync.poll() is None:
                ran = _timed(world, "status", "--json")
                statuses.append(ran)
                ready = ran[1].returncode == 0 and json.loads(ran[1].stdout)["snapshots"].get("bookings")
                if ready and not reports:  # the report needs the snapshots
                    reports.append(world.cli("report", "--as-of", AS_OF.isoformat(), "--out",
                                             str(tmp_path / "reports"), extra_env=prefect_env(), timeout=600))
                time.sleep(POLL_S)

        operator = threading.Thread(target=cli_status_loop)
        operator.start()
        # status's own reads, timed from this process every 0.5 s (a loaded machine makes a
        # whole `mvg-sync status` process slow to start; the bar is the store's answer)
        while sync.poll() is None:
            if store.exists(world.state):
                notes: list[str] = []
                started = time.monotonic()
                with store.connect(world.state, read_only=True, notice=notes.append) as con:
                    health.open_items(con)
                reads.append((time.monotonic() - started, notes))
            time.sleep(POLL_S)
        out, err = sync.communicate(timeout=60)
        operator.join(timeout=600)
        final = comparable(world)
    finally:
        world.sandbox.stop()

    latencies = sorted(s for s, _ in reads)
    walls = sorted(s for s, _ in statuses)
    said = sum(1 for _, notes in reads if notes)
    print(f"\nduring the sync: {len(reads)} store reads, max {latencies[-1]:.2f} s, median "
          f"{latencies[len(latencies) // 2]:.2f} s, {said} said they waited; {len(statuses)} `mvg-sync status` "
          f"processes, wall max {walls[-1]:.2f} s (idle {idle[0]:.2f} s), "
          f"{sum(1 for _, r in statuses if WAIT_NOTICE in r.stderr)} said they waited; "
          f"report rc {[r.returncode for r in reports]}")
    assert sync.returncode == 0, out + err[-3000:]
    failed = [r for _, r in statuses if r.returncode != 0]
    assert not failed, failed[0].stdout + failed[0].stderr[-2000:]
    assert len(statuses) >= 5 and len(reads) >= 10, (len(statuses), len(reads))
    assert reports and reports[0].returncode == 0, (reports[0].stdout + reports[0].stderr[-2000:]) if reports else "no report ran"
    assert all(s <= 2.0 or notes for s, notes in reads), [(round(s, 2), n) for s, n in reads if s > 2.0]
    assert final == undisturbed, "the disturbed sync must leave Clinic24 as the undisturbed one"
    assert len(undisturbed) >= 2000, f"only {len(undisturbed)} resources: not a sync of a few thousand changes"
    assert (tmp_path / "reports").is_dir()
