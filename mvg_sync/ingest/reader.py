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
from mvg_sync.ingest.faults import is_machine_error
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


class CsvParseError(DropRejected):
    """The CSV parser refused the file; `mixed_line_ends_possible` when it could be the line ends."""

    def __init__(self, reason: str, *, file: str, mixed_line_ends_possible: bool) -> None:
        super().__init__(reason, file=file)
        self.mixed_line_ends_possible = mixed_line_ends_possible


def _safe_duckdb_reason(exc: Exception) -> tuple[str, bool]:
    """DuckDB's CSV error as a reason that names the data row and what was wrong, never a value.

    DuckDB's message quotes the offending line (patient data) and then lists every reader
    option (`quote = "` among them), so it is matched on its own phrases only. DuckDB counts
    the header as line 1: data row = line - 1, as `source_row` counts. Also says whether the
    error may come from mixed CRLF/LF row ends (the caller then checks the bytes).
    """
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    row = f"row {int(line.group(1)) - 1}" if line else "a row"
    where = f" near line {line.group(1)}" if line else ""
    lowered = text.lower()
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    too_long = re.search(r"Maximum line size of (\d+) bytes exceeded", text)
    if "unicode" in lowered or "not utf-8" in lowered:
        return f"invalid UTF-8 bytes (declared utf-8; wrong or mixed encoding){where}", False
    if "not latin-1" in lowered:
        return f"bytes that are not windows-1252{where}", False
    if fields:
        expected, found = int(fields.group(1)), int(fields.group(2))
        if found > expected:
            what = "one `;` too many" if found == expected + 1 else f"{found - expected} `;` too many"
        else:
            what = "fields missing: truncated or malformed row"
        return f"{row} has {found} fields but the header has {expected} ({what})", True
    if "value with unterminated quote" in lowered:
        return f"unterminated quoted field in {row} (truncated or malformed file)", True
    if too_long:
        return f"{row} is longer than the {int(too_long.group(1)) >> 20} MB a row may hold", False
    if "state machine reached an invalid state" in lowered:
        return f"malformed CSV{where} (a quote, separator or line end out of place)", True
    return f"unparseable CSV ({type(exc).__name__}){where}", True


# A free-text field may be long (issue 14: a 10 MB Bokningsinformation is valid CSV), and
# DuckDB's default of 2 MB per row would reject the drop. Measured: no cost on ordinary rows.
MAX_ROW_BYTES = 64 << 20
_READ_CSV = (
    "SELECT * FROM read_csv($path, header = true, delim = ';', quote = '\"', escape = '\"', "
    "encoding = $encoding, auto_detect = false, columns = $columns, strict_mode = true, "
    "null_padding = false, ignore_errors = false, max_line_size = $max_line_size)"
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
    source, source_encoding = csv_source(path, encoding, scan)
    # explicit dialect and columns, every column a string: typing is the normaliser's job
    params = {"path": str(source), "encoding": source_encoding, "columns": dict.fromkeys(names, "VARCHAR"),
              "max_line_size": MAX_ROW_BYTES}
    try:
        reader = con.sql(_READ_CSV, params=params).to_arrow_reader(batch_rows)
        empty = True
        for batch in reader:
            if batch.num_rows:
                empty = False
                yield pl.DataFrame(pl.from_arrow(batch))
        if empty:
            yield pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    # OSError too: a parse error past the first batch reaches here through Arrow as one
    except (duckdb.Error, pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        if is_machine_error(exc):
            raise  # a full disk while DuckDB spills is no fault of the file
        reason, line_ends = _safe_duckdb_reason(exc)
        raise CsvParseError(f"{name}: {reason}", file=name, mixed_line_ends_possible=line_ends) from None


def csv_source(path: Path, encoding: str, scan: FileScan) -> tuple[Path, str]:
    """The bytes DuckDB parses and their encoding: the UTF-8 copy when there is one."""
    if scan.utf8_copy is not None:
        return scan.utf8_copy, "utf-8"
    if encoding == "utf-8":
        return path, "utf-8"
    return path, "latin-1"  # no transcoded copy (a caller that scanned without one)


def copy_with_lf_row_ends(source: Path, out: Path) -> bool:
    """Write `source` to `out` with each CRLF outside quoted fields as LF; True if it mixed both.

    The dialect says CRLF, but a file that ends some rows with CRLF and others with a bare LF
    is still valid CSV (issue 14), while DuckDB's strict parser takes one row end per file.
    Inside quotes nothing changes: a free text keeps its own line breaks byte for byte. The
    quote state carries across chunks (`""` toggles it twice, so escapes need no care).
    """
    in_quotes = False
    seen_crlf = seen_bare_lf = False
    with source.open("rb") as src, out.open("wb") as dst:
        while chunk := src.read(CHUNK):
            if chunk.endswith(b"\r"):  # keep a CRLF whole within one chunk
                chunk += src.read(1)
            pieces = chunk.split(b'"')
            for index, piece in enumerate(pieces):
                if index:
                    in_quotes = not in_quotes
                if in_quotes or b"\n" not in piece:
                    continue
                crlf = piece.count(b"\r\n")
                seen_crlf = seen_crlf or crlf > 0
                seen_bare_lf = seen_bare_lf or piece.count(b"\n") > crlf
                if crlf:
                    pieces[index] = piece.replace(b"\r\n", b"\n")
            dst.write(b'"'.join(pieces))
    return seen_crlf and seen_bare_lf
