"""``ingest --engine`` reading large CSV files in byte ranges (one Spark task per range), on
``local[2]`` and on the two-worker standalone cluster: the same rows, rejects (line numbers
and raw text), warnings and ledger counts as the local path on the same input, then
re-ingest (all duplicates) and a changed file (updates). Ranges and batches are small here
(``HUBCTL_INGEST_RANGE_BYTES`` 64 KiB; batches of a few hundred or thousand rows, so blocks
of 64 to 90 KiB) so that files of 400 KB are cut into several ranges."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hubctl.adapter import Span
from hubctl.csvread import split_csv
from hubctl.spark_ingest import RANGE_BYTES_ENV
from tests.helpers import hub, write_openaq
from tests.spark import needs_spark
from tests.test_spark_ingest import _both, _tables

RANGE = 1 << 16  # bytes: a cut at the end of about every block
CALLS_BATCH, READINGS_BATCH, OPENAQ_BATCH = 300, 3000, 1000  # rows: blocks of 64 to 84 KiB


@pytest.fixture(params=["local[2]", "cluster"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``local[2]`` (its session stopped afterwards), or the session's two-worker
    cluster; with small byte ranges and batches (the executors take the batch size from
    the driver). Each test names one of them (indirect parametrize): both engines are
    covered, and the suite keeps within its time (every case on both took 3.2 min)."""
    from hubctl.adapters import get_adapter

    monkeypatch.setenv(RANGE_BYTES_ENV, str(RANGE))
    for name, rows in (("calls", CALLS_BATCH), ("meter-readings", READINGS_BATCH),
                       ("openaq", OPENAQ_BATCH)):
        monkeypatch.setattr(type(get_adapter(name)), "batch_rows", rows)
    if request.param == "cluster":
        yield request.getfixturevalue("spark_master")
        return
    yield "local[2]"
    from hubctl import spark

    spark.stop()


def _calls(path: Path, changed: bool = False) -> Path:
    """A Berkeley-layout calls file of 400 KB (most addresses a quoted field of three
    lines): calls without coordinates, call types without a subcategory, a case repeated
    unchanged and one repeated changed (at the end, a later range than the first), a bad
    date and a line with a field too many near the end."""
    offenses = ["DISTURBANCE", "THEFT MISD. (UNDER $950)", "ROBBERY", "VANDALISM"]
    rows = []
    for i in range(2200):
        where = "" if i % 17 == 0 else f"\n({37.85 + i / 1000:.6f}, {-122.27 - i / 1000:.6f})"
        rows.append([f"18{i:06d}", offenses[i % 4], f"04/{1 + i % 28:02d}/2018 12:00:00 AM",
                     f"{i % 24:02d}:{i % 60:02d}", "DISORDERLY CONDUCT",
                     f"{i * 10} OREGON STREET &amp; MCGEE AVE\nBerkeley, CA{where}",
                     f"{i * 10} OREGON STREET", "Berkeley", "CA"])
    rows.append(list(rows[3]))  # the same call again: duplicate
    rows.append(rows[5][:1] + ["ASSAULT/BATTERY MISD." if changed else "ROBBERY"] + rows[5][2:])
    rows[1000][2] = "31/31/2018"  # rejected: no such date
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CASENO", "OFFENSE", "EVENTDT", "EVENTTM", "CVLEGEND", "Block_Location",
                    "BLKADDR", "City", "State"])
        w.writerows(rows[:2100])
        f.write("18999999,VANDALISM,04/01/2018 12:00:00 AM,10:00,X,\"A\nB\",B,Berkeley,CA,X\n")
        w.writerows(rows[2100:])
    return path


def _readings(path: Path, changed: bool = False) -> Path:
    """Quarter-hour readings of four meters in time order, without --interval (inferred
    from the whole file's first batch), with a bad value, a malformed line and a reading
    repeated (unchanged, and changed) in later ranges."""
    lines = []
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for k in range(3500):  # 400 KB
        stamp = (start + timedelta(minutes=15 * k)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"M{m},{stamp},{(m * k) % 7 + 0.25}" for m in range(1, 5)]
    lines[7002] = lines[7002].rsplit(",", 1)[0] + ",lots"  # rejected: not a number
    lines[13_000] += ",extra"  # malformed: a field too many
    lines.append(lines[10])  # duplicate
    lines.append(lines[11].rsplit(",", 1)[0] + (",9.5" if changed else ",8.5"))  # updated
    data = ("meter_id,timestamp,kwh\n" + "\n".join(lines) + "\n").encode()
    # the first reading after the third range's cut repeats, changed, the last one before it
    # (same length, so the cut stays): the whole file's reading has both in one batch
    cut = split_csv_bytes(path, data)[2].start
    before = data[data.rfind(b"\n", 0, cut - 1) + 1:cut - 1]
    after = data[cut:data.index(b"\n", cut)]
    again = before.rsplit(b",", 1)[0] + b",9.25"
    assert len(again) == len(after) and again != before
    path.write_bytes(data[:cut] + again + data[cut + len(after):])
    return path


