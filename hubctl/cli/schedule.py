"""``hubctl schedule``: what to install in cron or systemd, a foreground scheduler, a list."""

from __future__ import annotations

import functools
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from hubctl.cron import CronExpr

__all__ = ["COMMANDS"]

LOG_FORMAT = click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                          show_default=True,
                          help="Log lines for people, or JSON lines for a log shipper.")


def _schedules() -> dict[str, CronExpr]:
    from hubctl.schedule import scheduled

    config = hub().config
    found = scheduled(config)
    if not found:
        raise ConfigError(f"no source in {config.path or 'hub.toml (none found)'} has a schedule",
                          hint='add schedule = "*/10 * * * *" to a [sources.NAME] table')
    return found


@click.group("schedule")
def schedule() -> None:
    """Schedules: sources, pipelines and exports in hub.toml with schedule = "CRON" (local
    time), and pipelines that run after sources (after = [...]).

    \b
    Examples:
      hubctl schedule list
      hubctl schedule emit --systemd --output-dir /etc/systemd/system
      hubctl schedule run --log-format json
    """


@schedule.command("emit")
@click.option("--cron", "kind", flag_value="cron", help="Print crontab lines.")
@click.option("--systemd", "kind", flag_value="systemd",
              help="Print systemd units: timers, services, listeners.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --systemd: write the unit files into this folder instead.")
@click.option("--user", is_flag=True,
              help="With --systemd: units for a user manager (systemctl --user); implied by "
                   "an --output-dir under systemd/user.")
@click.option("--log", "log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --cron: the file every line appends its output to "
                   "[default: hubctl-schedule.log beside hub.toml].")
def emit(kind: str | None, output_dir: Path | None, user: bool, log: Path | None) -> None:
    """Print what to install so that cron or systemd runs everything the hub runs.

    Scheduled sources run `hubctl ingest --source NAME` (the source's lock keeps runs from
    overlapping: exit 75 = skipped); pipelines with [pipelines.NAME] schedule = "CRON" run
    `hubctl run NAME`, those with after = ["SOURCE", ...] run after each successful run of
    those sources; MQTT sources get a `hubctl listen NAME` service (systemd only: Type=simple,
    Restart=on-failure, NoNewPrivileges, ProtectSystem=strict, ReadWritePaths= the lake).
    Timers get OnCalendar= lines that fire when the cron expression does and Persistent=true;
    cron lines append their output to a log, so cron mails nothing.

    \b
    Examples:
      (crontab -l; hubctl schedule emit --cron) | crontab -   # adds to your crontab
      hubctl schedule emit --systemd --output-dir /etc/systemd/system
      hubctl schedule emit --systemd --user --output-dir ~/.config/systemd/user
    """
    from hubctl.schedule import cron_table, systemd_units

    if kind is None:
        raise UsageError("choose --cron or --systemd")
    ctx = hub()
    config = ctx.config
    if not (scheduled_anything(config)):
        raise ConfigError(f"nothing to schedule in {config.path or 'hub.toml (none found)'}",
                          hint='add schedule = "*/10 * * * *" to a [sources.NAME] table, an '
                               "MQTT source, or a [pipelines.NAME] table")
    lake = ctx.config.lake if ctx.lake_option else None
    if kind == "cron":
        if output_dir is not None or user:
            raise UsageError("--output-dir and --user go with --systemd; redirect --cron output")
        click.echo(cron_table(config, lake, log), nl=False)
        return
    if log is not None:
        raise UsageError("--log goes with --cron (systemd units log to the journal)")
    if output_dir is not None and "systemd/user" in output_dir.resolve().as_posix():
        user = True
    units = systemd_units(config, lake, user=user)
    if output_dir is None:
        for name, text in units.items():
            click.echo(f"# ---- {name} ----\n{text}")
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (output_dir / name).write_text(text, encoding="utf-8")
    start = " ".join(n for n in units if n.endswith(".timer") or n.startswith("hubctl-listen-"))
    flag = " --user" if user else ""
    click.echo(f"wrote {len(units)} unit files to {output_dir}; then: systemctl{flag} "
               f"daemon-reload && systemctl{flag} enable --now {start}", err=True)


def scheduled_anything(config: Any) -> bool:
    """Whether hub.toml has anything `emit` writes: a scheduled or MQTT source, a pipeline,
    an export with a schedule."""
    return bool(config.pipelines) or any(s.schedule is not None or s.mqtt is not None
                                         for s in config.sources.values()) or any(
        e.get("schedule") for e in getattr(config, "exports", {}).values())


@schedule.command("run")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Runs at the same time at most (each source, pipeline or export once at a "
                   "time).")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Schedule only these sources (repeatable; default: every scheduled one).")
@click.option("--pipeline", "pipelines", multiple=True, metavar="NAME",
              help="Schedule only these pipelines (repeatable).")
@click.option("--export", "exports", multiple=True, metavar="NAME",
              help="Schedule only these exports (repeatable).")
