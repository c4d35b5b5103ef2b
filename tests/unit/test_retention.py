"""Retention purge against a real DuckDB state file and real folders."""

import os
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest

from mvg_sync.retention import purge
from mvg_sync.store import STATE_FILE
from mvg_sync.store import drops as state
from mvg_sync.store import outbox as store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def _drop(con, state_dir, extract_id, sequence, processed_at, *, outcome="accepted", datasets=(), quarantined=0):
    paths = {}
    for dataset in datasets:
        path = state.snapshot_path(state_dir, extract_id, dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"source_row": [1]}).write_parquet(path)
        paths[dataset] = path
    quarantine = pl.DataFrame({
        "file": ["bokningar.csv"] * quarantined, "source_row": list(range(1, quarantined + 1)),
        "column_name": ["Personnummer"] * quarantined, "rule": ["R13"] * quarantined,
        "reason": ["bad check digit"] * quarantined,
    }, schema={"file": pl.String, "source_row": pl.Int64, "column_name": pl.String, "rule": pl.String,
               "reason": pl.String})
    state.record_drop(
        con, extract_id=extract_id, sequence=sequence, extracted_at=processed_at, window=None,
        outcome=outcome, reason=None, processed_at=processed_at, counts={}, quarantine=quarantine,
        snapshots=paths,
    )


def _outbox(con, change_id, resource_type, key, status, last_outcome, settled_days_ago):
    settled = _days_ago(settled_days_ago)
    con.execute(
        "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, content_hash, source_sequence, "
        "payload, target_status, status, last_outcome, created_at, settled_at) "
        "VALUES (?, 'p', ?, ?, 'create', 'h', 1, '{}', 'booked', ?, ?, ?, ?)",
        [change_id, resource_type, key, status, last_outcome, settled - timedelta(minutes=1), settled],
    )


@pytest.fixture
def world(tmp_path):
    state_dir, landing = tmp_path / "state", tmp_path / "landing"
    for name in ["D0", "D1", "D2", "D9-unprocessed"]:
        (landing / name).mkdir(parents=True)
        (landing / name / "bokningar.csv").write_text("Personnummer\n191212121212\n")
    con = state.connect(state_dir)
    store.ensure_schema(con)
    _drop(con, state_dir, "D0", 1, _days_ago(95), datasets=["bookings", "units"], quarantined=3)
    _drop(con, state_dir, "D1", 2, _days_ago(90), datasets=["bookings", "units"], quarantined=2)
    _drop(con, state_dir, "D2", 3, _days_ago(1), datasets=["bookings"], quarantined=1)
    _outbox(con, "e1", "Appointment", "K1", "done", "accepted", 80)
    _outbox(con, "e2", "Appointment", "K1", "done", "accepted", 70)
    _outbox(con, "e3", "Appointment", "K2", "superseded", None, 80)
    _outbox(con, "e4", "Appointment", "K2", "dead", "rejected", 80)
    _outbox(con, "e5", "Appointment", "K2", "done", "accepted", 2)
    _outbox(con, "e6", "Appointment", "K3", "done", "accepted", 85)
    _outbox(con, "e7", "Appointment", "K3", "done", "stale", 80)
    _outbox(con, "e8", "ServiceRequest", "K1", "done", "accepted", 90)
    con.close()
    old_orphan = state_dir / state.SNAPSHOTS / "crashed-old"
    new_orphan = state_dir / state.SNAPSHOTS / "crashed-new"
    for folder, age in [(old_orphan, 100), (new_orphan, 0)]:
        folder.mkdir(parents=True)
        stamp = _days_ago(age).timestamp()
        os.utime(folder, (stamp, stamp))
    return state_dir, landing


