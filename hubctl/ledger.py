"""The run ledger (``_runs``) and the rejects table (``_rejects``).

Every run leaves one ledger row: what it read, what it wrote, updated, found duplicate or
rejected, which table versions it committed, and how it ended. Counts must reconcile:
``read = written + updated + duplicate + rejected + unreached`` (``unreached``: records read
but not committed because the run stopped or failed first).

A run's row is written when it starts (status ``running``, with host and pid) and updated in
place when it ends (one Delta commit that replaces the rows of that ``run_id``:
:meth:`hubctl.lake.Lake.put`), so every reader sees one row per run, and
every row the run commits carries a ``_run_id`` the ledger already holds. A run whose process
was killed is found by its marker (:mod:`hubctl.running`) and recorded as ``interrupted`` with
the counts of its last checkpoint by the next command that opens the lake.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hubctl import running
from hubctl.lake import Lake
from hubctl.rejects import Reject
from hubctl.s3 import SCHEME, S3Root, arrow_filesystem
from hubctl.types import TIMESTAMP

__all__ = ["REJECTS", "RUNS", "Cursor", "Run", "checkpoint", "find_ingested", "ingested_before",
           "last_cursor", "last_run_start", "last_start", "mark_interrupted", "new_run_id",
           "source_runs", "start_run", "write_rejects", "write_run"]

RUNS = "_runs"
REJECTS = "_rejects"

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("source", pa.string()), ("adapter", pa.string()),
    ("fingerprint", pa.string()), ("cursor_before", pa.string()), ("cursor_after", pa.string()),
    ("inputs", pa.string()), ("options", pa.string()),
    ("started_at", TIMESTAMP), ("finished_at", TIMESTAMP), ("status", pa.string()),
    ("error", pa.string()), ("read", pa.int64()), ("written", pa.int64()),
    ("updated", pa.int64()), ("duplicate", pa.int64()), ("rejected", pa.int64()),
    ("tables", pa.string()), ("warnings", pa.string()), ("host", pa.string()),
    ("pid", pa.int64()), ("unreached", pa.int64()),
])
_COUNTS = ("written", "updated", "duplicate", "rejected")

REJECTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("source", pa.string()), ("adapter", pa.string()),
    ("entity_type", pa.string()), ("file", pa.string()), ("record", pa.string()),
    ("records", pa.int64()), ("codes", pa.string()), ("reasons", pa.string()),
    ("raw", pa.string()), ("rejected_at", TIMESTAMP),
])


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random bits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


@dataclass
class Run:
    """One run of a source, as it accumulates."""

    run_id: str
    source: str
    adapter: str
    fingerprint: str
    inputs: list[str]
    options: dict[str, Any]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "running"
    error: str | None = None
    read: int = 0
    written: int = 0
    updated: int = 0
    duplicate: int = 0
    rejected: int = 0
    unreached: int = 0  # read but not committed: the run stopped (SIGTERM) or failed first
    tables: dict[str, int] = field(default_factory=dict)
    # Rows each table gained (new keys appended; not in the ledger): long-format records that
    # pivot into one row count once per row here, once per record in ``written``.
    rows: dict[str, int] = field(default_factory=dict)
    # Records read from the input files themselves, and how many of them were rejected (not in
    # the ledger): side files such as a station list do not make a run whose data was all
    # rejected "ok".
    from_inputs: dict[str, int] = field(default_factory=lambda: {"read": 0, "rejected": 0})
    # Files this run appended, per table (not in the ledger): see Batch.unique_keys.
    own_files: dict[str, set[str]] = field(default_factory=dict, repr=False)
    # Ids read per declared scope (type, column, value) and rows deleted per table because a
    # new version no longer has them (see Batch.replaces; in the ledger as a warning).
    scopes: dict[tuple[str, str, str], list[pa.Array]] = field(default_factory=dict,
                                                                repr=False)
    removed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    finished_at: datetime | None = None
    started: bool = field(default=False, repr=False)  # its `running` row is in the ledger

    @property
    def committed(self) -> int:
        """Records accounted for by what the run committed."""
        return self.written + self.updated + self.duplicate + self.rejected

    @property
    def reconciles(self) -> bool:
        """True when every record read is accounted for."""
        return self.read == self.committed + self.unreached

    def settle(self) -> None:
        """Count what was read and not committed as ``unreached`` (a run that stops early)."""
        self.unreached = max(self.read - self.committed, 0)

    def summary(self) -> dict[str, Any]:
        """The run as a JSON-ready dict (what ``--json`` prints)."""
        return {
            "run_id": self.run_id, "source": self.source, "adapter": self.adapter,
            "status": self.status, "error": self.error, "read": self.read,
            "written": self.written, "updated": self.updated, "duplicate": self.duplicate,
            "rejected": self.rejected, "unreached": self.unreached,
            "reconciles": self.reconciles, "tables": self.tables, "rows_added": self.rows,
            "rows_removed": self.removed,
            "warnings": self.warnings, "fingerprint": self.fingerprint,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _row(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "source": run.source, "adapter": run.adapter,
        "fingerprint": run.fingerprint, "cursor_before": run.cursor_before,
        "cursor_after": run.cursor_after, "inputs": json.dumps(run.inputs, ensure_ascii=False),
        "options": json.dumps(run.options, ensure_ascii=False, default=str, sort_keys=True),
        "started_at": run.started_at, "finished_at": run.finished_at, "status": run.status,
        "error": run.error, "read": run.read, "written": run.written, "updated": run.updated,
        "duplicate": run.duplicate, "rejected": run.rejected, "unreached": run.unreached,
        "tables": json.dumps(run.tables, sort_keys=True),
        "warnings": json.dumps(run.warnings, ensure_ascii=False), "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def start_run(lake: Lake, run: Run) -> None:
    """Record that ``run`` has started: its marker, then its ``running`` ledger row. Call it
    before the run commits anything, and :func:`write_run` when it ends."""
    run.status = "running"
    checkpoint(lake, run, force=True)
    lake.append(RUNS, pa.Table.from_pylist([_row(run)], schema=RUNS_SCHEMA))
    run.started = True


def checkpoint(lake: Lake, run: Run, force: bool = False) -> None:
    """Save the counts of what ``run`` has committed so far in its marker (after each commit:
    one small file replaced). If the process is killed, they become its ledger row."""
    if not (run.started or force):
        return
    running.write(lake.root, run.run_id, {
        "at": datetime.now(UTC).isoformat(), "counts": {c: getattr(run, c) for c in _COUNTS},
        "tables": run.tables, "warnings": run.warnings})


def write_run(lake: Lake, run: Run) -> None:
    """Record how ``run`` ended: its ledger row, updated in place if the run started one."""
    run.finished_at = run.finished_at or datetime.now(UTC)
    row = pa.Table.from_pylist([_row(run)], schema=RUNS_SCHEMA)
    if run.started:
        lake.put(RUNS, row, "run_id")
        running.remove(lake.root, run.run_id)
    else:
        lake.append(RUNS, row)


def mark_interrupted(lake: Lake) -> list[str]:
    """Record every run whose process is gone without ending it (``kill -9``, an OOM kill, a
    power cut) as ``interrupted``, with the counts of its last checkpoint; returns their ids.
    Costs one directory listing when there are none (every command calls it)."""
    done = []
    for marker in running.dead_markers(lake.root):
        try:
            _interrupted(lake, marker)
        except Exception:  # noqa: BLE001 - e.g. a read-only lake: a later command records it
            continue
        marker.done()
        done.append(marker.run_id)
    return done


def _interrupted(lake: Lake, marker: running.Marker) -> None:
    """Record a dead run's end from its claimed marker. No lock is needed for its row: its
    only other writer, the run's own process, is gone."""
    stored = source_runs(lake, None, run_id=marker.run_id)
    if not stored or stored[0]["status"] != "running":
        return  # killed before its first row (nothing committed), or after its last
    row = stored[0]
    content = marker.content or {}
    counts = {c: int(content.get("counts", {}).get(c, 0)) for c in _COUNTS}
    owner = content.get("owner", {})
    warnings = list(content.get("warnings", []))
    warnings.append("counts are those of the run's last checkpoint, taken after each commit; "
                    "its rows stay in the lake under its run id; ingest the input again to "
                    "complete it (an interrupted run does not mark its input as ingested)")
    if marker.content is None:
        warnings.append("its checkpoint was unreadable (a crash of the machine): counts unknown")
    at = content.get("at")
    row.update(counts, status="interrupted", read=sum(counts.values()), unreached=0,
               finished_at=datetime.fromisoformat(at) if at else datetime.now(UTC),
               error=f"process {owner.get('pid', row['pid'])} on {owner.get('host', row['host'])}"
                     " ended without finishing the run (killed, out of memory, or the machine "
                     "stopped)",
               tables=json.dumps(content.get("tables", {}), sort_keys=True),
               warnings=json.dumps(warnings, ensure_ascii=False))
    lake.put(RUNS, pa.Table.from_pylist([row], schema=RUNS_SCHEMA), "run_id")


