"""The report object every control report is built into before rendering (HTML, XLSX, CSV)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import polars as pl

_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_STEM = re.compile(r"^[a-z0-9_\-]+$")

# Shown instead of a personnummer in pseudonymised output: nothing of the number is kept,
# not even the birth date, which together with unit and visit date can single a patient out.
MASKED_PATIENT_ID = "XXXXXXXX-XXXX"


@dataclass(frozen=True)
class View:
    """One table of a report: a section in HTML, a sheet in XLSX.

    `frame` carries Swedish column labels (what managers read). `highlight` names a column
    whose truthy value (true, non-empty text, non-zero) marks the row in HTML.
    `percent_columns` hold shares 0..1 shown as per cent. `id_columns` are integer
    identifiers (sequence numbers) shown without digit grouping; other integers are counts.
    """

    name: str
    frame: pl.DataFrame
    note: str = ""
    highlight: str | None = None
    percent_columns: tuple[str, ...] = ()
    id_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 31 or _SHEET_FORBIDDEN.search(self.name):
            raise ValueError(f"view name {self.name!r} is not a valid sheet name (<= 31 chars, no []:*?/\\)")
        if self.highlight is not None and self.highlight not in self.frame.columns:
            raise ValueError(f"highlight column {self.highlight!r} is not in view {self.name!r}")
        missing = [c for c in (*self.percent_columns, *self.id_columns)
                   if c not in self.frame.columns]
        if missing:
            raise ValueError(f"percent or id columns {missing} are not in view {self.name!r}")


@dataclass(frozen=True)
class Chart:
    """A chart drawn as inline SVG: one category column `x` and numeric `series` columns.

    `kind` `bar` draws bars (grouped, or `stacked`; `horizontal` for long category lists),
    `line` one line per series. `percent` shows the value axis as per cent of 1.
    Only the first `max_categories` categories are drawn; the caption says so.
    """

    title: str
    frame: pl.DataFrame
    x: str
    series: tuple[str, ...]
    kind: Literal["bar", "line"] = "bar"
    stacked: bool = False
    horizontal: bool = False
    percent: bool = False
    value_label: str = ""
    max_categories: int = 40

    def __post_init__(self) -> None:
        missing = [c for c in (self.x, *self.series) if c not in self.frame.columns]
        if missing:
            raise ValueError(f"chart {self.title!r} lacks columns {missing}")
        if not self.series:
            raise ValueError(f"chart {self.title!r} has no series")


@dataclass(frozen=True)
class Report:
    """A control report ready to render.

    `name` is the file stem (`eservice` -> eservice.html / eservice.xlsx). `csv` maps CSV file
    stems to frames with the fixed English columns of operations.md. The column sets name the
    columns (Swedish labels or English names) that hold personnummer, patient names or free
    text that may hold personal data: they decide file permissions and pseudonymisation.
    The first `lead_views` views come before the charts in HTML (what the reader acts on).
    """

    name: str
    title: str
    intro: str
    views: tuple[View, ...]
    charts: tuple[Chart, ...] = ()
    csv: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    facts: tuple[tuple[str, str], ...] = ()
    generated_at: datetime | None = None
    patient_id_columns: frozenset[str] = frozenset()
    patient_name_columns: frozenset[str] = frozenset()
    free_text_columns: frozenset[str] = frozenset()
    pseudonymised: bool = False
    lead_views: int = 0

    def __post_init__(self) -> None:
        if not _STEM.match(self.name):
            raise ValueError(f"report name {self.name!r} must be lowercase letters, digits, _ or -")
        names = [v.name for v in self.views]
        if len(set(names)) != len(names):
            raise ValueError(f"report {self.name!r} has duplicate view names")
        for stem in self.csv:
            if not _STEM.match(stem):
                raise ValueError(f"csv name {stem!r} must be lowercase letters, digits, _ or -")
        if self.generated_at is not None and self.generated_at.tzinfo is None:
            raise ValueError("generated_at must be timezone-aware")

    @property
    def frames(self) -> list[pl.DataFrame]:
        return [v.frame for v in self.views] + list(self.csv.values())

    @property
    def holds_patient_data(self) -> bool:
        """True when any frame carries a patient id or name column (masked or not).

        Pseudonymised data is still personal data, so such files stay owner-only too.
        """
        sensitive = self.patient_id_columns | self.patient_name_columns
        return any(sensitive.intersection(f.columns) for f in self.frames)


def _pseudonymise_frame(frame: pl.DataFrame, report: Report) -> pl.DataFrame:
    drop = [c for c in frame.columns
            if c in report.patient_name_columns or c in report.free_text_columns]
    masked = [
        pl.when(pl.col(c).is_not_null()).then(pl.lit(MASKED_PATIENT_ID)).alias(c)
        for c in frame.columns if c in report.patient_id_columns
    ]
    return frame.drop(drop).with_columns(masked)


def pseudonymise(report: Report) -> Report:
    """The same report with personnummer masked (`XXXXXXXX-XXXX`) and names and free text dropped.

    Event and booking ids stay: they let someone with access to Cosmic find the patient,
    and nobody else.
    """
    views = []
    for v in report.views:
        frame = _pseudonymise_frame(v.frame, report)
        views.append(replace(
            v,
            frame=frame,
            highlight=v.highlight if v.highlight in frame.columns else None,
            percent_columns=tuple(c for c in v.percent_columns if c in frame.columns),
            id_columns=tuple(c for c in v.id_columns if c in frame.columns),
        ))
    return replace(
        report,
        # a report without patients (HSL, tickets) is the same report: its title says nothing
        title=f"{report.title} (pseudonymiserad)" if report.holds_patient_data else report.title,
        views=tuple(views),
        csv={k: _pseudonymise_frame(f, report) for k, f in report.csv.items()},
        pseudonymised=True,
    )
