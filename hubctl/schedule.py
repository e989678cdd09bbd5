"""Schedules of hub.toml sources: when a source is due, what to install in cron or systemd,
and a foreground scheduler (``hubctl schedule run``).

*Due*: a source is due when a fire time of its schedule falls after the start of its last
finished run (any outcome) and not after now; a source that never ran is due. However many
fire times were missed, one run serves them all (missed runs coalesce). The scheduler runs each
due source in a thread of its own process, through the engine function that ``hubctl ingest
--source NAME`` calls (:func:`hubctl.orchestrate.source_request`); the source's lock keeps two runs
of one source (from two schedulers, cron and a person) from overlapping: the loser is logged as
skipped (exit code 75 for ``hubctl ingest``).

Pipelines (``[pipelines.NAME] schedule``, or ``after = [SOURCE, ...]``: after each successful
run of those sources) and exports (``[exports.NAME] schedule``) are run by the same scheduler
the same way, through :func:`hubctl.orchestrate.run_pipelines` and
:func:`hubctl.export.bundle.export_bundle`; they are due by the start of their last run in
``_pipeline_runs`` and ``_exports``, and locked by ``pipeline:NAME`` and ``export:NAME``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hubctl.config import Config
from hubctl.cron import CronError, CronExpr, local_zone, parse_cron
from hubctl.errors import ConfigError
from hubctl.lake import Lake
from hubctl.ledger import last_run_start, last_start
from hubctl.s3 import S3Root

if TYPE_CHECKING:
    from hubctl.orchestrate import SourceRun

__all__ = ["LEDGERS", "Logger", "Scheduler", "Task", "cron_table", "due", "log_event",
           "pipelines_after", "run_event", "scheduled", "scheduled_exports", "scheduled_pipelines",
           "systemd_units"]

Logger = Callable[..., None]


def log_event(fmt: str, event: str, stream: IO[str] | None = None, **fields: Any) -> None:
    """One log line: JSON (``fmt == "json"``) or ``time event key=value ...`` text."""
    out = stream or sys.stderr
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if fmt == "json":
        line = json.dumps({"time": now, "event": event, **fields}, ensure_ascii=False,
                          default=_jsonable)
    else:
        parts = [f"{k}={v}" for k, v in fields.items() if v is not None]
        line = " ".join([now, event, *parts])
    out.write(line + "\n")
    out.flush()


def run_event(result: SourceRun) -> tuple[str, dict[str, Any]]:
    """The log event of one source's run: ``run-finished``, ``run-skipped`` (locked) or
    ``run-failed``, with its counts, exit code and duration."""
    summary = result.summary()
    duration = round(result.seconds, 3)
    if result.status == "locked":
        return "run-skipped", {"source": result.source, "reason": "locked",
                               "exit_code": result.exit_code, "duration_s": duration}
    fields = {k: summary.get(k) for k in ("source", "run_id", "status", "read", "written",
                                           "updated", "duplicate", "rejected")}
    if result.error is None:
        cursor = result.run.cursor_after if result.run is not None else None
        return "run-finished", {**fields, "cursor": cursor, "exit_code": result.exit_code,
                                "duration_s": duration}
    return "run-failed", {**fields, "error": summary["error"], "hint": summary["hint"],
                          "exit_code": result.exit_code, "duration_s": duration}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def scheduled(config: Config, names: list[str] | None = None) -> dict[str, CronExpr]:
    """The parsed schedule of every source that has one (only ``names`` if given)."""
    out: dict[str, CronExpr] = {}
    for name, src in config.sources.items():
        if src.schedule is None or (names is not None and name not in names):
            continue
        if getattr(src, "mqtt", None):  # a listener runs all the time; `hubctl listen` owns it
            continue
        out[name] = _parse(config, "sources", name, src.schedule)
    return out


def _parse(config: Config, table: str, name: str, text: str) -> CronExpr:
    try:
        return parse_cron(text)
    except CronError as exc:
        raise ConfigError(f"{config.path}: [{table}.{name}] schedule: {exc}",
                          hint="write five cron fields, e.g. schedule = \"*/10 * * * *\"") \
            from None


def scheduled_pipelines(config: Config) -> dict[str, CronExpr]:
    """The parsed schedule of every ``[pipelines.NAME]`` that has one."""
    return {name: _parse(config, "pipelines", name, spec.schedule)
            for name, spec in config.pipelines.items() if spec.schedule is not None}


def pipelines_after(config: Config) -> dict[str, list[str]]:
    """Source name -> the pipelines that run after each of its successful runs
    (``after = [...]``); ConfigError for an unknown pipeline or source."""
    from hubctl.config_check import pipeline_problems

    problems = [p for spec in config.pipelines.values()
                for p in pipeline_problems(spec, config)]
    if problems:
        raise ConfigError(f"{config.path}: " + "; ".join(f"{p.key}: {p.message}"
                                                        for p in problems),
                          hint=problems[0].hint or "see `hubctl config check`")
    out: dict[str, list[str]] = {}
    for name, spec in config.pipelines.items():
        for source in spec.after:
            out.setdefault(source, []).append(name)
    return out


#: Where the start of each kind of scheduled run is recorded: ledger table, name column.
LEDGERS = {"source": ("_runs", "source"), "pipeline": ("_pipeline_runs", "pipeline"),
           "export": ("_exports", "name")}


def due(lake: Lake, source: str, expr: CronExpr, now: datetime,
        since: datetime | None = None, kind: str = "source") -> tuple[bool, datetime | None]:
    """Whether ``source`` (a pipeline or an export with ``kind``) is due at ``now``, and the
    fire time that makes it due or the next one.

    ``since`` (a fire time already tried) is taken if it is later than the last run's start.
    """
    last = last_run_start(lake, source) if kind == "source" else last_start(
        lake, *LEDGERS[kind], source)
    start = max((t for t in (last, since) if t is not None), default=None)
    if start is None:
        return True, None
    fire = expr.next_after(start, now.tzinfo)
    return fire <= now, fire


# ---------------------------------------------------------------- what to install

def _hubctl_argv(config: Config, lake: Path | S3Root | None = None) -> list[str]:
    exe = Path(sys.executable).parent / "hubctl"
    argv = [str(exe) if exe.exists() else "hubctl"]
    if config.path is not None:
        argv += ["--config", str(config.path)]
    if lake is not None:
        argv += ["--lake", str(lake)]
    return argv


def _ingest_argv(name: str) -> list[str]:
    return ["ingest", "--source", name, "--log-format", "json"]


def _run_argv(config: Config, name: str) -> list[str]:
    return ["run", name, *config.pipelines[name].param_args(), "--json"]


def _workdir(config: Config) -> Path:
    return config.path.parent if config.path else Path.cwd()


def cron_table(config: Config, lake: Path | S3Root | None = None, log: Path | None = None) -> str:
    """crontab lines: one per scheduled source (and the pipelines that run after it), one per
    scheduled pipeline, plus the single ``--all --due`` alternative. Every line appends its
    output to ``log`` (default ``hubctl-schedule.log`` beside hub.toml), so cron mails nothing.
    """
    base = _hubctl_argv(config, lake)
    workdir = _workdir(config)
    logfile = shlex.quote(str((log or workdir / "hubctl-schedule.log").resolve()))
    after = pipelines_after(config)

    def command(args: list[str]) -> str:
        return (shlex.join([*base, *args]) + f" >> {logfile} 2>&1").replace("%", "\\%")

    def line(expr: CronExpr, what: str, args: list[str], then: list[str]) -> str:
        if expr.has_seconds:
            return (f"# {what}: {expr.text!r} fires on seconds, which cron cannot do; "
                    "use `hubctl schedule emit --systemd` or `hubctl schedule run`")
        runs = " && { " + "; ".join(command(_run_argv(config, p)) for p in then) + "; }" \
            if then else ""
        cd = shlex.quote(str(workdir)).replace("%", "\\%")
        return f"{expr.text} cd {cd} && {command(args)}{runs}"

    lines = [f"# hubctl schedules from {config.path or 'hub.toml'}; install with `crontab -e`.",
             "# Times are the machine's local time. Output goes to the log, so cron mails",
             "# nothing. Exit code 75 means the previous run still held its lock (skipped).",
             "# Put service keys in the crontab environment or a file it sources, never in",
             "# hub.toml."]
    for name, expr in scheduled(config).items():
        lines.append(line(expr, name, _ingest_argv(name), after.get(name, [])))
    for name, expr in scheduled_pipelines(config).items():
        lines.append(line(expr, f"pipeline {name}", _run_argv(config, name), []))
    for name, expr in scheduled_exports(config).items():
        lines.append(line(expr, f"export {name}", ["export", name, "--json"], []))
    for name, src in config.sources.items():
        if src.mqtt is not None:
            lines.append(f"# {name}: an MQTT source runs all the time under `hubctl listen "
                         f"{name}`; cron cannot restart it: use `hubctl schedule emit --systemd`")
        elif src.schedule is None and name in after:
            lines.append(f"# {name} has no schedule: `{shlex.join(_ingest_argv(name)[:3])}` "
                         f"then runs {', '.join(after[name])} only when run by hand")
    every = command(["ingest", "--all", "--due", "--log-format", "json"])
    lines += ["# Or one line that runs whatever source is due each minute:",
              f"# * * * * * cd {shlex.quote(str(workdir))} && {every}"]
    return "\n".join(lines) + "\n"


def _unit_slug(name: str) -> str:
    """A source name as systemd unit-name text (systemd-escape style)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ":_.-") else
                   "".join(f"\\x{b:02x}" for b in c.encode()) for c in name)


