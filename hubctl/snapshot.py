"""What DuckDB needs of a Delta table's current snapshot (its Parquet files, whether they are
hive-partitioned, its columns with DuckDB types), remembered per table version.

Opening a table with deltalake costs little, but importing deltalake costs about 60 ms of CPU,
a third of ``hubctl sql``'s start-up (issue 13, section 5). Delta versions are immutable and
contiguous, so a snapshot read once stays right for as long as its commit file is the newest:
a cached entry is used when ``_delta_log/<version>.json`` still has the size and mtime it had
and ``<version + 1>.json`` does not exist (two ``stat`` calls). Anything else (a newer commit,
a table dropped and re-created, an unreadable entry) reads the snapshot through deltalake
again and replaces the entry. The entries are hubctl's own bookkeeping under
``<lake>/_cache/snapshots/``, never table data; a lake that cannot be written (a read-only
mount) works the same, only without the saving. Entries store file paths relative to the
table folder, so a moved lake keeps its cache. A lake on S3 has no cache: its snapshots are read
through deltalake each time (a ``stat`` there would be a request too).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubctl.s3 import LakeRoot, S3Root, delta_options

__all__ = ["CACHE", "Snapshot", "UnreadableTable", "committed", "read_snapshot"]

CACHE = "_cache/snapshots"
_FORMAT = 1


class UnreadableTable(Exception):
    """deltalake could not read a table's log; the DeltaError is the ``__cause__``."""


def committed(folder: LakeRoot) -> bool:
    """True once a Delta table has its first commit: a process killed between creating the
    folder and committing leaves an empty ``_delta_log`` that is not yet a table."""
    log = folder / "_delta_log"
    if not (isinstance(log, S3Root) or log.is_dir()):  # on S3 the listing below tells
        return False
    return any(p.suffix in (".json", ".parquet") or p.name == "_last_checkpoint"
               for p in log.iterdir())


@dataclass(frozen=True)
class Snapshot:
    """The current snapshot of one Delta table, as DuckDB reads it."""

    version: int
    files: list[str]  # absolute paths of the data files
    partitioned: bool  # hive-style partition folders
    columns: list[tuple[str, str]]  # (name, DuckDB type), in table order
    schema: Any = None  # the Arrow schema, when read through deltalake (not from the cache)
    partition_by: tuple[str, ...] = ()  # partition columns, likewise

    @property
    def column_names(self) -> set[str]:
        """The table's column names."""
        return {name for name, _ in self.columns}


def _commit_file(folder: Path, version: int) -> Path:
    return folder / "_delta_log" / f"{version:020d}.json"


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def read_snapshot(root: LakeRoot, view: str, folder: LakeRoot) -> Snapshot:
    """The snapshot of the Delta table in ``folder`` (named ``view`` in the lake at ``root``):
    from the cache when its version is still the newest, else through deltalake (which raises
    its own errors for a missing or damaged table)."""
    if isinstance(root, S3Root) or isinstance(folder, S3Root):
        return _from_delta(folder)
    entry = root / CACHE / f"{view}.json"
    cached = _cached(entry, folder)
    if cached is not None:
        return cached
    snap = _from_delta(folder)
    _remember(entry, folder, snap)
    return snap


def _cached(entry: Path, folder: Path) -> Snapshot | None:
    try:
        data: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            return None
        version = int(data["version"])
        if _stamp(_commit_file(folder, version)) != data["stamp"] \
                or _commit_file(folder, version + 1).exists():
            return None
        return Snapshot(version, [os.path.join(folder, f) for f in data["files"]],
                        bool(data["partitioned"]), [(n, t) for n, t in data["columns"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _from_delta(folder: LakeRoot) -> Snapshot:
    import pyarrow as pa
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    from hubctl.duck import scratch

    try:
        dt = DeltaTable(str(folder), storage_options=delta_options(folder))
    except DeltaError as exc:
        raise UnreadableTable(str(exc)) from exc
    con = scratch()
    try:
        con.register("__schema_probe", pa.Table.from_batches([], schema=pa.schema(dt.schema())))
        described = con.execute("DESCRIBE SELECT * FROM __schema_probe").fetchall()
    finally:
        con.close()
    partition_by = tuple(dt.metadata().partition_columns)
    return Snapshot(dt.version(), list(dt.file_uris()), bool(partition_by),
                    [(str(row[0]), str(row[1])) for row in described],
                    pa.schema(dt.schema()), partition_by)


def _remember(entry: Path, folder: Path, snap: Snapshot) -> None:
    stamp = _stamp(_commit_file(folder, snap.version))
    if stamp is None:  # not a local log (or it moved on meanwhile): nothing to key on
        return
    data = {"format": _FORMAT, "version": snap.version, "stamp": stamp,
            "partitioned": snap.partitioned, "columns": snap.columns,
            "files": [os.path.relpath(f, folder) for f in snap.files]}
    with contextlib.suppress(OSError):  # a read-only lake: no cache, same answers
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, entry)
