"""Checks the sandbox applies to incoming FHIR resources (clinic24-api.md), as plain dict code.

Everything here is on the upsert hot path (>= 2,000 resources/s), so it uses dict and string
operations only, and stops at the first problem. A problem is an `Issue`: HTTP status, FHIR
issue code, diagnostics (never patient data) and the FHIR path it concerns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER = "http://electronichealth.se/identifier/samordningsnummer"
HSA = "urn:oid:1.2.752.129.2.1.4.1"
BOOKING = "urn:cosmic:gavleborg:booking"
BOOKING_BASIS = "urn:cosmic:gavleborg:booking-basis"
CARE_SERVICE = "urn:cosmic:gavleborg:vardtjanst"
ROLE = "urn:clinic24:role"
VISIT_KIND = "urn:clinic24:visit-kind"
EXT = "urn:clinic24:ext:"

APPOINTMENT_STATUSES = frozenset({"booked", "cancelled"})
TICKET_STATUSES = frozenset({"active", "revoked", "completed"})
VISIT_KINDS = frozenset({"digital", "physical"})
PATIENT_SYSTEMS = frozenset({PERSONNUMMER, SAMORDNINGSNUMMER})

# FHIR `instant`: seconds required, offset required (a naive time is refused). All patterns
# are used with fullmatch and ASCII digit classes (`\d` and `$` would let "٣" and "\n" in).
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
# Every shape R13 accepts (as rules/patient_id.py): optional century, YYMMDD, separator, NNNC.
_R13_SHAPE = re.compile(r"(?:[0-9]{2} *)?[0-9]{6} *[-+]? *[0-9]{4}")


@dataclass(frozen=True, slots=True)
class Issue:
    """One reason a resource was refused."""

    status: int
    code: str
    diagnostics: str
    expression: str | None = None

    def outcome(self) -> dict:
        """The OperationOutcome body for this issue."""
        issue: dict = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    # Arbitrary JSON may put a list where a code belongs; a list is not hashable.
    return isinstance(value, str) and value in allowed


def _required(path: str) -> Issue:
    return Issue(422, "required", f"{path} is required", path)


def _value(path: str, what: str) -> Issue:
    return Issue(422, "value", what, path)


# --- personnummer / samordningsnummer (R13) ---------------------------------------------


def luhn_ok(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others (R13)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def birth_date(patient_id: str) -> date | None:
    """Birth date of a valid 12-digit personnummer or samordningsnummer, else None (R13)."""
    if not _TWELVE_DIGITS.fullmatch(patient_id) or not luhn_ok(patient_id[2:]):
        return None
    day = int(patient_id[6:8])
    if day > 60:
        day -= 60
    try:
        return date(int(patient_id[0:4]), int(patient_id[4:6]), day)
    except ValueError:
        return None


def patient_id_kind(patient_id: str) -> str:
    """`samordningsnummer` when the day carries +60, else `personnummer` (R13)."""
    return "samordningsnummer" if int(patient_id[6:8]) > 60 else "personnummer"


def normalise_patient_id(raw: str, reference: date) -> str | None:
    """Any R13 form to 12 digits, or None when invalid (R13).

    Mirrors `mvg_sync.rules.patient_id.normalise_patient_id` for one value without Polars (a
    test checks that they agree): century of the 10-digit form is the one that makes the
    person 0-99 years old on `reference`, `+` one century more; a future birth date is invalid.
    """
    text = raw.strip()
    if not _R13_SHAPE.fullmatch(text):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 10:
        yy, mmdd = int(digits[0:2]), int(digits[2:6])
        day = mmdd % 100
        if day > 60:
            mmdd -= 60
        year = reference.year - ((reference.year - yy) % 100)
        if year == reference.year and mmdd > reference.month * 100 + reference.day:
            year -= 100
        if "+" in text:
            year -= 100
        if year < 0:
            return None
        digits = f"{year // 100:02d}{digits}"
    born = birth_date(digits)
    if born is None or born > reference:
        return None
    return digits


def age_on(born: date, day: date) -> int:
    """Completed years on `day` (R12)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


