"""Schedules of hub.toml sources: when a source is due, what to install in cron or systemd,
and a foreground scheduler (``hubctl schedule run``).

*Due*: a source is due when a fire time of its schedule falls after the start of its last
finished run (any outcome) and not after now; a source that never ran is due. However many
fire times were missed, one run serves them all (missed runs coalesce). The scheduler runs each
due source as a child ``hubctl ingest --source NAME`` process; the source's lock keeps two runs
of one source (from two schedulers, cron and a person) from overlapping: the loser exits 75 and
is logged as skipped.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any

from hubctl.config import Config
from hubctl.cron import CronError, CronExpr, local_zone, parse_cron
from hubctl.errors import EXIT_LOCKED, ConfigError
from hubctl.lake import Lake
from hubctl.ledger import last_run_start

__all__ = ["Logger", "Scheduler", "cron_table", "due", "log_event", "scheduled",
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
        try:
            out[name] = parse_cron(src.schedule)
        except CronError as exc:
            raise ConfigError(f"{config.path}: [sources.{name}] schedule: {exc}",
                              hint="write five cron fields, e.g. schedule = \"*/10 * * * *\"") \
                from None
    return out


def due(lake: Lake, source: str, expr: CronExpr, now: datetime,
        since: datetime | None = None) -> tuple[bool, datetime | None]:
    """Whether ``source`` is due at ``now``, and the fire time that makes it due or the next one.

    ``since`` (a fire time already tried) is taken if it is later than the last run's start.
    """
    last = last_run_start(lake, source)
    start = max((t for t in (last, since) if t is not None), default=None)
    if start is None:
        return True, None
    fire = expr.next_after(start, now.tzinfo)
    return fire <= now, fire


# ---------------------------------------------------------------- what to install

def _hubctl_argv(config: Config, lake: Path | None = None) -> list[str]:
    exe = Path(sys.executable).parent / "hubctl"
    argv = [str(exe) if exe.exists() else "hubctl"]
    if config.path is not None:
        argv += ["--config", str(config.path)]
    if lake is not None:
        argv += ["--lake", str(lake)]
    return argv


def cron_table(config: Config, lake: Path | None = None) -> str:
    """crontab lines, one per scheduled source, plus the single ``--all --due`` alternative."""
    base = _hubctl_argv(config, lake)
    workdir = config.path.parent if config.path else Path.cwd()
    lines = [f"# hubctl schedules from {config.path or 'hub.toml'}; install with `crontab -e`.",
             "# Times are the machine's local time. Exit code 75 means the source's previous",
             "# run still held its lock (skipped). Put service keys in the crontab environment",
             "# or a file it sources, never in hub.toml."]
    for name, expr in scheduled(config).items():
        if expr.has_seconds:
            lines.append(f"# {name}: {expr.text!r} fires on seconds, which cron cannot do; "
                         "use `hubctl schedule emit --systemd` or `hubctl schedule run`")
            continue
        cmd = shlex.join([*base, "ingest", "--source", name, "--log-format", "json"])
        lines.append(f"{expr.text} cd {shlex.quote(str(workdir))} && "
                     + cmd.replace("%", "\\%"))
    every = shlex.join([*base, "ingest", "--all", "--due", "--log-format", "json"])
    lines += ["# Or one line that runs whatever is due each minute:",
              f"# * * * * * cd {shlex.quote(str(workdir))} && " + every.replace("%", "\\%")]
    return "\n".join(lines) + "\n"


def _unit_slug(name: str) -> str:
    """A source name as systemd unit-name text (systemd-escape style)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ":_.-") else
                   "".join(f"\\x{b:02x}" for b in c.encode()) for c in name)


def _exec_quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "/._-:=+,@" for c in arg) else \
        '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_units(config: Config, lake: Path | None = None) -> dict[str, str]:
    """Unit file name -> text: a oneshot service and a ``Persistent=true`` timer per source."""
    base = _hubctl_argv(config, lake)
    workdir = config.path.parent if config.path else Path.cwd()
    out: dict[str, str] = {}
    for name, expr in scheduled(config).items():
        unit = f"hubctl-ingest-{_unit_slug(name)}"
        cmd = " ".join(_exec_quote(a) for a in [*base, "ingest", "--source", name,
                                                 "--log-format", "json"])
        out[f"{unit}.service"] = (
            f"[Unit]\nDescription=hubctl ingest of source {name}\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Service]\nType=oneshot\nWorkingDirectory={workdir}\nExecStart={cmd}\n"
            "# 75: the previous run of this source still held its lock (skipped, not failed)\n"
            "SuccessExitStatus=75\n"
            "# Service keys: EnvironmentFile=/etc/hubctl/keys.env (outside version control)\n")
        calendars = "".join(f"OnCalendar={c}\n" for c in expr.on_calendar())
        out[f"{unit}.timer"] = (
            f"[Unit]\nDescription=Schedule of hubctl source {name} (cron: {expr.text})\n\n"
            f"[Timer]\n{calendars}Persistent=true\nUnit={unit}.service\n\n"
            "[Install]\nWantedBy=timers.target\n")
    return out


