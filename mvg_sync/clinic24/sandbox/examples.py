"""Example Clinic24 resources that pass every sandbox check: for tests, the demo and benchmarks.

Keyword changes replace top-level elements (None removes one), so a test states only what it
breaks. Patient ids are synthetic, built with a valid Luhn digit.
"""

from __future__ import annotations

import copy
import json

import httpx

from mvg_sync.clinic24.sandbox.runner import SandboxHandle
from mvg_sync.clinic24.sandbox.validation import luhn_ok

BOOKING = "urn:cosmic:gavleborg:booking"
BASIS = "urn:cosmic:gavleborg:booking-basis"
PNR = "http://electronichealth.se/identifier/personnummer"
SAMN = "http://electronichealth.se/identifier/samordningsnummer"
HSA = "urn:oid:1.2.752.129.2.1.4.1"
EXT = "urn:clinic24:ext:"
UNIT = "SE2321000198-HC0001"  # a built-in demo unit
OTHER_UNIT = "SE2321000198-HC0002"


def with_check_digit(eleven: str) -> str:
    """A 12-digit id whose last digit is the Luhn check digit of digits 3-11."""
    for digit in "0123456789":
        if luhn_ok(eleven[2:] + digit):
            return eleven + digit
    raise AssertionError("unreachable")


ADULT = with_check_digit("19811124326")  # 45 years old in 2026
CHILD_WITH_GUARDIAN = with_check_digit("20190305123")
CHILD_WITHOUT_GUARDIAN = with_check_digit("20200505456")
CHILD_ADDED_LATER = with_check_digit("20180101789")
SAMORDNING = with_check_digit("19900371234")  # day 11 + 60


def appointment(booking_id: str, **changes: object) -> dict:
    """A valid Appointment; keyword changes replace top-level elements (None removes one)."""
    res = {
        "resourceType": "Appointment",
        "identifier": [{"system": BOOKING, "value": booking_id}],
        "status": "booked",
        "serviceType": [{"coding": [{"system": "urn:cosmic:gavleborg:vardtjanst", "code": "HC Gävle - distans video - läkare"}]}],
        "specialty": [{"coding": [{"system": "urn:clinic24:role", "code": "lakare"}]}],
        "appointmentType": {"coding": [{"system": "urn:clinic24:visit-kind", "code": "physical"}]},
        "start": "2026-12-03T09:30:00+01:00",
        "end": "2026-12-03T09:50:00+01:00",
        "participant": [
            {"actor": {"type": "Patient", "identifier": {"system": PNR, "value": ADULT}, "display": "Test Testsson"}},
            {"actor": {"type": "Location", "identifier": {"system": HSA, "value": UNIT}}},
            {"actor": {"type": "Practitioner", "identifier": {"system": HSA, "value": "SE2321000198-P1"}, "display": "Dr X"}},
        ],
        "extension": [
            {"url": EXT + "source-sequence", "valueInteger": 10},
            {"url": EXT + "contact-type", "valueString": "Mottagningsbesök"},
            {"url": EXT + "visit-type", "valueString": "Nybesök"},
            {"url": EXT + "patient-may-rebook", "valueBoolean": True},
            {"url": EXT + "patient-may-cancel", "valueBoolean": True},
            {"url": EXT + "change-deadline", "valueDateTime": "2026-12-02T09:30:00+01:00"},
        ],
    }
    for key, value in changes.items():
        if value is None:
            res.pop(key, None)
        else:
            res[key] = value
    return res


def set_ext(res: dict, name: str, value: object) -> dict:
    res = copy.deepcopy(res)
    for ext in res["extension"]:
        if ext["url"] == EXT + name:
            ext[next(k for k in ext if k.startswith("value"))] = value
    return res


def set_patient(res: dict, system: str, value: str) -> dict:
    res = copy.deepcopy(res)
    res["participant"][0]["actor"]["identifier"] = {"system": system, "value": value}
    return res


def digital(res: dict) -> dict:
    res = copy.deepcopy(res)
    res["appointmentType"]["coding"][0]["code"] = "digital"
    return res


def service_request(basis_id: str, **changes: object) -> dict:
    res = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": BASIS, "value": basis_id}],
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": "urn:cosmic:gavleborg:vardtjanst", "code": "HC Gävle - läkare"}]},
        "performerType": {"coding": [{"system": "urn:clinic24:role", "code": "lakare"}]},
        "subject": {"type": "Patient", "identifier": {"system": PNR, "value": ADULT}, "display": "Test Testsson"},
        "performer": [{"type": "Location", "identifier": {"system": HSA, "value": UNIT}}],
        "occurrencePeriod": {"start": "2026-11-26", "end": "2026-12-20"},
        "authoredOn": "2026-11-26T07:00:00+01:00",
        "extension": [
            {"url": EXT + "source-sequence", "valueInteger": 10},
            {"url": EXT + "contact-type", "valueString": "Mottagningsbesök"},
            {"url": EXT + "visit-type", "valueString": "Återbesök"},
        ],
    }
    for key, value in changes.items():
        if value is None:
            res.pop(key, None)
        else:
            res[key] = value
    return res


def entry(res: dict) -> dict:
    """A batch entry that upserts `res` by its identifier."""
    system = BOOKING if res["resourceType"] == "Appointment" else BASIS
    return {
        "request": {"method": "PUT", "url": f"{res['resourceType']}?identifier={system}|{res['identifier'][0]['value']}"},
        "resource": res,
    }


class ExampleApi:
    """A deliberately minimal client for tests (the real one is `mvg_sync.clinic24.client`)."""

    def __init__(self, handle: SandboxHandle) -> None:
        self.http = httpx.Client(base_url=handle.base_url, timeout=30)
        self.token = self.fetch_token()

    def fetch_token(self, client_id: str = "mvg-sync", secret: str = "sandbox-secret") -> str:
        answer = self.http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def headers(self, **extra: str) -> dict:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def put(self, res: dict | bytes, key: str | None = None, kind: str | None = None) -> httpx.Response:
        if isinstance(res, dict):
            kind = kind or res["resourceType"]
            key = key or res["identifier"][0]["value"]
        system = BOOKING if kind == "Appointment" else BASIS
        content = res if isinstance(res, bytes) else json.dumps(res).encode()
        return self.http.put(
            f"/fhir/{kind}",
            params={"identifier": f"{system}|{key}"},
            content=content,
            headers=self.headers(**{"Content-Type": "application/fhir+json"}),
        )

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.headers())

    def batch(self, entries: list[dict]) -> httpx.Response:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        return self.http.post("/fhir", json=bundle, headers=self.headers())
