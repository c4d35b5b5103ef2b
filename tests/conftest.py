"""Test-wide settings: no telemetry, no network but loopback."""

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (Prefect's testing guide).

    Request it in flow tests: `def test_x(prefect_harness): ...`.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL for the session (tests/pg.py); stopped and removed at the end."""
    from tests import pg

    try:
        server = pg.start()
    except pg.NoPostgres as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
