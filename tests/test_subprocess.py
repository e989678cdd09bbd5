"""What only a real process shows: the console script, exit codes, locks between processes,
clean JSON on stdout, and no abort at interpreter exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import held_by_another_process, row, write_openaq

pytestmark = pytest.mark.subprocess

HUBCTL = str(Path(sys.executable).parent / "hubctl")


def _run(*args: str, lake: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBCTL_LAKE": str(lake)}
    return subprocess.run([HUBCTL, *args], capture_output=True, text=True, env=env,
                          timeout=120, **kw)  # type: ignore[call-overload]


def test_commands_exit_with_stable_codes_many_times(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(24)])
    first = _run("ingest", "openaq", str(data), "--stations", str(st), "--json", lake=lake)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["written"] == 24 + 3  # stdout is JSON and nothing else
    codes = []
    for _ in range(6):
        codes.append(_run("sql", "SELECT count(*) AS n FROM AirQualityObserved", "--json",
                          lake=lake).returncode)
        codes.append(_run("ingest", "openaq", str(data), "--stations", str(st), "--force",
                          "--json", lake=lake).returncode)
        codes.append(_run("tables", "--json", lake=lake).returncode)
        codes.append(_run("sql", "SELECT * FROM nope", lake=lake).returncode)
    assert codes == [0, 0, 0, 1] * 6  # never 134 (abort at exit)


def test_usage_error_exits_2_and_unknown_table_names_the_fix(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    assert _run("sql", lake=lake).returncode == 2
    assert _run("ingest", "openaq", lake=lake).returncode == 2  # no input file named
    res = _run("sql", "SELECT * FROM nope", lake=lake)
    assert res.returncode == 1 and "hubctl tables" in res.stderr and "Traceback" not in res.stderr


def test_second_run_of_the_same_source_exits_75_while_other_sources_succeed(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", h % 24, "no2", h) for h in range(24)])
    with held_by_another_process(lake, "source:eu"):
        started = time.monotonic()
        locked = _run("ingest", "openaq", str(data), "--stations", str(st),
                      "--source-name", "eu", lake=lake)
        assert locked.returncode == 75, locked.stderr
        assert time.monotonic() - started < 20 and "locked" in locked.stderr
        other = _run("ingest", "openaq", str(data), "--stations", str(st),
                     "--source-name", "other", lake=lake)
        assert other.returncode == 0, other.stderr


def test_two_sources_ingest_into_the_same_table_at_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    a, st = write_openaq(tmp_path / "a", [row("S1", h, "no2", h) for h in range(24)])
    b, _ = write_openaq(tmp_path / "b", [row("S2", h, "no2", h) for h in range(24)])
    env = {**os.environ, "HUBCTL_LAKE": str(lake)}
    procs = [subprocess.Popen([HUBCTL, "ingest", "openaq", str(p), "--stations", str(st),
                               "--source-name", name], env=env, stderr=subprocess.PIPE,
                              text=True) for p, name in ((a, "a"), (b, "b"))]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    res = _run("sql", "SELECT count(*) AS n FROM AirQualityObserved", "--json", lake=lake)
    assert json.loads(res.stdout) == [{"n": 48}]


def test_ingest_does_not_import_pandas_even_where_it_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("pandas")  # a dev dependency: pyarrow would import it on its own
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(24)])
    for extra in ((), ("--force",)):  # a fresh lake, then one with a ledger to look up
        res = subprocess.run([sys.executable, "-X", "importtime", HUBCTL, "--lake", str(lake),
                              "ingest", "openaq", str(data), "--stations", str(st), "--json",
                              *extra], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert json.loads(res.stdout)["reconciles"]
        loaded = [line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines()
                  if line.startswith("import time:") and "|" in line]
        assert "pyarrow.compute" in loaded  # the import log is the one of the ingest
        assert not [m for m in loaded if m.startswith("pandas.")]  # refused, never loaded


def test_ingest_ends_its_process_without_teardown_after_the_exit_handlers(
        tmp_path: Path) -> None:
    """The console script ends an ingest with os._exit once the atexit handlers ran and
    stdout and stderr are flushed (no teardown frees the objects left: 0.08 s): the JSON is
    whole, the exit code is the command's (0, or 4 when every record is rejected), and a
    handler registered by anyone still runs."""
    lake = tmp_path / "lake"
    good, st = write_openaq(tmp_path / "good", [row("S1", h, "no2", h) for h in range(24)])
    bad, _ = write_openaq(tmp_path / "bad", [row("S1", h, "no2", -1) for h in range(24)])
    code = ("import atexit, pathlib, sys\n"
            "atexit.register(pathlib.Path(sys.argv.pop(1)).write_text, 'ran')\n"
            "class Torn:\n"
            "    def __del__(self):\n"
            "        sys.__stderr__.write('torn down')\n"
            "kept = Torn()  # freed by a teardown, which a quick exit skips\n"
            "from hubctl.cli import main\n"
            "sys.argv[0] = 'hubctl'\n"
            "main()\n")
    for data, status in ((good, 0), (bad, 4)):
        mark = tmp_path / f"atexit-{status}"
        res = subprocess.run([sys.executable, "-c", code, str(mark), "--lake", str(lake),
                              "ingest", "openaq", str(data), "--stations", str(st), "--json"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == status, res.stderr[-2000:]
        assert json.loads(res.stdout)["exit_code"] == status
        assert mark.read_text() == "ran" and "torn down" not in res.stderr


def test_an_input_already_ingested_is_found_in_the_ledger_without_duckdb(
        tmp_path: Path) -> None:
    """The fingerprint lookup of a lake with a ledger (cron re-running a source whose file has
    not changed) reads the ledger with pyarrow: DuckDB (0.1 s of CPU to load and connect)
    is never imported, nor pandas."""
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(24)])
    args = ["--lake", str(lake), "ingest", "openaq", str(data), "--stations", str(st), "--json"]
    statuses = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-X", "importtime", HUBCTL, *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        statuses.append(json.loads(res.stdout)["status"])
    assert statuses == ["ok", "unchanged"]
    loaded = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines()
              if line.startswith("import time:") and "|" in line}
    assert "hubctl.ledger" in loaded  # the import log is the one of the lookup
    assert not [m for m in loaded if m.split(".")[0] == "duckdb"]
    assert not [m for m in loaded if m.startswith("pandas.")]  # refused, never loaded


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_behind_stdout_is_said_once_and_the_run_is_kept(tmp_path: Path) -> None:
    """`> file` on a full disk: exit 1 with one message about standard output (not the lake,
    no traceback), with and without --json; the ingest itself is done and in the ledger."""
    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", 10 + h) for h in range(3)])
    lake = tmp_path / "lake"
    for args in (["ingest", "openaq", str(data), "--stations", str(st), "--json"],
                 ["sql", "SELECT count(*) FROM AirQualityObserved"],
                 ["sql", "SELECT count(*) FROM AirQualityObserved", "--json"],
                 ["tables"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([HUBCTL, *args], stdout=full, stderr=subprocess.PIPE,
                                  text=True, env={**os.environ, "HUBCTL_LAKE": str(lake)},
                                  timeout=120)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.count("cannot write the output to standard output: No space") == 1
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
        assert "lake" not in proc.stderr.split("\n")[-3], proc.stderr  # not blamed
    runs = json.loads(_run("sql", "SELECT status, written FROM _runs", "--json",
                           lake=lake).stdout)
    assert [r["status"] for r in runs] == ["ok"] and runs[0]["written"] > 0
    bad = tmp_path / "no-such-folder" / "out.csv"
    proc = _run("sql", "SELECT 1", "--output", str(bad), "--format", "csv", lake=lake)
    assert proc.returncode == 1 and f"cannot write {bad}: No such file" in proc.stderr
    for fmt in ("csv", "parquet"):  # a device that fails is reported, and left where it is
        proc = _run("sql", "SELECT 1", "--output", "/dev/full", "--format", fmt, lake=lake)
        assert proc.returncode == 1 and "cannot write /dev/full: No space" in proc.stderr
        assert Path("/dev/full").is_char_device()
