"""``hubctl ingest``: one subcommand per adapter, and ``--source`` / ``--all`` for hub.toml."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import ConfigError, HubError, UsageError

__all__ = ["COMMANDS"]


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True,
                     help="Read the input again even if this exact input was ingested before "
                          "(still writes no duplicates).")(f)
    f = click.option("--max-reject-rate", type=click.FloatRange(0, 1), default=None,
                     help="Exit 4 when more than this share of records is rejected, e.g. 0.05.")(f)
    return json_option(f)


@click.group(invoke_without_command=True)
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Run a source declared in hub.toml (repeatable).")
@click.option("--all", "run_all", is_flag=True, help="Run every source declared in hub.toml.")
@_common
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], run_all: bool, force: bool,
           max_reject_rate: float | None, as_json: bool) -> None:
    """Read a source into the lake: parse, convert units, validate, upsert, record the run.

    Use a subcommand for files given on the command line, or --source / --all for sources
    declared in hub.toml. Re-ingesting the same input is a no-op unless --force.

    \b
    Examples:
      hubctl ingest openaq air_quality_long.csv --stations air_quality_stations.csv
      hubctl ingest --source eu-air
      hubctl ingest --all --json

    Exit codes: 0 done, 1 failed, 2 usage, 4 over --max-reject-rate, 75 source locked.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not sources and not run_all:
        click.echo(ctx.get_help())
        raise UsageError("name an adapter subcommand, --source NAME or --all")
    config = hub().config
    if not config.sources:
        raise ConfigError(f"no sources declared in {config.path or 'hub.toml (none found)'}",
                          hint="run `hubctl init` and add a [sources.NAME] table")
    names = list(config.sources) if run_all else list(sources)
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise ConfigError(f"unknown source(s): {', '.join(unknown)}",
                          hint=f"declared in {config.path}: {', '.join(config.sources)}")
    runs, failures = [], []
    for name in names:
        src = config.sources[name]
        try:
            runs.append(_run(src.adapter, src.inputs, _source_options(src), name, force,
                             max_reject_rate))
        except HubError as exc:
            failures.append((name, exc))
            if len(names) == 1:
                raise
            click.secho(f"error: source {name}: {exc}", fg="red", err=True)
    _report(runs, as_json)
    if failures:
        worst = max(f[1].exit_code for f in failures)
        sys.exit(worst)


def _source_options(src: Any) -> dict[str, Any]:
    from hubctl.adapters import get_adapter

    try:
        adapter = get_adapter(src.adapter)
    except KeyError as exc:
        raise ConfigError(f"source {src.name}: {exc.args[0]}") from None
    known = {p.name: p for p in adapter.params}
    out: dict[str, Any] = {}
    for key, value in src.options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"source {src.name}: adapter {adapter.name} has no option {key!r}",
                              hint=f"its options: {', '.join(known) or 'none'}")
        param = known[name]
        if isinstance(param.type, click.Path) and isinstance(value, str):
            value = str(src.base / value)
        out[name] = value
    return out


def _run(adapter_name: str, inputs: list[str], options: dict[str, Any], source: str | None,
         force: bool, max_reject_rate: float | None) -> Any:
    from hubctl.adapters import get_adapter
    from hubctl.ingest import IngestRequest, expand_inputs
    from hubctl.ingest import ingest as run_ingest

    adapter = get_adapter(adapter_name)
    paths = expand_inputs(inputs)
    if not paths:
        raise UsageError(f"{adapter_name}: give at least one input file")
    name = source or f"{adapter_name}:" + ",".join(str(p.resolve()) for p in paths)
    req = IngestRequest(adapter=adapter, inputs=paths, options=options, source=name,
                        force=force, max_reject_rate=max_reject_rate)
    lake = hub().lake
    with _progress(paths, adapter_name) as advance:
        return run_ingest(lake, req, progress=advance)


@contextmanager
def _progress(paths: list[Path], label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar over input bytes on a terminal; silent in cron and CI."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    total = sum(p.stat().st_size for p in paths)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(f"ingest {label}", total=total)
        yield lambda n: bar.advance(task, n)


def _report(runs: list[Any], as_json: bool) -> None:
    if as_json:
        emit_json([r.summary() for r in runs] if len(runs) != 1 else runs[0].summary())
        return
    cols = ["source", "status", "read", "written", "updated", "duplicate", "rejected", "run_id"]
    rows = [[r.source if len(r.source) < 60 else "…" + r.source[-59:], r.status, r.read,
             r.written, r.updated, r.duplicate, r.rejected, r.run_id] for r in runs]
    print_rows(cols, rows)
    for r in runs:
        for w in r.warnings:
            click.secho(f"warning: {w}", fg="yellow", err=True)
        if r.rejected:
            click.echo(f"{r.rejected} record(s) rejected: hubctl rejects --run {r.run_id}",
                       err=True)


def _adapter_command(name: str) -> click.Command:
    from hubctl.adapters import get_adapter

    adapter = get_adapter(name)

    def callback(files: tuple[str, ...], source_name: str | None, force: bool,
                 max_reject_rate: float | None, as_json: bool, **options: Any) -> None:
        run = _run(name, list(files), options, source_name, force, max_reject_rate)
        _report([run], as_json)

    command = click.Command(
        name=name, callback=callback,
        help=f"{adapter.summary}\n\n\b\nExample:\n  {adapter.example}\n\n"
             f"Produces: {', '.join(adapter.entity_types)}.",
        short_help=adapter.summary,
        params=[click.Argument(["files"], nargs=-1, required=True, type=click.Path()),
                *adapter.params,
                click.Option(["--source-name"], default=None, metavar="NAME",
                             help="Name of this source in the ledger and its lock "
                                  "(default: adapter and input paths).")],
    )
    return _common(command)  # type: ignore[return-value]


def _attach() -> None:
    from hubctl.adapters import ADAPTERS

    for name in ADAPTERS:
        ingest.add_command(_adapter_command(name))


_attach()

COMMANDS = [ingest]