# ---------------------------------------------------------------- the scheduler

@dataclass
class _Child:
    source: str
    fire: datetime | None
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    started: float = field(default_factory=time.monotonic)


@dataclass
class Scheduler:
    """Runs due sources as child ``hubctl ingest --source NAME`` processes until told to stop."""

    config: Config
    lake: Lake
    sources: dict[str, CronExpr]
    log: Logger
    jobs: int = 2
    poll: float = 0.2  # seconds between looks at the clock and the children
    zone: tzinfo = field(default_factory=local_zone)
    stopping: int = 0  # signals received
    _tried: dict[str, datetime] = field(default_factory=dict)
    _next: dict[str, datetime | None] = field(default_factory=dict)
    _running: dict[str, _Child] = field(default_factory=dict)

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Stop starting runs; a second signal also stops the running ingests."""
        self.stopping += 1
        if self.stopping == 1:
            self.log("stopping", signal=signal.Signals(signum).name,
                     waiting_for=sorted(self._running) or None)
        else:
            for child in self._running.values():
                child.proc.terminate()

    def run(self) -> int:
        """The loop: start due sources, reap finished ones; returns the exit code (0)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        self.log("scheduler-started", pid=os.getpid(), lake=str(self.lake.root),
                 sources={n: e.text for n, e in self.sources.items()})
        while not self.stopping:
            self._reap()
            now = datetime.now(self.zone)
            for name, expr in self.sources.items():
                if self.stopping or len(self._running) >= self.jobs:
                    break
                if name not in self._running and self._is_due(name, expr, now):
                    signals = {signal.SIGTERM, signal.SIGINT}
                    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # start, then log, whole
                    try:
                        if not self.stopping:  # a signal may have come while asking the ledger
                            self._start(name, now)
                    finally:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            time.sleep(self.poll)
        while self._running:
            self._reap()
            time.sleep(self.poll)
        self.log("scheduler-stopped", pid=os.getpid())
        return 0

    def _is_due(self, name: str, expr: CronExpr, now: datetime) -> bool:
        """Cheap check on the cached next fire; the ledger is asked only when that has come."""
        cached = self._next.get(name, now)
        if cached is not None and cached > now:
            return False
        try:
            is_due, fire = due(self.lake, name, expr, now, self._tried.get(name))
        except Exception as exc:  # an unreadable ledger: say so, try again at the next fire
            self._tried[name] = now
            self._next[name] = expr.next_after(now)
            self.log("schedule-error", source=name, error=f"{type(exc).__name__}: {exc}")
            return False
        self._next[name] = None if is_due else fire
        return is_due

    def _start(self, name: str, now: datetime) -> None:
        argv = [sys.executable, "-c", "from hubctl.cli import main; main()",
                "--lake", str(self.lake.root)]
        if self.config.path is not None:
            argv += ["--config", str(self.config.path)]
        argv += ["ingest", "--source", name, "--json"]
        out = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the child is reaped)
        err = tempfile.TemporaryFile()  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # a terminal's ^C reaches us only
        self._tried[name] = now
        self._next[name] = now
        self._running[name] = _Child(name, now, proc, out, err)
        self.log("run-started", source=name, pid=proc.pid)

    def _reap(self) -> None:
        for name, child in list(self._running.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self._running[name]
            self._next.pop(name, None)  # ask the ledger again at the next fire
            duration = round(time.monotonic() - child.started, 3)
            child.out.seek(0)
            child.err.seek(0)
            stdout = child.out.read().decode("utf-8", "replace")
            stderr = child.err.read().decode("utf-8", "replace").strip()
            child.out.close()
            child.err.close()
            if code == EXIT_LOCKED:
                self.log("run-skipped", source=name, reason="locked", exit_code=code,
                         duration_s=duration)
                continue
            event, fields = _outcome(name, code, stdout, stderr, duration)
            self.log(event, **fields)


def _outcome(name: str, code: int, stdout: str, stderr: str,
             duration: float) -> tuple[str, dict[str, Any]]:
    """The log event of a finished child: its run summary, or its error."""
    try:
        summary = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    fields = {k: summary.get(k) for k in ("run_id", "status", "read", "written", "updated",
                                           "duplicate", "rejected") if k in summary}
    errors = [ln.removeprefix("error: ") for ln in stderr.splitlines() if ln.startswith("error")]
    return ("run-finished" if code == 0 else "run-failed",
            {"source": name, **fields, "exit_code": code, "duration_s": duration,
             "error": "; ".join(errors) or (stderr[-300:] if code else None)})
