"""Schedules: what `schedule emit` prints, when a source is due, `ingest --all --due`, and real
`hubctl schedule run` processes (two at once on one lake; SIGTERM)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hubctl.cron import parse_cron
from hubctl.lake import Lake
from hubctl.ledger import last_run_start, source_runs
from hubctl.schedule import due
from tests.helpers import hub, row, write_openaq

HUBCTL = str(Path(sys.executable).parent / "hubctl")


def write_hub(folder: Path, schedules: dict[str, str | None]) -> Path:
    """hub.toml with one openaq source per entry (None: no schedule) over a small file."""
    write_openaq(folder / "data", [row("S1", h, "no2", 10 + h) for h in range(3)])
    text = '[lake]\npath = "lake"\n'
    for name, cron in schedules.items():
        text += (f'\n[sources.{name}]\nadapter = "openaq"\ninputs = ["data/long.csv"]\n'
                 'options = { stations = "data/stations.csv" }\n')
        if cron is not None:
            text += f'schedule = "{cron}"\n'
    (folder / "hub.toml").write_text(text, encoding="utf-8")
    return folder / "hub.toml"


def test_emit_cron_prints_one_line_per_scheduled_source(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"eu-air": "*/10 * * * *", "manual": None,
                                  "fast": "*/5 * * * * *"})
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron")
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if not ln.startswith("#")]
    log = (tmp_path / "hubctl-schedule.log").resolve()
    assert len(lines) == 1 and lines[0].startswith("*/10 * * * * cd ")
    assert lines[0].endswith(f"--config {config.resolve()} --lake {(tmp_path / 'lake').resolve()}"
                             f" ingest --source eu-air --log-format json >> {log} 2>&1")
    assert "# fast: '*/5 * * * * *' fires on seconds, which cron cannot do" in result.stdout
    assert f"ingest --all --due --log-format json >> {log} 2>&1" in result.stdout
    assert "manual" not in result.stdout


def test_emit_systemd_units_fire_when_cron_would_and_persist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")  # whole-hour offsets: */10 is written in UTC
    config = write_hub(tmp_path, {"eu-air": "*/10 * * * *", "monthly": "0 3 1 * mon"})
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--systemd")
    assert result.exit_code == 0, result.output
    assert "# ---- hubctl-ingest-eu-air.timer ----" in result.stdout
    assert "OnCalendar=*-*-* *:00/10:00 UTC\nPersistent=true\n" in result.stdout
    # both day fields restricted: cron fires on either, so two OnCalendar lines
    assert "OnCalendar=*-*-1 03:00:00\nOnCalendar=Mon *-*-* 03:00:00\n" in result.stdout
    assert "SuccessExitStatus=75" in result.stdout and "Type=oneshot" in result.stdout
    units = tmp_path / "units"
    written = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--systemd",
                  "--output-dir", str(units))
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in units.iterdir()) == [
        "hubctl-ingest-eu-air.service", "hubctl-ingest-eu-air.timer",
        "hubctl-ingest-monthly.service", "hubctl-ingest-monthly.timer"]
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and check.stderr.strip() == "", check.stderr


def test_emit_needs_a_schedule_and_a_kind(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"manual": None})
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron")
    assert result.exit_code == 2 and "nothing to schedule" in result.output
    assert "schedule =" in result.output
    config = write_hub(tmp_path, {"bad": "61 * * * *"})
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron")
    assert result.exit_code == 2 and "[sources.bad] schedule: minute: 61" in result.output


def test_due_means_a_fire_time_since_the_last_run_started(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"eu-air": "*/10 * * * *"})
    lake = Lake(tmp_path / "lake")
    expr = parse_cron("*/10 * * * *")
    first = hub(lake.root, "--config", str(config), "ingest", "--source", "eu-air")
    assert first.exit_code == 0, first.output
    started = last_run_start(lake, "eu-air")
    assert started is not None
    fire = expr.next_after(started)
    assert due(lake, "eu-air", expr, fire - timedelta(seconds=1)) == (False, fire)
    assert due(lake, "eu-air", expr, fire) == (True, fire)
    # six fire times missed: still one run is due, and it is the first missed fire that counts
    assert due(lake, "eu-air", expr, fire + timedelta(hours=1)) == (True, fire)
    # a fire time already tried (a run that found the lock held) is not tried again
    assert due(lake, "eu-air", expr, fire + timedelta(minutes=5), since=fire) == \
        (False, fire + timedelta(minutes=10))


def test_ingest_all_due_runs_only_due_sources_and_logs_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")  # schedules are local time; make it known
    config = write_hub(tmp_path, {"yearly": "0 0 1 1 *", "manual": None, "daily": "@daily"})
    lake = tmp_path / "lake"
    first = hub(lake, "--config", str(config), "ingest", "--all", "--due", "--log-format", "json")
    assert first.exit_code == 0, first.output
    events = [json.loads(ln) for ln in first.stderr.splitlines()]
    by_source = {e["source"]: e for e in events}
    assert by_source["manual"]["event"] == "not-scheduled"
    for name in ("yearly", "daily"):  # never ran: due
        e = by_source[name]
        assert e["event"] == "run-finished" and e["status"] == "ok" and e["read"] == 6
        assert e["run_id"] and e["duration_s"] >= 0
    second = hub(lake, "--config", str(config), "ingest", "--all", "--due", "--log-format",
                 "json")
    assert second.exit_code == 0, second.output
    events = [json.loads(ln) for ln in second.stderr.splitlines()]
    assert {e["source"]: e["event"] for e in events} == {
        "yearly": "not-due", "daily": "not-due", "manual": "not-scheduled"}
    assert [len(source_runs(Lake(lake), n)) for n in ("yearly", "daily", "manual")] == [1, 1, 0]
    quiet = hub(lake, "--config", str(config), "ingest", "--all", "--due")
    assert quiet.exit_code == 0 and quiet.output == ""  # nothing ran: nothing for cron to mail
    listed = hub(lake, "--config", str(config), "schedule", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["source"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"yearly", "daily"} and not rows["yearly"]["due"]
    assert rows["yearly"]["next_fire"].endswith("-01-01T00:00:00+00:00")
    assert rows["daily"]["last_run_started"] is not None


# ---------------------------------------------------------------- real schedulers


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]


def _in_flight(events: list[dict[str, Any]]) -> bool:
    started = sum(e["event"] == "run-started" for e in events)
    ended = sum(e["event"] in ("run-finished", "run-skipped", "run-failed") for e in events)
    return started > ended


@pytest.mark.subprocess
def test_two_schedulers_never_run_a_source_twice_at_once_and_stop_cleanly(
        tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"a": "*/2 * * * * *", "b": "*/3 * * * * *"})
    lake = tmp_path / "lake"
    env = {**os.environ, "HUBCTL_LAKE": str(lake)}
    logs = [tmp_path / "s1.log", tmp_path / "s2.log"]
    procs = []
    for log in logs:
        with open(log, "w") as out:
            procs.append(subprocess.Popen(
                [HUBCTL, "--config", str(config), "schedule", "run", "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT, env=env))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a few runs ended, and one in flight in s1
            ended = sum(e["event"] in ("run-finished", "run-skipped")
                        for log in logs for e in _events(log))
            if ended >= 2 and _in_flight(_events(logs[0])):
                break
            time.sleep(0.1)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0], [log.read_text() for log in logs]
    everything = [_events(log) for log in logs]
    for events in everything:
        assert events[-1]["event"] == "scheduler-stopped" and not _in_flight(events)
        stop = next(i for i, e in enumerate(events) if e["event"] == "stopping")
        assert not any(e["event"] == "run-started" for e in events[stop:]), events
    # s1 had a run in flight at SIGTERM; it finished (committed) before s1 exited
    after_stop = everything[0][next(i for i, e in enumerate(everything[0])
                                    if e["event"] == "stopping"):]
    assert any(e["event"] in ("run-finished", "run-skipped") for e in after_stop)
    finished = [e for events in everything for e in events if e["event"] == "run-finished"]
    assert all(e["status"] in ("ok", "unchanged") for e in finished)
    for source in ("a", "b"):
        runs = source_runs(Lake(lake), source)
        assert {r["run_id"] for r in runs} == {e["run_id"] for e in finished
                                               if e["source"] == source}
        spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)), spans


def _scheduler(config_path: Path) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    from hubctl.config import load_config
    from hubctl.schedule import Scheduler

    config = load_config(config_path, None)
    events: list[tuple[str, dict[str, Any]]] = []
    return Scheduler(config, Lake(config.lake), {}, lambda event, **fields: events.append(
        (event, fields))), events


def _finish(scheduler: Any, name: str, kind: str = "source") -> None:
    from hubctl.schedule import Task

    task = Task(kind, name)
    scheduler._start(task, datetime.now(UTC))
    scheduler._running[task].thread.join(timeout=120)
    scheduler._reap()


def test_the_scheduler_runs_a_source_in_process_and_logs_its_counts(tmp_path: Path) -> None:
    scheduler, events = _scheduler(write_hub(tmp_path, {"a": "* * * * *"}))
    _finish(scheduler, "a")
    assert not scheduler._running
    assert [e for e, _ in events] == ["run-started", "run-finished"]
    fields = events[1][1]
    assert (fields["status"], fields["read"], fields["written"], fields["exit_code"]) == (
        "ok", 6, 6, 0)
    runs = source_runs(Lake(tmp_path / "lake"), "a")
    assert [r["pid"] for r in runs] == [os.getpid()]  # no child process: this one


def test_the_scheduler_logs_a_failure_with_its_error_and_a_held_lock_as_skipped(
        tmp_path: Path) -> None:
    from hubctl.locks import hold

    config = write_hub(tmp_path, {"a": "* * * * *"})
    (tmp_path / "data" / "long.csv").unlink()
    scheduler, events = _scheduler(config)
    _finish(scheduler, "a")
    event, fields = events[-1]
    assert event == "run-failed" and fields["exit_code"] == 1
    assert "no such file" in fields["error"]
    write_hub(tmp_path, {"a": "* * * * *"})  # the input is back; the lock is held
    with hold(tmp_path / "lake", "source:a"):
        _finish(scheduler, "a")
    event, fields = events[-1]
    assert (event, fields["source"], fields["reason"], fields["exit_code"]) == (
        "run-skipped", "a", "locked", 75)


# ---------------------------------------------------------------- everything the hub runs

EVERYTHING = """
[sources.live.mqtt]
protocol = "iotagent-json"
[sources.live.mqtt.groups.k]
type = "AirQualityObserved"

