"""`mvg-sync` as an operator meets it (issues 11.3, 11.7, 11.8, 14): one-line failures with the
next step, exit 1 while work is left, status as text and JSON, quiet reconcile, progress."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mvg_sync.clinic24.sandbox.runner import start_sandbox
from tests.e2e.sync_world import AS_OF, make_world, prefect_env


@pytest.fixture
def world(tmp_path, prefect_harness):
    w = make_world(tmp_path)
    yield w
    w.sandbox.stop()


def cli(world, *args, **env):
    return world.cli(*args, extra_env={**prefect_env(), **env})


def one_line_error(result) -> str:
    """The failure as printed: `error: …` and a `hint: …`, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "hint: " in result.stderr, result.stderr[-3000:]
    return errors[0]


def test_missing_folders_are_errors_naming_the_folder_and_variable(tmp_path):
    from tests.e2e.sync_world import World

    world = World(tmp_path, tmp_path / "no-landing", tmp_path / "state", None, None)  # type: ignore[arg-type]
    world.env = lambda: {"MVG_LANDING_DIR": str(tmp_path / "no-landing"),  # type: ignore[method-assign]
                         "MVG_STATE_DIR": str(tmp_path / "no-parent" / "state")}
    started = time.monotonic()
    line = one_line_error(world.cli("sync"))
    assert "MVG_LANDING_DIR" in line and str(tmp_path / "no-landing") in line
    (tmp_path / "no-landing").mkdir()
    line = one_line_error(world.cli("status"))
    assert "MVG_STATE_DIR" in line and str(tmp_path / "no-parent" / "state") in line
    line = one_line_error(world.cli("sync"))
    assert "MVG_STATE_DIR" in line
    line = one_line_error(world.cli("report", "--unit", "NOPE"))
    assert "MVG_STATE_DIR" in line
    assert time.monotonic() - started < 120  # four processes, no Prefect, no network


def test_operator_view_after_a_sync(world):
    world.drop(world.region)
    synced = cli(world, "sync", "-v", "--as-of", AS_OF.isoformat())
    assert synced.returncode == 0, synced.stdout + synced.stderr[-3000:]
    assert "telemetry" not in (synced.stdout + synced.stderr).lower()
    progress = [line for line in synced.stderr.splitlines() if line.startswith("push: ")]
    assert progress and "/s" in progress[0] and "changes" in progress[-1], synced.stderr[-3000:]
    total = json.loads(synced.stdout.strip().splitlines()[-1])["push"]["sent"]
    assert f"{total:,}/{total:,} changes (100 %)" in progress[-1]

    status = cli(world, "status")
    assert status.returncode == 0, status.stderr[-3000:]
    lines = status.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert not any(line.startswith("#") or line.startswith("|") for line in lines), status.stdout
    held = [line for line in lines if line.strip().startswith("R12")]
    data = json.loads(cli(world, "status", "--json").stdout)
    r12 = [h for h in data["holds"] if h["rule"] == "R12"]
    assert len(held) == len(r12) and r12, status.stdout  # one R12 line per unit, R12 listed once
    assert data["holds"][0]["rule"] == "R12" and all(h["ids"] for h in data["holds"])
    assert r12[0]["ids"][0] in status.stdout  # holds come with their booking ids
    assert data["last_failure"] is None and data["last_run"]["outcome"] == "done"

    unit = data["holds"][0]["unit_hsa_id"]
    line = one_line_error(cli(world, "report", "--unit", "NOPE"))
    assert "NOPE" in line and "enheter.csv" in line
    out = world.root / "weekly"
    weekly = cli(world, "report", "--period", "last_week", "--unit", unit, "--as-of", AS_OF.isoformat(),
                 "--out", str(out))
    assert weekly.returncode == 0, weekly.stderr[-3000:]
    assert (out / "eservice.csv").exists()

    quiet = cli(world, "reconcile")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "HTTP Request" not in quiet.stderr and "GET " not in quiet.stderr, quiet.stderr[-3000:]
    loud = cli(world, "reconcile", "-v")
    assert "HTTP Request: GET" in loud.stderr


def test_clinic24_down_during_push_exits_1_with_the_pending_count(world, tmp_path):
    world.drop(world.region)
    pause = tmp_path / "paused"
    import subprocess
    import sys

    env = {**__import__("os").environ, **world.env(), **prefect_env(),
           "MVG_PAUSE_AT": "after-plan", "MVG_PAUSE_FILE": str(pause)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvg_sync.cli", "sync", "--as-of", AS_OF.isoformat()],
        env=env, cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    while not pause.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    world.sandbox.set_faults(fail_before_share=1.0)  # Clinic24 answers every batch 503
    pause.unlink()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out + err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    message = out + err
    assert "changes still pending" in message and "the next sync retries them" in message, message[-3000:]
    data = json.loads(cli(world, "status", "--json").stdout)
    assert "changes still pending" in data["last_failure"]["cause"]
    pending = sum(o["count"] for o in data["outbox"] if o["status"] == "pending")
    assert pending > 0 and f"{pending} changes still pending" in message
    assert "Last failure" in cli(world, "status").stdout

    world.sandbox.set_faults(fail_before_share=0.0)
    rerun = cli(world, "sync", "--as-of", AS_OF.isoformat())
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    data = json.loads(cli(world, "status", "--json").stdout)
    assert not [o for o in data["outbox"] if o["status"] == "pending"]


def test_units_unknown_to_clinic24_give_a_warning_with_the_fix(tmp_path, prefect_harness):
    world = make_world(tmp_path)
    world.sandbox.stop()
    world.sandbox = start_sandbox(tmp_path / "default-sandbox")  # the sandbox's own demo units
    try:
        drop = world.drop(world.region)
        result = cli(world, "sync", "--as-of", AS_OF.isoformat())
        assert result.returncode == 0, result.stderr[-3000:]
        warning = [line for line in result.stderr.splitlines() if line.startswith("warning: no unit of drop")]
        assert warning and f"mvg-sync sandbox --units {drop}/enheter.csv" in warning[0], result.stderr[-3000:]
        assert Path(drop / "enheter.csv").exists()
    finally:
        world.sandbox.stop()


def test_wrong_secret_fails_at_once_in_one_line_and_status_shows_it(world):
    world.drop(world.region)
    started = time.monotonic()
    result = cli(world, "sync", "-v", "--as-of", AS_OF.isoformat(), CLINIC24_CLIENT_SECRET="not-the-secret")
    elapsed = time.monotonic() - started
    line = one_line_error(result)
    assert "credentials" in line.lower() or "401" in line, line
    assert "CLINIC24_CLIENT_SECRET" in result.stderr
    assert "Retry 1/" not in result.stderr, result.stderr[-3000:]  # no task retry of a credentials error
    assert "fetch-clinic24-units" in result.stderr  # -v shows the task's log, so a retry would show
    status = cli(world, "status", "--json")
    failure = json.loads(status.stdout)["last_failure"]
    assert failure and ("credentials" in failure["cause"].lower() or "401" in failure["cause"])
    text = cli(world, "status").stdout
    assert "Last failure" in text
    assert elapsed < 180  # the process, Prefect's start and ingest; no retries (22 s of them before)
