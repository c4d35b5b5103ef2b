"""A file equal to the previous accepted drop's is not parsed again, and nothing downstream can tell."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.ingest import ingest_pending, pipeline, reuse
from tests import cosmic_drops as t

AS_OF = datetime(2026, 11, 26, 7, 10, tzinfo=UTC)


def _files(bookings_status: str = "Bokad") -> dict[str, list[dict[str, str | None]]]:
    files = t.default_files(30)
    # bad rows in the files the second drop repeats byte for byte, and in the one it changes
    files["tider.csv"][4]["EnhetHSAID"] = "SE23-XYZ"
    files["tider.csv"][11]["Sluttid"] = "2026-11-27 07:00"
    files["bokningsunderlag.csv"][7]["Bevakningsdatum"] = "2027-02-30"
    files["bokningsunderlag.csv"][9]["Personnummer"] = "19581124-3268"
    files["bokningar.csv"][2]["Personnummer"] = "19581124-3268"
    files["bokningar.csv"][5]["Status"] = bookings_status
    return files


def _two_drops(tmp_path: Path, name: str, monkeypatch, *, reuse_on: bool, second: dict | None = None):
    """Drops 1 and 2 (bookings changed, the rest the same bytes) ingested one run each."""
    landing, state = tmp_path / name / "landing", tmp_path / name / "state"
    parsed: list[tuple[str, int]] = []
    real = pipeline._ingest_file

    def spying(ctx, manifest, layout, *args, **kwargs):
        parsed.append((manifest.extract_id, layout.file))
        return real(ctx, manifest, layout, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_ingest_file", spying)
        if not reuse_on:
            patch.setattr(reuse.Reusable, "find", lambda self, layout, key: None)
        t.write_drop(landing, 1, _files())
        first = ingest_pending(landing, state, as_of=AS_OF).drops
        t.write_drop(landing, 2, second or _files(bookings_status="Avbokad"))
        later = ingest_pending(landing, state, as_of=AS_OF).drops
    return state, [*first, *later], parsed


def _table(state: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reused_files_give_the_parsed_snapshots_byte_for_byte_and_the_same_quarantine(tmp_path, monkeypatch):
    reused_state, reused, reused_parsed = _two_drops(tmp_path, "reused", monkeypatch, reuse_on=True)
    parsed_state, parsed, parsed_parsed = _two_drops(tmp_path, "parsed", monkeypatch, reuse_on=False)

    second = "20261126T080200-000002"
    # the second drop parsed only its changed file; without reuse it parsed all six
    assert [f for d, f in reused_parsed if d == second] == ["bokningar.csv"]
    assert len([f for d, f in parsed_parsed if d == second]) == 6
    assert [(d.outcome, d.reason) for d in reused] == [(d.outcome, d.reason) for d in parsed] == [
        ("accepted", None), ("accepted", None)]
    assert [[(f.file, f.rows_in, f.accepted, f.quarantined, f.warnings) for f in d.files] for d in reused] == [
        [(f.file, f.rows_in, f.accepted, f.quarantined, f.warnings) for f in d.files] for d in parsed]
    snapshots = sorted((reused_state / "snapshots" / second).glob("*.parquet"))
    assert len(snapshots) == 6
    for path in snapshots:
        assert _sha(path) == _sha(parsed_state / "snapshots" / second / path.name), path.name

    query = "SELECT * FROM quarantine ORDER BY ALL"
    quarantine = _table(reused_state, query)
    assert_frame_equal(quarantine, _table(parsed_state, query))
    # the reused files' bad rows are recorded for the second drop too, as parsing them would
    unchanged = pl.col("file") != "bokningar.csv"
    repeated = quarantine.filter(pl.col("extract_id") == second, unchanged).drop("extract_id")
    first = quarantine.filter(pl.col("extract_id") == "20261126T080100-000001", unchanged).drop("extract_id")
    assert sorted(set(repeated["file"])) == ["bokningsunderlag.csv", "tider.csv"]
    assert_frame_equal(repeated, first)
    assert_frame_equal(_table(reused_state, "SELECT extract_id, outcome, reason, counts FROM drops ORDER BY ALL"),
                       _table(parsed_state, "SELECT extract_id, outcome, reason, counts FROM drops ORDER BY ALL"))


def test_a_reused_file_whose_manifest_row_count_lies_is_rejected_as_if_parsed(tmp_path, monkeypatch):
    def lying(tmp: Path, name: str, reuse_on: bool):
        landing, state = tmp / name / "landing", tmp / name / "state"
        with monkeypatch.context() as patch:
            if not reuse_on:
                patch.setattr(reuse.Reusable, "find", lambda self, layout, key: None)
            t.write_drop(landing, 1, _files())
            ingest_pending(landing, state, as_of=AS_OF)
            t.write_drop(landing, 2, _files(), manifest_overrides={"tider.csv": {"rows": 31}})
            return ingest_pending(landing, state, as_of=AS_OF).drops[0], state

    reused, reused_state = lying(tmp_path, "reused", True)
    parsed, parsed_state = lying(tmp_path, "parsed", False)
    assert reused.outcome == parsed.outcome == "rejected"
    assert reused.reason == parsed.reason == "tider.csv: 30 data rows but the manifest says 31"
    query = "SELECT * FROM quarantine ORDER BY ALL"
    assert_frame_equal(_table(reused_state, query), _table(parsed_state, query))


@pytest.mark.parametrize(("what", "second_as_of_day"), [("reference date", 27), ("same day", 26)])
def test_a_patient_file_is_reused_only_on_the_same_reference_date(tmp_path, monkeypatch, what, second_as_of_day):
    # R13 reads a 10-digit personnummer's century from the extract's date: another day may
    # normalise the same bytes differently, so the file is parsed again
    landing, state = tmp_path / "landing", tmp_path / "state"
    parsed: list[str] = []
    real = pipeline._ingest_file

    def spying(ctx, manifest, layout, *args, **kwargs):
        parsed.append(layout.file)
        return real(ctx, manifest, layout, *args, **kwargs)

    t.write_drop(landing, 1, _files())
    ingest_pending(landing, state, as_of=AS_OF)
    monkeypatch.setattr(pipeline, "_ingest_file", spying)
    t.write_drop(landing, 2, _files(bookings_status="Avbokad"),
                 extracted_at=f"2026-11-{second_as_of_day}T08:06:00+01:00")
    as_of = datetime(2026, 11, second_as_of_day, 7, 10, tzinfo=UTC)
    drop = ingest_pending(landing, state, as_of=as_of).drops[0]
    assert drop.outcome == "accepted", drop.reason
    patient_files = {"bokningar.csv", "bokningsunderlag.csv", "av_ombokningar.csv"}
    if what == "reference date":
        assert patient_files <= set(parsed)
    else:
        assert set(parsed) == {"bokningar.csv"}
    assert not {"enheter.csv", "vardtjanster.csv"} & set(parsed)  # no patient id, no window


# Imported by the normalising path but unable to change what a file's snapshot, quarantine or
# verdict is: permissions; machine faults (never a verdict on a file); the manifest, checked on
# every drop, reused or not.
_NOT_SNAPSHOT_MODULES = {"mvg_sync.fileperms", "mvg_sync.ingest.faults", "mvg_sync.ingest.manifest"}


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, not a submodule
        return False


def _project_imports(name: str) -> set[str]:
    """The project modules (`mvg_sync`, `contracts`) that module `name` imports, anywhere in it."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from mvg_sync.ingest import reuse` names a module too
            if node.module.startswith(("mvg_sync", "contracts")):
                found |= {f"{node.module}.{alias.name}" for alias in node.names
                          if _is_module(f"{node.module}.{alias.name}")}
    return {m for m in found if m.split(".")[0] in ("mvg_sync", "contracts") and m not in ("mvg_sync", "contracts")}


def test_the_code_fingerprint_covers_every_module_a_snapshot_depends_on():
    """Issue 12 item 2: a release that changes any code a snapshot is made with parses again.
    The fingerprint once missed `rules.hsa` (HSA-id validity), so a units file unchanged for
    months would have kept a snapshot judged by the old rule."""
    roots = ["mvg_sync.ingest.normalise", "mvg_sync.ingest.reader", "contracts.cosmic", "contracts.snapshots"]
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in _NOT_SNAPSHOT_MODULES:
            continue
        seen.add(name)
        todo += _project_imports(name)
    assert seen - set(reuse.SNAPSHOT_MODULES) == set()
    assert "mvg_sync.rules.hsa" in seen  # the walk does reach the normalisers' own modules
