"""Payload builders: every element of the Appointment and ServiceRequest tables of clinic24-api.md."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.clinic24 import Appointment, ServiceRequest
from mvg_sync.clinic24.payloads import (
    PayloadError,
    build_appointment,
    build_service_request,
    change_deadline,
    upsert_url,
)


def appointment_row(**overrides):
    row = {
        "booking_id": "900123",
        "status": "booked",
        "cancel_reason": None,
        "start_at": datetime(2026, 12, 3, 8, 30, tzinfo=UTC),
        "end_at": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        "care_service": "Primärvård|distans video|sjuksköterska|diabetes",
        "clinic24_role": "diabetessjukskoterska",
        "visit_kind": "digital",
        "patient_id": "195811243269",
        "patient_id_kind": "personnummer",
        "patient_name": "Test Testsson",
        "unit_hsa_id": "SE2321000016-1001",
        "resource_hsa_id": "SE2321000016-9001",
        "resource_name": "Sara Sköterska",
        "booking_info": "Ta med blodsockerdagbok",
        "contact_type": "Distansbesök - video",
        "visit_type": "Återbesök",
        "patient_may_rebook": True,
        "patient_may_cancel": True,
        "content_hash": "abc",
    }
    row.update(overrides)
    return row


def ticket_row(**overrides):
    row = {
        "basis_id": "U-77",
        "status": "active",
        "care_service": "Specialistvård|mottagning|läkare|kardiologi",
        "clinic24_role": "kardiolog",
        "patient_id": "195811243269",
        "patient_id_kind": "personnummer",
        "patient_name": "Test Testsson",
        "unit_hsa_id": "SE2321000016-2002",
        "issue_date": date(2026, 12, 1),
        "monitoring_date": date(2026, 12, 31),
        "authored_at": datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
        "contact_type": "Mottagningsbesök",
        "visit_type": "Nybesök",
        "referral_id": "REM-5",
        "content_hash": "def",
    }
    row.update(overrides)
    return row


def ext(resource, name):
    values = [e for e in resource["extension"] if e["url"] == f"urn:clinic24:ext:{name}"]
    assert len(values) == 1, name
    (value,) = (v for k, v in values[0].items() if k.startswith("value"))
    return value


def actor(resource, actor_type):
    actors = [p["actor"] for p in resource["participant"] if p["actor"]["type"] == actor_type]
    return actors[0] if actors else None


# --- Appointment ------------------------------------------------------------------------------


def test_appointment_identifier_is_the_cosmic_booking_id():
    res = build_appointment(appointment_row(), source_sequence=7)
    assert res["resourceType"] == "Appointment"
    assert res["identifier"] == [{"system": "urn:cosmic:gavleborg:booking", "value": "900123"}]
    Appointment.model_validate(res)


def test_appointment_local_offset_is_plus_one_in_winter():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert res["start"] == "2026-12-03T09:30:00+01:00"
    assert res["end"] == "2026-12-03T10:00:00+01:00"


def test_appointment_local_offset_is_plus_two_in_summer():
    row = appointment_row(
        start_at=datetime(2026, 6, 10, 7, 0, tzinfo=UTC),
        end_at=datetime(2026, 6, 10, 7, 20, tzinfo=UTC),
    )
    res = build_appointment(row, source_sequence=1)
    assert res["start"] == "2026-06-10T09:00:00+02:00"
    assert res["end"] == "2026-06-10T09:20:00+02:00"


def test_appointment_refuses_naive_datetimes():
    with pytest.raises(PayloadError, match="900123"):
        build_appointment(appointment_row(start_at=datetime(2026, 12, 3, 9, 30)), source_sequence=1)  # noqa: DTZ001


def test_appointment_refuses_start_not_before_end():
    row = appointment_row(end_at=datetime(2026, 12, 3, 8, 30, tzinfo=UTC))
    with pytest.raises(PayloadError, match="start_at is not before end_at"):
        build_appointment(row, source_sequence=1)


def test_appointment_booked_has_no_cancelation_reason():
    res = build_appointment(appointment_row(cancel_reason="ignored"), source_sequence=1)
    assert res["status"] == "booked"
    assert "cancelationReason" not in res


def test_r08_cancelled_appointment_has_reason_text():
    row = appointment_row(status="cancelled", cancel_reason="Patienten avbokar")
    res = build_appointment(row, source_sequence=1)
    assert res["status"] == "cancelled"
    assert res["cancelationReason"] == {"text": "Patienten avbokar"}
    Appointment.model_validate(res)


def test_r08_cancelled_appointment_without_reason_is_refused():
    row = appointment_row(status="cancelled", cancel_reason=None)
    with pytest.raises(PayloadError, match="cancel_reason"):
        build_appointment(row, source_sequence=1)


def test_appointment_unknown_status_is_refused():
    with pytest.raises(PayloadError, match="status"):
        build_appointment(appointment_row(status="arrived"), source_sequence=1)


def test_appointment_service_type_is_the_care_service():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert res["serviceType"] == [
        {
            "coding": [
                {
                    "system": "urn:cosmic:gavleborg:vardtjanst",
                    "code": "Primärvård|distans video|sjuksköterska|diabetes",
                }
            ]
        }
    ]


def test_r05_specialty_is_the_clinic24_role():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert res["specialty"] == [
        {"coding": [{"system": "urn:clinic24:role", "code": "diabetessjukskoterska"}]}
    ]


def test_r05_missing_role_is_refused_not_guessed():
    with pytest.raises(PayloadError, match="clinic24_role"):
        build_appointment(appointment_row(clinic24_role=None), source_sequence=1)


@pytest.mark.parametrize("kind", ["digital", "physical"])
def test_r04_appointment_type_carries_visit_kind(kind):
    res = build_appointment(appointment_row(visit_kind=kind), source_sequence=1)
    assert res["appointmentType"] == {
        "coding": [{"system": "urn:clinic24:visit-kind", "code": kind}]
    }
    Appointment.model_validate(res)


def test_r04_unknown_visit_kind_is_refused():
    with pytest.raises(PayloadError, match="visit_kind"):
        build_appointment(appointment_row(visit_kind="video"), source_sequence=1)


def test_r13_patient_participant_personnummer():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert actor(res, "Patient") == {
        "type": "Patient",
        "identifier": {
            "system": "http://electronichealth.se/identifier/personnummer",
            "value": "195811243269",
        },
        "display": "Test Testsson",
    }


def test_r13_patient_participant_samordningsnummer_system():
    row = appointment_row(patient_id="195811843266", patient_id_kind="samordningsnummer")
    res = build_appointment(row, source_sequence=1)
    assert actor(res, "Patient")["identifier"] == {
        "system": "http://electronichealth.se/identifier/samordningsnummer",
        "value": "195811843266",
    }
    Appointment.model_validate(res)


def test_r13_unknown_patient_id_kind_is_refused_without_naming_the_patient():
    row = appointment_row(patient_id_kind="reservnummer")
    with pytest.raises(PayloadError) as info:
        build_appointment(row, source_sequence=1)
    assert "195811243269" not in str(info.value)
    assert "Test Testsson" not in str(info.value)


def test_appointment_location_participant_is_the_unit_hsa_id():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert actor(res, "Location") == {
        "type": "Location",
        "identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-1001"},
    }


def test_appointment_practitioner_is_optional():
    with_res = build_appointment(appointment_row(), source_sequence=1)
    assert actor(with_res, "Practitioner") == {
        "type": "Practitioner",
        "identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-9001"},
        "display": "Sara Sköterska",
    }
    without = build_appointment(
        appointment_row(resource_hsa_id=None, resource_name=None), source_sequence=1
    )
    assert actor(without, "Practitioner") is None
    assert len(without["participant"]) == 2
    Appointment.model_validate(without)


def test_appointment_comment_is_booking_info_or_absent():
    assert (
        build_appointment(appointment_row(), source_sequence=1)["comment"]
        == "Ta med blodsockerdagbok"
    )
    assert "comment" not in build_appointment(appointment_row(booking_info=None), source_sequence=1)
    assert "comment" not in build_appointment(appointment_row(booking_info=""), source_sequence=1)


def test_appointment_source_sequence_contact_and_visit_type_extensions():
    res = build_appointment(appointment_row(), source_sequence=42)
    assert ext(res, "source-sequence") == 42
    assert ext(res, "contact-type") == "Distansbesök - video"
    assert ext(res, "visit-type") == "Återbesök"
    types = {e["url"]: [k for k in e if k.startswith("value")] for e in res["extension"]}
    assert types["urn:clinic24:ext:source-sequence"] == ["valueInteger"]
    assert types["urn:clinic24:ext:contact-type"] == ["valueString"]


def test_r26_flags_come_from_the_catalogue():
    res = build_appointment(
        appointment_row(patient_may_rebook=False, patient_may_cancel=False), source_sequence=1
    )
    assert ext(res, "patient-may-rebook") is False
    assert ext(res, "patient-may-cancel") is False
    mixed = build_appointment(
        appointment_row(patient_may_rebook=True, patient_may_cancel=False), source_sequence=1
    )
    assert ext(mixed, "patient-may-rebook") is True
    assert ext(mixed, "patient-may-cancel") is False


def test_r26_missing_flag_is_refused():
    with pytest.raises(PayloadError, match="patient_may_cancel"):
        build_appointment(appointment_row(patient_may_cancel=None), source_sequence=1)


def test_r24_change_deadline_is_start_minus_24h_in_local_time():
    res = build_appointment(appointment_row(), source_sequence=1)
    assert ext(res, "change-deadline") == "2026-12-02T09:30:00+01:00"


def test_r24_change_deadline_is_24_elapsed_hours_across_spring_dst_change():
    # Sunday 2026-03-29 clocks jump 02:00 -> 03:00: 24 h before Sunday 10:00 CEST is Saturday
    # 09:00 CET, not 10:00.
    start = datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00+02:00
    res = build_appointment(
        appointment_row(start_at=start, end_at=start + timedelta(minutes=30)), source_sequence=1
    )
    assert res["start"] == "2026-03-29T10:00:00+02:00"
    assert ext(res, "change-deadline") == "2026-03-28T09:00:00+01:00"
    Appointment.model_validate(res)


def test_r24_change_deadline_is_24_elapsed_hours_across_autumn_dst_change():
    start = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)  # Sunday 10:00+01:00
    assert change_deadline(start).isoformat() == "2026-10-24T11:00:00+02:00"


def test_r24_the_repeated_hour_at_fall_back_keeps_both_offsets():
    """02:30 happens twice on 2026-10-25 (CEST, then CET). The two Stockholm datetimes differ
    only by `fold`, so they compare and hash equal: payload formatting (cached per instant for
    speed) must still send each with its own offset and deadline."""
    from mvg_sync.timeutil import STOCKHOLM

    first = datetime(2026, 10, 25, 2, 30, tzinfo=STOCKHOLM)  # 00:30 UTC, +02:00
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=STOCKHOLM)  # 01:30 UTC, +01:00
    assert first == second and hash(first) == hash(second)  # the trap a cache keyed by datetime falls into
    sent = [
        build_appointment(appointment_row(start_at=at, end_at=at + timedelta(hours=2)), source_sequence=1)
        for at in (first, second)
    ]
    assert [r["start"] for r in sent] == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"]
    assert [ext(r, "change-deadline") for r in sent] == ["2026-10-24T02:30:00+02:00", "2026-10-24T03:30:00+02:00"]


def test_appointment_contract_rejects_wrong_deadline():
    res = build_appointment(appointment_row(), source_sequence=1)
    for e in res["extension"]:
        if e["url"].endswith("change-deadline"):
            e["valueDateTime"] = "2026-12-02T10:30:00+01:00"
    with pytest.raises(ValidationError, match="R24"):
        Appointment.model_validate(res)


# --- ServiceRequest ---------------------------------------------------------------------------


def test_service_request_identifier_status_and_intent():
    res = build_service_request(ticket_row(), source_sequence=9)
    assert res["resourceType"] == "ServiceRequest"
    assert res["identifier"] == [{"system": "urn:cosmic:gavleborg:booking-basis", "value": "U-77"}]
    assert res["status"] == "active"
    assert res["intent"] == "order"
    ServiceRequest.model_validate(res)


@pytest.mark.parametrize("status", ["active", "revoked", "completed"])
def test_r19_service_request_statuses(status):
    res = build_service_request(ticket_row(status=status), source_sequence=1)
    assert res["status"] == status
    ServiceRequest.model_validate(res)


def test_service_request_unknown_status_is_refused():
    with pytest.raises(PayloadError, match="U-77"):
        build_service_request(ticket_row(status="cancelled"), source_sequence=1)


def test_r05_service_request_code_and_performer_type():
    res = build_service_request(ticket_row(), source_sequence=1)
    assert res["code"] == {
        "coding": [
            {
                "system": "urn:cosmic:gavleborg:vardtjanst",
                "code": "Specialistvård|mottagning|läkare|kardiologi",
            }
        ]
    }
    assert res["performerType"] == {
        "coding": [{"system": "urn:clinic24:role", "code": "kardiolog"}]
    }


def test_r13_service_request_subject_samordningsnummer():
    res = build_service_request(
        ticket_row(patient_id="195811843266", patient_id_kind="samordningsnummer"),
        source_sequence=1,
    )
    assert res["subject"] == {
        "type": "Patient",
        "identifier": {
            "system": "http://electronichealth.se/identifier/samordningsnummer",
            "value": "195811843266",
        },
        "display": "Test Testsson",
    }


def test_service_request_performer_is_the_unit():
    res = build_service_request(ticket_row(), source_sequence=1)
    assert res["performer"] == [
        {
            "type": "Location",
            "identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-2002"},
        }
    ]


def test_r15_occurrence_period_runs_from_issue_to_monitoring_date():
    res = build_service_request(ticket_row(), source_sequence=1)
    assert res["occurrencePeriod"] == {"start": "2026-12-01", "end": "2026-12-31"}


def test_service_request_authored_on_is_local_with_offset():
    res = build_service_request(ticket_row(), source_sequence=1)
    assert res["authoredOn"] == "2026-12-01T06:00:00+01:00"
    summer = build_service_request(
        ticket_row(authored_at=datetime(2026, 7, 1, 5, 0, tzinfo=UTC)), source_sequence=1
    )
    assert summer["authoredOn"] == "2026-07-01T07:00:00+02:00"


def test_r17_service_request_extensions_with_referral():
    res = build_service_request(ticket_row(), source_sequence=11)
    assert ext(res, "source-sequence") == 11
    assert ext(res, "contact-type") == "Mottagningsbesök"
    assert ext(res, "visit-type") == "Nybesök"
    assert ext(res, "referral") == "REM-5"


def test_r17_primary_care_ticket_without_referral_has_no_referral_extension():
    res = build_service_request(ticket_row(referral_id=None), source_sequence=1)
    assert not [e for e in res["extension"] if e["url"].endswith(":referral")]
    ServiceRequest.model_validate(res)


def test_service_request_dates_must_be_dates():
    with pytest.raises(PayloadError, match="issue_date"):
        build_service_request(
            ticket_row(issue_date=datetime(2026, 12, 1, tzinfo=UTC)), source_sequence=1
        )


# --- URLs -------------------------------------------------------------------------------------


def test_upsert_url_per_resource_type():
    assert upsert_url("Appointment", "900123") == (
        "Appointment?identifier=urn:cosmic:gavleborg:booking|900123"
    )
    assert upsert_url("ServiceRequest", "U-77") == (
        "ServiceRequest?identifier=urn:cosmic:gavleborg:booking-basis|U-77"
    )
    assert upsert_url("Appointment", "a b&c") == (
        "Appointment?identifier=urn:cosmic:gavleborg:booking|a%20b%26c"
    )
    with pytest.raises(ValueError, match="Patient"):
        upsert_url("Patient", "1")
