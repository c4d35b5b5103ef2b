"""Cosmic drop ingestion: discovery, manifest check, decoding, parsing, normalisation, quarantine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvg_sync.ingest.pipeline import (
        DropReport,
        FileCounts,
        IngestReport,
        ingest_drop,
        ingest_pending,
        wait_for_drop,
    )
    from mvg_sync.ingest.status import describe_state

__all__ = ["DropReport", "FileCounts", "IngestReport", "describe_state", "ingest_drop", "ingest_pending", "wait_for_drop"]


def __getattr__(name: str) -> Any:
    # lazy: `mvg_sync.ingest.localtime` users should not pay for DuckDB/pandera imports
    if name == "describe_state":
        from mvg_sync.ingest.status import describe_state

        return describe_state
    if name in __all__:
        from mvg_sync.ingest import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