[sources.calls]
adapter = "calls"
inputs = ["calls.csv"]

[pipelines.patrol_points]
after = ["eu-air", "calls"]
params = { radius_m = 400, bands = ["00-12", "12-24"] }

[pipelines.energy]
schedule = "30 6 * * *"
"""


def write_everything(folder: Path) -> Path:
    """An ingest source on a schedule, an MQTT source, a pipeline after two sources (one
    unscheduled) and a pipeline on a schedule."""
    config = write_hub(folder, {"eu-air": "*/30 * * * *"})
    config.write_text(config.read_text(encoding="utf-8") + EVERYTHING, encoding="utf-8")
    return config


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys repeat in unit files)."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return out


def _verify(units: Path, user: bool) -> None:
    """systemd's own check of the unit files, where systemd-analyze is installed."""
    if shutil.which("systemd-analyze") is None:
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xdg") as runtime:  # short: socket paths in it
        check = subprocess.run(
            ["systemd-analyze", *(["--user"] if user else []), "verify",
             *map(str, sorted(units.glob("hubctl-*")))],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "XDG_RUNTIME_DIR": runtime, "SYSTEMD_COLORS": "0"})
    ours = [ln for ln in check.stderr.splitlines() if "hubctl" in ln]
    assert check.returncode == 0 and ours == [], check.stderr


