"""store/plan_reads.py: the snapshot drop, the payload Clinic24 last accepted, open ticket changes (R07, R08, R16)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from mvg_sync.store import outbox as store
from mvg_sync.store import plan_reads
from mvg_sync.store.types import OutboxStatus, ResourceType

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
APPT, TICKET = ResourceType.APPOINTMENT, ResourceType.SERVICE_REQUEST


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "state.duckdb"))
    store.ensure_schema(c)
    yield c
    c.close()


def entry(con, change_id, resource_type, key, *, status, outcome=None, settled=None, kind="create", body=None):
    con.execute(
        "INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash, "
        "source_sequence, payload, target_status, status, last_outcome, created_at, settled_at) "
        "VALUES (?, 'p', ?, ?, ?, 'R06', ?, 1, ?, 'booked', ?, ?, ?, ?)",
        [change_id, resource_type, key, kind, f"h-{change_id}", json.dumps(body or {"id": change_id}),
         status, outcome, NOW, settled],
    )


def observed(con, resource_type, key, body, at):
    con.execute("INSERT INTO clinic24_observed VALUES (?, ?, ?, ?)", [resource_type, key, json.dumps(body), at])


def test_newest_accepted_payload_per_key_from_outbox_or_read_back(con):
    entry(con, "c1", APPT, "b1", status=OutboxStatus.DONE, outcome="accepted", settled=NOW)
    entry(con, "c2", APPT, "b1", status=OutboxStatus.DONE, outcome="accepted", settled=NOW + timedelta(minutes=5))
    entry(con, "c3", APPT, "b1", status=OutboxStatus.DONE, outcome="stale", settled=NOW + timedelta(minutes=9))
    entry(con, "c4", APPT, "b2", status=OutboxStatus.DONE, outcome="accepted", settled=NOW)
    observed(con, APPT, "b2", {"id": "seen-b2"}, NOW + timedelta(minutes=1))  # read back later: wins
    observed(con, APPT, "b3", {"id": "seen-b3"}, NOW)
    entry(con, "c5", TICKET, "b1", status=OutboxStatus.DONE, outcome="accepted", settled=NOW + timedelta(hours=1))
    entry(con, "c6", APPT, "b4", status=OutboxStatus.PENDING)

    got = plan_reads.accepted_appointments(con, ["b1", "b2", "b3", "b4", "b9"])

    assert got == {"b1": {"id": "c2"}, "b2": {"id": "seen-b2"}, "b3": {"id": "seen-b3"}}
    assert plan_reads.last_accepted_payloads(con, TICKET, ["b1"]) == {"b1": {"id": "c5"}}
    assert plan_reads.last_accepted_payloads(con, APPT, []) == {}


def test_outbox_payloads_are_read_in_chunks_of_ids(con, monkeypatch):
    monkeypatch.setattr(plan_reads, "_IDS_PER_QUERY", 2)
    for n in range(5):
        entry(con, f"c{n}", APPT, f"b{n}", status=OutboxStatus.DONE, outcome="accepted", settled=NOW)
    got = plan_reads.accepted_appointments(con, [f"b{n}" for n in range(5)])
    assert got == {f"b{n}": {"id": f"c{n}"} for n in range(5)}


def test_open_ticket_changes_are_pending_or_dead_tickets_only(con):
    entry(con, "t1", TICKET, "k1", status=OutboxStatus.PENDING, kind="issue", body={"authoredOn": "x"})
    entry(con, "t2", TICKET, "k2", status=OutboxStatus.DEAD, kind="revoke")
    entry(con, "t3", TICKET, "k3", status=OutboxStatus.DONE, outcome="accepted", settled=NOW)
    entry(con, "a1", APPT, "k4", status=OutboxStatus.PENDING)

    got = plan_reads.open_ticket_changes(con, ["k1", "k2", "k3", "k4"])

    assert got == {
        "k1": plan_reads.OpenChange("issue", "h-t1", {"authoredOn": "x"}),
        "k2": plan_reads.OpenChange("revoke", "h-t2", {"id": "t2"}),
    }
    assert got["k1"].change_kind == "issue"


def test_current_snapshot_is_none_before_the_first_drop(con):
    assert plan_reads.current_snapshot(con) is None


def test_plan_reads_sql_is_backend_neutral():
    """Issue 15: the module's SQL runs unchanged on PostgreSQL 15 — none of DuckDB's dialect."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(plan_reads.__file__).read_text())
    sql = " ".join(
        node.value for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "execute"
        for node in ast.walk(call) if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    assert "SELECT" in sql and "outbox" in sql  # the statements were found
    for dialect in ("QUALIFY", "INSERT OR REPLACE", "unnest(", "::", "epoch(", "rowid", "ANY(", "$1"):
        assert dialect not in sql, dialect
