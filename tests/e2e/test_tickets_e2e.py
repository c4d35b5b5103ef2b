"""Booking tickets end to end (issue 5): crafted booking bases → booking_sync flow → sandbox over HTTP.

Each test writes drops whose bokningsunderlag.csv holds only the bases it names
(`tests/e2e/ticket_world.py`), runs the flow in-process as operations would run it, and reads
Clinic24's stored ServiceRequests, the sandbox's request log and the state store.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from flows.booking_sync import booking_sync
from mvg_sync.clinic24.payloads import EXT_REFERRAL
from tests.e2e.sync_world import AS_OF, make_world, rechecks_only
from tests.e2e.ticket_world import Basis, basis_id, lifecycle, local_day, with_bases

LATER = AS_OF + timedelta(hours=6)


@pytest.fixture
def world(tmp_path, monkeypatch, prefect_harness):
    w = make_world(tmp_path)
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    yield w
    w.sandbox.stop()


def run(as_of) -> dict:
    state = booking_sync(as_of=as_of.isoformat(), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def query(world, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(world.state / "state.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def ticket_writes(world) -> dict[str, int]:
    """Accepted ServiceRequest writes per basis, from the outbox (one per transition, R16)."""
    rows = query(
        world,
        "SELECT key, count(*) FROM outbox WHERE resource_type = 'ServiceRequest' "
        "AND status = 'done' AND last_outcome = 'accepted' GROUP BY key",
    )
    return dict(rows)


def statuses(world) -> dict[str, str]:
    return {key: t["status"] for key, t in world.tickets().items()}


def ticket_counts_in_artifact(run_id: str) -> dict[str, dict]:
    """The ticket rows (measures `ServiceRequest.<count>`) of one run's `booking-sync-counts` table."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    # the session's one Prefect server holds every test's artifacts: the newest of this key first
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["booking-sync-counts"])),
            sort=ArtifactSort.CREATED_DESC, limit=200,
        )
    table = next(
        a for a in artifacts if a.key == "booking-sync-counts" and a.description == f"Sync run {run_id}"
    )
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    counts: dict[str, dict] = {}
    for r in rows:
        if r["measure"].startswith("ServiceRequest."):
            counts.setdefault(r["step"], {})[r["measure"].removeprefix("ServiceRequest.")] = r["value"]
    return counts


def test_r14_r15_tickets_fall_due_with_the_clock_without_a_new_drop(world):
    region = world.region
    at_once, in_31, in_32 = basis_id(1), basis_id(2), basis_id(3)
    world.drop(
        with_bases(
            region,
            [
                Basis(at_once, local_day(region, 30)),
                Basis(in_31, local_day(region, 31), patient=1),
                Basis(in_32, local_day(region, 32), patient=2),
            ],
        )
    )
    first = run(AS_OF)
    assert set(world.tickets()) == {str(at_once)}, "30 days or less ahead: at once; 31: not yet"
    assert first["steps"]["plan"]["ServiceRequest"]["inserted"] == 1

    versions = world.versions()
    next_day = AS_OF + timedelta(days=1)
    second = run(next_day)
    assert second["steps"]["ingest"]["drops"] == 0, "no new drop"
    tickets = world.tickets()
    assert set(tickets) == {str(at_once), str(in_31)}
    issued = tickets[str(in_31)]
    assert issued["status"] == "active"
    assert issued["occurrencePeriod"] == {
        "start": next_day.date().isoformat(),
        "end": local_day(region, 31).isoformat(),
    }
    assert tickets[str(at_once)]["_version"] in (1, "1"), "the first ticket is not re-sent"
    assert second["steps"]["plan"]["ServiceRequest"]["inserted"] == 1
    assert second["steps"]["push"]["ServiceRequest"] == {"sent": 1, "done": 1}
    changed = {k for k, v in world.versions().items() if versions.get(k) != v}
    assert changed == {("ServiceRequest", str(in_31))}, "only the one due ticket is written"
    assert ticket_counts_in_artifact(second["run_id"]) == {
        "plan": {"inserted": 1, "kept": 0, "superseded": 0, "not_due": 1, "rejected": 0},
        "push": {"sent": 1, "done": 1},
    }

    third = run(AS_OF + timedelta(days=2))
    assert third["steps"]["plan"]["ServiceRequest"]["inserted"] == 1
    assert world.tickets()[str(in_32)]["occurrencePeriod"]["start"] == (
        (AS_OF + timedelta(days=2)).date().isoformat()
    )
    assert ticket_writes(world) == {str(at_once): 1, str(in_31): 1, str(in_32): 1}


