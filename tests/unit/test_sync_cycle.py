"""Sync cycle steps: ticket holds per basis, ticket counts of the plan, push counts per resource type."""

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from mvg_sync.clinic24.client import EntryOutcome
from mvg_sync.rules.tickets import CHANGES_SCHEMA, REJECTED_SCHEMA
from mvg_sync.sync import cycle, store

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
UNIT = "SE2321000198-E1023"


def test_r17_r18_a_basis_breaking_two_rules_is_one_hold_naming_both():
    rejected = pl.DataFrame(
        [
            ("29000002", UNIT, "R18", "visit type 'x' is not Nybesök or Återbesök"),
            ("29000001", UNIT, "R17", "specialist-care unit without referral"),
            ("29000002", UNIT, "R17", "specialist-care unit without referral"),
        ],
        schema=REJECTED_SCHEMA,
        orient="row",
    )
    expected = pl.DataFrame(
        [
            ("29000001", UNIT, "R17", "R17: specialist-care unit without referral"),
            (
                "29000002",
                UNIT,
                "R17",
                "R17: specialist-care unit without referral; "
                "R18: visit type 'x' is not Nybesök or Återbesök",
            ),
        ],
        schema=cycle.HOLD_COLUMNS,
        orient="row",
    )
    assert_frame_equal(cycle.ticket_holds(rejected), expected)


def test_r15_commit_plan_reports_not_due_and_rejected_bases_with_the_ticket_counts(tmp_path):
    draft = cycle.TicketDraft(
        changes=pl.DataFrame(schema=CHANGES_SCHEMA),
        holds=pl.DataFrame(schema=cycle.HOLD_COLUMNS),
        counts={"not_due": 2, "rejected": 1},
    )
    snapshot = cycle.SnapshotRef("20261126T080000-000001", 1, NOW, date(2026, 11, 19), date(2027, 2, 24))
    counts = cycle.commit_plan(
        tmp_path, run_id="run1", bookings=None, ticket_draft=draft, snapshot=snapshot, now=NOW
    )
    assert counts == {
        "ServiceRequest": {"inserted": 0, "kept": 0, "superseded": 0, "not_due": 2, "rejected": 1}
    }


class _AcceptAll:
    """A Clinic24 client that accepts every entry, one batch per call."""

    def upsert(self, entries, *, on_batch_settled):
        outcomes = [EntryOutcome(e.change_id, "accepted", 201, version="1") for e in entries]
        on_batch_settled(outcomes)
        return outcomes


def _outbox_rows(keys: list[str], status: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "key": keys,
            "change_kind": ["create" if status == "booked" else "issue"] * len(keys),
            "rule": ["R06"] * len(keys),
            "content_hash": [f"h{k}" for k in keys],
            "source_sequence": [1] * len(keys),
            "payload": ["{}"] * len(keys),
            "target_status": [status] * len(keys),
            "target_start_at": [None] * len(keys),
            "target_unit": [UNIT] * len(keys),
            "extracted_at": [NOW] * len(keys),
        },
        schema_overrides={"target_start_at": pl.Datetime("us", "UTC"), "source_sequence": pl.Int64},
    )


def test_r14_push_counts_tickets_apart_from_bookings(tmp_path):
    con = cycle.open_state(tmp_path)
    store.write_plan(
        con,
        {
            "Appointment": _outbox_rows(["10000001", "10000002"], "booked"),
            "ServiceRequest": _outbox_rows(["29000001"], "active"),
        },
        plan_id="run1",
        now=NOW,
    )
    con.close()
    counts = cycle.push_pending(tmp_path, _AcceptAll(), clock=lambda: NOW)
    assert counts == {
        "sent": 3,
        "done": 3,
        "Appointment": {"sent": 2, "done": 2},
        "ServiceRequest": {"sent": 1, "done": 1},
    }
