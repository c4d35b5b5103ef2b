"""Lists or runs the benchmarks of this package with the arguments docs/benchmarks.md reports.

`python -m bench` lists them, each with the exact command that reproduces its figure;
`python -m bench NAME ...` runs those (`all` runs every one in turn, ~1 h on 2 cores);
`python -m bench NAME -- ARGS` runs one with other arguments. Each module has `main(argv)`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench

# name -> (the arguments of the reported figure, what it measures). Session 4 (issue 12).
RECIPES: dict[str, tuple[list[str], str]] = {
    "ingest": (["--sizes", "400000,10000000", "--pairs", "3"],
               "regional and national ingest beside bare DuckDB (read_csv + row hash + Parquet): ratio, peak RSS;"
               " drops cached in $MVG_BENCH_CACHE (the 10 M drop is 4.2 GB: keep it outside the repo)"),
    "ingest_steps": (["--rounds", "3"],
                     "a regional ingest's CPU step by step (imports, scan, read, normalise, write, contract)"
                     " beside the whole ingest and bare DuckDB, and the floor those steps set"),
    "plan": (["--rounds", "5"], "draft_booking_plan at 400 k beside a bare DuckDB hash diff"),
    "sync_latency": (["--minutes", "12"],
                     "drop every minute, ~1,000 changes, booking_sync as in prefect.yaml: p50/p95/max to accepted"),
    "sync_cycle": ([], "one cycle after the initial load, per step, then the real flow"),
    "initial_load": ([], "initial load of 400 k bookings into the rate-limited sandbox (cache for the others)"),
    "clinic24_load": ([], "client + sandbox alone at the API's rate limit"),
    "reports": ([], "control reports on a loaded region"),
}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def plan(argv: list[str], names: list[str]) -> list[tuple[str, list[str]]] | str:
    """What to run: [(module, args)], or the listing's text when nothing is named."""
    own: list[str] | None = None
    if "--" in argv:
        argv, own = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    if not argv:
        width = max(map(len, names))
        lines = ["benchmarks (python -m bench NAME ... runs them with these arguments; `all` runs every one):"]
        for name in names:
            args, what = RECIPES.get(name, ([], ""))
            lines.append(f"  {name:<{width}}  python -m bench.{name} {' '.join(args)}".rstrip())
            if what:
                lines.append(f"  {'':<{width}}    {what}")
        return "\n".join(lines)
    chosen = names if argv == ["all"] else argv
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}")
    if own is not None and len(chosen) != 1:
        raise ValueError("arguments after -- go to exactly one benchmark")
    return [(n, own if own is not None else list(RECIPES.get(n, ([], ""))[0])) for n in chosen]


def main(argv: list[str]) -> int:
    try:
        todo = plan(argv, available())
    except ValueError as exc:
        print(exc)
        return 2
    if isinstance(todo, str):
        print(todo)
        return 0
    status = 0
    for name, args in todo:
        print(f"== python -m bench.{name} {' '.join(args)}".rstrip(), flush=True)
        status |= importlib.import_module(f"bench.{name}").main(args) or 0
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
