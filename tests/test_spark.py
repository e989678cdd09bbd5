"""``hubctl run NAME --engine spark://HOST:PORT`` on a real Spark standalone cluster on
loopback (one master, two workers): every converted pipeline's derived tables and summary equal
the DuckDB path's, exactly for keys and counts, within 1e-9 relative for floats.

air_quality sends its observations scan to the engine, but the station-hours come back to the
driver for the index code; bus_routes sends its feed scans and its boarding scans, which join
a stop-link table built in Python (``ctx.share``) (docs/scale.md lists what runs where).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from hubctl.errors import HubError, UsageError
from hubctl.pipeline import metrics
from hubctl.s3 import delta_options, is_uri, parse_root
from hubctl.spark import check_engine, to_spark_sql
from tests.helpers import hub, hub_json, write_openaq
from tests.spark import needs_spark
from tests.test_subprocess import HUBCTL

RTOL = 1e-9


def _clock(metric: str) -> bool:
    """Wall-clock times in summaries (solver, matrix and step seconds, the what-if solver's
    time limit: what the run had left): not results."""
    return metric in ("solver.seconds", "whatif.solver_seconds", "whatif.matrix_seconds",
                      "whatif.solver_time_limit") \
        or metric.startswith("seconds.")


def _derived(lake: Path | str, pipeline: str) -> dict[str, pa.Table]:
    root = parse_root(str(lake)) if is_uri(lake) else Path(lake)  # an S3 lake (test_spark_s3)
    out = {}
    for folder in sorted((root / "derived" / pipeline).iterdir(), key=str):
        table = DeltaTable(str(folder), storage_options=delta_options(folder)).to_pyarrow_table()
        out[folder.name] = table.drop_columns(["_run_id"])
    return out


def _run(lake: Path | str, pipeline: str, engine: str, *params: str) -> tuple[dict, dict]:
    args = [a for p in params for a in ("--param", p)]
    result = hub(lake, "run", pipeline, "--json", "--engine", engine, *args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["engine"] == engine
    return out["summary"], _derived(lake, pipeline)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= RTOL * max(abs(a), abs(b))
    return bool(a == b)


def _same_table(name: str, duck: pa.Table, spark: pa.Table) -> None:
    assert spark.schema == duck.schema, name
    assert spark.num_rows == duck.num_rows, name
    for column in duck.column_names:
        left, right = duck[column].to_pylist(), spark[column].to_pylist()
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(left, right, strict=True))
               if not _close(x, y)]
        assert not bad, f"{name}.{column}: rows differ (row, duckdb, spark): {bad[:5]}"


def _same(duck: tuple[dict, dict], spark: tuple[dict, dict]) -> None:
    (s1, t1), (s2, t2) = duck, spark
    m1, m2 = ({k: v for k, v in metrics(s).items() if not _clock(k)} for s in (s1, s2))
    assert m1.keys() == m2.keys()
    assert [k for k in m1 if not _close(m1[k], m2[k])] == []
    assert json.dumps(_texts(s1), sort_keys=True) == json.dumps(_texts(s2), sort_keys=True)
    assert t1.keys() == t2.keys()
    for name in t1:
        _same_table(name, t1[name], t2[name])


def _texts(value: Any) -> Any:
    """The summary without its numbers (compared apart, within the tolerance)."""
    if isinstance(value, dict):
        return {k: _texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts(v) for v in value]
    return None if isinstance(value, int | float) else value


def _compare(lake: Path | str, pipeline: str, master: str, *params: str) -> None:
    duck = _run(lake, pipeline, "duckdb", *params)
    assert any(t.num_rows for t in duck[1].values()), "the fixture should produce rows"
    _same(duck, _run(lake, pipeline, master, *params))


def test_engine_names_are_checked() -> None:
    assert check_engine("local[2]") == "local[2]"
    assert check_engine("spark://10.0.0.5:7077") == "spark://10.0.0.5:7077"
    with pytest.raises(UsageError, match="not an engine"):
        check_engine("spark://nowhere")
    result = hub(Path("/nonexistent"), "run", "energy", "--engine", "hadoop")
    assert result.exit_code == 2 and "not an engine" in result.output


def test_duckdb_sql_is_written_for_spark() -> None:
    text = to_spark_sql("SELECT isodow(t) AS d, timezone('Asia/Seoul', t) AS l, "
                        "epoch_us(t) AS us, sum(n) / 3600.0 AS h, "
                        "quantile_cont(x, 0.25) AS q FROM x WHERE k = ? GROUP BY ALL",
                        ["it's"])
    assert "EXTRACT(DAYOFWEEK_ISO FROM t)" in text
    assert "FROM_UTC_TIMESTAMP(t, 'Asia/Seoul')" in text
    assert "UNIX_MICROS(t)" in text and "CAST(3600.0 AS DOUBLE)" in text
    assert "PERCENTILE(x, 0.25)" in text and "k = 'it''s'" in text.replace("\\'", "''")
    numbered = to_spark_sql("SELECT * FROM x WHERE a = $1 AND d BETWEEN $2::DATE AND $3::DATE "
                            "AND b = $1", ["t", "2024-01-01", "2024-01-31"])
    assert "a = 't'" in numbered and "b = 't'" in numbered
    assert "CAST('2024-01-31' AS DATE)" in numbered
    with pytest.raises(HubError, match=r"\$4 has no value"):
        to_spark_sql("SELECT $4", [1, 2, 3])
    with pytest.raises(HubError, match="mixes"):
        to_spark_sql("SELECT $1, ?", [1])


@needs_spark
@pytest.mark.slow
def test_energy_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_energy_pipeline import _lake

    lake = _lake(tmp_path)
    _compare(lake, "energy", spark_master, "population=1000", "timezone=Europe/London")


@needs_spark
@pytest.mark.slow
def test_patrol_points_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_patrol_points import _calls, _points

    calls, _ = _calls(tmp_path)
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(calls))
    hub_json(lake, "ingest", "places", str(_points(tmp_path)), "--kind", "patrol-point")
    _compare(lake, "patrol_points", spark_master, "k=3", "time_limit=10")


@needs_spark
@pytest.mark.slow
def test_dispatch_coverage_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_dispatch_coverage import BASE, entities, grid_osm

    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(grid_osm(tmp_path / "grid.osm")))
    entities(tmp_path / "calls.jsonl")
    hub_json(lake, "ingest", "ngsi-ld", str(tmp_path / "calls.jsonl"))
    _compare(lake, "dispatch_coverage", spark_master, *BASE)


@needs_spark
@pytest.mark.slow
def test_city_kpis_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_city_kpis import _feed, calls_112

    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "gtfs", str(_feed(tmp_path / "feed.zip")), "--feed-id", "t")
    hub_json(lake, "ingest", "calls", str(calls_112(tmp_path / "112.csv")))
    _compare(lake, "city_kpis", spark_master, "population=50000")


@needs_spark
@pytest.mark.slow
def test_air_quality_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_air_quality import A, B, _feed, _hours

    t0 = datetime(2024, 3, 1)
    rows = _hours("A", t0, [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13], "pm25")
    rows += _hours("A", t0, [0.02] * 12, "o3", "ppm") + _hours("B", t0, [30.0] * 30, "no2")
    # two readings in one hour: the grid averages them (the GROUP BY path)
    rows += _hours("B", t0 + timedelta(minutes=30), [40.0], "no2")
    data, st = write_openaq(tmp_path, rows, [A, B])
    lake = tmp_path / "lake"
    assert hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))["rejected"] == 0
    hub_json(lake, "ingest", "gtfs", str(_feed(tmp_path / "feed.zip")), "--feed-id", "t")
    board = tmp_path / "boardings.csv"
    board.write_text("stop_id,date,hour,boardings,alightings\nSA,2024-03-01,8,100,0\n"
                     "SB,2024-03-01,8,300,0\n", encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(board), "--feed-id", "t", "--timezone", "UTC")
    _compare(lake, "air_quality", spark_master, "timezone=Asia/Seoul", "min_completeness=0.5")


@needs_spark
@pytest.mark.slow
def test_bus_routes_on_spark_equals_duckdb(tmp_path: Path, spark_master: str) -> None:
    from tests.test_bus_routes import PARAMS, frequency_feed, write_feed, write_population

    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "gtfs", str(write_feed(tmp_path / "t.zip")), "--feed-id", "t")
    hub_json(lake, "ingest", "population", str(write_population(tmp_path / "pop.csv")),
             "--dataset", "test")
    _boardings(lake, tmp_path)
    _compare(lake, "bus_routes", spark_master, *PARAMS[1::2])
    # frequencies.txt: departures expanded with generate_series over a LATERAL join
    freq = tmp_path / "freq"
    hub_json(freq, "ingest", "gtfs", str(frequency_feed(tmp_path / "f.zip")), "--feed-id", "f")
    _compare(freq, "bus_routes", spark_master, "date=2024-05-08", "day_window=08:00-11:00",
             "peak_windows=08:00-09:00")


def _boardings(lake: Path, tmp_path: Path) -> None:
    """Boardings that exercise every scan of bus_routes' demand: counts without a feed (their
    stops linked to the feed by a table built in Python and shared with the engine), hourly
    counts of a day beside that day's total (the hours win), a month's hourly counts per line
    spread over its days (OA-12913 layout), and a line with its long name."""
    plain = tmp_path / "plain.csv"
    plain.write_text("stop_id,date,hour,boardings,alightings\n"
                     "S1,2024-05-08,,500,250\nS1,2024-05-08,8,120,60\nS1,2024-05-08,17,80,40\n"
                     "S5,2024-05-08,,300,100\nS7,2024-05-07,,90,30\nX9,2024-05-08,,7,7\n",
                     encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(plain), "--timezone", "Asia/Seoul")
    hours = [f"{'00' if h == 0 else h}시{k}총승객수" for h in range(24) for k in ("승차", "하차")]
    header = ["사용년월", "노선번호", "노선명", "표준버스정류장ID", "버스정류장ARS번호", "역명",
              *hours]

    def row(line: str, stop: str, counts: dict[int, int]) -> str:
        cells = [counts.get(h, 0) if k == 0 else counts.get(h, 0) // 3
                 for h in range(24) for k in (0, 1)]
        return ",".join(["202405", line, f"{line}번(시험)", stop, stop[1:], stop,
                         *map(str, cells)])

    monthly = tmp_path / "bus-hourly-202405.csv"
    monthly.write_text("\n".join([",".join(header), row("A", "S2", {8: 3100, 9: 310}),
                                   row("B", "S3", {10: 620, 18: 217}),
                                   row("Z", "S4", {7: 93})]) + "\n", encoding="utf-8")
    run = hub_json(lake, "ingest", "boardings", str(monthly), "--feed-id", "t",
                   "--timezone", "Asia/Seoul")
    assert run["rejected"] == 0, run


def _meter_files(folder: Path, files: int, meters: int, days: int) -> tuple[list[Path], Path]:
    """Quarter-hour readings of ``meters`` meters over ``days`` days in ``files`` files, and
    the meters' positions."""
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 3, 1)
    paths = []
    for f in range(files):
        path = folder / f"ami-{f}.csv"
        with path.open("w", encoding="utf-8") as out:
            out.write("meter_id,timestamp,kwh\n")
            for q in range(days * 96):
                stamp = (start + timedelta(minutes=15 * q)).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.writelines(f"M{f}-{m},{stamp},{(m + q) % 7 / 4}\n" for m in range(meters))
        paths.append(path)
    meters_csv = folder / "meters.csv"
    meters_csv.write_text("meter,lat,lon,site\n" + "".join(
        f"M{f}-{m},35.8,128.6,S{f}\n" for f in range(files) for m in range(meters)),
        encoding="utf-8")
    return paths, meters_csv