def split_csv_bytes(path: Path, data: bytes) -> list[Span]:
    """The ranges of the readings file ``data`` (written to ``path``)."""
    path.write_bytes(data)
    return split_csv(path, RANGE, batch_rows=READINGS_BATCH)


def _openaq(folder: Path, changed: bool = False) -> tuple[Path, Path]:
    """An OpenAQ long CSV of 400 KB and its stations: every no2 reading, then every pm25
    one, so that each station-hour's two readings are in ranges far apart (the driver's
    pivot folds them into one row); a value below the minimum, a station not listed and a
    malformed line in later ranges, a reading repeated unchanged and one changed at the
    end."""
    rows = []
    for parameter in ("no2", "pm25"):
        for k in range(50 * 24):
            at = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=k)
            rows += [["X", "XX", at.isoformat(sep=" "), station, parameter,
                      (k * (i + 1)) % 40 + 1, "µg/m³"]
                     for i, station in enumerate(("S1", "S2", "서울 중구"))]
    rows[5000][5] = -3  # below the minimum
    rows[6000][3] = "S9"  # not in the station list
    rows[6500] = ["X", "XX", "2024-05-01 03:00:00+00:00", "S2"]  # malformed
    rows.append(list(rows[4000]))  # duplicate
    rows.append(rows[4001][:5] + [77 if changed else 66, "µg/m³"])  # updated
    return write_openaq(folder, rows, name="aq.csv")


@needs_spark
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["cluster"], indirect=True)
def test_openaq_in_byte_ranges_folded_on_the_driver_equals_local(tmp_path: Path,
                                                                  engine: str) -> None:
    data, stations = _openaq(tmp_path / "in")
    assert len(split_csv(data, RANGE, batch_rows=OPENAQ_BATCH)) > 3
    args = ("openaq", str(data), "--stations", str(stations))
    first = _both(tmp_path, engine, *args)
    assert first["rejected"] == 3 and first["duplicate"] == 1 and first["updated"] == 1
    assert first["written"] == first["read"] - 3 - 2  # every station-hour one row

    again = _both(tmp_path, engine, *args, "--force")
    assert again["written"] == 0 and again["rejected"] == 3

    _openaq(tmp_path / "in", changed=True)
    changed = _both(tmp_path, engine, *args)
    assert changed["updated"] >= 1 and changed["written"] == 0


@needs_spark
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["cluster"], indirect=True)
def test_calls_in_byte_ranges_equal_local(tmp_path: Path, engine: str) -> None:
    path = _calls(tmp_path / "berkeley.csv")
    data = path.read_bytes()
    spans = split_csv(path, RANGE, batch_rows=CALLS_BATCH)
    assert len(spans) >= 3
    # every range starts at a record (a case number), never on an address's second line
    assert all(re.match(rb"18\d{6},", data[s.start:s.start + 9]) for s in spans[1:])
    first = _both(tmp_path, engine, "calls", str(path))
    assert first["rejected"] == 2 and first["duplicate"] == 1 and first["updated"] == 1
    assert len(first["warnings"]) == 3  # the profile, the calls without coordinates, the types

    again = _both(tmp_path, engine, "calls", str(path), "--force")
    # the case repeated changed, in batches far apart: its first row, then the change, both
    # updated against the lake again
    assert again["written"] == 0 and again["rejected"] == 2 and again["updated"] == 2
    assert again["duplicate"] == again["read"] - 2 - 2

    _calls(path, changed=True)
    changed = _both(tmp_path, engine, "calls", str(path))
    assert changed["updated"] == 2 and changed["written"] == 0


@needs_spark
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local[2]"], indirect=True)
def test_meter_readings_in_byte_ranges_equal_local(tmp_path: Path, engine: str) -> None:
    path = _readings(tmp_path / "ami.csv")
    assert len(split_csv(path, RANGE, batch_rows=READINGS_BATCH)) > 3
    first = _both(tmp_path, engine, "meter-readings", str(path))
    assert first["rejected"] == 2 and first["duplicate"] == 1 and first["updated"] == 2
    assert first["warnings"] == ["ami.csv: interval length inferred as 900 s from the data; "
                                 "pass --interval to set it"]

    again = _both(tmp_path, engine, "meter-readings", str(path), "--force")
    # the first reading of the key changed at the end, then its change: both updated again;
    # the reading repeated across the cut: folded in one batch, updated once
    assert again["written"] == 0 and again["updated"] == 3
    assert again["duplicate"] == again["read"] - 2 - 3

    _readings(path, changed=True)
    changed = _both(tmp_path, engine, "meter-readings", str(path))
    assert changed["updated"] == 3 and changed["written"] == 0  # the two above, the change

    # an input the adapter refuses in every range: the error of the local path, once
    local = hub(tmp_path / "local", "ingest", "meter-readings", str(path), "--unit", "lb")
    spark = hub(tmp_path / "spark", "ingest", "meter-readings", str(path), "--unit", "lb",
                "--engine", engine)
    assert local.exit_code == spark.exit_code == 2
    assert "not an energy unit" in spark.output and "Traceback" not in spark.output


