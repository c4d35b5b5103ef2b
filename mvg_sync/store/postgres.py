"""The state store on PostgreSQL (issue 15, `MVG_STATE_URL=postgresql://…`): a connection with DuckDB's methods over psycopg.

The store's queries are written once, in the subset both engines run (store/types.py
`Connection`): `?` placeholders with a list or `$name` ones with a dict, frames passed with
`register(name, frame)`, DML answering one row with its count, `sql(q, params=…).pl()`.
`PgConnection` gives them that surface on PostgreSQL:

- placeholders are rewritten outside string literals, identifiers and comments, and bound
  on the client (psycopg's `ClientCursor`), so PostgreSQL infers every value's type from
  its place as DuckDB does (`? IS NULL` needs no cast) and a COPY can carry parameters;
- `register` is a temp table filled by binary COPY from the frame; `unregister` drops it;
- `sql(...).pl()` reads the result with `COPY (query) TO STDOUT` as CSV, parsed by Arrow's
  multithreaded reader into typed columns (never row by row); NULL and '' stay apart
  (quoted strings are never NULL);
- `BEGIN` also takes a transaction-scoped advisory lock per schema, so writing transactions
  serialise as they do on the DuckDB file (write_plan's "insert what is not open yet" relies
  on it), with the same bounded wait, notice and `StoreBusy`; readers never wait (MVCC);
- errors are raised as DuckDB's exception classes (a missing table is a CatalogException,
  a key conflict a ConstraintException), so callers that tell them apart stay unchanged.

One schema per region (`?schema=` in the URL, else MVG_STATE_SCHEMA, else `mvg`), chosen
with search_path. Credentials travel only over TLS unless the host is this machine, and the
password is never shown: messages name the URL with it masked.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from mvg_sync.clinic24.baseurl import is_loopback_host

log = logging.getLogger(__name__)

ENV_URL = "MVG_STATE_URL"
ENV_SCHEMA = "MVG_STATE_SCHEMA"
DEFAULT_SCHEMA = "mvg"
CONNECT_TIMEOUT_S = 10
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SECURE_SSLMODES = {"require", "verify-ca", "verify-full"}


class StoreUnreachable(ConnectionError):
    """The PostgreSQL server named by MVG_STATE_URL cannot be used (down, refused, wrong password, no database).

    A ConnectionError (an OSError): like a failing disk under the file store, it is the
    machine's failure, never a verdict on a drop (ingest/faults.py leaves the drop pending).
    """


class BadStateURL(ValueError):
    """MVG_STATE_URL is not a usable PostgreSQL URL, or would send credentials in clear."""


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url.strip()).scheme in ("postgresql", "postgres")


def mask(url: str) -> str:
    """The URL with its password (in the user info or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode(
        [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*/,:",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse(url: str) -> tuple[str, str]:
    """(libpq URL without our own `schema` parameter, schema name), checked: BadStateURL otherwise.

    Credentials go in clear only to this machine: a host that is not loopback (or a Unix
    socket) needs sslmode=require, verify-ca or verify-full; when sslmode is not given there,
    verify-full is used.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        raise BadStateURL(f"{ENV_URL} is not a valid URL ({mask(text)})") from None
    schema = next((v for k, v in query if k == "schema"), None) or os.environ.get(ENV_SCHEMA) or DEFAULT_SCHEMA
    if not _SCHEMA_RE.match(schema):
        raise BadStateURL(
            f"schema {schema!r} from {ENV_URL}/{ENV_SCHEMA} is not a plain lower-case name "
            "(letters, digits, _): choose one such as `gavleborg`"
        )
    query = [(k, v) for k, v in query if k != "schema"]
    libpq_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    try:
        info = psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.ProgrammingError as exc:
        raise BadStateURL(f"{ENV_URL} {mask(text)} is not a valid PostgreSQL URL: {_first_line(exc)}") from None
    hosts = [h for h in str(info.get("host") or "").split(",") if h]
    remote = [h for h in hosts if not (h.startswith("/") or is_loopback_host(h))]
    sslmode = str(info.get("sslmode") or "")
    if remote and sslmode and sslmode not in _SECURE_SSLMODES:
        raise BadStateURL(
            f"refusing sslmode={sslmode} to {remote[0]}: the database password would travel unencrypted; "
            f"set sslmode=verify-full (or require) in {ENV_URL}, or leave it out"
        )
    if remote and not sslmode:
        sep = "&" if urlsplit(libpq_url).query else "?"
        libpq_url += f"{sep}sslmode=verify-full"
    return libpq_url, schema


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _unreachable(exc: psycopg.OperationalError, shown: str) -> StoreUnreachable:
    """One line naming MVG_STATE_URL and what to do, by what libpq said."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        why, fix = "the password was refused", f"set the right password in {ENV_URL} (or its Secret block)"
    elif "does not exist" in low and "database" in low:
        why = re.search(r'database "[^"]*" does not exist', text)
        why = why.group(0) if why else "the database does not exist"
        fix = f"create it (createdb) or name an existing database in {ENV_URL}"
    elif "role" in low and "does not exist" in low:
        why, fix = "the user does not exist", f"create the role or fix the user in {ENV_URL}"
    elif "connection refused" in low:
        why, fix = "connection refused", f"check that PostgreSQL runs there and {ENV_URL} names its host and port"
    elif "timeout" in low or "timed out" in low:
        why, fix = f"no answer in {CONNECT_TIMEOUT_S} s", f"check the host in {ENV_URL} and the network to it"
    elif "ssl" in low or "certificate" in low:
        why, fix = "TLS failed", f"check the server's certificate, or sslmode/sslrootcert in {ENV_URL}"
    elif "could not translate host name" in low:
        why, fix = "unknown host", f"check the host name in {ENV_URL}"
    else:
        why, fix = _first_line(exc)[:200], f"check {ENV_URL} and the server"
    return StoreUnreachable(f"state store {ENV_URL}={shown} unusable: {why} — {fix}")


# psycopg's error -> the DuckDB class callers already catch (by SQLSTATE class).
_ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (pgerrors.UndefinedTable, duckdb.CatalogException),
    (pgerrors.UndefinedColumn, duckdb.BinderException),
    (pgerrors.UndefinedFunction, duckdb.CatalogException),
    (pgerrors.InvalidSchemaName, duckdb.CatalogException),
    (pgerrors.IntegrityError, duckdb.ConstraintException),
    (pgerrors.SyntaxError, duckdb.ParserException),
    (pgerrors.DataError, duckdb.ConversionException),
    (pgerrors.InFailedSqlTransaction, duckdb.TransactionException),
    (pgerrors.ReadOnlySqlTransaction, duckdb.InvalidInputException),
    (pgerrors.DiskFull, duckdb.IOException),
    (pgerrors.OutOfMemory, duckdb.OutOfMemoryException),
    (psycopg.OperationalError, duckdb.ConnectionException),
)


def _as_duckdb(exc: psycopg.Error) -> Exception:
    for pg_class, duck_class in _ERRORS:
        if isinstance(exc, pg_class):
            return duck_class(f"PostgreSQL: {_first_line(exc)}")
    return duckdb.Error(f"PostgreSQL: {_first_line(exc)}")


# --- placeholders -------------------------------------------------------------------------

_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")


def _cast(value: object) -> str:
    """A list of strings is VARCHAR[] to DuckDB; psycopg sends it untyped (`unnest(?)` would be
    ambiguous), so its placeholder gets the cast DuckDB implies."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "::text[]"
    return ""


def translate(query: str, params: Sequence[object] | dict[str, object] | None) -> tuple[str, Any]:
    """A query with DuckDB's placeholders (`?`, `$1`, `$name`) in psycopg's form (`%s`, `%(name)s`).

    Only outside '…' strings, "…" identifiers, -- and /* */ comments and $tag$ quotes. With
    parameters, every `%` is doubled (psycopg reads them everywhere). Without, the query is
    sent as it is.
    """
    if params is None:
        return query, None
    out: list[str] = []
    numbered: dict[str, object] = {}
    positional = 0
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c == "%":
            out.append("%%")
            i += 1
        elif c == "'" or c == '"':
            escapes = c == "'" and i > 0 and query[i - 1] in "eE" and (i < 2 or not query[i - 2].isalnum())
            j = i + 1
            while j < n:
                if escapes and query[j] == "\\":
                    j += 2
                    continue
                if query[j] == c:
                    if j + 1 < n and query[j + 1] == c:  # '' inside a string
                        j += 2
                        continue
                    break
                j += 1
            out.append(query[i : j + 1].replace("%", "%%"))
            i = j + 1
        elif query.startswith("--", i):
            j = query.find("\n", i)
            j = n if j < 0 else j
            out.append(query[i:j].replace("%", "%%"))
            i = j
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(query[i:j].replace("%", "%%"))
            i = j
        elif c == "?":
            if not isinstance(params, Sequence) or isinstance(params, str):
                raise duckdb.InvalidInputException("a query with ? placeholders takes a list of parameters")
            out.append("%s" + _cast(params[positional] if positional < len(params) else None))
            positional += 1
            i += 1
        elif c == "$":
            digits = _DIGITS.match(query, i + 1)
            ident = _IDENT.match(query, i + 1) if _IDENT_START.match(query, i + 1) else None
            if digits:  # $1: DuckDB's numbered parameter, 1-based into the list
                if not isinstance(params, Sequence) or isinstance(params, str):
                    raise duckdb.InvalidInputException("a query with $1 placeholders takes a list of parameters")
                number = int(digits.group(0))
                if not 1 <= number <= len(params):
                    raise duckdb.InvalidInputException(f"${number} has no parameter (given {len(params)})")
                numbered[f"_{number}"] = params[number - 1]
                out.append(f"%(_{number})s" + _cast(params[number - 1]))
                i = digits.end()
            elif ident and not query.startswith("$", ident.end()):  # $name (not a $tag$ quote)
                if not isinstance(params, dict):
                    raise duckdb.InvalidInputException("a query with $name placeholders takes a dict of parameters")
                out.append(f"%({ident.group(0)})s" + _cast(params.get(ident.group(0))))
                i = ident.end()
            else:  # $$ or $tag$: a dollar-quoted string, copied whole
                tag_end = query.find("$", i + 1)
                if tag_end < 0 or (ident is None and tag_end != i + 1):  # a lone $: not ours
                    out.append(c)
                    i += 1
                    continue
                tag = query[i : tag_end + 1]
                j = query.find(tag, tag_end + 1)
                j = n if j < 0 else j + len(tag)
                out.append(query[i:j].replace("%", "%%"))
                i = j
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    if numbered:
        return text, numbered
    if positional:
        if len(params) != positional:  # type: ignore[arg-type]
            raise duckdb.InvalidInputException(f"{positional} ? placeholders but {len(params)} parameters")  # type: ignore[arg-type]
        return text, list(params)  # type: ignore[arg-type]
    if isinstance(params, dict) and params:
        return text, params
    return query, None  # no placeholders: the query goes as written (no %% doubling)


# --- reading ------------------------------------------------------------------------------


class _NumberLoader(Loader):
    """numeric as DuckDB answers it: an int when integral (sum of BIGINT), else a float (avg, epoch)."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        if "." in text or "e" in text.lower() or text in ("NaN", "Infinity", "-Infinity"):
            return float(text)
        return int(text)


class _TextLoader(Loader):
    """json/jsonb as text, as DuckDB gives it (callers json.loads it themselves)."""

    def load(self, data: Any) -> str:
        return bytes(data).decode()


# PostgreSQL type oid -> the Arrow type its CSV text is parsed into (DuckDB's .pl() types).
_ARROW_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
    700: pa.float32(), 701: pa.float64(), 1700: pa.float64(),
    1082: pa.date32(), 1083: pa.time64("us"), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", "UTC"),
}


def _arrow_from_copy(data: bytes, names: list[str], oids: list[int]) -> pa.Table:
    types = [_ARROW_BY_OID.get(oid, pa.string()) for oid in oids]
    if not data:
        return pa.table([pa.array([], t) for t in types], names=names)
    columns = [f"c{k}" for k in range(len(names))]
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=columns, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(columns, types, strict=True)), null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"],
        ),
    )
    return table.rename_columns(names)


