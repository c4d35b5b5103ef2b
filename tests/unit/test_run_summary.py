"""RunSummary (mvg_sync/sync/summary.py): its dict form is the untyped summary's, key for key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mvg_sync.sync.summary import SKIPPED, GuardStep, RunSummary

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
EXPECTED = json.loads((Path(__file__).parents[1] / "fixtures" / "run_summary_shape.json").read_text())


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def first_run() -> RunSummary:
    """A done run as flows/booking_sync.py fills it, step by step."""
    run = RunSummary.start("abc123", NOW, NOW)
    run.steps.ingest = {"drops": 1, "drops_accepted": 1, "gaps": 0, "rows_in": 9, "accepted": 9, "quarantined": 0}
    run.extract_id = "20261126T080000-000001"
    run.steps.guard = GuardStep(cancels=0, live=0, held=0)
    run.steps.plan = {
        "Appointment": {"inserted": 5, "kept": 0, "superseded": 0},
        "ServiceRequest": {"inserted": 2, "kept": 0, "superseded": 0, "not_due": 1, "rejected": 0},
        "holds": {"bookings": 1, "tickets": 0},
    }
    run.steps.push = {"sent": 7, "done": 7, "Appointment": {"sent": 5, "done": 5},
                      "ServiceRequest": {"sent": 2, "done": 2}}
    run.steps.retention = {"drop_folders": 0, "quarantine_rows": 0, "outbox_entries": 0, "snapshot_folders": 0}
    run.latency = {"accepted": 7, "clock_skewed": 0, "p50_s": 1.0, "p95_s": 2.0, "max_s": 2.0}
    run.open_items = {"outbox": [], "holds": [{"resource_type": "Appointment", "rule": "R12", "reason": "x",
                                                "count": 1}], "awaiting_approval": [], "unit_left_clinic24": 0}
    return run


def test_dict_form_has_todays_keys_in_todays_order():
    got = first_run().as_dict()
    assert shape(got) == EXPECTED["first"]["returned"]
    assert list(got) == list(EXPECTED["first"]["returned"])
    assert list(got["steps"]) == ["ingest", "guard", "plan", "push", "retention"]


def test_stored_counts_and_artifact_rows_match_todays():
    run = first_run()
    latency, run.latency, run.open_items = run.latency, None, None  # as when publish_run_summary stores it
    stored = json.loads(json.dumps(run.stored_counts(latency), sort_keys=True, default=str))
    assert shape(stored) == EXPECTED["first"]["counts"]
    rows = [[step, name] for step, name, _ in run.steps.flat()]
    assert rows + [["latency", k] for k in latency] == EXPECTED["first"]["artifact_rows"]


def test_unset_parts_are_left_out_and_the_dict_form_reads_back():
    assert RunSummary.skipped().as_dict() == {"outcome": SKIPPED, "steps": {}}
    nothing = RunSummary.start("r", NOW, NOW)
    nothing.outcome = "nothing to do"
    nothing.warnings = ["no unit of drop d is one Clinic24 knows"]
    assert list(nothing.as_dict()) == ["run_id", "as_of", "started_at", "outcome", "steps", "warnings"]
    run = first_run()
    run.steps.wait = {"drop_landed": True, "waited_s": 1.5}
    polled = RunSummary.from_dict({**run.as_dict(), "cycles": [run.as_dict()]})
    assert polled.as_dict() == {**run.as_dict(), "cycles": [run.as_dict()]}
    assert polled.steps.guard == GuardStep(0, 0, 0)
    assert list(polled.as_dict()["steps"])[0] == "wait"
