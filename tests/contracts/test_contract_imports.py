"""The contracts as the ingest process runs them: pandera for Polars without its pandas half.

`contracts/__init__.py` imports pandera as its Polars-only install would (issue 12: 0.45 CPU-s
a drop). These tests run it in a fresh process, where nothing imported pandas first, and check
that the contracts still reject what they must, with the same failure text as in this process
(where the test modules imported pandas and hypothesis before pandera).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl

from contracts.cosmic import validate_raw
from contracts.snapshots import SnapshotContractError, validate_snapshot
from mvg_sync.cosmic_columns import LAYOUT_BY_DATASET
from mvg_sync.ingest.normalise import normalise
from tests import cosmic_drops as t

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from tests.contracts.test_contract_imports import verdicts  # imports contracts first, nothing else did
loaded = {name: name in sys.modules for name in ("pandas", "hypothesis")}
first = verdicts()
import pandas  # what Great Expectations does later in the same process
print(json.dumps({"loaded": loaded, "first": first, "after_pandas": verdicts()}))
"""


def verdicts() -> dict[str, str | None]:
    """The contracts' verdicts on a valid bookings snapshot, two broken ones and a broken raw file."""
    layout = LAYOUT_BY_DATASET["bookings"]
    raw = pl.DataFrame(t.default_files()[layout.file], schema=dict.fromkeys(layout.headers, pl.String))
    good = normalise(raw, layout, date(2026, 11, 26)).frame
    validate_snapshot("bookings", good)
    out: dict[str, str | None] = {"valid": None}
    for label, frame in {"status": good.with_columns(pl.lit("rescheduled").alias("status")),
                         "patient_id": good.with_columns(pl.lit("5811243269").alias("patient_id"))}.items():
        try:
            validate_snapshot("bookings", frame)
            out[label] = None
        except SnapshotContractError as exc:
            out[label] = str(exc)
    try:
        validate_raw(layout.file, raw.with_columns(pl.lit(1).alias("BokningsID")))
        out["raw"] = None
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        out["raw"] = type(exc).__name__
    return out


def test_a_fresh_process_validates_without_pandas_and_rejects_the_same():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["loaded"] == {"pandas": False, "hypothesis": False}
    expected = verdicts()
    assert expected["status"] and "status" in expected["status"]
    assert expected["patient_id"] and "patient_id" in expected["patient_id"]
    assert expected["raw"] in {"SchemaErrors", "SchemaError"}
    assert child["first"] == expected
    assert child["after_pandas"] == expected


def test_pandas_is_importable_again_once_pandera_is_loaded():
    # the hiding lasts only while pandera loads: nothing later may find pandas missing
    done = subprocess.run([sys.executable, "-c", "import contracts, pandas, hypothesis; print(pandas.__name__)"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "pandas"
    assert sys.meta_path == [f for f in sys.meta_path if type(f).__name__ != "_NotInstalled"]


RACE_CHILD = """
import importlib.abc, importlib.machinery, json, sys, threading
seen = {}
def other_thread():  # a Great Expectations task in the same worker, importing pandas meanwhile
    try:
        import pandas
        seen["other_thread"] = pandas.__name__
    except ImportError as exc:
        seen["other_thread"] = repr(exc)
class ImportPandasMeanwhile(importlib.abc.MetaPathFinder):
    # pandera's package runs while `contracts` hides pandas from the thread importing it: the
    # other thread imports pandas right then (from the loader: a finder runs under Python's
    # global import lock, where the other thread could not import at all)
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "pandera":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        real = spec.loader
        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)
            def exec_module(self, module):
                worker = threading.Thread(target=other_thread)
                worker.start()
                worker.join()
                real.exec_module(module)
        spec.loader = Loader()
        return spec
sys.meta_path.insert(0, ImportPandasMeanwhile())  # asked before the finders that would find pandera
import contracts
print(json.dumps(seen))
"""


def test_pandas_is_hidden_only_from_the_thread_importing_pandera():
    done = subprocess.run([sys.executable, "-c", RACE_CHILD], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"other_thread": "pandas"}
