"""Same drops through a reference checkout's ingest and this one: outcomes, quarantine, snapshots.

Issue 12 "must show": the same outcomes, quarantine rows and snapshots as before, byte for byte
where the format allows. Two phases, each code version in its own process:

    # record every ingest call the bad-input test set makes (the landing as it was, the args)
    .venv/bin/python -m pytest -q -p tests.compare_ingest tests/unit/test_ingest_bad_input.py
    # replay them, and a regional drop, through both checkouts and compare
    .venv/bin/python -m tests.compare_ingest --ref /tmp/ing-ref --regional bench/out/ingest/landing-400000

The replay compares after every call: the `drops` rows (outcome, reason, counts), the whole
`quarantine` table, the snapshot pointers, and each snapshot Parquet file by sha256 (and, where
the bytes differ, as frames). Runs monkeypatched by a test are replayed unpatched: what is
compared is the two versions on the same input, not the test's own assertion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(os.environ.get("INGEST_RECORD", tempfile.gettempdir() + "/ingest-record"))


# --- phase 1: a pytest plugin (`-p tests.compare_ingest`) recording each ingest call ---------

def pytest_configure(config) -> None:  # noqa: ARG001 - pytest's hook signature
    from mvg_sync.ingest import pipeline
    from mvg_sync.timeutil import utc_now

    shutil.rmtree(RECORD, ignore_errors=True)
    RECORD.mkdir(parents=True)
    real_pending, real_drop = pipeline.ingest_pending, pipeline.ingest_drop

    def save(kind: str, folder: Path, state_dir: Path, kwargs: dict) -> None:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        case = RECORD / hashlib.sha256(test.encode()).hexdigest()[:12]
        case.mkdir(exist_ok=True)
        calls = sorted(case.glob("call-*"))
        call = case / f"call-{len(calls):03d}"
        # copy2 keeps mtimes: a manifest's age decides "still being written"
        shutil.copytree(folder, call / "input", copy_function=shutil.copy2, symlinks=True)
        kwargs = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in kwargs.items()}
        (call / "call.json").write_text(json.dumps({
            "test": test, "kind": kind, "name": folder.name, "state": str(state_dir), "kwargs": kwargs,
        }))

    def ingest_pending(landing_dir, state_dir, **kwargs):
        kwargs.setdefault("now", utc_now())
        if Path(landing_dir).is_dir():
            save("pending", Path(landing_dir), Path(state_dir), kwargs)
        return real_pending(landing_dir, state_dir, **kwargs)

    def ingest_drop(folder, state_dir, **kwargs):
        kwargs.setdefault("now", utc_now())
        if Path(folder).is_dir():
            save("drop", Path(folder), Path(state_dir), kwargs)
        return real_drop(folder, state_dir, **kwargs)

    pipeline.ingest_pending, pipeline.ingest_drop = ingest_pending, ingest_drop


# --- phase 2: replay in a child per version, dump what ingest left -----------------------------

CHILD = r"""
import hashlib, json, shutil, sys
from datetime import datetime
from pathlib import Path
import duckdb, polars as pl
from mvg_sync.ingest import pipeline
cases, out_root = json.loads(sys.argv[1]), Path(sys.argv[2])
result = {}
for case, calls in cases.items():
    work = out_root / case
    states = {}
    dumps = []
    for call in calls:
        spec = json.loads((Path(call) / "call.json").read_text())
        state = states.setdefault(spec["state"], work / f"state-{len(states)}")
        kwargs = {k: (datetime.fromisoformat(v) if k in ("as_of", "now") else v) for k, v in spec["kwargs"].items()}
        landing = work / "landing"
        shutil.rmtree(landing, ignore_errors=True)
        if spec["kind"] == "pending":
            shutil.copytree(Path(call) / "input", landing, copy_function=shutil.copy2, symlinks=True)
            try:
                pipeline.ingest_pending(landing, state, **kwargs)
            except Exception as exc:
                dumps.append({"raised": f"{type(exc).__name__}: {exc}"})
        else:
            shutil.copytree(Path(call) / "input", landing / spec["name"], copy_function=shutil.copy2, symlinks=True)
            try:
                pipeline.ingest_drop(landing / spec["name"], state, **kwargs)
            except Exception as exc:
                dumps.append({"raised": f"{type(exc).__name__}: {exc}"})
        if not (state / "state.duckdb").exists():
            dumps.append({"state": None})
            continue
        con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
        q = lambda sql: [[str(v) for v in row] for row in con.execute(sql).fetchall()]
        dump = {
            "drops": q("SELECT extract_id, sequence, outcome, reason, counts FROM drops ORDER BY extract_id"),
            "quarantine": q("SELECT extract_id, file, source_row, record_key, column_name, rule, reason, "
                            "quarantined_at FROM quarantine ORDER BY ALL"),
            "pointers": q("SELECT dataset, extract_id, path FROM snapshot_pointer ORDER BY dataset"),
            "gaps": q("SELECT * FROM sequence_gaps ORDER BY ALL"),
        }
        con.close()
        files = {}
        for path in sorted((state / "snapshots").rglob("*.parquet")) if (state / "snapshots").is_dir() else []:
            frame = pl.read_parquet(path)
            files[str(path.relative_to(state))] = {
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "frame": [frame.height, str(frame.schema), int(frame.hash_rows().sum()) if frame.height else 0],
            }
        dump["snapshots"] = files
        dumps.append(dump)
    result[case] = dumps