def write_rejects(lake: Lake, run: Run, rejects: Sequence[Reject]) -> int:
    """Append rejects of a run; returns the ``_rejects`` version."""
    now = datetime.now(UTC)
    rows = [{
        "run_id": run.run_id, "source": run.source, "adapter": run.adapter,
        "entity_type": r.entity_type, "file": r.file, "record": r.record,
        "records": r.records, "codes": r.codes, "reasons": r.reasons_json(), "raw": r.raw,
        "rejected_at": now,
    } for r in rejects]
    return lake.append(REJECTS, pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA))


def find_ingested(lake: Lake, source: str, fingerprint: str) -> str | None:
    """The run id that already ingested this exact input for this source, if any."""
    runs = _ledger_rows(lake, _columns("run_id", "status", "started_at"),
                        {"source": source, "fingerprint": fingerprint})
    return _newest(runs.filter(_ingested(runs)), "started_at", "run_id")


def ingested_before(lake: Lake, source: str) -> bool:
    """Whether a finished run of ``source`` marked its input as ingested (any later input of
    that source may then be found unchanged)."""
    runs = _ledger_rows(lake, _columns("status"), {"source": source})
    return bool(runs.num_rows) and bool(pc.any(_ingested(runs)).as_py())


@dataclass
class Cursor:
    """Where a pull resumes: ``before`` is the last committed cursor (read by the engine under
    the source's lock), ``after`` what the adapter reached; committed only with a finished run."""

    before: str | None = None
    after: str | None = None


