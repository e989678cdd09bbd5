"""The run ledger (``_runs``) and the rejects table (``_rejects``).

Every run leaves one ledger row: what it read, what it wrote, updated, found duplicate or
rejected, which table versions it committed, and how it ended. Counts must reconcile:
``read = written + updated + duplicate + rejected``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from hubctl.duck import scan_sql, scratch
from hubctl.lake import Lake
from hubctl.rejects import Reject
from hubctl.types import TIMESTAMP

__all__ = ["REJECTS", "RUNS", "Cursor", "Run", "find_ingested", "last_cursor", "last_run_start",
           "new_run_id", "source_runs", "write_rejects", "write_run"]

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
    ("pid", pa.int64()),
])

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
    tables: dict[str, int] = field(default_factory=dict)
    # Rows each table gained (new keys appended; not in the ledger): long-format records that
    # pivot into one row count once per row here, once per record in ``written``.
    rows: dict[str, int] = field(default_factory=dict)
    # Files this run appended, per table (not in the ledger): see Batch.unique_keys.
    own_files: dict[str, set[str]] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    finished_at: datetime | None = None

    @property
    def reconciles(self) -> bool:
        """True when every record read is accounted for."""
        return self.read == self.written + self.updated + self.duplicate + self.rejected

    def summary(self) -> dict[str, Any]:
        """The run as a JSON-ready dict (what ``--json`` prints)."""
        return {
            "run_id": self.run_id, "source": self.source, "adapter": self.adapter,
            "status": self.status, "error": self.error, "read": self.read,
            "written": self.written, "updated": self.updated, "duplicate": self.duplicate,
            "rejected": self.rejected, "reconciles": self.reconciles, "tables": self.tables,
            "rows_added": self.rows,
            "warnings": self.warnings, "fingerprint": self.fingerprint,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def write_run(lake: Lake, run: Run) -> None:
    """Append the run's ledger row."""
    run.finished_at = run.finished_at or datetime.now(UTC)
    row = {
        "run_id": run.run_id, "source": run.source, "adapter": run.adapter,
        "fingerprint": run.fingerprint, "cursor_before": run.cursor_before,
        "cursor_after": run.cursor_after, "inputs": json.dumps(run.inputs, ensure_ascii=False),
        "options": json.dumps(run.options, ensure_ascii=False, default=str, sort_keys=True),
        "started_at": run.started_at, "finished_at": run.finished_at, "status": run.status,
        "error": run.error, "read": run.read, "written": run.written, "updated": run.updated,
        "duplicate": run.duplicate, "rejected": run.rejected,
        "tables": json.dumps(run.tables, sort_keys=True),
        "warnings": json.dumps(run.warnings, ensure_ascii=False), "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    lake.append(RUNS, pa.Table.from_pylist([row], schema=RUNS_SCHEMA))


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
    rows = _query(lake, "SELECT run_id FROM runs WHERE source = ? AND fingerprint = ? AND "
                        "status IN ('ok', 'over-reject-rate', 'rejected') "
                        "ORDER BY started_at DESC LIMIT 1",
                  [source, fingerprint])
    return rows[0][0] if rows else None


@dataclass
class Cursor:
    """Where a pull resumes: ``before`` is the last committed cursor (read by the engine under
    the source's lock), ``after`` what the adapter reached; committed only with a finished run."""

    before: str | None = None
    after: str | None = None


def _query(lake: Lake, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` over ``_runs`` (written ``FROM runs``); none if there is no ledger."""
    if not lake.exists(RUNS):
        return []
    files = lake.files(RUNS)
    if not files:
        return []
    con = scratch()
    try:
        return con.execute(sql.replace("FROM runs", f"FROM {scan_sql(files, hive=False)}"),
                           params).fetchall()
    finally:
        con.close()


def last_cursor(lake: Lake, source: str) -> str | None:
    """The cursor the newest successful run of ``source`` committed (a failed run never
    advances it)."""
    rows = _query(lake, "SELECT cursor_after FROM runs WHERE source = ? AND cursor_after IS NOT "
                        "NULL AND status IN ('ok', 'over-reject-rate', 'rejected') "
                        "ORDER BY finished_at DESC LIMIT 1", [source])
    return rows[0][0] if rows else None


def last_run_start(lake: Lake, source: str) -> datetime | None:
    """When the newest finished run of ``source`` (any outcome) started, as aware UTC."""
    rows = _query(lake, "SELECT epoch_us(max(started_at)) FROM runs WHERE source = ?", [source])
    return _utc(rows[0][0]) if rows else None


def _utc(epoch_us: int | None) -> datetime | None:
    """Microseconds since the epoch as aware UTC (DuckDB's timestamptz needs pytz otherwise)."""
    if epoch_us is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=epoch_us)


def source_runs(lake: Lake, source: str) -> list[dict[str, Any]]:
    """Every ledger row of ``source``, oldest first (for reports and tests)."""
    cols = [f.name for f in RUNS_SCHEMA]
    times = {f.name for f in RUNS_SCHEMA if f.type == TIMESTAMP}
    select = ", ".join(f"epoch_us({c})" if c in times else c for c in cols)
    rows = _query(lake, f"SELECT {select} FROM runs WHERE source = ? ORDER BY started_at",
                  [source])
    return [{c: _utc(v) if c in times else v for c, v in zip(cols, r, strict=True)}
            for r in rows]