def test_emit_systemd_writes_listeners_and_pipelines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    config = write_everything(tmp_path)
    lake = (tmp_path / "lake").resolve()
    lake.mkdir()
    units = tmp_path / "units"
    result = hub(lake, "--config", str(config), "schedule", "emit", "--systemd",
                 "--output-dir", str(units))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in units.iterdir()) == [
        "hubctl-ingest-calls.service", "hubctl-ingest-eu-air.service",
        "hubctl-ingest-eu-air.timer", "hubctl-listen-live.service",
        "hubctl-run-energy.service", "hubctl-run-energy.timer",
        "hubctl-run-patrol_points.service"]
    listen = _unit((units / "hubctl-listen-live.service").read_text())
    service = listen["Service"]
    assert service["ExecStart"][0].endswith(f"--config {config.resolve()} --lake {lake} "
                                            "listen live")
    assert (service["Type"], service["Restart"], service["NoNewPrivileges"],
            service["ProtectSystem"], service["ReadWritePaths"]) == (
        ["simple"], ["on-failure"], ["true"], ["strict"], [str(lake)])
    assert service["RestartPreventExitStatus"] == ["2 75"]
    assert listen["Install"]["WantedBy"] == ["multi-user.target"]
    assert "listen" in result.output and "hubctl-listen-live.service" in result.output
    # a pipeline after sources: started by each source service's success
    for source in ("eu-air", "calls"):
        unit = _unit((units / f"hubctl-ingest-{source}.service").read_text())
        assert unit["Unit"]["OnSuccess"] == ["hubctl-run-patrol_points.service"]
    run = _unit((units / "hubctl-run-patrol_points.service").read_text())["Service"]
    assert run["Type"] == ["oneshot"] and run["SuccessExitStatus"] == ["75"]
    assert run["ExecStart"][0].endswith(
        "run patrol_points --param radius_m=400 --param bands=00-12,12-24 --json")
    timer = _unit((units / "hubctl-run-energy.timer").read_text())
    assert timer["Timer"]["OnCalendar"] == ["*-*-* 06:30:00"]
    assert timer["Timer"]["Unit"] == ["hubctl-run-energy.service"]
    # every 30 minutes of every hour: in UTC, so systemd also fires in the repeated DST hour
    assert _unit((units / "hubctl-ingest-eu-air.timer").read_text())["Timer"]["OnCalendar"] \
        == ["*-*-* *:00,30:00 UTC"]
    _verify(units, user=False)


