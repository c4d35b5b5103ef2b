"""The sandbox as a process: state survives a restart, and `mvg-sync sandbox` serves the API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mvg_sync.clinic24.sandbox.examples import (
    BOOKING,
    PNR,
    appointment,
    digital,
    set_ext,
    set_patient,
    with_check_digit,
)
from mvg_sync.clinic24.sandbox.examples import (
    ExampleApi as Api,
)
from mvg_sync.clinic24.sandbox.runner import start_sandbox

CHILD = with_check_digit("20210707111")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, faults={"rate_limit": False}) as first:
        api = Api(first)
        assert api.put(appointment("P-1")).status_code == 201
        first.set_units(["SE2321000198-HC0001", "SE2321000198-NEW01"])
        first.add_guardian(CHILD)
    with start_sandbox(tmp_path, faults={"rate_limit": False}) as second:
        assert second.pid != first.pid
        api = Api(second)
        found = api.get("/fhir/Appointment", identifier=f"{BOOKING}|P-1").json()
        assert found["total"] == 1
        assert api.put(appointment("P-1")).headers["ETag"] == 'W/"1"'  # identical after restart
        assert api.put(set_ext(appointment("P-1"), "source-sequence", 9)).status_code == 409
        assert second.state()["units"] == ["SE2321000198-HC0001", "SE2321000198-NEW01"]
        assert api.put(digital(set_patient(appointment("P-2"), PNR, CHILD))).status_code == 201
        update = api.put(set_ext(appointment("P-1", comment="x"), "source-sequence", 11))
        assert update.headers["ETag"] == 'W/"2"'


def test_reset_clears_resources_and_restores_seeds(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, faults={"rate_limit": False}) as handle:
        api = Api(handle)
        assert api.put(appointment("R-1")).status_code == 201
        handle.set_units(["SE2321000198-ONLY1"])
        handle.reset()
        state = handle.state()
        assert state["resources"] == []
        assert "SE2321000198-HC0001" in state["units"]  # the built-in demo units
        assert handle.requests() == []


def test_mvg_sync_sandbox_command_serves_the_api(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MVG_STATE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mvg_sync.cli", "sandbox", "--port", str(port)], env=env, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_control/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sandbox did not start"
                assert process.poll() is None, "sandbox exited"
                time.sleep(0.1)
        token = httpx.post(
            f"http://127.0.0.1:{port}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "mvg-sync", "client_secret": "sandbox-secret"},
        )
        assert token.status_code == 200
        assert (tmp_path / "clinic24-sandbox.sqlite").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(15) in (0, -signal.SIGTERM)


LAUNCHER = """
import sys, time
from pathlib import Path
from mvg_sync.clinic24.sandbox.runner import start_sandbox
handle = start_sandbox(Path(sys.argv[1]), stop_with_parent=sys.argv[2] == "1")
print(handle.pid, handle.base_url, flush=True)
time.sleep(600)
"""


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@pytest.mark.parametrize("stop_with_parent", [True, False])
def test_sandbox_outlives_a_killed_launcher_only_when_asked(tmp_path: Path, stop_with_parent: bool) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path), "1" if stop_with_parent else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid_text, base_url = launcher.stdout.readline().split()
    pid = int(pid_text)
    try:
        launcher.kill()  # SIGKILL: the launcher cannot clean up
        launcher.wait(10)
        if stop_with_parent:
            assert _gone(pid, within=10)
        else:
            time.sleep(1)
            assert httpx.get(f"{base_url}/_control/health").status_code == 200
    finally:
        if not _gone(pid, within=0):
            os.kill(pid, signal.SIGTERM)
            assert _gone(pid, within=10)
