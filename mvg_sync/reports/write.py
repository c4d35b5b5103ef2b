"""Writing a report to disk: HTML page, XLSX workbook and CSV files, owner-only when they hold patients."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import polars as pl
from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name

from mvg_sync.fileperms import private_dir
from mvg_sync.reports.html import render_html
from mvg_sync.reports.model import Report, View
from mvg_sync.timeutil import STOCKHOLM_TZ as LOCAL_TZ

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
# Issue 14: every report file is owner-only, aggregates included; sharing is a deliberate copy.
SHARED_FILE = PRIVATE_FILE

XLSX_DATETIME = "yyyy-mm-dd hh:mm"
XLSX_DATE = "yyyy-mm-dd"
XLSX_PERCENT = "0.0%"
# Counts as whole numbers with digit grouping: Excel shows `#,##0` in the reader's locale
# (`11 000` in Swedish Excel), never with decimals. Identifiers (sequence numbers) ungrouped.
XLSX_COUNT = "#,##0"
XLSX_ID = "0"
XLSX_DECIMAL = "#,##0.0"
INTEGER_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
                  pl.UInt64)
FLOAT_DTYPES = (pl.Float32, pl.Float64)
TABLE_STYLE = "Table Style Light 9"

# Views with more rows than this skip xlsxwriter's per-cell Python loop (~10 us a cell here:
# 20 s for a 93k x 20 detail sheet) and get their rows as sheet XML built column-wise by
# Polars; xlsxwriter still writes the header, table, filter, frozen pane and styles.
FAST_SHEET_ROWS = 2_000
_EXCEL_EPOCH_US = -2_209_161_600_000_000  # 1899-12-30T00:00 as microseconds since 1970
_US_PER_DAY = 86_400_000_000
_EXCEL_MAX_TEXT = 32_767
_CELL_REF = re.compile(r"^([A-Za-z]{1,3}\d+|[RrCc]\d*|[Rr]\d*[Cc]\d*)$")
# Characters XML 1.0 forbids; Cosmic free text can carry them (pasted from other systems).
_XML_ILLEGAL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]"


def table_name(view_name: str, taken: set[str]) -> str:
    """An Excel table name from a sheet name: ASCII letters, digits and `_`, unique in `taken`.

    `Täckning per dag` -> `Tackning_per_dag`. Excel refuses spaces, most punctuation, a leading
    digit and names that read as cell references (`R24`, `A1`), so those get a `T_` prefix.
    """
    ascii_name = unicodedata.normalize("NFKD", view_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_name).strip("_")[:200] or "Tabell"
    if not name[0].isalpha() or _CELL_REF.match(name):
        name = f"T_{name}"
    candidate, n = name, 2
    while candidate.lower() in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate.lower())
    return candidate


def _number_format(view: View, name: str, dtype: pl.DataType) -> str | None:
    """The Excel format of one column: per cent, identifier, count or decimal (None: text)."""
    if name in view.percent_columns:
        return XLSX_PERCENT
    if dtype in INTEGER_DTYPES:
        return XLSX_ID if name in view.id_columns else XLSX_COUNT
    if dtype in FLOAT_DTYPES:
        return XLSX_DECIMAL
    return None


def _write_bytes(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file created with `mode` and rename it in place.

    The file never exists with wider permissions than `mode` (no umask window), and a reader
    never sees half a file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, mode)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """UTF-8, `,`, header; date-times as ISO 8601 local time with offset, booleans `true`/`false`."""
    conv = [
        pl.col(c).dt.convert_time_zone(LOCAL_TZ).dt.to_string("%Y-%m-%dT%H:%M:%S%:z")
        for c, t in frame.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    ]
    return frame.with_columns(conv).write_csv(separator=",").encode("utf-8")


def _excel_frame(view: View) -> pl.DataFrame:
    # Excel has no time zones: show local wall-clock time, as managers see it in Cosmic.
    conv = [
        pl.col(c).dt.convert_time_zone(LOCAL_TZ).dt.replace_time_zone(None)
        for c, t in view.frame.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    ]
    return view.frame.with_columns(conv)


@dataclass
class _FastSheet:
    """A big view whose data rows are spliced into `xl/worksheets/sheet<index>.xml` after close."""

    index: int
    frame: pl.DataFrame
    formats: dict[str, Format]
    table: str


def _xml_text(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.slice(0, _EXCEL_MAX_TEXT)
        .str.replace_all(_XML_ILLEGAL, "")
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def _cell_xml(name: str, dtype: pl.DataType, letter: str, style: int | None) -> pl.Expr:
    """One column's cells as XML text (null -> no cell), `r` filled from the `_row` column."""
    col = pl.col(name)
    s_attr = f' s="{style}"' if style is not None else ""
    if dtype == pl.Boolean:
        kind, value = ' t="b"', col.cast(pl.Int8).cast(pl.String)
    elif isinstance(dtype, pl.Datetime):
        micros = col.dt.cast_time_unit("us").cast(pl.Int64)
        kind, value = "", ((micros - _EXCEL_EPOCH_US) / _US_PER_DAY).cast(pl.String)
    elif dtype == pl.Date:
        kind, value = "", (col.cast(pl.Int32) + 25_569).cast(pl.String)  # 1970-01-01 is 25569
    elif dtype.is_float():
        kind, value = "", pl.when(col.is_finite()).then(col.cast(pl.String))
    elif dtype.is_numeric():
        kind, value = "", col.cast(pl.String)
    else:
        text = col.cast(pl.String)
        # Only text with edge spaces needs xml:space; leaving it off elsewhere keeps the XML small.
        t_open = pl.when(text.str.contains(r"^\s|\s$")).then(
            pl.lit('<t xml:space="preserve">')).otherwise(pl.lit("<t>"))
        return pl.when(col.is_not_null()).then(pl.concat_str(
            pl.lit(f'<c r="{letter}'), pl.col("_row"), pl.lit(f'"{s_attr} t="inlineStr"><is>'),
            t_open, _xml_text(text), pl.lit("</t></is></c>"))).otherwise(pl.lit(""))
    return pl.when(value.is_not_null()).then(pl.concat_str(
        pl.lit(f'<c r="{letter}'), pl.col("_row"), pl.lit(f'"{s_attr}{kind}><v>'), value,
        pl.lit("</v></c>"))).otherwise(pl.lit(""))


