"""The value normalisers ingestion calls (R13 patient ids, HSA-ids, local date-times), in one place.

Owned by `mvg_sync.rules.patient_id`, `mvg_sync.rules.hsa` and `mvg_sync.ingest.localtime`;
re-exported so the ingest code has a single import point and never re-implements them.
"""

from __future__ import annotations

from mvg_sync.ingest.localtime import parse_local_date, parse_local_datetime
from mvg_sync.rules.hsa import validate_hsa_id
from mvg_sync.rules.patient_id import normalise_patient_id

__all__ = ["normalise_patient_id", "parse_local_date", "parse_local_datetime", "validate_hsa_id"]