print(json.dumps(result))
"""


def replay(root: Path, cases: dict[str, list[str]], work: Path) -> dict:
    """Run the calls with the code under `root` (its folder first on the path, this venv)."""
    env = {**os.environ, "PYTHONPATH": str(root), "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), str(work)], cwd=root, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"replay under {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(ref: dict, ours: dict, names: dict[str, str]) -> int:
    differing = 0
    bytes_differ = 0
    for case in sorted(ref):
        label = names.get(case, case)
        a, b = ref[case], ours.get(case)
        if b is None or len(a) != len(b):
            print(f"DIFF {label}: {len(a)} vs {len(b or [])} calls")
            differing += 1
            continue
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            for key in sorted(set(x) | set(y)):
                if key == "snapshots":
                    xs, ys = x.get(key, {}), y.get(key, {})
                    if set(xs) != set(ys) or any(xs[p]["frame"] != ys[p]["frame"] for p in xs):
                        print(f"DIFF {label} call {i}: snapshot frames {sorted(xs)} vs {sorted(ys)}")
                        differing += 1
                    bytes_differ += sum(1 for p in xs if p in ys and xs[p]["sha256"] != ys[p]["sha256"])
                elif x.get(key) != y.get(key):
                    print(f"DIFF {label} call {i}: {key}\n  ref:  {x.get(key)}\n  ours: {y.get(key)}")
                    differing += 1
    calls = sum(len(v) for v in ref.values())
    files = sum(len(d.get("snapshots", {})) for v in ref.values() for d in v)
    print(f"{len(ref)} cases, {calls} ingest calls, {files} snapshot files compared: {differing} differences; "
          f"{files - bytes_differ} of {files} snapshot files byte-identical (sha256), the rest equal as frames"
          if not differing else f"{differing} differences")
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compare_ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", type=Path, required=True, help="a checkout of the reference commit")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--regional", type=Path, help="a landing folder of generated drops")
    parser.add_argument("--as-of", default="2026-11-26T08:05:00+01:00")
    args = parser.parse_args(argv)
    cases: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for call in sorted(args.record.glob("*/call-*")):
        cases.setdefault(call.parent.name, []).append(str(call))
        names[call.parent.name] = json.loads((call / "call.json").read_text())["test"]
    if args.regional is not None:
        regional = args.record / "regional" / "call-000"
        shutil.rmtree(regional.parent, ignore_errors=True)
        regional.mkdir(parents=True)
        (regional / "input").symlink_to(args.regional.resolve(), target_is_directory=True)
        (regional / "call.json").write_text(json.dumps({
            "test": "regional", "kind": "pending", "name": "landing", "state": "regional",
            "kwargs": {"as_of": args.as_of},
        }))
        cases["regional"] = [str(regional)]
        names["regional"] = f"regional drop {args.regional}"
    print(f"replaying {sum(len(v) for v in cases.values())} ingest calls of {len(cases)} cases")
    with tempfile.TemporaryDirectory(prefix="compare-ingest-") as work:
        ref = replay(args.ref.resolve(), cases, Path(work) / "ref")
        ours = replay(ROOT, cases, Path(work) / "ours")
    return 1 if compare(ref, ours, names) else 0


if __name__ == "__main__":
    raise SystemExit(main())
