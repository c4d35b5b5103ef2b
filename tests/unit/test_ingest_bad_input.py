"""One test per kind of bad input in cosmic-extracts.md: a named reason, and nothing downstream changes."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.ingest import describe_state, ingest_drop, ingest_pending, pipeline
from mvg_sync.ingest.reader import CHUNK, scan_file
from mvg_sync.store.drops import load_snapshot
from tests import cosmic_drops as t

AS_OF = datetime(2026, 11, 26, 7, 10, tzinfo=UTC)
DATASETS = ("bookings", "booking_bases", "events", "slots", "units", "care_services")


def downstream(state: Path) -> tuple[list[tuple], dict[str, pl.DataFrame | None]]:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        pointers = con.execute("SELECT * FROM snapshot_pointer ORDER BY dataset").fetchall()
    finally:
        con.close()
    return pointers, {d: load_snapshot(state, d) for d in DATASETS}


def assert_unchanged(state: Path, before: tuple[list[tuple], dict[str, pl.DataFrame | None]]) -> None:
    pointers, frames = downstream(state)
    assert pointers == before[0]
    for dataset, frame in frames.items():
        expected = before[1][dataset]
        assert (frame is None) == (expected is None)
        if frame is not None and expected is not None:
            assert_frame_equal(frame, expected)


def quarantine(state: Path) -> list[dict]:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        rel = con.sql("SELECT extract_id, file, source_row, column_name, rule, reason FROM quarantine")
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, Path, tuple]:
    """A landing folder with one accepted drop (sequence 1) and the downstream state after it."""
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1)
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [d.outcome for d in report.drops] == ["accepted"]
    return landing, state, downstream(state)


def rejected(landing: Path, state: Path) -> str:
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [d.outcome for d in report.drops] == ["rejected"]
    rows = [q for q in quarantine(state) if q["extract_id"] == report.drops[0].extract_id]
    assert len(rows) == 1 and rows[0]["source_row"] is None
    assert rows[0]["reason"] == report.drops[0].reason
    return report.drops[0].reason


def test_wrong_encoding_declared_utf8_but_windows_1252_rejected(base):
    landing, state, before = base
    data = t.csv_text(t.default_files()["bokningar.csv"], list(t.LAYOUT_BY_FILE["bokningar.csv"].headers))
    t.write_drop(landing, 2, raw={"bokningar.csv": data.encode("cp1252")}, encoding="utf-8")
    reason = rejected(landing, state)
    assert reason.startswith("bokningar.csv: invalid UTF-8 bytes")
    assert_unchanged(state, before)


def test_wrong_encoding_declared_windows_1252_but_utf8_rejected(base):
    landing, state, before = base
    data = t.csv_text(t.default_files()["bokningar.csv"], list(t.LAYOUT_BY_FILE["bokningar.csv"].headers))
    t.write_drop(landing, 2, raw={"bokningar.csv": data.encode("utf-8")})
    reason = rejected(landing, state)
    assert "declared windows-1252 but holds UTF-8 multibyte sequences" in reason
    assert_unchanged(state, before)


def test_mixed_encodings_rejected(base):
    landing, state, before = base
    headers = list(t.LAYOUT_BY_FILE["bokningar.csv"].headers)
    rows = t.default_files()["bokningar.csv"]
    data = csv_text_bytes = t.csv_text(rows[:2], headers).encode("cp1252")
    # third row written by another tool in UTF-8
    data = csv_text_bytes + t.csv_text(rows[2:], headers).split("\r\n", 1)[1].encode("utf-8")
    t.write_drop(landing, 2, raw={"bokningar.csv": data})
    assert "wrong or mixed encoding" in rejected(landing, state)
    assert_unchanged(state, before)


def test_utf8_with_bom_accepted_and_names_survive(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1, encoding="utf-8-sig")
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert report.drops[0].outcome == "accepted"
    bookings = load_snapshot(state, "bookings")
    assert bookings["patient_name"].to_list() == ["Öberg, Åsa"] * 3
    assert bookings["care_service"][0] == "Psykisk hälsa|utredning|läkare"
    assert bookings["booking_info"][0] == 'Telefonnr:+46701234567; "ring"\r\nBokning via webbtidbok'


def test_windows_1252_bytes_above_latin1_are_decoded(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["bokningar.csv"][0]["Bokningsinformation"] = "Avgift 200 € – ’ok’"
    t.write_drop(landing, 1, files)
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    assert load_snapshot(state, "bookings")["booking_info"][0] == "Avgift 200 € – ’ok’"


def test_truncated_file_rejected(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2)
    data = (folder / "bokningar.csv").read_bytes()
    (folder / "bokningar.csv").write_bytes(data[:-25])  # the export died mid-row
    reason = rejected(landing, state)
    assert reason == "bokningar.csv: sha256 differs from the manifest (truncated: last row has no line end)"
    assert_unchanged(state, before)


def test_file_rows_disagree_with_manifest_rejected(base):
    landing, state, before = base
    t.write_drop(landing, 2, manifest_overrides={"tider.csv": {"rows": 4}})
    assert rejected(landing, state) == "tider.csv: 3 data rows but the manifest says 4"
    assert_unchanged(state, before)


def test_file_sha_disagrees_with_manifest_rejected_and_kept_on_disk(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2, manifest_overrides={"av_ombokningar.csv": {"sha256": "0" * 64}})
    assert rejected(landing, state) == "av_ombokningar.csv: sha256 differs from the manifest"
    assert (folder / "av_ombokningar.csv").exists()
    assert_unchanged(state, before)


def test_listed_file_missing_rejected(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2)
    (folder / "tider.csv").unlink()
    assert rejected(landing, state) == "tider.csv: listed in the manifest but missing"
    assert_unchanged(state, before)


def test_missing_manifest_is_still_being_written(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2, write_manifest=False)
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert report.drops == []
    assert_unchanged(state, before)
    t.write_drop(landing, 2, extract_id=folder.name)  # the export finishes
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF).drops] == ["accepted"]


def test_duplicate_ids_rejected(base):
    landing, state, before = base
    files = t.default_files()
    files["bokningar.csv"][2]["BokningsID"] = "B1"
    t.write_drop(landing, 2, files)
    assert rejected(landing, state) == "bokningar.csv: duplicate BokningsID (1 rows repeat an id; grain violated)"
    assert_unchanged(state, before)


def test_changed_column_order_accepted_with_same_snapshot(base, tmp_path):
    landing, state, before = base
    other_landing, other_state = tmp_path / "l2", tmp_path / "s2"
    headers = {name: list(reversed(layout.headers)) for name, layout in t.LAYOUT_BY_FILE.items()}
    t.write_drop(other_landing, 1, headers=headers)
    assert ingest_pending(other_landing, other_state, as_of=AS_OF).drops[0].outcome == "accepted"
    for dataset in DATASETS:
        assert_frame_equal(load_snapshot(other_state, dataset), before[1][dataset])


def test_unknown_column_warned_and_accepted(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    headers = list(t.LAYOUT_BY_FILE["tider.csv"].headers) + ["NyKolumn"]
    for row in files["tider.csv"]:
        row["NyKolumn"] = "x"
    t.write_drop(landing, 1, files, headers={"tider.csv": headers})
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert drop.outcome == "accepted"
    tider = next(f for f in drop.files if f.file == "tider.csv")
    assert tider.warnings == ["tider.csv: unknown column NyKolumn ignored"]
    assert "NyKolumn" not in load_snapshot(state, "slots").columns
    assert "unknown column NyKolumn" in describe_state(state)


def test_missing_required_column_rejected(base):
    landing, state, before = base
    headers = [h for h in t.LAYOUT_BY_FILE["bokningar.csv"].headers if h != "Personnummer"]
    t.write_drop(landing, 2, headers={"bokningar.csv": headers})
    assert rejected(landing, state) == "bokningar.csv: missing required column Personnummer"
    assert_unchanged(state, before)


def test_missing_optional_column_accepted_as_null(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    headers = [h for h in t.LAYOUT_BY_FILE["bokningar.csv"].headers if h != "Avbokningsorsak"]
    t.write_drop(landing, 1, headers={"bokningar.csv": headers})
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    assert load_snapshot(state, "bookings")["cancel_reason"].null_count() == 3


def _one_bad_value(tmp_path: Path, file: str, index: int, **change: str | None) -> tuple[Path, list[dict]]:
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files[file][index].update(change)
    t.write_drop(landing, 1, files)
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert drop.outcome == "accepted"
    counts = next(f for f in drop.files if f.file == file)
    assert (counts.rows_in, counts.accepted, counts.quarantined) == (3, 2, 1)
    return state, quarantine(state)


def _assert_value_absent(rows: list[dict], value: str) -> None:
    assert all(value not in (r["reason"] or "") for r in rows)


def test_r13_invalid_personnummer_quarantined(tmp_path):
    state, rows = _one_bad_value(tmp_path, "bokningar.csv", 1, Personnummer="19581124-3268")
    assert [(r["file"], r["source_row"], r["column_name"], r["rule"]) for r in rows] == [
        ("bokningar.csv", 2, "Personnummer", "R13")
    ]
    assert rows[0]["reason"].startswith("invalid personnummer")
    _assert_value_absent(rows, "3268")
    assert load_snapshot(state, "bookings")["booking_id"].to_list() == ["B1", "B3"]


def test_invalid_hsa_id_quarantined(tmp_path):
    state, rows = _one_bad_value(tmp_path, "tider.csv", 0, EnhetHSAID="SE23-XYZ")
    assert [(r["source_row"], r["column_name"], r["rule"]) for r in rows] == [(1, "EnhetHSAID", "contract")]
    assert rows[0]["reason"].startswith("invalid HSA-id")
    _assert_value_absent(rows, "SE23-XYZ")
    assert load_snapshot(state, "slots")["slot_id"].to_list() == ["T2", "T3"]


def test_impossible_date_quarantined(tmp_path):
    state, rows = _one_bad_value(tmp_path, "bokningsunderlag.csv", 2, Bevakningsdatum="2027-02-30")
    assert [(r["source_row"], r["column_name"]) for r in rows] == [(3, "Bevakningsdatum")]
    assert rows[0]["reason"].startswith("invalid date")
    assert load_snapshot(state, "booking_bases")["basis_id"].to_list() == ["U1", "U2"]


def test_impossible_date_time_quarantined(tmp_path):
    _, rows = _one_bad_value(tmp_path, "bokningar.csv", 0, Registreringsdatum="2026-13-01 10:00")
    assert [(r["source_row"], r["column_name"]) for r in rows] == [(1, "Registreringsdatum")]
    assert rows[0]["reason"].startswith("invalid date-time")


def test_dst_gap_quarantined_never_guessed(tmp_path):
    state, rows = _one_bad_value(
        tmp_path, "bokningar.csv", 0, BokadTid="2027-03-28 02:30", Sluttid="2027-03-28 03:30"
    )
    assert [(r["source_row"], r["column_name"]) for r in rows] == [(1, "BokadTid")]
    assert "invalid date-time" in rows[0]["reason"]
    assert "B1" not in load_snapshot(state, "bookings")["booking_id"].to_list()


def test_dst_overlap_quarantined_never_guessed(tmp_path):
    state, rows = _one_bad_value(tmp_path, "tider.csv", 1, Start="2026-10-25 02:30", Slut="2026-10-25 02:50")
    assert sorted((r["source_row"], r["column_name"]) for r in rows) == [(2, "Slut"), (2, "Start")]
    assert "T2" not in load_snapshot(state, "slots")["slot_id"].to_list()


def test_end_before_start_quarantined(tmp_path):
    _, rows = _one_bad_value(tmp_path, "bokningar.csv", 2, Sluttid="2026-11-27 08:30")
    assert [(r["source_row"], r["column_name"], r["reason"]) for r in rows] == [
        (3, "Sluttid", "end is not after BokadTid")
    ]


def test_unknown_status_and_missing_required_value_quarantined(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["bokningar.csv"][0]["Status"] = "Flyttad"
    files["bokningar.csv"][1]["Namn"] = None
    files["bokningar.csv"][2].update(Status="Planerad", BokadTid=None, Sluttid=None)
    t.write_drop(landing, 1, files)
    ingest_pending(landing, state, as_of=AS_OF)
    rows = sorted((r["source_row"], r["column_name"], r["reason"]) for r in quarantine(state))
    assert rows == [
        (1, "Status", "not one of the values allowed in Status"),
        (2, "Namn", "required value missing"),
    ]
    planned = load_snapshot(state, "bookings").row(0, named=True)
    assert (planned["status"], planned["start_at"]) == ("planned", None)


def test_empty_file_without_header_rejected(base):
    landing, state, before = base
    t.write_drop(landing, 2, raw={"tider.csv": b""}, manifest_overrides={"tider.csv": {"rows": 0}})
    assert rejected(landing, state) == "tider.csv: empty file (no header row)"
    assert_unchanged(state, before)


def test_header_only_optional_file_accepted(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["av_ombokningar.csv"] = []
    t.write_drop(landing, 1, files)
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    assert load_snapshot(state, "events").height == 0


def test_empty_bookings_file_on_a_first_drop_accepted_with_its_slots(tmp_path):
    # issue 11: an empty bookings file is a mass cancellation for the guard to judge; on a first
    # drop it cancels nothing, and tider.csv is still needed for the HSL report
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["bokningar.csv"] = []
    t.write_drop(landing, 1, files)
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert (drop.outcome, drop.reason) == ("accepted", None)
    assert load_snapshot(state, "bookings").height == 0
    assert load_snapshot(state, "slots")["slot_id"].to_list() == ["T1", "T2", "T3"]


def test_empty_bookings_file_after_a_full_drop_accepted_for_the_guard_to_hold(tmp_path):
    # Neither the shrink check nor the quality checkpoint rejects it: a rejection could not be
    # approved; the sync's mass-cancellation guard holds it instead (tests/e2e/test_empty_bookings.py).
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1, t.default_files(40))
    ingest_pending(landing, state, as_of=AS_OF)
    files = t.default_files(40)
    files["bokningar.csv"] = []
    t.write_drop(landing, 2, files)
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert drop.outcome == "accepted", drop.reason
    assert "bookings: row_ratio" in " ".join(drop.warnings)  # still shown to operators
    assert load_snapshot(state, "bookings").height == 0


def test_file_shrinking_below_half_rejected(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    t.write_drop(landing, 1, t.default_files(40))
    ingest_pending(landing, state, as_of=AS_OF)
    before = downstream(state)
    t.write_drop(landing, 2, t.default_files(19))
    # bookings are left to the guard (above); the next file that shrank rejects the drop
    assert rejected(landing, state).startswith("bokningsunderlag.csv: 19 data rows, under 50% of the previous")
    assert_unchanged(state, before)


def test_drop_out_of_order_is_stale(base):
    landing, state, _ = base
    t.write_drop(landing, 3)
    ingest_pending(landing, state, as_of=AS_OF)
    after_three = downstream(state)
    t.write_drop(landing, 2)  # arrives late, sorts before 3
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [(d.outcome, d.reason) for d in report.drops] == [
        ("stale", "older than the newest accepted drop 20261126T080300-000003")
    ]
    assert_unchanged(state, after_three)


def test_drop_arriving_twice_is_read_once(base):
    landing, state, before = base
    folder = landing / "20261126T080100-000001"
    assert ingest_pending(landing, state, as_of=AS_OF).drops == []  # already processed: skipped
    assert ingest_drop(folder, state, as_of=AS_OF).outcome == "duplicate"
    shutil.copytree(folder, landing / "20261126T080100-000001-again")  # delivered a second time
    report = ingest_pending(landing, state, as_of=AS_OF)
    # recorded under its own folder name, so it is read once (and retention can delete it)
    assert [(d.extract_id, d.outcome, d.reason) for d in report.drops] == [(
        "20261126T080100-000001-again", "rejected",
        "manifest.json: extract_id 20261126T080100-000001 differs from the folder name "
        "20261126T080100-000001-again; 20261126T080100-000001 already processed (accepted)",
    )]
    assert ingest_pending(landing, state, as_of=AS_OF).drops == []
    assert ingest_drop(landing / "20261126T080100-000001-again", state, as_of=AS_OF).outcome == "duplicate"
    assert_unchanged(state, before)


def _drop_log(state: Path) -> list[tuple]:
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:
        return con.execute("SELECT extract_id, sequence, outcome FROM drops ORDER BY extract_id").fetchall()
    finally:
        con.close()


def test_manifest_extract_id_other_than_the_folder_name_rejected_under_the_folder_name(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["extract_id"] = "20261126T080200-000099"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    assert rejected(landing, state) == (
        "manifest.json: extract_id 20261126T080200-000099 differs from the folder name 20261126T080200-000002"
    )
    assert _drop_log(state) == [
        ("20261126T080100-000001", 1, "accepted"), ("20261126T080200-000002", None, "rejected"),
    ]
    assert ingest_pending(landing, state, as_of=AS_OF).drops == []  # not read again every run
    assert_unchanged(state, before)
    # its manifest is not trusted, so its sequence is still free for the drop Cosmic meant
    t.write_drop(landing, 2, extract_id="20261126T080230-000002")
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF).drops] == ["accepted"]


def test_sequence_gap_recorded(base):
    landing, state, _ = base
    t.write_drop(landing, 5)
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert report.gaps == [(1, 5)]
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    assert con.execute("SELECT after_sequence, before_sequence, missing FROM sequence_gaps").fetchall() == [(1, 5, 3)]
    con.close()
    assert "3 missing between 1 and 5" in describe_state(state)


def test_optional_files_keep_last_seen(base):
    landing, state, before = base
    files = t.default_files()
    del files["enheter.csv"], files["vardtjanster.csv"]
    t.write_drop(landing, 2, files)
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    pointers = dict((d, e) for d, e, *_ in downstream(state)[0])
    assert pointers["units"] == "20261126T080100-000001"
    assert pointers["bookings"] == "20261126T080200-000002"
    assert_frame_equal(load_snapshot(state, "units"), before[1]["units"])


# Autumn fall-back 2026-10-25: 03:00 CEST -> 02:00 CET. Sequence 101 is extracted after 100,
# but its local-time extract_id sorts before it.
BEFORE_FALL_BACK = ("20261025T025500-000100", "2026-10-25T02:55:00+02:00")
AFTER_FALL_BACK = ("20261025T020500-000101", "2026-10-25T02:05:00+01:00")
AS_OF_FALL_BACK = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)


def _fall_back_drop(landing: Path, sequence: int, ids: tuple[str, str]) -> None:
    t.write_drop(landing, sequence, extract_id=ids[0], extracted_at=ids[1])


def test_r11_drop_after_the_autumn_fall_back_is_newer_by_sequence_not_by_local_name(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    _fall_back_drop(landing, 100, BEFORE_FALL_BACK)
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF_FALL_BACK).drops] == ["accepted"]
    _fall_back_drop(landing, 101, AFTER_FALL_BACK)
    report = ingest_pending(landing, state, as_of=AS_OF_FALL_BACK)
    assert [(d.extract_id, d.outcome, d.reason) for d in report.drops] == [(AFTER_FALL_BACK[0], "accepted", None)]
    assert {e for _, e, *_ in downstream(state)[0]} == {AFTER_FALL_BACK[0]}
    assert report.gaps == []
    listed = [line.split()[0] for line in describe_state(state).splitlines() if " seq " in line]
    assert listed == [AFTER_FALL_BACK[0], BEFORE_FALL_BACK[0]]  # newest first


def test_r11_drops_across_the_autumn_fall_back_in_one_run_are_processed_in_sequence_order(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    _fall_back_drop(landing, 101, AFTER_FALL_BACK)
    _fall_back_drop(landing, 100, BEFORE_FALL_BACK)
    report = ingest_pending(landing, state, as_of=AS_OF_FALL_BACK)
    assert [(d.sequence, d.outcome) for d in report.drops] == [(100, "accepted"), (101, "accepted")]
    assert {e for _, e, *_ in downstream(state)[0]} == {AFTER_FALL_BACK[0]}
    # a late drop is still stale by its sequence, whatever its name
    _fall_back_drop(landing, 99, ("20261025T025000-000099", "2026-10-25T02:50:00+02:00"))
    late = ingest_pending(landing, state, as_of=AS_OF_FALL_BACK).drops
    assert [(d.outcome, d.reason) for d in late] == [
        ("stale", f"older than the newest accepted drop {AFTER_FALL_BACK[0]}")
    ]


def _break_snapshot_contract(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    import contracts.snapshots

    real = contracts.snapshots.validate_snapshot

    def breaking(dataset: str, frame: pl.DataFrame) -> None:
        if dataset == "bookings":
            raise error
        real(dataset, frame)

    monkeypatch.setattr(contracts.snapshots, "validate_snapshot", breaking)


def _bookings_changed() -> dict[str, list[dict[str, str | None]]]:
    """The default drop with one booking's text changed: bokningar.csv is parsed again (a file
    equal to the previous accepted drop's reuses its snapshot, contract already passed)."""
    files = t.default_files()
    files["bokningar.csv"][0]["Bokningsinformation"] = "Bokning via webbtidbok"
    return files


