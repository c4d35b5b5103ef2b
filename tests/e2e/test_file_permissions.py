"""No file the integration writes is readable by group or others, whatever the umask (issue 14)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvg_sync.fileperms import private_dir, private_tree
from mvg_sync.ingest import pipeline
from tests.e2e.sync_world import AS_OF, make_world, prefect_env


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask: files 0644 and folders 0755 unless the code says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files, ""]:
            path = Path(folder, name)
            found[str(path.relative_to(root.parent))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _open_to_others(modes: dict[str, int]) -> dict[str, str]:
    return {path: oct(mode) for path, mode in modes.items() if mode & 0o077}


def test_a_real_sync_and_report_write_only_owner_only_files(tmp_path, prefect_harness, loose_umask):
    world = make_world(tmp_path)
    try:
        world.drop(world.region)
        synced = world.cli("sync", "--as-of", AS_OF.isoformat(), extra_env=prefect_env())
        assert synced.returncode == 0, synced.stdout + synced.stderr[-2000:]
        reported = world.cli("report", "--as-of", AS_OF.isoformat(), "--from", "2026-11-01", "--to", "2026-11-30")
        assert reported.returncode == 0, reported.stdout + reported.stderr[-2000:]
    finally:
        world.sandbox.stop()
    state = _modes(world.state)
    reports = _modes(world.root / "reports")
    # The trees hold what issue 14 found world-readable: the store, snapshots, Data Docs, reports.
    assert "state/state.duckdb" in state
    assert any(p.endswith("bookings.parquet") for p in state), sorted(state)
    assert any(p.startswith("state/gx/") and p.endswith(".html") for p in state), sorted(state)
    assert sum(p.endswith((".html", ".xlsx", ".csv")) for p in reports) >= 8, sorted(reports)
    print(f"{len(state)} state entries, {len(reports)} report entries checked")
    assert _open_to_others(state) == {}
    assert _open_to_others(reports) == {}
    assert all(mode == 0o700 for path, mode in {**state, **reports}.items() if (tmp_path / path).is_dir())


def test_landing_copies_are_owner_only_while_they_exist(tmp_path, monkeypatch, loose_umask):
    """The UTF-8 copy of a windows-1252 file holding 0x80-0x9F bytes (DuckDB's latin-1 reader
    refuses them) lives in the state folder only during ingest."""
    from tests import cosmic_drops as t

    seen: dict[str, int] = {}
    real_source = pipeline.csv_source

    def watching_source(path, encoding, scan, tmp):
        source = real_source(path, encoding, scan, tmp)
        for entry in (tmp.parent, tmp, source.path):
            if entry.exists() and tmp_path / "state" in (entry, *entry.parents):
                seen[str(entry.relative_to(tmp_path))] = stat.S_IMODE(entry.stat().st_mode)
        return source

    monkeypatch.setattr(pipeline, "csv_source", watching_source)
    files = t.default_files(5)
    files["bokningar.csv"][0]["Namn"] = "Öberg – Åsa"  # en dash: byte 0x96 in windows-1252
    t.write_drop(tmp_path / "landing", 1, files)
    report = pipeline.ingest_pending(tmp_path / "landing", tmp_path / "state", as_of=AS_OF)
    assert [d.outcome for d in report.drops] == ["accepted"]
    copies = {p: m for p, m in seen.items() if p.endswith(".csv")}
    assert list(copies) == ["state/tmp/20261126T080100-000001/bokningar.csv"], seen  # only that file
    assert _open_to_others(seen) == {}
    assert _open_to_others(_modes(tmp_path / "state")) == {}


def test_private_dir_creates_missing_parents_owner_only_and_leaves_existing_ones(tmp_path, loose_umask):
    os.chmod(tmp_path, 0o755)
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    for path in (tmp_path / "a", tmp_path / "a" / "b", made):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755, "an existing parent is not ours to change"


def test_private_tree_does_not_follow_symlinks_out_of_the_tree(tmp_path, loose_umask):
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    tree = tmp_path / "docs"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "page.html").write_text("<p>")
    (tree / "link").symlink_to(outside)
    private_tree(tree)
    assert stat.S_IMODE((tree / "sub" / "page.html").stat().st_mode) == 0o600
    assert stat.S_IMODE((tree / "sub").stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
