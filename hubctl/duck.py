"""DuckDB connections that never download anything, and SQL over Delta snapshots.

A Delta table is read as its current snapshot's Parquet file list through DuckDB's own
``read_parquet`` (DESIGN.md says why not ``to_pyarrow_dataset``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hubctl.errors import SqlError

if TYPE_CHECKING:  # duckdb (0.08 s of CPU) loads with the first connection: an ingest into a
    import duckdb  # fresh lake never opens one

__all__ = ["OFFLINE", "connect", "lock", "quote_ident", "read_only_statements",
           "restrict", "scan_sql", "scratch", "table_refs", "use_filesystem"]

# Extensions are never installed or loaded behind the user's back (offline first).
OFFLINE = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect(path: str = ":memory:", read_only: bool = False,
            config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with extension auto-install and auto-load switched off (the trusted
    connection of the engine, pipelines and catalog files; ``config`` adds settings)."""
    import duckdb

    con = duckdb.connect(path, read_only=read_only, config=dict(OFFLINE) | (config or {}))
    for fs in _FILESYSTEMS:
        con.register_filesystem(fs)
    with contextlib.suppress(duckdb.Error):  # needs the built-in ICU; harmless without it
        con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


_SCRATCH: duckdb.DuckDBPyConnection | None = None
_FILESYSTEMS: list[Any] = []  # fsspec filesystems every connection reads through


def use_filesystem(fs: Any) -> None:
    """Register fsspec filesystem ``fs`` (e.g. the lake's S3, read-only) with every DuckDB
    connection of this process, those open and those to come: DuckDB then reads
    ``<protocol>://`` paths through it, without an extension to download."""
    if any(f is fs for f in _FILESYSTEMS):
        return
    _FILESYSTEMS.append(fs)
    if _SCRATCH is not None:
        _SCRATCH.register_filesystem(fs)


def scratch() -> duckdb.DuckDBPyConnection:
    """A private connection for internal work on Arrow data (registrations and temp tables are
    its own); a cursor of one shared in-memory database, so it costs microseconds, not 30 ms."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = connect()
    return _SCRATCH.cursor()


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scan_sql(files: Sequence[str], hive: bool = True) -> str:
    """SQL that reads the given Parquet files as one relation (schema unioned by name)."""
    listing = "[" + ", ".join(_literal(f) for f in files) + "]"
    return (f"read_parquet({listing}, hive_partitioning={'true' if hive else 'false'}, "
            "union_by_name=true)")


def restrict(con: duckdb.DuckDBPyConnection, allowed_directories: Sequence[str]) -> None:
    """Make ``con`` the connection for a user's SQL: it reads files under
    ``allowed_directories`` (the lake's table folders) and nothing else; ``ATTACH``,
    ``INSTALL``/``LOAD`` and reads or writes elsewhere fail with a permission error. Call
    :func:`lock` once its views exist, and run user SQL only through
    :func:`read_only_statements`, which refuses writes inside the allowed folders (DuckDB's
    allow-list does not tell reading from writing)."""
    listing = "[" + ", ".join(_literal(d.rstrip("/") + "/") for d in allowed_directories) + "]"
    # DuckDB allows its own spill folder too, by default `.tmp` in the working directory,
    # which would let a query read whatever a user keeps there: a private one instead.
    con.execute(f"SET temp_directory = {_literal(_private_temp())}").fetchall()
    con.execute(f"SET allowed_directories = {listing}").fetchall()
    con.execute("SET enable_external_access = false").fetchall()


@functools.cache
def _private_temp() -> str:
    """This process's own spill folder for restricted connections, removed at exit."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="hubctl-sql-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """Freeze the connection's settings (``SET``, ``RESET``, ``PRAGMA x=y`` then fail)."""
    con.execute("SET lock_configuration = true").fetchall()


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)


def read_only_statements(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The statements of ``sql`` if every one is a query (SELECT, DESCRIBE, SHOW, SUMMARIZE,
    or EXPLAIN of one); else SqlError naming the first statement that is not."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(f"SQL syntax error: {str(exc).strip()}", hint=f"query was: {sql}"
                       ) from None
    if not statements:
        raise SqlError("no SQL statement given", hint='e.g. hubctl sql "SELECT 1"')
    out = []
    for st in statements:
        text = st.query
        if st.type == duckdb.StatementType.EXPLAIN:  # EXPLAIN ANALYZE runs its statement
            inner = _EXPLAIN.sub("", text, count=1)
            kinds = [s.type for s in con.extract_statements(inner)] if inner != text else []
            ok = kinds == [duckdb.StatementType.SELECT]
        else:
            ok = st.type == duckdb.StatementType.SELECT
        if not ok:
            kind = str(st.type).rsplit(".", 1)[-1]
            raise SqlError(
                f"hubctl sql only reads the lake: {kind} statements are refused "
                f"({text.strip()[:80]!r})", hint=_refused_hint(st.type, text))
        out.append(text)
    return out


def _refused_hint(kind: object, text: str) -> str:
    """What to do instead of statement ``text`` that ``read_only_statements`` refuses."""
    import duckdb

    if kind == duckdb.StatementType.MULTI and "pivot" in text.lower():
        return ("DuckDB runs a PIVOT without IN (...) as several statements (it first creates "
                "a type of the distinct values); name the values: "
                "PIVOT t ON col IN ('a', 'b') USING count(*)")
    return ("write results with --output FILE --format csv|json|parquet; change the lake "
            "with hubctl ingest / lake / run")


def table_refs(con: duckdb.DuckDBPyConnection, sql: str) -> set[str] | None:
    """The tables a query names (``name`` or ``schema.name``), from its parse tree alone
    (``json_serialize_sql``: nothing is bound, so no table has to exist); None when DuckDB
    cannot serialise the statement (then every table is needed)."""
    import duckdb

    inner = _EXPLAIN.sub("", sql, count=1)
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [inner]).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
    except (duckdb.Error, TypeError, ValueError):
        return None
    if tree.get("error"):
        return None
    found: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and node.get("table_name"):
                schema = node.get("schema_name") or ""
                found.add(f"{schema}.{node['table_name']}" if schema else node["table_name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
