"""mvg-sync: keep Clinic24's bookings in step with Cosmic's drops, and report on it.

Each sub-command's implementation lives in its own module and is imported when the
command runs, so `mvg-sync --help` stays fast and one command's dependencies never load
for another.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Telemetry off before Prefect or Great Expectations is imported anywhere in the process
# (they read these at import; issue 11.3: "ERROR … Failed to send telemetry" on every sync).
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}

# sub-command -> "module:function"; the function takes the parsed args and returns an exit code.
COMMANDS = {
    "sync": "mvg_sync.commands:sync",
    "approve": "mvg_sync.commands:approve",
    "status": "mvg_sync.commands:status",
    "redrive": "mvg_sync.commands:redrive",
    "reconcile": "mvg_sync.commands:reconcile",
    "report": "mvg_sync.commands:report",
    "sandbox": "mvg_sync.clinic24.sandbox.server:main",
    "demo": "mvg_sync.demo:main",
    "generate": "mvg_sync.generator.cli:main",
    "setup-prefect": "mvg_sync.commands:setup_prefect",
    "deployments": "mvg_sync.regions:deployments_command",
}

PERIODS = ("yesterday", "last_week")  # the control_reports flow's `period` values

ENV_STATE = "  MVG_STATE_DIR      the integration's state (DuckDB, snapshots, quarantine); default data/state"
ENV_LANDING = "  MVG_LANDING_DIR    where Cosmic writes drops; default data/landing"
ENV_REPORT = "  MVG_REPORT_DIR     where reports are written; default data/reports"
ENV_CLINIC24 = (
    "  CLINIC24_BASE_URL  Clinic24 API; default http://127.0.0.1:8024 (the sandbox)\n"
    "  CLINIC24_CLIENT_ID, CLINIC24_CLIENT_SECRET  OAuth2 client (sandbox defaults on loopback)"
)
ENV_GUARD = (
    "  MVG_MAX_CANCEL_SHARE, MVG_CANCEL_GUARD_FLOOR  mass-cancellation guard; default 0.05 and 20"
)
ENV_STATE_URL = (
    "  MVG_STATE_URL      postgresql://user@host/db for the store on a server; unset: the DuckDB file\n"
    "  MVG_STATE_PASSWORD its password (or in the URL); saved as Secret block mvg-state-password"
)
ENV_PREFECT = "  PREFECT_API_URL    a Prefect server to report to; unset: a temporary one for the run"


def _epilog(exits: str, *env: str) -> str:
    text = f"exit status:\n{exits}"
    if env:
        text += "\n\nenvironment (or a .env file):\n" + "\n".join(env)
    return text


EPILOGS = {
    "sync": _epilog(
        "  0 done (also nothing to do)\n  1 failed, or changes still pending (the next sync retries them)\n"
        "  3 a drop is held for approval (mvg-sync approve <extract_id>)\n"
        "  130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM; answers already received are recorded",
        ENV_LANDING, ENV_STATE, ENV_CLINIC24, ENV_GUARD, ENV_PREFECT,
    ),
    "approve": _epilog("  0 released\n  1 no such drop waiting for approval", ENV_STATE),
    "status": _epilog("  0 shown\n  1 the state or landing folder is missing", ENV_LANDING, ENV_STATE),
    "redrive": _epilog("  0 nothing dead, or all re-sent\n  1 some are dead again, or failed", ENV_STATE, ENV_CLINIC24),
    "reconcile": _epilog("  0 no drift\n  4 drift found\n  1 failed", ENV_STATE, ENV_CLINIC24),
    "report": _epilog("  0 written (the files are listed)\n  1 failed (e.g. unknown --unit, no data yet)",
                      ENV_STATE, ENV_REPORT),
    "sandbox": _epilog("  runs until stopped (Ctrl-C)", ENV_CLINIC24.replace("Clinic24 API", "unused here")),
    "demo": _epilog("  0 done\n  1 failed"),
    "generate": _epilog("  0 written\n  1 failed", ENV_LANDING),
    "setup-prefect": _epilog(
        "  0 created\n  1 failed", ENV_STATE, ENV_LANDING, ENV_REPORT, ENV_CLINIC24, ENV_STATE_URL, ENV_PREFECT,
        "  with --regions: CLINIC24_CLIENT_SECRET_<REGION>, MVG_STATE_PASSWORD_<REGION> per region",
    ),
    "deployments": _epilog("  0 written\n  1 the region file is wrong (every problem is named)"),
}


def _verbosity(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser and on each command, so both `mvg-sync -v sync` and `mvg-sync sync -v`
    # work; a command's default must not overwrite the top's.
    default = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="show progress and every log line")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="as -v, and show the traceback of a failure")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="mvg-sync", description=__doc__.splitlines()[0], formatter_class=fmt,
        epilog="Each command has its own help with exit status and environment: mvg-sync <command> --help",
    )
    _verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS[name], formatter_class=fmt)
        _verbosity(p, top=False)
        return p

    p = add("sync", "one cycle: ingest pending drops, plan, push to Clinic24")
    p.add_argument("--as-of", metavar="T", help="'now' for this run, ISO date-time with offset; default: the clock")

    p = add("approve", "release a drop held by the mass-cancellation guard; the next sync pushes it")
    p.add_argument("extract_id", help="the held drop's extract id, as `status` and the sync's message show it")

    p = add("status", "drops, quarantine, holds by rule and unit, changes waiting or dead-lettered, last failure")
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts instead of text")

    add("redrive", "retry dead-lettered changes now")
    add("reconcile", "compare Clinic24's appointments with the integration's record; report drift")

    p = add("report", "write the four control reports (HTML, XLSX, CSV, Parquet)")
    p.add_argument("--as-of", metavar="T", help="'now' for the default period, ISO date-time with offset")
    p.add_argument("--period", choices=PERIODS,
                   help="registration period as the scheduled reports name it: yesterday (the default) "
                        "or last_week (the ISO week before); not with --from/--to")
    p.add_argument("--from", dest="date_from", metavar="D", help="registration period start, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="D", help="registration period end, YYYY-MM-DD")
    p.add_argument("--booked-from", metavar="D", help="booking/monitoring-date period start, YYYY-MM-DD")
    p.add_argument("--booked-to", metavar="D", help="booking/monitoring-date period end, YYYY-MM-DD")
    p.add_argument("--unit", metavar="HSA", help="only this unit (HSA id, e.g. SE2321000065-E1025)")
    p.add_argument("--out", metavar="DIR", help="output folder; default MVG_REPORT_DIR")
    p.add_argument("--pseudonymise", action="store_true",
                   help="mask personnummer and drop names, for wider distribution")

    p = add("sandbox", "run a local Clinic24 that implements clinic24-api.md (for tests and demos)")
    p.add_argument("--port", type=int, default=8024, help="TCP port; default 8024")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1 (loopback)")
    p.add_argument("--units", metavar="FILE",
                   help="';'-separated CSV with a column EnhetHSAID (a drop's enheter.csv works); "
                        "default: the demo region's units")
    p.add_argument("--guardians", metavar="FILE",
                   help="CSV with a column Personnummer: children who have a primary guardian")

    add("demo", "make sample drops, start the sandbox, run sync cycles and reports, say where to look")

    p = add("generate", "write one sample Cosmic drop into a landing folder")
    p.add_argument("--out", metavar="DIR", help="landing folder; default MVG_LANDING_DIR")
    p.add_argument("--bookings", type=int, default=2000, help="number of bookings; default 2000")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same drop); default 1")
    p.add_argument("--encoding", choices=["windows-1252", "utf-8", "utf-8-sig"], default="windows-1252",
                   help="CSV encoding; default windows-1252 (as Cosmic writes)")
    p.add_argument("--as-of", metavar="T", help="the drop's extract time, ISO date-time with offset")

    p = add("setup-prefect", "create Prefect blocks and variables from the environment, for deployments")
    p.add_argument("--regions", metavar="FILE",
                   help="several regions: their Variables and Secret blocks from this region file "
                        "(deploy/regions.toml), secrets from CLINIC24_CLIENT_SECRET_<REGION>")

    p = add("deployments", "write a prefect.yaml with every deployment once per region of a region file")
    p.add_argument("--regions", metavar="FILE", required=True, help="the region file, e.g. deploy/regions.toml")
    p.add_argument("--out", metavar="FILE", help="where to write it (e.g. prefect.regions.yaml); default stdout")
    p.add_argument("--template", metavar="FILE",
                   help="the deployments to repeat per region; default prefect.yaml "
                        "(deploy/kubernetes/prefect.yaml for Kubernetes workers)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    args = build_parser().parse_args(argv)
    verbose = bool(args.verbose or args.debug)
    if verbose:
        os.environ["MVG_VERBOSE"] = "1"  # read by the progress display in the sync's push task
    from mvg_sync import interrupts
    from mvg_sync.logfilter import install_pii_filter, one_line

    install_pii_filter()
    module_name, func_name = COMMANDS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        return int(handler(args) or 0)
    except interrupts.Interrupted as exc:
        sys.stderr.write(f"mvg-sync {args.command}: stopped ({exc}); run it again to continue\n")
        _leave_now(exc.exit_code, real_process=argv is None)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"mvg-sync {args.command}: stopped (interrupted by SIGINT)\n")
        _leave_now(130, real_process=argv is None)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place a failure becomes one line and an exit code
        if args.debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"error: {one_line(exc)}\n{hint(exc, args.command)}\n")
        return 1


def _leave_now(code: int, *, real_process: bool) -> None:
    """After an interrupt, exit without the interpreter's own shutdown.

    Everything that matters is done by now: answers settled and committed, DuckDB
    connections closed, Prefect's logs delivered and its temporary server stopped. What
    is left (library threads and finalizers) took 5-8 s measured, past the 10 s the issue
    allows from the signal. In-process callers (tests) get the code returned instead.
    """
    if not real_process:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def hint(exc: Exception, command: str) -> str:
    """What to do next about a failure, by what failed; always ends with where details are."""
    name, text = type(exc).__name__, str(exc)
    if name.startswith("Clinic24") or type(exc).__module__.startswith(("httpx", "httpcore")):
        if "credential" in text.lower() or "401" in text or "Auth" in name:
            what = "check CLINIC24_CLIENT_ID / CLINIC24_CLIENT_SECRET (or the Prefect Secret block)"
        else:
            what = "check that CLINIC24_BASE_URL is right and Clinic24 is up, then run the command again"
        if command == "sync":
            what += "; nothing is lost: pending changes stay in the outbox for the next sync"
    elif name == "UnknownUnit":
        what = "give a unit's HSA id as Cosmic's enheter.csv has it (column EnhetHSAID), or leave --unit out"
    elif name == "FolderMissing":
        what = f"the variables and their defaults: mvg-sync {command} --help"
    elif name == "MissingSetting":
        what = f"set it in the environment or a .env file (mvg-sync {command} --help lists the variables)"
    elif name == "StoreBusy" or "Could not set lock" in text or "Conflicting lock" in text:
        what = "another mvg-sync process is using the state store; run the command again in a moment"
    elif name in ("StoreUnreachable", "BadStateURL"):  # the PostgreSQL store (issue 15)
        what = "check MVG_STATE_URL (host, port, database, user, password or its Secret block) and the server"
    elif name == "StoreTooNew":
        what = "a newer mvg-sync release wrote this state: run that release (or restore a backup)"
    elif isinstance(exc, OSError):
        what = "check the path, its permissions and free space"
    else:
        what = "run it again with --debug for the traceback"
    return f"hint: {what}"


if __name__ == "__main__":
    sys.exit(main())