def sheet_rows_xml(frame: pl.DataFrame, styles: dict[str, int], *, first_row: int = 2) -> str:
    """`<row>` elements for every row of `frame` (1-based sheet rows from `first_row`).

    Strings are inline (never formulas, never URLs), dates and date-times Excel serial numbers
    with the style index given for their column, booleans Excel booleans, nulls empty cells.
    """
    if frame.height == 0:
        return ""
    cells = [
        _cell_xml(name, dtype, xl_col_to_name(j), styles.get(name))
        for j, (name, dtype) in enumerate(frame.schema.items())
    ]
    rows = frame.with_columns(
        _row=pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64).cast(pl.String)
    ).select(pl.concat_str(pl.lit('<row r="'), pl.col("_row"), pl.lit('">'), *cells,
                           pl.lit("</row>")).alias("xml"))
    return rows["xml"].str.join("").item()


def _column_widths(frame: pl.DataFrame) -> list[float]:
    """Rough autofit from the first rows (xlsxwriter's autofit would walk every cell)."""
    head = frame.head(1_000)
    widths = []
    for name, dtype in head.schema.items():
        if isinstance(dtype, pl.Datetime):
            longest = 16
        elif dtype == pl.Date:
            longest = 10
        else:
            longest = head[name].cast(pl.String).str.len_chars().max() or 0
        widths.append(float(min(60, max(8, len(name) + 3, int(longest) + 2))))
    return widths


def _add_fast_sheet(workbook: Workbook, view: View, frame: pl.DataFrame, index: int,
                    table: str) -> _FastSheet:
    sheet = workbook.add_worksheet(view.name)
    formats: dict[str, Format] = {}
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            formats[name] = workbook.add_format({"num_format": XLSX_DATETIME})
        elif dtype == pl.Date:
            formats[name] = workbook.add_format({"num_format": XLSX_DATE})
        elif (number := _number_format(view, name, dtype)) is not None:
            formats[name] = workbook.add_format({"num_format": number})
    # The table is declared over the header and one row, and widened when the rows are spliced
    # in: xlsxwriter checks a table's range for overlaps cell by cell (2 s for 1.9M cells).
    sheet.add_table(0, 0, 1, frame.width - 1, {
        "columns": [{"header": name} for name in frame.columns],
        "style": TABLE_STYLE,
        "autofilter": True,
        "name": table,
    })
    for j, width in enumerate(_column_widths(frame)):
        sheet.set_column(j, j, width, formats.get(frame.columns[j]))
    sheet.freeze_panes(1, 0)
    return _FastSheet(index=index, frame=frame, formats=formats, table=table)


