"""The sandbox's /_control routes need its control token; a non-loopback bind is warned about (issue 14)."""

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

from mvg_sync.clinic24.sandbox.runner import SandboxHandle, start_sandbox

CONTROL_ROUTES = [
    ("GET", "/_control/state", None),
    ("GET", "/_control/state?resource=Appointment", None),
    ("GET", "/_control/requests", None),
    ("GET", "/_control/faults", None),
    ("POST", "/_control/faults", {"latency_ms": 0}),
    ("POST", "/_control/reset", {}),
    ("POST", "/_control/expire-tokens", {}),
    ("POST", "/_control/guardians", {"personnummer": []}),
    ("POST", "/_control/units", {"units": ["SE2321000198-HC0001"]}),
    ("GET", "/_control/unknown-route", None),
]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(tmp_path_factory.mktemp("control")) as handle:
        yield handle


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_ROUTES)
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_every_control_route_refuses_a_missing_or_wrong_token(sandbox: SandboxHandle, method, path, body, token):
    before = sandbox.state()
    headers = {} if token is None else {"X-Control-Token": token}
    answer = httpx.request(method, f"{sandbox.base_url}{path}", json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert "resources" not in answer.text and "units" not in answer.json()
    assert sandbox.state() == before, "a refused control call changed nothing"


def test_the_handle_knows_the_token_and_the_routes_answer_with_it(sandbox: SandboxHandle):
    assert len(sandbox.control_token) >= 20
    answer = httpx.get(f"{sandbox.base_url}/_control/state", headers={"X-Control-Token": sandbox.control_token})
    assert answer.status_code == 200 and "resources" in answer.json()
    assert sandbox.reset() == {"status": "reset"}


def test_two_sandboxes_have_different_tokens(tmp_path: Path, sandbox: SandboxHandle):
    with start_sandbox(tmp_path) as other:
        assert other.control_token != sandbox.control_token
        refused = httpx.get(f"{other.base_url}/_control/state", headers=sandbox.control_headers)
        assert refused.status_code == 401


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mvg_sync.cli", "sandbox", "--port", str(port), *args],
        env={**{k: v for k, v in os.environ.items() if k != "CLINIC24_SANDBOX_CONTROL_TOKEN"},
             "MVG_STATE_DIR": str(tmp_path), **(env or {})},
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_control/health").status_code == 200:
                return process, port
        except httpx.TransportError:
            assert time.monotonic() < deadline, "sandbox did not start"
            assert process.poll() is None, "sandbox exited"
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    return err


def test_mvg_sync_sandbox_prints_a_fresh_token_that_opens_control(tmp_path: Path):
    process, port = _serve(tmp_path)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/_control/state").status_code == 401
    finally:
        err = _stop(process)
    printed = [line for line in err.splitlines() if "control token" in line]
    assert len(printed) == 1, err[-2000:]
    token = printed[0].rsplit(": ", 1)[1].strip()
    assert len(token) >= 20
    # The printed token is the one the server took: start again with it given explicitly.
    process, port = _serve(tmp_path, env={"CLINIC24_SANDBOX_CONTROL_TOKEN": "chosen-token-for-the-demo"})
    try:
        ok = httpx.get(f"http://127.0.0.1:{port}/_control/faults", headers={"X-Control-Token": "chosen-token-for-the-demo"})
        assert ok.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/_control/faults", headers={"X-Control-Token": token}).status_code == 401
    finally:
        err = _stop(process)
    assert "chosen-token-for-the-demo" not in err, "a token the operator chose is not echoed"


def test_a_non_loopback_bind_is_warned_about(tmp_path: Path):
    process, _ = _serve(tmp_path, "--host", "0.0.0.0")  # noqa: S104 - the bind being warned about
    err = _stop(process)
    warning = [line for line in err.splitlines() if "WARNING" in line and "--host 0.0.0.0" in line]
    assert len(warning) == 1, err[-2000:]
    assert "not loopback" in warning[0]
    process, _ = _serve(tmp_path)
    err = _stop(process)
    assert "not loopback" not in err
