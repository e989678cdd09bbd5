"""The catalog: a DuckDB connection with one view per lake table.

Views: ``<Type>`` (every row), ``<Type>_latest`` (newest row per id), ``_runs``, ``_rejects``,
``_pipeline_runs``, and ``derived.<pipeline>_<table>`` (the latest output of each pipeline).
Each view reads its Delta table's current snapshot as a list of Parquet files, so any DuckDB
client can do the same without hubctl (``hubctl catalog FILE.duckdb`` writes such views).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hubctl.duck import connect, quote_ident, scan_sql
from hubctl.errors import SqlError, UnknownTable
from hubctl.lake import DERIVED, Lake
from hubctl.registry import registry

__all__ = ["Catalog", "translate_error"]


def translate_error(exc: duckdb.Error, sql: str) -> SqlError:
    """A DuckDB error as a message that says what to do next."""
    text = str(exc).strip()
    missing = re.search(r"Table with name (\S+) does not exist", text)
    if isinstance(exc, duckdb.CatalogException) and missing:
        name = missing.group(1)
        return UnknownTable(f"unknown table {name}",
                            hint="run `hubctl tables` to list the tables of this lake")
    if isinstance(exc, duckdb.ParserException):
        return SqlError(f"SQL syntax error: {text}", hint=f"query was: {sql}")
    if isinstance(exc, duckdb.BinderException):
        return SqlError(f"{text}", hint="`hubctl tables --json` lists each table's columns")
    return SqlError(text)


class Catalog:
    """DuckDB views over the lake's current snapshots."""

    def __init__(self, lake: Lake, path: str = ":memory:") -> None:
        self.lake = lake
        self.con = connect(path)
        self.views: list[str] = []
        for name in lake.table_names():
            self._add(name)
        self.derived: list[str] = []
        for pipeline, table in lake.derived_names():
            self._add_derived(pipeline, table)

    def _add_derived(self, pipeline: str, table: str) -> None:
        """``derived.<pipeline>_<table>``: the latest output of a pipeline."""
        source = self._snapshot(f"{DERIVED}/{pipeline}/{table}", hive=False)
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {DERIVED}").fetchall()
        name = f"{pipeline}_{table}"
        self.con.execute(f"CREATE OR REPLACE VIEW {DERIVED}.{quote_ident(name)} AS {source}"
                         ).fetchall()
        self.derived.append(f"{DERIVED}.{name}")

    def _snapshot(self, name: str, hive: bool) -> str:
        """SELECT over table ``name``'s current Parquet files (typed and empty when none)."""
        files = self.lake.files(name)
        if files:
            return f"SELECT * FROM {scan_sql(files, hive=hive)}"
        return self._empty_select(self.lake.schema(name))

    def _add(self, name: str) -> None:
        q = quote_ident(name)
        source = self._snapshot(name, hive=name in registry())
        self.con.execute(f"CREATE OR REPLACE VIEW {q} AS {source}").fetchall()
        self.views.append(name)
        et = registry().get(name)
        if et is not None:
            latest = quote_ident(f"{name}_latest")
            self.con.execute(
                f"CREATE OR REPLACE VIEW {latest} AS SELECT * FROM {q} "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY observed_at DESC, "
                "_ingested_at DESC) = 1").fetchall()
            self.views.append(f"{name}_latest")

    def _empty_select(self, schema: pa.Schema) -> str:
        """A typed empty SELECT (works in a persistent database file, unlike a registration)."""
        self.con.register("__schema_probe", pa.Table.from_batches([], schema=schema))
        cols = self.con.execute("DESCRIBE SELECT * FROM __schema_probe").fetchall()
        self.con.unregister("__schema_probe")
        parts = [f"CAST(NULL AS {typ}) AS {quote_ident(col)}" for col, typ, *_ in cols]
        return f"SELECT {', '.join(parts)} WHERE false"

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL; returns an Arrow table or raises SqlError with a helpful message."""
        try:
            return self.con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise translate_error(exc, sql) from None

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation:
        """A lazy relation (for COPY to files)."""
        try:
            return self.con.sql(sql)
        except duckdb.Error as exc:
            raise translate_error(exc, sql) from None

    def require(self, name: str) -> None:
        """Fail with UnknownTable unless ``name`` is a view of this catalog."""
        if name not in self.views:
            raise UnknownTable(f"the lake {self.lake.root} has no table {name!r}",
                               hint="run `hubctl tables` to list them")

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

    @staticmethod
    def write_database(lake: Lake, path: Path) -> list[str]:
        """Write a DuckDB database file whose views point at the current snapshots."""
        if path.exists():
            path.unlink()
        cat = Catalog(lake, str(path))
        try:
            return list(cat.views) + list(cat.derived)
        finally:
            cat.close()
