"""The sandbox's HTTP surface: a FastAPI app implementing clinic24-api.md plus `/_control`.

Bodies are read as bytes and parsed with orjson instead of pydantic models, and answers are
pre-serialised, because the upsert path must sustain >= 2,000 resources/s on two cores. The
OpenAPI document still describes every FHIR body through `openapi_extra`.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mvg_sync.clinic24.sandbox import openapi_doc
from mvg_sync.clinic24.sandbox.store import Known, Store, content_digest, logical_id
from mvg_sync.clinic24.sandbox.validation import (
    BOOKING,
    BOOKING_BASIS,
    HSA,
    PATIENT_SYSTEMS,
    Checked,
    Issue,
    birth_date,
    check_appointment,
    check_service_request,
)

FHIR_JSON = "application/fhir+json"
MAX_BATCH = 100
RATE_PER_S = 20.0
BURST = 40.0
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
}
SYSTEM_OF = {"Appointment": BOOKING, "ServiceRequest": BOOKING_BASIS}

# Units the sandbox knows when started without --units (documented in the package README).
DEMO_UNITS = {
    "SE2321000198-HC0001": "Hälsocentral Centrum Gävle",
    "SE2321000198-HC0002": "Hälsocentral Brynäs",
    "SE2321000198-HC0003": "Hälsocentral Sandviken",
    "SE2321000198-HC0004": "Hälsocentral Hudiksvall",
    "SE2321000198-HC0005": "Hälsocentral Bollnäs",
    "SE2321000198-SP0001": "Hudmottagning Gävle",
    "SE2321000198-SP0002": "Ortopedmottagning Gävle",
    "SE2321000198-ST0001": "Strålbehandlingsmottagning Gävle",
}


@dataclass
class Faults:
    """Switchable misbehaviour; shares are probabilities per /fhir call."""

    fail_before_share: float = 0.0
    fail_after_share: float = 0.0
    throttle_share: float = 0.0
    latency_ms: int = 0
    rate_limit: bool = True
    token_ttl_s: float = 300.0
    seed: int | None = None

    def update(self, changes: dict) -> None:
        known = {f for f in self.__dataclass_fields__}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for key, value in changes.items():
            if key in ("fail_before_share", "fail_after_share", "throttle_share"):
                value = float(value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{key} must be within [0, 1]")
            elif key == "latency_ms":
                value = int(value)
                if value < 0:
                    raise ValueError("latency_ms must be >= 0")
            elif key == "rate_limit":
                if not isinstance(value, bool):
                    raise ValueError("rate_limit must be true or false")
            elif key == "token_ttl_s":
                value = float(value)
                if value < 0:
                    raise ValueError("token_ttl_s must be >= 0")
            elif key == "seed" and value is not None:
                value = int(value)
            setattr(self, key, value)


@dataclass
class SandboxConfig:
    """Everything the app needs at start."""

    state_file: Path
    client_id: str = "mvg-sync"
    client_secret: str = "sandbox-secret"  # noqa: S105 - the documented sandbox default
    units: dict[str, str] | None = None
    guardians: set[str] | None = None
    faults: dict = field(default_factory=dict)
    # Required in `X-Control-Token` by every /_control route but health: the routes show and
    # reset patient-shaped data. None makes one up (unusable from outside: tests pass theirs).
    control_token: str | None = None


def outcome_bytes(code: str, diagnostics: str, expression: str | None = None) -> bytes:
    return orjson.dumps(Issue(0, code, diagnostics, expression).outcome())


def error(status: int, code: str, diagnostics: str, expression: str | None = None, headers: dict | None = None) -> Response:
    return Response(outcome_bytes(code, diagnostics, expression), status, headers=headers, media_type=FHIR_JSON)


def fhir(body: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=FHIR_JSON)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


class Sandbox:
    """The mutable state behind the app: store, tokens, rate buckets, faults, request log."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_file)
        # A given seed file replaces the persisted units; without one, persisted units win and
        # the demo list only fills an empty store.
        if config.units is not None:
            self.store.replace_units(config.units)
        elif not self.store.units:
            self.store.replace_units(DEMO_UNITS)
        if config.guardians:
            self.store.add_guardians(config.guardians)
        self.faults = Faults()
        self.faults.update(config.faults)
        self.rng = random.Random(self.faults.seed)
        self.tokens: dict[str, tuple[str, float]] = {}
        self.buckets: dict[str, tuple[float, float]] = {}
        self.log: deque[dict] = deque(maxlen=20_000)

    # --- auth, rate limit, faults ------------------------------------------------------

    def issue_token(self, client_id: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (client_id, time.monotonic())
        return token

    def client_of(self, request: Request) -> str | Response:
        """The client id behind the bearer token, or the 401 answer."""
        header = request.headers.get("authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error(401, "login", "a bearer token is required", headers=challenge)
        found = self.tokens.get(token.strip())
        if found is None:
            return error(401, "login", "unknown token", headers=challenge)
        client_id, issued = found
        # Expiry uses the current TTL, so lowering token_ttl_s expires live tokens at once.
        if time.monotonic() - issued >= self.faults.token_ttl_s:
            return error(401, "expired", "token expired", headers=challenge)
        return client_id

    def take_token(self, client_id: str) -> Response | None:
        """Token bucket, 20/s with bursts of 40; the 429 answer when empty."""
        now = time.monotonic()
        level, then = self.buckets.get(client_id, (BURST, now))
        level = min(BURST, level + (now - then) * RATE_PER_S)
        if level >= 1.0:
            self.buckets[client_id] = (level - 1.0, now)
            return None
        self.buckets[client_id] = (level, now)
        wait = max(1, math.ceil((1.0 - level) / RATE_PER_S))
        return error(429, "throttled", "rate limit exceeded", headers={"Retry-After": str(wait)})

    async def guard(self, request: Request) -> Response | None:
        """Latency, auth, rate limit, random throttling and fail-before, in that order."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        client = self.client_of(request)
        if isinstance(client, Response):
            return client
        if self.faults.rate_limit and (answer := self.take_token(client)):
            return answer
        if self.faults.throttle_share and self.rng.random() < self.faults.throttle_share:
            return error(429, "throttled", "injected throttling", headers={"Retry-After": "1"})
        if self.faults.fail_before_share and self.rng.random() < self.faults.fail_before_share:
            return error(503, "transient", "injected failure before applying")
        return None

    def fail_after(self) -> Response | None:
        if self.faults.fail_after_share and self.rng.random() < self.faults.fail_after_share:
            return error(503, "transient", "injected failure after applying")
        return None

    # --- upserts -------------------------------------------------------------------------

    def decide(
        self,
        resource_type: str,
        url_identifier: str | None,
        resource: object,
        pending: dict[tuple[str, str], Known],
        rows: list[tuple],
        now: str,
    ) -> tuple[int, str | None, Issue | None, dict | None]:
        """One conditional upsert: (status, etag, issue, stored body); queues the row to write."""
        system = SYSTEM_OF[resource_type]
        if not url_identifier:
            return 400, None, Issue(400, "invalid", "identifier search parameter is required"), None
        url_system, sep, url_value = url_identifier.partition("|")
        if not sep or url_system != system or not url_value:
            return 400, None, Issue(400, "invalid", f"identifier must be {system}|<id>"), None
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            return 400, None, Issue(400, "structure", f"body must be a {resource_type}"), None
        ids = resource.get("identifier")
        if isinstance(ids, list) and ids:
            first = ids[0]
            if not isinstance(first, dict) or first.get("system") != system or first.get("value") != url_value:
                return 400, None, Issue(400, "invalid", "identifier in the body differs from the URL", f"{resource_type}.identifier"), None
        checker = check_appointment if resource_type == "Appointment" else check_service_request
        try:
            checked = checker(resource)
        except (OverflowError, ValueError):
            checked = Issue(422, "value", "a date or time is out of range", resource_type)
        if isinstance(checked, Issue):
            return checked.status, None, checked, None
        assert isinstance(checked, Checked)
        key = (resource_type, url_value)
        if checked.unit_hsa_id not in self.store.units:
            where = "Appointment.participant" if resource_type == "Appointment" else "ServiceRequest.performer"
            return 404, None, Issue(404, "not-found", "unknown unit", where), None
        known = pending.get(key) or self.store.index.get(key)
        if known is None and checked.status in ("cancelled", "revoked"):
            return 404, None, Issue(404, "not-found", f"{checked.status} {resource_type} was never stored", f"{resource_type}.status"), None
        if known is not None and checked.source_sequence < known.source_sequence:
            return 409, None, Issue(409, "conflict", "source-sequence is lower than the stored one (stale change)", f"{resource_type}.extension"), None
        if (
            resource_type == "Appointment"
            and checked.status == "booked"
            and checked.is_child_digital
            and checked.patient_id not in self.store.guardians
        ):
            return 422, None, Issue(422, "business-rule", "primary-guardian-missing", "Appointment.participant"), None
        digest = content_digest(resource)
        if known is not None and known.digest == digest:
            return 200, f'W/"{known.version}"', None, None
        lid = known.logical_id if known else logical_id(resource_type, url_value)
        version = known.version + 1 if known else 1
        stored = {k: v for k, v in resource.items() if k not in ("id", "meta")}
        stored["id"] = lid
        stored["meta"] = {"versionId": str(version), "lastUpdated": now}
        rows.append(
            (
                resource_type,
                url_value,
                lid,
                version,
                checked.source_sequence,
                digest,
                checked.status,
                checked.unit_hsa_id,
                checked.start_date,
                now,
                orjson.dumps(stored).decode(),
            )
        )
        pending[key] = Known(lid, version, checked.source_sequence, digest)
        return (201 if version == 1 else 200), f'W/"{version}"', None, stored


def _now_text() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")


def _bundle(kind: str, total: int | None, resources: list[dict], base: str, links: list[dict]) -> dict:
    bundle: dict = {"resourceType": "Bundle", "type": kind}
    if total is not None:
        bundle["total"] = total
    if links:
        bundle["link"] = links
    bundle["entry"] = [
        {"fullUrl": f"{base}/fhir/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    return bundle


def _page_links(request: Request, page: int, count: int, total: int) -> list[dict]:
    links = [{"relation": "self", "url": str(request.url)}]
    if page * count < total:
        links.append({"relation": "next", "url": str(request.url.include_query_params(_page=page + 1))})
    return links


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _parse_batch_url(url: object) -> tuple[str, str | None] | None:
    """(resource type, identifier parameter) of a batch entry's `request.url`."""
    if not isinstance(url, str):
        return None
    path, _, query = url.partition("?")
    path = path.strip("/")
    if "/fhir/" in f"/{path}":
        path = f"/{path}".rsplit("/fhir/", 1)[1]
    if path not in SYSTEM_OF:
        return None
    values = parse_qs(query, keep_blank_values=True).get("identifier")
    return path, (values[0] if values else None)


def create_app(config: SandboxConfig) -> FastAPI:
    """The sandbox app over one state file."""
    sandbox = Sandbox(config)
    app = FastAPI(
        title="Clinic24 sandbox",
        version="1",
        description="Local implementation of the Clinic24 integration API v1 (clinic24-api.md).",
    )
    app.state.sandbox = sandbox
    app.add_middleware(_RequestLogMiddleware, sandbox=sandbox)
    app.add_middleware(_ControlTokenMiddleware, token=config.control_token or secrets.token_urlsafe(24))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "exception")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _param_error(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return error(400, "invalid", f"invalid request parameters: {where}")

    # --- OAuth ----------------------------------------------------------------------------

    @app.post("/oauth/token", tags=["auth"], openapi_extra=openapi_doc.TOKEN_REQUEST, responses=openapi_doc.TOKEN_RESPONSES)
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            return error(400, "invalid", "grant_type must be client_credentials")
        if form.get("client_id") != config.client_id or not secrets.compare_digest(
            form.get("client_secret", "").encode(), config.client_secret.encode()
        ):
            return error(401, "login", "unknown client or wrong secret")
        access = sandbox.issue_token(config.client_id)
        ttl = sandbox.faults.token_ttl_s
        return _json({"access_token": access, "token_type": "Bearer", "expires_in": int(ttl)})

    # --- reading --------------------------------------------------------------------------

    @app.get("/fhir/Location", tags=["fhir"], responses=openapi_doc.SEARCH_RESPONSES)
    async def locations(
        request: Request,
        count: int = Query(50, alias="_count", ge=1, le=1000),
        page: int = Query(1, alias="_page", ge=1),
    ) -> Response:
        if answer := await sandbox.guard(request):
            return answer
        units = sorted(sandbox.store.units.items())
        chosen = units[(page - 1) * count : page * count]
        resources = [
            {
                "resourceType": "Location",
                "id": hsa.replace("_", "-")[:64],
                "identifier": [{"system": HSA, "value": hsa}],
                "name": name,
                "status": "active",
            }
            for hsa, name in chosen
        ]
        body = _bundle("searchset", len(units), resources, _base(request), _page_links(request, page, count, len(units)))
        return sandbox.fail_after() or fhir(body)

    @app.get("/fhir/RelatedPerson", tags=["fhir"], responses=openapi_doc.SEARCH_RESPONSES)
    async def related_person(
        request: Request,
        patient_identifier: str = Query(..., alias="patient-identifier"),
        primary: bool = Query(True),
    ) -> Response:
        if answer := await sandbox.guard(request):
            return answer
        system, sep, value = unquote(patient_identifier).partition("|")
        if not sep or system not in PATIENT_SYSTEMS or birth_date(value) is None:
            return error(400, "invalid", "patient-identifier must be <personnummer or samordningsnummer system>|<12 digits>")
        resources = []
        if value in sandbox.store.guardians:
            resources.append(
                {
                    "resourceType": "RelatedPerson",
                    "id": logical_id("RelatedPerson", value).replace("sr-", "rp-"),
                    "active": True,
                    "patient": {"identifier": {"system": system, "value": value}},
                    "relationship": [{"coding": [{"system": "urn:clinic24:relationship", "code": "primary-guardian"}]}],
                }
            )
        body = _bundle("searchset", len(resources), resources, _base(request), [])
        return sandbox.fail_after() or fhir(body)

    async def search(request: Request, resource_type: str) -> Response:
        if answer := await sandbox.guard(request):
            return answer
        params = request.query_params
        identifier = params.get("identifier")
        if identifier is not None:
            system, sep, value = identifier.partition("|")
            if not sep or system != SYSTEM_OF[resource_type] or not value:
                return error(400, "invalid", f"identifier must be {SYSTEM_OF[resource_type]}|<id>")
            found = sandbox.store.get(resource_type, value)
            body = _bundle("searchset", 1 if found else 0, [found] if found else [], _base(request), [])
            return sandbox.fail_after() or fhir(body)
        location = params.get("location")
        if resource_type != "Appointment" or not location:
            return error(400, "invalid", "search by identifier (or, for Appointment, by location and date)")
        first = last = None
        for value in params.getlist("date"):
            prefix, day = value[:2], value[2:]
            if prefix not in ("ge", "le") or len(day) != 10 or not day[:4].isdigit():
                return error(400, "invalid", "date must be geYYYY-MM-DD or leYYYY-MM-DD")
            if prefix == "ge":
                first = day
            else:
                last = day
        try:
            count = int(params.get("_count", "100"))
            page = int(params.get("_page", "1"))
        except ValueError:
            return error(400, "invalid", "_count and _page must be integers")
        if not 1 <= count <= 1000 or page < 1:
            return error(400, "invalid", "_count must be 1..1000 and _page >= 1")
        total, found = sandbox.store.by_unit_and_dates(location, first, last, count, (page - 1) * count)
        body = _bundle("searchset", total, found, _base(request), _page_links(request, page, count, total))
        return sandbox.fail_after() or fhir(body)

    @app.get("/fhir/Appointment", tags=["fhir"], responses=openapi_doc.SEARCH_RESPONSES)
    async def search_appointments(
        request: Request,
        identifier: str | None = Query(None, description="urn:cosmic:gavleborg:booking|<BokningsID>"),
        location: str | None = Query(None, description="unit HSA-id"),
        date: Annotated[list[str] | None, Query(description="geYYYY-MM-DD and/or leYYYY-MM-DD")] = None,
        count: int = Query(100, alias="_count", ge=1, le=1000),
        page: int = Query(1, alias="_page", ge=1),
    ) -> Response:
        return await search(request, "Appointment")

    @app.get("/fhir/ServiceRequest", tags=["fhir"], responses=openapi_doc.SEARCH_RESPONSES)
    async def search_service_requests(
        request: Request,
        identifier: str = Query(..., description="urn:cosmic:gavleborg:booking-basis|<UnderlagsID>"),
    ) -> Response:
        return await search(request, "ServiceRequest")

    # --- writing --------------------------------------------------------------------------

    async def put(request: Request, resource_type: str, identifier: str) -> Response:
        if answer := await sandbox.guard(request):
            return answer
        request.state.entries = 1
        try:
            resource = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "structure", "body is not JSON")
        rows: list[tuple] = []
        now = _now_text()
        pending: dict[tuple[str, str], Known] = {}
        status, etag, issue, stored = sandbox.decide(resource_type, identifier, resource, pending, rows, now)
        sandbox.store.write(rows, pending)
        if lost := sandbox.fail_after():
            return lost
        if issue is not None:
            return Response(orjson.dumps(issue.outcome()), status, media_type=FHIR_JSON)
        if stored is None:  # identical: answer with what is stored
            stored = sandbox.store.get(resource_type, identifier.partition("|")[2])
        headers = {"ETag": etag or "", "Location": f"{_base(request)}/fhir/{resource_type}/{stored['id']}/_history/{stored['meta']['versionId']}"}
        return fhir(stored, status, headers)

    @app.put("/fhir/Appointment", tags=["fhir"], openapi_extra=openapi_doc.put_body("Appointment"), responses=openapi_doc.put_responses("Appointment"))
    async def put_appointment(
        request: Request, identifier: str = Query(..., description="urn:cosmic:gavleborg:booking|<BokningsID>")
    ) -> Response:
        return await put(request, "Appointment", identifier)

    @app.put("/fhir/ServiceRequest", tags=["fhir"], openapi_extra=openapi_doc.put_body("ServiceRequest"), responses=openapi_doc.put_responses("ServiceRequest"))
    async def put_service_request(
        request: Request, identifier: str = Query(..., description="urn:cosmic:gavleborg:booking-basis|<UnderlagsID>")
    ) -> Response:
        return await put(request, "ServiceRequest", identifier)

    @app.post("/fhir", tags=["fhir"], openapi_extra=openapi_doc.BATCH_BODY, responses=openapi_doc.BATCH_RESPONSES)
    async def batch(request: Request) -> Response:
        if answer := await sandbox.guard(request):
            return answer
        try:
            bundle = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "structure", "body is not JSON")
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "batch":
            return error(400, "structure", "body must be a Bundle of type batch")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            return error(400, "structure", "Bundle.entry must be a list")
        request.state.entries = len(entries)
        if len(entries) > MAX_BATCH:
            return error(413, "too-costly", f"a batch holds at most {MAX_BATCH} entries")
        rows: list[tuple] = []
        pending: dict[tuple[str, str], Known] = {}
        now = _now_text()
        answers = []
        for entry in entries:
            req = entry.get("request") if isinstance(entry, dict) else None
            target = _parse_batch_url(req.get("url")) if isinstance(req, dict) else None
            if target is None or req.get("method") != "PUT":
                status, etag, issue = 400, None, Issue(400, "invalid", "each entry needs request.method PUT and request.url <Appointment|ServiceRequest>?identifier=…")
            else:
                status, etag, issue, _ = sandbox.decide(target[0], target[1], entry.get("resource"), pending, rows, now)
            response: dict = {"status": f"{status} {REASONS[status]}"}
            if etag:
                response["etag"] = etag
            if issue is not None:
                response["outcome"] = issue.outcome()
            answers.append({"response": response})
        sandbox.store.write(rows, pending)
        if lost := sandbox.fail_after():
            return lost
        return fhir({"resourceType": "Bundle", "type": "batch-response", "entry": answers})

    # --- control (X-Control-Token, no rate limit, no faults) -------------------------------

    @app.get("/_control/health", tags=["control"])
    async def health() -> Response:
        # The one route without the control token (a liveness probe): it tells nothing else.
        return _json({"status": "ok"})

    @app.get("/_control/state", tags=["control"])
    async def state(resource: str | None = None, limit: int = Query(100_000, ge=1)) -> Response:
        if resource is not None and resource not in SYSTEM_OF:
            return error(400, "invalid", "resource must be Appointment or ServiceRequest")
        return _json(
            {
                "counts": sandbox.store.counts(),
                "units": sorted(sandbox.store.units),
                "guardian_count": len(sandbox.store.guardians),
                "resources": sandbox.store.listing(resource, limit),
            }
        )

    @app.get("/_control/requests", tags=["control"])
    async def requests_log(limit: int = Query(20_000, ge=1)) -> Response:
        return _json({"requests": list(sandbox.log)[-limit:]})

    @app.get("/_control/faults", tags=["control"])
    async def get_faults() -> Response:
        return _json(asdict(sandbox.faults))

    @app.post("/_control/faults", tags=["control"])
    async def set_faults(request: Request) -> Response:
        try:
            changes = orjson.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            sandbox.faults.update(changes)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            return error(400, "invalid", str(exc))
        if "seed" in changes:
            sandbox.rng = random.Random(sandbox.faults.seed)
        return _json(asdict(sandbox.faults))

    @app.post("/_control/reset", tags=["control"])
    async def reset() -> Response:
        sandbox.store.clear_resources()
        sandbox.store.replace_units(config.units if config.units is not None else DEMO_UNITS)
        sandbox.store.replace_guardians(config.guardians or set())
        sandbox.faults = Faults()
        sandbox.faults.update(config.faults)
        sandbox.rng = random.Random(sandbox.faults.seed)
        sandbox.tokens.clear()
        sandbox.buckets.clear()
        sandbox.log.clear()
        return _json({"status": "reset"})

    @app.post("/_control/expire-tokens", tags=["control"])
    async def expire_tokens() -> Response:
        sandbox.tokens.clear()
        return _json({"status": "tokens expired"})

    @app.post("/_control/guardians", tags=["control"])
    async def add_guardians(request: Request) -> Response:
        from mvg_sync.clinic24.sandbox.seeds import normalise_patient_ids

        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "structure", "body is not JSON")
        raw = body.get("personnummer") if isinstance(body, dict) else body
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            return error(400, "invalid", 'send {"personnummer": "<any R13 form>"} or a list of them')
        ids, invalid = normalise_patient_ids(raw)
        if invalid:
            return error(400, "value", f"{len(invalid)} invalid personnummer (positions {invalid})")
        sandbox.store.add_guardians(ids)
        return _json({"added": len(ids), "guardian_count": len(sandbox.store.guardians)})

    @app.post("/_control/units", tags=["control"])
    async def set_units(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "structure", "body is not JSON")
        raw = body.get("units") if isinstance(body, dict) else body
        units: dict[str, str] = {}
        for item in raw if isinstance(raw, list) else [None]:
            if isinstance(item, str) and item:
                units[item] = item
            elif isinstance(item, dict) and isinstance(item.get("hsa_id"), str):
                units[item["hsa_id"]] = str(item.get("name") or item["hsa_id"])
            else:
                return error(400, "invalid", 'send {"units": ["<HSA-id>", …]} or [{"hsa_id", "name"}]')
        sandbox.store.replace_units(units)
        return _json({"units": sorted(units)})

    def custom_openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            openapi_doc.decorate(schema)
            _document_control_token(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


CONTROL_TOKEN_HEADER = "X-Control-Token"
_OPEN_CONTROL_PATHS = frozenset({"/_control/health"})


def _document_control_token(schema: dict) -> None:
    """Declare the control token and its 401 on the routes that need it."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["controlToken"] = {"type": "apiKey", "in": "header", "name": CONTROL_TOKEN_HEADER}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/_control") or path in _OPEN_CONTROL_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{"controlToken": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": f"missing or wrong {CONTROL_TOKEN_HEADER}",
                "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            }


class _ControlTokenMiddleware:
    """Every /_control route but health needs the control token: 401 without it (issue 14)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/_control") and path.rstrip("/") not in _OPEN_CONTROL_PATHS:
            given = b""
            for name, value in scope["headers"]:
                if name == b"x-control-token":
                    given = value
                    break
            if not secrets.compare_digest(given, self._token):
                answer = error(
                    401, "security",
                    f"/_control needs the sandbox's control token in {CONTROL_TOKEN_HEADER} "
                    "(printed at start, or CLINIC24_SANDBOX_CONTROL_TOKEN)",
                )  # fmt: skip
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RequestLogMiddleware:
    """Echoes `X-Request-ID` on every answer and logs each API call (not control calls)."""

    def __init__(self, app, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
                break
        seen: dict = {}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                if request_id is not None:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_wrapper)
        path: str = scope["path"]
        if not path.startswith("/_control"):
            self.sandbox.log.append(
                {
                    "at": time.time(),
                    "method": scope["method"],
                    "path": path,
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "status": seen.get("status"),
                    "request_id": request_id.decode("latin-1") if request_id else None,
                    "entries": scope.get("state", {}).get("entries"),
                }
            )
