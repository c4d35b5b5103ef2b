"""`mvg-sync generate`: write one sample Cosmic drop into a landing folder."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from mvg_sync.generator.datasets import generate_region
from mvg_sync.generator.writer import write_drop
from mvg_sync.timeutil import resolve_as_of


def main(args: Namespace) -> int:
    """Generate a region of `args.bookings` bookings and write its drop; prints the drop folder."""
    as_of = resolve_as_of(getattr(args, "as_of", None))
    out = getattr(args, "out", None)
    if out is None:
        from mvg_sync.settings import load_settings

        landing = load_settings().landing_dir
    else:
        landing = Path(out)
    region = generate_region(seed=int(args.seed), n_bookings=int(args.bookings), as_of=as_of)
    folder = write_drop(region, landing, encoding=args.encoding)
    sys.stdout.write(f"wrote {region.bookings.height} bookings to {folder}\n")
    return 0
