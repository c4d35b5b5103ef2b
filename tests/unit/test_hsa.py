"""HSA-id validation from the Cosmic input contract (`SE` + 10 digits + `-` + id, <= 31)."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.hsa import ERROR_HSA, validate_hsa_id


def _validate(values: list[str | None]) -> pl.DataFrame:
    frame = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    return frame.select(validate_hsa_id(pl.col("raw")).alias("r")).unnest("r")


@pytest.mark.parametrize(
    ("raw", "hsa_id"),
    [
        ("SE2321000032-1003", "SE2321000032-1003"),
        ("  SE2321000032-E9PB\t", "SE2321000032-E9PB"),
        ("se2321000032-1003", "SE2321000032-1003"),  # decided: `se` is accepted, made `SE`
        ("Se2321000032-abc1", "SE2321000032-abc1"),  # local id kept as delivered
        ("SE2321000032-" + "A" * 18, "SE2321000032-" + "A" * 18),  # exactly 31 characters
    ],
)
def test_contract_hsa_id_good(raw, hsa_id):
    assert _validate([raw]).row(0) == (hsa_id, None)


@pytest.mark.parametrize(
    "raw",
    [
        "SE2321000032-" + "A" * 19,  # 32 characters
        "SE2321000032E9PB",  # missing dash
        "SE2321000032-",  # nothing after the dash
        "SE232100003-1003",  # 9 digits
        "SE23210000321-1003",  # 11 digits
        "DK2321000032-1003",
        "2321000032-1003",
        "SE2321000032-ÅÄÖ",
        "SE2321000032-10 03",
        "SE2321000032-10-03",
        "garbage",
    ],
)
def test_contract_hsa_id_bad(raw):
    assert _validate([raw]).row(0) == (None, ERROR_HSA)


def test_contract_hsa_id_empty_is_not_an_error_here():
    expected = pl.DataFrame(
        {"hsa_id": [None, None, None], "error": [None, None, None]},
        schema={"hsa_id": pl.String, "error": pl.String},
    )
    assert_frame_equal(_validate(["", "  ", None]), expected)


def test_contract_hsa_id_mixed_column():
    expected = pl.DataFrame(
        {"hsa_id": ["SE2321000032-1003", None, None], "error": [None, ERROR_HSA, None]},
        schema={"hsa_id": pl.String, "error": pl.String},
    )
    assert_frame_equal(_validate(["se2321000032-1003", "SE2321000032", None]), expected)
