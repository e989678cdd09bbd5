"""The snapshot cache behind `hubctl sql`: the same answers as deltalake, renewed by every
commit, harmless when the lake cannot be written."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from hubctl.lake import Lake
from hubctl.snapshot import CACHE, Snapshot, _from_delta, read_snapshot
from tests.helpers import hub_json


def _rows(n: int, start: int = 0) -> pa.Table:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    return pa.table({"id": [f"urn:ngsi-ld:T:{i}" for i in range(start, start + n)],
                     "observed_at": pa.array([at] * n, pa.timestamp("us", tz="UTC")),
                     "value": [float(i) for i in range(start, start + n)]})


def _same(a: Snapshot, b: Snapshot) -> None:
    """Equal for DuckDB: version, files, partitioning, columns (the Arrow schema and the
    partition columns come only with a read through deltalake, for the S3 path)."""
    assert (a.version, a.files, a.partitioned, a.columns) \
        == (b.version, b.files, b.partitioned, b.columns)


def test_cache_answers_as_deltalake_and_follows_commits(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.append("T", _rows(3))
    folder = lake.path("T")
    first = read_snapshot(lake.root, "T", folder)
    assert (lake.root / CACHE / "T.json").is_file()
    _same(read_snapshot(lake.root, "T", folder), first)  # served from the cache
    _same(first, _from_delta(folder))
    lake.append("T", _rows(2, start=3))  # a new version: the entry is stale
    second = read_snapshot(lake.root, "T", folder)
    assert second.version == first.version + 1 and len(second.files) == len(first.files) + 1
    _same(second, _from_delta(folder))
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM T") == [{"n": 5}]


def test_a_recreated_table_is_not_taken_for_the_cached_one(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.append("T", _rows(3))
    read_snapshot(lake.root, "T", lake.path("T"))
    shutil.rmtree(lake.path("T"))
    lake.append("T", _rows(1, start=10))  # version 0 again, other files
    assert hub_json(lake.root, "sql", "SELECT min(value) AS v FROM T") == [{"v": 10.0}]


def test_a_moved_lake_keeps_answering(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "a")
    lake.append("T", _rows(4))
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM T") == [{"n": 4}]
    os.rename(tmp_path / "a", tmp_path / "b")
    assert hub_json(tmp_path / "b", "sql", "SELECT count(*) AS n FROM T") == [{"n": 4}]


def test_a_lake_where_the_cache_cannot_be_written_answers_all_the_same(tmp_path: Path) -> None:
    """A read-only lake (here: ``_cache`` is a file, so even root cannot create the folder)."""
    lake = Lake(tmp_path / "lake")
    lake.append("T", _rows(2))
    (lake.root / "_cache").write_text("", encoding="utf-8")
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM T") == [{"n": 2}]
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM T") == [{"n": 2}]


def test_a_damaged_cache_entry_is_read_again(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.append("T", _rows(2))
    read_snapshot(lake.root, "T", lake.path("T"))
    (lake.root / CACHE / "T.json").write_text("{not json", encoding="utf-8")
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM T") == [{"n": 2}]