#: How a run ended when it marked its input as ingested (a failed, stopped or interrupted run
#: did not; nor did a running one).
_INGESTED = ("ok", "empty", "over-reject-rate", "rejected")


def _columns(*names: str) -> pa.Schema:
    """The fields of RUNS_SCHEMA called ``names``."""
    return pa.schema([RUNS_SCHEMA.field(n) for n in names])


def _ledger_rows(lake: Lake, wanted: pa.Schema, where: dict[str, str | None],
                 table: str = RUNS) -> pa.Table:
    """The ``wanted`` columns of the rows of ledger ``table`` (``_runs`` unless told) whose
    ``where`` columns hold the values given (a None value: any), read with pyarrow from the
    current snapshot's Parquet files; no rows if there is no ledger. A column a file lacks (a
    ledger written before ``unreached`` existed) reads as nulls.

    DuckDB is not loaded for these lookups: it costs 0.08 s of CPU to import and 0.03 s to
    connect, a sixth of a small ingest that finds its input already ingested. pyarrow reads
    only the files whose logged bounds admit the ``where`` values, each file's ``where``
    columns first, the rest only from files with a match."""
    if not lake.exists(table):
        return wanted.empty_table()
    given: dict[str, str] = {k: v for k, v in where.items() if v is not None}
    s3 = isinstance(lake.root, S3Root)
    parts = []
    for uri in _files_that_may_match(lake, table, given):
        file = pq.ParquetFile(uri.removeprefix(SCHEME) if s3 else uri,
                              filesystem=arrow_filesystem() if s3 else None)
        match = None
        if given:  # a few rows a file: pyarrow's threads would cost more than they save
            keys = file.read(columns=list(given), use_threads=False)
            match = functools.reduce(pc.and_, (pc.equal(keys[k], v) for k, v in given.items()))
            if not pc.any(match).as_py():
                continue
        have = set(file.schema_arrow.names)
        got = file.read(columns=[f.name for f in wanted if f.name in have], use_threads=False)
        got = got.filter(match) if match is not None else got
        parts.append(pa.table([got.column(f.name).cast(f.type) if f.name in have
                               else pa.nulls(got.num_rows, f.type) for f in wanted],
                              schema=wanted))
    return pa.concat_tables(parts) if parts else wanted.empty_table()


