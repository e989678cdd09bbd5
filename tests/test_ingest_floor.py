"""OpenAQ ingest at the Delta floor: the pivot's open (station, hour) keys are carried across
CSV blocks, whatever the input order, so a fresh ingest appends and never MERGEs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

import hubctl.adapters.openaq as openaq
import hubctl.adapters.openaq_pivot as pivot
import hubctl.csvread as csvread
from hubctl.adapter import ReadContext
from tests.helpers import hub_json, write_openaq


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSV blocks of the smallest size (64 KB): a few thousand lines make several blocks."""
    monkeypatch.setattr(csvread, "BATCH_ROWS", 100)
    monkeypatch.setattr(openaq, "FLUSH_ROWS", 10**9)  # one commit unless a test says so


STATIONS = [[f"S{s}", 40 + s / 100, 3 + s / 100] for s in range(60)]


def _rows(hours: int = 40) -> list[list[Any]]:
    """Two pollutants of 60 stations for ``hours`` hours, in time order (~260 KB: several
    64 KB CSV blocks)."""
    out = []
    for h in range(hours):
        day, hour = divmod(h, 24)
        stamp = f"2024-05-{day + 1:02d} {hour:02d}:00:00+00:00"
        for s in range(60):
            for p, v in (("no2", 10 + s + h / 10), ("pm25", 3 + s / 7 + h)):
                out.append(["Town", "XX", stamp, f"S{s}", p, round(v, 2), "µg/m³"])
    return out


def _ingest(lake: Path, data: Path, st: Path, *extra: str) -> dict[str, Any]:
    return hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st), *extra)


def _content(lake: Path) -> list[dict[str, Any]]:
    return hub_json(lake, "sql", "SELECT id, observed_at, no2, pm25, lon, lat, areaServed "
                    "FROM AirQualityObserved ORDER BY id, observed_at")


def _operations(lake: Path) -> list[str]:
    return [h["operation"] for h in DeltaTable(str(lake / "AirQualityObserved")).history()]


def _blocks(data: Path, st: Path) -> int:
    """How many CSV blocks the adapter reads ``data`` in (batches without rows)."""
    batches = openaq.ADAPTER.read([data], {"stations": str(st)}, ReadContext())
    return sum(1 for b in batches if b.entity_type == "AirQualityObserved" and b.rows is None)


def test_pairs_split_across_blocks_become_one_row_without_merge(tmp_path: Path) -> None:
    rows = _rows()
    # Put the two pollutants of each station and hour far apart: every pair is split by a
    # block boundary (the pm25 half of the file comes after every no2 row).
    split = [r for r in rows if r[4] == "no2"] + [r for r in rows if r[4] == "pm25"]
    data, st = write_openaq(tmp_path, split, STATIONS)
    assert _blocks(data, st) >= 3
    run = _ingest(tmp_path / "lake", data, st)
    assert run["status"] == "ok" and run["reconciles"]
    assert run["read"] == len(rows) + 60 and run["written"] == run["read"]
    assert run["updated"] == run["duplicate"] == run["unreached"] == 0
    content = _content(tmp_path / "lake")
    assert len(content) == 60 * 40
    assert all(r["no2"] is not None and r["pm25"] is not None for r in content)
    ops = _operations(tmp_path / "lake")
    assert "MERGE" not in ops and ops.count("WRITE") == 2  # create + one append