# --- small element helpers ----------------------------------------------------------------


def parse_instant(value: object) -> datetime | None:
    """An aware datetime for a FHIR instant with offset, else None."""
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def parse_date(value: object) -> date | None:
    """A date for `YYYY-MM-DD`, else None."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _first_coding(element: object) -> dict | None:
    """`element.coding[0]` of a CodeableConcept, or None."""
    if not isinstance(element, dict):
        return None
    codings = element.get("coding")
    if not isinstance(codings, list) or not codings or not isinstance(codings[0], dict):
        return None
    return codings[0]


def _check_coding(element: object, system: str, path: str) -> Issue | None:
    coding = _first_coding(element)
    if coding is None:
        return _required(path)
    if coding.get("system") != system:
        return _value(path, f"{path} system must be {system}")
    code = coding.get("code")
    if not isinstance(code, str) or not code:
        return _required(f"{path}.code")
    return None


def extensions(resource: dict) -> dict[str, dict] | Issue:
    """Clinic24 extensions by short name; an Issue when the list is malformed."""
    raw = resource.get("extension", [])
    if not isinstance(raw, list):
        return Issue(422, "invalid", "extension must be a list", "extension")
    found: dict[str, dict] = {}
    for ext in raw:
        if not isinstance(ext, dict) or not isinstance(ext.get("url"), str):
            return Issue(422, "invalid", "extension needs a url", "extension")
        url = ext["url"]
        if url.startswith(EXT):
            found[url[len(EXT) :]] = ext
    return found


def _check_ext(
    exts: dict[str, dict], name: str, kind: str, prefix: str, *, required: bool
) -> Issue | None:
    path = f"{prefix}.extension('{EXT}{name}')"
    ext = exts.get(name)
    if ext is None:
        return _required(path) if required else None
    value = ext.get(kind)
    ok = {
        "valueInteger": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "valueBoolean": lambda v: isinstance(v, bool),
        "valueString": lambda v: isinstance(v, str) and v.strip() != "",
        "valueDateTime": lambda v: parse_instant(v) is not None,
    }[kind](value)
    if not ok:
        return _value(path, f"{name} needs a valid {kind}")
    return None


def _check_identifier(resource: dict, system: str, prefix: str) -> Issue | None:
    ids = resource.get("identifier")
    if not isinstance(ids, list) or not ids:
        return _required(f"{prefix}.identifier")
    if len(ids) != 1 or not isinstance(ids[0], dict) or ids[0].get("system") != system:
        return _value(f"{prefix}.identifier", f"identifier must be exactly one {system} id")
    if not isinstance(ids[0].get("value"), str) or not ids[0]["value"]:
        return _required(f"{prefix}.identifier.value")
    return None


def body_identifier(resource: dict) -> tuple[str, str] | None:
    """(system, value) of the first identifier in a body, if it has one."""
    ids = resource.get("identifier")
    if isinstance(ids, list) and ids and isinstance(ids[0], dict):
        system, value = ids[0].get("system"), ids[0].get("value")
        if isinstance(system, str) and isinstance(value, str):
            return system, value
    return None


def _check_patient(identifier: object, display: object, path: str) -> tuple[str, date] | Issue:
    """(12-digit id, birth date) of a patient reference, or the Issue (R13)."""
    if not isinstance(identifier, dict):
        return _required(f"{path}.identifier")
    system, value = identifier.get("system"), identifier.get("value")
    if not _one_of(system, PATIENT_SYSTEMS):
        return _value(f"{path}.identifier", "patient identifier must be a personnummer or samordningsnummer")
    if not isinstance(value, str) or not value:
        return _required(f"{path}.identifier.value")
    born = birth_date(value)
    if born is None:
        return _value(f"{path}.identifier", "invalid-patient-identifier (12 digits, date, Luhn)")
    expected = SAMORDNINGSNUMMER if patient_id_kind(value) == "samordningsnummer" else PERSONNUMMER
    if system != expected:
        return _value(f"{path}.identifier", "patient identifier system does not match its kind")
    if not isinstance(display, str) or not display.strip():
        return _required(f"{path}.display")
    return value, born


# --- resources -----------------------------------------------------------------------------


@dataclass(slots=True)
class Checked:
    """What the store needs from a resource that passed the checks."""

    status: str
    unit_hsa_id: str
    source_sequence: int
    start_date: str | None = None
    patient_id: str | None = None
    is_child_digital: bool = False


def check_appointment(res: dict) -> Checked | Issue:
    """Every Appointment rule of clinic24-api.md except unit existence, staleness and R12."""
    p = "Appointment"
    if issue := _check_identifier(res, BOOKING, p):
        return issue
    status = res.get("status")
    if status is None:
        return _required(f"{p}.status")
    if not _one_of(status, APPOINTMENT_STATUSES):
        return _value(f"{p}.status", "status must be booked or cancelled")
    if status == "cancelled":
        reason = res.get("cancelationReason")
        if not isinstance(reason, dict) or not isinstance(reason.get("text"), str) or not reason["text"].strip():
            return _required(f"{p}.cancelationReason.text")
    for name in ("start", "end"):
        if name not in res:
            return _required(f"{p}.{name}")
    start, end = parse_instant(res["start"]), parse_instant(res["end"])
    if start is None:
        return _value(f"{p}.start", "start must be an instant with offset")
    if end is None:
        return _value(f"{p}.end", "end must be an instant with offset")
    if start >= end:
        return Issue(422, "invalid", "start must be before end", f"{p}.start")
    service_types = res.get("serviceType")
    if issue := _check_coding(service_types[0] if isinstance(service_types, list) and service_types else None, CARE_SERVICE, f"{p}.serviceType"):
        return issue
    specialties = res.get("specialty")
    if issue := _check_coding(specialties[0] if isinstance(specialties, list) and specialties else None, ROLE, f"{p}.specialty"):
        return issue
    if issue := _check_coding(res.get("appointmentType"), VISIT_KIND, f"{p}.appointmentType"):
        return issue
    visit_kind = _first_coding(res["appointmentType"])["code"]  # type: ignore[index]
    if not _one_of(visit_kind, VISIT_KINDS):
        return _value(f"{p}.appointmentType", "unknown visit kind (digital or physical)")
    if "comment" in res and not isinstance(res["comment"], str):
        return _value(f"{p}.comment", "comment must be a string")

    participants = res.get("participant")
    if not isinstance(participants, list) or not participants:
        return _required(f"{p}.participant")
    patient: tuple[str, date] | None = None
    unit: str | None = None
    for part in participants:
        actor = part.get("actor") if isinstance(part, dict) else None
        if not isinstance(actor, dict):
            return Issue(422, "invalid", "participant needs an actor", f"{p}.participant")
        kind = actor.get("type")
        if kind == "Patient":
            checked = _check_patient(actor.get("identifier"), actor.get("display"), f"{p}.participant.actor")
            if isinstance(checked, Issue):
                return checked
            patient = checked
        elif kind == "Location":
            ident = actor.get("identifier")
            if not isinstance(ident, dict) or ident.get("system") != HSA or not isinstance(ident.get("value"), str) or not ident["value"]:
                return _value(f"{p}.participant.actor", "Location needs an HSA-id identifier")
            unit = ident["value"]
        elif kind == "Practitioner":
            ident = actor.get("identifier")
            if not isinstance(ident, dict) or ident.get("system") != HSA or not isinstance(ident.get("value"), str):
                return _value(f"{p}.participant.actor", "Practitioner needs an HSA-id identifier")
        else:
            return _value(f"{p}.participant.actor.type", "actor type must be Patient, Location or Practitioner")
    if patient is None:
        return _required(f"{p}.participant.actor.where(type='Patient')")
    if unit is None:
        return _required(f"{p}.participant.actor.where(type='Location')")

    exts = extensions(res)
    if isinstance(exts, Issue):
        return exts
    for name, kind, required in (
        ("source-sequence", "valueInteger", True),
        ("patient-may-rebook", "valueBoolean", True),
        ("patient-may-cancel", "valueBoolean", True),
        ("change-deadline", "valueDateTime", True),
        ("contact-type", "valueString", False),
        ("visit-type", "valueString", False),
    ):
        if issue := _check_ext(exts, name, kind, p, required=required):
            return issue
    # R24: the change deadline is start - 24 hours.
    if parse_instant(exts["change-deadline"]["valueDateTime"]) != start - timedelta(hours=24):
        return _value(f"{p}.extension('{EXT}change-deadline')", "change-deadline must be start - 24 hours (R24)")

    visit_day = start.date()  # local date of the instant as sent (with its own offset)
    patient_id, born = patient
    return Checked(
        status=status,
        unit_hsa_id=unit,
        source_sequence=exts["source-sequence"]["valueInteger"],
        start_date=visit_day.isoformat(),
        patient_id=patient_id,
        is_child_digital=visit_kind == "digital" and age_on(born, visit_day) <= 12,
    )


def check_service_request(res: dict) -> Checked | Issue:
    """Every ServiceRequest rule of clinic24-api.md except unit existence and staleness.

    The referral extension (R17) is type-checked when present but not required: the
    integration enforces R17 itself; Clinic24 does not know which units are specialist care.
    """
    p = "ServiceRequest"
    if issue := _check_identifier(res, BOOKING_BASIS, p):
        return issue
    status = res.get("status")
    if status is None:
        return _required(f"{p}.status")
    if not _one_of(status, TICKET_STATUSES):
        return _value(f"{p}.status", "status must be active, revoked or completed")
    if "intent" not in res:
        return _required(f"{p}.intent")
    if res["intent"] != "order":
        return _value(f"{p}.intent", "intent must be order")
    if issue := _check_coding(res.get("code"), CARE_SERVICE, f"{p}.code"):
        return issue
    if issue := _check_coding(res.get("performerType"), ROLE, f"{p}.performerType"):
        return issue
    subject = res.get("subject")
    if not isinstance(subject, dict):
        return _required(f"{p}.subject")
    checked = _check_patient(subject.get("identifier"), subject.get("display"), f"{p}.subject")
    if isinstance(checked, Issue):
        return checked
    performers = res.get("performer")
    if not isinstance(performers, list) or not performers:
        return _required(f"{p}.performer")
    performer = performers[0]
    ident = performer.get("identifier") if isinstance(performer, dict) else None
    if (
        not isinstance(performer, dict)
        or performer.get("type") != "Location"
        or not isinstance(ident, dict)
        or ident.get("system") != HSA
        or not isinstance(ident.get("value"), str)
        or not ident["value"]
    ):
        return _value(f"{p}.performer", "performer[0] must be a Location with an HSA-id")
    period = res.get("occurrencePeriod")
    if not isinstance(period, dict):
        return _required(f"{p}.occurrencePeriod")
    issued = parse_date(period.get("start"))
    if issued is None:
        return _value(f"{p}.occurrencePeriod.start", "start must be a date (YYYY-MM-DD)")
    if parse_date(period.get("end")) is None:
        return _value(f"{p}.occurrencePeriod.end", "end must be a date (YYYY-MM-DD)")
    # An issue date after the monitoring date is legitimate: an overdue basis is issued at once (R15).
    if "authoredOn" not in res:
        return _required(f"{p}.authoredOn")
    if parse_instant(res["authoredOn"]) is None:
        return _value(f"{p}.authoredOn", "authoredOn must be a date-time with offset")
    exts = extensions(res)
    if isinstance(exts, Issue):
        return exts
    for name, kind, required in (
        ("source-sequence", "valueInteger", True),
        ("contact-type", "valueString", False),
        ("visit-type", "valueString", False),
        ("referral", "valueString", False),
    ):
        if issue := _check_ext(exts, name, kind, p, required=required):
            return issue
    return Checked(
        status=status,
        unit_hsa_id=ident["value"],
        source_sequence=exts["source-sequence"]["valueInteger"],
        start_date=issued.isoformat(),
        patient_id=checked[0],
    )
