"""Swedish display of values in report pages: numbers, shares, dates, times, yes/no."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from mvg_sync.timeutil import STOCKHOLM

NBSP = "\u00a0"


def format_number(value: float | int) -> str:
    """`12 345` / `3,5`: Swedish digit grouping (no-break space) and decimal comma."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", NBSP)
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text.replace(",", NBSP).replace(".", ",")


def format_percent(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 100:.1f}".replace(".", ",") + f"{NBSP}%"


def format_value(value: object) -> str:
    """A cell as managers read it; date-times in local Swedish time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Ja" if value else "Nej"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(STOCKHOLM)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


def display_patient_id(col: str) -> pl.Expr:
    """12 digits shown as Cosmic shows them, `YYYYMMDD-NNNN` (null stays null)."""
    return pl.concat_str(pl.col(col).str.slice(0, 8), pl.lit("-"), pl.col(col).str.slice(8))
