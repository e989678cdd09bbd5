"""Ledger rows for micro-batches cut off by a crash between their data and their ledger commit.

A micro-batch commits its entity rows, then its rejects, then its ``_runs`` row: three Delta
commits, not one. A listener killed between them leaves rows whose ``_run_id`` has no ledger
row (its messages were not acknowledged, so the broker sends them again and they come back as
duplicates). When a listener starts, each such run gets a ``recovered`` ledger row counted
from what it left in the lake, so every row of the lake is accounted for in ``_runs``.
"""

from __future__ import annotations

from collections.abc import Iterable

from hubctl.duck import scan_sql, scratch
from hubctl.errors import UnknownTable
from hubctl.lake import Lake
from hubctl.ledger import REJECTS, RUNS, Run, write_run

__all__ = ["previous_topics", "recover_orphans"]


def _counts(lake: Lake, table: str, run_col: str, count: str, source_col: str,
            source: str) -> dict[str, int]:
    if not lake.exists(table):
        return {}
    try:
        files = lake.files(table)
    except UnknownTable:  # a folder left by a process killed while creating the table
        return {}
    if not files:
        return {}
    con = scratch()
    try:
        rows = con.execute(
            f"SELECT {run_col}, {count} FROM {scan_sql(files, hive=table not in (RUNS, REJECTS))}"
            f" WHERE {source_col} = ? GROUP BY 1", [source]).fetchall()
    finally:
        con.close()
    return {str(r[0]): int(r[1] or 0) for r in rows}


def recover_orphans(lake: Lake, source: str, adapter: str, types: Iterable[str]) -> list[Run]:
    """Write a ``recovered`` ledger row for each run of ``source`` that left rows or rejects
    in the lake but no ledger row; return them. The caller holds the source's lock."""
    known = set(_counts(lake, RUNS, "run_id", "count(*)", "source", source))
    written: dict[str, int] = {}
    tables: dict[str, dict[str, int]] = {}
    for name in sorted(set(types)):
        for run_id, n in _counts(lake, name, "_run_id", "count(*)", "_source", source).items():
            if run_id not in known:
                written[run_id] = written.get(run_id, 0) + n
                tables.setdefault(run_id, {})[name] = -1
    rejected = {k: v for k, v in _counts(lake, REJECTS, "run_id", "sum(records)", "source",
                                         source).items() if k not in known}
    runs = []
    for run_id in sorted(set(written) | set(rejected)):
        run = Run(run_id=run_id, source=source, adapter=adapter,
                  fingerprint=f"recovered:{run_id}", inputs=[], options={})
        run.written, run.rejected = written.get(run_id, 0), rejected.get(run_id, 0)
        run.read = run.written + run.rejected
        run.tables = tables.get(run_id, {})
        run.status = "recovered"
        run.warnings.append("the listener stopped after this micro-batch reached the lake and "
                            "before its ledger row; counted from the rows it left (its messages "
                            "were sent again and counted as duplicates by a later run)")
        write_run(lake, run)
        runs.append(run)
    return runs


def previous_topics(lake: Lake, source: str, client_id: str) -> set[str]:
    """The topics this client id subscribed to in earlier sessions (from its runs' inputs,
    ``mqtt://host:port/<topic>``): a persistent session keeps them until unsubscribed."""
    import json

    from hubctl.ledger import source_runs

    session = f"mqtt:{client_id}:"
    topics: set[str] = set()
    for text in {r["inputs"] for r in source_runs(lake, source)
                 if (r["fingerprint"] or "").startswith(session)}:
        for url in json.loads(text or "[]"):
            rest = str(url).split("://", 1)[-1]
            if "/" in rest:
                topics.add(rest.split("/", 1)[1])
    return topics
