"""`mvg-sync sync` when Clinic24 refuses the credentials, is unreachable, or is plain http abroad (issues 11, 14)."""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.e2e.sync_world import AS_OF, make_world, prefect_env

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path, prefect_harness):
    w = make_world(tmp_path, n_bookings=60)
    w.drop(w.region)
    yield w
    w.sandbox.stop()


def _output(run) -> str:
    return run.stdout + run.stderr


def test_wrong_secret_fails_the_sync_after_one_token_request(world):
    run = world.cli("sync", "--as-of", AS_OF.isoformat(),
                    extra_env={**prefect_env(), "CLINIC24_CLIENT_SECRET": "wrong-secret-7d2e1"})  # noqa: S106
    assert run.returncode != 0
    output = _output(run)
    assert f"Clinic24 at {world.sandbox.base_url} refused the client credentials (HTTP 401" in output, output[-3000:]
    assert "CLINIC24_CLIENT_SECRET" in output
    assert "wrong-secret-7d2e1" not in output
    token_calls = [r for r in world.sandbox.requests() if r["path"] == "/oauth/token"]
    assert len(token_calls) == 1, "neither the client nor the Prefect task retries refused credentials"
    assert world.sandbox.state()["resources"] == []


def test_unreachable_clinic24_fails_the_sync_within_a_minute_naming_url_and_cause(world):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    run = world.cli("sync", "--as-of", AS_OF.isoformat(), extra_env={**prefect_env(), "CLINIC24_BASE_URL": url})
    elapsed = time.monotonic() - started
    output = _output(run)
    assert run.returncode != 0
    found = re.search(rf"Clinic24 at {re.escape(url)} unreachable: connection refused \(after (\d+) attempts in (\d+) s\)", output)
    assert found, output[-3000:]
    attempts, waited = int(found[1]), int(found[2])
    print(f"sync against {url}: exit {run.returncode} after {elapsed:.1f} s, Clinic24 part {waited} s, {attempts} attempts")
    # The whole command also starts Prefect and ingests the drop, which a loaded machine slows
    # down; the bound of issue 11 is on reporting the outage: the client's time, said in the line.
    assert waited < 60
    # One short warning per client retry, and no task retry on top (6 attempts, not 4 x 6).
    assert output.count("retrying in") == attempts - 1, output[-3000:]
    assert "will start" not in output, "Prefect retried the task after the client gave up"


def test_plain_http_to_a_foreign_host_is_refused_by_the_sync(world):
    # The URL's real host is clinic24.example.test (userinfo trick); the unit tests show with a
    # counting transport that nothing is sent, here that the sync itself stops on it.
    run = world.cli("sync", "--as-of", AS_OF.isoformat(), extra_env={
        **prefect_env(), "CLINIC24_BASE_URL": f"http://127.0.0.1:{world.sandbox.port}@clinic24.example.test",
    })  # fmt: skip
    assert run.returncode != 0
    assert "refusing plain http to clinic24.example.test" in _output(run), _output(run)[-3000:]
