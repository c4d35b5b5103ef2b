"""windows-1252 files read without a Python transcode give exactly Python's cp1252 decode (issue 12)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvg_sync.ingest.manifest import DropRejected
from mvg_sync.ingest.reader import (
    UTF8_PAIR,
    check_bytes,
    csv_source,
    iter_raw_batches,
    scan_file,
)

UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
# any byte but the CSV's own syntax (separator, quote, line ends) and NUL
FIELD_BYTES = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(x for x in b if x not in b';"\r\n\x00') or b"x"
)


def _read(folder: Path, rows: list[bytes], con: duckdb.DuckDBPyConnection, batch_rows: int = 3):
    """Write a one-column windows-1252 file and read it as ingest does; its values and source."""
    path = folder / "tider.csv"
    path.write_bytes(b"a\r\n" + b"".join(row + b"\r\n" for row in rows))
    scan = scan_file(path, "windows-1252")
    names = check_bytes(path, "windows-1252", scan)
    source = csv_source(path, "windows-1252", scan, folder / "tmp")
    frames = list(iter_raw_batches(con, source, names, batch_rows=batch_rows))
    return [v for frame in frames for v in frame["a"].to_list()], source


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(FIELD_BYTES, min_size=1, max_size=8))
def test_every_byte_reads_as_pythons_cp1252_decode_or_rejects_as_before(rows):
    con = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        data = b"a\r\n" + b"".join(row + b"\r\n" for row in rows)
        undefined = [data.find(bytes([b])) for b in UNDEFINED if bytes([b]) in data]
        pair = UTF8_PAIR.search(data)
        try:
            values, source = _read(Path(tmp), rows, con)
        except DropRejected as exc:
            # today's rules, unchanged: UTF-8 pairs first, then undefined bytes at their offset
            if pair is not None:
                assert exc.reason == (f"tider.csv: declared windows-1252 but holds UTF-8 multibyte sequences "
                                      f"(wrong or mixed encoding) from byte {pair.start()}")
            else:
                assert exc.reason == f"tider.csv: byte undefined in windows-1252 at offset {min(undefined)}"
            return
        assert pair is None and not undefined, "a file today's code rejects was read"
        assert values == [row.decode("cp1252") for row in rows]
        has_c1 = any(0x80 <= b <= 0x9F for b in data)
        # no Python transcode unless DuckDB cannot read the bytes (its latin-1 refuses 0x80-0x9F)
        assert (source.path.name, source.encoding) == (("tider.csv", "utf-8") if has_c1 else ("tider.csv", "latin-1"))
        assert (source.path.parent.name == "tmp") == has_c1


@pytest.mark.parametrize("byte", range(0x80, 0x100))
def test_each_high_byte_gives_its_cp1252_character(tmp_path, byte):
    con = duckdb.connect()
    row = b"x" + bytes([byte]) + b"y"
    try:
        expected = row.decode("cp1252")
    except UnicodeDecodeError:
        with pytest.raises(DropRejected, match=r"byte undefined in windows-1252 at offset 4$"):
            _read(tmp_path, [row], con)
        return
    values, _ = _read(tmp_path, [row], con)
    assert values == [expected]


def test_batches_are_of_the_size_asked_whatever_duckdb_yields(tmp_path):
    # DuckDB's Arrow reader yields ~27 k-row batches whatever is asked (issue 12)
    con = duckdb.connect()
    rows = [f"r{i}".encode() for i in range(70_001)]
    path = tmp_path / "tider.csv"
    path.write_bytes(b"a\n" + b"\n".join(rows) + b"\n")
    scan = scan_file(path, "windows-1252")
    source = csv_source(path, "windows-1252", scan, tmp_path / "tmp")
    frames = list(iter_raw_batches(con, source, ["a"], batch_rows=50_000))
    assert [f.height for f in frames] == [50_000, 20_001]
    assert frames[1]["a"][-1] == "r70000"
