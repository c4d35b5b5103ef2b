"""Fixtures the end-to-end sync tests share."""

from __future__ import annotations

import pytest

from tests.e2e.sync_world import make_world


@pytest.fixture
def world(tmp_path, monkeypatch, prefect_harness):
    """A generated region, its landing and state folders and a sandbox, with the environment
    of a sync pointed at them (a test file may define its own `world`)."""
    w = make_world(tmp_path)
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    yield w
    w.sandbox.stop()
