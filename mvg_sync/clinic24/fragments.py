"""FHIR fragments the sync reads from or derives out of resources Clinic24 already holds (R08, R16, R19)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

CANCEL_REASON_DEFAULT = "Avbokad i Cosmic"


def _is_source_sequence(extension: Mapping[str, Any]) -> bool:
    # by suffix, as the builders' EXT_SOURCE_SEQUENCE ends: a resource read back keeps its url
    return extension.get("url", "").endswith(":source-sequence")


def ended(accepted: dict, row: Mapping[str, Any], sequence: int) -> dict:
    """The last accepted resource with only its status (and cancel reason) changed.

    A booking that vanished from Cosmic, or a basis that left the snapshot, has no row to
    build from; ending what Clinic24 holds is exactly what R08/R19 ask for.
    """
    resource = {**accepted, "status": row["status"]}
    if resource["resourceType"] == "Appointment" and row["status"] == "cancelled":
        resource["cancelationReason"] = {"text": row.get("cancel_reason") or CANCEL_REASON_DEFAULT}
    resource["extension"] = [
        {**ext, "valueInteger": sequence} if _is_source_sequence(ext) else ext
        for ext in accepted.get("extension", [])
    ]
    return resource


def timeless(ticket: dict) -> dict:
    """A ticket without the moment it was planned: authoredOn, issue date, source sequence (R16)."""
    period = {k: v for k, v in ticket.get("occurrencePeriod", {}).items() if k != "start"}
    extensions = [e for e in ticket.get("extension", []) if not _is_source_sequence(e)]
    return {**ticket, "authoredOn": None, "occurrencePeriod": period, "extension": extensions}


def instant(value: str | None) -> datetime | None:
    """A FHIR instant (ISO 8601 with offset) as an aware datetime; None when absent."""
    return datetime.fromisoformat(value) if value else None


def location(resource: dict) -> str | None:
    """The unit HSA-id of an Appointment's Location participant or a ticket's performer."""
    actors = [p.get("actor", {}) for p in resource.get("participant", [])] + resource.get("performer", [])
    return next((a["identifier"]["value"] for a in actors if a.get("type") == "Location"), None)

