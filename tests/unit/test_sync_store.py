"""The outbox and record: convergence, settlement, redrive (issue 4, crash-safety basis)."""

from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.store import outbox as store
from mvg_sync.store.types import ResourceType
from mvg_sync.sync import push

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "state.duckdb"))
    store.ensure_schema(c)
    yield c
    c.close()


CHANGE_SCHEMA = {
    "key": pl.Utf8, "change_kind": pl.Utf8, "rule": pl.Utf8, "content_hash": pl.Utf8,
    "source_sequence": pl.Int64, "payload": pl.Utf8, "target_status": pl.Utf8,
    "target_start_at": pl.Datetime("us", "UTC"), "target_unit": pl.Utf8, "extracted_at": pl.Datetime("us", "UTC"),
}


def changes(*rows):
    return pl.DataFrame(
        [
            {
                "key": key, "change_kind": kind, "rule": "R06", "content_hash": h,
                "source_sequence": 1, "payload": '{"resourceType": "Appointment"}',
                "target_status": "booked", "target_start_at": NOW, "target_unit": "SE2321000198-HC0001",
                "extracted_at": NOW,
            }
            for key, kind, h in rows
        ],
        schema=CHANGE_SCHEMA,
    )


def statuses(con):
    return dict(con.execute("SELECT change_id, status FROM outbox ORDER BY 1").fetchall())


def settled(con, change_id, outcome, new_status, version="1", reason=None):
    """One answer, with the entry's own columns as push_pending passes them."""
    entry = next(e for e in store.pending_entries(con) if e.change_id == change_id)
    return pl.DataFrame(
        [{"change_id": change_id, "outcome": outcome, "new_status": new_status, "reason": reason,
          "version": version, "settled_at": NOW, **{k: getattr(entry, k) for k in push._RECORDED}}],
        schema=push.SETTLED_SCHEMA,
    )


def test_plan_is_written_before_push_and_replan_keeps_same_content(con):
    w = store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    assert w["Appointment"].inserted == 1
    w = store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run2", now=NOW)
    assert (w["Appointment"].inserted, w["Appointment"].kept, w["Appointment"].superseded) == (0, 1, 0)
    assert statuses(con) == {"run1/Appointment/b1": "pending"}


