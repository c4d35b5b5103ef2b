"""A file streamed in many batches gives exactly the snapshot and quarantine of one batch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from mvg_sync.ingest import ingest_pending, pipeline
from mvg_sync.store.drops import load_snapshot
from tests import cosmic_drops as t

AS_OF = datetime(2026, 11, 26, 7, 10, tzinfo=UTC)
DATASETS = ("bookings", "booking_bases", "events", "slots", "units", "care_services")


def _files() -> dict[str, list[dict[str, str | None]]]:
    files = t.default_files(40)
    # bad values spread over several batches, so quarantine rows come from more than one
    files["bokningar.csv"][1]["Personnummer"] = "19581124-3268"
    files["bokningar.csv"][17].update(Status="Flyttad", Namn=None)
    files["bokningar.csv"][38]["Sluttid"] = "2026-11-27 08:30"
    files["tider.csv"][25]["EnhetHSAID"] = "SE23-XYZ"
    files["bokningsunderlag.csv"][33]["Bevakningsdatum"] = "2027-02-30"
    return files


def _ingest(tmp_path: Path, name: str, files: dict, batch_rows: int) -> tuple[Path, list]:
    landing, state = tmp_path / name / "landing", tmp_path / name / "state"
    t.write_drop(landing, 1, files)
    report = ingest_pending(landing, state, as_of=AS_OF, batch_rows=batch_rows)
    return state, report.drops


def _quarantine(state: Path) -> pl.DataFrame:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        return con.sql("SELECT * FROM quarantine ORDER BY file, source_row, column_name").pl()
    finally:
        con.close()


def test_many_batches_give_the_one_batch_snapshot_and_quarantine(tmp_path, monkeypatch):
    whole_state, whole = _ingest(tmp_path, "whole", _files(), batch_rows=1_000)
    calls: list[int] = []
    normalise_rows = pipeline.normalise_rows

    def counting(raw: pl.DataFrame, *args, **kwargs):
        calls.append(raw.height)
        return normalise_rows(raw, *args, **kwargs)

    monkeypatch.setattr(pipeline, "normalise_rows", counting)
    batched_state, batched = _ingest(tmp_path, "batched", _files(), batch_rows=7)

    assert [d.outcome for d in whole] == [d.outcome for d in batched] == ["accepted"]
    assert max(calls) <= 7 and calls.count(7) >= 4 * 5  # 40 rows: six batches per big file
    assert [(f.file, f.rows_in, f.accepted, f.quarantined, f.warnings) for f in batched[0].files] == [
        (f.file, f.rows_in, f.accepted, f.quarantined, f.warnings) for f in whole[0].files
    ]
    for dataset in DATASETS:
        assert_frame_equal(load_snapshot(batched_state, dataset), load_snapshot(whole_state, dataset))
    quarantine = _quarantine(batched_state)
    assert quarantine.height == 6
    assert_frame_equal(quarantine, _quarantine(whole_state))


def test_duplicate_ids_in_different_batches_reject_with_the_whole_file_count(tmp_path):
    files = t.default_files(40)
    files["bokningar.csv"][30]["BokningsID"] = "B2"
    files["bokningar.csv"][39]["BokningsID"] = "B3"
    _, batched = _ingest(tmp_path, "batched", files, batch_rows=7)
    _, whole = _ingest(tmp_path, "whole", files, batch_rows=1_000)
    assert batched[0].outcome == "rejected"
    assert batched[0].reason == whole[0].reason == (
        "bokningar.csv: duplicate BokningsID (2 rows repeat an id; grain violated)"
    )