class PgResult:
    """What `PgConnection.execute` returns: rows fetched once (DML: one row with its count, as DuckDB)."""

    def __init__(self, cursor: psycopg.Cursor | None = None) -> None:
        self.description = None if cursor is None else cursor.description
        if cursor is None:
            self._rows: list[tuple] = []
        elif cursor.description is not None:
            self._rows = cursor.fetchall()
        else:
            verb = (cursor.statusmessage or "").split(" ", 1)[0]
            self._rows = [(cursor.rowcount,)] if verb in ("INSERT", "UPDATE", "DELETE", "MERGE") else []
        self._at = 0

    def fetchone(self) -> tuple | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int = 1) -> list[tuple]:
        rows = self._rows[self._at : self._at + size]
        self._at += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._rows[self._at :]
        self._at = len(self._rows)
        return rows

    def pl(self) -> pl.DataFrame:
        """Small results only (rows are in hand already); read big ones with `sql(...).pl()`."""
        names = [d.name for d in self.description or []]
        return pl.DataFrame(self._rows[self._at :], schema=names, orient="row", infer_schema_length=None)


class PgRelation:
    """What `PgConnection.sql` returns: the query, run when read (`pl()`/`arrow()` through COPY)."""

    def __init__(self, con: PgConnection, query: str, params: Any) -> None:
        self._con, self._query, self._params = con, query, params

    def arrow(self) -> pa.Table:
        return self._con._copy_out(self._query, self._params)

    def pl(self) -> pl.DataFrame:
        return pl.from_arrow(self.arrow())  # type: ignore[return-value]

    def fetchall(self) -> list[tuple]:
        return self._con.execute(self._query, self._params).fetchall()

    def fetchone(self) -> tuple | None:
        return self._con.execute(self._query, self._params).fetchone()


