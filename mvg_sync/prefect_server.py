"""Prefect's temporary server for a command-line run: out of the terminal's signals, and dying with its parent.

Without PREFECT_API_URL, Prefect starts a temporary API server as a child process (issue 14,
11.2). As Prefect starts it, the child shares the terminal's process group: Ctrl-C reaches
it too, it begins a slow graceful shutdown while the run still reports to it, and the run
spent minutes in websocket reconnects and retries (155-230 s measured). And a SIGKILL of
the sync left it running (~185 MB each time). Here the same server is started by the
command itself, in its own session (the terminal's signals reach only the sync, which
stops it after its last report), with PR_SET_PDEATHSIG so the kernel kills it when the
sync dies in any way. Built on Prefect 3.9's `SubprocessASGIServer` (pinned), which
Prefect's client reuses for the default (port None) instance.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

log = logging.getLogger(__name__)

STOP_WAIT_S = 3.0
# Prefect's default of 20 s is too short on a loaded host: 45 s were measured here with 2
# shared cores; a longer wait costs nothing when the server comes up sooner.
MIN_STARTUP_TIMEOUT_S = 120

# Run in the child before it becomes the server: ask the kernel for SIGKILL when the parent
# dies (PR_SET_PDEATHSIG = 1), give up if the parent is already gone, then exec the server
# (the death signal survives exec). A bootstrap rather than `preexec_fn`, which is unsafe in
# a process with threads, as Prefect's is.
_BOOTSTRAP = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def _server_class() -> type:
    from prefect.server.api.server import SubprocessASGIServer

    class OwnedTemporaryServer(SubprocessASGIServer):
        """Prefect's temporary server, started as described in the module docstring."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            import prefect
            from prefect.settings import get_current_settings

            uvicorn = [
                "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                "--factory", "prefect.server.api.server:create_app",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on",
            ]
            env = {
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                **get_current_settings().to_environment_variables(exclude_unset=True),
            }
            return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), *uvicorn],
                env=env, start_new_session=True,
            )

        def stop(self) -> None:
            # The data is Prefect's run history in SQLite, safe on a kill: no graceful wait
            # beyond STOP_WAIT_S (Prefect waits 5 s, then kills too).
            process = self.server_process
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.server_process = None
            super().stop()

    return OwnedTemporaryServer


def start_if_needed():
    """Start the temporary server now, in this (main) thread, when no Prefect API is configured.

    Returns the server (stop it with `stop(server)` after the run) or None when
    PREFECT_API_URL names a server or Prefect's ephemeral mode is off. Must run in the main
    thread: the kernel's parent-death signal follows the thread that started the child.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    existing = SubprocessASGIServer._instances.get(None)
    if existing is not None and existing.running:
        return None  # somebody (a test harness) already owns one
    SubprocessASGIServer._instances.pop(None, None)  # a stopped one would be handed back
    server = _server_class()()
    server.start(timeout=max(settings.server.ephemeral.startup_timeout_seconds, MIN_STARTUP_TIMEOUT_S))
    return server


def stop(server) -> None:
    """Deliver what the run still has for the API (logs, events), then stop the server."""
    if server is None:
        return
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=STOP_WAIT_S)
        EventsWorker.drain_all(timeout=STOP_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - the run is over; a lost log line must not hide its exit code
        log.debug("draining Prefect's workers failed: %s", exc)
    server.stop()
