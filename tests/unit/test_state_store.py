"""The state store's opener: versioned migrations from a store of release d2a810e, bounded waits, transactions."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from mvg_sync import store
from mvg_sync.store import drops as state
from mvg_sync.store import migrations
from mvg_sync.store import outbox as sync_store
from tests.fixtures.store_v1.make import COUNTS, POINTED

# Tests that take `backend` run on the file store and on PostgreSQL (issue 15.2). The others
# stay DuckDB-only on purpose: the v1 fixture is a DuckDB file of release d2a810e (PostgreSQL
# stores start at the current schema), and the waits and the lease are about DuckDB's file
# lock between processes (PostgreSQL has row locks and the advisory write lock of
# store/postgres.py instead; a lease there never has to let go).
FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1"
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def restore_v1(state_dir: Path) -> Path:
    """The fixture unpacked into `state_dir`: a folder other than the one that wrote it."""
    state_dir.mkdir(parents=True)
    with gzip.open(FIXTURE / "state.duckdb.gz") as packed, (state_dir / "state.duckdb").open("wb") as out:
        shutil.copyfileobj(packed, out)
    shutil.copytree(FIXTURE / "snapshots", state_dir / "snapshots")
    return state_dir


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
    return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables if t != "schema_version"}


def test_the_fixture_is_a_release_d2a810e_store_with_absolute_paths_elsewhere(tmp_path):
    state_dir = restore_v1(tmp_path / "restored")
    con = duckdb.connect(str(state_dir / "state.duckdb"), read_only=True)
    try:
        assert migrations.version(con) == 0  # no schema_version table: written before versioning
        assert counts(con) == COUNTS
        paths = [p for (p,) in con.execute("SELECT path FROM snapshot_pointer").fetchall()]
    finally:
        con.close()
    assert paths and all(Path(p).is_absolute() and not Path(p).is_relative_to(state_dir) for p in paths), paths


def test_a_moved_v1_store_is_upgraded_in_place_with_nothing_lost(tmp_path):
    state_dir = restore_v1(tmp_path / "restored")
    with store.connect(state_dir) as con:
        assert migrations.version(con) == migrations.CURRENT
        assert counts(con) == COUNTS
        pointers = state.snapshot_pointers(con)
    assert {e for e, _ in pointers.values()} == {POINTED}
    assert all(p == f"snapshots/{POINTED}/{d}.parquet" for d, (_, p) in pointers.items()), pointers
    bookings = state.load_snapshot(state_dir, "bookings")
    assert bookings is not None and bookings.height == 91
    # opening again changes nothing (each step ran once)
    with store.connect(state_dir) as con:
        assert [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()] == list(range(1, migrations.CURRENT + 1))
        assert counts(con) == COUNTS


def test_a_read_only_open_upgrades_an_old_store_too(tmp_path):
    state_dir = restore_v1(tmp_path / "restored")
    with store.connect(state_dir, read_only=True) as con:
        assert migrations.version(con) == migrations.CURRENT
        assert counts(con) == COUNTS


def test_a_store_newer_than_the_code_is_refused_in_one_line(tmp_path, backend):  # both stores (issue 15)
    state_dir = tmp_path / "state"
    with store.connect(state_dir) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now())", [migrations.CURRENT + 1])
    for read_only in (False, True):
        with pytest.raises(store.StoreTooNew) as refused:
            store.connect(state_dir, read_only=read_only)
        message = str(refused.value)
        assert "\n" not in message and f"schema version {migrations.CURRENT + 1}" in message
        assert "newer than this mvg-sync understands" in message


def test_new_snapshot_pointers_are_kept_relative_to_the_state_folder(tmp_path, backend):
    state_dir = tmp_path / "state"
    path = state.snapshot_path(state_dir, "20261126T080000-000001", "bookings")
    path.parent.mkdir(parents=True)
    import polars as pl

    pl.DataFrame({"booking_id": ["1", "2"]}).write_parquet(path)
    with store.connect(state_dir) as con:
        state.record_drop(
            con, extract_id="20261126T080000-000001", sequence=1, extracted_at=NOW, window=None,
            outcome="accepted", reason=None, processed_at=NOW, counts={}, snapshots={"bookings": path},
        )
        assert state.snapshot_pointers(con)["bookings"][1] == "snapshots/20261126T080000-000001/bookings.parquet"
    moved = tmp_path / "restored" / "state"
    shutil.copytree(state_dir, moved)
    shutil.rmtree(state_dir)
    assert state.load_snapshot(moved, "bookings").height == 2


def test_stored_path_rebases_an_absolute_path_from_any_folder():
    assert migrations.stored_path("/old/place/state/snapshots/X/bookings.parquet") == "snapshots/X/bookings.parquet"
    assert migrations.stored_path("snapshots/X/units.parquet") == "snapshots/X/units.parquet"
    assert migrations.stored_path("/elsewhere/file.parquet") == "/elsewhere/file.parquet"


def test_reading_a_folder_with_no_store_creates_nothing(tmp_path, backend):  # both stores (issue 15)
    with pytest.raises(store.NoStore, match="no state yet at"):
        store.connect(tmp_path / "state", read_only=True)
    assert not (tmp_path / "state").exists()


def _hold(path: Path, seconds: float, *, read_only: bool = False) -> subprocess.Popen:
    """Another process that holds the store for `seconds` (as a sync step would)."""
    code = (f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
            f"print('held', flush=True); time.sleep({seconds}); c.close()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_instead_of_failing(tmp_path, monkeypatch):
    state_dir = tmp_path / "state"
    with store.connect(state_dir):
        pass
    holder = _hold(state_dir / "state.duckdb", 1.5)
    notes: list[str] = []
    started = time.monotonic()
    with store.transaction(state_dir, notice=notes.append) as con:
        sync_store.save_locations(con, ["SE1"], now=NOW)
    waited = time.monotonic() - started
    holder.wait(timeout=60)
    assert waited > 0.5, "the other process held the lock: the writer must have waited"
    with store.connect(state_dir, read_only=True) as con:
        assert sync_store.cached_locations(con) == ["SE1"]
    assert len(notes) == 1 and "in use by another process" in notes[0]
    assert not (state_dir / store.WANTED).exists(), "a waiter that got in withdraws its announcement"


def test_a_wait_past_the_bound_fails_in_one_clear_line(tmp_path):
    state_dir = tmp_path / "state"
    with store.connect(state_dir):
        pass
    holder = _hold(state_dir / "state.duckdb", 20)
    try:
        with pytest.raises(store.StoreBusy) as busy:
            store.connect(state_dir, read_only=True, wait_s=1.0)
    finally:
        holder.kill()
        holder.wait()
    assert "\n" not in str(busy.value) and "stayed locked by another process for 1 s" in str(busy.value)


def test_transaction_rolls_back_what_a_failed_block_wrote(tmp_path, backend):  # both stores (issue 15)
    state_dir = tmp_path / "state"
    with store.connect(state_dir) as con:
        sync_store.save_locations(con, ["SE1", "SE2"], now=NOW)
        with pytest.raises(duckdb.Error):
            sync_store.save_locations(con, ["SE3", "SE3"], now=NOW)  # duplicate key mid-way
        assert sync_store.cached_locations(con) == ["SE1", "SE2"]
        import polars as pl

        with pytest.raises(duckdb.Error):
            sync_store.replace_unit_departures(
                con, pl.DataFrame({"key": ["b1", "b1"], "unit_hsa_id": ["U", "U"]}), now=NOW)
        assert con.execute("SELECT count(*) FROM unit_departures").fetchone()[0] == 0
        con.execute("SELECT 1")  # the connection is usable: no transaction left open


def test_a_lease_lets_go_when_another_process_waits(tmp_path):
    state_dir = tmp_path / "state"
    with store.lease(state_dir) as held:
        with held.connection() as con:
            con.execute("SELECT 1")
        with held.connection():
            pass
        assert held.released == 0, "nobody waited: the connection is kept between steps"
        reader = subprocess.Popen(
            [sys.executable, "-c", "from pathlib import Path; from mvg_sync import store; "
             f"c = store.connect(Path({str(state_dir)!r}), read_only=True, wait_s=60); print('read', flush=True)"],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
        )
        deadline = time.monotonic() + 60
        while not store.wanted(state_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        with held.connection():
            pass  # a step ends while the reader waits: the lease lets go
        assert held.released == 1
        out, _ = reader.communicate(timeout=60)
        assert out.strip() == "read"
        with held.connection() as con:  # and takes the store again for the next step
            con.execute("SELECT 1")


def test_migration_3_records_r12_in_the_rule_of_entries_held_on_the_push(tmp_path, backend):
    """A store at version 2 kept R12 only in the reason of a held entry; v3 backfills the rule."""
    with store.connect(tmp_path) as con:
        for key, status, reason in [("k1", "held", "R12 needs-primary-guardian"), ("k2", "dead", "422 x"),
                                    ("k3", "held", "R17: other")]:
            con.execute(
                "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
                "source_sequence, payload, target_status, status, reason, created_at) "
                "VALUES (?, 'p', 'Appointment', ?, 'create', 'R06', 'h', 1, '{}', 'booked', ?, ?, now())",
                [f"p/{key}", key, status, reason])
        con.execute("DELETE FROM schema_version WHERE version = 3")  # as version 2 left it
    with store.connect(tmp_path) as con:
        assert migrations.version(con) == 3
        assert dict(con.execute("SELECT key, rule FROM outbox ORDER BY key").fetchall()) == {
            "k1": "R12", "k2": "R06", "k3": "R06"}
        assert sync_store.guardian_held_keys(con) == ["k1"]


def test_a_read_only_open_answers_a_query_that_registers_a_frame(tmp_path, backend):  # both stores (issue 15)
    """`status` counts the open outbox through a registered frame on a read-only connection:
    PostgreSQL refuses a temp table's CREATE/DROP in a read-only session unless the backend lifts it."""
    from mvg_sync.store import queries
    from mvg_sync.store.types import OPEN_STATUSES, OutboxStatus

    state_dir = tmp_path / "state"
    with store.connect(state_dir) as con:
        con.execute(
            "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
            "source_sequence, payload, target_status, status, reason, created_at) "
            "VALUES ('p/k1', 'p', 'Appointment', 'k1', 'create', 'R06', 'h', 1, '{}', 'booked', ?, NULL, now())",
            [OutboxStatus.PENDING])
    with store.connect(state_dir, read_only=True) as con:
        for _ in range(2):  # registered and dropped again: the second open finds no leftover
            counts = queries.outbox_counts(con, OPEN_STATUSES)
            assert [(c.status, c.resource_type, c.count) for c in counts] == [(OutboxStatus.PENDING, "Appointment", 1)]
        with pytest.raises(duckdb.Error):  # and the connection still refuses to write
            con.execute("DELETE FROM outbox")


def test_threads_opening_a_new_store_at_once_migrate_it_once(tmp_path):
    """Tasks of one run open the store side by side (fetch-clinic24-units beside ingest): they
    share the file's DuckDB instance, so only a lock in the process keeps their migrations apart."""
    import threading

    for attempt in range(8):
        state_dir = tmp_path / f"state-{attempt}"
        start, errors = threading.Barrier(4), []

        def open_it(state_dir=state_dir, start=start, errors=errors) -> None:
            start.wait()
            try:
                with store.connect(state_dir) as con:
                    assert migrations.version(con) == migrations.CURRENT
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with store.connect(state_dir) as con:
            versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
        assert versions == list(range(1, migrations.CURRENT + 1))
