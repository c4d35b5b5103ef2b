"""Tiny hand-made Cosmic drops for tests: rows as dicts, written as exact bytes with a manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mvg_sync.cosmic_columns import LAYOUT_BY_FILE

UNIT = "SE2321000233-HC01"
STAFF = "SE2321000233-R001"


def luhn_personnummer(yymmdd_nnn: str) -> str:
    """Append the Luhn check digit to 9 digits `YYMMDDNNN`."""
    total = 0
    for i, ch in enumerate(yymmdd_nnn):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return yymmdd_nnn + str((10 - total % 10) % 10)


def pnr(n: int) -> str:
    """A valid personnummer `YYYYMMDD-NNNN` (born 1958-11-xx), distinct per n < 900."""
    ten = luhn_personnummer(f"5811{(n % 28) + 1:02d}{100 + n:03d}")
    return f"19{ten[:6]}-{ten[6:]}"


def booking(i: int, **overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "BokningsID": f"B{i}",
        "Personnummer": pnr(i),
        "Namn": "Öberg, Åsa",
        "BokadTid": "2026-11-27 09:00",
        "Sluttid": "2026-11-27 09:30",
        "Status": "Bokad",
        "Vårdtjänst": "Psykisk hälsa|utredning|läkare",
        "Kontakttyp": "Distansbesök - video",
        "Besökstyp": "Nybesök",
        "EnhetHSAID": UNIT,
        "Enhet": "Häggsgård HC",
        "ResursHSAID": STAFF,
        "Resurs": "Lind, Per",
        "Yrkesroll": "Läkare",
        "Bokningsinformation": 'Telefonnr:+46701234567; "ring"\r\nBokning via webbtidbok',
        "UnderlagsID": None,
        "Avbokningsorsak": None,
        "Registreringsdatum": "2026-11-20 10:00",
        "Ändrad": "2026-11-21 11:15",
    }
    row.update(overrides)
    return row


def basis(i: int, **overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "UnderlagsID": f"U{i}",
        "Personnummer": pnr(i),
        "Namn": "Öberg, Åsa",
        "Vårdtjänst": "Psykisk hälsa|utredning|läkare",
        "Kontakttyp": "Mottagningsbesök",
        "Besökstyp": "Återbesök",
        "EnhetHSAID": UNIT,
        "Enhet": "Häggsgård HC",
        "Bevakningsdatum": "2027-01-15",
        "Status": "Planerad",
        "BokningsID": None,
        "BokadTid": None,
        "Remiss": None,
        "Akut": "Nej",
        "Registreringsdatum": "2026-11-01 08:00",
        "Ändrad": "2026-11-01 08:00",
    }
    row.update(overrides)
    return row


def event(i: int, **overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "HändelseID": f"E{i}",
        "Datum": "2026-11-25 14:00",
        "Typ": "Ombokad",
        "BokningsID": f"B{i}",
        "UnderlagsID": None,
        "Personnummer": pnr(i),
        "Namn": "Öberg, Åsa",
        "TidigareTid": "2026-11-26 09:00",
        "NyTid": "2026-11-27 09:00",
        "Vårdtjänst": "Psykisk hälsa|utredning|läkare",
        "Kontakttyp": "Distansbesök - video",
        "EnhetHSAID": UNIT,
        "Enhet": "Häggsgård HC",
        "Orsak": "Patienten ombokar via e-tjänst",
        "Kommentar": None,
        "Användare": "Mtwweb ServiceUser",
    }
    row.update(overrides)
    return row


def slot(i: int, **overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "TidID": f"T{i}",
        "EnhetHSAID": UNIT,
        "ResursHSAID": STAFF,
        "Resurs": "Lind, Per",
        "Yrkesroll": "Läkare",
        "Start": "2026-11-30 10:00",
        "Slut": "2026-11-30 10:20",
        "Schemamarkering": "MVG distans",
        "Vårdtjänst": "Psykisk hälsa|utredning|läkare",
        "Webbtidbok": "Ja",
        "Status": "Ledig",
        "BokningsID": None,
    }
    row.update(overrides)
    return row


def unit(**overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "EnhetHSAID": UNIT,
        "Enhet": "Häggsgård HC",
        "Enhetstyp": "Hälsocentral",
        "Verksamhetsområde": "Primärvård",
        "Offentlig": "Ja",
    }
    row.update(overrides)
    return row


def care_service(**overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "Vårdtjänst": "Psykisk hälsa|utredning|läkare",
        "Webbtidbok": "Ja",
        "Clinic24Roll": "lakare-psykisk-halsa",
        "PatientKanOmboka": "Ja",
        "PatientKanAvboka": "Nej",
    }
    row.update(overrides)
    return row


def default_files(n: int = 3) -> dict[str, list[dict[str, str | None]]]:
    """A small valid drop: n bookings, bases, events and slots, one unit, one care service."""
    return {
        "bokningar.csv": [booking(i) for i in range(1, n + 1)],
        "bokningsunderlag.csv": [basis(i) for i in range(1, n + 1)],
        "av_ombokningar.csv": [event(i) for i in range(1, n + 1)],
        "tider.csv": [slot(i) for i in range(1, n + 1)],
        "enheter.csv": [unit()],
        "vardtjanster.csv": [care_service()],
    }


def _field(value: str | None) -> str:
    if value is None:
        return ""
    if any(ch in value for ch in ';"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_text(rows: list[dict[str, str | None]], headers: list[str], *, row_ends: list[str] | None = None) -> str:
    """Cosmic's dialect: `;`, CRLF, quotes only where needed.

    `row_ends` gives each line's end in turn (header first), cycling; default CRLF throughout.
    """
    lines = [";".join(headers)]
    lines += [";".join(_field(row.get(h)) for h in headers) for row in rows]
    ends = row_ends or ["\r\n"]
    return "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))


def write_drop(
    landing: Path,
    sequence: int,
    files: dict[str, list[dict[str, str | None]]] | None = None,
    *,
    encoding: str = "windows-1252",
    extracted_at: str = "2026-11-26T08:05:00+01:00",
    extract_id: str | None = None,
    raw: dict[str, bytes] | None = None,
    headers: dict[str, list[str]] | None = None,
    manifest_overrides: dict[str, dict[str, object]] | None = None,
    write_manifest: bool = True,
) -> Path:
    """Write a drop; `raw` replaces a file's bytes (the manifest then describes those bytes).

    `manifest_overrides` patches a file's manifest entry after it was computed from the bytes.
    """
    files = default_files() if files is None else files
    extract_id = extract_id or f"20261126T{8 + sequence // 60:02d}{sequence % 60:02d}00-{sequence:06d}"
    folder = landing / extract_id
    folder.mkdir(parents=True, exist_ok=True)
    python_encoding = {"windows-1252": "cp1252", "utf-8": "utf-8", "utf-8-sig": "utf-8-sig"}[encoding]
    entries: dict[str, dict[str, object]] = {}
    for name, rows in files.items():
        cols = (headers or {}).get(name) or list(LAYOUT_BY_FILE[name].headers)
        data = (raw or {}).get(name)
        if data is None:
            data = csv_text(rows, cols).encode(python_encoding)
        (folder / name).write_bytes(data)
        entries[name] = {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
    for name, patch in (manifest_overrides or {}).items():
        entries.setdefault(name, {}).update(patch)
    if write_manifest:
        manifest = {
            "extract_id": extract_id,
            "sequence": sequence,
            "extracted_at": extracted_at,
            "source": "COSMIC",
            "window": {"from": "2026-11-19", "to": "2027-02-24"},
            "encoding": "utf-8" if encoding.startswith("utf-8") else encoding,
            "files": entries,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder
