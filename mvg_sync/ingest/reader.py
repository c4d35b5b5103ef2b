"""Byte-level checks (sha256, encoding) and CSV parsing of one Cosmic file into raw strings."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from mvg_sync.fileperms import private_file
from mvg_sync.ingest.manifest import DropRejected

# 1 MB: a chunk stays in cache between hashing and transcoding (8 MB measured ~25% slower)
CHUNK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
# In windows-1252 Swedish text `Ã`/`Â` followed by a C1/Latin-1 symbol is mojibake: these
# byte pairs are how UTF-8 writes å, ä, ö, é, … (e.g. `Ã¤` = ä).
UTF8_PAIR = re.compile(rb"[\xc2-\xc3][\x80-\xbf]")


@dataclass(frozen=True)
class FileScan:
    """What one pass over a file's bytes found."""

    sha256: str
    size: int
    has_bom: bool
    ends_with_newline: bool
    utf8_pair_offset: int | None  # first UTF-8 multibyte pair in a windows-1252 file
    undefined_offset: int | None = None  # first byte windows-1252 leaves undefined
    utf8_copy: Path | None = None  # the windows-1252 file transcoded to UTF-8


def scan_file(path: Path, encoding: str, utf8_copy: Path | None = None) -> FileScan:
    """sha256 over the bytes in 1 MB chunks, plus the cheap encoding probes on the way.

    For a windows-1252 file the same pass writes `utf8_copy`: DuckDB reads only UTF-8 and
    latin-1 natively, and its latin-1 path measured 3x slower than transcoding here.
    """
    digest = hashlib.sha256()
    size = 0
    first = b""
    last = b""
    pair_offset: int | None = None
    undefined_offset: int | None = None
    check_pairs = encoding == "windows-1252"
    out = utf8_copy.open("wb") if (utf8_copy is not None and check_pairs) else None
    if out is not None:
        private_file(utf8_copy)  # a copy of the drop, personnummer included (issue 14)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if out is not None and undefined_offset is None:
                try:
                    # single-byte encoding: chunk borders never split a character
                    out.write(chunk.decode("cp1252").encode("utf-8"))
                except UnicodeDecodeError as exc:
                    undefined_offset = size + exc.start
            if not first:
                first = chunk[:3]
            # memchr-fast pre-test; the regex only runs on the rare chunk holding Â/Ã
            if check_pairs and pair_offset is None and (b"\xc3" in chunk or b"\xc2" in chunk):
                window = last[-1:] + chunk
                match = UTF8_PAIR.search(window)
                if match:
                    pair_offset = size - len(last[-1:]) + match.start()
            size += len(chunk)
            last = chunk[-2:]
    if out is not None:
        out.close()
    return FileScan(
        sha256=digest.hexdigest(),
        size=size,
        has_bom=first.startswith(UTF8_BOM),
        ends_with_newline=last.endswith(b"\n"),
        utf8_pair_offset=pair_offset,
        undefined_offset=undefined_offset,
        utf8_copy=utf8_copy if out is not None else None,
    )


def _safe_duckdb_reason(exc: Exception) -> str:
    """DuckDB's CSV errors quote the offending line (patient data): keep only line and kind."""
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    where = f" near line {line.group(1)}" if line else ""
    lowered = text.lower()
    if "unicode" in lowered or "not utf-8" in lowered:
        kind = "invalid UTF-8 bytes (declared utf-8; wrong or mixed encoding)"
    elif "not latin-1" in lowered:
        kind = "bytes that are not windows-1252"
    elif "quote" in lowered:
        kind = "unterminated quoted field (truncated or malformed file)"
    elif "columns" in lowered:
        kind = "a row with the wrong number of fields (truncated or malformed file)"
    else:
        kind = f"unparseable CSV ({type(exc).__name__})"
    return f"{kind}{where}"


_READ_CSV = (
    "SELECT * FROM read_csv($path, header = true, delim = ';', quote = '\"', escape = '\"', "
    "encoding = $encoding, auto_detect = false, columns = $columns, strict_mode = true, "
    "null_padding = false, ignore_errors = false)"
)


