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

from mvg_sync.fileperms import private_dir, private_file
from mvg_sync.ingest.faults import is_machine_error
from mvg_sync.ingest.manifest import DropRejected

# 1 MB: a chunk stays in cache between hashing and the encoding probes (8 MB measured ~25% slower)
CHUNK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
# In windows-1252 Swedish text `Ã`/`Â` followed by a C1/Latin-1 symbol is mojibake: these
# byte pairs are how UTF-8 writes å, ä, ö, é, … (e.g. `Ã¤` = ä).
UTF8_PAIR = re.compile(rb"[\xc2-\xc3][\x80-\xbf]")
# windows-1252 leaves these bytes undefined: Python's strict decode refuses them, and so does
# ingest (the drop is rejected naming the first one's offset).
UNDEFINED_CP1252 = tuple(bytes([b]) for b in b"\x81\x8d\x8f\x90\x9d")
# windows-1252 differs from latin-1 only in bytes 0x80-0x9F (`€`, `–`, `”`, …). A file without
# them is the same text in both, and DuckDB reads latin-1 natively; DuckDB's latin-1 reader
# refuses these bytes ("File is not latin-1 encoded", measured on DuckDB 2.0.1), so a file
# holding one is transcoded to UTF-8 in Python first (issue 12: the transcode of every file
# was 16 % of ingest; Cosmic text rarely holds these bytes).
C1_BYTES = tuple(bytes([b]) for b in range(0x80, 0xA0))


@dataclass(frozen=True)
class FileScan:
    """What one pass over a file's bytes found."""

    sha256: str
    size: int
    has_bom: bool
    ends_with_newline: bool
    utf8_pair_offset: int | None  # first UTF-8 multibyte pair in a windows-1252 file
    undefined_offset: int | None = None  # first byte windows-1252 leaves undefined
    has_c1: bool = False  # a windows-1252 file holds a byte in 0x80-0x9F
    # A file without a NUL byte has no value holding one: the normaliser then skips its
    # per-value NUL check (issue 12: 0.08 CPU-s per 400 k bookings, for a byte files lack).
    has_nul: bool = True


def scan_file(path: Path, encoding: str) -> FileScan:
    """sha256 over the bytes in 1 MB chunks, plus the cheap encoding probes on the way.

    Each probe is a memchr-speed `in`/`find` per chunk (about 0.5 ms per MB for all of them,
    where the Python cp1252 transcode measured 1.4 ms per MB before writing it out).
    """
    digest = hashlib.sha256()
    size = 0
    first = b""
    last = b""
    pair_offset: int | None = None
    undefined_offset: int | None = None
    has_c1 = False
    has_nul = False
    windows = encoding == "windows-1252"
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            has_nul = has_nul or b"\x00" in chunk
            if windows and not has_c1:
                has_c1 = any(b in chunk for b in C1_BYTES)
            if has_c1 and undefined_offset is None:
                found = [at for b in UNDEFINED_CP1252 if (at := chunk.find(b)) >= 0]
                if found:
                    undefined_offset = size + min(found)
            if not first:
                first = chunk[:3]
            # memchr-fast pre-test; the regex only runs on the rare chunk holding Â/Ã
            if windows and pair_offset is None and (b"\xc3" in chunk or b"\xc2" in chunk):
                window = last[-1:] + chunk
                match = UTF8_PAIR.search(window)
                if match:
                    pair_offset = size - len(last[-1:]) + match.start()
            size += len(chunk)
            last = chunk[-2:]
    return FileScan(
        sha256=digest.hexdigest(),
        size=size,
        has_bom=first.startswith(UTF8_BOM),
        ends_with_newline=last.endswith(b"\n"),
        utf8_pair_offset=pair_offset,
        undefined_offset=undefined_offset,
        has_c1=has_c1,
        has_nul=has_nul,
    )


@dataclass(frozen=True)
class CsvSource:
    """The bytes DuckDB parses for one Cosmic file, and the encoding DuckDB reads them in."""

    name: str  # the file's name in the drop (errors name it, never the copy)
    path: Path
    encoding: str  # "utf-8" or "latin-1", DuckDB's names


