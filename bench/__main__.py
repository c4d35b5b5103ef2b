"""Runs benchmark modules of this package: `python -m bench [name ...]`; each has `main(argv)`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> int:
    available = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )
    names = argv or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    status = 0
    for name in names:
        print(f"== bench.{name}")
        status |= importlib.import_module(f"bench.{name}").main([]) or 0
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