def test_replan_with_new_content_supersedes_the_old_entry(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h2"))}, plan_id="run2", now=NOW)
    assert statuses(con) == {"run1/Appointment/b1": "superseded", "run2/Appointment/b1": "pending"}
    assert [e.change_id for e in store.pending_entries(con)] == ["run2/Appointment/b1"]


def test_a_change_no_longer_planned_is_superseded(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.write_plan(con, {"Appointment": changes()}, plan_id="run2", now=NOW)
    assert statuses(con) == {"run1/Appointment/b1": "superseded"}


def test_accepted_answer_updates_the_record_in_the_same_transaction(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.settle(con, settled(con, "run1/Appointment/b1", "accepted", "done"))
    record = store.load_record(con, "Appointment")
    assert record.select("key", "status", "content_hash").rows() == [("b1", "booked", "h1")]
    assert statuses(con) == {"run1/Appointment/b1": "done"}
    assert store.live_synced_count(con, since=NOW) == 1
    assert store.live_synced_count(con, since=NOW + timedelta(days=1)) == 0, "past visits are not live"


def test_r06_r10_the_plan_reads_its_columns_of_the_record_and_nothing_else(con):
    """R06-R10 (issue 12): the booking plan loads the 5 record columns its rules compare, of 8;
    another name is refused, never put into the query."""
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.settle(con, settled(con, "run1/Appointment/b1", "accepted", "done"))
    narrow = store.load_record(con, "Appointment", store.PLAN_RECORD_COLUMNS)
    assert narrow.columns == ["key", "status", "start_at", "unit_hsa_id", "content_hash"]
    assert_frame_equal(narrow, store.load_record(con, "Appointment").select(narrow.columns))
    with pytest.raises(ValueError, match="payload"):
        store.load_record(con, "Appointment", ("key", "payload"))


def test_transient_answer_leaves_entry_pending_and_record_untouched(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.settle(con, settled(con, "run1/Appointment/b1", "transient", "pending", version=None))
    assert statuses(con) == {"run1/Appointment/b1": "pending"}
    assert store.load_record(con, "Appointment").height == 0
    assert con.execute("SELECT attempts FROM outbox").fetchone()[0] == 1


def test_dead_letter_stays_dead_until_redrive(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run1", now=NOW)
    store.settle(con, settled(con, "run1/Appointment/b1", "rejected", "dead", version=None, reason="422 invalid"))
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"))}, plan_id="run2", now=NOW)
    assert statuses(con) == {"run1/Appointment/b1": "dead"}
    assert store.pending_entries(con) == []
    assert store.redrive(con) == 1
    assert [e.key for e in store.pending_entries(con)] == ["b1"]


def test_approval_hold_and_release(con):
    store.hold_for_approval(con, "20261126T080500-000123", cancels=900, live=1000, reason="x", now=NOW)
    assert store.approval_status(con, "20261126T080500-000123") == "held"
    assert store.approve(con, "20261126T080500-000123", now=NOW)
    assert store.approval_status(con, "20261126T080500-000123") == "approved"
    assert not store.approve(con, "nope", now=NOW)


def test_an_entry_held_on_the_push_carries_rule_r12_and_is_found_by_it(con):
    """R12 by the `rule` column: settling `held` records R12, so the guardian check and `status`
    find the child without reading the reason text."""
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"), ("b2", "create", "h2"))},
                     plan_id="run1", now=NOW)
    store.settle(con, settled(con, "run1/Appointment/b1", "rejected", "held", reason="R12 needs-primary-guardian"))
    store.settle(con, settled(con, "run1/Appointment/b2", "rejected", "dead", reason="R12 lookalike text"))
    rules = dict(con.execute("SELECT key, rule FROM outbox ORDER BY key").fetchall())
    assert rules == {"b1": "R12", "b2": "R06"}, "a dead letter keeps its planning rule"
    assert store.guardian_held_keys(con) == ["b1"]
    # a held entry whose reason says R12 but whose rule does not is not an R12 hold any more
    con.execute("UPDATE outbox SET rule = 'R06' WHERE key = 'b1'")
    assert store.guardian_held_keys(con) == []


def test_pending_and_in_doubt_entries_are_typed_rows(con):
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"), ("b2", "create", "h2"))},
                     plan_id="run1", now=NOW)
    pending = store.pending_entries(con)
    assert [type(e).__name__ for e in pending] == ["PendingEntry", "PendingEntry"]
    assert pending[0].resource_type is ResourceType.APPOINTMENT
    assert store.pending_entries(con, "ServiceRequest") == []
    assert store.pending_count(con) == 2
    in_doubt = store.in_doubt_entries(con, "Appointment", ["b1"])
    assert [(e.key, e.payload) for e in in_doubt] == [("b2", {"resourceType": "Appointment"})]
    assert [e.key for e in store.in_doubt_entries(con, "Appointment", [])] == ["b1", "b2"]


def test_reconcile_corrects_the_record_through_the_store(con):
    """Drift: a key Clinic24 lacks leaves the record; what it holds instead is recorded without a hash."""
    store.write_plan(con, {"Appointment": changes(("b1", "create", "h1"), ("b2", "create", "h2"))},
                     plan_id="run1", now=NOW)
    for key in ("b1", "b2"):
        store.settle(con, settled(con, f"run1/Appointment/{key}", "accepted", "done"))
    seen = pl.DataFrame({"key": ["b2", "b3"], "seen_status": ["cancelled", "booked"],
                         "seen_start_at": [NOW, NOW], "seen_unit": ["SE2", "SE3"]},
                        schema={"key": pl.Utf8, "seen_status": pl.Utf8,
                                "seen_start_at": pl.Datetime("us", "UTC"), "seen_unit": pl.Utf8})
    store.correct_record(con, missing=["b1"], seen=seen, now=NOW + timedelta(minutes=1))
    record = store.load_record(con, "Appointment").sort("key")
    assert record.select("key", "status", "unit_hsa_id", "content_hash").rows() == [
        ("b2", "cancelled", "SE2", None), ("b3", "booked", "SE3", None)]
