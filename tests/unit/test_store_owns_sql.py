"""Issue 13.1: only the store package runs SQL on the state store, and its SQL is the portable subset."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("mvg_sync", "flows", "tasks")
STORE = "mvg_sync/store/"
CALLS = {"execute", "executemany", "sql", "register", "unregister"}

# Modules outside the store that may call those methods, each for a reason:
ALLOWED = {
    # in-memory compute connections, not the store: reading a drop's CSV on ingest's
    # store.work_connection, and hashing rows in a private duckdb.connect()
    "mvg_sync/ingest/reader.py",
    "mvg_sync/rules/booking_scope.py",
}
ALLOWED_DIRS = (
    "mvg_sync/clinic24/sandbox/",  # the Clinic24 sandbox's own store, a different database
)

# DuckDB-only SQL that PostgreSQL 15 does not run (see the store package docstring).
NOT_PORTABLE = {
    "INSERT OR REPLACE": re.compile(r"\bINSERT\s+OR\s+(REPLACE|IGNORE)\b", re.I),
    "epoch(x)": re.compile(r"\bepoch(_ms)?\s*\(", re.I),
    "quantile_cont/quantile_disc": re.compile(r"\bquantile(_cont|_disc)?\s*\(", re.I),
    "QUALIFY": re.compile(r"\bQUALIFY\b", re.I),
    "list parameter ?::TYPE[]": re.compile(r"::\s*\w+\s*\[\]"),
    "unnest": re.compile(r"\bunnest\s*\(", re.I),
    "list functions": re.compile(r"\b(list_\w+|array_agg|list)\s*\(", re.I),
    "GROUP/ORDER BY ALL": re.compile(r"\b(GROUP|ORDER)\s+BY\s+ALL\b", re.I),
    "DuckDB JSON functions": re.compile(r"\bjson_(extract\w*|transform\w*|keys|value)\s*\(", re.I),
    "numbered placeholders $1": re.compile(r"\$\d"),
    "read_parquet/read_csv": re.compile(r"\bread_(parquet|csv\w*)\s*\(", re.I),
}
# The store's query modules; store/__init__.py is the DuckDB opener itself (SET, duckdb_databases()).
QUERY_MODULES = ("drops.py", "outbox.py", "queries.py", "maintenance.py", "migrations.py", "types.py")


def sql_calls(source: str) -> list[tuple[int, str]]:
    """(line, method) of every `<expr>.execute/.executemany/.sql/.register/.unregister(...)` call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS:
            found.append((node.lineno, node.func.attr))
    return found


def allowed(relative: str) -> bool:
    return relative.startswith(STORE) or relative in ALLOWED or relative.startswith(ALLOWED_DIRS)


def violations(root: Path) -> list[str]:
    out = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if allowed(relative):
                continue
            out += [f"{relative}:{line} .{name}(" for line, name in sql_calls(path.read_text(encoding="utf-8"))]
    return out


def strings(source: str) -> list[tuple[int, str]]:
    return [(n.lineno, n.value) for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def non_portable(source: str) -> list[str]:
    """`line: token` for every string literal with DuckDB-only SQL (docstrings included: they
    would only mislead a reader)."""
    return [f"{line}: {name}" for line, text in strings(source)
            for name, pattern in NOT_PORTABLE.items() if pattern.search(text)]


def test_no_module_outside_the_store_runs_sql_on_it():
    assert violations(ROOT) == []


def test_the_scan_finds_a_planted_call(tmp_path):
    for top in SCANNED:
        (tmp_path / top).mkdir()
    (tmp_path / "mvg_sync" / "statusview.py").write_text(
        "def f(con):\n    return con.execute('SELECT 1').fetchone()\n", encoding="utf-8")
    (tmp_path / "flows" / "x.py").write_text("def g(con, f):\n    con.register('t', f)\n", encoding="utf-8")
    (tmp_path / "mvg_sync" / "store").mkdir()
    (tmp_path / "mvg_sync" / "store" / "ok.py").write_text("def h(con):\n    con.sql('SELECT 1')\n")
    assert violations(tmp_path) == ["mvg_sync/statusview.py:2 .execute(", "flows/x.py:2 .register("]


def test_store_sql_is_the_portable_subset():
    found = {name: non_portable((ROOT / STORE / name).read_text(encoding="utf-8")) for name in QUERY_MODULES}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_the_token_check_finds_duckdb_only_sql():
    planted = '''
A = "INSERT OR REPLACE INTO sync_runs VALUES (?, ?)"
B = "SELECT quantile_cont(s, 0.95), epoch(settled_at) FROM outbox"
C = "SELECT key FROM outbox QUALIFY row_number() OVER (PARTITION BY key) = 1"
D = "SELECT * FROM t WHERE key IN (SELECT unnest(?::VARCHAR[]))"
E = "SELECT a, count(*) FROM t GROUP BY ALL"
F = "SELECT * FROM t WHERE a = $1"
OK = "SELECT extract(epoch FROM s), percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM t WHERE a = $name"
'''
    hits = non_portable(planted)
    assert all(not h.startswith("8:") for h in hits), hits  # the portable forms pass
    names = {h.split(": ", 1)[1] for h in hits}
    assert names == {"INSERT OR REPLACE", "quantile_cont/quantile_disc", "epoch(x)", "QUALIFY", "unnest",
                     "list parameter ?::TYPE[]", "GROUP/ORDER BY ALL", "numbered placeholders $1"}
