"""Commands that read the lake: ``sql``, ``tables``, ``rejects``, ``catalog``, ``entities``,
``validate``."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import (
    emit_json,
    json_option,
    output_file,
    print_rows,
    to_jsonable,
    wants_json,
)
from hubctl.errors import UsageError

__all__ = ["COMMANDS"]

FORMATS = ("table", "csv", "json", "jsonl", "parquet")


def _catalog() -> Any:
    from hubctl.catalog import Catalog

    lake = hub().lake
    lake.require_root()
    return Catalog(lake)


@click.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout (required for parquet).")
@click.option("--json", "as_json", is_flag=True, callback=wants_json,
              help="Same as --format json; a failure is printed as JSON too.")
def sql(query: str, fmt: str, output: Path | None, as_json: bool) -> None:
    """Run a read-only DuckDB SQL query over the lake.

    Every entity type is a view (all rows) and <Type>_latest (newest row per id); _runs is the
    run ledger, _rejects the rejected records, derived.<pipeline>_<table> a pipeline's output.
    Only the tables the query names are opened.

    The query reads the lake and nothing else: statements other than queries (COPY, EXPORT,
    ATTACH, INSTALL, LOAD, SET, CREATE, ...) and files outside the lake's tables are refused.
    hubctl writes the result itself with --output; in CSV, lists and structs are JSON text.

    \b
    Examples:
      hubctl sql "SELECT id, max(pm25) FROM AirQualityObserved GROUP BY id"
      hubctl sql "SELECT * FROM _runs" --format json
      hubctl sql "SELECT * FROM AirQualityObserved" --format parquet -o aq.parquet
    """
    from hubctl.catalog import Catalog

    fmt = "json" if as_json else fmt
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    cat, statements = Catalog.for_user(hub().lake_root, query)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            assert output is not None
            table = cat.arrow(statements)
            with output_file(output), open(output, "wb") as sink:  # a file object: pyarrow
                pq.write_table(table, sink, compression="zstd")  # unlinks a path it fails on
            click.echo(f"wrote {output}", err=True)
            return
        result = cat.run(statements)
        columns = [d[0] for d in result.description or []]
        rows = result.fetchall()
    finally:
        cat.close()
    _write(columns, rows, fmt, output)


def _write(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, output: Path | None
           ) -> None:
    if fmt == "table":
        print_rows(columns, rows)
        return
    with contextlib.ExitStack() as stack:
        if output:
            stack.enter_context(output_file(output))
        stream = stack.enter_context(open(output, "w", encoding="utf-8", newline="")) \
            if output else sys.stdout
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([_csv_cell(v) for v in row] for row in rows)
        elif fmt == "json":
            records = [dict(zip(columns, r, strict=True)) for r in rows]
            stream.write(json.dumps(to_jsonable(records), indent=2, ensure_ascii=False,
                                    default=str) + "\n")
        else:
            for r in rows:
                stream.write(json.dumps(to_jsonable(dict(zip(columns, r, strict=True))),
                                        ensure_ascii=False, default=str) + "\n")
    if output:
        click.echo(f"wrote {output}", err=True)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: lists, structs and maps as JSON text, times in ISO 8601, NULL empty."""
    if isinstance(value, list | dict | tuple):
        return json.dumps(to_jsonable(value), ensure_ascii=False, default=str)
    return to_jsonable(value)


@click.command()
@json_option
def tables(as_json: bool) -> None:
    """List the lake's tables: rows, attributes, time span, size, version and last run.

    Size is the current snapshot's Parquet files (ZSTD-compressed); "on disk" adds the older
    versions kept for time travel until `hubctl lake vacuum`, and the transaction log. The
    size of the whole lake folder follows on stderr.

    \b
    Example:
      hubctl tables --json
    """
    from hubctl.stats import folder_bytes, human_bytes, table_stats

    lake = hub().lake
    lake.require_root()
    stats = table_stats(lake)
    if as_json:
        emit_json(stats)
        return
    cols = ["table", "rows", "ids", "attributes", "from", "to", "size", "on disk", "version",
            "last_run"]
    print_rows(cols, [[s["table"], s["rows"], s.get("ids"), len(s.get("attributes", [])),
                       s.get("from"), s.get("to"), human_bytes(s["bytes"]),
                       human_bytes(s["disk_bytes"]), s["version"], s.get("last_run")]
                      for s in stats])
    click.echo(f"lake {lake.root}: {human_bytes(folder_bytes(lake.root))} on disk", err=True)