def _exec_quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "/._-:=+,@" for c in arg) else \
        '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def _unit_path(path: Path | S3Root) -> str:
    """A path as a unit file setting value (``%`` doubled; quoted if it has spaces)."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


@dataclass(frozen=True)
class _Units:
    """What every unit of one ``emit`` shares."""

    base: list[str]
    workdir: Path
    lake: Path | S3Root  # a lake on S3 has no local folder to write
    user: bool

    def service(self, description: str, args: list[str], *, listener: bool = False,
                network: bool = True, on_success: list[str] | None = None) -> str:
        cmd = " ".join(_exec_quote(a) for a in [*self.base, *args])
        unit = f"[Unit]\nDescription={description}\n"
        if network and not self.user:  # a user manager has no network-online.target
            unit += "Wants=network-online.target\nAfter=network-online.target\n"
        if on_success:
            unit += f"OnSuccess={' '.join(on_success)}\n"
        unit += f"\n[Service]\nType={'simple' if listener else 'oneshot'}\n" \
                f"WorkingDirectory={_unit_path(self.workdir)}\nExecStart={cmd}\n"
        if listener:
            unit += ("Restart=on-failure\nRestartSec=5s\n"
                     "# 2: hub.toml is wrong; 75: another listener holds the source\n"
                     "RestartPreventExitStatus=2 75\n"
                     "# SIGTERM: commit what is held, then exit 0\nTimeoutStopSec=90s\n")
        else:
            unit += ("# 75: the previous run still held its lock (skipped, not failed)\n"
                     "SuccessExitStatus=75\n")
        return unit + self.hardening(listener) + \
            "# Service keys: EnvironmentFile=/etc/hubctl/keys.env (outside version control)\n" \
            + ("\n[Install]\nWantedBy=" + ("default.target" if self.user else
                                             "multi-user.target") + "\n" if listener else "")

    def hardening(self, listener: bool) -> str:
        out = "NoNewPrivileges=true\n"
        if self.user:
            return out + ("# In a user manager, ProtectSystem=strict needs unprivileged user "
                          "namespaces;\n# where you have them, add ProtectSystem=strict and "
                          f"{self.writes()}\n")
        if listener:
            out += ("ProtectSystem=strict\n"
                    "# the lake must exist before the first start (hubctl init, or mkdir)\n"
                    f"{self.writes()}\nPrivateTmp=true\n")
        return out

    def writes(self) -> str:
        """The unit setting that lets the service write the lake (nothing for a lake on S3)."""
        if isinstance(self.lake, S3Root):
            return "# the lake is on object storage: no local folder to write"
        return f"ReadWritePaths={_unit_path(self.lake)}"


def _timer(description: str, unit: str, expr: CronExpr) -> str:
    calendars = "".join(f"OnCalendar={c}\n" for c in expr.on_calendar(local_zone()))
    return (f"[Unit]\nDescription={description} (cron: {expr.text})\n\n"
            f"[Timer]\n{calendars}Persistent=true\nUnit={unit}.service\n\n"
            "[Install]\nWantedBy=timers.target\n")


def scheduled_exports(config: Config) -> dict[str, CronExpr]:
    """The parsed schedule of every ``[exports.NAME]`` that has one (``hubctl export NAME``)."""
    return {name: _parse(config, "exports", name, str(spec["schedule"]))
            for name, spec in config.exports.items() if spec.get("schedule")}


def systemd_units(config: Config, lake: Path | S3Root | None = None,
                  user: bool = False) -> dict[str, str]:
    """Unit file name -> text: per scheduled source a oneshot service and a
    ``Persistent=true`` timer; per MQTT source a ``hubctl listen`` service (``Type=simple``,
    restarted on failure, sandboxed to write only the lake); per pipeline with a schedule a
    service and a timer, and with ``after`` a service the sources' services start on success.
    ``user``: for a user manager (``systemctl --user``), whose units cannot see system
    targets such as ``network-online.target``."""
    root = lake.resolve() if lake is not None else config.lake
    units = _Units(_hubctl_argv(config, lake), _workdir(config), root, user)
    after = pipelines_after(config)
    timed = scheduled(config)
    out: dict[str, str] = {}
    for name, src in config.sources.items():
        slug = _unit_slug(name)
        if src.mqtt is not None:
            out[f"hubctl-listen-{slug}.service"] = units.service(
                f"hubctl listener of MQTT source {name}", ["listen", name], listener=True)
            continue
        if name not in timed and name not in after:
            continue
        unit = f"hubctl-ingest-{slug}"
        out[f"{unit}.service"] = units.service(
            f"hubctl ingest of source {name}", _ingest_argv(name),
            on_success=[f"hubctl-run-{_unit_slug(p)}.service" for p in after.get(name, [])])
        if name in timed:
            out[f"{unit}.timer"] = _timer(f"Schedule of hubctl source {name}", unit, timed[name])
    timed_pipelines = scheduled_pipelines(config)
    for name in config.pipelines:
        unit = f"hubctl-run-{_unit_slug(name)}"
        out[f"{unit}.service"] = units.service(f"hubctl pipeline {name}",
                                               _run_argv(config, name), network=False)
        if name in timed_pipelines:
            out[f"{unit}.timer"] = _timer(f"Schedule of hubctl pipeline {name}", unit,
                                          timed_pipelines[name])
    for name, expr in scheduled_exports(config).items():
        unit = f"hubctl-export-{_unit_slug(name)}"
        out[f"{unit}.service"] = units.service(f"hubctl export of bundle {name}",
                                               ["export", name, "--json"], network=False)
        out[f"{unit}.timer"] = _timer(f"Schedule of hubctl export {name}", unit, expr)
    return out


# ---------------------------------------------------------------- the scheduler

@dataclass(frozen=True)
class Task:
    """One thing the scheduler runs: a source's ingest, a pipeline or an export."""

    kind: str  # source | pipeline | export
    name: str