# --- registering frames -------------------------------------------------------------------


def _pg_type(name: str, dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype in (pl.Int8, pl.Int16, pl.UInt8):
        return "smallint"
    if dtype in (pl.Int32, pl.UInt16):
        return "integer"
    if dtype in (pl.Int64, pl.UInt32, pl.UInt64):
        return "bigint"
    if dtype in (pl.Float32, pl.Float64):
        return "double precision"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Time:
        return "time"
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Duration):
        return "interval"
    if isinstance(dtype, pl.Decimal):
        return "numeric"
    if dtype == pl.Binary:
        return "bytea"
    if dtype in (pl.String, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum):
        return "text"
    raise duckdb.InvalidInputException(f"column {name!r} of type {dtype} cannot be passed to PostgreSQL; cast it first")


def _as_polars(obj: object) -> pl.DataFrame:
    if isinstance(obj, pl.DataFrame):
        return obj
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    if isinstance(obj, pa.Table | pa.RecordBatch):
        return pl.from_arrow(obj)  # type: ignore[return-value]
    if type(obj).__module__.startswith("pandas"):
        return pl.from_pandas(obj)  # type: ignore[arg-type]
    raise duckdb.InvalidInputException(f"cannot register a {type(obj).__name__} on PostgreSQL (a Polars or Arrow frame)")


