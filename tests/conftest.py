"""Test-wide settings: no telemetry, no network but loopback."""

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Which store a test uses is the test's choice (the `backend` fixture), never the caller's shell.
os.environ.pop("MVG_STATE_URL", None)

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


def _pg_schema_url(request) -> str:
    import secrets

    return request.getfixturevalue("pg_server").url(schema="t_" + secrets.token_hex(5))


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request, monkeypatch) -> str:
    """Run a test on both stores: for `postgresql`, MVG_STATE_URL names a fresh schema on the
    session's server, so `store.connect(state_dir)` (and any process the test starts) uses it."""
    if request.param == "postgresql":
        monkeypatch.setenv("MVG_STATE_URL", _pg_schema_url(request))
    return request.param


@pytest.fixture(autouse=True)
def _state_backend_from_env(request, monkeypatch):
    """`MVG_TEST_BACKEND=postgresql pytest …` runs any test's store on PostgreSQL (issue 15)."""
    if os.environ.get("MVG_TEST_BACKEND") == "postgresql" and "backend" not in request.fixturenames:
        monkeypatch.setenv("MVG_STATE_URL", _pg_schema_url(request))
    yield
    from mvg_sync import store

    store.use_url(None)  # a URL load_settings configured in this process ends with the test