# A record is "line 17", "entry 3, IntervalReading 12" or a JSON pointer: sort by its first
# and second number as numbers (line 9 before line 10), then as text.
_RECORD_ORDER = ("TRY_CAST(regexp_extract(record, '(\\d+)', 1) AS BIGINT) NULLS LAST, "
                 "TRY_CAST(regexp_extract(record, '\\d+\\D+(\\d+)', 1) AS BIGINT) NULLS FIRST, "
                 "record")


@click.command()
@click.argument("entity_type", required=False)
@click.option("--run", "run_id", default=None, help="Only rejects of this run id.")
@click.option("--limit", default=50, show_default=True, help="At most this many rows.")
@json_option
def rejects(entity_type: str | None, run_id: str | None, limit: int, as_json: bool) -> None:
    """Show rejected records with every reason and the raw record.

    \b
    Examples:
      hubctl rejects AirQualityObserved
      hubctl rejects --run 20261122T101500123456Z-a1b2c3 --json
    """
    cat = _catalog()
    try:
        if "_rejects" not in cat.views:
            rows: list[dict[str, Any]] = []
        else:
            where, params = [], []
            if entity_type:
                where.append("entity_type = ?")
                params.append(entity_type)
            if run_id:
                where.append("run_id = ?")
                params.append(run_id)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = cat.query(
                f"SELECT run_id, entity_type, file, record, codes, reasons, raw FROM _rejects "
                f"{clause} ORDER BY run_id DESC, file, {_RECORD_ORDER} LIMIT {int(limit)}",
                params).to_pylist()
    finally:
        cat.close()
    if as_json:
        emit_json([r | {"reasons": json.loads(r["reasons"])} for r in rows])
        return
    if not rows:
        click.echo("no rejects")
        return
    print_rows(["entity_type", "file", "record", "codes", "reasons", "raw"],
               [[r["entity_type"], Path(r["file"]).name, r["record"], r["codes"],
                 "; ".join(x["message"] for x in json.loads(r["reasons"])), r["raw"][:120]]
                for r in rows])


@click.command()
@click.argument("database", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--absolute", is_flag=True,
              help="Absolute file paths (for clients that cannot start in the file's folder; "
                   "the lake then cannot move without a hubctl command after the move).")
def catalog(database: Path, absolute: bool) -> None:
    """Write a DuckDB database whose views read the lake's current snapshot.

    Any DuckDB client (CLI, notebook, BI tool) can then query the lake without hubctl. The
    lake remembers the file (<lake>/_catalogs.json) and rewrites it when a run ends (also
    inside `hubctl schedule run` and `hubctl listen`) and when any hubctl command that changed
    the lake ends (ingest, run, lake compact, lake vacuum, ...), so its views stay correct; a
    client that already has it open sees the new views when it reopens it. The file opens in
    DuckDB 1.5 and later (the previous release's storage format).

    Paths are relative to the file's folder, so a lake that moves together with its catalog
    keeps working: start the client in that folder, or run
    SET file_search_path = '<folder>' first. Delete the file to stop the rewrites.

    On a lake on S3 the file is not registered: its views name the current snapshot's
    s3:// files (a client reads them with DuckDB's httpfs extension) and do not follow later
    commits, and after `hubctl lake vacuum` may fail with "No files found". Write it again
    after each change.

    \b
    Example:
      hubctl catalog lake/city.duckdb
      cd lake && duckdb city.duckdb "SELECT count(*) FROM AirQualityObserved"
    """
    from hubctl.catalog import write_catalog

    lake = hub().lake
    lake.require_root()
    views = write_catalog(lake, database, absolute=absolute)
    click.echo(f"wrote {database} with {len(views)} views: {', '.join(views)}")
    if not isinstance(lake.root, Path):  # an S3 lake: catalog files are not registered
        click.echo(f"warning: {database} names the s3:// files of the lake's current snapshot "
                   "and is not rewritten by later commits; run `hubctl catalog` again after "
                   "each ingest, run, compact or vacuum", err=True)


COMMANDS = [sql, tables, rejects, catalog]
