"""Writing a report to disk: HTML page, XLSX workbook and CSV files, owner-only when they hold patients."""

from __future__ import annotations

import os
import tempfile
from io import BytesIO
from pathlib import Path

import polars as pl
from xlsxwriter import Workbook

from mvg_sync.reports.html import render_html
from mvg_sync.reports.model import Report, View

LOCAL_TZ = "Europe/Stockholm"
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
SHARED_FILE = 0o644

XLSX_DATETIME = "yyyy-mm-dd hh:mm"
XLSX_DATE = "yyyy-mm-dd"


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


def xlsx_bytes(report: Report) -> bytes:
    """One sheet per view: header frozen, autofilter on, dates and times as Excel dates."""
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
    for view in report.views:
        frame = _excel_frame(view)
        sheet = workbook.add_worksheet(view.name)
        if frame.width == 0:
            continue
        frame.write_excel(
            workbook=workbook,
            worksheet=sheet,
            table_style="Table Style Light 9",
            dtype_formats={pl.Datetime: XLSX_DATETIME, pl.Date: XLSX_DATE},
            column_formats=dict.fromkeys(view.percent_columns, "0.0%") or None,
            autofilter=True,
            autofit=frame.height <= 20_000,
            freeze_panes=(1, 0),
        )
    workbook.close()
    return buffer.getvalue()


def report_paths(report: Report, out_dir: Path) -> list[Path]:
    """The files `write_report` writes for `report`, in order."""
    return [out_dir / f"{report.name}.html", out_dir / f"{report.name}.xlsx",
            *(out_dir / f"{stem}.csv" for stem in report.csv)]


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write `<name>.html`, `<name>.xlsx` and each `<csv>.csv` into `out_dir`; return their paths.

    A report holding patient data (see `Report.holds_patient_data`) is written 0600 and its
    folder is made 0700; other reports are 0644.
    """
    out = Path(out_dir)
    private = report.holds_patient_data
    out.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR if private else 0o755)
    if private:
        os.chmod(out, PRIVATE_DIR)
    mode = PRIVATE_FILE if private else SHARED_FILE
    html_path, xlsx_path, *csv_paths = report_paths(report, out)
    _write_bytes(html_path, render_html(report).encode("utf-8"), mode)
    _write_bytes(xlsx_path, xlsx_bytes(report), mode)
    for path, frame in zip(csv_paths, report.csv.values(), strict=True):
        _write_bytes(path, csv_bytes(frame), mode)
    return [html_path, xlsx_path, *csv_paths]
