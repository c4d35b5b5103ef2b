"""`python -m bench`: lists the benchmarks with their reproducing commands, runs the named ones."""

from __future__ import annotations

import pytest

from bench.__main__ import RECIPES, plan

NAMES = ["ingest", "plan", "sync_latency"]


def test_nothing_named_lists_every_bench_with_its_command():
    text = plan([], NAMES)
    assert isinstance(text, str)
    for name in NAMES:
        assert f"python -m bench.{name} {' '.join(RECIPES[name][0])}".rstrip() in text


def test_named_benches_run_with_their_reported_arguments():
    assert plan(["sync_latency", "ingest"], NAMES) == [
        ("sync_latency", RECIPES["sync_latency"][0]), ("ingest", RECIPES["ingest"][0])
    ]
    assert [name for name, _ in plan(["all"], NAMES)] == NAMES


def test_own_arguments_go_to_one_bench_only():
    assert plan(["sync_latency", "--", "--quick"], NAMES) == [("sync_latency", ["--quick"])]
    with pytest.raises(ValueError, match="exactly one"):
        plan(["plan", "ingest", "--", "--quick"], NAMES)


def test_an_unknown_name_is_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown benchmark.*available: ingest, plan, sync_latency"):
        plan(["nope"], NAMES)
