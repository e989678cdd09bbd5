"""``hubctl ingest``: one subcommand per adapter, and ``--source`` / ``--all`` for hub.toml."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import EXIT_LOCKED, ConfigError, HubError, UsageError

__all__ = ["COMMANDS"]


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True,
                     help="Read the input again even if this exact input was ingested before "
                          "(still writes no duplicates).")(f)
    f = click.option("--max-reject-rate", type=click.FloatRange(0, 1), default=None,
                     help="Exit 4 when more than this share of records is rejected, e.g. 0.05.")(f)
    return json_option(f)


class _AdapterGroup(click.Group):
    """Subcommands built from the adapter registry when asked for, so that an adapter's
    module (and what it imports) loads only when that adapter is used or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every adapter name, sorted."""
        from hubctl.adapters import MODULES

        return sorted(set(MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand of adapter ``cmd_name``, built once."""
        from hubctl.adapters import MODULES

        if cmd_name not in self.commands and cmd_name in MODULES:
            self.commands[cmd_name] = _adapter_command(cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_AdapterGroup, invoke_without_command=True)
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Run a source declared in hub.toml (repeatable).")
@click.option("--all", "run_all", is_flag=True, help="Run every source declared in hub.toml.")
@click.option("--due", is_flag=True,
              help="Only sources whose schedule fired since their last run started (for one "
                   "cron line: * * * * * hubctl ingest --all --due).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="json: one JSON line per source on stderr (run id, counts, duration) "
                   "instead of the table.")
@_common
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], run_all: bool, due: bool,
           log_format: str, force: bool, max_reject_rate: float | None, as_json: bool) -> None:
    """Read a source into the lake: parse, convert units, validate, upsert, record the run.

    Use a subcommand for files given on the command line, or --source / --all for sources
    declared in hub.toml. Re-ingesting the same input is a no-op unless --force.

    \b
    Examples:
      hubctl ingest openaq air_quality_long.csv --stations air_quality_stations.csv
      hubctl ingest --source eu-air
      hubctl ingest --all --json
      hubctl ingest --all --due --log-format json
      AIRKOREA_SERVICE_KEY=... hubctl ingest airkorea --api --sido 대구 --stations st.json

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
    # --all: every source `hubctl ingest` can run (MQTT sources belong to `hubctl listen`)
    names = [n for n, s in config.sources.items() if not getattr(s, "mqtt", None)] \
        if run_all else list(sources)
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise ConfigError(f"unknown source(s): {', '.join(unknown)}",
                          hint=f"declared in {config.path}: {', '.join(config.sources)}")
    live = [n for n in names if getattr(config.sources[n], "mqtt", None)]
    if live:
        raise UsageError(f"source(s) {', '.join(live)} are MQTT sources: they are received, "
                         "not ingested", hint=f"run `hubctl listen {' '.join(live)}`")
    if due:
        names = _due(names, log_format)
    runs, failures = [], []
    for name in names:
        src = config.sources[name]
        began = time.monotonic()
        try:
            runs.append(_run(src.adapter, src.inputs, _source_options(src), name, force,
                             max_reject_rate))
            _log_run(log_format, runs[-1], time.monotonic() - began)
        except HubError as exc:
            failures.append((name, exc))
            _log_failure(log_format, name, exc, time.monotonic() - began)
            if len(names) == 1 and log_format != "json":
                raise
            if log_format != "json":
                click.secho(f"error: source {name}: {exc}", fg="red", err=True)
    quiet = due and not runs and not as_json  # cron mails any output: none when nothing ran
    if (log_format != "json" or as_json) and not quiet:
        _report(runs, as_json)
    if failures:  # a real failure outranks "skipped, locked" (75) in the exit code
        codes = [exc.exit_code for _, exc in failures]
        sys.exit(max((c for c in codes if c != EXIT_LOCKED), default=EXIT_LOCKED))


def _due(names: list[str], log_format: str) -> list[str]:
    """The sources among ``names`` whose schedule is due now; the others are logged."""
    from hubctl.cron import local_zone
    from hubctl.schedule import due, log_event, scheduled

    config, lake = hub().config, hub().lake
    schedules = scheduled(config, names)
    now = datetime.now(local_zone())
    out = []
    for name in names:
        if name not in schedules:
            if log_format == "json":
                log_event("json", "not-scheduled", source=name)
            continue
        is_due, fire = due(lake, name, schedules[name], now)
        if is_due:
            out.append(name)
        elif log_format == "json":
            log_event("json", "not-due", source=name, next_fire=fire)
    return out


def _log_run(log_format: str, run: Any, seconds: float) -> None:
    if log_format != "json":
        return
    from hubctl.schedule import log_event

    summary = run.summary()
    log_event("json", "run-finished", **{k: summary[k] for k in (
        "source", "run_id", "status", "read", "written", "updated", "duplicate", "rejected")},
        cursor=run.cursor_after, duration_s=round(seconds, 3))


def _log_failure(log_format: str, name: str, exc: HubError, seconds: float) -> None:
    if log_format != "json":
        return
    from hubctl.errors import LockHeld
    from hubctl.schedule import log_event

    if isinstance(exc, LockHeld):
        log_event("json", "run-skipped", source=name, reason="locked", exit_code=exc.exit_code)
    else:
        log_event("json", "run-failed", source=name, error=exc.message, hint=exc.hint,
                  exit_code=exc.exit_code, duration_s=round(seconds, 3))


def _params(adapter: Any) -> list[click.Parameter]:
    """The adapter's options, and its pull options if it can pull from an API."""
    return [*adapter.params, *getattr(adapter, "pull_params", [])]


