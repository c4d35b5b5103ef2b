"""Pydantic models of the resources the integration sends to Clinic24 (clinic24-api.md)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PATIENT_SYSTEMS = (
    "http://electronichealth.se/identifier/personnummer",
    "http://electronichealth.se/identifier/samordningsnummer",
)
HSA_SYSTEM = "urn:oid:1.2.752.129.2.1.4.1"
EXT = "urn:clinic24:ext:"

NonEmpty = Annotated[str, Field(min_length=1)]


def _aware(value: str, what: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{what} must carry a UTC offset")
    return parsed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identifier(_Strict):
    """A (system, value) pair."""

    system: NonEmpty
    value: NonEmpty


class Coding(_Strict):
    """One code in one code system."""

    system: NonEmpty
    code: NonEmpty
    display: str | None = None


class CodeableConcept(_Strict):
    """Exactly one coding: Clinic24 reads `coding[0]`."""

    coding: Annotated[list[Coding], Field(min_length=1, max_length=1)]


class Extension(_Strict):
    """`urn:clinic24:ext:<name>` with one typed value."""

    url: Annotated[str, Field(pattern=r"^urn:clinic24:ext:[a-z-]+$")]
    valueInteger: int | None = None
    valueString: str | None = None
    valueBoolean: bool | None = None
    valueDateTime: str | None = None

    @model_validator(mode="after")
    def _one_value(self) -> Extension:
        values = [self.valueInteger, self.valueString, self.valueBoolean, self.valueDateTime]
        if sum(v is not None for v in values) != 1:
            raise ValueError(f"{self.url}: exactly one value[x]")
        return self


# Which value[x] each extension must carry (clinic24-api.md tables).
EXTENSION_TYPES: dict[str, str] = {
    "source-sequence": "valueInteger",
    "contact-type": "valueString",
    "visit-type": "valueString",
    "patient-may-rebook": "valueBoolean",
    "patient-may-cancel": "valueBoolean",
    "change-deadline": "valueDateTime",
    "referral": "valueString",
}


def _extensions(extensions: list[Extension], required: set[str], allowed: set[str]) -> dict:
    by_name: dict[str, object] = {}
    for ext in extensions:
        name = ext.url.removeprefix(EXT)
        if name not in allowed:
            raise ValueError(f"extension {name} is not allowed here")
        if name in by_name:
            raise ValueError(f"extension {name} appears twice")
        value_field = EXTENSION_TYPES[name]
        value = getattr(ext, value_field)
        if value is None:
            raise ValueError(f"extension {name} needs {value_field}")
        by_name[name] = value
    missing = required - by_name.keys()
    if missing:
        raise ValueError(f"missing extensions: {sorted(missing)}")
    return by_name


class Actor(_Strict):
    """A participant's actor, referenced by identifier (Patient, Location or Practitioner)."""

    type: Literal["Patient", "Location", "Practitioner"]
    identifier: Identifier
    display: str | None = None

    @model_validator(mode="after")
    def _system_fits_type(self) -> Actor:
        if self.type == "Patient":
            if self.identifier.system not in PATIENT_SYSTEMS:
                raise ValueError("a Patient is identified by personnummer or samordningsnummer")
            if not self.display:
                raise ValueError("a Patient needs a display")
            if not (len(self.identifier.value) == 12 and self.identifier.value.isdigit()):
                raise ValueError("a Patient id is 12 digits (R13)")
        elif self.identifier.system != HSA_SYSTEM:
            raise ValueError(f"a {self.type} is identified by an HSA-id")
        return self


class Participant(_Strict):
    """One participant of an appointment."""

    actor: Actor
    status: Literal["accepted"] = "accepted"


class CancelationReason(_Strict):
    """Cosmic's free-text reason."""

    text: NonEmpty