def _interrupted(tmp_path: Path, lake: Path, sig: signal.Signals,
                 *args: str) -> tuple[int, str, list[str]]:
    """``hubctl ARGS`` in a real process (Spark with an event log), sent ``sig`` once its
    first Spark job has started; its exit code, stderr and the event log's lines. Checks that
    the process ends within a minute and leaves no JVM behind."""
    conf, events = tmp_path / "spark-conf", tmp_path / "spark-events"
    conf.mkdir(exist_ok=True)
    events.mkdir(exist_ok=True)
    (conf / "spark-defaults.conf").write_text(  # spark-submit reads it: the job's start shows
        f"spark.eventLog.enabled true\nspark.eventLog.dir {events.as_uri()}\n"
        "spark.eventLog.compress false\nspark.eventLog.rolling.enabled false\n",
        encoding="utf-8")
    env = {**os.environ, "HUBCTL_LAKE": str(lake), "SPARK_CONF_DIR": str(conf)}
    proc = subprocess.Popen([HUBCTL, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    jvms: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while "SparkListenerJobStart" not in _events(events):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no Spark job started in 300 s"
            jvms |= _children(proc.pid)
            time.sleep(0.2)
        jvms |= _children(proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert time.monotonic() - sent < 60, "the process waited for the job"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert jvms, "Spark's driver JVM was not seen"
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in jvms) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in jvms if Path(f"/proc/{pid}").exists()], "a JVM outlived hubctl"
    return proc.returncode, err, _events(events).splitlines()


def _events(folder: Path) -> str:
    return "".join(f.read_text(errors="replace") for f in sorted(folder.rglob("*"))
                   if f.is_file())


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _cancelled(events: list[str]) -> bool:
    """True when the event log ends a job as cancelled."""
    ends = [json.loads(e) for e in events if '"SparkListenerJobEnd"' in e]
    return any("cancel" in json.dumps(e.get("Job Result", {})).lower() for e in ends)


@needs_spark
@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_cancels_the_pipelines_spark_job_and_records_it_interrupted(
        tmp_path: Path) -> None:
    paths, meters = _meter_files(tmp_path / "in", 2, 40, 60)
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "meter-readings", *map(str, paths), "--meters", str(meters))
    code, err, events = _interrupted(tmp_path, lake, signal.SIGTERM, "run", "energy",
                                     "--engine", "local[1]", "--param", "population=1000")
    assert code == 1 and "Traceback" not in err, err
    assert "error: stopped by SIGTERM: run " in err and "recorded as interrupted" in err, err
    assert _cancelled(events), "the Spark job under way was not cancelled"
    assert not (lake / "derived" / "energy").exists()  # no derived table written
    (run,) = hub_json(lake, "sql", "SELECT status, error FROM _pipeline_runs")
    assert run == {"status": "interrupted", "error": "stopped by SIGTERM"}


