"""Booking sync end to end: generated drops → flow → sandbox over HTTP (issues 4 and 5)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from flows.booking_sync import booking_sync
from mvg_sync import store
from mvg_sync.generator import next_region
from tests.e2e.sync_world import AS_OF, rechecks_only

# Every test on the file store and on PostgreSQL (issue 15.2): `backend` sets MVG_STATE_URL,
# which the flow (in this process) and `mvg-sync` subprocesses read.
pytestmark = pytest.mark.usefixtures("backend")


def run(as_of):
    state = booking_sync(as_of=as_of.isoformat(), return_state=True)
    return state, state.result(raise_on_failure=False)


def expected_live(world) -> set[str]:
    """Bookings the sync must hold as booked in Clinic24 after the drop (from the state store)."""
    with store.connect(world.state, read_only=True) as con:
        return {r[0] for r in con.execute(
            "SELECT key FROM clinic24_record WHERE resource_type = 'Appointment' AND status = 'booked'"
        ).fetchall()}


def test_r06_first_drop_creates_bookings_and_an_identical_rerun_writes_nothing(world):
    world.drop(world.region)
    state, summary = run(AS_OF)
    assert state.is_completed(), state.message
    stored = world.appointments()
    assert stored, "nothing reached Clinic24"
    assert {k for k, a in stored.items() if a["status"] == "booked"} == expected_live(world)
    assert all(a["_version"] in (1, "1") for a in stored.values())
    # GX ran after the push (issue 12): Data Docs written, no profile left waiting
    assert (world.state / "gx" / "index.html").exists()
    assert not list((world.state / "gx" / "profiles").glob("*.parquet"))
    versions = world.versions()
    state, summary = run(AS_OF + timedelta(minutes=1))
    assert state.is_completed(), state.message
    assert world.versions() == versions, "an unchanged snapshot must change nothing (R10)"
    assert rechecks_only(summary["steps"]["push"]), summary["steps"]["push"]


def test_r07_r08_r09_r10_next_drop_pushes_exactly_the_ground_truth(world):
    world.drop(world.region)
    assert run(AS_OF)[0].is_completed()
    before = world.appointments()
    later = AS_OF + timedelta(minutes=5)
    region, truth = next_region(
        world.region, seed=3, as_of=later, creations=5, rebookings=4, cancellations=3,
        vanishings=2, scope_changes=2, updates=3,
    )
    world.drop(region)
    state, summary = run(later)
    assert state.is_completed(), state.message
    after = world.appointments()
    kinds = dict(truth.select("booking_id", "expected_kind").iter_rows())
    for booking_id, kind in kinds.items():
        key = str(booking_id)
        if kind == "create":
            assert after[key]["status"] == "booked", key
        elif kind == "rebook":
            assert after[key]["status"] == "booked"
            assert after[key]["start"] != before[key]["start"] or after[key].get("participant") != before[key].get(
                "participant"
            ), key
        elif kind == "cancel":
            assert after[key]["status"] == "cancelled", key
            assert after[key]["cancelationReason"]["text"], key
        elif kind == "update":
            assert after[key]["_version"] != before[key]["_version"], key
        elif kind == "none_window_exit":
            assert after.get(key) == before.get(key), f"window exit must send nothing: {key}"
    untouched = set(before) - {str(b) for b in kinds}
    changed = {k for k in untouched if after[k]["_version"] != before[k]["_version"]}
    assert not changed, f"bookings outside the ground truth changed: {sorted(changed)[:5]}"


def test_a_long_polling_run_syncs_each_drop_as_it_lands(world):
    """The deployment's long-poll (issue 4 (b)): drops landing during a run's window are each
    taken by a cycle of that run, the second one whether it lands during the first cycle or
    after it, instead of waiting for the next scheduled run."""
    import threading

    world.drop(world.region)
    assert run(AS_OF)[0].is_completed()
    later = AS_OF + timedelta(minutes=1)
    first, _ = next_region(world.region, seed=5, as_of=later, creations=3, cancellations=2)
    second, truth = next_region(first, seed=6, as_of=later + timedelta(minutes=1), creations=2, cancellations=1)
    landed: list[str] = []
    writers = [
        threading.Timer(1.0, lambda: landed.append(world.drop(first).name)),
        threading.Timer(6.0, lambda: landed.append(world.drop(second).name)),
    ]
    for writer in writers:
        writer.start()
    try:
        state = booking_sync(as_of=(later + timedelta(minutes=1)).isoformat(), wait_for_drop_s=30, return_state=True)
    finally:
        for writer in writers:
            writer.join()
    summary = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    cycles = summary["cycles"]
    assert [c["extract_id"] for c in cycles] == landed, "one cycle per drop, in landing order"
    assert cycles[0]["steps"]["wait"]["drop_landed"] is True
    assert 0.5 <= cycles[0]["steps"]["wait"]["waited_s"] < 30, cycles[0]["steps"]["wait"]
    stored = world.appointments()
    for booking_id, kind in truth.select("booking_id", "expected_kind").iter_rows():
        assert stored[str(booking_id)]["status"] == ("booked" if kind == "create" else "cancelled"), (booking_id, kind)


def test_a_waiting_run_without_a_drop_still_runs_its_cycle(world):
    world.drop(world.region)
    assert run(AS_OF)[0].is_completed()
    state = booking_sync(as_of=(AS_OF + timedelta(minutes=1)).isoformat(), wait_for_drop_s=3, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    assert len(summary["cycles"]) == 1
    assert summary["steps"]["wait"]["drop_landed"] is False
    # the window is counted from the run's scheduled start (`window_left`): the run's own
    # start-up comes off it, the rest is waited
    assert 0.5 <= summary["steps"]["wait"]["waited_s"] <= 3.0
    assert rechecks_only(summary["steps"]["push"]), summary["steps"]["push"]


def test_r12_child_digital_visit_is_held_until_a_primary_guardian_exists(world):
    world.drop(world.region)
    run(AS_OF)
    with store.connect(world.state, read_only=True) as con:
        held = con.execute("SELECT key FROM holds WHERE rule = 'R12'").fetchall()
    assert held, "the generated region has children without a guardian"
    key = held[0][0]
    assert key not in world.appointments()
    child = world.region.bookings.filter(pl.col("BokningsID").cast(pl.Utf8) == key)["Personnummer"][0]
    world.sandbox.add_guardian(child)
    state, _ = run(AS_OF + timedelta(minutes=1))
    assert state.is_completed(), state.message
    assert world.appointments()[key]["status"] == "booked"


def test_r14_due_tickets_are_issued_once(world):
    world.drop(world.region)
    run(AS_OF)
    tickets = world.tickets()
    assert tickets, "due booking bases must produce tickets"
    assert all(t["status"] == "active" for t in tickets.values())
    versions = world.versions()
    _, summary = run(AS_OF + timedelta(minutes=1))
    assert world.versions() == versions, "R16: a ticket is issued once"
    assert "ServiceRequest" not in summary["steps"]["push"]


def test_flow_run_is_named_after_its_drop_and_publishes_counts(world):
    from prefect.client.orchestration import get_client

    drop = world.drop(world.region).name
    state, summary = run(AS_OF)
    assert state.is_completed(), state.message
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert flow_run.name.startswith(f"sync {drop}")
    counts = next(a for a in artifacts if a.key == "booking-sync-counts")
    assert '"push"' in str(counts.data) or "push" in str(counts.data)
    assert summary["steps"]["push"]["done"] == summary["steps"]["push"]["sent"] > 0


def test_r13_a_quarantined_booking_is_neither_pushed_nor_cancelled(world):
    """Bad input changes nothing in Clinic24: a row quarantined for its personnummer is not
    read as a vanished booking (R08) but kept as it is until a clean drop delivers it."""
    from dataclasses import replace

    world.drop(world.region)
    assert run(AS_OF)[0].is_completed()
    before = world.appointments()
    key = next(k for k, a in before.items() if a["status"] == "booked")
    later = AS_OF + timedelta(minutes=5)
    region, _ = next_region(world.region, seed=9, as_of=later)
    broken = region.bookings.with_columns(
        pl.when(pl.col("BokningsID").cast(pl.Utf8) == key)
        .then(pl.lit("19581124-3260"))  # check digit should be 9 (R13)
        .otherwise(pl.col("Personnummer").cast(pl.Utf8))
        .alias("Personnummer")
    )
    world.drop(replace(region, bookings=broken))
    state, _ = run(later)
    assert state.is_completed(), state.message
    assert world.appointments()[key] == before[key], "a quarantined booking must not change in Clinic24"
    with store.connect(world.state, read_only=True) as con:
        rows = con.execute(
            "SELECT rule, column_name FROM quarantine WHERE record_key = ? AND file = 'bokningar.csv'", [key]
        ).fetchall()
    assert rows == [("R13", "Personnummer")]


def test_r08_creates_whose_answers_were_lost_are_cancelled_when_cosmic_cancels_them(world):
    """A write Clinic24 applied but never confirmed is read back before the plan drops it:
    the booking Cosmic cancelled meanwhile is cancelled in Clinic24, not left booked."""
    from dataclasses import replace

    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    world.drop(world.region)
    crashed = world.cli("sync", "--as-of", AS_OF.isoformat(), extra_env={**env, "MVG_CRASH_AT": "before-settle:1"})
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert expected_live(world) == set(), "no answer was recorded before the crash"
    applied = sorted(k for k, a in world.appointments().items() if a["status"] == "booked")[:3]
    assert len(applied) == 3, "the first batch reached Clinic24"
    later = AS_OF + timedelta(minutes=5)
    region, _ = next_region(world.region, seed=4, as_of=later)
    cancelled_in_cosmic = region.bookings.with_columns(
        pl.when(pl.col("BokningsID").cast(pl.Utf8).is_in(applied)).then(pl.lit("Avbokad"))
        .otherwise(pl.col("Status").cast(pl.Utf8)).alias("Status"),
        pl.when(pl.col("BokningsID").cast(pl.Utf8).is_in(applied)).then(pl.lit("Patienten avbokar"))
        .otherwise(pl.col("Avbokningsorsak").cast(pl.Utf8)).alias("Avbokningsorsak"),
    )
    world.drop(replace(region, bookings=cancelled_in_cosmic))
    done = world.cli("sync", "--as-of", later.isoformat(), extra_env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    stored = world.appointments()
    assert [stored[k]["status"] for k in applied] == ["cancelled"] * 3
    assert all(stored[k]["cancelationReason"]["text"] == "Patienten avbokar" for k in applied)