def read_header(path: Path, encoding: str) -> list[str]:
    """Column names from the first line; DuckDB's sniffer is bypassed so it cannot guess."""
    with path.open("rb") as handle:
        line = handle.readline(1 << 16)
    if not line.endswith(b"\n"):
        raise DropRejected(f"{path.name}: header row missing or not terminated", file=path.name)
    try:
        text = line.rstrip(b"\r\n").decode("utf-8-sig" if encoding == "utf-8" else "cp1252")
    except UnicodeDecodeError:
        kind = "invalid UTF-8 bytes (declared utf-8; wrong or mixed encoding)" if encoding == "utf-8" \
            else "bytes that are not windows-1252"
        raise DropRejected(f"{path.name}: {kind} in the header row", file=path.name) from None
    names = [n[1:-1] if len(n) >= 2 and n[0] == n[-1] == '"' else n for n in text.split(";")]
    names = [n.strip() for n in names]
    if any(not n or '"' in n for n in names):
        raise DropRejected(f"{path.name}: header row has an empty or quoted column name", file=path.name)
    if len(set(names)) != len(names):
        raise DropRejected(f"{path.name}: header row names a column twice", file=path.name)
    return names


def read_raw(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, scan: FileScan) -> pl.DataFrame:
    """The file as a frame of nullable strings, header names as Cosmic wrote them.

    Raises DropRejected naming the file and what was wrong (never a value from it).
    """
    return pl.concat(iter_raw_batches(con, path, encoding, scan, batch_rows=1 << 30))


def check_bytes(path: Path, encoding: str, scan: FileScan) -> list[str]:
    """The byte-level checks of one file before parsing; its header names, or DropRejected."""
    name = path.name
    if scan.size == 0:
        raise DropRejected(f"{name}: empty file (no header row)", file=name)
    if encoding == "windows-1252":
        if scan.has_bom:
            raise DropRejected(f"{name}: declared windows-1252 but starts with a UTF-8 BOM", file=name)
        if scan.utf8_pair_offset is not None:
            raise DropRejected(
                f"{name}: declared windows-1252 but holds UTF-8 multibyte sequences "
                f"(wrong or mixed encoding) from byte {scan.utf8_pair_offset}",
                file=name,
            )
    names = read_header(path, encoding)
    if scan.undefined_offset is not None:
        raise DropRejected(
            f"{name}: byte undefined in windows-1252 at offset {scan.undefined_offset}", file=name
        )
    return names


def iter_raw_batches(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    encoding: str,
    scan: FileScan,
    *,
    batch_rows: int,
    names: list[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """The file's rows in file order, as frames of at most `batch_rows` nullable strings.

    Memory is bounded by a batch, not the file. At least one frame comes (a header-only
    file gives one empty frame). The byte checks run first unless the caller did them and
    passes the header `names`; a parse error raises DropRejected when its batch is reached.
    """
    name = path.name
    if names is None:
        names = check_bytes(path, encoding, scan)
    if encoding == "utf-8":
        source, source_encoding = path, "utf-8"
    elif scan.utf8_copy is not None:
        source, source_encoding = scan.utf8_copy, "utf-8"
    else:  # no transcoded copy (a caller that scanned without one): DuckDB's latin-1 path
        source, source_encoding = path, "latin-1"
    # explicit dialect and columns, every column a string: typing is the normaliser's job
    params = {"path": str(source), "encoding": source_encoding, "columns": dict.fromkeys(names, "VARCHAR")}
    try:
        reader = con.sql(_READ_CSV, params=params).to_arrow_reader(batch_rows)
        empty = True
        for batch in reader:
            if batch.num_rows:
                empty = False
                yield pl.DataFrame(pl.from_arrow(batch))
        if empty:
            yield pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    except (duckdb.Error, pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise DropRejected(f"{name}: {_safe_duckdb_reason(exc)}", file=name) from None
