"""``hubctl ingest``: one subcommand per adapter, and ``--source`` / ``--all`` for hub.toml."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from hubctl.cli import leave_quickly, pyarrow_without_pandas
from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import UsageError

if TYPE_CHECKING:
    from hubctl.ingest import IngestRequest
    from hubctl.orchestrate import SourceRun

__all__ = ["COMMANDS"]


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True,
                     help="Read the input again even if this exact input was ingested before "
                          "(still writes no duplicates).")(f)
    f = click.option("--max-reject-rate", type=click.FloatRange(0, 1), default=None,
                     help="Exit 4 when more than this share of records is rejected, e.g. "
                          "0.05 (a run whose every record is rejected exits 4 anyway).")(f)
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

    \b
    Exit codes: 0 done (status empty, with a warning, when the input files held no record),
    1 failed, 2 usage or configuration, 4 records rejected (every record of a run, or more
    than --max-reject-rate), 75 source locked by another run (skipped).
    SIGTERM stops a run after the commit in progress, Ctrl-C where it is (exit 1); a second
    Ctrl-C or SIGTERM while it stops exits at once (130 or 143): the next command records
    that run as interrupted.
    With several sources each is listed with its own exit code (with --json: an array of run
    objects) and the command exits with the most severe: 1 > 2 > 4 > 75 > 0. --json prints
    the run object on failure too: status, error, hint and the counts so far.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not sources and not run_all:
        click.echo(ctx.get_help())
        raise UsageError("name an adapter subcommand, --source NAME or --all")
    from hubctl.orchestrate import run_sources, source_names

    pyarrow_without_pandas()  # hub.toml sources run in this process
    leave_quickly()
    config = hub().config
    names = source_names(config, None if run_all else list(dict.fromkeys(sources)))
    if due:
        names = _due(names, log_format)
    with _stoppable():
        results = run_sources(hub().lake, config, names, force=force,
                              max_reject_rate=max_reject_rate, progress=progress_bar,
                              debug=hub().debug, done=lambda r: _log(log_format, r))
    many = run_all or len(names) > 1
    quiet = due and not results and not as_json  # cron mails any output: none when nothing ran
    if (log_format != "json" or as_json) and not quiet:
        report_sources(results, as_json, many)
    _exit(results, logged=log_format == "json")


def _exit(results: list[SourceRun], logged: bool = False) -> None:
    """Exit with the most severe code of ``results``. The error of a single run is raised (its
    message and hint, its exit code, its traceback with --debug) unless ``logged`` (stderr is
    JSON lines, and its run-failed line holds the error); several runs were listed already."""
    from hubctl.orchestrate import overall_exit

    code = overall_exit(results)
    if code == 0:
        return
    if len(results) == 1 and results[0].error is not None and not logged:
        raise results[0].error
    sys.exit(code)


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


def _log(log_format: str, result: SourceRun) -> None:
    """One JSON line per source on stderr (--log-format json); a failure's message in text."""
    if log_format == "json":
        from hubctl.schedule import log_event, run_event

        event, fields = run_event(result)
        log_event("json", event, **fields)


@contextmanager
def _stoppable() -> Iterator[None]:
    """While a run is under way, SIGTERM asks it to stop (a token the engine checks between
    batches): the run ends after the commit in progress and is recorded as stopped. SIGINT
    (Ctrl-C) also raises KeyboardInterrupt: the run ends where it is, recorded as failed.
    Once a stop is under way, a second SIGINT or SIGTERM ends the process at once
    (:func:`_now`), so that a stop waiting on a stalled read, a long commit or the reading
    threads never needs ``kill -9`` and is never cut short by a traceback."""
    import signal
    import threading

    from hubctl.running import clear_stop, request_stop

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            _now(signum)
        stopping = True
        request_stop(signal.Signals(signum).name)

    def interrupt(signum: int, frame: object) -> None:
        stop(signum, frame)  # so that a Spark job under way is cancelled (spark_ingest)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    previous_int = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        clear_stop()


def _now(signum: int) -> NoReturn:
    """End the process at once with status 128 + ``signum`` (130 for SIGINT, 143 for SIGTERM),
    skipping the stop under way. Nothing is lost: what was committed stays, and the run's
    marker (:mod:`hubctl.running`) outlives the process, so the next command on the lake
    records the run as ``interrupted`` with the counts of its last commit (if its row says
    ``running``: not before its first row, nor once its end is recorded). Its locks go with
    the process; stderr's last lines are forwarded first (:func:`hubctl.cli.panics.unfiltered`)."""
    import signal

    from hubctl.cli.panics import unfiltered

    name = signal.Signals(signum).name
    message = (f"error: stopped at once by a second {name}\n  hint: what the run committed "
               "stays; the next hubctl command on this lake records it as interrupted if the "
               "ledger still shows it running; run the same command again to complete it\n")
    try:
        unfiltered(timeout=1.0)
        os.write(2, (("\n" if os.isatty(2) else "") + message).encode())
    finally:
        os._exit(128 + signum)


