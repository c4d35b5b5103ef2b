"""Desired rows back from the Appointments Clinic24 accepted: what R07/R08 compare with and move."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from mvg_sync.clinic24 import payloads as p
from mvg_sync.rules.booking_scope import DESIRED_COLUMNS

_KIND_OF_SYSTEM = {system: kind for kind, system in p.PATIENT_ID_SYSTEMS.items()}
_ROW_COLUMNS = [c for c in DESIRED_COLUMNS if c != "content_hash"]


def _code(concepts: Any) -> str | None:
    """The first coding's code of a CodeableConcept or a list of them."""
    concept = concepts[0] if isinstance(concepts, list) and concepts else concepts
    codings = (concept or {}).get("coding") or [{}]
    return codings[0].get("code")


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def appointment_row(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The desired row (`DESIRED_COLUMNS` but `content_hash`) that `build_appointment` turns
    into `resource`: its inverse, so a row built from Clinic24's accepted Appointment is the
    row Clinic24 was last sent (R07 compares end and practitioner with it; R08 moves it)."""
    actors: dict[str, dict] = {}
    for participant in resource.get("participant", []):
        actor = participant.get("actor", {})
        actors.setdefault(actor.get("type"), actor)
    patient, unit, practitioner = actors.get("Patient", {}), actors.get("Location", {}), actors.get("Practitioner")
    extensions = {e.get("url"): e for e in resource.get("extension", [])}

    def ext(url: str, field: str) -> Any:
        return extensions.get(url, {}).get(field)

    identifiers = resource.get("identifier") or [{}]
    patient_id = patient.get("identifier", {})
    return {
        "booking_id": identifiers[0].get("value"),
        "status": resource.get("status"),
        "cancel_reason": (resource.get("cancelationReason") or {}).get("text"),
        "start_at": _instant(resource.get("start")),
        "end_at": _instant(resource.get("end")),
        "care_service": _code(resource.get("serviceType")),
        "clinic24_role": _code(resource.get("specialty")),
        "visit_kind": _code(resource.get("appointmentType")),
        "patient_id": patient_id.get("value"),
        "patient_id_kind": _KIND_OF_SYSTEM.get(patient_id.get("system")),
        "patient_name": patient.get("display"),
        "unit_hsa_id": unit.get("identifier", {}).get("value"),
        "resource_hsa_id": practitioner.get("identifier", {}).get("value") if practitioner else None,
        "resource_name": practitioner.get("display") if practitioner else None,
        "booking_info": resource.get("comment"),
        "contact_type": ext(p.EXT_CONTACT_TYPE, "valueString"),
        "visit_type": ext(p.EXT_VISIT_TYPE, "valueString"),
        "patient_may_rebook": ext(p.EXT_MAY_REBOOK, "valueBoolean"),
        "patient_may_cancel": ext(p.EXT_MAY_CANCEL, "valueBoolean"),
    }


def accepted_rows(resources: Mapping[str, Mapping[str, Any]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """One desired row per accepted Appointment (`key -> resource`), typed as `schema`
    (the desired frame's), in key order."""
    rows = [appointment_row(resources[key]) for key in sorted(resources)]
    frame = pl.DataFrame(rows, schema={c: pl.Datetime("us", "UTC") if c in ("start_at", "end_at") else
                                       pl.Boolean if c.startswith("patient_may_") else pl.String
                                       for c in _ROW_COLUMNS})
    return frame.select(pl.col(c).cast(schema[c]) for c in _ROW_COLUMNS)
