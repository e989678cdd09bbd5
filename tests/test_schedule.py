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
from datetime import timedelta
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
    assert len(lines) == 1 and lines[0].startswith("*/10 * * * * cd ")
    assert lines[0].endswith(f"--config {config.resolve()} --lake {(tmp_path / 'lake').resolve()}"
                             " ingest --source eu-air --log-format json")
    assert "# fast: '*/5 * * * * *' fires on seconds, which cron cannot do" in result.stdout
    assert "ingest --all --due --log-format json" in result.stdout
    assert "manual" not in result.stdout


def test_emit_systemd_units_fire_when_cron_would_and_persist(tmp_path: Path) -> None:
    config = write_hub(tmp_path, {"eu-air": "*/10 * * * *", "monthly": "0 3 1 * mon"})
    result = hub(tmp_path / "lake", "--config", str(config), "schedule", "emit", "--systemd")
    assert result.exit_code == 0, result.output
    assert "# ---- hubctl-ingest-eu-air.timer ----" in result.stdout
    assert "OnCalendar=*-*-* *:00/10:00\nPersistent=true\n" in result.stdout
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
    assert result.exit_code == 2 and "no source" in result.output and "schedule =" in result.output
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


def test_a_finished_child_is_logged_with_its_counts_or_its_error() -> None:
    from hubctl.schedule import _outcome

    summary = {"run_id": "r1", "status": "ok", "read": 5, "written": 4, "updated": 0,
               "duplicate": 1, "rejected": 0, "warnings": []}
    assert _outcome("a", 0, json.dumps(summary), "", 1.5) == ("run-finished", {
        "source": "a", "run_id": "r1", "status": "ok", "read": 5, "written": 4, "updated": 0,
        "duplicate": 1, "rejected": 0, "exit_code": 0, "duration_s": 1.5, "error": None})
    event, fields = _outcome("a", 1, "", "error: http://x/y: HTTP 500 after 5 attempt(s)\n"
                                         "  hint: the server is failing", 2.0)
    assert event == "run-failed" and fields["exit_code"] == 1
    assert fields["error"] == "http://x/y: HTTP 500 after 5 attempt(s)"


def test_a_child_that_found_the_lock_held_is_logged_as_skipped(tmp_path: Path) -> None:
    import io

    from hubctl.config import Config
    from hubctl.errors import EXIT_LOCKED
    from hubctl.schedule import Scheduler, _Child

    events: list[tuple[str, dict[str, Any]]] = []
    lake = Lake(tmp_path / "lake")
    scheduler = Scheduler(Config(lake.root, None, {}), lake, {},
                          lambda event, **fields: events.append((event, fields)))
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({EXIT_LOCKED})"])
    proc.wait(timeout=30)
    scheduler._running["a"] = _Child("a", None, proc, io.BytesIO(), io.BytesIO())
    scheduler._reap()
    assert not scheduler._running
    assert [(e, f["source"], f["reason"], f["exit_code"]) for e, f in events] == [
        ("run-skipped", "a", "locked", 75)]