@contextmanager
def progress_bar(req: IngestRequest) -> Iterator[Callable[[int], None]]:
    """A progress bar over the input bytes on a terminal; silent in cron and CI. The engine
    advances it as batches are committed, and it never passes its total."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    total = sum(_size(p) for p in req.inputs)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(f"ingest {req.adapter.name}", total=total)
        yield capped(total, lambda n: bar.advance(task, n))


def capped(total: int, advance: Callable[[int], None]) -> Callable[[int], None]:
    """``advance`` that never goes past ``total`` in all (an adapter may count more bytes
    than the files hold, e.g. decoded Arrow bytes)."""
    done = [0]

    def step(nbytes: int) -> None:
        n = max(0, min(nbytes, total - done[0]))
        if n:
            done[0] += n
            advance(n)
    return step


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def report_sources(results: list[SourceRun], as_json: bool, many: bool) -> None:
    """The runs as JSON (an object, or an array when several sources were asked for) or as a
    table, with warnings and errors on stderr."""
    if as_json:
        emit_json([r.summary() for r in results] if many else results[0].summary())
        return
    if not results:
        click.echo("no source ran", err=True)
        return
    cols = ["source", "status", "exit", "read", "written", "updated", "duplicate", "rejected",
            "tables (rows added)", "run_id"]
    rows = []
    for r in results:
        s = r.summary()
        short = len(r.source) < 60 or not sys.stdout.isatty()  # TSV: the whole name
        name = r.source if short else "…" + r.source[-59:]
        gained = s.get("rows_added", {})
        written = sorted((set(s.get("tables", {})) | set(gained)) - {"_rejects"})
        added = ", ".join(f"{t} +{gained.get(t, 0):,}" for t in written)
        rows.append([name, s["status"], s["exit_code"], *(s[k] for k in (
            "read", "written", "updated", "duplicate", "rejected")),
            added or "-", s.get("run_id")])
    print_rows(cols, rows)
    for r in results:
        s = r.summary()
        for w in s.get("warnings", []):
            click.secho(f"warning: {w}", fg="yellow", err=True)
        if s["rejected"]:
            click.echo(f"{s['rejected']} record(s) rejected: hubctl rejects --run {s['run_id']}",
                       err=True)
        if r.error is not None and len(results) > 1:  # one run's error is raised instead
            click.secho(f"error: source {r.source}: {s['error']}", fg="red", err=True)
            if s["hint"]:
                click.echo(f"  hint: {s['hint']}", err=True)


def _adapter_command(name: str) -> click.Command:
    from hubctl.adapters import get_adapter
    from hubctl.orchestrate import ingest_request, try_request

    adapter = get_adapter(name)

    def callback(files: tuple[str, ...], source_name: str | None, engine: str | None,
                 force: bool, max_reject_rate: float | None, as_json: bool,
                 **options: Any) -> None:
        if engine is None:  # on Spark the pyspark driver may hand pyarrow pandas objects
            pyarrow_without_pandas()
        leave_quickly()
        with _stoppable():
            result = try_request(source_name or name, lambda: ingest_request(
                name, list(files), options, source=source_name, force=force,
                max_reject_rate=max_reject_rate, engine=engine), hub().lake, progress_bar)
        report_sources([result], as_json, many=False)
        _exit([result])

    command = click.Command(
        name=name, callback=callback,
        help=f"{adapter.summary}\n\n\b\nExample:\n  {adapter.example}\n"
             + (f"  {adapter.pull_example}\n" if adapter.pull_example else "")
             + "\n"
             f"Produces: {', '.join(adapter.entity_types)}.",
        short_help=adapter.summary,
        params=[click.Argument(["files"], nargs=-1, type=click.Path(),
                               required=not adapter.pull_params),
                *adapter.params, *adapter.pull_params,
                click.Option(["--source-name"], default=None, metavar="NAME",
                             help="Name of this source in the ledger and its lock "
                                  "(default: adapter and input paths)."),
                click.Option(["--engine"], default=None, metavar="MASTER",
                             help="Read, convert and gate the files on Spark (local[N] or "
                                  "spark://HOST:PORT; one task per file where the adapter "
                                  "reads its files apart, one per byte range of a large CSV "
                                  "for meter-readings, calls and openaq --stations: "
                                  "HUBCTL_INGEST_RANGE_BYTES, default 64 MiB); this process "
                                  "commits them (default: all in this process).")],
    )
    return _common(command)  # type: ignore[return-value]


COMMANDS = [ingest]
