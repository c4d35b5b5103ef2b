"""The pandera contracts: Cosmic's raw files (`cosmic`) and the normalised snapshots (`snapshots`).

Importing this package imports pandera for Polars without its pandas half (issue 12). When
pandas and hypothesis are installed, pandera's own `__init__` and its first validation import
them: 0.45 CPU-s, against 2.3 CPU-s for bare DuckDB to read a regional drop. When they are not
installed, pandera skips them cleanly: its Polars-only install (`pandera[polars]`, pandera GH
#2387). Great Expectations needs pandas in the same environment, so the ingest process imports
pandera as that install would. While pandera loads, `pandas` and `hypothesis` read as not
installed, unless some code already imported them; then pandera gets them as usual. Only the
thread importing pandera is answered so: another thread (a Great Expectations task in the same
worker) importing pandas at that moment gets it as usual. Nothing else changes: they import
normally afterwards, and the contracts run the same Polars checks either way
(`tests/contracts/test_contract_imports.py` checks both).
"""

from __future__ import annotations

import importlib.abc
import sys
import threading

# What pandera.polars can do without; pandera catches exactly this ModuleNotFoundError text.
_OPTIONAL_FOR_POLARS = ("pandas", "hypothesis")


class _NotInstalled(importlib.abc.MetaPathFinder):
    """A finder that answers for `names` as if they were not installed, to the thread that
    made it only: `sys.meta_path` is the whole process's, and a worker runs tasks in threads."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return None


def _import_pandera_for_polars() -> None:
    if "pandera" in sys.modules:
        return
    hidden = {name for name in _OPTIONAL_FOR_POLARS if name not in sys.modules}
    finder = _NotInstalled(hidden)
    sys.meta_path.insert(0, finder)
    try:
        import pandera.polars as pa
        import polars as pl

        # pandera registers its check backends on the first validation, and looks for its
        # pandas half again then (once, cached): validate once here, while it is hidden.
        pa.DataFrameSchema({"x": pa.Column(pl.Int64, pa.Check.isin([1]))}).validate(pl.DataFrame({"x": [1]}))
    finally:
        sys.meta_path.remove(finder)


_import_pandera_for_polars()
