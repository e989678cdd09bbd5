"""Integrity under concurrency and faults (issue 12): writers that share keys in several
processes, tables that already hold duplicate keys, killed and stopped runs, hard links."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hubctl.errors import DuplicateKeys
from hubctl.lake import Lake
from hubctl.registry import get_type

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


@pytest.mark.parametrize("type_name", ["AirQualityObserved", "PointOfInterest"])
def test_writers_in_four_processes_never_write_one_key_twice_and_count_truly(
        tmp_path: Path, type_name: str) -> None:
    processes, rounds, keys_per_round = 4, 6, 50
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
