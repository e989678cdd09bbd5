"""The catalog: DuckDB views over the lake's tables.

Views: ``<Type>`` (every row), ``<Type>_latest`` (newest row per id), ``_runs``, ``_rejects``,
``_pipeline_runs``, and ``derived.<pipeline>_<table>`` (the latest output of each pipeline).
Each view reads its Delta table's current snapshot as a list of Parquet files.

Three kinds of catalog:

- :class:`Catalog` (``Catalog(lake)``): the trusted in-memory connection of the engine and
  pipelines, with every table.
- :meth:`Catalog.for_user` : the connection ``hubctl sql`` runs a user's query on. It opens
  only the tables the query names and may read only their folders; writes, ``ATTACH``,
  extensions and settings are refused (:func:`hubctl.duck.restrict`).
- :func:`write_catalog`: a DuckDB database file for any DuckDB client. The lake remembers it
  (``<lake>/_catalogs.json``) and :func:`refresh_catalogs`, run when a run's ledger row is
  appended (``Lake.append``) and when a hubctl command that changed the lake ends, rewrites
  it, so it stays correct after ingest, compaction and vacuum. It is written for the previous
  DuckDB release's storage format, with paths relative to its own folder unless asked for
  absolute ones.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.duck import (
    connect,
    lock,
    quote_ident,
    read_only_statements,
    restrict,
    scan_sql,
    table_refs,
)
from hubctl.errors import HubError, SqlError, UnknownTable, damaged_table
from hubctl.s3 import LakeRoot, S3Root, arrow_dataset, use_with_duckdb

if TYPE_CHECKING:
    import duckdb

    from hubctl.lake import Lake

__all__ = ["REGISTRY", "STORAGE_COMPATIBILITY", "Catalog", "refresh_catalogs", "translate_error",
           "write_catalog"]

# hubctl.lake.DERIVED; not imported from there because the lake module loads numpy and
# pyarrow, which `hubctl sql` does not need (a test keeps the two equal).
DERIVED = "derived"
# Catalog files are written in the storage format of the previous DuckDB minor release, so
# that the DuckDB CLI or notebook one release behind the Python wheel can open them.
STORAGE_COMPATIBILITY = "v1.5.0"
REGISTRY = "_catalogs.json"  # <lake>/_catalogs.json: catalog files that follow the lake


def translate_error(exc: duckdb.Error, sql: str) -> SqlError:
    """A DuckDB error as a message that says what to do next."""
    import duckdb  # loaded with the first connection (see hubctl.duck)

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
    if isinstance(exc, duckdb.PermissionException):
        return SqlError(f"refused: {text}",
                        hint="hubctl sql reads only the lake's tables; write results with "
                             "--output FILE --format csv|json|parquet")
    return SqlError(text)


@dataclass(frozen=True)
class _Table:
    """A lake table as the catalog names it (``X``, ``_runs``, ``derived.p_t``)."""

    view: str
    folder: LakeRoot

    @property
    def entity(self) -> bool:
        """Entity tables get a ``<Type>_latest`` view."""
        return not self.view.startswith(("_", f"{DERIVED}."))


def _all_tables(lake: Lake) -> list[_Table]:
    """Every table of the lake: entity types, ``_runs``, ``_rejects``, then derived tables."""
    out = [_Table(n, lake.path(n)) for n in lake.table_names()]
    out += [_Table(f"{DERIVED}.{p}_{t}", lake.path(f"{DERIVED}/{p}/{t}"))
            for p, t in lake.derived_names()]
    return out


def _named_tables(root: LakeRoot, names: Iterable[str]) -> list[_Table]:
    """The lake tables that ``names`` (from a query) refer to; ``X_latest`` refers to ``X``.
    Only these folders are looked at, so a query costs the same on a lake of 40 tables."""
    from hubctl.snapshot import committed as is_table

    top = {p.name.lower(): p.name for p in root.iterdir()} if root.is_dir() else {}
    found: dict[str, _Table] = {}
    for name in names:
        low = name.lower().removeprefix("main.")
        if low.startswith(f"{DERIVED}."):
            wanted = low.split(".", 1)[1]
            for table in (root / DERIVED).glob("*/*"):
                view = f"{table.parent.name}_{table.name}"
                if view.lower() == wanted and is_table(table):
                    found[view] = _Table(f"{DERIVED}.{view}", table)
            continue
        for candidate in (low, low.removesuffix("_latest")):
            real = top.get(candidate)
            if real is not None and is_table(root / real):
                found[real] = _Table(real, root / real)
                break
    return list(found.values())


class Catalog:
    """DuckDB views over the lake's current snapshots."""

    def __init__(self, lake: Lake, path: str = ":memory:", *,
                 _con: duckdb.DuckDBPyConnection | None = None,
                 _tables: Sequence[_Table] | None = None, _base: Path | None = None,
                 _persistent: bool = False) -> None:
        self.root = lake.root
        self.con = _con if _con is not None else connect(path)
        self.base = _base  # file paths relative to this folder (catalog files)
        self.persistent = _persistent or path != ":memory:"  # views outlive this process
        self.views: list[str] = []
        self.derived: list[str] = []
        for table in _tables if _tables is not None else _all_tables(lake):
            self._add(table)

    @staticmethod
    def write_database(lake: Lake, path: Path, absolute: bool = False) -> list[str]:
        """Same as :func:`write_catalog`."""
        return write_catalog(lake, path, absolute)

    @classmethod
    def for_user(cls, root: LakeRoot, sql: str) -> tuple[Catalog, list[str]]:
        """The locked-down catalog for a user's ``sql`` and its statements (SqlError if one
        of them is not a query). Only the tables the query names are opened; on S3, DuckDB
        reads them through a read-only filesystem."""
        if not root.is_dir():
            raise HubError(f"no lake at {root}",
                           hint="run `hubctl init` or pass --lake PATH (env HUBCTL_LAKE)")
        if isinstance(root, S3Root):
            use_with_duckdb()
        con = connect()
        try:
            statements = read_only_statements(con, sql)
            names: set[str] | None = set()
            for text in statements:
                refs = table_refs(con, text)
                names = None if refs is None or names is None else names | refs
            tables = _named_tables(root, names) if names is not None else []
            if not tables:  # SHOW TABLES, duckdb_views(), ...: every table
                from hubctl.lake import Lake

                tables = _all_tables(Lake(root))
            restrict(con, [str(t.folder) for t in tables])
            cat = cls(_Root(root), _con=con, _tables=tables)  # type: ignore[arg-type]
        except BaseException:
            con.close()
            raise
        lock(con)  # before the first user statement
        return cat, statements

    def _add(self, table: _Table) -> None:
        from hubctl.snapshot import UnreadableTable, read_snapshot

        try:
            snap = read_snapshot(self.root, table.view, table.folder)
        except UnreadableTable as exc:  # a damaged log: name the table and the way out
            raise damaged_table(table.view, table.folder, exc.__cause__ or exc) from None
        files = snap.files
        if self.base is not None:
            files = [os.path.relpath(f, self.base) for f in files]
        if files and isinstance(table.folder, S3Root) and snap.schema is not None \
                and not self.persistent:  # on S3: a pyarrow dataset, read in C++
            name = f"__snapshot_{len(self.views) + len(self.derived)}"
            self.con.register(name, arrow_dataset(files, snap.schema, snap.partition_by))
            source = f"SELECT * FROM {quote_ident(name)}"
        elif files:
            source = f"SELECT * FROM {scan_sql(files, hive=snap.partitioned)}"
        else:  # a typed empty SELECT (works in a database file, unlike a registration)
            parts = [f"CAST(NULL AS {typ}) AS {quote_ident(col)}" for col, typ in snap.columns]
            source = f"SELECT {', '.join(parts)} WHERE false"
        if table.view.startswith(f"{DERIVED}."):
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {DERIVED}").fetchall()
            name = table.view.split(".", 1)[1]
            self.con.execute(f"CREATE OR REPLACE VIEW {DERIVED}.{quote_ident(name)} AS {source}"
                             ).fetchall()
            self.derived.append(table.view)
            return
        q = quote_ident(table.view)
        self.con.execute(f"CREATE OR REPLACE VIEW {q} AS {source}").fetchall()
        self.views.append(table.view)
        columns = snap.column_names
        if table.entity and {"id", "observed_at"} <= columns:
            latest = quote_ident(f"{table.view}_latest")
            order = "observed_at DESC, _ingested_at DESC" if "_ingested_at" in columns \
                else "observed_at DESC"
            self.con.execute(
                f"CREATE OR REPLACE VIEW {latest} AS SELECT * FROM {q} "
                f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY {order}) = 1").fetchall()
            self.views.append(f"{table.view}_latest")

    def query(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run SQL; returns an Arrow table or raises SqlError with a helpful message."""
        import duckdb

        try:
            return self.con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise translate_error(exc, sql) from None

    def run(self, statements: Sequence[str]) -> duckdb.DuckDBPyConnection:
        """Run statements in order; the returned cursor holds the last one's result."""
        import duckdb

        cursor = self.con
        for text in statements:
            try:
                cursor = self.con.execute(text)
            except duckdb.Error as exc:
                raise translate_error(exc, text) from None
        return cursor

    def arrow(self, statements: Sequence[str]) -> Any:
        """Run statements in order; the last one's result as an Arrow table."""
        self.run(statements[:-1])
        return self.query(statements[-1])

    def require(self, name: str) -> None:
        """Fail with UnknownTable unless ``name`` is a view of this catalog."""
        if name not in self.views:
            raise UnknownTable(f"the lake {self.root} has no table {name!r}",
                               hint="run `hubctl tables` to list them")

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()


@dataclass(frozen=True)
class _Root:
    """A lake seen only as its folder (the user catalog does not load hubctl.lake)."""

    root: LakeRoot


# ---------------------------------------------------------------------- catalog files
def write_catalog(lake: Lake, path: Path, absolute: bool = False) -> list[str]:
    """Write DuckDB database ``path`` with views over the lake's current snapshots and
    register it with the lake, so that later commits rewrite it. Paths in the views are
    relative to the file's folder unless ``absolute``. Returns the view names.

    A lake on S3 is not told about the file (nor does it rewrite it): its views name the
    ``s3://`` files of the snapshot it was written at, which a DuckDB client reads with its
    ``httpfs`` extension; write it again after a commit."""
    if isinstance(lake.root, S3Root):
        return _write(lake, path.resolve(), True)
    state = _state(lake.root)
    views = _write(lake, path.resolve(), absolute)
    entries = [e for e in _registered(lake.root) if _entry_path(lake.root, e) != path.resolve()]
    entries.append({"file": os.path.relpath(path.resolve(), lake.root.resolve()),
                    "absolute": absolute, "state": state})
    _save(lake.root, entries)
    return views


def refresh_catalogs(root: LakeRoot) -> list[Path]:
    """Rewrite every catalog file registered with the lake at ``root`` whose tables changed
    since it was written (a cheap check of the tables' log folders when none did); a file
    that no longer exists is forgotten. Returns the files rewritten (none on S3, where
    catalog files are not registered)."""
    if isinstance(root, S3Root):
        return []
    entries = _registered(root)
    if not entries:
        return []
    try:
        state = _state(root)
    except OSError as exc:  # a table folder went away while we looked: the next commit will do
        print(f"warning: could not check the catalogs of {root}: {exc}", file=sys.stderr)
        return []
    kept, done = [], []
    for entry in entries:
        path = _entry_path(root, entry)
        if not path.exists():
            continue
        if entry.get("state") != state:
            from hubctl.lake import Lake

            try:
                _write(Lake(root), path, bool(entry.get("absolute")))
                entry["state"] = state
                done.append(path)
            except Exception as exc:  # a catalog file must never fail the run that commits
                print(f"warning: could not refresh catalog {path}: {exc}", file=sys.stderr)
        kept.append(entry)
    if kept != entries or done:
        _save(root, kept)
    return done


def _write(lake: Lake, path: Path, absolute: bool) -> list[str]:
    """Write the catalog file next to ``path`` and move it into place in one step: a client
    that has the old file open keeps its views; a new one sees the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    base = None if absolute else path.parent
    config: dict[str, Any] = {"storage_compatibility_version": STORAGE_COMPATIBILITY}
    if base is not None:
        config["file_search_path"] = str(base)  # relative paths resolve from the file's folder
    con = connect(str(tmp), config=config)
    try:
        cat = Catalog(lake, _con=con, _base=base, _persistent=True)
        views = list(cat.views) + list(cat.derived)
        con.execute("CHECKPOINT").fetchall()
    finally:
        con.close()
    os.replace(tmp, path)
    return views


def _state(root: Path) -> str:
    """A fingerprint of the lake's place and of every table's log folder (a commit adds a
    file to it): a moved lake or any commit makes it differ."""
    logs = sorted([*root.glob("*/_delta_log"), *root.glob(f"{DERIVED}/*/*/_delta_log")])
    return ";".join([str(root.resolve()), *(f"{p.parent.relative_to(root)}@{p.stat().st_mtime_ns}"
                                            for p in logs)])


def _registered(root: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((root / REGISTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data.get("catalogs", []) if isinstance(e, dict) and "file" in e]


def _entry_path(root: Path, entry: dict[str, Any]) -> Path:
    return (root / entry["file"]).resolve()


def _save(root: Path, entries: list[dict[str, Any]]) -> None:
    tmp = root / f".{REGISTRY}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"catalogs": entries}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / REGISTRY)
