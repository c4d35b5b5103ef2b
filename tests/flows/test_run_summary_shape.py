"""The run summary's external forms stay as they were before it was typed (issue 13 item 3).

`tests/fixtures/run_summary_shape.json` was captured from main (13d155d, the untyped summary
dict) on this same world: for a first run and an idle run, the keys and value types of the
flow's result, of `sync_runs.counts` and the (step, measure) rows of the counts artifact.
Values are not compared; keys, nesting, order of the artifact rows and types are.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from tests.e2e.sync_world import AS_OF, make_world

EXPECTED = json.loads((Path(__file__).parents[1] / "fixtures" / "run_summary_shape.json").read_text())


@pytest.fixture
def world(tmp_path, prefect_harness, monkeypatch):
    w = make_world(tmp_path)
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    yield w
    w.sandbox.stop()


def shape(value):
    """Keys and nesting kept, every leaf replaced by its type's name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def counts_artifact_rows(flow_run_id) -> list[list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["booking-sync-counts"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    table = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    return [[row["step"], row["measure"]] for row in table]


def test_result_stored_counts_and_artifact_keep_the_untyped_summary_form(world):
    from flows.booking_sync import booking_sync

    world.drop(world.region)
    for label, as_of in (("first", AS_OF), ("idle", AS_OF + timedelta(minutes=1))):
        state = booking_sync(as_of=as_of.isoformat(), return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        with duckdb.connect(str(world.state / "state.duckdb"), read_only=True) as con:
            (stored,) = con.execute("SELECT counts FROM sync_runs ORDER BY finished_at DESC LIMIT 1").fetchone()
        expected = EXPECTED[label]
        assert shape(result) == expected["returned"], label
        assert list(result) == list(expected["returned"]), f"{label}: key order of the flow's result"
        assert shape(json.loads(stored)) == expected["counts"], label
        assert counts_artifact_rows(state.state_details.flow_run_id) == expected["artifact_rows"], label