def test_slices_of_batch_rows_commit_as_one_append_with_the_same_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pivot's rows come in batches of at most batch_rows, marked as slices of one
    commit: the lake gets one append, as with one large batch, and the same counts."""
    rows = _rows()
    random.Random(5).shuffle(rows)
    data, st = write_openaq(tmp_path, rows + [["Town", "XX", "not a time", "S1", "no2", 1,
                                                "µg/m³"]], STATIONS)
    whole = _ingest(tmp_path / "whole", data, st)
    monkeypatch.setattr(openaq.ADAPTER, "batch_rows", 100)
    batches = list(openaq.ADAPTER.read([data], {"stations": str(st)},
                                       ReadContext(batch_rows=100)))
    pivoted = [b for b in batches if b.entity_type == "AirQualityObserved" and b.rows]
    assert len(pivoted) == 24 and max(b.rows.num_rows for b in pivoted) == 100
    assert [b.continues for b in pivoted] == [True] * 23 + [False]
    sliced = _ingest(tmp_path / "sliced", data, st)
    counts = ("read", "written", "updated", "duplicate", "rejected", "unreached", "status")
    assert {k: sliced[k] for k in counts} == {k: whole[k] for k in counts}
    assert sliced["rejected"] == 1 and sliced["reconciles"]
    assert _operations(tmp_path / "sliced") == _operations(tmp_path / "whole")
    assert _operations(tmp_path / "sliced").count("WRITE") == 2  # create + one append
    assert _content(tmp_path / "sliced") == _content(tmp_path / "whole")
    where = hub_json(tmp_path / "sliced", "rejects", "--run", sliced["run_id"])
    assert [r["record"] for r in where] == [f"line {len(rows) + 2}"], where


@pytest.mark.parametrize("page", [pivot.PAGE, 777])  # 777: blocks straddle held pages
def test_shuffled_input_gives_the_same_lake_and_counts_as_sorted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int) -> None:
    monkeypatch.setattr(pivot, "PAGE", page)
    rows = _rows()
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    runs, contents = [], []
    for name, order in (("sorted", rows), ("shuffled", shuffled)):
        data, st = write_openaq(tmp_path / name, order, STATIONS)
        assert _blocks(data, st) >= 3
        run = _ingest(tmp_path / name / "lake", data, st)
        runs.append({k: run[k] for k in ("read", "written", "updated", "duplicate",
                                          "rejected", "unreached", "status")})
        contents.append(_content(tmp_path / name / "lake"))
        assert "MERGE" not in _operations(tmp_path / name / "lake")
    assert runs[0] == runs[1] and runs[0]["written"] == len(rows) + 60
    assert contents[0] == contents[1] and len(contents[0]) == 60 * 40


@pytest.mark.parametrize("page", [pivot.PAGE, 777])
def test_inputs_in_order_or_nearly_give_the_same_lake_and_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int) -> None:
    """Readings held in (time, station, pollutant) order are pivoted unsorted, others sorted:
    time order with the stations or pollutants of each hour reversed, and repeated readings
    next to each other or scattered, give the same lake and counts as the shuffled input."""
    monkeypatch.setattr(pivot, "PAGE", page)
    rows = _rows()
    repeats = rows + [r for i, r in enumerate(rows) if i % 7 == 0]  # the same value again
    orders = {
        "shuffled": random.Random(7).sample(repeats, len(repeats)),
        "sorted, repeats adjacent": sorted(repeats, key=lambda r: (r[2], int(r[3][1:]), r[4])),
        "stations reversed": sorted(repeats, key=lambda r: (r[2], -int(r[3][1:]), r[4])),
        "pollutants reversed": sorted(repeats, key=lambda r: (r[2], int(r[3][1:]),
                                                              r[4] != "pm25")),
    }
    seen: list[bool] = []  # per pivot: pivoted unsorted
    init = pivot._Pivot.__init__

    def spy(self: Any, *args: Any) -> None:
        init(self, *args)
        seen.append(self.order is None)

    monkeypatch.setattr(pivot._Pivot, "__init__", spy)
    runs, contents, unsorted = {}, {}, {}
    for name, order in orders.items():
        data, st = write_openaq(tmp_path / name.replace(" ", "_"), order, STATIONS)
        lake = tmp_path / name.replace(" ", "_") / "lake"
        seen.clear()
        run = _ingest(lake, data, st)
        unsorted[name] = bool(seen) and all(seen)
        runs[name] = {k: run[k] for k in ("read", "written", "updated", "duplicate",
                                          "rejected", "unreached", "status")}
        contents[name] = _content(lake)
        assert "MERGE" not in _operations(lake)
    assert unsorted == {"shuffled": False, "sorted, repeats adjacent": True,
                        "stations reversed": False, "pollutants reversed": False}
    assert all(r == runs["shuffled"] for r in runs.values()), runs
    assert runs["shuffled"]["duplicate"] == len(repeats) - len(rows)
    assert runs["shuffled"]["written"] == len(rows) + 60
    assert all(c == contents["shuffled"] for c in contents.values())
    assert len(contents["shuffled"]) == 60 * 40


def test_reingest_of_the_same_records_is_all_duplicates(tmp_path: Path) -> None:
    rows = _rows()
    random.Random(3).shuffle(rows)
    data, st = write_openaq(tmp_path, rows, STATIONS)
    lake = tmp_path / "lake"
    first = _ingest(lake, data, st)
    before = _content(lake)
    again = _ingest(lake, data, st, "--force")
    assert again["reconciles"] and again["status"] == "ok"
    assert again["duplicate"] == again["read"] == first["read"]
    assert again["written"] == again["updated"] == 0
    assert _content(lake) == before


@pytest.mark.parametrize("page", [pivot.PAGE, 777])
def test_held_rows_over_the_limit_commit_early_and_still_give_the_same_lake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int) -> None:
    """Past FLUSH_ROWS the oldest rows are committed early (bounded memory): a time-ordered
    input still never MERGEs; a shuffled one merges the keys that come back, to the same
    content and counts."""
    monkeypatch.setattr(pivot, "PAGE", page)
    rows = _rows(80)
    shuffled = rows[:]
    random.Random(11).shuffle(shuffled)
    expected = None
    monkeypatch.setattr(openaq, "FLUSH_ROWS", 3500)
    for name, order in (("sorted", rows), ("shuffled", shuffled)):
        data, st = write_openaq(tmp_path / name, order, STATIONS)
        run = _ingest(tmp_path / name / "lake", data, st)
        assert run["reconciles"] and run["written"] == len(rows) + 60, run
        assert run["updated"] == run["duplicate"] == 0
        ops = _operations(tmp_path / name / "lake")
        assert ops.count("WRITE") > 2  # committed in several appends
        assert ("MERGE" in ops) == (name == "shuffled")
        content = _content(tmp_path / name / "lake")
        assert len(content) == 60 * 80 and (expected is None or content == expected)
        expected = content


def test_repeats_split_across_blocks_count_once_as_duplicate_or_updated(
        tmp_path: Path) -> None:
    rows = _rows()
    again = [r[:] for r in rows[:100]]  # the same records at the end of the file
    changed = [r[:5] + [r[5] + 1] + r[6:] for r in rows[100:150]]  # new values: updates
    data, st = write_openaq(tmp_path, rows + again + changed, STATIONS)
    run = _ingest(tmp_path / "lake", data, st)
    assert run["reconciles"] and run["duplicate"] == 100 and run["updated"] == 50
    assert run["written"] == len(rows) + 60
    assert "MERGE" not in _operations(tmp_path / "lake")
    last = {(r[3], r[2][11:13], r[4]): r[5] for r in rows + changed
            if r[2].startswith("2024-05-01")}
    got = hub_json(tmp_path / "lake", "sql", "SELECT id, hour(observed_at) AS h, no2, pm25 "
                   "FROM AirQualityObserved WHERE observed_at < '2024-05-01 03:00:00+00'")
    assert len(got) == 60 * 3
    for r in got:
        station = r["id"].rsplit(":", 1)[1]
        assert r["no2"] == last[(station, f"{r['h']:02d}", "no2")]
        assert r["pm25"] == last[(station, f"{r['h']:02d}", "pm25")]


def test_the_column_sort_for_enormous_time_ranges_gives_the_same_lake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readings whose (time slot, station, pollutant) key would not fit an integer are sorted
    on their columns: the same rows, counts and single append."""
    rows = _rows(30)
    rows += [r[:5] + [r[5] + 1] + r[6:] for r in rows[:40]]  # repeats with new values: updates
    random.Random(5).shuffle(rows)
    runs, contents = [], []
    for name, limit in (("key", pivot.KEY_LIMIT), ("columns", 0)):
        monkeypatch.setattr(pivot, "KEY_LIMIT", limit)
        data, st = write_openaq(tmp_path / name, rows, STATIONS)
        run = _ingest(tmp_path / name / "lake", data, st)
        runs.append({k: run[k] for k in ("read", "written", "updated", "duplicate")})
        contents.append(_content(tmp_path / name / "lake"))
        assert "MERGE" not in _operations(tmp_path / name / "lake")
    assert runs[0] == runs[1] and runs[0]["updated"] == 40
    assert contents[0] == contents[1] and len(contents[0]) == 60 * 30
