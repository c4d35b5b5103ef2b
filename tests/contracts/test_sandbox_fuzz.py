"""Property-based run against the sandbox's upsert endpoints: random bodies never cause a 5xx.

With faults off, whatever arrives gets a 2xx, or a 4xx whose body is an OperationOutcome.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvg_sync.clinic24.sandbox.examples import BASIS, BOOKING, appointment, service_request
from mvg_sync.clinic24.sandbox.examples import ExampleApi as Api
from mvg_sync.clinic24.sandbox.runner import SandboxHandle, start_sandbox

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
    | st.sampled_from(["booked", "cancelled", "digital", "2026-12-03T09:30:00+01:00", "0001-01-01T00:00:00+14:00", "195811243269"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=12,
)

# Paths into a valid resource where a wrong value exercises a different check.
APPOINTMENT_PATHS = [
    ("resourceType",), ("identifier",), ("identifier", 0, "value"), ("status",), ("start",), ("end",),
    ("cancelationReason",), ("serviceType",), ("specialty", 0, "coding"), ("appointmentType", "coding", 0, "code"),
    ("participant",), ("participant", 0, "actor"), ("participant", 0, "actor", "identifier", "value"),
    ("participant", 0, "actor", "identifier", "system"), ("participant", 1, "actor", "identifier"),
    ("participant", 2, "actor", "type"), ("extension",), ("extension", 0, "valueInteger"),
    ("extension", 5, "valueDateTime"), ("extension", 3), ("comment",),
]  # fmt: skip
SERVICE_REQUEST_PATHS = [
    ("resourceType",), ("identifier",), ("status",), ("intent",), ("code",), ("performerType", "coding"),
    ("subject",), ("subject", "identifier", "value"), ("performer",), ("performer", 0, "identifier"),
    ("occurrencePeriod",), ("occurrencePeriod", "end"), ("authoredOn",), ("extension",), ("extension", 0),
]  # fmt: skip
DELETE = object()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(tmp_path_factory.mktemp("fuzz-state"), faults={"rate_limit": False}) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(sandbox: SandboxHandle) -> Api:
    return Api(sandbox)


def mutate(resource: dict, path: tuple, value: object) -> dict:
    """A copy of `resource` with `path` replaced by `value` (or removed for DELETE)."""
    res = copy.deepcopy(resource)
    node = res
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return res
    try:
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass
    return res


def assert_answer_is_well_formed(status: int, body: dict | None, kind: str) -> None:
    assert status < 500, f"server error {status}"
    if 400 <= status < 500:
        assert body is not None
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"] and all(i["severity"] == "error" and i["code"] for i in body["issue"])
    else:
        assert status in (200, 201)
        assert body is not None and body["resourceType"] == kind


def mutated(kind: str):
    build, paths = (appointment, APPOINTMENT_PATHS) if kind == "Appointment" else (service_request, SERVICE_REQUEST_PATHS)
    return st.builds(
        lambda key, changes: (key, _apply(build(key), changes)),
        st.text(alphabet="ABC123-_", min_size=1, max_size=8),
        st.lists(st.tuples(st.sampled_from(paths), st.just(DELETE) | json_values), min_size=1, max_size=3),
    )


def _apply(resource: dict, changes: list) -> dict:
    for path, value in changes:
        resource = mutate(resource, path, value)
    return resource


@pytest.mark.parametrize("kind", ["Appointment", "ServiceRequest"])
@FUZZ
@given(case=st.data())
def test_mutated_resources_never_cause_a_server_error(api: Api, kind: str, case: st.DataObject) -> None:
    key, resource = case.draw(mutated(kind))
    answer = api.put(resource, key=key, kind=kind)
    assert_answer_is_well_formed(answer.status_code, answer.json(), kind)


@pytest.mark.parametrize("kind", ["Appointment", "ServiceRequest"])
@FUZZ
@given(body=json_values, key=st.text(max_size=30))
def test_random_json_and_identifiers_never_cause_a_server_error(api: Api, kind: str, body: object, key: str) -> None:
    answer = api.put(json.dumps(body).encode(), key=key, kind=kind)
    assert_answer_is_well_formed(answer.status_code, answer.json(), kind)
    assert answer.status_code >= 400  # random JSON is never a valid resource


@FUZZ
@given(raw=st.binary(max_size=200), raw_identifier=st.text(max_size=40))
def test_random_bytes_and_raw_identifier_parameters_are_4xx(api: Api, raw: bytes, raw_identifier: str) -> None:
    answer = api.http.put(
        "/fhir/Appointment", params={"identifier": raw_identifier}, content=raw, headers=api.headers()
    )
    assert 400 <= answer.status_code < 500
    assert answer.json()["resourceType"] == "OperationOutcome"


@FUZZ
@given(case=st.data())
def test_random_batches_answer_every_entry_in_order(api: Api, case: st.DataObject) -> None:
    entries = []
    for _ in range(case.draw(st.integers(0, 6))):
        choice = case.draw(st.sampled_from(["appointment", "service_request", "json"]))
        if choice == "json":
            entries.append(case.draw(json_values))
        else:
            kind = "Appointment" if choice == "appointment" else "ServiceRequest"
            key, resource = case.draw(mutated(kind))
            system = BOOKING if kind == "Appointment" else BASIS
            entries.append({"request": {"method": "PUT", "url": f"{kind}?identifier={system}|{key}"}, "resource": resource})
    answer = api.http.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries}, headers=api.headers())
    assert answer.status_code == 200
    results = answer.json()["entry"]
    assert len(results) == len(entries)
    for result in results:
        status = int(result["response"]["status"].split()[0])
        assert status in (200, 201, 400, 404, 409, 422)
        if status >= 400:
            assert result["response"]["outcome"]["resourceType"] == "OperationOutcome"
        else:
            assert result["response"]["etag"].startswith('W/"')
