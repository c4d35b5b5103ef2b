"""FHIR payload builders: one desired row plus the manifest sequence in, one Clinic24 resource out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from mvg_sync.timeutil import STOCKHOLM

PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
HSA_SYSTEM = "urn:oid:1.2.752.129.2.1.4.1"
BOOKING_SYSTEM = "urn:cosmic:gavleborg:booking"
BOOKING_BASIS_SYSTEM = "urn:cosmic:gavleborg:booking-basis"
CARE_SERVICE_SYSTEM = "urn:cosmic:gavleborg:vardtjanst"
ROLE_SYSTEM = "urn:clinic24:role"
VISIT_KIND_SYSTEM = "urn:clinic24:visit-kind"
EXT = "urn:clinic24:ext:"
EXT_SOURCE_SEQUENCE = EXT + "source-sequence"
EXT_CONTACT_TYPE = EXT + "contact-type"
EXT_VISIT_TYPE = EXT + "visit-type"
EXT_MAY_REBOOK = EXT + "patient-may-rebook"
EXT_MAY_CANCEL = EXT + "patient-may-cancel"
EXT_CHANGE_DEADLINE = EXT + "change-deadline"
EXT_REFERRAL = EXT + "referral"

PATIENT_ID_SYSTEMS = {
    "personnummer": PERSONNUMMER_SYSTEM,
    "samordningsnummer": SAMORDNINGSNUMMER_SYSTEM,
}
IDENTIFIER_SYSTEMS = {"Appointment": BOOKING_SYSTEM, "ServiceRequest": BOOKING_BASIS_SYSTEM}
APPOINTMENT_STATUSES = frozenset({"booked", "cancelled"})
TICKET_STATUSES = frozenset({"active", "revoked", "completed"})
VISIT_KINDS = frozenset({"digital", "physical"})

# R24: patients may change a visit until 24 elapsed hours before it, not "same wall time
# yesterday"; the subtraction is therefore done on the absolute instant.
CHANGE_WINDOW = timedelta(hours=24)


class PayloadError(ValueError):
    """A desired row cannot become a valid resource; the message names the key, never the patient."""


def _local(value: Any, key: str, column: str) -> str:
    """A timezone-aware instant as Stockholm wall time with its offset, e.g. `...T09:30:00+01:00`."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise PayloadError(f"{key}: {column} must be a timezone-aware datetime")
    return _stockholm_iso(value.timestamp())


@lru_cache(maxsize=65_536)
def _stockholm_iso(epoch_s: float) -> str:
    # A region's bookings share a few thousand slot times; the zone conversion and formatting
    # dominated building 400k payloads. Keyed by the POSIX instant, not the datetime: two
    # Stockholm datetimes that differ only by `fold` (02:30 twice at the autumn fall-back)
    # compare and hash equal, and would share one cached string.
    return datetime.fromtimestamp(epoch_s, STOCKHOLM).isoformat(timespec="seconds")


def _patient_system(kind: Any, key: str) -> str:
    try:
        return PATIENT_ID_SYSTEMS[kind]
    except KeyError:
        raise PayloadError(f"{key}: unknown patient_id_kind {kind!r}") from None


def _flag(value: Any, key: str, column: str) -> bool:
    if not isinstance(value, bool):
        raise PayloadError(f"{key}: {column} must be a boolean")
    return value


def _required(row: Mapping[str, Any], column: str, key: str) -> Any:
    value = row.get(column)
    if value is None or value == "":
        raise PayloadError(f"{key}: {column} is missing")
    return value


def change_deadline(start_at: datetime) -> datetime:
    """R24: the last moment a patient may rebook or cancel: 24 elapsed hours before the start."""
    if start_at.tzinfo is None:
        raise PayloadError("start_at must be timezone-aware")
    return _utc_minus(start_at, CHANGE_WINDOW)