def _files_that_may_match(lake: Lake, table: str, where: dict[str, str]) -> list[str]:
    """The files of ledger ``table`` whose ``where`` columns may hold the values given, by
    the bounds the Delta log records per file (each run leaves a file of its own until the
    ledger is compacted: a lookup among 300 runs went from 0.2 s to 0.02 s); a greatest value the
    writer cut short counts as the prefix it is."""
    if not where:
        return lake.files(table)
    return [uri for uri, bounds in lake.file_bounds(table, list(where))
            if all((low is None or low <= value) and (high is None or value[:len(high)] <= high)
                   for value, (low, high) in ((v, bounds[k]) for k, v in where.items()))]


def _ingested(runs: pa.Table) -> pa.Array:
    """Which of ``runs`` marked their input as ingested."""
    return pc.is_in(runs["status"], value_set=pa.array(_INGESTED))


def _newest(runs: pa.Table, by: str, column: str) -> Any:
    """``column`` of the row of ``runs`` with the greatest ``by`` (None if there are none)."""
    if runs.num_rows == 0:
        return None
    return runs[column][pc.sort_indices(runs, [(by, "descending")])[0].as_py()].as_py()


def last_cursor(lake: Lake, source: str) -> str | None:
    """The cursor the newest successful run of ``source`` committed (a failed run never
    advances it)."""
    runs = _ledger_rows(lake, _columns("status", "cursor_after", "finished_at"),
                        {"source": source})
    found = runs.filter(pc.and_(_ingested(runs), pc.is_valid(runs["cursor_after"])))
    return _newest(found, "finished_at", "cursor_after")


def last_run_start(lake: Lake, source: str) -> datetime | None:
    """When the newest finished run of ``source`` (any outcome) started, as aware UTC."""
    return last_start(lake, RUNS, "source", source)


def last_start(lake: Lake, ledger: str, column: str, name: str) -> datetime | None:
    """When the newest run recorded in the ledger table ``ledger`` (``_runs``,
    ``_pipeline_runs``, ``_exports``) whose ``column`` is ``name`` started, as aware UTC."""
    runs = _ledger_rows(lake, pa.schema([("started_at", TIMESTAMP)]), {column: name}, ledger)
    return _utc(pc.max(runs["started_at"].cast(pa.int64())).as_py())


def _utc(epoch_us: int | None) -> datetime | None:
    """Microseconds since the epoch as aware UTC (a timestamp column read as integers: no
    time-zone library in between)."""
    if epoch_us is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=epoch_us)


def source_runs(lake: Lake, source: str | None, run_id: str | None = None
                ) -> list[dict[str, Any]]:
    """Every ledger row of ``source`` (of every source if None; only run ``run_id`` if
    given), oldest first."""
    runs = _ledger_rows(lake, RUNS_SCHEMA, {"source": source, "run_id": run_id})
    runs = runs.take(pc.sort_indices(runs["started_at"]))
    columns = {f.name: [_utc(v) for v in runs[f.name].cast(pa.int64()).to_pylist()]
               if f.type == TIMESTAMP else runs[f.name].to_pylist() for f in RUNS_SCHEMA}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
