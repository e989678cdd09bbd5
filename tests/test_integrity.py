"""Integrity under concurrency and faults (issue 12): writers that share keys in several
processes, tables that already hold duplicate keys, killed and stopped runs, hard links."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hubctl.errors import DuplicateKeys
from hubctl.lake import Lake
from hubctl.registry import get_type
from tests.helpers import hub

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def lake_rows(type_name: str, keys: list[tuple[str, int]], value: float, run_id: str,
              at: datetime | None = None) -> pa.Table:
    """Lake rows of ``type_name`` (AirQualityObserved: no2; PointOfInterest: capacity) for
    ``keys`` (id, hour), with provenance and ``_records``, as the engine hands them to upsert."""
    et = get_type(type_name)
    schema = et.arrow_schema()
    n = len(keys)
    cols: dict[str, Any] = {
        "id": [f"urn:ngsi-ld:{type_name}:{k}" for k, _ in keys],
        "observed_at": [T0 + timedelta(hours=h) for _, h in keys],
        "_source": ["test"] * n, "_run_id": [run_id] * n,
        "_ingested_at": [at or datetime.now(UTC)] * n,
    }
    if et.time_series:
        cols["no2"] = [value] * n
        cols["date"] = [(T0 + timedelta(hours=h)).date() for _, h in keys]
    else:
        cols["capacity"] = [int(value)] * n
    arrays = [pa.array(cols.get(f.name, [None] * n), f.type) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    return table.append_column("_records", pa.array([1] * n, pa.int64()))


def _hammer(root: str, type_name: str, rounds: int, keys_per_round: int, worker: int,
            barrier: Any, out: Any) -> None:
    """One writer process: each round, upsert the round's keys at the same instant as the
    others (all write the same values, so every writer but the first finds duplicates)."""
    lake = Lake(Path(root))
    et = get_type(type_name)
    totals = {"new": 0, "updated": 0, "filled": 0, "duplicate": 0}
    for r in range(rounds):
        keys = [(f"S{r}-{i}", r) for i in range(keys_per_round)]  # new keys every round
        rows = lake_rows(type_name, keys, float(r), f"run-{worker}")
        barrier.wait()
        result = lake.upsert(et, rows)
        for k, v in result.records.items():
            totals[k] += v
    out.put(totals)


@pytest.mark.subprocess
@pytest.mark.parametrize("type_name", ["AirQualityObserved", "PointOfInterest"])
def test_writers_in_four_processes_never_write_one_key_twice_and_count_truly(
        tmp_path: Path, type_name: str) -> None:
    processes, rounds, keys_per_round = 4, 4, 50
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    et = get_type(type_name)
    Lake(tmp_path).ensure(et.name, et.arrow_schema(), et.partition_by)
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), type_name, rounds,
                                               keys_per_round, w, barrier, out))
             for w in range(processes)]
    for p in procs:
        p.start()
    totals = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    from hubctl.duck import scan_sql, scratch

    con = scratch()
    stored = con.sql(f"SELECT id, observed_at, count(*) AS n FROM "
                     f"{scan_sql(Lake(tmp_path).files(type_name))} GROUP BY ALL").fetchall()
    keys = keys_per_round * rounds
    assert len(stored) == keys and {n for *_, n in stored} == {1}
    written = rounds * keys_per_round * processes
    assert sum(t["new"] for t in totals) == keys  # each key was new to exactly one writer
    assert sum(t["duplicate"] for t in totals) == written - keys  # the same value from all



def _create_at_once(root: str, worker: int, rounds: int, barrier: Any, out: Any) -> None:
    """One process of the create race: each round, at the same instant as the other, append
    the first row of ``_runs`` to a lake that has none, then ensure an entity table."""
    et = get_type("AirQualityObserved")
    for r in range(rounds):
        lake = Lake(Path(root) / f"round-{r}")
        row = pa.table({"run_id": [f"w{worker}"], "round": [r]})
        barrier.wait()
        version = lake.append("_runs", row)
        barrier.wait()
        lake.ensure(et.name, et.arrow_schema(), et.partition_by)
        out.put((r, worker, version))


def _log_actions(table: Path) -> list[tuple[int, str]]:
    """(version, action) of every action in a Delta table's log."""
    return [(int(f.stem), next(iter(json.loads(line))))
            for f in sorted((table / "_delta_log").glob("*.json"))
            for line in f.read_text().splitlines() if line.strip()]


