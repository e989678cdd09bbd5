"""Commands that read the lake: ``sql``, ``tables``, ``rejects``, ``catalog``, ``entities``,
``validate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows, to_jsonable, wants_json
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
    """Run a DuckDB SQL query over the lake.

    Every entity type is a view (all rows) and <Type>_latest (newest row per id); _runs is the
    run ledger and _rejects the rejected records.

    \b
    Examples:
      hubctl sql "SELECT id, max(pm25) FROM AirQualityObserved GROUP BY id"
      hubctl sql "SELECT * FROM _runs" --format json
      hubctl sql "SELECT * FROM AirQualityObserved" --format parquet -o aq.parquet
    """
    fmt = "json" if as_json else fmt
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    cat = _catalog()
    try:
        if output is not None and fmt in ("csv", "parquet"):
            rel = cat.relation(query)
            if fmt == "csv":
                rel.write_csv(str(output), header=True)
            else:
                rel.write_parquet(str(output))
            click.echo(f"wrote {output}", err=True)
            return
        table = cat.query(query)
    finally:
        cat.close()
    _write(table, fmt, output)


def _write(table: Any, fmt: str, output: Path | None) -> None:
    rows = table.to_pylist()
    if fmt == "table":
        print_rows(table.column_names, [list(r.values()) for r in rows])
        return
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        return
    if fmt == "json":
        text = json.dumps(to_jsonable(rows), indent=2, ensure_ascii=False) + "\n"
    else:
        text = "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in rows)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@click.command()
@json_option
def tables(as_json: bool) -> None:
    """List the lake's tables: rows, attributes, time span, version and last run.

    \b
    Example:
      hubctl tables --json
    """
    from hubctl.stats import table_stats

    lake = hub().lake
    lake.require_root()
    stats = table_stats(lake)
    if as_json:
        emit_json(stats)
        return
    cols = ["table", "rows", "ids", "attributes", "from", "to", "version", "last_run"]
    print_rows(cols, [[s["table"], s["rows"], s.get("ids"), len(s.get("attributes", [])),
                       s.get("from"), s.get("to"), s["version"], s.get("last_run")]
                      for s in stats])


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
def catalog(database: Path) -> None:
    """Write a DuckDB database whose views read the lake's current snapshot.

    Any DuckDB client (CLI, notebook, BI tool) can then query the lake without hubctl. Views
    point at the Parquet files of the snapshot at the time of writing: run this again after
    ingesting to see newer data.

    \b
    Example:
      hubctl catalog city.duckdb && duckdb city.duckdb "SELECT count(*) FROM AirQualityObserved"
    """
    from hubctl.catalog import Catalog

    lake = hub().lake
    lake.require_root()
    views = Catalog.write_database(lake, database)
    click.echo(f"wrote {database} with {len(views)} views: {', '.join(views)}")


COMMANDS = [sql, tables, rejects, catalog]