@lru_cache(maxsize=65_536)
def _deadline_iso(start_epoch_s: float) -> str:
    """R24's change deadline as sent (cached by instant like `_stockholm_iso`)."""
    return change_deadline(datetime.fromtimestamp(start_epoch_s, UTC)).isoformat(timespec="seconds")


def _utc_minus(value: datetime, delta: timedelta) -> datetime:
    # Arithmetic on an aware datetime in a DST zone is wall-clock arithmetic in Python, so go
    # through UTC to subtract real elapsed time.
    return (value.astimezone(UTC) - delta).astimezone(STOCKHOLM)


def build_appointment(row: Mapping[str, Any], *, source_sequence: int) -> dict:
    """One desired_appointments row as a Clinic24 `Appointment` (rules R04, R05, R13, R24, R26).

    - R04: `appointmentType` carries `visit_kind` (`digital` / `physical`), decided by planning.
    - R05: `specialty` carries the care service's Clinic24 role; a row without one is refused
      here (it must have been held by planning, never pushed with a guessed role).
    - R13: the patient is sent under the personnummer or samordningsnummer system by
      `patient_id_kind`; the 12-digit `patient_id` was validated at ingestion.
    - R24: extension `change-deadline` = start − 24 elapsed hours, sent in Stockholm local time.
    - R26: extensions `patient-may-rebook` / `patient-may-cancel` from the care-service catalogue.
    `source_sequence` is the manifest `sequence` of the drop the change came from; Clinic24
    answers `409` to anything older than what it holds.
    """
    key = str(_required(row, "booking_id", "booking"))
    where = f"booking {key}"  # built once: this runs for every booking of an initial load
    status = row.get("status")
    if status not in APPOINTMENT_STATUSES:
        raise PayloadError(f"booking {key}: status {status!r} is not booked/cancelled")
    visit_kind = row.get("visit_kind")
    if visit_kind not in VISIT_KINDS:
        raise PayloadError(f"booking {key}: visit_kind {visit_kind!r} is not digital/physical")
    role = _required(row, "clinic24_role", where)
    start_at = row.get("start_at")
    start = _local(start_at, where, "start_at")
    end = _local(row.get("end_at"), where, "end_at")
    if not start_at < row["end_at"]:
        raise PayloadError(f"booking {key}: start_at is not before end_at")
    participants = [
        {
            "actor": {
                "type": "Patient",
                "identifier": {
                    "system": _patient_system(row.get("patient_id_kind"), where),
                    "value": _required(row, "patient_id", where),
                },
                "display": _required(row, "patient_name", where),
            },
            "status": "accepted",
        },
        {
            "actor": {
                "type": "Location",
                "identifier": {
                    "system": HSA_SYSTEM,
                    "value": _required(row, "unit_hsa_id", where),
                },
            },
            "status": "accepted",
        },
    ]
    resource_hsa_id = row.get("resource_hsa_id")
    if resource_hsa_id:
        practitioner: dict[str, Any] = {
            "type": "Practitioner",
            "identifier": {"system": HSA_SYSTEM, "value": resource_hsa_id},
        }
        if row.get("resource_name"):
            practitioner["display"] = row["resource_name"]
        participants.append({"actor": practitioner, "status": "accepted"})

    extensions = [
        {"url": EXT_SOURCE_SEQUENCE, "valueInteger": int(source_sequence)},
        {"url": EXT_CONTACT_TYPE, "valueString": _required(row, "contact_type", where)},
        {"url": EXT_VISIT_TYPE, "valueString": _required(row, "visit_type", where)},
        {
            "url": EXT_MAY_REBOOK,
            "valueBoolean": _flag(
                row.get("patient_may_rebook"), where, "patient_may_rebook"
            ),
        },
        {
            "url": EXT_MAY_CANCEL,
            "valueBoolean": _flag(
                row.get("patient_may_cancel"), where, "patient_may_cancel"
            ),
        },
        {
            "url": EXT_CHANGE_DEADLINE,
            "valueDateTime": _deadline_iso(start_at.timestamp()),
        },
    ]
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "identifier": [{"system": BOOKING_SYSTEM, "value": key}],
        "status": status,
        "serviceType": [
            {
                "coding": [
                    {
                        "system": CARE_SERVICE_SYSTEM,
                        "code": _required(row, "care_service", where),
                    }
                ]
            }
        ],
        "specialty": [{"coding": [{"system": ROLE_SYSTEM, "code": role}]}],
        "appointmentType": {"coding": [{"system": VISIT_KIND_SYSTEM, "code": visit_kind}]},
        "start": start,
        "end": end,
        "participant": participants,
        "extension": extensions,
    }
    if status == "cancelled":
        resource["cancelationReason"] = {"text": _required(row, "cancel_reason", where)}
    booking_info = row.get("booking_info")
    if booking_info:
        resource["comment"] = booking_info
    return resource


