"""`mvg-sync status` text: processed drops from the state store, pending ones from the landing folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mvg_sync.ingest.status import describe_state
from mvg_sync.store import drops as state

PROCESSED_AT = datetime(2026, 11, 26, 8, 6, tzinfo=UTC)


def _folder(landing: Path, name: str, *, manifest: bool) -> None:
    folder = landing / name
    folder.mkdir(parents=True)
    (folder / "bokningar.csv").write_text("Bokningsid\n")
    if manifest:
        (folder / "manifest.json").write_text("{}")


def _processed(state_dir: Path, *extract_ids: str) -> None:
    con = state.connect(state_dir)
    try:
        for n, extract_id in enumerate(extract_ids, start=1):
            state.record_drop(
                con, extract_id=extract_id, sequence=n, extracted_at=PROCESSED_AT, window=None,
                outcome="accepted", reason=None, processed_at=PROCESSED_AT, counts={},
            )
    finally:
        con.close()


def _landing_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Landing:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Drops:"))
    return lines[start:end]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    state_dir, landing = tmp_path / "state", tmp_path / "landing"
    _folder(landing, "20261126T080000-000001", manifest=True)
    _folder(landing, "20261126T080500-000002", manifest=True)
    _folder(landing, "20261126T081500-000004", manifest=False)
    _folder(landing, "20261126T081000-000003", manifest=True)
    (landing / "notes.txt").write_text("not a drop")
    _processed(state_dir, "20261126T080000-000001")
    return state_dir, landing


def test_status_lists_pending_and_being_written_drops_beside_processed_ones(world):
    state_dir, landing = world
    text = describe_state(state_dir, landing_dir=landing)

    assert _landing_lines(text) == [
        "Landing: 2 pending, 1 being written",
        "  20261126T080500-000002: pending",
        "  20261126T081000-000003: pending",
        "  20261126T081500-000004: being written (no manifest yet)",
    ]
    assert "Drops: accepted 1" in text
    assert "  20261126T080000-000001 seq 1: accepted" in text.splitlines()


def test_status_without_landing_dir_shows_processed_drops_only(world):
    state_dir, _ = world
    text = describe_state(state_dir)
    assert "Landing:" not in text
    assert text.splitlines()[0] == "Drops: accepted 1"


def test_status_before_any_drop_is_processed_still_lists_the_landing_folder(tmp_path):
    landing = tmp_path / "landing"
    _folder(landing, "20261126T080000-000001", manifest=True)
    _folder(landing, "20261126T080500-000002", manifest=False)

    text = describe_state(tmp_path / "state", landing)

    assert text.splitlines() == [
        "ingestion: no drops processed yet",
        "Landing: 1 pending, 1 being written",
        "  20261126T080000-000001: pending",
        "  20261126T080500-000002: being written (no manifest yet)",
    ]
    assert not (tmp_path / "state").exists()  # status only reads


def test_status_names_at_most_last_drops_waiting_folders(world):
    state_dir, landing = world
    lines = _landing_lines(describe_state(state_dir, landing_dir=landing, last_drops=1))
    assert lines == [
        "Landing: 2 pending, 1 being written",
        "  20261126T080500-000002: pending",
        "  ... and 2 more",
    ]


def test_status_says_when_the_landing_folder_is_missing(world, tmp_path):
    state_dir, _ = world
    missing = tmp_path / "nowhere"
    assert _landing_lines(describe_state(state_dir, landing_dir=missing)) == [
        f"Landing: folder {missing} missing"
    ]


def test_status_shows_a_manifest_that_is_not_json_yet_as_being_written_until_the_grace_ends(tmp_path):
    landing = tmp_path / "landing"
    _folder(landing, "20261126T080000-000001", manifest=True)
    half = landing / "20261126T080000-000001" / "manifest.json"
    half.write_text('{"extract_id": "20261126T0800', encoding="utf-8")  # a non-atomic writer, mid-way
    written_at = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    os.utime(half, (written_at.timestamp(), written_at.timestamp()))

    within = describe_state(tmp_path / "state", landing, now=written_at + timedelta(minutes=10))
    after = describe_state(tmp_path / "state", landing, now=written_at + timedelta(minutes=11))

    assert within.splitlines()[1:] == [
        "Landing: 0 pending, 1 being written",
        "  20261126T080000-000001: being written (manifest not complete yet)",
    ]
    assert after.splitlines()[1:] == ["Landing: 1 pending, 0 being written", "  20261126T080000-000001: pending"]
