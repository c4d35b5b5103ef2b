"""Raw-edge contracts: one model per Cosmic file; required columns, optional ones, grain."""

from __future__ import annotations

import pandera.errors
import polars as pl
import pytest

from contracts.cosmic import COSMIC_MODELS, validate_raw
from mvg_sync.cosmic_columns import LAYOUT_BY_FILE
from tests import cosmic_drops as t


def raw(file: str) -> pl.DataFrame:
    rows = t.default_files()[file]
    return pl.DataFrame(rows, schema=dict.fromkeys(LAYOUT_BY_FILE[file].headers, pl.String))


@pytest.mark.parametrize("file", sorted(COSMIC_MODELS))
def test_valid_file_passes(file):
    assert COSMIC_MODELS[file].validate(raw(file), lazy=True).height == len(t.default_files()[file])


@pytest.mark.parametrize("file", sorted(COSMIC_MODELS))
def test_missing_required_column_fails(file):
    required = LAYOUT_BY_FILE[file].required_headers[0]
    with pytest.raises(pandera.errors.SchemaErrors, match="COLUMN_NOT_IN_DATAFRAME") as failed:
        validate_raw(file, raw(file).drop(required))
    assert required in failed.value.failure_cases["failure_case"].cast(pl.String).to_list()


def test_missing_optional_column_and_unknown_extra_column_pass():
    frame = raw("bokningar.csv").drop("Avbokningsorsak").with_columns(pl.lit("x").alias("NyKolumn"))
    validate_raw("bokningar.csv", frame)


@pytest.mark.parametrize("file", ["bokningar.csv", "bokningsunderlag.csv", "av_ombokningar.csv", "tider.csv"])
def test_duplicate_key_violates_grain(file):
    frame = raw(file)
    with pytest.raises(pandera.errors.SchemaErrors, match="DUPLICATES"):
        COSMIC_MODELS[file].validate(pl.concat([frame, frame.head(1)]), lazy=True)


def test_slot_grain_is_slot_and_care_service():
    frame = raw("tider.csv")
    other_service = frame.head(1).with_columns(pl.lit("Annan|tjänst|läkare").alias("Vårdtjänst"))
    COSMIC_MODELS["tider.csv"].validate(pl.concat([frame, other_service]), lazy=True)


def test_values_must_be_strings_at_the_raw_edge():
    frame = raw("enheter.csv").with_columns(pl.lit(1).alias("Offentlig"))
    with pytest.raises(pandera.errors.SchemaErrors, match="Offentlig"):
        validate_raw("enheter.csv", frame)