@needs_spark
@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_cancels_the_ingests_spark_job(tmp_path: Path, sig: signal.Signals) -> None:
    """As without --engine: Ctrl-C stops the run where it is (click's "Aborted!"), SIGTERM
    after its last commit;
    either way the Spark job is cancelled rather than waited for, and nothing is committed."""
    paths, meters = _meter_files(tmp_path / "in", 2, 200, 30)
    lake = tmp_path / "lake"
    lake.mkdir()
    code, err, events = _interrupted(tmp_path, lake, sig, "ingest", "meter-readings",
                                     *map(str, paths), "--meters", str(meters), "--engine",
                                     "local[1]")
    assert code == 1 and "Traceback" not in err, err
    assert _cancelled(events), "the Spark job under way was not cancelled"
    (run,) = hub_json(lake, "sql", "SELECT status, error, written FROM _runs")
    if sig == signal.SIGINT:
        assert "Aborted!" in err
        assert run == {"status": "stopped", "written": 0, "error": "stopped by Ctrl-C "
                       "(SIGINT): 0 of 0 records read were committed, 0 were not"}
    else:
        assert "error: stopped by SIGTERM after its last commit" in err
        assert run["status"] == "stopped" and run["written"] == 0
    assert "MeterReadingObserved" not in [t["table"] for t in hub_json(lake, "tables")]
    assert not list((lake / "_staging").iterdir())
