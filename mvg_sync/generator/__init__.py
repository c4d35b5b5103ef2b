"""Deterministic sample Cosmic drops (demo, tests, bench): region model, datasets, drops, next drops."""

from mvg_sync.generator.datasets import generate_region
from mvg_sync.generator.drift import EXPECTED_KINDS, next_region
from mvg_sync.generator.region import FILES, Region
from mvg_sync.generator.writer import extract_id, write_csv, write_drop, write_sandbox_seed

__all__ = [
    "EXPECTED_KINDS",
    "FILES",
    "Region",
    "extract_id",
    "generate_region",
    "next_region",
    "write_csv",
    "write_drop",
    "write_sandbox_seed",
]
