"""`hubctl lake vacuum` removes the staging folders of `ingest --engine` runs killed before
deleting their own, and keeps those of runs in progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hubctl import running
from hubctl.lake import Lake
from hubctl.spark_ingest import _staging
from tests.helpers import hub_json, row, write_openaq

_MAKE_STAGING = """
import sys, time
from pathlib import Path
from hubctl.lake import Lake
from hubctl.spark_ingest import _staging
print(_staging(Lake(Path(sys.argv[1]))), flush=True)
time.sleep(600)
"""


def _lake(tmp_path: Path) -> Path:
    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", 10 + h) for h in range(3)])
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))
    return lake


def test_vacuum_removes_a_killed_runs_staging_and_keeps_a_live_ones(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    # a driver killed with kill -9 while its executors' batches were staged
    proc = subprocess.Popen([sys.executable, "-c", _MAKE_STAGING, str(lake)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    killed = Path(proc.stdout.readline().strip())
    (killed / "0-0.arrow").write_bytes(b"staged rows")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # a run in progress in this process: its marker names this process
    live = Path(_staging(Lake(lake)))
    running.write(lake, "20261207T000000000000Z-live00", {"status": "running"})
    # a folder being created (no owner file yet)
    young = lake / "_staging" / "being-created"
    young.mkdir()

    dry = hub_json(lake, "lake", "vacuum", "--dry-run")
    assert {"table": "_staging", "files": 1, "dry_run": True} in dry
    assert killed.exists()
    out = hub_json(lake, "lake", "vacuum")
    assert {"table": "_staging", "files": 1, "dry_run": False} in out
    assert not killed.exists() and live.exists() and young.exists()
    tables = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")
    assert tables == [{"n": 3}]

    running.remove(lake, "20261207T000000000000Z-live00")  # the run ended without cleaning
    out = hub_json(lake, "lake", "vacuum")
    assert {"table": "_staging", "files": 1, "dry_run": False} in out
    assert not live.exists() and young.exists()
    assert not any(r["table"] == "_staging" for r in hub_json(lake, "lake", "vacuum"))