class Appointment(_Strict):
    """One booking as Clinic24 receives it (grain: one per Cosmic booking id)."""

    resourceType: Literal["Appointment"]
    identifier: Annotated[list[Identifier], Field(min_length=1, max_length=1)]
    status: Literal["booked", "cancelled"]
    cancelationReason: CancelationReason | None = None
    serviceType: Annotated[list[CodeableConcept], Field(min_length=1, max_length=1)]
    specialty: Annotated[list[CodeableConcept], Field(min_length=1, max_length=1)]
    appointmentType: CodeableConcept
    start: str
    end: str
    participant: Annotated[list[Participant], Field(min_length=2, max_length=3)]
    comment: str | None = None
    extension: list[Extension]

    @model_validator(mode="after")
    def _rules(self) -> Appointment:
        if self.identifier[0].system != "urn:cosmic:gavleborg:booking":
            raise ValueError("identifier must be the Cosmic booking id")
        if self.status == "cancelled" and self.cancelationReason is None:
            raise ValueError("a cancelled appointment needs cancelationReason.text")
        if self.serviceType[0].coding[0].system != "urn:cosmic:gavleborg:vardtjanst":
            raise ValueError("serviceType must be the Cosmic care service")
        if self.specialty[0].coding[0].system != "urn:clinic24:role":
            raise ValueError("specialty must be a Clinic24 role (R05)")
        kind = self.appointmentType.coding[0]
        if kind.system != "urn:clinic24:visit-kind" or kind.code not in ("digital", "physical"):
            raise ValueError("appointmentType must be digital or physical (R04)")
        start, end = _aware(self.start, "start"), _aware(self.end, "end")
        if not start < end:
            raise ValueError("start must be before end")
        types = [p.actor.type for p in self.participant]
        if types.count("Patient") != 1 or types.count("Location") != 1:
            raise ValueError("exactly one Patient and one Location participant")
        if types.count("Practitioner") > 1:
            raise ValueError("at most one Practitioner")
        ext = _extensions(
            self.extension,
            required={
                "source-sequence",
                "contact-type",
                "visit-type",
                "patient-may-rebook",
                "patient-may-cancel",
                "change-deadline",
            },
            allowed={
                "source-sequence",
                "contact-type",
                "visit-type",
                "patient-may-rebook",
                "patient-may-cancel",
                "change-deadline",
            },
        )
        deadline = _aware(str(ext["change-deadline"]), "change-deadline")
        if start - deadline != timedelta(hours=24):
            raise ValueError("change-deadline must be start - 24 h (R24)")
        return self


class Performer(_Strict):
    """The unit a ticket is for."""

    type: Literal["Location"]
    identifier: Identifier


class Subject(_Strict):
    """The patient a ticket is for."""

    type: Literal["Patient"] = "Patient"
    identifier: Identifier
    display: NonEmpty


class Period(_Strict):
    """Issue date to monitoring date."""

    start: date
    end: date


class ServiceRequest(_Strict):
    """One booking ticket as Clinic24 receives it (grain: one per booking-basis id, R16)."""

    resourceType: Literal["ServiceRequest"]
    identifier: Annotated[list[Identifier], Field(min_length=1, max_length=1)]
    status: Literal["active", "revoked", "completed"]
    intent: Literal["order"]
    code: CodeableConcept
    performerType: CodeableConcept
    subject: Subject
    performer: Annotated[list[Performer], Field(min_length=1, max_length=1)]
    occurrencePeriod: Period
    authoredOn: str
    extension: list[Extension]

    @model_validator(mode="after")
    def _rules(self) -> ServiceRequest:
        if self.identifier[0].system != "urn:cosmic:gavleborg:booking-basis":
            raise ValueError("identifier must be the booking-basis id")
        if self.code.coding[0].system != "urn:cosmic:gavleborg:vardtjanst":
            raise ValueError("code must be the Cosmic care service")
        if self.performerType.coding[0].system != "urn:clinic24:role":
            raise ValueError("performerType must be a Clinic24 role (R05)")
        if self.subject.identifier.system not in PATIENT_SYSTEMS:
            raise ValueError("subject is identified by personnummer or samordningsnummer")
        if self.performer[0].identifier.system != HSA_SYSTEM:
            raise ValueError("performer is identified by an HSA-id")
        if self.occurrencePeriod.start > self.occurrencePeriod.end:
            raise ValueError("occurrencePeriod starts after it ends")
        _aware(self.authoredOn, "authoredOn")
        _extensions(
            self.extension,
            required={"source-sequence", "contact-type", "visit-type"},
            allowed={"source-sequence", "contact-type", "visit-type", "referral"},
        )
        return self
