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
- `_locks/` — lock files (per source, per input file, per table commit, maintenance); safe
  to delete when idle. On S3 they are lease objects (`<name>.lease`).
- `_running/` — one marker per run in progress; a marker whose process died makes the next
  command record that run as `interrupted`.
- `_staging/` — batches an `ingest --engine` run's Spark executors read and gated, until the
  run commits them; a run killed before deleting its folder leaves it, and
  `hubctl lake vacuum` removes it.
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
    """Lake maintenance: compaction, vacuum, duplicate-key checks and table history (compact,
    vacuum and check --repair take the maintenance lock)."""


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

    What happens to readers: `hubctl sql`, pipelines and the catalog files registered with
    `hubctl catalog` (rewritten when this command ends) read the current snapshot, whose
    files vacuum never deletes. A query that is running now, a DuckDB client that opened a
    catalog file before the last commit, and time travel to a version older than the
    retention period may fail with "No files found": rerun the query or reopen the file.
    On a lake on S3, catalog files are not registered: write them again after a vacuum.

    It also removes the staging folders (`_staging/`) of `ingest --engine` runs that were
    killed before deleting their own (the row `_staging` of the output); a folder whose run
    is still in progress is kept.

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
        if not tables:
            from hubctl.spark_ingest import STAGING, stale_staging

            folders = stale_staging(lake.root, dry_run)
            if folders:
                out.append({"table": STAGING, "files": len(folders), "dry_run": dry_run})
    if as_json:
        emit_json(out)
    else:
        print_rows(["table", "files deleted" if not dry_run else "would delete", "dry_run"],
                   [list(r.values()) for r in out])


@lake_group.command()
@click.argument("table", required=False)
@click.option("--repair", is_flag=True,
              help="Keep the last write of each duplicated key (newest _ingested_at, then the "
                   "newest commit): one commit per table, recorded in _runs as a lake-check run.")
@json_option
def check(table: str | None, repair: bool, as_json: bool) -> None:
    """Find keys that more than one row holds, in one entity table or all (the key is
    (id, observed_at) for time series, id for static types).

    hubctl never writes a key twice; duplicates come from older versions of hubctl or from
    other tools writing to the lake. A command that meets them fails and points here.

    \b
    Examples:
      hubctl lake check
      hubctl lake check AirQualityObserved --repair --json

    Exit codes: 0 no duplicate keys (or all repaired), 1 duplicate keys found and not repaired,
    75 lake maintenance (compact, vacuum, another repair) in progress.
    """
    import sys

    from hubctl.lakecheck import check_table
    from hubctl.lakecheck import repair as repair_tables
    from hubctl.locks import MAINTENANCE, hold
    from hubctl.registry import registry

    lake = hub().lake
    lake.require_root()
    names = _tables((table,) if table else ())
    types = [registry()[n] for n in names if n in registry()]
    if table and not types:
        raise UsageError(f"{table} is not an entity table; lake check reads entity tables",
                         hint="run `hubctl tables` to list them")
    run = None
    if repair:
        with hold(lake.root, MAINTENANCE):
            checks, run = repair_tables(lake, types)
    else:
        checks = [check_table(lake, et) for et in types]
    found = sum(c.duplicate_keys for c in checks)
    status = "clean" if not found else "repaired" if repair else "duplicates"
    if as_json:
        emit_json({"status": status, "duplicate_keys": found,
                   "run_id": run.run_id if run else None,
                   "tables": [c.as_dict() for c in checks]})
    else:
        print_rows(["table", "rows", "duplicate_keys", "extra_rows", "dates", "repaired"],
                   [[c.table, c.rows, c.duplicate_keys, c.extra_rows, len(c.dates), c.repaired]
                    for c in checks])
        for c in checks:
            if c.examples:
                click.echo(f"{c.table}: e.g. {'; '.join(c.examples)}", err=True)
        if run is not None:
            click.echo(f"repaired; recorded as run {run.run_id} in _runs", err=True)
    if status == "duplicates":
        click.echo(f"{found} duplicated key(s): run `hubctl lake check "
                   f"{table + ' ' if table else ''}--repair` to keep the last write of each",
                   err=True)
        sys.exit(1)


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
    and patrol points), ingest it through the real adapters, show what is in the lake, run
    the patrol_points analysis on it, export its open data (bundle ``city``) and write its
    report (``report/report.html``, see docs/report.md).

    \b
    Example:
      hubctl demo --dir /tmp/city && hubctl --config /tmp/city/hub.toml tables
    """
    import sys

    from hubctl.cli.context import HubContext
    from hubctl.cli.export import export
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
    ctx.invoke(export, name="city", tables=(), as_json=False)
    from hubctl.cli.report import report

    ctx.invoke(report, out=folder / "report", pipelines=(), title="Demo city", as_json=False)


COMMANDS.append(demo)