def test_a_bad_range_size_is_a_usage_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _readings(tmp_path / "ami.csv")
    monkeypatch.setenv(RANGE_BYTES_ENV, "64MB")
    result = hub(tmp_path / "lake", "ingest", "meter-readings", str(path), "--engine",
                 "local[2]")
    assert result.exit_code == 2 and f"{RANGE_BYTES_ENV}='64MB'" in result.output


def test_meter_readings_ranges_commit_as_the_whole_file(tmp_path: Path) -> None:
    """Without Spark: a file of 50 meters per instant read range by range (cuts in the middle
    of instants) and ingested gives the rows and counts of the whole file; the instant at a
    range's end joins the next range's first batch although their id dictionaries differ."""
    from dataclasses import replace

    from hubctl.adapter import ReadContext
    from hubctl.adapters import get_adapter
    from hubctl.ingest import ingest_batches
    from hubctl.lake import Lake

    start = datetime(2025, 3, 1, tzinfo=UTC)
    lines = [f"M{m:02d},{(start + timedelta(minutes=15 * k)).strftime('%Y-%m-%dT%H:%M:%SZ')},"
             f"{(m * k) % 7 + 0.25}" for k in range(600) for m in range(50)]
    lines[20_010] = lines[20_010].rsplit(",", 1)[0] + ",-1"  # rejected: negative
    path = tmp_path / "ami.csv"
    path.write_text("meter_id,timestamp,kwh\n" + "\n".join(lines) + "\n", encoding="utf-8")
    data = path.read_bytes()
    spans = split_csv(path, 1 << 16, batch_rows=READINGS_BATCH)
    stamp = [data[data.rfind(b"\n", 0, s.start - 1):s.start].split(b",")[1] for s in spans[1:]]
    assert len(spans) > 5 and any(data[s.start:].split(b",")[1] == t
                                 for s, t in zip(spans[1:], stamp, strict=True))
    adapter, ctx = get_adapter("meter-readings"), ReadContext(batch_rows=READINGS_BATCH)
    ranges = [b for s in spans for b in adapter.read([path], {}, replace(ctx, span=s))]
    assert any(b.continues for b in ranges)
    whole = list(adapter.read([path], {}, ctx))
    runs = [ingest_batches(Lake(tmp_path / name), "ami", "meter-readings", batches,
                           fingerprint=name)[0]
            for name, batches in (("ranges", ranges), ("whole", whole))]
    assert [(r.read, r.written, r.updated, r.duplicate, r.rejected) for r in runs] == \
        [(30_000, 29_999, 0, 0, 1)] * 2
    assert _tables(tmp_path / "ranges") == _tables(tmp_path / "whole")


def test_openaq_parts_of_byte_ranges_fold_as_the_whole_file(tmp_path: Path) -> None:
    """Without Spark: OpenAQ's parts read range by range (the station list kept from the
    first range, as the engine keeps a side file's batches) and folded give the rows and
    counts of reading the whole file."""
    from dataclasses import replace

    from hubctl.adapter import ReadContext
    from hubctl.adapters import get_adapter
    from hubctl.ingest import ingest_batches
    from hubctl.lake import Lake

    data, stations = _openaq(tmp_path / "in")
    adapter, ctx = get_adapter("openaq"), ReadContext(batch_rows=OPENAQ_BATCH)
    options = {"stations": str(stations)}
    spans = split_csv(data, RANGE, batch_rows=OPENAQ_BATCH)
    assert len(spans) > 3 and adapter.parts_apart(options)
    parts = [b for i, s in enumerate(spans)
             for b in adapter.read_parts([data], options, replace(ctx, span=s))
             if i == 0 or b.file == str(data)]
    assert sum(b.part for b in parts) >= len(spans)
    folded = list(adapter.fold(iter(parts), options, ctx))
    whole = list(adapter.read([data], options, ctx))
    runs = [ingest_batches(Lake(tmp_path / name), "aq", "openaq", batches, fingerprint=name)[0]
            for name, batches in (("ranges", folded), ("whole", whole))]
    assert [(r.read, r.written, r.updated, r.duplicate, r.rejected) for r in runs] == \
        [(7205, 7200, 1, 1, 3)] * 2
    assert _tables(tmp_path / "ranges") == _tables(tmp_path / "whole")