def _remaining_outbox(state_dir):
    con = duckdb.connect(str(state_dir / STATE_FILE), read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT change_id FROM outbox").fetchall())
    finally:
        con.close()


def test_purge_deletes_old_patient_data_and_keeps_what_the_sync_needs(world):
    state_dir, landing = world
    counts = purge(state_dir, landing, older_than_days=60, now=NOW)

    assert counts == {"cutoff": _days_ago(60).isoformat(), "drop_folders": 1, "quarantine_rows": 3,
                      "outbox_entries": 3, "snapshot_folders": 2}
    # units still points at D1, bookings at D2: both stay whole; D0 and the old orphan go
    assert sorted(p.name for p in landing.iterdir()) == ["D1", "D2", "D9-unprocessed"]
    assert sorted(p.name for p in (state_dir / state.SNAPSHOTS).iterdir()) == ["D1", "D2", "crashed-new"]
    assert state.load_snapshot(state_dir, "units") is not None
    # e1 (older accepted), e3 (superseded), e7 (stale) go; the newest accepted per key, open entries stay
    assert _remaining_outbox(state_dir) == ["e2", "e4", "e5", "e6", "e8"]
    con = duckdb.connect(str(state_dir / STATE_FILE), read_only=True)
    try:
        assert con.execute("SELECT extract_id, count(*) FROM quarantine GROUP BY 1 ORDER BY 1").fetchall() == [
            ("D1", 2), ("D2", 1)]
        assert con.execute("SELECT count(*) FROM drops").fetchone()[0] == 3  # the drop log stays
    finally:
        con.close()


def test_purge_is_idempotent(world):
    state_dir, landing = world
    purge(state_dir, landing, older_than_days=60, now=NOW)
    again = purge(state_dir, landing, older_than_days=60, now=NOW)
    assert {k: v for k, v in again.items() if k != "cutoff"} == {
        "drop_folders": 0, "quarantine_rows": 0, "outbox_entries": 0, "snapshot_folders": 0}


def test_longer_retention_keeps_everything_younger(world):
    state_dir, landing = world
    counts = purge(state_dir, landing, older_than_days=92, now=NOW)
    assert counts["drop_folders"] == 1  # only D0 (95 days)
    assert counts["quarantine_rows"] == 3  # only D0's
    assert counts["outbox_entries"] == 0
    assert sorted(p.name for p in landing.iterdir()) == ["D1", "D2", "D9-unprocessed"]


def test_r08_drop_a_snapshot_pointer_names_keeps_quarantine_folder_and_snapshot_at_any_age(tmp_path):
    # No later drop replaced D5's bookings (D6 was rejected whole): planning still reads D5's
    # quarantine to know its quarantined bookings are not vanished ones to cancel.
    state_dir, landing = tmp_path / "state", tmp_path / "landing"
    for name in ["D5", "D6"]:
        (landing / name).mkdir(parents=True)
        (landing / name / "bokningar.csv").write_text("Personnummer\n191212121212\n")
    con = state.connect(state_dir)
    store.ensure_schema(con)
    _drop(con, state_dir, "D5", 5, _days_ago(300), datasets=["bookings"], quarantined=2)
    _drop(con, state_dir, "D6", 6, _days_ago(200), outcome="rejected", quarantined=1)
    con.close()

    counts = purge(state_dir, landing, older_than_days=60, now=NOW)

    assert (counts["drop_folders"], counts["quarantine_rows"], counts["snapshot_folders"]) == (1, 1, 0)
    assert sorted(p.name for p in landing.iterdir()) == ["D5"]
    assert sorted(p.name for p in (state_dir / state.SNAPSHOTS).iterdir()) == ["D5"]
    con = duckdb.connect(str(state_dir / STATE_FILE), read_only=True)
    try:
        assert con.execute("SELECT extract_id, count(*) FROM quarantine GROUP BY 1").fetchall() == [("D5", 2)]
    finally:
        con.close()


def test_no_state_store_yet_purges_nothing(tmp_path):
    counts = purge(tmp_path / "state", tmp_path / "landing", older_than_days=60, now=NOW)
    assert counts["drop_folders"] == counts["outbox_entries"] == 0
    assert not (tmp_path / "state").exists()


def test_naive_now_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        purge(tmp_path, tmp_path, older_than_days=60, now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_back_dated_run_never_purges_the_drops_it_just_processed(tmp_path):
    # issue 14: processed_at is the run's as_of; measured against the wall clock alone, a run
    # dated 100 days back purged the drop folders it had just processed (all but the current)
    state_dir, landing = tmp_path / "state", tmp_path / "landing"
    as_of = _days_ago(100)
    con = state.connect(state_dir)
    store.ensure_schema(con)
    _drop(con, state_dir, "D-old", 1, as_of - timedelta(days=61), datasets=["bookings"], quarantined=1)
    _drop(con, state_dir, "D-a", 2, as_of, datasets=["bookings"], quarantined=2)
    _drop(con, state_dir, "D-b", 3, as_of, datasets=["bookings"], quarantined=4)  # current
    con.close()
    for name in ["D-old", "D-a", "D-b"]:
        (landing / name).mkdir(parents=True)

    counts = purge(state_dir, landing, older_than_days=60, now=NOW, as_of=as_of)

    assert counts["cutoff"] == (as_of - timedelta(days=60)).isoformat()
    assert sorted(p.name for p in landing.iterdir()) == ["D-a", "D-b"]  # D-old: 61 days before the run
    assert sorted(p.name for p in (state_dir / state.SNAPSHOTS).iterdir()) == ["D-a", "D-b"]
    assert (counts["drop_folders"], counts["quarantine_rows"], counts["snapshot_folders"]) == (1, 1, 1)


def test_a_run_dated_ahead_purges_no_more_than_the_wall_clock_allows(world):
    state_dir, landing = world
    counts = purge(state_dir, landing, older_than_days=60, now=NOW, as_of=NOW + timedelta(days=365))
    assert counts["cutoff"] == (NOW - timedelta(days=60)).isoformat()
    assert sorted(p.name for p in landing.iterdir()) == ["D1", "D2", "D9-unprocessed"]
