"""Seed files for the sandbox: the unit list (`--units`) and children with a primary guardian."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from mvg_sync.clinic24.sandbox.validation import normalise_patient_id
from mvg_sync.timeutil import STOCKHOLM


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Cosmic writes windows-1252 unless told otherwise (cosmic-extracts.md).
        return raw.decode("windows-1252")


def _rows(path: Path) -> list[dict[str, str]]:
    text = _read_text(path)
    header = text.split("\n", 1)[0]
    delimiter = ";" if ";" in header else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def load_units(path: Path) -> dict[str, str]:
    """HSA-id -> name from a `;`-separated CSV with a column `EnhetHSAID` (name from `Enhet`)."""
    rows = _rows(path)
    if rows and "EnhetHSAID" not in rows[0]:
        raise ValueError(f"{path.name}: no column EnhetHSAID")
    units: dict[str, str] = {}
    for row in rows:
        hsa = (row.get("EnhetHSAID") or "").strip()
        if hsa:
            units[hsa] = (row.get("Enhet") or "").strip() or hsa
    return units


def normalise_patient_ids(raw: Iterable[str], reference: date | None = None) -> tuple[set[str], list[int]]:
    """12-digit ids of every valid value, and the 1-based positions of invalid ones (R13).

    `reference` decides the century of 10-digit forms; the sandbox plays Clinic24, an outside
    system, so today's date in Stockholm is the right default here.
    """
    day = reference or datetime.now(tz=UTC).astimezone(STOCKHOLM).date()
    ids: set[str] = set()
    invalid: list[int] = []
    for position, value in enumerate(raw, start=1):
        normalised = normalise_patient_id(value, day)
        if normalised is None:
            invalid.append(position)
        else:
            ids.add(normalised)
    return ids, invalid


def load_guardians(path: Path, reference: date | None = None) -> tuple[set[str], list[int]]:
    """Children with a primary guardian from a CSV with a column `Personnummer` (any R13 form).

    Returns the 12-digit ids and the data-row numbers that were not valid personnummer.
    """
    rows = _rows(path)
    if rows and "Personnummer" not in rows[0]:
        raise ValueError(f"{path.name}: no column Personnummer")
    return normalise_patient_ids((row.get("Personnummer") or "" for row in rows), reference)