def test_snapshot_contract_failure_rejects_the_drop_and_later_drops_still_sync(base, monkeypatch):
    from contracts.snapshots import SnapshotContractError

    landing, state, before = base
    # a check name is never a value; the mask is the safe side should one ever carry a value
    _break_snapshot_contract(monkeypatch, SnapshotContractError("bookings: patient_id: str_matches 19581124-3268"))
    t.write_drop(landing, 2, _bookings_changed())
    reason = rejected(landing, state)
    assert reason == "bokningar.csv: breaks the snapshot contract (bookings: patient_id: str_matches XXXXXXXX-XXXX)"
    rows = [q for q in quarantine(state) if q["extract_id"] == "20261126T080200-000002"]
    assert [(q["file"], q["rule"]) for q in rows] == [("bokningar.csv", "contract")]
    assert not (state / "snapshots" / "20261126T080200-000002").exists()
    assert_unchanged(state, before)

    monkeypatch.undo()
    t.write_drop(landing, 3)
    report = ingest_pending(landing, state, as_of=AS_OF)
    assert [(d.extract_id, d.outcome) for d in report.drops] == [("20261126T080300-000003", "accepted")]


def test_unexpected_error_in_one_drop_rejects_it_as_internal_error_and_logs_the_masked_traceback(
    base, monkeypatch, caplog
):
    from mvg_sync.logfilter import PiiFilter

    landing, state, before = base
    _break_snapshot_contract(monkeypatch, RuntimeError("bug near 19581124-3268"))
    t.write_drop(landing, 2, _bookings_changed())
    with caplog.at_level("ERROR", logger="mvg_sync.ingest.pipeline"):
        assert rejected(landing, state) == "internal error: RuntimeError"
    assert [q["rule"] for q in quarantine(state) if q["extract_id"] == "20261126T080200-000002"] == ["internal"]
    assert_unchanged(state, before)
    record = next(r for r in caplog.records if r.levelname == "ERROR")
    # Where another test already installed the filter on this logger, the record arrives with
    # its traceback rendered and masked (exc_info dropped); filtering again is idempotent.
    assert record.exc_info is not None or record.exc_text
    PiiFilter().filter(record)
    assert "RuntimeError: bug near XXXXXXXX-XXXX" in record.exc_text
    assert "3268" not in record.exc_text + record.getMessage()

    monkeypatch.undo()
    t.write_drop(landing, 3)
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF).drops] == ["accepted"]


