"""The sandbox's persistent state: stored resources, units and guardians in one SQLite file.

Reads of "what is stored under this key" come from an in-memory index (version, source
sequence, content digest) loaded at start, so an upsert costs a dict look-up; writes go to
SQLite in WAL mode, one transaction and one `executemany` per request or batch, without an
fsync per commit (synchronous=NORMAL: a crash of the machine may lose the last commits, a
crash of the process loses nothing).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
    resource_type   TEXT NOT NULL,
    ident           TEXT NOT NULL,
    logical_id      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    source_sequence INTEGER NOT NULL,
    digest          BLOB NOT NULL,
    status          TEXT NOT NULL,
    unit_hsa_id     TEXT NOT NULL,
    start_date      TEXT,
    last_updated    TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (resource_type, ident)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_by_unit_date ON resource (resource_type, unit_hsa_id, start_date);
CREATE TABLE IF NOT EXISTS unit (hsa_id TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS guardian (patient_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

_UPSERT = (
    "INSERT INTO resource (resource_type, ident, logical_id, version, source_sequence, digest,"
    " status, unit_hsa_id, start_date, last_updated, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (resource_type, ident) DO UPDATE SET version=excluded.version,"
    " source_sequence=excluded.source_sequence, digest=excluded.digest, status=excluded.status,"
    " unit_hsa_id=excluded.unit_hsa_id, start_date=excluded.start_date,"
    " last_updated=excluded.last_updated, body=excluded.body"
)


@dataclass(slots=True)
class Known:
    """What the index keeps per stored resource."""

    logical_id: str
    version: int
    source_sequence: int
    digest: bytes


def content_digest(resource: dict) -> bytes:
    """A digest of the resource's content, ignoring server-set `id` and `meta`."""
    content = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def logical_id(resource_type: str, ident: str) -> str:
    """A stable FHIR id for a business identifier (ids allow only [A-Za-z0-9-.])."""
    prefix = "appt" if resource_type == "Appointment" else "sr"
    return f"{prefix}-{hashlib.blake2b(ident.encode(), digest_size=10).hexdigest()}"


class Store:
    """One SQLite file plus the in-memory index of stored resources."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.index: dict[tuple[str, str], Known] = {}
        for rtype, ident, lid, version, seq, digest in self.db.execute(
            "SELECT resource_type, ident, logical_id, version, source_sequence, digest FROM resource"
        ):
            self.index[(rtype, ident)] = Known(lid, version, seq, bytes(digest))
        self.units: dict[str, str] = dict(self.db.execute("SELECT hsa_id, name FROM unit"))
        self.guardians: set[str] = {row[0] for row in self.db.execute("SELECT patient_id FROM guardian")}

    def close(self) -> None:
        self.db.close()

    # --- resources ---------------------------------------------------------------------

    def write(self, rows: list[tuple], known: dict[tuple[str, str], Known]) -> None:
        """Store upsert rows (column order of `_UPSERT`) in one transaction, then index them."""
        if not rows:
            return
        self.db.execute("BEGIN")
        try:
            self.db.executemany(_UPSERT, rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.index.update(known)

    def get(self, resource_type: str, ident: str) -> dict | None:
        row = self.db.execute(
            "SELECT body FROM resource WHERE resource_type=? AND ident=?", (resource_type, ident)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def by_unit_and_dates(
        self, unit: str, first: str | None, last: str | None, limit: int, offset: int
    ) -> tuple[int, list[dict]]:
        where = "resource_type='Appointment' AND unit_hsa_id=?"
        params: list = [unit]
        if first:
            where += " AND start_date >= ?"
            params.append(first)
        if last:
            where += " AND start_date <= ?"
            params.append(last)
        total = self.db.execute(f"SELECT count(*) FROM resource WHERE {where}", params).fetchone()[0]  # noqa: S608 - fixed fragments only
        rows = self.db.execute(
            f"SELECT body FROM resource WHERE {where} ORDER BY start_date, ident LIMIT ? OFFSET ?",  # noqa: S608 - fixed fragments only
            [*params, limit, offset],
        ).fetchall()
        return total, [orjson.loads(r[0]) for r in rows]

    def listing(self, resource_type: str | None, limit: int) -> list[dict]:
        sql = "SELECT resource_type, ident, logical_id, version, source_sequence, status, unit_hsa_id, body FROM resource"
        params: list = []
        if resource_type:
            sql += " WHERE resource_type=?"
            params.append(resource_type)
        sql += " ORDER BY resource_type, ident LIMIT ?"
        params.append(limit)
        return [
            {
                "resourceType": r[0],
                "identifier": r[1],
                "id": r[2],
                "version": r[3],
                "source_sequence": r[4],
                "status": r[5],
                "unit_hsa_id": r[6],
                "resource": orjson.loads(r[7]),
            }
            for r in self.db.execute(sql, params)
        ]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT resource_type, count(*) FROM resource GROUP BY resource_type"))

    def clear_resources(self) -> None:
        self.db.execute("DELETE FROM resource")
        self.index.clear()

    # --- units and guardians -------------------------------------------------------------

    def replace_units(self, units: dict[str, str]) -> None:
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM unit")
        self.db.executemany("INSERT INTO unit (hsa_id, name) VALUES (?, ?)", list(units.items()))
        self.db.execute("COMMIT")
        self.units = dict(units)

    def add_guardians(self, patient_ids: set[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO guardian (patient_id) VALUES (?)", [(p,) for p in patient_ids])
        self.guardians |= patient_ids

    def replace_guardians(self, patient_ids: set[str]) -> None:
        self.db.execute("DELETE FROM guardian")
        self.guardians = set()
        self.add_guardians(patient_ids)
