"""Cosmic file layouts: header names, required flags and how each column is normalised.

Outside `mvg_sync.ingest` so `contracts/` builds its raw-file models from the same layouts
without importing the ingest package (issue 12 item 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "datetime", "date", "enum", "bool", "patient_id", "hsa_id"]

BOOLEAN_VALUES = {"Ja": True, "Nej": False}


@dataclass(frozen=True)
class Column:
    """One Cosmic column: its header, the normalised name and how it is normalised."""

    header: str
    name: str
    kind: Kind = "text"
    required: bool = True
    # Swedish value -> English value (kind "enum"), or the allowed values kept verbatim.
    values: dict[str, str] | None = None


@dataclass(frozen=True)
class FileLayout:
    """One Cosmic file of a drop and the normalised dataset it becomes."""

    file: str
    dataset: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    optional: bool = False
    # (start column, end column) pairs where end must be after start
    ordered: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # the column whose local date the manifest's window bounds (cosmic-extracts.md), if any
    windowed: str | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(c.header for c in self.columns)

    @property
    def required_headers(self) -> tuple[str, ...]:
        return tuple(c.header for c in self.columns if c.required)


def _verbatim(*values: str) -> dict[str, str]:
    return {v: v for v in values}


BOOKING_STATUS = {
    "Planerad": "planned",
    "Preliminärbokad": "preliminary",
    "Bokad": "booked",
    "Anländ": "arrived",
    "Pågående": "in_progress",
    "Utförd": "done",
    "Avbokad": "cancelled",
}
BASIS_STATUS = {"Planerad": "planned", "Bokad": "booked", "Avslutad": "closed", "Makulerad": "removed"}
EVENT_TYPE = {"Avbokad": "cancel", "Ombokad": "rebook"}
SLOT_STATUS = {"Ledig": "free", "Bokad": "booked"}
VISIT_TYPES = _verbatim("Nybesök", "Återbesök")
CARE_LEVELS = _verbatim("Primärvård", "Specialistvård")

BOOKINGS = FileLayout(
    file="bokningar.csv",
    dataset="bookings",
    key=("booking_id",),
    columns=(
        Column("BokningsID", "booking_id"),
        Column("Personnummer", "patient_id", "patient_id"),
        Column("Namn", "patient_name"),
        # required except for status Planerad: checked as a row rule, not per column
        Column("BokadTid", "start_at", "datetime", required=False),
        Column("Sluttid", "end_at", "datetime", required=False),
        Column("Status", "status", "enum", values=BOOKING_STATUS),
        Column("Vårdtjänst", "care_service"),
        Column("Kontakttyp", "contact_type"),
        Column("Besökstyp", "visit_type", "enum", values=VISIT_TYPES),
        Column("EnhetHSAID", "unit_hsa_id", "hsa_id"),
        Column("Enhet", "unit_name"),
        Column("ResursHSAID", "resource_hsa_id", "hsa_id", required=False),
        Column("Resurs", "resource_name", required=False),
        Column("Yrkesroll", "profession", required=False),
        Column("Bokningsinformation", "booking_info", required=False),
        Column("UnderlagsID", "basis_id", required=False),
        Column("Avbokningsorsak", "cancel_reason", required=False),
        Column("Registreringsdatum", "registered_at", "datetime"),
        Column("Ändrad", "changed_at", "datetime"),
    ),
    ordered=(("start_at", "end_at"),),
    windowed="start_at",
)

BOOKING_BASES = FileLayout(
    file="bokningsunderlag.csv",
    dataset="booking_bases",
    key=("basis_id",),
    columns=(
        Column("UnderlagsID", "basis_id"),
        Column("Personnummer", "patient_id", "patient_id"),
        Column("Namn", "patient_name"),
        Column("Vårdtjänst", "care_service"),
        Column("Kontakttyp", "contact_type"),
        Column("Besökstyp", "visit_type", "enum", values=VISIT_TYPES),
        Column("EnhetHSAID", "unit_hsa_id", "hsa_id"),
        Column("Enhet", "unit_name"),
        Column("Bevakningsdatum", "monitoring_date", "date"),
        Column("Status", "status", "enum", values=BASIS_STATUS),
        Column("BokningsID", "booking_id", required=False),
        Column("BokadTid", "booked_start_at", "datetime", required=False),
        Column("Remiss", "referral_id", required=False),
        Column("Akut", "is_acute", "bool"),
        Column("Registreringsdatum", "registered_at", "datetime"),
        Column("Ändrad", "changed_at", "datetime"),
    ),
)

EVENTS = FileLayout(
    file="av_ombokningar.csv",
    dataset="events",
    key=("event_id",),
    columns=(
        Column("HändelseID", "event_id"),
        Column("Datum", "registered_at", "datetime"),
        Column("Typ", "event_type", "enum", values=EVENT_TYPE),
        Column("BokningsID", "booking_id"),
        Column("UnderlagsID", "basis_id", required=False),
        Column("Personnummer", "patient_id", "patient_id"),
        Column("Namn", "patient_name"),
        Column("TidigareTid", "previous_start", "datetime"),
        Column("NyTid", "new_start", "datetime", required=False),
        Column("Vårdtjänst", "care_service"),
        Column("Kontakttyp", "contact_type"),
        Column("EnhetHSAID", "unit_hsa_id", "hsa_id"),
        Column("Enhet", "unit_name"),
        Column("Orsak", "reason"),
        Column("Kommentar", "comment", required=False),
        Column("Användare", "user_name"),
    ),
)

SLOTS = FileLayout(
    file="tider.csv",
    dataset="slots",
    key=("slot_id", "care_service"),
    columns=(
        Column("TidID", "slot_id"),
        Column("EnhetHSAID", "unit_hsa_id", "hsa_id"),
        Column("ResursHSAID", "resource_hsa_id", "hsa_id", required=False),
        Column("Resurs", "resource_name", required=False),
        Column("Yrkesroll", "profession"),
        Column("Start", "start_at", "datetime"),
        Column("Slut", "end_at", "datetime"),
        Column("Schemamarkering", "schedule_marker", required=False),
        Column("Vårdtjänst", "care_service"),
        Column("Webbtidbok", "is_web_bookable", "bool"),
        Column("Status", "status", "enum", values=SLOT_STATUS),
        Column("BokningsID", "booking_id", required=False),
    ),
    ordered=(("start_at", "end_at"),),
    windowed="start_at",
)

UNITS = FileLayout(
    file="enheter.csv",
    dataset="units",
    key=("unit_hsa_id",),
    optional=True,
    columns=(
        Column("EnhetHSAID", "unit_hsa_id", "hsa_id"),
        Column("Enhet", "unit_name"),
        Column("Enhetstyp", "unit_type"),
        Column("Verksamhetsområde", "care_level", "enum", values=CARE_LEVELS),
        Column("Offentlig", "is_public", "bool"),
    ),
)

CARE_SERVICES = FileLayout(
    file="vardtjanster.csv",
    dataset="care_services",
    key=("care_service",),
    optional=True,
    columns=(
        Column("Vårdtjänst", "care_service"),
        Column("Webbtidbok", "is_web_bookable", "bool"),
        Column("Clinic24Roll", "clinic24_role", required=False),
        Column("PatientKanOmboka", "patient_may_rebook", "bool"),
        Column("PatientKanAvboka", "patient_may_cancel", "bool"),
    ),
)

LAYOUTS: tuple[FileLayout, ...] = (BOOKINGS, BOOKING_BASES, EVENTS, SLOTS, UNITS, CARE_SERVICES)
LAYOUT_BY_FILE = {layout.file: layout for layout in LAYOUTS}
LAYOUT_BY_DATASET = {layout.dataset: layout for layout in LAYOUTS}


def output_columns(layout: FileLayout) -> list[str]:
    """Normalised column order of a dataset (design.md), `source_row` last."""
    names: list[str] = []
    for column in layout.columns:
        names.append(column.name)
        if column.kind == "patient_id":
            names.append("patient_id_kind")
    return [*names, "source_row"]