WRITTEN_AT = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # wall clock, unrelated to AS_OF on purpose


def _half_written_manifest(folder: Path) -> None:
    manifest = folder / "manifest.json"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text[: len(text) // 2], encoding="utf-8")  # a non-atomic writer, mid-way
    os.utime(manifest, (WRITTEN_AT.timestamp(), WRITTEN_AT.timestamp()))


def test_manifest_not_json_yet_is_being_written_and_accepted_once_complete(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2)
    _half_written_manifest(folder)
    now = WRITTEN_AT + timedelta(minutes=9)

    assert ingest_pending(landing, state, as_of=AS_OF, now=now).drops == []
    assert ingest_drop(folder, state, as_of=AS_OF, now=now) is None
    assert folder.name not in [e for e, *_ in _drop_log(state)]
    assert f"  {folder.name}: being written (manifest not complete yet)" in describe_state(state, landing, now=now)
    assert_unchanged(state, before)

    t.write_drop(landing, 2)  # the writer finishes the manifest
    assert [d.outcome for d in ingest_pending(landing, state, as_of=AS_OF, now=now).drops] == ["accepted"]


def test_manifest_not_json_for_longer_than_the_grace_is_rejected(base):
    landing, state, before = base
    folder = t.write_drop(landing, 2)
    _half_written_manifest(folder)
    now = WRITTEN_AT + timedelta(minutes=11)

    assert f"  {folder.name}: pending" in describe_state(state, landing, now=now)
    report = ingest_pending(landing, state, as_of=AS_OF, now=now)
    assert [(d.extract_id, d.outcome, d.reason) for d in report.drops] == [
        (folder.name, "rejected", "manifest.json: not readable JSON (JSONDecodeError) for over 10 minutes")
    ]
    assert [(q["file"], q["rule"]) for q in quarantine(state) if q["extract_id"] == folder.name] == [
        ("manifest.json", "manifest")
    ]
    assert ingest_pending(landing, state, as_of=AS_OF, now=now).drops == []
    assert_unchanged(state, before)


# --- issue 14: bad input that slipped through ---------------------------------------------

BOOKING_HEADERS = list(t.LAYOUT_BY_FILE["bokningar.csv"].headers)


def test_nul_byte_in_a_field_quarantines_the_row_naming_file_row_and_column(tmp_path):
    state, rows = _one_bad_value(tmp_path, "bokningar.csv", 1, Bokningsinformation="Ring\x00 före besöket")
    assert [(r["file"], r["source_row"], r["column_name"], r["rule"], r["reason"]) for r in rows] == [
        ("bokningar.csv", 2, "Bokningsinformation", "contract", "holds a NUL byte (\\x00), which no text value may hold")
    ]
    bookings = load_snapshot(state, "bookings")
    assert bookings["booking_id"].to_list() == ["B1", "B3"]
    assert not bookings["booking_info"].str.contains("\x00", literal=True).any()


def test_nul_byte_in_a_utf8_file_and_in_a_typed_column_quarantined(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["bokningar.csv"][0]["Resurs"] = "Lind,\x00Per"
    files["tider.csv"][2]["Start"] = "2026-11-30 10:00\x00"
    t.write_drop(landing, 1, files, encoding="utf-8")
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    assert sorted((r["file"], r["source_row"], r["column_name"]) for r in quarantine(state)) == [
        ("bokningar.csv", 1, "Resurs"), ("tider.csv", 3, "Start"),
    ]
    assert load_snapshot(state, "slots")["slot_id"].to_list() == ["T1", "T2"]


def test_nul_check_runs_on_the_files_holding_a_nul_byte_only(tmp_path, monkeypatch):
    """Issue 12: a file whose bytes hold no NUL skips the per-value check; one that does keeps it."""
    seen: dict[str, set[bool]] = {}
    normalise_rows = pipeline.normalise_rows

    def spying(raw, layout, *args, **kwargs):
        if "may_hold_nul" in kwargs:  # a batch of the file (not the call that reads the schema)
            seen.setdefault(layout.file, set()).add(kwargs["may_hold_nul"])
        return normalise_rows(raw, layout, *args, **kwargs)

    monkeypatch.setattr(pipeline, "normalise_rows", spying)
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    files["bokningar.csv"][1]["Bokningsinformation"] = "Ring\x00 före besöket"
    t.write_drop(landing, 1, files)
    assert ingest_pending(landing, state, as_of=AS_OF).drops[0].outcome == "accepted"
    assert seen == {name: {name == "bokningar.csv"} for name in files}
    assert [(r["file"], r["source_row"], r["column_name"]) for r in quarantine(state)] == [
        ("bokningar.csv", 2, "Bokningsinformation")
    ]


def test_file_scan_finds_a_nul_byte_anywhere_in_the_file(tmp_path):
    path = tmp_path / "tider.csv"
    body = b"a\r\n" + b"x" * (CHUNK + 10) + b"\r\n"
    path.write_bytes(body)
    assert scan_file(path, "windows-1252").has_nul is False
    path.write_bytes(body[:-5] + b"\x00" + body[-4:])  # in the second 1 MB chunk
    assert scan_file(path, "utf-8").has_nul is True


def test_booking_and_slot_starting_outside_the_manifest_window_quarantined_with_rule_window(tmp_path):
    # manifest window 2026-11-19..2027-02-24 (t.write_drop), inclusive local dates
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files(5)
    files["bokningar.csv"][0].update(BokadTid="2027-02-25 09:00", Sluttid="2027-02-25 09:30")  # day after
    files["bokningar.csv"][1].update(BokadTid="2026-11-18 23:30", Sluttid="2026-11-18 23:50")  # day before
    # 00:30 local on the first day is still 2026-11-18 in UTC: the window is local dates
    files["bokningar.csv"][2].update(BokadTid="2026-11-19 00:30", Sluttid="2026-11-19 00:50")
    files["bokningar.csv"][3].update(BokadTid="2027-02-24 23:30", Sluttid="2027-02-24 23:50")  # last day
    files["tider.csv"][4].update(Start="2027-03-01 10:00", Slut="2027-03-01 10:20")
    t.write_drop(landing, 1, files)
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert drop.outcome == "accepted"
    reason = "start outside the manifest's window 2026-11-19..2027-02-24"
    assert sorted((r["file"], r["source_row"], r["column_name"], r["rule"], r["reason"]) for r in quarantine(state)) == [
        ("bokningar.csv", 1, "BokadTid", "window", reason),
        ("bokningar.csv", 2, "BokadTid", "window", reason),
        ("tider.csv", 5, "Start", "window", reason),
    ]
    assert load_snapshot(state, "bookings")["booking_id"].to_list() == ["B3", "B4", "B5"]
    assert load_snapshot(state, "slots")["slot_id"].to_list() == ["T1", "T2", "T3", "T4"]
    con = duckdb.connect(str(state / "state.duckdb"), read_only=True)
    try:  # the planner sees them as existing-but-unusable (never pushed, never cancelled as vanished)
        assert sorted(r[0] for r in con.execute(
            "SELECT record_key FROM quarantine WHERE file = 'bokningar.csv'").fetchall()) == ["B1", "B2"]
    finally:
        con.close()


@pytest.mark.parametrize("encoding", ["windows-1252", "utf-8"])
def test_mixed_crlf_and_lf_row_ends_accepted_with_free_text_line_breaks_kept(tmp_path, encoding):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files(5)
    files["bokningar.csv"][3]["Bokningsinformation"] = "bare LF\ninside; quotes"
    text = t.csv_text(files["bokningar.csv"], BOOKING_HEADERS, row_ends=["\r\n", "\r\n", "\n"])
    python_encoding = "cp1252" if encoding == "windows-1252" else "utf-8"
    t.write_drop(landing, 1, files, encoding=encoding, raw={"bokningar.csv": text.encode(python_encoding)})
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert (drop.outcome, drop.reason) == ("accepted", None)
    counts = next(f for f in drop.files if f.file == "bokningar.csv")
    assert (counts.rows_in, counts.accepted) == (5, 5)
    assert counts.warnings == ["bokningar.csv: rows end with both CRLF and LF; read with either as a row end"]
    info = load_snapshot(state, "bookings")["booking_info"].to_list()
    assert info[0] == 'Telefonnr:+46701234567; "ring"\r\nBokning via webbtidbok'  # CRLF inside quotes kept
    assert info[3] == "bare LF\ninside; quotes"


def test_ten_mb_field_accepted_whole(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    files = t.default_files()
    long_text = ("Lång anteckning; " * ((10 << 20) // 17 + 1))[: 10 << 20]
    files["bokningar.csv"][1]["Bokningsinformation"] = long_text
    t.write_drop(landing, 1, files)
    drop = ingest_pending(landing, state, as_of=AS_OF).drops[0]
    assert (drop.outcome, drop.reason) == ("accepted", None)
    info = load_snapshot(state, "bookings")["booking_info"]
    assert len(info[1]) == 10 << 20 and info[1] == long_text


def _with_extra_field(text: str) -> str:
    return text.replace("MARK", "x;y")  # an unquoted `;` inside a value: one field too many


def test_row_with_one_separator_too_many_rejected_naming_the_row_and_its_field_count(base):
    landing, state, before = base
    files = t.default_files()
    files["bokningar.csv"][1]["Avbokningsorsak"] = "MARK"
    data = _with_extra_field(t.csv_text(files["bokningar.csv"], BOOKING_HEADERS)).encode("cp1252")
    t.write_drop(landing, 2, files, raw={"bokningar.csv": data})
    assert rejected(landing, state) == "bokningar.csv: row 2 has 20 fields but the header has 19 (one `;` too many)"
    assert_unchanged(state, before)


def test_row_with_too_many_fields_in_a_file_with_mixed_row_ends_gets_its_real_reason(base):
    landing, state, before = base
    files = t.default_files()
    files["bokningar.csv"][2]["Avbokningsorsak"] = "MARK"
    text = t.csv_text(files["bokningar.csv"], BOOKING_HEADERS, row_ends=["\r\n", "\n"])
    t.write_drop(landing, 2, files, raw={"bokningar.csv": _with_extra_field(text).encode("cp1252")})
    assert rejected(landing, state) == "bokningar.csv: row 3 has 20 fields but the header has 19 (one `;` too many)"
    assert_unchanged(state, before)


def test_row_with_fields_missing_rejected_naming_the_row(base):
    landing, state, before = base
    files = t.default_files()
    for row in files["bokningar.csv"]:
        row["Bokningsinformation"] = "Ring före besöket"  # one line per row: lines[2] is data row 2
    lines = t.csv_text(files["bokningar.csv"], BOOKING_HEADERS).split("\r\n")
    lines[2] = lines[2].rsplit(";", 3)[0]  # its last 3 fields cut off
    t.write_drop(landing, 2, files, raw={"bokningar.csv": "\r\n".join(lines).encode("cp1252")})
    reason = rejected(landing, state)
    assert reason == "bokningar.csv: row 2 has 16 fields but the header has 19 (fields missing: truncated or malformed row)"
    assert_unchanged(state, before)


def test_unterminated_quote_named_as_such_with_its_row(base):
    landing, state, before = base
    files = t.default_files()
    files["bokningar.csv"][2]["Avbokningsorsak"] = "MARK"
    text = t.csv_text(files["bokningar.csv"], BOOKING_HEADERS).replace("MARK", '"open quote')
    t.write_drop(landing, 2, files, raw={"bokningar.csv": text.encode("cp1252")})
    reason = rejected(landing, state)
    assert reason == "bokningar.csv: unterminated quoted field in row 3 (truncated or malformed file)"
    assert_unchanged(state, before)


def _big_bookings_drop(landing: Path, row_ends: list[str], mark_row: int | None = None) -> None:
    files = t.default_files()
    files["bokningar.csv"] = [t.booking(i, Personnummer=t.pnr(i % 900)) for i in range(1, 5001)]
    if mark_row is not None:
        files["bokningar.csv"][mark_row - 1]["Avbokningsorsak"] = "MARK"
    text = _with_extra_field(t.csv_text(files["bokningar.csv"], BOOKING_HEADERS, row_ends=row_ends))
    t.write_drop(landing, 1, files, raw={"bokningar.csv": text.encode("cp1252")})


def test_a_bad_row_past_the_first_batch_is_named_not_taken_for_a_machine_error(tmp_path):
    # past the first batch DuckDB's error arrives through Arrow as a bare OSError
    landing, state = tmp_path / "landing", tmp_path / "state"
    _big_bookings_drop(landing, ["\r\n"], mark_row=4321)
    report = ingest_pending(landing, state, as_of=AS_OF, batch_rows=1000)
    assert [(d.outcome, d.reason) for d in report.drops] == [
        ("rejected", "bokningar.csv: row 4321 has 20 fields but the header has 19 (one `;` too many)")
    ]


def test_mixed_row_ends_past_the_first_batch_accepted(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    _big_bookings_drop(landing, ["\r\n"] * 4000 + ["\n"])  # the first bare LF ends row 3999
    drop = ingest_pending(landing, state, as_of=AS_OF, batch_rows=1000).drops[0]
    assert (drop.outcome, drop.reason) == ("accepted", None)
    bookings = load_snapshot(state, "bookings")
    assert bookings.height == 5000 and bookings["source_row"].to_list() == list(range(1, 5001))
