"""pandera contracts of Cosmic's raw files (the raw edge): one model per file, every column a string.

Built from `mvg_sync.cosmic_columns`, the one place Cosmic's headers are mapped, so the
contract and the parser can never disagree. At this edge: required columns must be present,
optional ones may be absent, unknown extra columns are allowed (ingestion warns about them),
every value is a nullable string (typing happens in normalisation), and the file's key
(its grain) is unique.
"""

from __future__ import annotations

from typing import Optional

import pandera.polars as pa
import polars as pl

from mvg_sync.cosmic_columns import LAYOUT_BY_FILE, FileLayout


def _model(class_name: str, layout: FileLayout) -> type[pa.DataFrameModel]:
    annotations: dict[str, object] = {}
    namespace: dict[str, object] = {}
    key_headers = [c.header for c in layout.columns if c.name in layout.key]
    for column in layout.columns:
        # Optional[...] = the column may be missing from the file
        annotations[column.header] = str if column.required else Optional[str]  # noqa: UP045
        namespace[column.header] = pa.Field(nullable=True, description=f"-> {column.name} ({column.kind})")
    config = type("Config", (), {"strict": False, "unique": key_headers})
    namespace.update(
        __annotations__=annotations,
        __doc__=f"{layout.file}: one row per {' + '.join(key_headers)} (grain), raw strings.",
        __module__=__name__,
        Config=config,
    )
    return type(class_name, (pa.DataFrameModel,), namespace)


Bokningar = _model("Bokningar", LAYOUT_BY_FILE["bokningar.csv"])
Bokningsunderlag = _model("Bokningsunderlag", LAYOUT_BY_FILE["bokningsunderlag.csv"])
AvOmbokningar = _model("AvOmbokningar", LAYOUT_BY_FILE["av_ombokningar.csv"])
Tider = _model("Tider", LAYOUT_BY_FILE["tider.csv"])
Enheter = _model("Enheter", LAYOUT_BY_FILE["enheter.csv"])
Vardtjanster = _model("Vardtjanster", LAYOUT_BY_FILE["vardtjanster.csv"])

COSMIC_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "bokningar.csv": Bokningar,
    "bokningsunderlag.csv": Bokningsunderlag,
    "av_ombokningar.csv": AvOmbokningar,
    "tider.csv": Tider,
    "enheter.csv": Enheter,
    "vardtjanster.csv": Vardtjanster,
}


def validate_raw(file: str, frame: pl.DataFrame) -> None:
    """Column names and string types of a parsed file (schema level; values come later)."""
    COSMIC_MODELS[file].validate(frame.lazy(), lazy=True)