def _splice_rows(xlsx: bytes, fast: list[_FastSheet]) -> bytes:
    """Insert the fast sheets' rows into the closed workbook (one pass over the zip)."""
    by_name = {f"xl/worksheets/sheet{f.index}.xml": f for f in fast}
    # displayName appears on the table element only (a column may share the table's name).
    by_table = {f'displayName="{f.table}"': f for f in fast}
    out = BytesIO()
    with zipfile.ZipFile(BytesIO(xlsx)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            sheet = by_name.get(info.filename)
            if sheet is not None:
                styles = {name: fmt.xf_index for name, fmt in sheet.formats.items()
                          if fmt.xf_index is not None}
                rows = sheet_rows_xml(sheet.frame, styles)
                last = f"{xl_col_to_name(sheet.frame.width - 1)}{sheet.frame.height + 1}"
                text = data.decode("utf-8")
                text = text.replace('<dimension ref="A1"/>', f'<dimension ref="A1:{last}"/>', 1)
                if '<dimension ref="A1:' in text and f":{last}" not in text:
                    start = text.index('<dimension ref="')
                    end = text.index("/>", start)
                    text = f'{text[:start]}<dimension ref="A1:{last}"{text[end:]}'
                data = text.replace("</sheetData>", rows + "</sheetData>", 1).encode("utf-8")
            if info.filename.startswith("xl/tables/"):
                data = _widen_table(data, by_table)
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _widen_table(data: bytes, by_table: dict[str, _FastSheet]) -> bytes:
    text = data.decode("utf-8")
    for marker, sheet in by_table.items():
        if marker in text:
            last_col = xl_col_to_name(sheet.frame.width - 1)
            text = text.replace(f'ref="A1:{last_col}2"',
                                f'ref="A1:{last_col}{sheet.frame.height + 1}"')
            return text.encode("utf-8")
    return data


def xlsx_bytes(report: Report) -> bytes:
    """One sheet per view: header frozen, autofilter on, dates and times as Excel dates,
    counts as whole numbers, each table named after its sheet (ASCII, `table_name`).

    Views over `FAST_SHEET_ROWS` rows take the column-wise fast path (same table, filter,
    frozen header and date styles; strings stored inline instead of shared).
    """
    buffer = BytesIO()
    workbook = Workbook(buffer, {
        "in_memory": True,
        # Cosmic free text starting with '=' must stay text, never become a formula.
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "nan_inf_to_errors": True,
        "default_date_format": XLSX_DATE,
    })
    workbook.set_properties({"title": report.title, "comments": report.intro})
    fast: list[_FastSheet] = []
    taken: set[str] = set()
    for index, view in enumerate(report.views, start=1):
        frame = _excel_frame(view)
        table = table_name(view.name, taken)
        if frame.width and frame.height > FAST_SHEET_ROWS:
            fast.append(_add_fast_sheet(workbook, view, frame, index, table))
            continue
        sheet = workbook.add_worksheet(view.name)
        if frame.width == 0:
            continue
        numbers = {name: fmt for name, dtype in frame.schema.items()
                   if (fmt := _number_format(view, name, dtype)) is not None}
        frame.write_excel(
            workbook=workbook,
            worksheet=sheet,
            table_name=table,
            table_style=TABLE_STYLE,
            dtype_formats={pl.Datetime: XLSX_DATETIME, pl.Date: XLSX_DATE},
            column_formats=numbers or None,
            autofilter=True,
            autofit=True,
            freeze_panes=(1, 0),
        )
    workbook.close()
    return _splice_rows(buffer.getvalue(), fast) if fast else buffer.getvalue()


def report_paths(report: Report, out_dir: Path) -> list[Path]:
    """The files `write_report` writes for `report`, in order."""
    return [out_dir / f"{report.name}.html", out_dir / f"{report.name}.xlsx",
            *(out_dir / f"{stem}.csv" for stem in report.csv)]


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write `<name>.html`, `<name>.xlsx` and each `<csv>.csv` into `out_dir`; return their paths.

    Every file is written 0600 and its folder (with any parent it creates) made 0700, whatever
    the umask (issue 14): reports holding patient data (`Report.holds_patient_data`) and
    aggregates alike.
    """
    out = private_dir(out_dir)
    mode = PRIVATE_FILE if report.holds_patient_data else SHARED_FILE
    html_path, xlsx_path, *csv_paths = report_paths(report, out)
    _write_bytes(html_path, render_html(report).encode("utf-8"), mode)
    _write_bytes(xlsx_path, xlsx_bytes(report), mode)
    for path, frame in zip(csv_paths, report.csv.values(), strict=True):
        _write_bytes(path, csv_bytes(frame), mode)
    return [html_path, xlsx_path, *csv_paths]
