"""``hubctl ingest ADAPTER FILES... --engine spark://HOST:PORT`` on a real Spark standalone
cluster on loopback: the same rows, rejects and ledger counts as the local path on the same
input, first ingest, re-ingest (all duplicates) and a changed file (updates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from tests.helpers import hub, hub_json, row, write_meter_days, write_openaq
from tests.spark import needs_spark

COUNTS = ("status", "read", "written", "updated", "duplicate", "rejected", "rows_added",
          "reconciles")


def _table(lake: Path, name: str) -> list[dict[str, Any]]:
    """A table's rows without what differs from run to run (the run, the ingest time, a
    static entity's time of arrival), sorted."""
    table = DeltaTable(str(lake / name)).to_pyarrow_table()
    drop = [c for c in ("_run_id", "_ingested_at", "run_id", "rejected_at")
            if c in table.column_names]
    rows = table.drop_columns(drop).to_pylist()
    for r in rows:
        if r.get("_time_index") == "arrival":
            r["observed_at"] = "arrival"
    return sorted(rows, key=repr)


def _tables(lake: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.parent.name: _table(lake, p.parent.name) for p in lake.glob("*/_delta_log")
            if p.parent.name != "_runs"}


def _both(tmp_path: Path, master: str, *args: str) -> dict[str, Any]:
    """``hubctl ingest ARGS`` into a local lake and, with --engine, into a Spark lake; the
    run's counts and every table must be the same. Returns the local run."""
    local = hub_json(tmp_path / "local", "ingest", *args)
    spark = hub_json(tmp_path / "spark", "ingest", *args, "--engine", master)
    assert {k: spark.get(k) for k in COUNTS} == {k: local.get(k) for k in COUNTS}
    assert spark["warnings"] == local["warnings"]
    assert _tables(tmp_path / "spark") == _tables(tmp_path / "local")
    assert not list((tmp_path / "spark" / "_staging").iterdir())  # staging cleaned up
    return local


@needs_spark
@pytest.mark.slow
def test_openaq_on_spark_equals_local(tmp_path: Path, spark_master: str) -> None:
    a, st = write_openaq(tmp_path / "in", [
        row("S1", 1, "no2", 20), row("S1", 1, "pm25", 5), row("S1", 2, "no2", 21),
        row("S2", 1, "no2", -3),  # rejected: below the minimum
        row("S2", 2, "no2", 30), ["X", "XX", "2024-05-01 03:00:00+00:00", "S2"]],  # malformed
        name="a.csv")
    b, _ = write_openaq(tmp_path / "in", [
        row("S1", 1, "no2", 20),  # the same as in a.csv: duplicate
        row("S1", 2, "no2", 22),  # changed: updated
        row("S2", 2, "pm25", 8),  # a new cell of a row of a.csv: filled
        row("서울 중구", 4, "no2", 9),
        row("S3", 4, "no2", 9)], name="b.csv")  # rejected: no coordinates
    args = ("openaq", str(a), str(b), "--stations", str(st))
    first = _both(tmp_path, spark_master, *args)
    assert first["rejected"] == 3 and first["updated"] == 1 and first["duplicate"] == 1

    again = _both(tmp_path, spark_master, *args, "--force")
    # nothing new; the one update is a.csv's S1 02:00 that b.csv changes within the run
    assert again["written"] == 0 and again["updated"] == 1
    assert again["duplicate"] == again["read"] - again["rejected"] - 1

    b.write_text(b.read_text(encoding="utf-8").replace(",22,", ",23,"), encoding="utf-8")
    changed = _both(tmp_path, spark_master, *args)
    # S1 02:00 is 21 in a.csv, now 23 in b.csv: updated within the run, then in the lake
    assert changed["updated"] == 2 and changed["written"] == 0


@needs_spark
@pytest.mark.slow
def test_meter_readings_calls_greenbutton_gtfs_on_spark_equal_local(tmp_path: Path,
                                                       spark_master: str) -> None:
    days = write_meter_days(tmp_path)
    run = _both(tmp_path, spark_master, "meter-readings", *map(str, days))
    assert run["written"] == 12 and run["rejected"] == 2

    calls = tmp_path / "112.csv"
    calls.write_text("접수번호,접수일시,사건종별,위도,경도,출동일시,도착일시\n"
                     "1,2023-03-01 10:00:00,폭력,37.5,127.0,2023-03-01 10:01:00,"
                     "2023-03-01 10:05:00\n"
                     "2,2023-03-02 10:00:00,절도,37.5,127.0,2023-03-02 10:02:00,"
                     "2023-03-02 10:10:00\n"
                     "3,not a time,절도,37.5,127.0,,\n", encoding="utf-8")
    run = _both(tmp_path, spark_master, "calls", str(calls))
    assert run["written"] == 2 and run["rejected"] == 1

    from tests.test_city_kpis import _feed as gtfs_feed
    from tests.test_greenbutton import T0, _block, _feed, _meter_reading, _reading_type

    xml = _feed(tmp_path / "gb.xml",
                _meter_reading(1, 1, 1), _reading_type(1, uom=38), _block(1, 1, T0, ["5"]),
                _meter_reading(2, 1, 2), _reading_type(2), _block(2, 1, T0, ["x", "", "7"]),
                _block(3, 1, T0, ["9"]), _reading_type(4), _reading_type(5))
    run = _both(tmp_path, spark_master, "greenbutton", str(xml))
    assert run["written"] == 1 and run["rejected"] == 4

    # a GTFS feed (one input, read in one task): scoped rows, unique keys, a zip's members
    feed = gtfs_feed(tmp_path / "feed.zip")
    run = _both(tmp_path, spark_master, "gtfs", str(feed), "--feed-id", "t")
    assert run["written"] > 0 and run["reconciles"]

    # an input the adapter refuses: the executor's error, as the local path says it
    local = hub(tmp_path / "local", "ingest", "meter-readings", str(days[0]), "--unit", "lb")
    spark = hub(tmp_path / "spark", "ingest", "meter-readings", str(days[0]), "--unit", "lb",
                "--engine", spark_master)
    assert local.exit_code == spark.exit_code == 2
    assert "not an energy unit" in spark.output and "Traceback" not in spark.output


def test_engine_is_checked_before_spark_starts(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 20)])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--engine", "duckdb")
    assert result.exit_code == 2 and "no DuckDB engine" in result.output
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--engine", "yarn")
    assert result.exit_code == 2 and "not an engine" in result.output
