"""The lake: one Delta table per entity type under ``<lake>/<Type>/``, plus ``_runs`` and
``_rejects``. A thin wrapper around ``deltalake``; nothing else in hubctl calls it directly.

Upserts are idempotent on the key (id, observed_at): each incoming row is classified against
the current snapshot as new, updated (a known attribute changes value), filled (it adds
attributes the stored row lacked) or duplicate, and only new, updated and filled rows are
merged. Attributes merge cell by cell: a null in the incoming row keeps the stored value.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from hubctl.deltafiles import append_files, can_append_files
from hubctl.duck import quote_ident, scan_sql, scratch
from hubctl.errors import DuplicateKeys, HubError, UnknownTable, UsageError, damaged_table
from hubctl.locks import fence, table_commit
from hubctl.registry import PROVENANCE, EntityType
from hubctl.s3 import LakeRoot, S3Root, delta_options, use_with_duckdb
from hubctl.snapshot import committed as _committed

if TYPE_CHECKING:
    from hubctl.lease import Fence

__all__ = ["Lake", "Snapshot", "UpsertResult", "conform"]

CLASSES = ("new", "updated", "filled", "duplicate")  # coded 0..3 in the class column
NEW, DUPLICATE = 0, 3
_DATE_DIR = re.compile(r"[/\\]date=(\d{4}-\d{2}-\d{2})[/\\]")
_MERGE_RETRIES = 8
DERIVED = "derived"  # <lake>/derived/<pipeline>/<table>/: tables that pipelines write
_LEDGERS = ("_runs", "_pipeline_runs")  # each run ends with a commit to one of them
# Ledgers: each run commits only its own row, true whatever became of its leases (a run
# refused a commit records itself failed), so their commits are not fenced.
_OWN_ROWS = (*_LEDGERS, "_exports")


@dataclass(frozen=True)
class Snapshot:
    """One version of a table: what time travel to it gives."""

    name: str
    version: int
    committed_at: datetime | None
    files: list[str]
    schema: pa.Schema


@dataclass
class UpsertResult:
    """Rows of one upsert by class, each weighted by the input records it stands for."""

    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    version: int | None = None
    rows: int = 0  # rows the table gained (new keys appended)


class Lake:
    """The lake folder and its Delta tables."""

    def __init__(self, root: LakeRoot) -> None:
        self.root: LakeRoot = root if isinstance(root, S3Root) else Path(root)
        self.storage = delta_options(self.root)  # deltalake's options (S3: conditional puts)
        if isinstance(root, S3Root):
            use_with_duckdb()
        self._live: dict[str, DeltaTable] = {}  # tables this process upserts into

    def _current(self, name: str) -> DeltaTable:
        """Table ``name`` at its newest version; a table upserted before is brought up to
        date from the commits since (a fresh open replays the log: tens of ms per batch)."""
        dt = self._live.get(name)
        if dt is None:
            dt = self._live[name] = self.open(name)
        else:
            dt.update_incremental()
        return dt

    # ------------------------------------------------------------------ tables
    def path(self, name: str) -> LakeRoot:
        """Folder of table ``name`` (an entity type, ``_runs``, ``_rejects``, ``derived/x``)."""
        return self.root / name

    def exists(self, name: str) -> bool:
        """True if ``name`` is a Delta table in this lake."""
        return _committed(self.path(name))

    def table_names(self) -> list[str]:
        """Every Delta table in the lake, entity types first, then ``_runs``, ``_rejects``."""
        if not self.root.is_dir():
            return []
        names = [p.parent.name for p in self.root.glob("*/_delta_log") if _committed(p.parent)]
        return sorted(names, key=lambda n: (n.startswith("_"), n))

    def open(self, name: str) -> DeltaTable:
        """The Delta table ``name``, or UnknownTable."""
        try:
            return DeltaTable(str(self.path(name)), storage_options=self.storage)
        except TableNotFoundError:
            raise UnknownTable(f"the lake {self.root} has no table {name!r}",
                               hint="run `hubctl tables` to list them") from None
        except DeltaError as exc:  # a damaged log: name the table and the way out
            raise damaged_table(name, self.path(name), exc) from None

    def files(self, name: str, dates: list[str] | None = None) -> list[str]:
        """Parquet files of the current snapshot (only the given ``date`` partitions if set)."""
        dt = self.open(name)
        if dates is not None:
            if not dates:
                return []
            return dt.file_uris(file_pruning_predicate=[("date", "in", dates)])
        return dt.file_uris()

    def snapshot(self, name: str, as_of: int | datetime | None = None) -> Snapshot:
        """Table ``name`` as it was at version or time ``as_of`` (the newest if None): its
        version, commit time, Parquet files and schema (time travel; UsageError if the table
        had no version then)."""
        dt = self.open(name)
        if as_of is not None:
            try:
                dt.load_as_version(as_of)
            except Exception as exc:  # deltalake raises several types for "no such version"
                raise UsageError(f"table {name!r} has no version at {as_of}: {exc}",
                                 hint=f"`hubctl history {name}` lists its versions") from None
        version = dt.version()
        # the full log (a time-travelled table's history() numbers its commits differently)
        log = self.open(name).history() if as_of is not None else dt.history()
        stamps = [h.get("timestamp") for h in log if h.get("version") == version]
        when = datetime.fromtimestamp((stamps[0] or 0) / 1000, UTC) if stamps else None
        return Snapshot(name=name, version=version, committed_at=when,
                        files=sorted(dt.file_uris()), schema=pa.schema(dt.schema()))

    def schema(self, name: str) -> pa.Schema:
        """The Arrow schema of table ``name``."""
        return pa.schema(self.open(name).schema())

    def ensure(self, name: str, schema: pa.Schema, partition_by: list[str]) -> None:
        """Create table ``name`` empty if it does not exist (safe when processes race: see
        :meth:`_creating`)."""
        if self.exists(name):
            return
        with self._creating(name) as absent:
            if absent:
                write_deltalake(str(self.path(name)), pa.Table.from_batches([], schema=schema),
                                partition_by=partition_by or None, mode="ignore",
                                storage_options=self.storage)

    @contextmanager
    def _creating(self, name: str) -> Iterator[bool]:
        """Hold table ``name``'s commit lock while it is created; yields False when another
        process created it meanwhile. A create is a commit like any other: delta-rs does not
        fail a create that lost the race for version 0 (mode "error" or "ignore" alike) but
        commits it again at version 1, a second protocol and metaData action (a new table id,
        so that readers may take the table for replaced) and the loser believing it made
        version 0."""
        with table_commit(self.root, name):
            if self.exists(name):
                yield False
                return
            self.path(name).mkdir(parents=True, exist_ok=True)
            yield True

    def append(self, name: str, table: pa.Table, partition_by: list[str] | None = None) -> int:
        """Append rows (used for the ledger and rejects); returns the new version. A table
        that does not exist yet is created holding the rows: one commit, not an empty table
        and then the rows (a first ingest commits to ``_runs`` at its start)."""
        if not self.exists(name) and self._create_with(name, table, partition_by or []):
            _ledger_hook(self.root, name)
            return 0
        self.ensure(name, table.schema, partition_by or [])
        dt = self.open(name)
        _retrying(dt, lambda props: write_deltalake(
            dt, table, mode="append", schema_mode="merge", partition_by=partition_by or None,
            writer_properties=_writer_properties(table.schema), commit_properties=props),
            None if name in _OWN_ROWS else fence(self.root), name)
        _ledger_hook(self.root, name)
        return dt.version()

    def _create_with(self, name: str, table: pa.Table, partition_by: list[str]) -> bool:
        """Create table ``name`` holding ``table``'s rows in one commit (version 0); False
        when another process created it first (then append to it)."""
        with self._creating(name) as absent:
            if not absent:
                return False
            fenced = None if name in _OWN_ROWS else fence(self.root)  # the commit lease too
            if fenced is not None:
                fenced.check(name)
            write_deltalake(str(self.path(name)), table, mode="error",
                            partition_by=partition_by or None,
                            writer_properties=_writer_properties(table.schema),
                            storage_options=self.storage, commit_properties=fenced.properties(
                                exact=False) if fenced is not None else None)
        return True

    def put(self, name: str, rows: pa.Table, key: str) -> int:
        """Replace the rows of table ``name`` whose ``key`` equals one of ``rows``' keys by
        ``rows`` (inserting those it lacks), in one commit under the table's commit lock: an
        update in place for small tables keyed by one text column (the ledger). The key values
        are literals of the commit's predicate, so delta-rs rewrites only the files that hold
        them (cheaper than a MERGE). Returns the new version."""
        self.ensure(name, rows.schema, [])
        values = ", ".join("'" + str(v).replace("'", "''") + "'"
                           for v in rows.column(key).to_pylist())
        with table_commit(self.root, name):
            dt = self.open(name)  # a fresh snapshot: faster to prune than a long-lived one
            _retrying(dt, lambda props: write_deltalake(
                dt, rows, mode="overwrite", predicate=f"{quote_ident(key)} IN ({values})",
                schema_mode="merge", writer_properties=_writer_properties(rows.schema),
                commit_properties=props))  # the ledger (_OWN_ROWS): not fenced
        _ledger_hook(self.root, name)
        return dt.version()

    # ------------------------------------------------------------------ upsert
    def upsert(self, et: EntityType, rows: pa.Table, cell_columns: tuple[str, ...] = (),
               own_files: set[str] | None = None) -> UpsertResult:
        """Merge typed lake rows (one per key, with a ``_records`` column) into ``et``'s table.

        ``cell_columns``: columns where each non-null cell is one input record (OpenAQ's one
        pollutant per line); a matched row's records are then counted cell by cell.
        ``own_files``: for a run whose keys never repeat across its batches, the files it has
        appended so far (updated here); a static table then skips comparing with them.

        Classification and the commits it leads to happen under the table's commit lock
        (:func:`hubctl.locks.table_commit`): they see the same table version, whatever the
        number of writers, so no key is ever appended twice and the counts are true. A table
        that already holds duplicate keys raises DuplicateKeys (see ``hubctl lake check``).
        """
        self.ensure(et.name, et.arrow_schema(), et.partition_by)
        self._check_leases(et.name)  # a run that lost its leases does not wait for the lock
        with table_commit(self.root, et.name):
            self._check_leases(et.name)  # nor classifies (its commit lease checked too)
            return self._upsert_locked(et, rows, cell_columns, own_files)

    def _upsert_locked(self, et: EntityType, rows: pa.Table, cell_columns: tuple[str, ...],
                       own_files: set[str] | None) -> UpsertResult:
        dt = self._current(et.name)
        classes = self._classify(et, dt, rows, cell_columns, own_files)
        result = UpsertResult(records=_count(classes, rows.column("_records"),
                                             bool(cell_columns)))
        cls = classes.column("cls")
        schema = et.arrow_schema()
        codes = cls.to_numpy()
        if (codes == NEW).all():  # the common case of fresh data: no filtering copies
            fresh, known = conform(rows, schema), rows.slice(0, 0)
        else:
            changed = rows.filter(pc.not_equal(cls, DUPLICATE)).drop_columns(["_records"])
            if changed.num_rows == 0:
                result.version = dt.version()
                return result
            # Rows whose key is not in the snapshot are appended (no MERGE scan); only the
            # rest go through MERGE. The commit lock keeps every other hubctl writer out
            # until both are committed.
            is_new = pc.equal(cls.filter(pc.not_equal(cls, DUPLICATE)), NEW)
            fresh = conform(changed.filter(is_new), schema)
            known = conform(changed.filter(pc.invert(is_new)), schema, dictionaries=False)
        result.rows = fresh.num_rows
        if fresh.num_rows:
            self._append_fresh(et, dt, fresh, own_files)
        if known.num_rows:
            _retrying(dt, lambda props: self._merge(et, dt, known, props),
                      fence(self.root), et.name)
        result.version = dt.version()
        return result

    def _append_fresh(self, et: EntityType, dt: DeltaTable, fresh: pa.Table,
                      own_files: set[str] | None) -> None:
        """Append rows whose keys the table does not hold (a blind append, no MERGE scan).
        A local table whose schema is the type's takes the bulk path (pyarrow's Parquet
        writer, one file per date, one commit: :mod:`hubctl.deltafiles`)."""
        before, version = set(dt.file_uris()) if own_files is not None else set(), dt.version()
        schema = et.arrow_schema()
        rows = _constants_as_dictionaries(fresh)
        if isinstance(self.root, Path) and can_append_files(rows, et.partition_by) and \
                _same_columns(pa.schema(dt.schema()), schema):
            plain = {f.name for f in schema if pa.types.is_floating(f.type)}
            root = Path(self.path(et.name))  # a local lake: no lease to fence
            _retrying(dt, lambda _: append_files(dt, root, rows, schema, et.partition_by,
                                                 plain))
        else:
            _retrying(dt, lambda props: write_deltalake(
                dt, rows, mode="append", partition_by=et.partition_by or None,
                writer_properties=_writer_properties(schema), commit_properties=props),
                fence(self.root), et.name)
        if own_files is not None and dt.version() == version + 1:  # nobody else in between
            own_files |= set(dt.file_uris()) - before

    def remove_absent(self, et: EntityType, column: str, value: str, keep: pa.Array) -> int:
        """Delete the rows of static type ``et`` whose ``column`` holds ``value`` and whose id
        is not in ``keep`` (what a new version of a source no longer has, e.g. the stops a
        new GTFS feed version dropped under the same feed id). One MERGE commit, under the
        table's commit lock, only when there is something to delete; returns the rows
        deleted."""
        if et.time_series or list(et.key) != ["id"]:
            raise ValueError(f"remove_absent works on static types keyed by id, not {et.name}")
        if not self.exists(et.name):
            return 0
        ids = pa.table({"id": pc.drop_null(pa.chunked_array([keep], pa.string()))
                        .combine_chunks()})
        q = quote_ident(column)
        with table_commit(self.root, et.name):
            dt = self._current(et.name)
            files = dt.file_uris()
            if not files or column not in pa.schema(dt.schema()).names:
                return 0
            con = scratch()
            try:
                con.register("k", ids)
                row = con.execute(
                    f"SELECT count(*) FROM {scan_sql(files)} t LEFT JOIN k ON k.id = t.id "
                    f"WHERE t.{q} = ? AND k.id IS NULL", [value]).fetchone()
            finally:
                con.close()
            gone = int(row[0]) if row else 0
            if gone:
                literal = value.replace("'", "''")
                _retrying(dt, lambda props: dt.merge(
                    ids, predicate="t.id = s.id", source_alias="s", target_alias="t",
                    writer_properties=_writer_properties(et.arrow_schema()),
                    commit_properties=props)
                    .when_not_matched_by_source_delete(predicate=f"t.{q} = '{literal}'")
                    .execute(), fence(self.root), et.name)
            return gone

    def _merge(self, et: EntityType, dt: DeltaTable, source: pa.Table,
               props: CommitProperties | None) -> None:
        key = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in et.key)
        if et.time_series:  # literal partitions let delta-rs skip every other file
            dates = sorted({d.isoformat() for d in
                            pc.unique(source.column("date")).to_pylist() if d is not None})
            key += " AND t.date = s.date AND t.date IN (" + ", ".join(
                f"'{d}'" for d in dates) + ")"
        keep = set(et.key) | {"date"}
        stored = {f.name for f in dt.schema().fields}
        updates = {}
        for name in source.column_names:
            q = quote_ident(name)
            if name in keep:
                continue
            # a column the table does not have yet (an attribute added to the schema since
            # the table was written) has no target value to keep: merge_schema adds it
            if name in PROVENANCE or name == "_time_index" or name not in stored:
                updates[q] = f"s.{q}"
            else:
                updates[q] = f"COALESCE(s.{q}, t.{q})"
        (dt.merge(source, predicate=key, source_alias="s", target_alias="t", merge_schema=True,
                  writer_properties=_writer_properties(source.schema), commit_properties=props)
           .when_matched_update(updates=updates)
           .when_not_matched_insert_all()
           .execute())

    def _classify(self, et: EntityType, dt: DeltaTable, rows: pa.Table,
                  cell_columns: tuple[str, ...], own_files: set[str] | None = None
                  ) -> pa.Table:
        """For each row: its class (new / updated / filled / duplicate) against the current
        snapshot, and how many of its non-null cells changed, filled a gap or were equal."""
        n = rows.num_rows
        zeros = np.zeros(n, dtype=np.int64)
        everything_new = pa.table({"cls": pa.array(np.zeros(n, dtype=np.int8)),
                                   "changed": zeros, "filled": zeros, "same": zeros})
        if not et.time_series:
            files = [f for f in dt.file_uris() if not own_files or f not in own_files]
            return self._compare(et, dt, rows, files, cell_columns) if files else everything_new
        dates = sorted({d.isoformat() for d in pc.unique(rows.column("date")).to_pylist()
                        if d is not None})
        files = dt.file_uris(file_pruning_predicate=[("date", "in", dates)]) if dates else []
        if not files:
            return everything_new
        # Only rows of dates the table already holds, and inside the time span stored for
        # that date, can match: compare just those (appending newer readings scans nothing).
        maybe, files = _candidates(dt, rows, files)
        idx = np.flatnonzero(maybe)
        if len(idx) == 0:
            return everything_new
        if len(idx) == n:
            return self._compare(et, dt, rows, files, cell_columns)
        found = self._compare(et, dt, rows.take(pa.array(idx)), files, cell_columns)
        cls = np.zeros(n, dtype=np.int8)
        cls[idx] = found.column("cls").to_numpy()
        out = {"cls": pa.array(cls)}
        for col in ("changed", "filled", "same"):
            full = zeros.copy()
            full[idx] = found.column(col).to_numpy()
            out[col] = pa.array(full)
        return pa.table(out)

    def _compare(self, et: EntityType, dt: DeltaTable, rows: pa.Table, files: list[str],
                 cell_columns: tuple[str, ...]) -> pa.Table:
        """Classify ``rows`` against the rows stored in ``files`` (a DuckDB join)."""
        stored = set(pa.schema(dt.schema()).names)
        # an attribute the table does not have yet (added to the schema since) is a gap that
        # a value fills, so that re-ingesting the same input adds the new column's values
        attrs = [c for c in et.attribute_columns() + ["_extra"]
                 if c in stored or c in rows.column_names]
        con = scratch()
        try:
            con.register("s_rows", rows.select(list(et.key) + attrs).append_column(
                "__pos", pa.array(np.arange(rows.num_rows, dtype=np.int64))))
            on = " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in et.key)
            changed = " OR ".join(
                f"(s.{q} IS NOT NULL AND t.{q} IS NOT NULL AND s.{q} IS DISTINCT FROM t.{q})"
                for q in map(quote_ident, attrs)) or "false"
            filled = " OR ".join(f"(s.{q} IS NOT NULL AND t.{q} IS NULL)"
                                 for q in map(quote_ident, attrs)) or "false"
            cols = ", ".join(quote_ident(c) if c in stored else f"NULL AS {quote_ident(c)}"
                             for c in list(et.key) + attrs)
            counts = {
                "changed": "s.{q} IS NOT NULL AND t.{q} IS NOT NULL "
                           "AND s.{q} IS DISTINCT FROM t.{q}",
                "filled": "s.{q} IS NOT NULL AND t.{q} IS NULL",
                "same": "s.{q} IS NOT NULL AND s.{q} IS NOT DISTINCT FROM t.{q}",
            }
            tallies = "0 AS changed, 0 AS filled, 0 AS same" if not cell_columns else ", ".join(
                "(" + " + ".join(f"CASE WHEN {tpl.format(q=quote_ident(c))} THEN 1 ELSE 0 END"
                                 for c in attrs if c in cell_columns) + f")::BIGINT AS {name}"
                for name, tpl in counts.items())
            sql = f"""
                WITH t AS (SELECT {cols} FROM {scan_sql(files)})
                SELECT (CASE WHEN t.id IS NULL THEN 0 WHEN {changed} THEN 1
                             WHEN {filled} THEN 2 ELSE 3 END)::TINYINT AS cls, {tallies}
                FROM s_rows s
                LEFT JOIN t ON {on}
                ORDER BY s.__pos"""
            out = con.sql(sql).to_arrow_table()
        finally:
            con.close()
        if out.num_rows != rows.num_rows:  # a stored key matched more than one row
            raise DuplicateKeys(et.name, key=et.key)
        return out

    def file_bounds(self, name: str, columns: list[str]
                    ) -> list[tuple[str, dict[str, tuple[Any, Any]]]]:
        """Each Parquet file of table ``name``'s current snapshot (named as :meth:`files`
        names it) with the least and greatest value of each of ``columns`` that the Delta log
        records for it ((None, None) where it records none): what a lookup may skip files by
        without opening them."""
        dt = self.open(name)
        uris = {uri.rsplit("/", 1)[-1]: uri for uri in dt.file_uris()}
        adds = pa.table(dt.get_add_actions(flatten=True))
        paths = [unquote(p).rsplit("/", 1)[-1] for p in adds.column("path").to_pylist()]
        if sorted(paths) != sorted(uris):  # not expected: then every file, bounds unknown
            return [(uri, dict.fromkeys(columns, (None, None))) for uri in uris.values()]
        none = [None] * len(paths)
        bounds = {c: list(zip(*(adds.column(f"{m}.{c}").to_pylist()
                                if f"{m}.{c}" in adds.column_names else none
                                for m in ("min", "max")), strict=True)) for c in columns}
        return [(uris[p], {c: bounds[c][i] for c in columns}) for i, p in enumerate(paths)]

    # ------------------------------------------------------------------ maintenance
    def file_times(self, name: str) -> pa.Table:
        """``path`` and ``modified`` (when its commit wrote it) of every file of table
        ``name``'s current snapshot."""
        adds = pa.table(self.open(name).get_add_actions(flatten=True))
        return pa.table({"path": adds.column("path"),
                         "modified": adds.column("modification_time")})

    def rewrite(self, name: str, rows: pa.Table, partition_by: list[str],
                dates: list[str] | None) -> int:
        """Replace the given ``date`` partitions of table ``name`` (the whole table if None) by
        ``rows``, in one commit. The caller holds the table's commit lock. Returns the new
        version."""
        dt = self.open(name)
        predicate = None if dates is None else "date IN (" + ", ".join(
            f"'{d}'" for d in dates) + ")"
        _retrying(dt, lambda props: write_deltalake(
            dt, rows, mode="overwrite", predicate=predicate, partition_by=partition_by or None,
            writer_properties=_writer_properties(rows.schema), commit_properties=props),
            fence(self.root), name)
        return dt.version()

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits of table ``name``, newest first."""
        return self.open(name).history(limit)

    def compact(self, name: str) -> dict[str, Any]:
        """Rewrite small files into larger ones (a new version; old files stay until vacuum)."""
        dt = self.open(name)
        fenced = fence(self.root)
        if fenced is not None:
            fenced.check(name)
        return dt.optimize.compact(writer_properties=_writer_properties(pa.schema(dt.schema())),
                                   commit_properties=fenced.properties(exact=False)
                                   if fenced is not None else None)

    def vacuum(self, name: str, retention_hours: int, dry_run: bool) -> list[str]:
        """Delete files no longer referenced by versions newer than the retention period."""
        self._check_leases(name)
        return self.open(name).vacuum(retention_hours=retention_hours, dry_run=dry_run,
                                      enforce_retention_duration=False)

    def replace(self, name: str, table: pa.Table) -> int:
        """Overwrite table ``name`` with ``table`` (a pipeline's derived table; earlier
        versions stay readable by time travel until vacuumed). Returns the new version."""
        self.path(name).mkdir(parents=True, exist_ok=True)
        fenced = fence(self.root)  # the pipeline's lease: an overwrite needs no exact version
        if fenced is not None:
            fenced.check(name)
        # the run id (one value in every row) as a one-entry dictionary: the Parquet writer then
        # skips hashing 4.4 M copies of it for air_quality's indices (-0.3 s CPU per million rows)
        write_deltalake(str(self.path(name)), _constants_as_dictionaries(table),
                        mode="overwrite", schema_mode="overwrite",
                        writer_properties=_derived_writer_properties(table.schema),
                        storage_options=self.storage, commit_properties=fenced.properties(
                            exact=False) if fenced is not None else None)
        return self.open(name).version()

    def derived_names(self) -> list[tuple[str, str]]:
        """(pipeline, table) of every derived table under ``<lake>/derived/``."""
        found = self.root.glob(f"{DERIVED}/*/*/_delta_log")
        return sorted((p.parent.parent.name, p.parent.name) for p in found
                      if _committed(p.parent))

    def _check_leases(self, name: str) -> None:
        """Raise LeaseLost, before work on table ``name``, if a lease this thread holds on
        this lake was taken over (:func:`hubctl.locks.fence`); nothing on a local lake."""
        fenced = fence(self.root)
        if fenced is not None:
            fenced.check(name)

    def require_root(self) -> None:
        """Fail with a hint when the lake folder does not exist."""
        if not self.root.is_dir():
            raise HubError(f"no lake at {self.root}",
                           hint="run `hubctl init` or pass --lake PATH (env HUBCTL_LAKE)")


def _stored_spans(dt: DeltaTable) -> list[tuple[str, str, int, int]] | None:
    """(path, date, first, last observed_at in µs) of every file, from the Delta log's file
    statistics; None when the log has no such statistics. A file without them spans all time."""
    try:
        stats = pa.table(dt.get_add_actions(flatten=True))
        paths = stats.column("path").to_pylist()
        part = stats.column("partition.date").to_pylist()
        mins = pc.cast(stats.column("min.observed_at"), pa.int64()).to_pylist()
        maxs = pc.cast(stats.column("max.observed_at"), pa.int64()).to_pylist()
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    slack = 1000  # Delta statistics keep timestamps to the millisecond: widen by one
    return [(p, d.isoformat() if d is not None else "", lowest if a is None else a - slack,
             highest if b is None else b + slack) for p, d, a, b in zip(paths, part, mins, maxs,
                                                                        strict=True)]


def _candidates(dt: DeltaTable, rows: pa.Table, files: list[str]
                ) -> tuple[np.ndarray, list[str]]:
    """Rows that may match a stored row (their date is stored and their observed_at lies
    within the span a stored file of that date covers), and the files that may hold those
    matches. Appending readings newer than anything stored compares nothing."""
    spans = _stored_spans(dt)
    stored_dates = sorted({m.group(1) for f in files if (m := _DATE_DIR.search(f))})
    days = pa.array([date.fromisoformat(d) for d in stored_dates], pa.date32())
    where = pc.index_in(rows.column("date"), value_set=days)
    known = pc.is_valid(where).to_numpy(zero_copy_only=False)
    if spans is None:
        return known, files
    slot = pc.fill_null(where, 0).to_numpy(zero_copy_only=False)
    at = pc.fill_null(pc.cast(rows.column("observed_at"), pa.int64()), 0).to_numpy(
        zero_copy_only=False)
    lo = np.full(len(days), np.iinfo(np.int64).max)
    hi = np.full(len(days), np.iinfo(np.int64).min)
    index = {d: i for i, d in enumerate(stored_dates)}
    for _, day, a, b in spans:
        if day in index:
            lo[index[day]] = min(lo[index[day]], a)
            hi[index[day]] = max(hi[index[day]], b)
    maybe = known & (at >= lo[slot]) & (at <= hi[slot])
    if not maybe.any():
        return maybe, []
    first = np.full(len(days), np.iinfo(np.int64).max)
    last = np.full(len(days), np.iinfo(np.int64).min)
    np.minimum.at(first, slot[maybe], at[maybe])
    np.maximum.at(last, slot[maybe], at[maybe])
    wanted = {p for p, day, a, b in spans
              if day in index and a <= last[index[day]] and b >= first[index[day]]}
    return maybe, [f for f in files if any(f.endswith(w) for w in wanted)] or files


def _retrying(dt: DeltaTable, commit: Callable[[CommitProperties | None], object],
              fenced: Fence | None = None, name: str = "") -> None:
    """Run one commit, again after a conflict with a writer that does not take the commit lock
    (compaction, another tool): the commit lock already keeps hubctl's upserts apart, and
    each step is safe to repeat (an append of keys the table lacks, a MERGE on the key).

    Under leases (``fenced``, a lake on S3), each attempt first checks them, then commits at
    exactly the version ``dt`` holds, with the leases' tokens in its commit info; after a lost
    race, the commits in between must not have been made under one of those locks by another
    holder (else LeaseLost: see :mod:`hubctl.lease`)."""
    attempts = _MERGE_RETRIES if fenced is None else 4 * _MERGE_RETRIES  # no rebase inside
    for attempt in range(attempts):
        read = dt.version()
        if fenced is not None:
            fenced.check(name)
        try:
            commit(fenced.properties() if fenced is not None else None)
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 0.5))
        else:
            dt.update_incremental()
            return
        dt.update_incremental()
        if fenced is not None:
            fenced.overtaken(dt, read, name)


@cache
def _writer_properties(schema: pa.Schema) -> WriterProperties:
    """Parquet settings for every file the hub writes: ZSTD pages (the 5 M-row OpenAQ lake
    goes from 94 MB to 18 MB at the same ingest time), and no dictionary for measured values
    (float columns are nearly all distinct, so dictionary-encoding them is wasted work before
    the writer falls back to plain pages)."""
    plain = ColumnProperties(dictionary_enabled=False)
    return WriterProperties(compression="ZSTD", column_properties={
        f.name: plain for f in schema if pa.types.is_floating(f.type)})


@cache
def _derived_writer_properties(schema: pa.Schema) -> WriterProperties:
    """Parquet settings for pipelines' derived tables: those of :func:`_writer_properties`, and
    whole-number and measured columns without page statistics (a derived table is a few files,
    read whole), whole numbers delta-encoded rather than through a dictionary. On
    air_quality's 4.4 M-row indices table (26 small-integer and 9 float columns) the write
    took a fifth less CPU, the same size (bench note in docs/benchmarks.md)."""
    floats = ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
    ints = ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE",
                            encoding="DELTA_BINARY_PACKED")
    columns = {f.name: floats for f in schema if pa.types.is_floating(f.type)}
    columns |= {f.name: ints for f in schema if pa.types.is_integer(f.type)}
    return WriterProperties(compression="ZSTD", column_properties=columns)


def _same_columns(have: pa.Schema, want: pa.Schema) -> bool:
    """True when a table's schema has exactly ``want``'s columns, in order, of the same types
    (nullability aside)."""
    return have.names == want.names and all(
        a.type == b.type for a, b in zip(have, want, strict=True))


def _constants_as_dictionaries(rows: pa.Table) -> pa.Table:
    """Text columns holding one value in every row (the run id, the source, ...) as
    one-entry dictionaries: the Parquet writer then skips hashing every cell (about a fifth of
    its time on time-series batches). The Delta schema stays string."""
    for i, col in enumerate(rows.schema):
        if col.type != pa.string() or rows.num_rows < 1024:
            continue
        column = rows.column(i)
        if column.null_count or not pc.all(pc.equal(column, column[0])).as_py():
            continue
        codes = pa.array(np.zeros(len(column), dtype=np.int32))
        rows = rows.set_column(i, col.name, pa.DictionaryArray.from_arrays(
            codes, pa.array([column[0].as_py()], pa.string())))
    return rows


def conform(rows: pa.Table, schema: pa.Schema, dictionaries: bool = True) -> pa.Table:
    """``rows`` with exactly the columns and types of ``schema`` (no copy when they have them).
    With ``dictionaries``, a column given as a dictionary of the right type stays one (an id
    or a run id repeated down a batch: nothing is copied per row, and the Parquet writer
    encodes each distinct value once); else it is decoded (what a MERGE source needs)."""
    picked = rows.select(schema.names)
    if picked.schema.equals(schema):
        return picked
    columns, fields = [], []
    for want, column in zip(schema, picked.columns, strict=True):
        kept = column.type == want.type or (
            dictionaries and pa.types.is_dictionary(column.type)
            and column.type.value_type == want.type)
        columns.append(column if kept else column.cast(want.type))
        fields.append(want.with_type(columns[-1].type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))


def _ledger_hook(root: LakeRoot, name: str) -> None:
    """After a commit to a ledger table (a run started or ended): rewrite the catalog files
    registered with the lake (``hubctl catalog``), so they follow runs inside long-lived
    processes too. A stat when none is registered."""
    if name in _LEDGERS:
        from hubctl.catalog import refresh_catalogs

        refresh_catalogs(root)


def _count(classes: pa.Table, weights: pa.ChunkedArray, by_cell: bool) -> dict[str, int]:
    """Records per class. Where a matched row holds one record per non-null cell (OpenAQ's
    one pollutant per line), cells are counted one by one; otherwise the row's class counts."""
    cls = classes.column("cls").to_numpy()
    w = weights.to_numpy()
    changed, filled, same = (classes.column(c).to_numpy() for c in ("changed", "filled", "same"))
    per_cell = (cls != NEW) & by_cell
    out = {c: int(w[(cls == code) & ~per_cell].sum()) for code, c in enumerate(CLASSES)}
    out["updated"] += int(changed[per_cell].sum())
    out["filled"] += int(filled[per_cell].sum())
    out["duplicate"] += int(same[per_cell].sum())
    return out
