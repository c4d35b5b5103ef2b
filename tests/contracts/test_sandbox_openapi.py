"""Schemathesis run against the sandbox's own OpenAPI document (issue 3): every /fhir operation.

The document is read from the running sandbox (`/openapi.json`); requests carry a bearer
token from `/oauth/token`. Valid and invalid requests generated from the document must never
get a 5xx, and must get a status code, media type and body the document declares for that
operation. Bounded and derandomised, so a run is repeatable and short.

Schemathesis's own pytest loader (`schemathesis.pytest.from_fixture`) sets
`request.node._nodeid`, which pytest 9.2 no longer has, so each operation's strategy is
driven by a plain Hypothesis `@given` here instead.
"""

from __future__ import annotations

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mvg_sync.clinic24.sandbox.examples import BASIS, BOOKING, appointment, entry, service_request
from mvg_sync.clinic24.sandbox.openapi_doc import FHIR_JSON
from mvg_sync.clinic24.sandbox.runner import SandboxHandle, start_sandbox

FHIR_OPERATIONS = [
    ("GET", "/fhir/Location"), ("GET", "/fhir/RelatedPerson"), ("GET", "/fhir/Appointment"),
    ("GET", "/fhir/ServiceRequest"), ("PUT", "/fhir/Appointment"), ("PUT", "/fhir/ServiceRequest"),
    ("POST", "/fhir"),
]
# Examples per operation and mode. Generating a FHIR body from the document's nested schemas
# costs Hypothesis ~0.3 s an example here (a batch of them more), so the writes get fewer.
EXAMPLES = {"GET": 25, "PUT": 15, "POST": 10}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    # No rate limit: a burst of generated requests would otherwise meet 429s, which the
    # document allows but which would keep the cases from reaching the handlers.
    with start_sandbox(tmp_path_factory.mktemp("openapi-state"), faults={"rate_limit": False}) as handle:
        yield handle


@pytest.fixture(scope="module")
def bearer(sandbox: SandboxHandle) -> dict[str, str]:
    answer = httpx.post(f"{sandbox.base_url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "mvg-sync", "client_secret": "sandbox-secret"})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def api_schema(sandbox: SandboxHandle):
    return schemathesis.openapi.from_url(f"{sandbox.base_url}/openapi.json")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


def test_document_names_every_fhir_operation_this_run_covers(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    fhir = {(op.method.upper(), op.path) for op in operations if op.path.startswith("/fhir")}
    assert fhir == set(FHIR_OPERATIONS)
    assert all(op.definition.raw.get("security") == [{"clinic24": []}]
               for op in operations if op.path.startswith("/fhir"))


def test_document_declares_only_answers_the_sandbox_gives(sandbox):
    """No FastAPI default the sandbox overrides: parameter errors are 400 OperationOutcomes."""
    doc = httpx.get(f"{sandbox.base_url}/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert answers.get("422", {}).get("description") != "Validation Error", (method, path)
            if path.startswith("/fhir"):
                media = {m for answer in answers.values() for m in answer.get("content", {})}
                assert media == {FHIR_JSON}, (method, path, media)
    assert "schemas" not in doc["components"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), FHIR_OPERATIONS)
def test_fhir_operation_answers_as_the_openapi_document_says(
    api_schema, sandbox, bearer, session, method, path, mode
):
    operation = api_schema[path][method]
    seen: list[int] = []

    @settings(max_examples=EXAMPLES[method], deadline=2000, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call_and_validate(
            base_url=sandbox.base_url, session=session, headers=bearer, checks=CHECKS, timeout=10)
        seen.append(response.status_code)

    run()
    assert seen, "no case was sent"


@pytest.mark.parametrize(("path", "key", "build", "system"), [
    ("/fhir/Appointment", "OA-1", appointment, BOOKING),
    ("/fhir/ServiceRequest", "OA-2", service_request, BASIS),
])
def test_put_create_then_identical_answers_as_the_openapi_document_says(
    api_schema, sandbox, bearer, session, path, key, build, system
):
    """Random bodies rarely pass the sandbox's rules; valid ones reach the 201 and 200 answers."""
    operation = api_schema[path]["PUT"]
    statuses = []
    for _ in range(2):
        case = operation.Case(query={"identifier": f"{system}|{key}"}, body=build(key),
                              media_type=FHIR_JSON)
        response = case.call_and_validate(
            base_url=sandbox.base_url, session=session, headers=bearer, checks=CHECKS, timeout=10)
        statuses.append(response.status_code)
    assert statuses == [201, 200]


def test_batch_with_valid_entries_answers_as_the_openapi_document_says(
    api_schema, sandbox, bearer, session
):
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [entry(appointment("OA-3")), entry(service_request("OA-4"))]}
    case = api_schema["/fhir"]["POST"].Case(body=bundle, media_type=FHIR_JSON)
    response = case.call_and_validate(
        base_url=sandbox.base_url, session=session, headers=bearer, checks=CHECKS, timeout=10)
    assert response.status_code == 200
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["201", "201"]
