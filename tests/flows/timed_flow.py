"""A flow shaped like booking_sync's cycle, for bench.sync_latency's task clock (test_bench_clock)."""

from __future__ import annotations

import time

from prefect import flow, task
from prefect.cache_policies import NO_CACHE


@task(cache_policy=NO_CACHE)
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(cache_policy=NO_CACHE)
def quick() -> str:
    return "done"


@flow
def cycle() -> tuple[float, float, str]:
    waited = slow.submit(0.3)  # as fetch-clinic24-units beside ingest: waited for, then read
    beside = slow.submit(0.2)  # as the ticket plan beside the booking plan
    first = quick()
    try:
        time.sleep(0.1)
    finally:
        waited.wait()
    return waited.result(), beside.result(), first
