"""``hubctl init`` and lake maintenance: ``hubctl lake compact|vacuum|history``."""

from __future__ import annotations

from pathlib import Path

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import UsageError

__all__ = ["COMMANDS"]

LAKE_README = """# The lake

One folder per table, each a Delta Lake table (Parquet files plus a `_delta_log/`):

- `<Type>/` — one table per NGSI-LD entity type (AirQualityObserved, PointOfInterest, ...),
  partitioned by `date=YYYY-MM-DD` (UTC date of `observed_at`) for time series.
- `_runs/` — the run ledger: one row per ingest run with its counts.
- `_rejects/` — every rejected record with its reasons and raw form.
- `_locks/` — lock files (one per source, one for maintenance); safe to delete when idle.
- `derived/<pipeline>/` — outputs of analyses.

Query it with `hubctl sql`, or write a DuckDB database with `hubctl catalog FILE.duckdb`.
"""


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing hub.toml.")
def init(force: bool) -> None:
    """Write a commented starter hub.toml and create the lake folder.

    \b
    Example:
      hubctl init && $EDITOR hub.toml && hubctl ingest --all
    """
    from hubctl.config import STARTER_TOML

    target = hub().config_option or Path("hub.toml")
    if target.exists() and not force:
        raise UsageError(f"{target} exists; use --force to overwrite it")
    target.write_text(STARTER_TOML, encoding="utf-8")
    lake = hub().lake
    lake.root.mkdir(parents=True, exist_ok=True)
    readme = lake.root / "README.md"
    if not readme.exists():
        readme.write_text(LAKE_README, encoding="utf-8")
    click.echo(f"wrote {target}; lake at {lake.root}")


@click.group("lake")
def lake_group() -> None:
    """Lake maintenance: compaction, vacuum and table history (takes the maintenance lock)."""


def _tables(names: tuple[str, ...]) -> list[str]:
    lake = hub().lake
    lake.require_root()
    chosen = list(names) or lake.table_names()
    for n in chosen:
        lake.open(n)  # UnknownTable with a hint
    return chosen


@lake_group.command()
@click.argument("tables", nargs=-1)
@json_option
def compact(tables: tuple[str, ...], as_json: bool) -> None:
    """Rewrite small Parquet files into larger ones (all tables if none named).

    \b
    Example:
      hubctl lake compact AirQualityObserved
    """
    from hubctl.locks import MAINTENANCE, hold

    lake = hub().lake
    out = []
    with hold(lake.root, MAINTENANCE):
        for name in _tables(tables):
            m = lake.compact(name)
            out.append({"table": name, "files_added": m.get("numFilesAdded"),
                        "files_removed": m.get("numFilesRemoved"),
                        "version": lake.open(name).version()})
    if as_json:
        emit_json(out)
    else:
        print_rows(["table", "files_added", "files_removed", "version"],
                   [list(r.values()) for r in out])


@lake_group.command()
@click.argument("tables", nargs=-1)
@click.option("--retention-hours", default=168, show_default=True,
              help="Keep files that versions of the last N hours still need (time travel).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted.")
@json_option
def vacuum(tables: tuple[str, ...], retention_hours: int, dry_run: bool, as_json: bool) -> None:
    """Delete Parquet files that no version within the retention period needs.

    \b
    Example:
      hubctl lake vacuum --retention-hours 0   # after compact: keep only the current files
    """
    from hubctl.locks import MAINTENANCE, hold

    lake = hub().lake
    out = []
    with hold(lake.root, MAINTENANCE):
        for name in _tables(tables):
            files = lake.vacuum(name, retention_hours, dry_run)
            out.append({"table": name, "files": len(files), "dry_run": dry_run})
    if as_json:
        emit_json(out)
    else:
        print_rows(["table", "files deleted" if not dry_run else "would delete", "dry_run"],
                   [list(r.values()) for r in out])


@lake_group.command()
@click.argument("table")
@click.option("--limit", default=20, show_default=True)
@json_option
def history(table: str, limit: int, as_json: bool) -> None:
    """Commits of one table, newest first (version, time, operation, metrics).

    \b
    Example:
      hubctl lake history AirQualityObserved --json
    """
    from datetime import UTC, datetime

    lake = hub().lake
    lake.require_root()
    commits = lake.history(table, limit)
    if as_json:
        emit_json(commits)
        return
    rows = []
    for c in commits:
        ts = datetime.fromtimestamp(c.get("timestamp", 0) / 1000, tz=UTC).isoformat()
        metrics = c.get("operationMetrics", {})
        rows.append([c.get("version"), ts, c.get("operation"),
                     metrics.get("num_target_rows_inserted", metrics.get("num_added_rows")),
                     metrics.get("num_target_rows_updated")])
    print_rows(["version", "time", "operation", "inserted", "updated"], rows)


COMMANDS = [init, lake_group]


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo"), show_default=True, help="Where to write the demo city.")
@click.option("--hours", default=72, show_default=True, help="Hours of data per station.")
@click.pass_context
def demo(ctx: click.Context, folder: Path, hours: int) -> None:
    """Write a small demo city (air quality in OpenAQ, AirKorea and NGSI-LD formats, 112 calls
    and patrol points), ingest it through the real adapters, show what is in the lake, and run
    the patrol_points analysis on it.

    \b
    Example:
      hubctl demo --dir /tmp/city && hubctl --config /tmp/city/hub.toml tables
    """
    import sys

    from hubctl.cli.context import HubContext
    from hubctl.cli.ingest import progress_bar, report_sources
    from hubctl.cli.query import sql, tables
    from hubctl.cli.run import pipeline_steps, show_pipeline
    from hubctl.demo import DEMO_PIPELINE, write_demo
    from hubctl.orchestrate import overall_exit, run_pipelines, run_sources, source_names
    from hubctl.pipelines import PIPELINES

    config = write_demo(folder, hours)
    click.echo(f"demo city written to {folder}/ (sources in {config})")
    obj = ctx.obj = HubContext(config_option=config, lake_option=hub().lake_option,
                               debug=hub().debug)
    sources = run_sources(obj.lake, obj.config, source_names(obj.config), force=True,
                          progress=progress_bar, debug=obj.debug)
    report_sources(sources, as_json=False, many=True)
    ctx.invoke(tables, as_json=False)
    ctx.invoke(sql, query="SELECT id, count(*) AS hours, round(avg(pm10), 1) AS pm10, "
               "round(avg(no2), 1) AS no2_ugm3 FROM AirQualityObserved GROUP BY id ORDER BY id",
               fmt="table", output=None, as_json=False)
    name, params = DEMO_PIPELINE
    analyses = run_pipelines(obj.lake, {name: PIPELINES[name]}, {name: list(params)}, {},
                             debug=obj.debug, step=pipeline_steps())
    for result in analyses:
        show_pipeline(result, as_json=False)
    code = overall_exit([*sources, *analyses])
    if code:
        sys.exit(code)


COMMANDS.append(demo)
