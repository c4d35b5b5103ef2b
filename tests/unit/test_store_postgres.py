"""The PostgreSQL store (issue 15): the adapter's subset of DuckDB, migrations, isolation, concurrency, one-line failures."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync import store
from mvg_sync.store import drops, migrations, outbox, postgres
from mvg_sync.store.types import ApprovalStatus

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).parents[2]


def fresh_url(server, **query: str) -> str:
    return server.url(schema=query.pop("schema", "t_" + secrets.token_hex(5)), **query)


@pytest.fixture
def pg_url(pg_server) -> str:
    """A URL to a schema of its own on the session's server (nothing in it yet)."""
    return fresh_url(pg_server)


# --- placeholders and URLs (no server) ----------------------------------------------------


def test_placeholders_are_rewritten_outside_literals_identifiers_and_comments():
    q, p = postgres.translate(
        "SELECT '?', \"a?\", $$ ? $$ /* ? */ FROM t WHERE a = ? AND b LIKE 'R12%' -- ?\n AND c = ?", [1, 2]
    )
    assert q == "SELECT '?', \"a?\", $$ ? $$ /* ? */ FROM t WHERE a = %s AND b LIKE 'R12%%' -- ?\n AND c = %s"
    assert p == [1, 2]
    q, p = postgres.translate("SELECT $start, $end::date, 'it''s $x' WHERE x = $start", {"start": 1, "end": 2})
    assert q == "SELECT %(start)s, %(end)s::date, 'it''s $x' WHERE x = %(start)s"
    assert p == {"start": 1, "end": 2}
    q, p = postgres.translate("SELECT $2, $1, $2", ["a", "b"])
    assert q == "SELECT %(_2)s, %(_1)s, %(_2)s" and p == {"_1": "a", "_2": "b"}
    assert postgres.translate("SELECT 'R12%'", None) == ("SELECT 'R12%'", None)
    assert postgres.translate("SELECT E'\\'?'", []) == ("SELECT E'\\'?'", None)
    with pytest.raises(duckdb.InvalidInputException, match="2 \\? placeholders but 1"):
        postgres.translate("SELECT ?, ?", [1])


def test_the_url_is_masked_and_credentials_need_tls_unless_the_host_is_loopback(monkeypatch):
    monkeypatch.delenv("MVG_STATE_SCHEMA", raising=False)
    shown = postgres.mask("postgresql://sync:s3cret@db.region.se:5432/mvg?schema=x&password=other")
    assert "s3cret" not in shown and "other" not in shown and "sync:***@db.region.se" in shown
    url, schema = postgres.parse("postgresql://sync:pw@db.region.se/mvg")
    assert url.endswith("sslmode=verify-full") and schema == "mvg"
    with pytest.raises(postgres.BadStateURL) as clear:
        postgres.parse("postgresql://sync:s3cret@db.region.se/mvg?sslmode=disable")
    assert "\n" not in str(clear.value) and "s3cret" not in str(clear.value) and "MVG_STATE_URL" in str(clear.value)
    assert "sslmode" not in postgres.parse("postgresql://sync:pw@127.0.0.1:5/mvg?schema=gavleborg")[0]
    assert postgres.parse("postgresql://sync:pw@localhost/mvg?schema=gavleborg")[1] == "gavleborg"
    monkeypatch.setenv("MVG_STATE_SCHEMA", "dalarna")
    assert postgres.parse("postgresql://sync@[::1]/mvg")[1] == "dalarna"
    with pytest.raises(postgres.BadStateURL, match="not a plain lower-case name"):
        postgres.parse("postgresql://sync@localhost/mvg?schema=x;drop")
    with pytest.raises(ValueError, match="must be a postgresql:// URL"):
        store.state_url("sqlite:///x")


def test_a_machine_without_postgresql_gets_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    from tests import pg

    monkeypatch.setenv("PG_BIN", str(tmp_path))
    with pytest.raises(pg.NoPostgres) as missing:
        pg.start()
    assert "\n" not in str(missing.value) and "PG_BIN" in str(missing.value)
    monkeypatch.delenv("PG_BIN")
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    with pytest.raises(pg.NoPostgres, match="make postgresql"):
        pg.find_bin()


