"""Writes a region as a Cosmic drop folder (CSV dialect + manifest last) and the sandbox's seed files."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from mvg_sync.generator.region import FILES, Region

ENCODINGS = {"windows-1252": "cp1252", "utf-8": "utf-8", "utf-8-sig": "utf-8"}
CHUNK_ROWS = 250_000
MANIFEST = "manifest.json"


def utf8_to_cp1252(data: bytes) -> bytes:
    """Transcode UTF-8 to windows-1252, fast when every char is below U+0100.

    Such text decodes to a one-byte-per-char string whose latin-1 encoding is a plain copy, and
    latin-1 equals windows-1252 outside 0x80-0x9F; a byte in that range (a C1 control) or a
    char above U+00FF (e.g. the euro sign) takes Python's cp1252 codec, which raises for what
    windows-1252 cannot hold.
    """
    text = data.decode("utf-8")
    try:
        out = text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("cp1252")
    if np.any((np.frombuffer(out, dtype=np.uint8) & 0xE0) == 0x80):
        return text.encode("cp1252")
    return out


def extract_id(region: Region, sequence: int) -> str:
    """`YYYYMMDDTHHMMSS-NNNNNN` from the local extraction time and the sequence."""
    return f"{region.as_of.strftime('%Y%m%dT%H%M%S')}-{sequence:06d}"


def write_csv(frame: pl.DataFrame, path: Path, encoding: str = "windows-1252",
              chunk_rows: int = CHUNK_ROWS) -> tuple[int, str]:
    """Cosmic's CSV dialect in `encoding`, chunk by chunk; returns (data rows, sha256 of the bytes).

    Polars writes UTF-8 only, so each chunk is transcoded on its own: memory stays bounded by
    one chunk whatever the file size.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}; use one of {sorted(ENCODINGS)}")
    codec = ENCODINGS[encoding]
    digest = hashlib.sha256()
    with path.open("wb") as out:
        if encoding == "utf-8-sig":
            bom = "\ufeff".encode()
            out.write(bom)
            digest.update(bom)
        for number, offset in enumerate(range(0, max(frame.height, 1), chunk_rows)):
            buffer = io.BytesIO()
            frame.slice(offset, chunk_rows).write_csv(
                buffer,
                include_header=number == 0,
                separator=";",
                line_terminator="\r\n",
                quote_char='"',
                quote_style="necessary",
                datetime_format="%Y-%m-%d %H:%M",
                date_format="%Y-%m-%d",
                null_value="",
            )
            data = buffer.getvalue()
            if codec != "utf-8":
                data = utf8_to_cp1252(data)
            digest.update(data)
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return frame.height, digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_drop(region: Region, landing_dir: Path, *, encoding: str = "windows-1252",
               sequence: int | None = None) -> Path:
    """Write `<landing>/<extract_id>/` with every CSV, then manifest.json last; returns the folder.

    The manifest appears by an atomic rename after the CSVs are flushed to disk, so a reader
    that waits for the manifest never sees a half-written file.
    """
    sequence = region.sequence if sequence is None else sequence
    drop_id = extract_id(region, sequence)
    folder = Path(landing_dir) / drop_id
    folder.mkdir(parents=True, exist_ok=False)
    files = {}
    for name in FILES:
        rows, sha = write_csv(region.frame(name), folder / name, encoding)
        files[name] = {"rows": rows, "sha256": sha}
    manifest = {
        "extract_id": drop_id,
        "sequence": sequence,
        "extracted_at": region.as_of.isoformat(timespec="seconds"),
        "source": "COSMIC",
        "window": {"from": region.window_from.isoformat(), "to": region.window_to.isoformat()},
        "encoding": "windows-1252" if encoding == "windows-1252" else "utf-8",
        "files": files,
    }
    _fsync_dir(folder)
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(manifest, out, ensure_ascii=False, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / MANIFEST)
    _fsync_dir(folder)
    return folder


def write_sandbox_seed(region: Region, folder: Path) -> tuple[Path, Path]:
    """`clinic24_units.csv` (column EnhetHSAID: the units Clinic24 knows, R01) and `guardians.csv`
    (column Personnummer, 12 digits: children with a primary guardian, R12)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    units_path = folder / "clinic24_units.csv"
    guardians_path = folder / "guardians.csv"
    write_csv(pl.DataFrame({"EnhetHSAID": list(region.clinic24_units)}), units_path, "utf-8")
    guardians = region.patients.filter(pl.col("has_guardian")).select(
        pl.col("patient_id").alias("Personnummer")
    )
    write_csv(guardians, guardians_path, "utf-8")
    return units_path, guardians_path
