"""The session-wide Prefect harness runs a real flow."""

from prefect import flow, task


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubling(x: int) -> int:
    return double(x)


def test_harness_runs_a_real_flow(prefect_harness):
    assert doubling(21) == 42