# --- the connection -----------------------------------------------------------------------

_BEGIN = re.compile(r"^\s*(BEGIN|START)(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_ROLLBACK = re.compile(r"^\s*(ROLLBACK|ABORT)(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_CHECKPOINT = re.compile(r"^\s*(CHECKPOINT|FORCE\s+CHECKPOINT)\s*;?\s*$", re.IGNORECASE)
_READS = re.compile(r"^\s*(\(|SELECT|WITH|VALUES|TABLE|FROM)\b", re.IGNORECASE)


def _lock_key(schema: str) -> int:
    """The advisory lock that serialises one schema's writing transactions (a signed 64-bit key)."""
    return int.from_bytes(hashlib.sha256(f"mvg-sync:{schema}".encode()).digest()[:8], "big", signed=True)


class PgConnection:
    """DuckDB's connection surface over one psycopg connection (autocommit; BEGIN/COMMIT as SQL)."""

    dialect = "postgresql"

    def __init__(
        self, raw: psycopg.Connection, *, schema: str, where: str, read_only: bool,
        wait_s: float, notice: Callable[[str], None] | None = None,
    ) -> None:
        self.raw = raw
        self.schema = schema
        self.where = where  # the masked URL and schema, for messages
        self.read_only = read_only
        self.wait_s = wait_s
        self._notice = notice
        self._last: PgResult | None = None
        self._drop_after_rollback: set[str] = set()

    # DuckDB's connection is its own cursor: con.execute(q); con.fetchall()
    def fetchone(self) -> tuple | None:
        return self._last.fetchone() if self._last else None

    def fetchall(self) -> list[tuple]:
        return self._last.fetchall() if self._last else []

    def execute(self, query: str, parameters: Sequence[object] | dict[str, object] | None = None) -> PgResult:
        if _BEGIN.match(query):
            self._begin()
        elif _ROLLBACK.match(query):
            self.rollback()
        elif _CHECKPOINT.match(query):  # autovacuum reclaims the space; CHECKPOINT needs pg_checkpoint
            pass
        else:
            text, params = translate(query, parameters)
            self._last = PgResult(self._run(text, params))
            return self._last
        self._last = PgResult()
        return self._last
        self._last = PgResult(self._run(text, params))
        return self._last

    def executemany(self, query: str, parameters: Sequence[Sequence[object]]) -> PgConnection:
        rows = list(parameters)
        if rows:
            text, _ = translate(query, rows[0])
            try:
                with self.raw.cursor() as cur:
                    cur.executemany(text, [translate(query, r)[1] for r in rows])
            except psycopg.Error as exc:
                raise self._error(exc) from exc
        return self

    def sql(self, query: str, *, params: Sequence[object] | dict[str, object] | None = None) -> PgRelation:
        if not _READS.match(query):  # DuckDB runs a statement given to sql() at once
            self.execute(query, params)
        return PgRelation(self, query, params)

    def query(self, query: str) -> PgRelation:
        return self.sql(query)

    def _run(self, text: str, params: Any) -> psycopg.Cursor:
        try:
            return self.raw.execute(text, params)
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: psycopg.Error) -> Exception:
        lost = isinstance(exc, psycopg.OperationalError) and (
            self.raw.closed or exc.sqlstate is None or exc.sqlstate.startswith("08")
            or exc.sqlstate in ("57P01", "57P02", "57P03")  # the server shut down or restarts
        )
        if lost:
            return StoreUnreachable(
                f"state store {ENV_URL}={self.where} lost its connection ({_first_line(exc)}) — check that "
                "the server is up and reachable, then run again; nothing uncommitted was kept"
            )
        return _as_duckdb(exc)

    # transactions ---------------------------------------------------------------------------
    def begin(self) -> PgConnection:
        self._begin()
        return self

    def _begin(self) -> None:
        self._run("BEGIN", None)
        if self.read_only:
            return
        from mvg_sync.store import NOTICE_AFTER_S, StoreBusy

        key = _lock_key(self.schema)
        started = time.monotonic()
        pause, noticed = 0.02, False
        while not self._run("SELECT pg_try_advisory_xact_lock(%s)", [key]).fetchone()[0]:
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                self.rollback()
                raise StoreBusy(
                    f"state store {self.where} stayed busy with another process's write for {self.wait_s:.0f} s; "
                    "nothing was changed: try again when that run ends (`mvg-sync status` shows it)"
                )
            if waited >= NOTICE_AFTER_S and not noticed:
                (self._notice or log.warning)(
                    f"state store {self.where} is being written by another process (a sync run?); "
                    f"waiting up to {self.wait_s:.0f} s"
                )
                noticed = True
            time.sleep(pause)
            pause = min(pause * 1.5, 0.1)

    def commit(self) -> PgConnection:
        self._run("COMMIT", None)
        return self

    def rollback(self) -> PgConnection:
        """Never raises: it runs while another error is on its way up (store.transaction)."""
        try:
            if self.raw.info.transaction_status != TransactionStatus.IDLE:
                self.raw.execute("ROLLBACK")
            for name in sorted(self._drop_after_rollback):
                self.raw.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))
            self._drop_after_rollback.clear()
        except psycopg.Error as exc:
            log.debug("ROLLBACK on %s failed: %s", self.where, _first_line(exc))
        return self

    # frames ---------------------------------------------------------------------------------
    def register(self, view_name: str, python_object: object) -> PgConnection:
        """The frame as a temp table `view_name` (replacing one of that name), filled by binary COPY."""
        frame = _as_polars(python_object)
        frame = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Categorical or isinstance(t, pl.Enum)
        )
        types = [_pg_type(c, t) for c, t in frame.schema.items()]
        table = sql.Identifier(view_name)
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(frame.columns, types, strict=True)
        )
        try:
            with self._temp_ddl():
                self.raw.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(table))
                self.raw.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(table, columns))
            if frame.height:
                with self.raw.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table)) as copy:
                    copy.set_types(types)
                    for row in frame.iter_rows():
                        copy.write_row(row)
                if frame.height >= 1000:  # temp tables get no autovacuum statistics: join plans need them
                    with self._temp_ddl():
                        self.raw.execute(sql.SQL("ANALYZE {}").format(table))
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return self

    def unregister(self, view_name: str) -> PgConnection:
        if self.raw.info.transaction_status == TransactionStatus.INERROR:
            # the failed transaction's ROLLBACK comes next: drop it then, not now (that would
            # raise over the error that is on its way up)
            self._drop_after_rollback.add(view_name)
            return self
        with self._temp_ddl():
            self._run(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(view_name)).as_string(self.raw), None)
        return self

    @contextmanager
    def _temp_ddl(self) -> Iterator[None]:
        """Let a read-only session create and drop a registered frame's temp table.

        PostgreSQL refuses every CREATE and DROP in a read-only transaction, temp tables
        included (found by the concurrency test on PostgreSQL: `status` registers the statuses
        it counts). The table is this session's own, so outside a transaction the read-only
        default is lifted for just these statements; inside one it cannot be, and PostgreSQL's
        error stands (no read path registers a frame inside a transaction).
        """
        lift = self.read_only and self.raw.info.transaction_status == TransactionStatus.IDLE
        if lift:
            self.raw.execute("SET default_transaction_read_only = off")
        try:
            yield
        finally:
            if lift:
                self.raw.execute("SET default_transaction_read_only = on")

    def _copy_out(self, query: str, params: Any) -> pa.Table:
        text, bound = translate(query.strip().rstrip(";"), params)
        try:
            with self.raw.cursor() as cur:
                if bound is not None:
                    text = cur.mogrify(text, bound)
                # the store's own query, its values already bound as literals by mogrify
                cur.execute(f"SELECT * FROM ({text}) AS _mvg_q LIMIT 0")  # noqa: S608
                names = [d.name for d in cur.description or []]
                oids = [d.type_code for d in cur.description or []]
                chunks = io.BytesIO()
                with cur.copy(f"COPY ({text}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)") as copy:
                    for data in copy:
                        chunks.write(data)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return _arrow_from_copy(chunks.getvalue(), names, oids)

    # lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_raw(libpq_url: str, shown: str) -> psycopg.Connection:
    try:
        raw = psycopg.connect(
            libpq_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, cursor_factory=psycopg.ClientCursor,
            application_name="mvg-sync", options="-c TimeZone=UTC",
        )
    except psycopg.OperationalError as exc:
        raise _unreachable(exc, shown) from None
    except psycopg.ProgrammingError as exc:  # a malformed URL libpq only sees now
        raise BadStateURL(f"{ENV_URL} {shown} is not a valid PostgreSQL URL: {_first_line(exc)}") from None
    raw.adapters.register_loader("numeric", _NumberLoader)
    for name in ("json", "jsonb"):
        raw.adapters.register_loader(name, _TextLoader)
    return raw


