"""What a report reads: pipeline runs from ``_pipeline_runs``, a run's rows of its derived
tables, and lake tables, all through the trusted catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from hubctl.catalog import Catalog
from hubctl.duck import quote_ident

__all__ = ["Run", "Source"]

PIPELINE_RUNS = "_pipeline_runs"  # hubctl.runner.PIPELINE_RUNS (not imported: it loads solvers)


@dataclass(frozen=True)
class Run:
    """One row of ``_pipeline_runs``: the run a section shows."""

    run_id: str
    pipeline: str
    status: str
    started_at: Any
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    later_failure: str | None = None  # a newer run that failed, and why


class Source:
    """Read-only access to the lake for the report (one catalog, opened once)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.names = set(catalog.views) | set(catalog.derived)

    def has(self, name: str) -> bool:
        """True when the catalog has the view ``name`` (``X``, ``X_latest``, ``derived.p_t``)."""
        return name in self.names

    def table(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """The result of ``sql`` as an Arrow table."""
        return self.catalog.query(sql, params)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """The result of ``sql`` as a list of dicts."""
        result: list[dict[str, Any]] = self.table(sql, params).to_pylist()
        return result

    def latest_run(self, pipeline: str) -> Run | None:
        """The newest run of ``pipeline`` that wrote its tables (status ok or assert-failed),
        with a note when a newer run failed; None when there is none."""
        if not self.has(PIPELINE_RUNS):
            return None
        rows = self.rows(
            f"SELECT * FROM {PIPELINE_RUNS} WHERE pipeline = ? "
            "ORDER BY started_at DESC, run_id DESC", [pipeline])
        failure = None
        for row in rows:
            if row["status"] in ("ok", "assert-failed"):
                return Run(run_id=row["run_id"], pipeline=pipeline, status=row["status"],
                           started_at=row["started_at"], seconds=row["seconds"] or 0.0,
                           params=_json(row["params"]), summary=_json(row["summary"]),
                           tables=_json(row["tables"]), later_failure=failure)
            if failure is None:
                failure = f"run {row['run_id']} ({row['status']}): {row['error'] or ''}".strip()
        return None

    def derived(self, run: Run, table: str, columns: str = "*", where: str = "",
                order: str = "") -> pa.Table | None:
        """The rows ``run`` wrote to ``derived.<pipeline>_<table>``; None when the table is
        not in the lake (an empty table when a later run replaced it)."""
        view = f"derived.{run.pipeline}_{table}"
        if not self.has(view):
            return None
        name = f"derived.{quote_ident(f'{run.pipeline}_{table}')}"
        sql = f"SELECT {columns} FROM {name} WHERE _run_id = ?"
        if where:
            sql += f" AND ({where})"
        if order:
            sql += f" ORDER BY {order}"
        return self.table(sql, [run.run_id])


def _json(text: Any) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}