def test_emit_systemd_user_units_need_no_system_targets(tmp_path: Path) -> None:
    config = write_everything(tmp_path)
    units = tmp_path / ".config" / "systemd" / "user"
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--systemd",
                 "--output-dir", str(units))  # under systemd/user: --user implied
    assert result.exit_code == 0, result.output
    assert "systemctl --user daemon-reload" in result.output
    texts = {p.name: p.read_text() for p in units.glob("hubctl-*")}
    assert len(texts) == 7
    for name, text in texts.items():
        for system_only in ("network-online.target", "network.target", "multi-user.target",
                            "sysinit.target"):
            assert system_only not in text, (name, system_only)
    listen = _unit(texts["hubctl-listen-live.service"])
    assert listen["Install"]["WantedBy"] == ["default.target"]
    assert listen["Service"]["Restart"] == ["on-failure"]
    assert listen["Service"]["NoNewPrivileges"] == ["true"]
    assert _unit(texts["hubctl-run-energy.timer"])["Install"]["WantedBy"] == ["timers.target"]
    printed = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--systemd",
                  "--user")
    assert printed.exit_code == 0 and "network-online" not in printed.stdout
    _verify(units, user=True)


def test_emit_cron_chains_pipelines_and_logs_instead_of_mailing(tmp_path: Path) -> None:
    config = write_everything(tmp_path)
    log = tmp_path / "logs" / "hub.log"
    log.parent.mkdir()
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron",
                 "--log", str(log))
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if not ln.startswith("#")]
    assert len(lines) == 2
    source, pipeline = lines
    assert source.startswith("*/30 * * * * cd ")
    assert source.endswith(f"ingest --source eu-air --log-format json >> {log} 2>&1 && "
                           f"{{ {HUBCTL if Path(HUBCTL).exists() else 'hubctl'} --config "
                           f"{config.resolve()} --lake {(tmp_path / 'lake').resolve()} run "
                           "patrol_points --param radius_m=400 --param bands=00-12,12-24 "
                           f"--json >> {log} 2>&1; }}")
    assert pipeline.startswith("30 6 * * * cd ") and pipeline.endswith(
        f"run energy --json >> {log} 2>&1")
    assert "# live: an MQTT source runs all the time" in result.stdout
    assert "# calls has no schedule" in result.stdout