def _source_options(src: Any) -> dict[str, Any]:
    from hubctl.adapters import get_adapter

    try:
        adapter = get_adapter(src.adapter)
    except KeyError as exc:
        raise ConfigError(f"source {src.name}: {exc.args[0]}") from None
    known = {p.name: p for p in _params(adapter)}
    known |= {o.lstrip("-").replace("-", "_"): p for p in _params(adapter) for o in p.opts
              if p.name is not None and o.startswith("--")}  # `type` for --type too
    out: dict[str, Any] = {}
    for key, value in src.options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"source {src.name}: adapter {adapter.name} has no option {key!r}",
                              hint=f"its options: {', '.join(sorted(known)) or 'none'}")
        param = known[name]
        if isinstance(param.type, click.Path) and isinstance(value, str):
            value = str(src.base / value)
        out[param.name or name] = value
    return out


def _run(adapter_name: str, inputs: list[str], options: dict[str, Any], source: str | None,
         force: bool, max_reject_rate: float | None) -> Any:
    from hubctl.adapters import get_adapter
    from hubctl.ingest import IngestRequest, expand_inputs
    from hubctl.ingest import ingest as run_ingest

    adapter: Any = get_adapter(adapter_name)
    if hasattr(adapter, "is_pull") and adapter.is_pull(options):
        return _pull(adapter, inputs, options, source, max_reject_rate)
    pull_only = {p.name for p in getattr(adapter, "pull_params", [])}
    options = {k: v for k, v in options.items() if k not in pull_only}  # files: as before
    paths = expand_inputs(inputs, folders=getattr(adapter, "accepts_folders", False))
    if not paths:
        raise UsageError(f"{adapter_name}: give at least one input file")
    name = source or f"{adapter_name}:" + ",".join(str(p.resolve()) for p in paths)
    req = IngestRequest(adapter=adapter, inputs=paths, options=options, source=name,
                        force=force, max_reject_rate=max_reject_rate)
    lake = hub().lake
    with _progress(paths, adapter_name) as advance, _stoppable():
        return run_ingest(lake, req, progress=advance)


def _pull(adapter: Any, inputs: list[str], options: dict[str, Any], source: str | None,
          max_reject_rate: float | None) -> Any:
    """An API pull: no input files; the run resumes from the source's committed cursor."""
    from hubctl.ingest import IngestRequest
    from hubctl.ingest import ingest as run_ingest
    from hubctl.ledger import Cursor
    from hubctl.pull import Pulling

    if inputs:
        raise UsageError(f"{adapter.name}: an API pull reads no files ({inputs[0]} given)",
                         hint="drop the file arguments, or drop --api to read files")
    cursor = Cursor()
    req = IngestRequest(adapter=Pulling(adapter, cursor), inputs=[], options=options,
                        source=source or adapter.pull_source(options),
                        max_reject_rate=max_reject_rate, cursor=cursor)
    with _stoppable():
        return run_ingest(hub().lake, req)


class Stopped(HubError):
    """SIGTERM reached a running ingest: the run ends as failed, and says so in the ledger."""


@contextmanager
def _stoppable() -> Iterator[None]:
    """Turn SIGTERM into Stopped while a run is under way, so that the engine records it as
    a failed run (cursor not advanced) instead of the process vanishing without a trace."""
    import signal
    import threading

    from hubctl.pull import STOP

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        STOP.set()  # a pull stops at its next request instead of reading every page first
        raise Stopped(f"stopped by {signal.Signals(signum).name} while running",
                      hint="what was committed stays; the next run reads from the last cursor")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        STOP.clear()


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
        help=f"{adapter.summary}\n\n\b\nExample:\n  {adapter.example}\n"
             + (f"  {adapter.pull_example}\n" if hasattr(adapter, "pull_example") else "")
             + "\n"
             f"Produces: {', '.join(adapter.entity_types)}.",
        short_help=adapter.summary,
        params=[click.Argument(["files"], nargs=-1, type=click.Path(),
                               required=not hasattr(adapter, "pull_params")),
                *_params(adapter),
                click.Option(["--source-name"], default=None, metavar="NAME",
                             help="Name of this source in the ledger and its lock "
                                  "(default: adapter and input paths).")],
    )
    return _common(command)  # type: ignore[return-value]


COMMANDS = [ingest]
