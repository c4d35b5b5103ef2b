"""Starts the Clinic24 sandbox (`mvg-sync sandbox`, or `python -m mvg_sync.clinic24.sandbox.server`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("mvg_sync.sandbox")

# Environment read when the server starts (never at import): fault settings as a JSON object.
FAULTS_ENV = "CLINIC24_SANDBOX_FAULTS"
# The token every /_control route but health requires; made up and printed at start when unset.
CONTROL_TOKEN_ENV = "CLINIC24_SANDBOX_CONTROL_TOKEN"  # noqa: S105 - a variable name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mvg_sync.clinic24.sandbox.server", description=__doc__)
    p.add_argument("--port", type=int, default=8024, help="0 picks a free port (see --port-file)")
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback is warned about")
    p.add_argument("--units", help="';'-separated CSV with a column EnhetHSAID")
    p.add_argument("--guardians", help="CSV with a column Personnummer (children with a primary guardian)")
    p.add_argument("--state-file", help="SQLite file (default: $MVG_STATE_DIR/clinic24-sandbox.sqlite)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--faults", help="JSON object of fault settings (as POST /_control/faults)")
    p.add_argument("--fail-before-share", type=float)
    p.add_argument("--fail-after-share", type=float)
    p.add_argument("--throttle-share", type=float)
    p.add_argument("--latency-ms", type=int)
    p.add_argument("--no-rate-limit", action="store_true")
    p.add_argument("--token-ttl", type=float, help="token lifetime in seconds (default 300)")
    p.add_argument("--seed", type=int, help="seed for random fault injection")
    p.add_argument("--parent-pid", type=int, help="stop when this process is gone (test launchers)")
    return p


def _faults(args: argparse.Namespace) -> dict:
    faults: dict = json.loads(os.environ.get(FAULTS_ENV) or "{}")
    if getattr(args, "faults", None):
        faults.update(json.loads(args.faults))
    for flag, key in (
        ("fail_before_share", "fail_before_share"),
        ("fail_after_share", "fail_after_share"),
        ("throttle_share", "throttle_share"),
        ("latency_ms", "latency_ms"),
        ("token_ttl", "token_ttl_s"),
        ("seed", "seed"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            faults[key] = value
    if getattr(args, "no_rate_limit", False):
        faults["rate_limit"] = False
    return faults


def _stop_when_orphaned(server, parent_pid: int) -> None:
    # A launcher killed with SIGKILL cannot stop its sandbox; re-parenting shows it is gone.
    while not server.should_exit:
        if os.getppid() != parent_pid:
            log.info("launcher process is gone: stopping")
            server.should_exit = True
            return
        time.sleep(0.5)


def main(args: argparse.Namespace) -> int:
    """Run the sandbox until stopped; `args` needs port, host, units, guardians (the CLI's)."""
    import secrets

    import uvicorn

    from mvg_sync.clinic24.baseurl import is_loopback_host
    from mvg_sync.clinic24.sandbox.app import CONTROL_TOKEN_HEADER, SandboxConfig, create_app
    from mvg_sync.clinic24.sandbox.seeds import load_guardians, load_units
    from mvg_sync.fileperms import private_file, restrict_umask
    from mvg_sync.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, load_settings

    restrict_umask()  # the SQLite state holds patient-shaped data: owner-only (issue 14)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not is_loopback_host(args.host):
        log.warning(
            "--host %s is not loopback: the sandbox holds patient-shaped data and its Clinic24 "
            "API has the documented default secret; bind 127.0.0.1 unless you mean it", args.host,
        )  # fmt: skip
    control_token = os.environ.get(CONTROL_TOKEN_ENV) or secrets.token_urlsafe(24)
    settings = load_settings()
    state_file = Path(getattr(args, "state_file", None) or settings.state_dir / "clinic24-sandbox.sqlite")
    units = load_units(Path(args.units)) if args.units else None
    guardians = None
    if args.guardians:
        guardians, invalid = load_guardians(Path(args.guardians))
        if invalid:
            log.warning("guardians file: %d rows with an invalid personnummer skipped (rows %s)", len(invalid), invalid[:20])
    secret = settings.clinic24_client_secret
    config = SandboxConfig(
        state_file=state_file,
        client_id=settings.clinic24_client_id or SANDBOX_CLIENT_ID,
        client_secret=secret.get_secret_value() if secret else SANDBOX_CLIENT_SECRET,
        units=units,
        guardians=guardians,
        faults=_faults(args),
        control_token=control_token,
    )
    app = create_app(config)
    for path in (state_file, *state_file.parent.glob(state_file.name + "-*")):
        private_file(path)  # a state file from before this umask

    # proto must be IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections
    # only then, and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    port_file = getattr(args, "port_file", None)
    if port_file:
        tmp = Path(f"{port_file}.tmp")
        tmp.write_text(str(port))
        tmp.replace(port_file)
    log.info("Clinic24 sandbox on http://%s:%d (state %s, %d units)", args.host, port, state_file, len(app.state.sandbox.store.units))
    if not os.environ.get(CONTROL_TOKEN_ENV):
        # Printed so whoever started it can reach /_control; set the variable to choose it.
        log.info("control token for /_control (%s header): %s", CONTROL_TOKEN_HEADER, control_token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    parent = getattr(args, "parent_pid", None)
    if parent:
        threading.Thread(target=_stop_when_orphaned, args=(server, parent), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        app.state.sandbox.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
