"""clinic24/fragments.py: ending a resource Clinic24 accepted (R08, R19), timeless tickets (R16), read-back fields."""

from __future__ import annotations

from datetime import UTC, datetime

from mvg_sync.clinic24 import fragments
from mvg_sync.clinic24.payloads import EXT_SOURCE_SEQUENCE, HSA_SYSTEM

SEQ_EXT = {"url": EXT_SOURCE_SEQUENCE, "valueInteger": 3}
OTHER_EXT = {"url": "urn:clinic24:ext:visit-type", "valueString": "digital"}


def test_ended_appointment_keeps_the_body_and_changes_status_reason_and_sequence():
    accepted = {"resourceType": "Appointment", "status": "booked", "start": "2026-12-01T09:00:00+01:00",
                "extension": [SEQ_EXT, OTHER_EXT]}
    ended = fragments.ended(accepted, {"status": "cancelled", "cancel_reason": None}, 7)
    assert ended["status"] == "cancelled"
    assert ended["cancelationReason"] == {"text": "Avbokad i Cosmic"}
    assert ended["extension"] == [{**SEQ_EXT, "valueInteger": 7}, OTHER_EXT]
    assert ended["start"] == accepted["start"]
    assert accepted["status"] == "booked" and accepted["extension"][0]["valueInteger"] == 3  # not mutated
    given = fragments.ended(accepted, {"status": "cancelled", "cancel_reason": "Patienten avbokade"}, 7)
    assert given["cancelationReason"] == {"text": "Patienten avbokade"}


def test_ended_ticket_gets_no_cancel_reason():
    ended = fragments.ended({"resourceType": "ServiceRequest", "status": "active"}, {"status": "revoked"}, 2)
    assert ended == {"resourceType": "ServiceRequest", "status": "revoked", "extension": []}


def test_timeless_drops_only_the_planning_moment():
    ticket = {"resourceType": "ServiceRequest", "authoredOn": "2026-11-26", "status": "active",
              "occurrencePeriod": {"start": "2026-11-26", "end": "2027-01-01"}, "extension": [SEQ_EXT, OTHER_EXT]}
    later = {**ticket, "authoredOn": "2026-11-27", "occurrencePeriod": {"start": "2026-11-27", "end": "2027-01-01"},
             "extension": [{**SEQ_EXT, "valueInteger": 4}, OTHER_EXT]}
    assert fragments.timeless(ticket) == fragments.timeless(later)
    assert fragments.timeless({**later, "status": "revoked"}) != fragments.timeless(ticket)
    assert fragments.timeless(ticket)["occurrencePeriod"] == {"end": "2027-01-01"}


def test_location_and_instant_of_a_read_back_resource():
    unit = {"type": "Location", "identifier": {"system": HSA_SYSTEM, "value": "SE2321000198-HC0001"}}
    appointment = {"participant": [{"actor": {"type": "Patient"}}, {"actor": unit}]}
    assert fragments.location(appointment) == "SE2321000198-HC0001"
    assert fragments.location({"performer": [unit]}) == "SE2321000198-HC0001"
    assert fragments.location({"participant": [{"actor": {"type": "Patient"}}]}) is None
    assert fragments.instant("2026-12-01T09:00:00+01:00") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert fragments.instant(None) is None