def schema_exists(con: PgConnection) -> bool:
    return con.raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [con.schema]).fetchone() is not None


def open_connection(
    url: str, *, read_only: bool = False, wait_s: float = 300.0, notice: Callable[[str], None] | None = None,
    create: bool = True,
) -> PgConnection:
    """A connection to the region's schema (created when writing and missing), not yet migrated."""
    libpq_url, schema = parse(url)
    shown = f"{mask(url)} (schema {schema})"
    raw = _open_raw(libpq_url, mask(url))
    con = PgConnection(raw, schema=schema, where=shown, read_only=read_only, wait_s=wait_s, notice=notice)
    try:
        if create and not read_only and not schema_exists(con):
            try:
                raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            except pgerrors.UniqueViolation:  # another process created it at the same moment
                pass
        raw.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        if read_only:
            raw.execute("SET default_transaction_read_only = on")
        return con
    except psycopg.Error as exc:
        error = con._error(exc)
        raw.close()
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            raise StoreUnreachable(
                f"state store {ENV_URL}={shown}: permission denied ({_first_line(exc)}) — grant the user CREATE "
                f"on the database, or create schema {schema} for it"
            ) from None
        raise error from exc


def connect(
    url: str, *, read_only: bool = False, wait_s: float | None = None, notice: Callable[[str], None] | None = None,
) -> PgConnection:
    """The region's store on PostgreSQL, upgraded to the current schema (`mvg_sync.store.connect` dispatches here).

    Read-only: `NoStore` when the schema holds no store yet (nothing is created). Writing:
    the schema is created and migrated when needed. `StoreTooNew` when a newer release wrote it.
    """
    from mvg_sync.store import READ_WAIT_S, WRITE_WAIT_S, NoStore
    from mvg_sync.store.migrations import CURRENT, check_not_newer, upgrade, version

    wait = (READ_WAIT_S if read_only else WRITE_WAIT_S) if wait_s is None else wait_s
    con = open_connection(url, read_only=read_only, wait_s=wait, notice=notice)
    try:
        if read_only and not schema_exists(con):
            raise NoStore(f"no state yet at {con.where}")
        found = version(con)
        check_not_newer(found, con.where)
        if found < CURRENT:
            if read_only:
                with connect(url, wait_s=wait_s, notice=notice):
                    pass  # upgraded by the writing open
            else:
                upgrade(con, con.where)
        return con
    except BaseException:
        con.close()
        raise


def exists(url: str) -> bool:
    """Whether the region's schema holds a store (what a missing state.duckdb means for the file store)."""
    con = open_connection(url, read_only=True, create=False)
    try:
        return schema_exists(con) and con.raw.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f"{con.schema}.schema_version"]
        ).fetchone()[0]
    finally:
        con.close()

