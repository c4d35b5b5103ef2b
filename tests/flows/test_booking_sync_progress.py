"""booking_sync under the Prefect test harness: the push's progress artifact (issue 11.8) and
run names (issue 11.7: idle runs were renamed after the last drop, so several shared one)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.sync_world import AS_OF, make_world


@pytest.fixture
def world(tmp_path, prefect_harness, monkeypatch):
    w = make_world(tmp_path)
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    yield w
    w.sandbox.stop()


def flow_run(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def progress_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from tasks.sync import PROGRESS_KEY

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[PROGRESS_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def test_push_progress_artifact_reaches_100_and_idle_runs_keep_their_names(world):
    from flows.booking_sync import booking_sync

    drop = world.drop(world.region).name
    first = booking_sync(as_of=AS_OF.isoformat(), return_state=True)
    assert first.is_completed(), first.message
    summary = first.result()
    assert summary["steps"]["push"]["sent"] > 100  # more than one batch: the artifact was updated
    run = flow_run(first)
    artifacts = progress_artifacts(run.id)
    assert len(artifacts) == 1 and artifacts[0].type == "progress"
    assert float(artifacts[0].data) == 100.0
    assert "changes" in artifacts[0].description
    assert run.name.startswith(f"sync {drop} ")

    idle = booking_sync(as_of=(AS_OF + timedelta(minutes=1)).isoformat(), return_state=True)
    assert idle.is_completed(), idle.message
    idle_run = flow_run(idle)
    assert drop not in idle_run.name, "an idle run kept the name of the last drop"
    assert idle_run.name != run.name