@pytest.mark.subprocess
def test_an_emitted_cron_line_prints_nothing_and_appends_to_its_log(tmp_path: Path) -> None:
    """What cron would run, run by a shell: nothing on stdout or stderr (nothing to mail),
    the ingest's JSON events and the pipeline's JSON result in the log."""
    config = write_everything(tmp_path)
    log = tmp_path / "hub.log"
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron",
                 "--log", str(log))
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("*/30"))
    command = line.split(" ", 5)[5]  # after the five cron fields
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HUBCTL_LAKE": ""})
    assert (done.stdout, done.stderr) == ("", "")
    text = log.read_text(encoding="utf-8")
    events = [json.loads(ln) for ln in text.splitlines() if ln.startswith('{"time"')]
    assert [e["event"] for e in events] == ["run-finished"] and events[0]["source"] == "eu-air"
    assert "patrol_points" in text  # it ran after the ingest (no Alert in the lake: failed)


def test_emit_refuses_a_pipeline_after_an_unknown_source(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"eu-air": "*/30 * * * *"})
    config.write_text(config.read_text() + '\n[pipelines.energy]\nafter = ["nope"]\n')
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--cron")
    assert result.exit_code == 2 and "pipelines.energy.after: no source 'nope'" in result.output


def test_schedule_list_shows_pipelines_too(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    config = write_everything(tmp_path)
    listed = hub(tmp_path / "lake", "--config", str(config), "schedule", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r.get("source") or r.get("pipeline") for r in rows] == [
        "eu-air", "patrol_points", "energy"]
    assert rows[1] == {"pipeline": "patrol_points", "schedule": None,
                       "after": ["eu-air", "calls"], "next_fire": None}
    assert rows[2]["schedule"] == "30 6 * * *" and rows[2]["next_fire"].endswith("06:30:00+00:00")
    text = hub(tmp_path / "lake", "--config", str(config), "schedule", "list")
    assert text.exit_code == 0 and "eu-air, calls" in text.stdout


def test_a_second_signal_stops_the_in_process_runs_after_their_commit(tmp_path: Path) -> None:
    from hubctl.running import STOP, clear_stop

    scheduler, events = _scheduler(write_hub(tmp_path, {"a": "* * * * *"}))
    scheduler.stop()
    assert not STOP.is_set()  # the first signal only stops starting runs
    scheduler.stop()
    try:
        assert STOP.is_set()
        _finish(scheduler, "a")  # a run under way when the second signal came
    finally:
        clear_stop()
    event, fields = events[-1]
    assert event == "run-failed" and fields["status"] == "stopped", events
    [run] = source_runs(Lake(tmp_path / "lake"), "a")
    assert run["status"] == "stopped"


# ---------------------------------------------------------------- exports and pipelines

EXPORT = """
[publisher]
name = "Test City"
licence = "CC-BY-4.0"

[exports.air]
tables = ["AirQualityObserved"]
to = "bundles/air"
formats = ["parquet", "csv"]
schedule = "0 * * * *"

[pipelines.air_quality]
after = ["a"]
"""


def test_the_scheduler_runs_a_scheduled_export_and_pipelines_after_a_source(
        tmp_path: Path) -> None:
    from hubctl.config import load_config
    from hubctl.schedule import Scheduler, Task, scheduled_exports

    config_path = write_hub(tmp_path, {"a": "* * * * *"})
    config_path.write_text(config_path.read_text() + EXPORT, encoding="utf-8")
    config = load_config(config_path, None)
    events: list[tuple[str, dict[str, Any]]] = []
    scheduler = Scheduler(config, Lake(config.lake), {}, lambda event, **fields: events.append(
        (event, fields)), exports=scheduled_exports(config), after={"a": ["air_quality"]})
    _finish(scheduler, "a")  # the source succeeds: its pipeline is queued, then run
    assert scheduler._queued == [Task("pipeline", "air_quality")]
    scheduler._queued.clear()
    _finish(scheduler, "air_quality", "pipeline")
    event, fields = events[-1]
    assert (event, fields["pipeline"], fields["status"], fields["exit_code"]) == (
        "run-finished", "air_quality", "ok", 0), events
    lake = Lake(tmp_path / "lake")
    assert any(n == "air_quality" for n, _ in lake.derived_names())
    _finish(scheduler, "air", "export")
    event, fields = events[-1]
    assert (event, fields["export"], fields["rows"], fields["exit_code"]) == (
        "run-finished", "air", {"AirQualityObserved": 3}, 0), events
    bundle = tmp_path / "bundles" / "air"
    assert fields["bundle"] == str(bundle)
    assert sorted(p.name for p in (bundle / "data").iterdir()) == [
        "AirQualityObserved.csv", "AirQualityObserved.parquet"]
    expr = scheduled_exports(config)["air"]
    started = datetime.now(UTC)
    assert due(lake, "air", expr, started, kind="export") == (False, expr.next_after(
        last_export_started(lake, "air")))
    # a held lock: skipped, as for a source
    from hubctl.locks import hold

    with hold(lake.root, "export:air"):
        _finish(scheduler, "air", "export")
    event, fields = events[-1]
    assert (event, fields["export"], fields["reason"], fields["exit_code"]) == (
        "run-skipped", "air", "locked", 75)
    listed = hub(lake.root, "--config", str(config_path), "schedule", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [row_] = [r for r in json.loads(listed.stdout) if "export" in r]
    assert (row_["schedule"], row_["due"]) == ("0 * * * *", False)


def last_export_started(lake: Lake, name: str) -> datetime:
    """When the newest export of ``name`` started (from ``_exports``)."""
    from hubctl.ledger import last_start

    started = last_start(lake, "_exports", "name", name)
    assert started is not None
    return started


@pytest.mark.subprocess
def test_schedule_run_runs_an_export_on_its_schedule(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"a": "*/2 * * * * *"})
    config.write_text(config.read_text() + EXPORT.replace('"0 * * * *"', '"*/2 * * * * *"')
                      .split("[pipelines.")[0], encoding="utf-8")
    log = tmp_path / "s.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([HUBCTL, "--config", str(config), "schedule", "run",
                                 "--log-format", "json"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
                e["event"] == "run-finished" and "export" in e for e in _events(log)):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = _events(log)
    assert events[0]["exports"] == {"air": "*/2 * * * * *"}
    done = [e for e in events if e["event"] == "run-finished" and "export" in e]
    assert done and done[0]["rows"]["AirQualityObserved"] == 3, events
    assert (tmp_path / "bundles" / "air" / "datapackage.json").is_file()
