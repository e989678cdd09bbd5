"""DuckDB connections that never download anything, and SQL over Delta snapshots.

A Delta table is read as its current snapshot's Parquet file list through DuckDB's own
``read_parquet`` (DESIGN.md says why not ``to_pyarrow_dataset``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import duckdb

__all__ = ["OFFLINE", "connect", "quote_ident", "scan_sql", "scratch"]

# Extensions are never installed or loaded behind the user's back (offline first).
OFFLINE = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect(path: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with extension auto-install and auto-load switched off."""
    con = duckdb.connect(path, read_only=read_only, config=dict(OFFLINE))
    with contextlib.suppress(duckdb.Error):  # needs the built-in ICU; harmless without it
        con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


_SCRATCH: duckdb.DuckDBPyConnection | None = None


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