def test_r19_lifecycle_complete_revoke_and_no_blind_revoke(world):
    story = lifecycle(world.region, later=LATER)
    world.drop(story.first)
    first = run(AS_OF)
    assert statuses(world) == story.after_first
    issued = world.tickets()
    specialist = issued[str(basis_id(10))]
    assert {"url": EXT_REFERRAL, "valueString": "RID12345678"} in specialist["extension"], "R17"
    assert first["steps"]["plan"]["ServiceRequest"]["inserted"] == len(story.after_first)

    world.drop(story.second)
    second = run(LATER)
    after = world.tickets()
    assert statuses(world) == story.after_second
    for key, status in story.after_second.items():
        ended = status != story.after_first.get(key, status)
        assert after[key]["_version"] in ((2, "2") if ended else (1, "1")), key
        if ended:  # the ticket as issued, only its status and source sequence moved on
            before = {k: v for k, v in issued[key].items() if k not in ("id", "meta", "_version")}
            now = {k: v for k, v in after[key].items() if k not in ("id", "meta", "_version")}
            assert now["extension"] != before["extension"], key
            assert {**now, "status": before["status"], "extension": before["extension"]} == before, key
    assert second["steps"]["plan"]["ServiceRequest"]["inserted"] == 6, "5 endings and 1 new issue"
    assert second["steps"]["push"]["ServiceRequest"] == {"sent": 6, "done": 6}

    # No blind revoke: bases Clinic24 never had are never sent, so nothing is refused either.
    assert not story.never & set(after)
    sent = {k for (k,) in query(world, "SELECT DISTINCT key FROM outbox WHERE resource_type = 'ServiceRequest'")}
    assert not story.never & sent
    assert not [r for r in world.sandbox.requests() if r["status"] == 404]
    assert not query(world, "SELECT key FROM outbox WHERE status IN ('dead', 'pending')")


def test_r17_r18_bases_without_referral_or_with_contradictions_are_held(world):
    story = lifecycle(world.region, later=LATER)
    world.drop(story.first)
    summary = run(AS_OF)
    held = {
        key: (rule, reason)
        for key, rule, reason in query(
            world, "SELECT key, rule, reason FROM holds WHERE resource_type = 'ServiceRequest'"
        )
    }
    assert {key: rule for key, (rule, _) in held.items()} == story.held
    r17_r18 = held[str(basis_id(12))][1]
    assert "R17" in r17_r18 and "R18" in r17_r18, "a basis breaking two rules names both"
    assert not set(story.held) & set(world.tickets())
    assert summary["steps"]["plan"]["ServiceRequest"]["rejected"] == len(story.held)
    assert summary["steps"]["plan"]["holds"]["tickets"] == len(story.held)
    assert summary["steps"]["plan"]["ServiceRequest"]["not_due"] == 1


def test_r16_many_runs_write_each_ticket_transition_once(world):
    story = lifecycle(world.region, later=LATER)
    world.drop(story.first)
    run(AS_OF)
    versions = world.versions()
    for minute in range(1, 5):
        summary = run(AS_OF + timedelta(minutes=minute))
        assert rechecks_only(summary["steps"]["push"]), summary["steps"]["push"]
        assert "ServiceRequest" not in summary["steps"]["push"]
    assert world.versions() == versions, "R16: nothing is re-sent"
    assert all(t["_version"] in (1, "1") for t in world.tickets().values())

    world.drop(story.second)
    run(LATER)
    versions = world.versions()
    for minute in range(1, 5):
        summary = run(LATER + timedelta(minutes=minute))
        assert rechecks_only(summary["steps"]["push"]), summary["steps"]["push"]
        assert "ServiceRequest" not in summary["steps"]["push"]
    assert world.versions() == versions, "an ended ticket is ended once"
    assert statuses(world) == story.after_second
    expected = {
        key: 1 if story.after_first.get(key, status) == status else 2
        for key, status in story.after_second.items()
    }
    assert ticket_writes(world) == expected
    versions = {key: int(t["_version"]) for key, t in world.tickets().items()}
    assert versions == expected