# --- the connection's subset --------------------------------------------------------------


def test_a_registered_frame_reads_back_through_copy_with_its_types_nulls_and_empty_strings(pg_url, tmp_path):
    frame = pl.DataFrame(
        {
            "s": ["a,\"b\"\nc", "", None, "åäö €"],
            "i": [1, None, -(2**62), 0],
            "i32": pl.Series([1, 2, None, 4], dtype=pl.Int32),
            "f": [0.1, None, 1e300, -2.5],
            "b": [True, False, None, True],
            "d": [date(2026, 1, 1), None, date(1999, 12, 31), date(2026, 11, 26)],
            "ts": [NOW, None, datetime(2026, 3, 29, 1, 0, 0, 123456, tzinfo=UTC), NOW + timedelta(days=400)],
            "j": ['{"a": [1, 2]}', None, "{}", '{"x": "%s"}'],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    with store.connect(tmp_path, url=pg_url) as con:
        con.register("frame", frame)
        back = con.sql("SELECT * FROM frame ORDER BY i32 NULLS LAST").pl()
        assert_frame_equal(back, frame.sort("i32", nulls_last=True))
        assert con.execute("SELECT count(*) FROM frame WHERE s = ''").fetchone() == (1,)
        con.register("frame", frame.head(1))  # registering a name again replaces it
        assert con.sql("SELECT count(*) AS n FROM frame").pl().item() == 1
        con.unregister("frame")
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM frame")
        empty = con.sql("SELECT key, accepted_at FROM clinic24_record WHERE key = ?", params=["none"]).pl()
        assert empty.schema == pl.Schema({"key": pl.String, "accepted_at": pl.Datetime("us", "UTC")})


def test_dml_answers_its_count_and_values_take_their_type_from_their_place(pg_url, tmp_path):
    with store.connect(tmp_path, url=pg_url) as con:
        assert con.execute("INSERT INTO locations VALUES (?, ?), (?, ?)", ["A", NOW, "B", NOW]).fetchone() == (2,)
        assert con.execute("UPDATE locations SET fetched_at = ? WHERE unit_hsa_id = ?", [NOW, "A"]).fetchone() == (1,)
        # `? IS NULL` needs no cast (bound on the client, as DuckDB infers it)
        rows = con.execute(
            "SELECT unit_hsa_id FROM locations WHERE (? IS NULL OR unit_hsa_id = ?) ORDER BY 1", [None, None]
        ).fetchall()
        assert rows == [("A",), ("B",)]
        assert con.execute("SELECT sum(1::bigint), avg(2), percentile_cont(0.5) WITHIN GROUP (ORDER BY 3)").fetchone() == (1, 2.0, 3.0)
        assert con.execute("DELETE FROM locations WHERE unit_hsa_id LIKE 'A%'").fetchone() == (1,)
        assert con.execute("SELECT ?::json", [json.dumps({"k": 1})]).fetchone() == ('{"k": 1}',)
        assert con.execute("SELECT status FROM approvals WHERE status = ?", [ApprovalStatus.HELD]).fetchall() == []
        # a list of strings is VARCHAR[] as in DuckDB, empty or not
        for keys, found in ((["B", "x"], [("B",)]), ([], [])):
            assert con.execute("SELECT unit_hsa_id FROM locations WHERE unit_hsa_id IN (SELECT unnest(?))", [keys]).fetchall() == found
        con.execute("CHECKPOINT")  # the file store's space reclaim: nothing to do here


def test_a_failed_transaction_rolls_back_everything_and_drops_its_frames(pg_url, tmp_path):
    with store.connect(tmp_path, url=pg_url) as con:
        with pytest.raises(duckdb.ConstraintException), store.transaction(con):
            con.execute("INSERT INTO locations VALUES ('A', now())")
            con.register("dup", pl.DataFrame({"k": ["A"]}))
            try:
                con.execute("INSERT INTO locations SELECT k, now() FROM dup")
            finally:
                con.unregister("dup")  # inside the failed transaction: must not hide the error
        assert con.execute("SELECT count(*) FROM locations").fetchone() == (0,)
        assert con.execute("SELECT to_regclass('pg_temp.dup') IS NULL").fetchone() == (True,)
        with store.transaction(con):
            con.execute("INSERT INTO locations VALUES ('B', now())")
        assert con.execute("SELECT count(*) FROM locations").fetchone() == (1,)


# --- migrations, schemas ------------------------------------------------------------------


def test_migrations_build_an_empty_schema_and_record_each_version_once(pg_server, tmp_path):
    url = fresh_url(pg_server)
    with pytest.raises(store.NoStore, match="no state yet at"):
        store.connect(tmp_path, url=url, read_only=True)
    assert not store.exists(tmp_path, url=url)
    with store.connect(tmp_path, url=url) as con:
        assert migrations.version(con) == migrations.CURRENT and migrations.dialect(con) == "postgresql"
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()}
    with duckdb.connect() as duck:
        migrations.upgrade(duck)
        expected = {t for (t,) in duck.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    assert tables == expected and "outbox" in tables
    assert store.exists(tmp_path, url=url)
    with store.connect(tmp_path, url=url, read_only=True) as con:
        assert con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall() == [
            (v,) for v in range(1, migrations.CURRENT + 1)]
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("INSERT INTO locations VALUES ('A', now())")
    with store.connect(tmp_path, url=url) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now())", [migrations.CURRENT + 1])
    for read_only in (False, True):
        with pytest.raises(store.StoreTooNew) as refused:
            store.connect(tmp_path, url=url, read_only=read_only)
        assert "\n" not in str(refused.value) and pg_server.password not in str(refused.value)


def test_a_v1_schema_is_upgraded_and_its_absolute_paths_rebased(pg_server, tmp_path):
    url = fresh_url(pg_server)
    con = postgres.open_connection(url)
    try:  # what step 1 alone leaves, with a path written by an earlier release elsewhere
        con.execute("BEGIN")
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
        migrations.MIGRATIONS[1](con)
        con.execute("INSERT INTO schema_version VALUES (1, now())")
        con.execute("INSERT INTO snapshot_pointer VALUES ('bookings', 'E1', '/old/state/snapshots/E1/bookings.parquet', now())")
        con.execute("COMMIT")
    finally:
        con.close()
    with store.connect(tmp_path, url=url, read_only=True) as con:  # a reader's open upgrades too
        assert migrations.version(con) == migrations.CURRENT
        assert con.execute("SELECT path FROM snapshot_pointer").fetchall() == [("snapshots/E1/bookings.parquet",)]


def test_two_schemas_on_one_database_never_see_each_other(pg_server, tmp_path):
    gavle, dala = fresh_url(pg_server, schema="gavleborg_t"), fresh_url(pg_server, schema="dalarna_t")
    for url, units in ((gavle, ["G1", "G2"]), (dala, ["D1"])):
        with store.connect(tmp_path, url=url) as con:
            outbox.save_locations(con, units, now=NOW)
    with store.connect(tmp_path, url=gavle, read_only=True) as con:
        assert outbox.cached_locations(con) == ["G1", "G2"]
    with store.connect(tmp_path, url=dala) as con:
        assert outbox.cached_locations(con) == ["D1"]
        outbox.save_locations(con, [], now=NOW)
    with store.connect(tmp_path, url=gavle, read_only=True) as con:
        assert outbox.cached_locations(con) == ["G1", "G2"]


# --- failures in one line -----------------------------------------------------------------


def test_an_unusable_server_is_one_line_naming_mvg_state_url_without_the_password(pg_server, tmp_path):
    wrong = pg_server.url(password="wrong-" + pg_server.password)
    cases = {
        "the password was refused": wrong,
        'database "nowhere" does not exist': pg_server.url("nowhere"),
        "connection refused": f"postgresql://postgres:{pg_server.password}@127.0.0.1:1/mvg",
    }
    for why, url in cases.items():
        with pytest.raises(postgres.StoreUnreachable) as failed:
            store.connect(tmp_path, url=url)
        message = str(failed.value)
        assert "\n" not in message and why in message and "MVG_STATE_URL=postgresql://postgres:***@" in message
        assert pg_server.password not in message


def test_a_connection_lost_mid_run_is_the_machines_failure_in_one_line(pg_server, pg_url, tmp_path):
    from mvg_sync.ingest.faults import is_machine_error

    with store.connect(tmp_path, url=pg_url) as con:
        (pid,) = con.execute("SELECT pg_backend_pid()").fetchone()
        with pg_server.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(postgres.StoreUnreachable) as lost:
            con.execute("SELECT count(*) FROM outbox")
    message = str(lost.value)
    assert "\n" not in message and "MVG_STATE_URL=postgresql://postgres:***@" in message and "lost its connection" in message
    assert pg_server.password not in message
    assert is_machine_error(lost.value), "a lost server must leave a drop pending, never reject it"


# --- concurrency --------------------------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from mvg_sync import store
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    with store.transaction(Path("."), url=url) as con:
        # read, then write what was read plus one: loses updates unless writers serialise
        (count,) = con.execute("SELECT count(*) FROM locations").fetchone()
        con.execute("INSERT INTO locations VALUES (?, now())", [f"{who}-{count:05d}"])
print("done", flush=True)
"""


def test_two_writing_processes_serialise_without_losing_work(pg_url, tmp_path):
    with store.connect(tmp_path, url=pg_url):
        pass
    n = 40
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, who, str(n)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for who in ("a", "b")
    ]
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0 and out.strip() == "done", err[-2000:]
    with store.connect(tmp_path, url=pg_url, read_only=True) as con:
        rows = [k for (k,) in con.execute("SELECT unit_hsa_id FROM locations").fetchall()]
    assert len(rows) == 2 * n
    # each transaction saw every earlier one: the counts read are exactly 0 .. 2n-1
    assert sorted(int(k.split("-")[1]) for k in rows) == list(range(2 * n))


def test_a_writer_kept_waiting_past_its_bound_fails_in_one_line_and_readers_never_wait(pg_url, tmp_path):
    with store.connect(tmp_path, url=pg_url) as holder:
        holder.execute("BEGIN")  # holds the schema's write lock, as a long settle would
        holder.execute("INSERT INTO locations VALUES ('H', now())")
        notes: list[str] = []
        with pytest.raises(store.StoreBusy) as busy, store.transaction(tmp_path, url=pg_url, wait_s=1.5, notice=notes.append):
            pass
        assert "\n" not in str(busy.value) and "for 2 s" in str(busy.value) and len(notes) == 1
        with store.connect(tmp_path, url=pg_url, read_only=True) as reader, store.transaction(reader):
            assert reader.execute("SELECT count(*) FROM locations").fetchone() == (0,)  # not yet committed
        holder.execute("COMMIT")
    with store.transaction(tmp_path, url=pg_url, wait_s=1.5) as con:
        assert con.execute("SELECT count(*) FROM locations").fetchone() == (1,)


# --- today's query functions on both backends ---------------------------------------------
# Each step runs the same calls on a DuckDB file and on a PostgreSQL schema; the answers
# must be equal (frames: values and dtypes).

E1, E2 = "20261126T080000-000001", "20261126T090000-000002"


def _drops_step(con, state_dir: Path) -> dict:
    quarantine = pl.DataFrame({"file": ["bokningar.csv", "bokningar.csv"], "source_row": [2, 7],
                               "record_key": ["B9", None], "column_name": ["Starttid", None],
                               "rule": ["R01", "R02"], "reason": ["bad time", "20 fields"]})
    drops.record_drop(con, extract_id=E1, sequence=1, extracted_at=NOW, window=(date(2026, 11, 26), date(2027, 2, 26)),
                      outcome="accepted", reason=None, processed_at=NOW,
                      counts={"files": {"bokningar.csv": {"rows_in": 3}}}, quarantine=quarantine, gap=(0, 1))
    drops.record_drop(con, extract_id=E2, sequence=2, extracted_at=NOW + timedelta(hours=1), window=None,
                      outcome="rejected", reason="schema", processed_at=NOW + timedelta(hours=1), counts={})
    return {
        "ids": drops.processed_drop_ids(con), "outcome": (drops.drop_outcome(con, E2), drops.drop_outcome(con, "x")),
        "latest": drops.latest_accepted(con), "sequence": drops.latest_sequence(con),
        "counts": drops.previous_counts(con), "quarantined": drops.quarantined_keys(con, E1, "bokningar.csv"),
        "window": con.execute("SELECT window_from, window_to, counts FROM drops ORDER BY extract_id").fetchall(),
        "gaps": con.execute("SELECT * FROM sequence_gaps").fetchall(),
    }


def _snapshots_step(con, state_dir: Path) -> dict:
    path = drops.snapshot_path(state_dir, E1, "bookings")
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"booking_id": ["1", "2"]}).write_parquet(path)
    for outcome in ("accepted", "accepted"):  # the second drop's pointer replaces the first's
        extract = E1 if not drops.processed_drop_ids(con) else E2
        drops.record_drop(con, extract_id=extract, sequence=len(extract), extracted_at=NOW, window=None, outcome=outcome,
                          reason=None, processed_at=NOW, counts={}, snapshots={"bookings": path})
    return {"pointers": drops.snapshot_pointers(con), "extract": drops.pointer_extract_id(con, "bookings"),
            "snapshot": drops.load_snapshot(state_dir, "bookings")}


def _plan(keys_hashes: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "key": [k for k, _, _ in keys_hashes], "change_kind": [c for _, c, _ in keys_hashes],
            "rule": ["R06"] * len(keys_hashes), "content_hash": [h for _, _, h in keys_hashes],
            "source_sequence": [1] * len(keys_hashes),
            "payload": [json.dumps({"resourceType": "Appointment", "id": k, "note": "100 %"}) for k, _, _ in keys_hashes],
            "target_status": ["cancelled" if c == "cancel" else "booked" for _, c, _ in keys_hashes],
            "target_start_at": [NOW + timedelta(days=n) for n in range(len(keys_hashes))],
            "target_unit": ["SE1"] * len(keys_hashes), "extracted_at": [NOW - timedelta(minutes=5)] * len(keys_hashes),
        },
        schema_overrides={"target_start_at": pl.Datetime("us", "UTC"), "extracted_at": pl.Datetime("us", "UTC")},
    )


def _settled(entries, outcomes: dict[str, tuple[str, str]], at: datetime) -> pl.DataFrame:
    rows = []
    for e in entries:
        if e.key not in outcomes:
            continue
        outcome, new_status = outcomes[e.key]
        rows.append({"change_id": e.change_id, "outcome": outcome, "new_status": new_status,
                     "reason": None if outcome == "accepted" else "E-REFUSED", "version": "v1", "settled_at": at,
                     "resource_type": e.resource_type, "key": e.key, "target_status": e.target_status,
                     "target_start_at": e.target_start_at, "target_unit": e.target_unit,
                     "content_hash": e.content_hash, "source_sequence": e.source_sequence})
    return pl.DataFrame(rows, schema={
        "change_id": pl.Utf8, "outcome": pl.Utf8, "new_status": pl.Utf8, "reason": pl.Utf8, "version": pl.Utf8,
        "settled_at": pl.Datetime("us", "UTC"), "resource_type": pl.Utf8, "key": pl.Utf8, "target_status": pl.Utf8,
        "target_start_at": pl.Datetime("us", "UTC"), "target_unit": pl.Utf8, "content_hash": pl.Utf8,
        "source_sequence": pl.Int64})


def _outbox_step(con, state_dir: Path) -> dict:
    out: dict = {}
    out["first"] = outbox.write_plan(con, {"Appointment": _plan([("b1", "create", "h1"), ("b2", "create", "h2"),
                                                                 ("b3", "cancel", "h3")])}, plan_id=E1, now=NOW)
    out["pending"] = outbox.pending_entries(con)
    later = NOW + timedelta(minutes=1)
    out["second"] = outbox.write_plan(con, {"Appointment": _plan([("b1", "create", "h1"), ("b2", "update", "h2b")])},
                                      plan_id=E2, now=later)
    out["in_doubt"] = outbox.in_doubt_entries(con, "Appointment", ["b1"])
    pending = outbox.pending_entries(con, "Appointment")
    outbox.settle(con, _settled(pending, {"b1": ("accepted", "done"), "b2": ("rejected", "dead")}, later))
    out["record"] = outbox.load_record(con, "Appointment").sort("key")
    out["live"] = outbox.live_synced_count(con, since=NOW)
    out["tickets"] = outbox.active_ticket_count(con)
    out["redriven"] = outbox.redrive(con)
    out["after"] = outbox.pending_entries(con)
    out["statuses"] = con.execute("SELECT change_id, status, reason, attempts, settled_at FROM outbox ORDER BY 1").fetchall()
    return out


def _holds_step(con, state_dir: Path) -> dict:
    holds = pl.DataFrame({"key": ["b1", "b2"], "unit_hsa_id": ["SE1", None], "rule": ["R12", "R05"],
                          "reason": ["R12 needs-primary-guardian", "R05 x"]})
    outbox.replace_holds(con, holds, resource_type="Appointment", now=NOW)
    outbox.replace_holds(con, holds.tail(1).with_columns(reason=pl.lit("R05 y")), resource_type="Appointment",
                         now=NOW + timedelta(hours=1))
    return {"holds": con.execute("SELECT * FROM holds ORDER BY key").fetchall(),
            "guardian": sorted(outbox.guardian_held_keys(con))}


def _approvals_step(con, state_dir: Path) -> dict:
    outbox.hold_for_approval(con, E1, cancels=30, live=40, reason="75 %", now=NOW)
    outbox.hold_for_approval(con, E1, cancels=1, live=1, reason="again", now=NOW)  # kept as first held
    outbox.hold_for_approval(con, E2, cancels=31, live=40, reason="77 %", now=NOW)
    first = (outbox.approval_status(con, E1), outbox.approve(con, E1, now=NOW), outbox.approve(con, "nope", now=NOW))
    outbox.supersede_other_approvals(con, E1)
    return {"first": first, "rows": con.execute("SELECT * FROM approvals ORDER BY 1").fetchall()}


def _locations_step(con, state_dir: Path) -> dict:
    outbox.save_locations(con, ["SE2", "SE1"], now=NOW)
    outbox.replace_unit_departures(con, pl.DataFrame({"key": ["b1"], "unit_hsa_id": ["SE9"]}), now=NOW)
    return {"locations": outbox.cached_locations(con),
            "departures": con.execute("SELECT * FROM unit_departures").fetchall()}


def _observe_step(con, state_dir: Path) -> dict:
    outbox.observe(con, "Appointment", "b1", {"id": "b1", "status": "booked"}, status="booked", start_at=NOW,
                   unit="SE1", content_hash=None, version="v7", now=NOW)
    return {"record": con.execute("SELECT * FROM clinic24_record").fetchall(),
            "observed": con.execute("SELECT * FROM clinic24_observed").fetchall()}


def _runs_step(con, state_dir: Path) -> dict:
    for outcome in ("failed", "done"):  # the same run recorded twice keeps the last
        outbox.record_run(con, "run-1", plan_id=E1, as_of=NOW, outcome=outcome, counts={"pushed": 3}, now=NOW)
    return {"runs": con.execute("SELECT * FROM sync_runs").fetchall()}


def _latency_step(con, state_dir: Path) -> dict:
    from mvg_sync.store import queries

    _outbox_step(con, state_dir)
    return {"r11": queries.r11_latency(con, start=NOW - timedelta(days=1))}


STEPS = {
    "drops": _drops_step, "snapshots": _snapshots_step, "outbox": _outbox_step, "holds": _holds_step,
    "approvals": _approvals_step, "locations": _locations_step, "observe": _observe_step, "runs": _runs_step,
    "latency": _latency_step,
}
def _answers(step, state_dir: Path) -> dict:
    with store.connect(state_dir) as con:
        return step(con, state_dir)


def _same(duck: dict, pg: dict) -> None:
    assert duck.keys() == pg.keys()
    for key, value in duck.items():
        if isinstance(value, pl.DataFrame):
            assert_frame_equal(pg[key], value, check_row_order=True)
        else:
            assert pg[key] == value, key


@pytest.mark.parametrize("name", list(STEPS))
def test_todays_queries_answer_the_same_on_both_backends(name, pg_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MVG_STATE_URL", raising=False)
    duck = _answers(STEPS[name], tmp_path / "duck")
    assert any(v not in (None, [], {}, 0) for v in duck.values()), "the step must produce something to compare"
    monkeypatch.setenv("MVG_STATE_URL", fresh_url(pg_server))
    pg = _answers(STEPS[name], tmp_path / "pg")
    _same(duck, pg)
