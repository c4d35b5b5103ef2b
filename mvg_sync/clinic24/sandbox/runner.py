"""Starts the sandbox in its own process for tests, the demo and the benchmark."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


class SandboxHandle:
    """A running sandbox subprocess; a context manager that stops it on exit."""

    def __init__(
        self, process: subprocess.Popen, port: int, host: str = "127.0.0.1", control_token: str = ""
    ) -> None:
        self.process = process
        self.port = port
        self.pid = process.pid
        self.base_url = f"http://{host}:{port}"
        # For callers that reach /_control themselves: send it as `control_headers`.
        self.control_token = control_token
        self.control_headers = {"X-Control-Token": control_token}
        self._http = httpx.Client(base_url=self.base_url, timeout=30, headers=self.control_headers)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _post(self, path: str, body: object) -> dict:
        answer = self._http.post(path, json=body)
        answer.raise_for_status()
        return answer.json()

    def set_faults(self, **settings: object) -> dict:
        """Change fault settings (fail_before_share, fail_after_share, throttle_share,
        latency_ms, rate_limit, token_ttl_s, seed); returns all current settings."""
        return self._post("/_control/faults", settings)

    def state(self, resource: str | None = None) -> dict:
        """Stored resources with versions (`resources`), plus counts, units and guardian count."""
        params = {"resource": resource} if resource else {}
        answer = self._http.get("/_control/state", params=params)
        answer.raise_for_status()
        return answer.json()

    def requests(self) -> list[dict]:
        """The request log: method, path, query, status, request_id, entries."""
        answer = self._http.get("/_control/requests")
        answer.raise_for_status()
        return answer.json()["requests"]

    def add_guardian(self, pnr: str) -> dict:
        return self._post("/_control/guardians", {"personnummer": pnr})

    def set_units(self, units: list) -> dict:
        return self._post("/_control/units", {"units": units})

    def reset(self) -> dict:
        return self._post("/_control/reset", {})

    def expire_tokens(self) -> dict:
        return self._post("/_control/expire-tokens", {})

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the server (SIGTERM, then SIGKILL) and return its exit code."""
        self._http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def start_sandbox(
    state_dir: Path,
    *,
    units: Path | None = None,
    guardians: Path | None = None,
    port: int = 0,
    faults: dict | None = None,
    env: dict | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    stop_with_parent: bool = True,
) -> SandboxHandle:
    """Start `python -m mvg_sync.clinic24.sandbox.server` and wait until it answers.

    State lives in `state_dir/clinic24-sandbox.sqlite`, so starting again over the same
    directory resumes it. `env` is merged over the current environment (e.g. client id).
    The /_control token is CLINIC24_SANDBOX_CONTROL_TOKEN from `env` or the environment, else
    a fresh one; the handle sends it and exposes it as `control_token`.
    With `stop_with_parent` the server stops by itself when the calling process dies (even by
    SIGKILL), so a crashed test run leaves no server behind; pass False for a sandbox that
    must outlive its launcher.
    """
    import json

    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    port_file = Path(tempfile.mkdtemp(prefix="sandbox-port-")) / "port"
    cmd = [
        sys.executable, "-m", "mvg_sync.clinic24.sandbox.server",
        "--host", host, "--port", str(port),
        "--state-file", str(state_dir / "clinic24-sandbox.sqlite"),
        "--port-file", str(port_file),
    ]  # fmt: skip
    if units:
        cmd += ["--units", str(units)]
    if guardians:
        cmd += ["--guardians", str(guardians)]
    if faults:
        cmd += ["--faults", json.dumps(faults)]
    if stop_with_parent:
        cmd += ["--parent-pid", str(os.getpid())]
    child_env = {**os.environ, **(env or {})}
    control_token = child_env.get("CLINIC24_SANDBOX_CONTROL_TOKEN") or secrets.token_urlsafe(24)
    child_env["CLINIC24_SANDBOX_CONTROL_TOKEN"] = control_token
    process = subprocess.Popen(cmd, env=child_env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sandbox exited with code {process.returncode} during start-up")
            if port_file.exists():
                handle = SandboxHandle(process, int(port_file.read_text()), host, control_token)
                try:
                    if handle._http.get("/_control/health").status_code == 200:
                        return handle
                except httpx.TransportError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"sandbox did not answer within {timeout} s")
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        port_file.unlink(missing_ok=True)