@LOG_FORMAT
def run(jobs: int, sources: tuple[str, ...], pipelines: tuple[str, ...],
        exports: tuple[str, ...], log_format: str) -> None:
    """Run scheduled sources, pipelines and exports when due, in the foreground, until
    SIGTERM or ^C.

    Each due source runs in this process, in a thread, as `hubctl ingest --source NAME` would
    run it; a [pipelines.NAME] with a schedule as `hubctl run NAME` with its params, and one
    with after = ["SOURCE", ...] after each successful run of those sources; an
    [exports.NAME] with a schedule as `hubctl export NAME`. Missed fire times (the machine
    was off, a run took long) coalesce into one run. Two schedulers on one lake never run a
    source, pipeline or export twice at once: the loser of its lock is logged as skipped. On
    SIGTERM no new run starts and the scheduler exits once running ones have ended; a second
    SIGTERM asks ingests to stop after their current commit. With --source, --pipeline or
    --export, only what they name is scheduled (and the pipelines after the sources named).

    \b
    Example:
      hubctl schedule run --log-format json >> /var/log/hubctl.log
    """
    from hubctl.schedule import (
        Scheduler,
        log_event,
        pipelines_after,
        scheduled,
        scheduled_exports,
        scheduled_pipelines,
    )

    ctx = hub()
    config = ctx.config
    found = {"source": scheduled(config), "pipeline": scheduled_pipelines(config),
             "export": scheduled_exports(config)}
    after = pipelines_after(config)
    if not any(found.values()):
        raise ConfigError(f"nothing has a schedule in {config.path or 'hub.toml (none found)'}",
                          hint='add schedule = "*/10 * * * *" to a [sources.NAME], '
                               "[pipelines.NAME] or [exports.NAME] table")
    asked = {"source": sources, "pipeline": pipelines, "export": exports}
    for kind, names in asked.items():
        unknown = [n for n in names if n not in found[kind]]
        if unknown:
            raise ConfigError(f"not a scheduled {kind}: {', '.join(unknown)}",
                              hint=f"scheduled: {', '.join(found[kind]) or 'none'}")
    narrowed = any(asked.values())
    chosen = {kind: {n: e for n, e in table.items() if not narrowed or n in asked[kind]}
              for kind, table in found.items()}
    logger = functools.partial(log_event, log_format, stream=sys.stdout)
    ctx.lake.root.mkdir(parents=True, exist_ok=True)
    code = Scheduler(config, ctx.lake, chosen["source"], logger, jobs=jobs,
                     pipelines=chosen["pipeline"], exports=chosen["export"],
                     after={s: p for s, p in after.items() if s in chosen["source"]}).run()
    sys.exit(code)


@schedule.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Each scheduled source: its schedule, last run, whether it is due, and the next fire;
    then each [pipelines.NAME]: its schedule or the sources it runs after; then each
    [exports.NAME] with a schedule: its last export, whether it is due, the next fire.

    \b
    Example:
      hubctl schedule list --json
    """
    from hubctl.cli import pyarrow_without_pandas
    from hubctl.cron import local_zone
    from hubctl.ledger import last_run_start, last_start
    from hubctl.schedule import (
        LEDGERS,
        due,
        pipelines_after,
        scheduled,
        scheduled_exports,
        scheduled_pipelines,
    )

    pyarrow_without_pandas()  # the ledgers are read with pyarrow
    ctx = hub()
    config = ctx.config
    timed = scheduled(config)
    exports = scheduled_exports(config)
    if not timed and not config.pipelines and not exports:
        _schedules()  # raises: nothing is scheduled
    lake = ctx.lake
    now = datetime.now(local_zone())
    rows: list[dict[str, Any]] = []
    for name, expr in timed.items():
        is_due, fire = due(lake, name, expr, now)
        nxt = fire if not is_due else expr.next_after(now)
        rows.append({"source": name, "schedule": expr.text,
                     "last_run_started": last_run_start(lake, name), "due": is_due,
                     "next_fire": nxt})
    pipelines_after(config)  # ConfigError for an unknown pipeline or `after` source
    pipeline_rows = [{"pipeline": name, "schedule": expr.text if expr else None,
                      "after": list(config.pipelines[name].after) or None,
                      "next_fire": expr.next_after(now) if expr else None}
                     for name in config.pipelines
                     for expr in [scheduled_pipelines(config).get(name)]]
    export_rows = []
    for name, expr in exports.items():
        is_due, fire = due(lake, name, expr, now, kind="export")
        export_rows.append({"export": name, "schedule": expr.text,
                            "last_export_started": last_start(lake, *LEDGERS["export"], name),
                            "due": is_due, "next_fire": fire if not is_due else
                            expr.next_after(now)})
    if as_json:
        emit_json(rows + pipeline_rows + export_rows)
        return
    for table in (rows, pipeline_rows, export_rows):
        if table:
            print_rows(list(table[0]), [[", ".join(v) if isinstance(v, list) else v
                                         for v in r.values()] for r in table])


COMMANDS = [schedule]