@pytest.mark.subprocess
def test_processes_creating_a_table_at_once_make_one_table_and_each_knows_its_version(
        tmp_path: Path) -> None:
    """Two processes create ``_runs`` (with their first row) and an entity table (empty) at
    the same instant: one creates, the other appends to it. Never a second protocol and
    metaData action (delta-rs commits a create that lost the race again at version 1, as a
    table with a new id), and the version each append returns holds its row."""
    from deltalake import DeltaTable

    rounds = 6
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_create_at_once, args=(str(tmp_path), w, rounds, barrier, out))
             for w in range(2)]
    for p in procs:
        p.start()
    versions = [out.get(timeout=120) for _ in range(2 * rounds)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for r in range(rounds):
        lake = tmp_path / f"round-{r}"
        for name in ("_runs", "AirQualityObserved"):
            actions = _log_actions(lake / name)
            assert [(v, a) for v, a in actions if a in ("protocol", "metaData")] == [
                (0, "protocol"), (0, "metaData")], (r, name, actions)
        mine = {w: v for rr, w, v in versions if rr == r}
        assert sorted(mine.values()) == [0, 1]  # one created it, the other appended
        for worker, version in mine.items():
            table = DeltaTable(str(lake / "_runs"), version=version)
            held = table.to_pyarrow_table().column("run_id").to_pylist()
            assert f"w{worker}" in held and len(held) == version + 1


def test_a_table_with_duplicate_keys_names_itself_and_the_repair(tmp_path: Path) -> None:
    """An older hubctl or another tool left two rows for one key: no IndexError."""
    lake = Lake(tmp_path)
    et = get_type("AirQualityObserved")
    rows = lake_rows("AirQualityObserved", [("S1", 1), ("S2", 1)], 5.0, "old")
    lake.ensure(et.name, et.arrow_schema(), et.partition_by)
    for _ in range(2):
        write_deltalake(str(lake.path(et.name)), rows.drop_columns(["_records"]), mode="append")
    with pytest.raises(DuplicateKeys, match="AirQualityObserved") as err:
        lake.upsert(et, lake_rows("AirQualityObserved", [("S1", 1)], 6.0, "new"))
    assert "hubctl lake check AirQualityObserved --repair" in str(err.value)


# ----------------------------------------------------------------------------- real processes
HUBCTL = str(Path(sys.executable).parent / "hubctl")
# The real CLI with small batches, so a few thousand lines make many commits (OpenAQ holds
# its readings for one pivot up to FLUSH_ROWS: a few blocks' worth here).
_SMALL_BATCHES = """
import importlib, sys
rows = int(sys.argv.pop(1))
for name in ("hubctl.adapter", "hubctl.csvread", "hubctl.ingest"):
    module = importlib.import_module(name)
    if hasattr(module, "BATCH_ROWS"):
        module.BATCH_ROWS = rows
importlib.import_module("hubctl.adapters.openaq").FLUSH_ROWS = 4 * rows
from hubctl.cli import main
main()
"""
SMALL_BATCHES = [sys.executable, "-c", _SMALL_BATCHES]
# ... whose reads on the CSV reading thread stall while the file <folder>/stall exists (an
# input on a stalled disk or share), saying so by <folder>/stalled, and <folder>/stopping once
# the process was asked to stop: a stop that waits for that thread is held as long as the
# test wants (the folder is the first argument).
STALLING = [sys.executable, "-c", """
import sys, threading, time
from pathlib import Path
import hubctl.csvread as csvread
from hubctl.running import STOP
hold = Path(sys.argv.pop(1))
read = csvread.CsvStream._io
def stalling(self, call):
    reading = threading.current_thread().name == csvread.READ_AHEAD_THREAD
    while reading and (hold / "stall").exists():
        (hold / ("stopping" if STOP.is_set() else "stalled")).touch()
        time.sleep(0.005)
    return read(self, call)
csvread.CsvStream._io = stalling
""" + _SMALL_BATCHES]


def openaq_files(folder: Path, stations: int, hours: int) -> tuple[Path, Path, Path]:
    """no2 and pm25 files of the same stations and hours (every key in both), and one
    stations file."""
    folder.mkdir(parents=True, exist_ok=True)
    st = folder / "stations.csv"
    st.write_text("location,coordinates.latitude,coordinates.longitude\n" + "".join(
        f"S{s},{40 + s / 1000:.3f},{3 + s / 1000:.3f}\n" for s in range(stations)))
    out = []
    for parameter in ("no2", "pm25"):
        path = folder / f"{parameter}.csv"
        with open(path, "w", encoding="utf-8") as f:
            f.write("city,country,date.utc,location,parameter,value,unit\n")
            for h in range(hours):
                at = (T0 + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S+00:00")
                f.writelines(f"X,XX,{at},S{s},{parameter},{(s + h) % 90 + 1},µg/m³\n"
                             for s in range(stations))
        out.append(path)
    return out[0], out[1], st


def _sql(lake: Path, query: str) -> list[tuple[Any, ...]]:
    from hubctl.catalog import Catalog

    cat = Catalog(Lake(lake))
    try:
        return [tuple(r.values()) for r in cat.query(query).to_pylist()]
    finally:
        cat.close()


def _env(lake: Path) -> dict[str, str]:
    return {**os.environ, "HUBCTL_LAKE": str(lake)}


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_processes_ingesting_files_that_share_keys_write_each_key_once(
        tmp_path: Path) -> None:
    stations, hours = 30, 100
    no2, pm25, st = openaq_files(tmp_path / "in", stations, hours)
    keys = stations * hours
    config = tmp_path / "hub.toml"  # the same two files as hub.toml sources
    config.write_text("".join(f'[sources.{f.stem}]\nadapter = "openaq"\ninputs = ["{f}"]\n'
                              f'options = {{ stations = "{st}" }}\n' for f in (no2, pm25)))
    commands = [[["ingest", "openaq", str(f), "--stations", str(st)] for f in (no2, pm25)],
                [["--config", str(config), "ingest", "--source", f.stem] for f in (no2, pm25)]]
    for rnd, pair in enumerate(commands):  # round 1 with adapter commands, round 2 hub.toml
        lake = tmp_path / f"lake{rnd}"
        procs = [subprocess.Popen([*SMALL_BATCHES, "200", *args, "--json"], env=_env(lake),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for args in pair]
        runs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            runs.append(json.loads(out))
        assert _sql(lake, "SELECT count(*), count(DISTINCT (id, observed_at)), count(no2), "
                          "count(pm25) FROM AirQualityObserved") == [(keys, keys, keys, keys)]
        assert _sql(lake, "SELECT count(*), count(DISTINCT id) FROM PointOfInterest") == [
            (stations, stations)]
        # true counts: every cell was written once (the second run's cells filled the first
        # run's rows), every station once; the second run found the stations duplicate
        assert sum(r["written"] for r in runs) == 2 * keys + stations
        assert sum(r["duplicate"] for r in runs) == stations
        assert all(r["reconciles"] and r["status"] == "ok" for r in runs)
    again = subprocess.run([HUBCTL, "ingest", "openaq", str(no2), "--stations", str(st),
                            "--force", "--json"], env=_env(lake), capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["duplicate"] == keys + stations


def _slow_ingest(lake: Path, data: Path, st: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*SMALL_BATCHES, "200", "ingest", "openaq", str(data),
                             "--stations", str(st), "--source-name", "slow"], env=_env(lake),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_commits(lake: Path, proc: subprocess.Popen[str], written: int) -> None:
    """Until the run's checkpoint counts ``written`` records or more."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for marker in (lake / "_running").glob("*.json"):
            try:
                counts = json.loads(marker.read_text())["counts"]
            except (OSError, ValueError, KeyError):
                continue
            if counts["written"] >= written:
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run committed nothing in 60 s")


def _rows_by_run(lake: Path) -> dict[str, int]:
    rows = _sql(lake, "SELECT _run_id, count(*) FROM (SELECT _run_id FROM AirQualityObserved "
                      "UNION ALL SELECT _run_id FROM PointOfInterest) GROUP BY 1")
    return {r: n for r, n in rows}


@pytest.mark.subprocess
def test_kill_9_mid_ingest_leaves_every_run_in_the_ledger_and_the_next_command_marks_it(
        tmp_path: Path) -> None:
    from hubctl.ledger import source_runs

    no2, _, st = openaq_files(tmp_path / "in", 40, 500)
    lake = tmp_path / "lake"
    proc = _slow_ingest(lake, no2, st)
    _wait_for_commits(lake, proc, 1000)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    committed = _rows_by_run(lake)
    (run,) = source_runs(Lake(lake), "slow")
    assert set(committed) == {run["run_id"]} and run["status"] == "running"
    assert run["host"] == os.uname().nodename and run["pid"] == proc.pid
    assert hub(lake, "tables").exit_code == 0  # the next command that opens the lake
    (run,) = source_runs(Lake(lake), "slow")
    assert run["status"] == "interrupted" and "ended without finishing" in run["error"]
    rows = committed[run["run_id"]]  # one record per row here: one pollutant, one station
    assert run["read"] == run["written"] + run["updated"] + run["duplicate"] + run["rejected"]
    # counts of the last checkpoint, taken right after each commit: at most the batch whose
    # commit the kill followed by microseconds is in the lake and not counted (64 KiB blocks)
    assert rows - 1500 <= run["written"] <= rows and run["written"] >= 1000
    assert not list((lake / "_running").iterdir())
    again = subprocess.run([HUBCTL, "ingest", "openaq", str(no2), "--stations", str(st),
                            "--source-name", "slow", "--json"], env=_env(lake),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # an interrupted run is not "already ingested"
    assert json.loads(again.stdout)["duplicate"] == rows
    assert _sql(lake, "SELECT count(*), count(DISTINCT (id, observed_at)) FROM "
                      "AirQualityObserved") == [(20000, 20000)]
    assert set(_rows_by_run(lake)) <= {r["run_id"] for r in source_runs(Lake(lake), "slow")}


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_ingest_ends_the_run_with_a_ledger_row_that_adds_up(
        tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM ends the run after a commit (``stopped``, with exactly what it committed);
    SIGINT (Ctrl-C) ends it at once. Either comes while the CSV is parsed ahead on the
    reading threads (they, the adapter's thread and the main one all busy): the process ends
    within seconds, without a traceback, and its ledger row adds up."""
    from hubctl.ledger import source_runs

    no2, _, st = openaq_files(tmp_path / "in", 40, 500)
    lake = tmp_path / "lake"
    proc = _slow_ingest(lake, no2, st)
    _wait_for_commits(lake, proc, 1000)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    (run,) = source_runs(Lake(lake), "slow")
    assert run["read"] < 20000 + 40
    assert run["read"] == (run["written"] + run["updated"] + run["duplicate"] + run["rejected"]
                           + run["unreached"])
    if sig == signal.SIGTERM:
        assert "stopped by SIGTERM" in err and run["status"] == "stopped"
        assert run["written"] == _rows_by_run(lake)[run["run_id"]]  # what it committed, exactly
        assert not list((lake / "_running").iterdir())
    else:  # the marker is gone (a checkpoint the interrupt cut short may leave its .tmp,
        assert run["status"] == "stopped"  # which the next command removes)
        assert run["error"].startswith("stopped by Ctrl-C (SIGINT): "), run["error"]
        assert not list((lake / "_running").glob("*.json"))


def _until(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path.name} in 60 s"
        time.sleep(0.005)


@pytest.mark.subprocess
@pytest.mark.parametrize("first,second", [(signal.SIGINT, signal.SIGINT),
                                          (signal.SIGTERM, signal.SIGTERM),
                                          (signal.SIGTERM, signal.SIGINT)],
                         ids=["INT-INT", "TERM-TERM", "TERM-INT"])
def test_a_second_signal_while_the_run_stops_exits_at_once_and_the_next_command_records_it(
        tmp_path: Path, first: signal.Signals, second: signal.Signals) -> None:
    """The reading thread is stalled (a read that does not return) after some commits, and
    the stop the first signal asked for waits for it (Ctrl-C's cleanup joins the reading
    threads; SIGTERM's stop comes after the next batch): a second signal ends the process at
    once, with 128 + its number, a message and no traceback. The run's marker stays, so the
    next command records the run as interrupted with the counts it committed, and the same
    command run again completes the input."""
    from hubctl.ledger import source_runs

    no2, _, st = openaq_files(tmp_path / "in", 40, 500)
    lake, hold = tmp_path / "lake", tmp_path / "hold"
    hold.mkdir()
    proc = subprocess.Popen([*STALLING, str(hold), "200", "ingest", "openaq", str(no2),
                             "--stations", str(st), "--source-name", "slow"], env=_env(lake),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_commits(lake, proc, 1000)
        (hold / "stall").touch()
        _until(hold / "stalled", proc)
        proc.send_signal(first)
        _until(hold / "stopping", proc)  # the first signal is handled; its stop is held
        proc.send_signal(second)
        _, err = proc.communicate(timeout=15)  # before: the stop waited for the read
    finally:
        (hold / "stall").unlink()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + second, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert f"error: stopped at once by a second {second.name}" in err
    assert "the next hubctl command on this lake records it as interrupted" in err
    (run,) = source_runs(Lake(lake), "slow")
    assert run["status"] == "running"  # its end was never written ...
    assert hub(lake, "tables").exit_code == 0
    (run,) = source_runs(Lake(lake), "slow")  # ... the next command records it
    assert run["status"] == "interrupted" and "ended without finishing" in run["error"]
    assert run["read"] == run["written"] + run["updated"] + run["duplicate"] + run["rejected"]
    committed = _rows_by_run(lake)[run["run_id"]]
    assert 1000 <= run["written"] == committed < 20000  # nothing committed after its checkpoint
    assert not [p for p in (lake / "_running").iterdir() if not p.name.endswith(".tmp")]
    again = subprocess.run([HUBCTL, "ingest", "openaq", str(no2), "--stations", str(st),
                            "--source-name", "slow", "--json"], env=_env(lake),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["duplicate"] == committed
    assert _sql(lake, "SELECT count(*), count(DISTINCT (id, observed_at)) FROM "
                      "AirQualityObserved") == [(20000, 20000)]


def test_the_same_file_through_a_hard_link_is_not_ingested_twice_at_once(
        tmp_path: Path) -> None:
    from hubctl.locks import file_key, hold

    no2, pm25, st = openaq_files(tmp_path / "in", 2, 2)
    link = tmp_path / "elsewhere.csv"
    os.link(no2, link)
    lake = tmp_path / "lake"
    lake.mkdir()
    with hold(lake, file_key(no2)):  # as a run of no2.csv would, in this process
        locked = hub(lake, "ingest", "openaq", str(link), "--stations", str(st))
        assert locked.exit_code == 75, locked.output
        assert str(link) in locked.output and "hard link" in locked.output
        other = hub(lake, "ingest", "openaq", str(pm25), "--stations", str(st))
        assert other.exit_code == 0, other.output


# ----------------------------------------------------------------------------- lake check
def _duplicated_lake(root: Path) -> Lake:
    """AirQualityObserved with duplicate keys on 2024-05-01 (hours 1-2; two commits with one
    _ingested_at, then a newer one for hour 1) and a clean 2024-05-02; PointOfInterest with
    one id twice: what an older hubctl or another tool could leave."""
    lake = Lake(root)
    for name in ("AirQualityObserved", "PointOfInterest"):
        et = get_type(name)
        lake.ensure(name, et.arrow_schema(), et.partition_by)
    then = datetime(2024, 6, 1, tzinfo=UTC)

    def put(name: str, keys: list[tuple[str, int]], value: float, run: str,
            at: datetime) -> None:
        rows = lake_rows(name, keys, value, run, at).drop_columns(["_records"])
        write_deltalake(str(lake.path(name)), rows, mode="append",
                        partition_by=get_type(name).partition_by or None)

    put("AirQualityObserved", [("S1", 1), ("S1", 2), ("S1", 30)], 1.0, "a", then)
    put("AirQualityObserved", [("S1", 1), ("S1", 2)], 2.0, "b", then)  # same instant, later
    put("AirQualityObserved", [("S1", 1)], 3.0, "c", then + timedelta(hours=1))
    put("PointOfInterest", [("S1", 0), ("S2", 0)], 10, "a", then)
    put("PointOfInterest", [("S1", 0)], 20, "b", then + timedelta(hours=1))
    return lake


def test_lake_check_finds_duplicates_and_repair_keeps_the_last_write_in_the_ledger(
        tmp_path: Path) -> None:
    from hubctl.ledger import source_runs

    lake = _duplicated_lake(tmp_path)
    clean_day = lake.files("AirQualityObserved", ["2024-05-02"])
    found = hub(tmp_path, "lake", "check", "--json")
    assert found.exit_code == 1 and "--repair" in found.stderr
    report = json.loads(found.stdout)
    by_table = {t["table"]: t for t in report["tables"]}
    assert report["status"] == "duplicates" and report["duplicate_keys"] == 3
    assert by_table["AirQualityObserved"]["extra_rows"] == 3  # hour 1 three times, hour 2 twice
    assert by_table["AirQualityObserved"]["dates"] == ["2024-05-01"]
    assert by_table["PointOfInterest"]["duplicate_keys"] == 1
    # a command that meets the duplicates names the table and the way out, no internal error
    data, st = openaq_files(tmp_path / "in", 2, 3)[0::2]
    met = hub(tmp_path, "ingest", "openaq", str(data), "--stations", str(st))
    assert met.exit_code == 1 and "internal error" not in met.output
    assert "lake check PointOfInterest --repair" in met.output

    fixed = hub(tmp_path, "lake", "check", "--repair", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["status"] == "repaired"
    assert _sql(tmp_path, "SELECT hour(observed_at), no2, _run_id FROM AirQualityObserved "
                          "ORDER BY 1") == [(1, 3.0, "c"), (2, 2.0, "b"), (6, 1.0, "a")]
    assert _sql(tmp_path, "SELECT id, capacity FROM PointOfInterest ORDER BY 1") == [
        ("urn:ngsi-ld:PointOfInterest:S1", 20), ("urn:ngsi-ld:PointOfInterest:S2", 10)]
    assert lake.files("AirQualityObserved", ["2024-05-02"]) == clean_day  # not rewritten
    (run,) = source_runs(lake, "lake-check")
    assert run["status"] == "ok" and run["read"] == 3 + 2 + 2  # every row of a duplicated key
    assert (run["updated"], run["duplicate"]) == (3, 4)
    assert run["read"] == run["written"] + run["updated"] + run["duplicate"] + run["rejected"]
    assert set(json.loads(run["tables"])) == {"AirQualityObserved", "PointOfInterest"}
    assert hub(tmp_path, "lake", "check").exit_code == 0
    assert hub(tmp_path, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0


# ----------------------------------------------------------------------------- run markers
def test_only_runs_whose_process_is_gone_are_marked_interrupted_and_only_once(
        tmp_path: Path) -> None:
    from hubctl.ledger import Run, checkpoint, mark_interrupted, new_run_id, source_runs, start_run

    lake = Lake(tmp_path)
    dead = subprocess.run([sys.executable, "-c", f"""
import os
from pathlib import Path
from hubctl.lake import Lake
from hubctl.ledger import Run, checkpoint, new_run_id, start_run
run = Run(new_run_id(), "dead", "openaq", "fp", [], {{}})
lake = Lake(Path({str(tmp_path)!r}))
start_run(lake, run)
run.written, run.duplicate, run.tables = 7, 2, {{"AirQualityObserved": 3}}
checkpoint(lake, run)
print(run.run_id)
os._exit(0)  # as kill -9 would: no ledger row at the end, the marker stays
"""], capture_output=True, text=True, check=True).stdout.strip()
    alive = Run(new_run_id(), "alive", "openaq", "fp", [], {})
    start_run(lake, alive)  # this process: still running
    crashed = Run(new_run_id(), "crashed", "openaq", "fp", [], {})
    start_run(lake, crashed)
    (tmp_path / "_running" / f"{crashed.run_id}.json").write_text('{"owner": {"ho')  # cut
    assert sorted(mark_interrupted(lake)) == sorted([dead, crashed.run_id])
    assert mark_interrupted(lake) == []  # recorded once
    (run,) = source_runs(lake, "dead")
    assert (run["status"], run["read"], run["written"], run["duplicate"]) == (
        "interrupted", 9, 7, 2)
    assert json.loads(run["tables"]) == {"AirQualityObserved": 3}
    (run,) = source_runs(lake, "crashed")
    assert run["status"] == "interrupted" and "unreadable" in run["warnings"]
    assert source_runs(lake, "alive")[0]["status"] == "running"
    alive.status = "ok"
    checkpoint(lake, alive)
    from hubctl.ledger import write_run

    write_run(lake, alive)
    assert source_runs(lake, "alive")[0]["status"] == "ok"
    assert not list((tmp_path / "_running").iterdir())


def test_sql_is_a_command_that_records_interrupted_runs(tmp_path: Path) -> None:
    """`hubctl sql` reads the lake without the lake module, yet the first thing it shows of a
    killed run is `interrupted`, not `running`."""
    from tests.helpers import hub_json

    subprocess.run([sys.executable, "-c", f"""
import os
from pathlib import Path
from hubctl.lake import Lake
from hubctl.ledger import Run, new_run_id, start_run
start_run(Lake(Path({str(tmp_path)!r})), Run(new_run_id(), "dead", "openaq", "fp", [], {{}}))
os._exit(0)  # as kill -9 would
"""], check=True)
    rows = hub_json(tmp_path, "sql", "SELECT source, status FROM _runs")
    assert rows == [{"source": "dead", "status": "interrupted"}]