def csv_source(path: Path, encoding: str, scan: FileScan, tmp: Path) -> CsvSource:
    """What DuckDB reads: the file itself, or for a windows-1252 file holding 0x80-0x9F bytes
    its UTF-8 copy written under `tmp` (owner-only: it holds personnummer, issue 14).

    Call after `check_bytes`: a file with bytes undefined in windows-1252 has no copy.
    """
    if encoding == "utf-8":
        return CsvSource(path.name, path, "utf-8")
    if not scan.has_c1:
        return CsvSource(path.name, path, "latin-1")  # latin-1 = windows-1252 on every byte it holds
    copy = tmp / path.name
    private_dir(tmp)
    with path.open("rb") as src, copy.open("wb") as out:
        private_file(copy)
        while chunk := src.read(CHUNK):
            # single-byte encoding: chunk borders never split a character
            out.write(chunk.decode("cp1252").encode("utf-8"))
    return CsvSource(path.name, copy, "utf-8")


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
# DuckDB sizes its CSV buffers at 16 x max_line_size (1 GiB) unless told: a national file over
# 1 GiB then needs two such buffers and the work connection's 2 GB limit fails the drop
# (docs/benchmarks.md, Session 4: 10 M bookings). Two rows' worth per buffer reads it in 1.34 GB.
READ_BUFFER_BYTES = 2 * MAX_ROW_BYTES
_READ_CSV = (
    "SELECT * FROM read_csv($path, header = true, delim = ';', quote = '\"', escape = '\"', "
    "encoding = $encoding, auto_detect = false, columns = $columns, strict_mode = true, "
    "null_padding = false, ignore_errors = false, max_line_size = $max_line_size, buffer_size = $buffer_size)"
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
    con: duckdb.DuckDBPyConnection, source: CsvSource, names: list[str], *, batch_rows: int
) -> Iterator[pl.DataFrame]:
    """The file's rows in file order, as frames of `batch_rows` nullable strings (the last
    one fewer), header names as Cosmic wrote them.

    Memory is bounded by a batch, not the file. At least one frame comes (a header-only file
    gives one empty frame). `names` is the header `check_bytes` read; a parse error raises
    CsvParseError (a DropRejected naming the file, never a value) when its batch is reached.
    DuckDB's Arrow reader yields batches of about 27 k rows whatever size is asked (issue 12),
    so they are gathered here into one frame of the intended size: the normaliser runs once
    per `batch_rows`, not 37 times per million rows.
    """
    # explicit dialect and columns, every column a string: typing is the normaliser's job
    params = {"path": str(source.path), "encoding": source.encoding,
              "columns": dict.fromkeys(names, "VARCHAR"), "max_line_size": MAX_ROW_BYTES,
              "buffer_size": READ_BUFFER_BYTES}
    # DuckDB draws a progress bar on stdout for a query open over 2 s, and the query stays open
    # while its batches are normalised: the bar would land in `mvg-sync ... --json` output.
    con.execute("SET enable_progress_bar = false")
    # Arrow string views are Polars' own string layout: the hand-over takes the strings as
    # DuckDB made them instead of copying each into a new buffer (issue 12: 0.1-0.15 CPU-s
    # per 400 k bookings).
    con.execute("SET produce_arrow_string_view = true")
    try:
        reader = con.sql(_READ_CSV, params=params).to_arrow_reader(batch_rows)
        pending: list[pa.RecordBatch] = []
        held = 0
        empty = True
        for batch in reader:
            while batch.num_rows:
                take = min(batch.num_rows, batch_rows - held)
                pending.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == batch_rows:
                    empty = False
                    yield _frame(pending)
                    pending, held = [], 0
        if held or empty:
            yield _frame(pending) if held else pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    # OSError too: a parse error past the first batch reaches here through Arrow as one
    except (duckdb.Error, pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        if is_machine_error(exc):
            raise  # a full disk while DuckDB spills is no fault of the file
        reason, line_ends = _safe_duckdb_reason(exc)
        raise CsvParseError(f"{source.name}: {reason}", file=source.name, mixed_line_ends_possible=line_ends) from None


def _frame(batches: list[pa.RecordBatch]) -> pl.DataFrame:
    """One Polars frame of DuckDB's Arrow batches (Polars copies Arrow strings into its own
    string views once, here; no other copy of the raw rows is made)."""
    return pl.DataFrame(pl.from_arrow(pa.Table.from_batches(batches)))


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