def _date(value: Any, key: str, column: str) -> str:
    # datetime is a subclass of date; a date-time here would be a planning bug.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise PayloadError(f"{key}: {column} must be a date")
    return value.isoformat()


def build_service_request(row: Mapping[str, Any], *, source_sequence: int) -> dict:
    """One desired_tickets row as a Clinic24 `ServiceRequest`, a booking ticket (R05, R13, R15–R17).

    The ticket's identifier is the booking-basis id, so it is issued once per basis (R16);
    `occurrencePeriod` runs from the issue date (R15) to the monitoring date; `referral` is sent
    whenever the basis has one (required at specialist-care units, R17: planning holds a
    specialist basis without one, so it never reaches here).
    """
    key = str(_required(row, "basis_id", "basis"))
    label = f"basis {key}"
    status = row.get("status")
    if status not in TICKET_STATUSES:
        raise PayloadError(f"{label}: status {status!r} is not active/revoked/completed")
    extensions = [
        {"url": EXT_SOURCE_SEQUENCE, "valueInteger": int(source_sequence)},
        {"url": EXT_CONTACT_TYPE, "valueString": _required(row, "contact_type", label)},
        {"url": EXT_VISIT_TYPE, "valueString": _required(row, "visit_type", label)},
    ]
    referral_id = row.get("referral_id")
    if referral_id:
        extensions.append({"url": EXT_REFERRAL, "valueString": referral_id})
    return {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": BOOKING_BASIS_SYSTEM, "value": key}],
        "status": status,
        "intent": "order",
        "code": {
            "coding": [
                {"system": CARE_SERVICE_SYSTEM, "code": _required(row, "care_service", label)}
            ]
        },
        "performerType": {
            "coding": [{"system": ROLE_SYSTEM, "code": _required(row, "clinic24_role", label)}]
        },
        "subject": {
            "type": "Patient",
            "identifier": {
                "system": _patient_system(row.get("patient_id_kind"), label),
                "value": _required(row, "patient_id", label),
            },
            "display": _required(row, "patient_name", label),
        },
        "performer": [
            {
                "type": "Location",
                "identifier": {"system": HSA_SYSTEM, "value": _required(row, "unit_hsa_id", label)},
            }
        ],
        "occurrencePeriod": {
            "start": _date(row.get("issue_date"), label, "issue_date"),
            "end": _date(row.get("monitoring_date"), label, "monitoring_date"),
        },
        "authoredOn": _local(row.get("authored_at"), label, "authored_at"),
        "extension": extensions,
    }


def upsert_url(resource_type: str, key: str) -> str:
    """The conditional-upsert URL of one resource, relative to the FHIR base (`/fhir`).

    Used both as `request.url` in a batch entry and, prefixed with `/fhir/`, for a single PUT.
    """
    try:
        system = IDENTIFIER_SYSTEMS[resource_type]
    except KeyError:
        raise ValueError(f"no upsert identifier system for {resource_type!r}") from None
    return f"{resource_type}?identifier={system}|{quote(str(key), safe='-._~')}"
