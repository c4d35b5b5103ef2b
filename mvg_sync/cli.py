"""The `mvg-sync` command line (operations.md): argument parsing and exit codes only.

Each sub-command's implementation lives in its own module and is imported when the
command runs, so `mvg-sync --help` stays fast and one command's dependencies never load
for another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mvg-sync", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sync", help="one cycle: ingest pending drops, plan, push")
    p.add_argument("--as-of", help="ISO date-time with offset; default: now")

    p = sub.add_parser("approve", help="release a drop held by the mass-cancellation guard")
    p.add_argument("extract_id")

    sub.add_parser("status", help="drops, quarantine, held and dead-lettered changes")
    sub.add_parser("redrive", help="retry dead-lettered changes")
    sub.add_parser("reconcile", help="compare Clinic24 with the integration's record")

    p = sub.add_parser("report", help="write the control reports")
    p.add_argument("--as-of")
    p.add_argument("--from", dest="date_from", help="registration period start (default: yesterday)")
    p.add_argument("--to", dest="date_to", help="registration period end (default: yesterday)")
    p.add_argument("--booked-from", help="booking/monitoring-date period start")
    p.add_argument("--booked-to", help="booking/monitoring-date period end")
    p.add_argument("--unit", help="unit HSA-id")
    p.add_argument("--out", help="output folder (default: MVG_REPORT_DIR)")
    p.add_argument("--pseudonymise", action="store_true",
                   help="mask personnummer and drop names, for wider distribution")

    p = sub.add_parser("sandbox", help="run a local Clinic24 (clinic24-api.md)")
    p.add_argument("--port", type=int, default=8024)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--units", help="';'-separated CSV with a column EnhetHSAID")
    p.add_argument("--guardians", help="CSV with a column Personnummer (children with a primary guardian)")

    sub.add_parser("demo", help="sample drops, sandbox, sync cycles and reports")

    p = sub.add_parser("generate", help="write sample Cosmic drops into a landing folder")
    p.add_argument("--out", help="landing folder (default: MVG_LANDING_DIR)")
    p.add_argument("--bookings", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--encoding", choices=["windows-1252", "utf-8", "utf-8-sig"], default="windows-1252")
    p.add_argument("--as-of")

    sub.add_parser("setup-prefect", help="create Prefect blocks and variables from the environment")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mvg_sync.logfilter import install_pii_filter

    install_pii_filter()
    module_name, func_name = COMMANDS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    from mvg_sync.store import StoreBusy, StoreTooNew

    try:
        return int(handler(args) or 0)
    except (StoreBusy, StoreTooNew) as exc:  # one line, what happened and what to do
        print(f"mvg-sync {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
