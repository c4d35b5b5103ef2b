"""The quality gate on a drop's profile, evaluated without Great Expectations (issue 12).

The suites stay data (`contracts/gx/<dataset>.json`) and GX stays the tool that runs them into
validation results and Data Docs: `document.py` does that from the same stored profile after
the push. Importing GX and building its context costs 7–12 s per process on a loaded machine,
so on the path from a drop landing to its push the suites are evaluated here, directly, with
GX's semantics for the one expectation type they use:

- `expect_column_values_to_be_between` with `row_condition` `dataset=="<name>"` (pandas
  parser): only the rows of that dataset are checked; null values are skipped (GX's
  column-map expectations ignore nulls); bounds are inclusive unless `strict_min`/`strict_max`;
  a missing bound is open.

Any other expectation type, condition or keyword fails loudly when the suites are loaded, so a
suite can never be weakened by an expectation the gate would silently ignore. The test
`tests/unit/test_quality_gate.py` runs the gate and the GX checkpoint on the same generated
profiles and requires identical verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from mvg_sync.quality.checkpoint import QualityResult, load_suites

SUPPORTED = "expect_column_values_to_be_between"
_KNOWN_KWARGS = {"column", "min_value", "max_value", "row_condition", "condition_parser",
                 "strict_min", "strict_max"}
_CONDITION = re.compile(r'^dataset\s*==\s*"([a-z_]+)"$')


class UnsupportedExpectation(ValueError):
    """A suite holds an expectation the gate cannot evaluate exactly as GX would."""


@dataclass(frozen=True)
class Bound:
    """One `expect_column_values_to_be_between` of a suite, ready to evaluate."""

    dataset: str
    column: str
    min_value: float | None
    max_value: float | None
    strict_min: bool
    strict_max: bool
    severity: str
    why: str

    def message(self) -> str:
        """The text a failure is recorded with (the same as the GX checkpoint's)."""
        return f"{self.dataset}: {self.column} outside [{self.min_value}, {self.max_value}] ({self.why})"

    def violated(self, profile: pl.DataFrame) -> bool:
        """True when a non-null value of the dataset's rows lies outside the bounds."""
        values = profile.filter(pl.col("dataset") == self.dataset).get_column(self.column).drop_nulls()
        for value in values.to_list():
            if self.min_value is not None and (value <= self.min_value if self.strict_min else value < self.min_value):
                return True
            if self.max_value is not None and (value >= self.max_value if self.strict_max else value > self.max_value):
                return True
        return False


def _number(value: float | None) -> float | None:
    """Bounds as GX holds them (as floats: its messages print `0.0`, not `0`)."""
    return None if value is None else float(value)


def _bound(suite: dict[str, Any], spec: dict[str, Any]) -> Bound:
    name = suite["name"]
    if spec["type"] != SUPPORTED:
        raise UnsupportedExpectation(f"suite {name}: {spec['type']} is not evaluated by the gate")
    kwargs = spec["kwargs"]
    unknown = set(kwargs) - _KNOWN_KWARGS
    if unknown:
        raise UnsupportedExpectation(f"suite {name}: keyword(s) {sorted(unknown)} not evaluated by the gate")
    condition = _CONDITION.match(kwargs.get("row_condition", ""))
    if kwargs.get("condition_parser") != "pandas" or condition is None:
        raise UnsupportedExpectation(f"suite {name}: row_condition must be dataset==\"<name>\" (pandas)")
    severity = spec["meta"]["severity"]
    if severity not in {"reject", "warn"}:
        raise UnsupportedExpectation(f"suite {name}: severity {severity!r} is neither reject nor warn")
    return Bound(
        dataset=condition.group(1), column=kwargs["column"],
        min_value=_number(kwargs.get("min_value")), max_value=_number(kwargs.get("max_value")),
        strict_min=bool(kwargs.get("strict_min", False)), strict_max=bool(kwargs.get("strict_max", False)),
        severity=severity, why=spec["meta"].get("why", ""),
    )


@cache
def bounds() -> tuple[Bound, ...]:
    """Every expectation of every suite, in suite and expectation order."""
    return tuple(_bound(suite, spec) for suite in load_suites() for spec in suite["expectations"])


def evaluate(profile: pl.DataFrame) -> QualityResult:
    """The suites' verdict on a drop profile (one row per dataset, `PROFILE_SCHEMA`)."""
    result = QualityResult()
    for bound in bounds():
        if bound.violated(profile):
            (result.failures if bound.severity == "reject" else result.warnings).append(bound.message())
    return result