@dataclass
class _Job:
    """A task being run by a thread of the scheduler."""

    task: Task
    fire: datetime | None
    thread: threading.Thread | None = None
    event: tuple[str, dict[str, Any]] | None = None  # its log event, once it has ended
    ok: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class Scheduler:
    """Runs due sources, pipelines and exports in this process (at most ``jobs`` at once, each
    in a thread, through the engine functions their commands call) until told to stop.

    ``sources``, ``pipelines`` and ``exports`` map names to schedules; ``after`` maps a source
    to the pipelines that run after each of its successful runs (``after = [...]``)."""

    config: Config
    lake: Lake
    sources: dict[str, CronExpr]
    log: Logger
    jobs: int = 2
    poll: float = 0.2  # seconds between looks at the clock and the running jobs
    zone: tzinfo = field(default_factory=local_zone)
    pipelines: dict[str, CronExpr] = field(default_factory=dict)
    exports: dict[str, CronExpr] = field(default_factory=dict)
    after: dict[str, list[str]] = field(default_factory=dict)
    stopping: int = 0  # signals received
    _tried: dict[Task, datetime] = field(default_factory=dict)
    _next: dict[Task, datetime | None] = field(default_factory=dict)
    _running: dict[Task, _Job] = field(default_factory=dict)
    _queued: list[Task] = field(default_factory=list)  # pipelines after a source's success
    _signal: str = ""
    _announced: bool = False

    def timed(self) -> dict[Task, CronExpr]:
        """Every task with a schedule."""
        return {Task(kind, name): expr
                for kind, table in (("source", self.sources), ("pipeline", self.pipelines),
                                    ("export", self.exports))
                for name, expr in table.items()}

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Stop starting runs; a second signal also asks the running ingests to stop after the
        commit in progress (pulls stop at their next request; pipelines and exports finish).

        A signal handler: it only sets flags. The loop logs ``stopping`` at its next step, so
        that a run it was starting when the signal came is logged before it (running ingests
        are threads: the signal may arrive in any of them, so it cannot be blocked)."""
        from hubctl.running import request_stop

        self.stopping += 1
        self._signal = signal.Signals(signum).name
        if self.stopping > 1:
            request_stop(self._signal)

    def _announce_stop(self) -> None:
        if self.stopping and not self._announced:
            self._announced = True
            self.log("stopping", signal=self._signal,
                     waiting_for=sorted(f"{t.kind} {t.name}" for t in self._running) or None)

    def run(self) -> int:
        """The loop: start due tasks, log finished ones; returns the exit code (0)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        self.log("scheduler-started", pid=os.getpid(), lake=str(self.lake.root),
                 sources={n: e.text for n, e in self.sources.items()},
                 pipelines={n: e.text for n, e in self.pipelines.items()} or None,
                 exports={n: e.text for n, e in self.exports.items()} or None,
                 after=self.after or None)
        timed = self.timed()
        while not self.stopping:
            self._reap()
            now = datetime.now(self.zone)
            for task in [*self._queued, *timed]:
                if self.stopping or len(self._running) >= self.jobs:
                    break
                if task in self._running:
                    continue
                if task in self._queued:
                    self._queued.remove(task)
                    self._start(task, None)
                elif self._is_due(task, timed[task], now) and not self.stopping:
                    # (a signal may have come while asking the ledger)
                    self._start(task, now)
            if not self.stopping:
                time.sleep(self.poll)
        self._announce_stop()
        while self._running:
            self._reap()
            time.sleep(self.poll)
        self.log("scheduler-stopped", pid=os.getpid())
        return 0

    def _is_due(self, task: Task, expr: CronExpr, now: datetime) -> bool:
        """Cheap check on the cached next fire; the ledger is asked only when that has come."""
        cached = self._next.get(task, now)
        if cached is not None and cached > now:
            return False
        try:
            is_due, fire = due(self.lake, task.name, expr, now, self._tried.get(task),
                               kind=task.kind)
        except Exception as exc:  # an unreadable ledger: say so, try again at the next fire
            self._tried[task] = now
            self._next[task] = expr.next_after(now)
            self.log("schedule-error", **{task.kind: task.name},
                     error=f"{type(exc).__name__}: {exc}")
            return False
        self._next[task] = None if is_due else fire
        return is_due

    def _start(self, task: Task, now: datetime | None) -> None:
        """Run ``task`` in a thread of its own, on a Lake object of its own; ``now`` is the
        fire time it serves (None: a pipeline started by a source's success)."""
        job = _Job(task, now)
        work = {"source": self._ingest, "pipeline": self._pipeline,
                "export": self._export}[task.kind]

        def target() -> None:
            job.event, job.ok = work(task.name, Lake(self.lake.root))

        job.thread = threading.Thread(target=target, name=f"{task.kind} {task.name}",
                                      daemon=True)
        if now is not None:
            self._tried[task] = now
            self._next[task] = now
        self._running[task] = job
        job.thread.start()
        self.log("run-started", **{task.kind: task.name}, pid=os.getpid())

    def _ingest(self, name: str, lake: Lake) -> tuple[tuple[str, dict[str, Any]], bool]:
        from hubctl.orchestrate import source_request, try_request

        result = try_request(name, lambda: source_request(self.config, name), lake)
        return run_event(result), result.exit_code == 0 and result.status != "locked"

    def _pipeline(self, name: str, lake: Lake) -> tuple[tuple[str, dict[str, Any]], bool]:
        from hubctl.config import param_text
        from hubctl.orchestrate import run_pipelines
        from hubctl.pipelines import PIPELINES

        began = time.monotonic()
        spec = self.config.pipelines.get(name)
        pairs = [f"{k}={param_text(v)}" for k, v in (spec.params if spec else {}).items()]
        if name not in PIPELINES:
            return ("run-failed", {"pipeline": name, "error": f"unknown pipeline {name!r}",
                                   "hint": f"known: {', '.join(sorted(PIPELINES))}",
                                   "exit_code": 2, "duration_s": 0.0}), False
        [result] = run_pipelines(lake, {name: PIPELINES[name]}, {name: pairs}, {})
        fields = {k: v for k, v in result.as_json().items()
                  if k in ("pipeline", "run_id", "status", "exit_code", "error", "hint",
                           "missing_inputs")}
        fields["duration_s"] = round(time.monotonic() - began, 3)
        if result.status == "locked":
            return ("run-skipped", {**fields, "reason": "locked"}), False
        event = "run-finished" if result.exit_code == 0 else "run-failed"
        return (event, fields), result.exit_code == 0

    def _export(self, name: str, lake: Lake) -> tuple[tuple[str, dict[str, Any]], bool]:
        from hubctl.errors import LockHeld
        from hubctl.export.bundle import export_bundle
        from hubctl.export.request import export_request
        from hubctl.orchestrate import error_hint, error_message, exit_code

        began = time.monotonic()
        try:
            out = export_bundle(lake, export_request(self.config, lake, name))
        except Exception as exc:  # kept and logged, like a source's failure
            code = exit_code(exc)
            fields = {"export": name, "exit_code": code,
                      "duration_s": round(time.monotonic() - began, 3)}
            if isinstance(exc, LockHeld):
                return ("run-skipped", {**fields, "reason": "locked"}), False
            return ("run-failed", {**fields, "error": error_message(exc),
                                   "hint": error_hint(exc)}), False
        return ("run-finished", {
            "export": name, "export_id": out["export_id"], "bundle": out["bundle"],
            "rows": {t["table"]: t["rows"] for t in out["tables"]}, "exit_code": 0,
            "duration_s": round(time.monotonic() - began, 3)}), True

    def _reap(self) -> None:
        """Log every job that has ended: its counts, skipped (locked) or its error; queue the
        pipelines that run after a source that succeeded."""
        for task, job in list(self._running.items()):
            if job.thread is not None and job.thread.is_alive():
                continue
            del self._running[task]
            self._next.pop(task, None)  # ask the ledger again at the next fire
            if job.event is None:  # the thread died without a result: a bug in the loop
                self.log("run-failed", **{task.kind: task.name},
                         error="the run ended without a result", exit_code=1,
                         duration_s=round(time.monotonic() - job.started, 3))
                continue
            event, fields = job.event
            self.log(event, **fields)
            if task.kind == "source" and job.ok and not self.stopping:
                for name in self.after.get(task.name, []):
                    queued = Task("pipeline", name)
                    if queued not in self._queued:
                        self._queued.append(queued)
