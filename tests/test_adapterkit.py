"""The adapter toolkit (hubctl.adapterkit): one helper per idea, checked against the scalar
definitions it vectorises."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from hubctl.adapterkit import check_mapped, local_ids, parse_map, urns
from hubctl.errors import InputError, UsageError
from hubctl.ngsild import entity_id
from tests.helpers import hub_json

_LOCALS = ["S1", "중구 파출소", " padded ", "a/b%c", "", None, "urn:ngsi-ld:GtfsStop:x:1",
           "S1", "x y"]


@pytest.mark.parametrize("namespace", ["", "daegu", "fire-station", "a b"])
def test_urns_are_entity_id_of_every_value(namespace: str) -> None:
    got = urns("GtfsStop", pa.array(_LOCALS, pa.string()), namespace).to_pylist()
    want = [None if v is None else
            entity_id("GtfsStop", f"{namespace}:{v}" if namespace else v) for v in _LOCALS]
    assert got == want


def test_urns_of_plain_ids_take_the_fast_path_and_agree() -> None:
    local = pa.chunked_array([["1", "2"], ["3"]])
    assert urns("Alert", local, "112").to_pylist() == [
        "urn:ngsi-ld:Alert:112:1", "urn:ngsi-ld:Alert:112:2", "urn:ngsi-ld:Alert:112:3"]


def test_local_ids_are_the_local_part_of_urns() -> None:
    values = pa.array(["T1", "트립 1", None])
    full = urns("GtfsTrip", values, "feed")
    parts = local_ids("feed", values).to_pylist()
    assert [None if part is None else "urn:ngsi-ld:GtfsTrip:" + part
            for part in parts] == full.to_pylist()


def test_one_map_parser_field_to_column() -> None:
    assert parse_map(["Stop No=stop_id", " a=b = boardings "], ["stop_id", "boardings"]) == {
        "stop_id": "Stop No", "boardings": "a=b"}
    assert parse_map(None, ["x"]) == {}
    with pytest.raises(UsageError, match="'when' is not a call field"):
        parse_map(["Received=when"], ["dateIssued"], "call")
    with pytest.raises(UsageError, match="write it as COLUMN=FIELD"):
        parse_map(["stop_id"], ["stop_id"])


def test_a_mapped_column_the_header_lacks_is_named() -> None:
    with pytest.raises(InputError, match="no column 'Lat' in the header; the header has a, b"):
        check_mapped("f.csv", ["a", "b"], {"lat": "Lat", "x": "a"})


def test_energy_units_come_from_the_one_unit_table() -> None:
    """Meter readings' energy units are hubctl.units' (its own table of factors is gone)."""
    from hubctl.adapters.meter_readings import energy_factors

    units = ["kWh", "Wh", "MWh", "GWh", "MJ", "kJ", "GJ", "kW·h", "3B", "KWH", "m³", None]
    got = energy_factors(pa.array(units, pa.string())).to_pylist()
    want = [1.0, 0.001, 1000.0, 1e6, 1 / 3.6, 1 / 3600, 1000 / 3.6, 1.0, 1 / 3.6, 1.0, None,
            None]
    assert [None if g is None else round(g, 9) for g in got] == [
        None if w is None else round(w, 9) for w in want]


def test_one_local_instant_in_the_dst_gap_across_adapters(tmp_path: Path) -> None:
    """02:30 on 2024-03-10 in Los Angeles does not exist (spring forward): a call, a meter
    reading, a charging session and a boarding count at that local time all land on 10:30Z,
    the one rule of hubctl.localtime (the offset before the change), through the real
    adapters and the lake."""
    zone = ["--timezone", "America/Los_Angeles"]
    lake = tmp_path / "lake"
    inputs = {
        "calls": ("case,received,type\nC1,2024-03-10 02:30:00,noise\n",
                  ["--map", "case=id", "--map", "received=dateIssued",
                   "--map", "type=subCategory", *zone]),
        "meter-readings": ("meter_id,timestamp,kwh\nM1,2024-03-10 02:30:00,1.5\n",
                           ["--interval", "900", *zone]),
        "ev-sessions": ("CP ID,Start Date,Start Time,End Date,End Time,Total kWh\n"
                        "500,03/10/2024,02:30,03/10/2024,04:00,5\n",
                        ["--profile", "generic", "--date-format", "%m/%d/%Y %H:%M", *zone]),
        "boardings": ("stop_id,datetime,boardings\nS1,2024-03-10 02:30:00,4\n", zone),
    }
    for name, (text, args) in inputs.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        run = hub_json(lake, "ingest", name, str(path), *args)
        assert run["written"] >= 1 and run["rejected"] == 0, (name, run)
    instants = {
        table: hub_json(lake, "sql", f"SELECT strftime({column}, '%Y-%m-%dT%H:%M:%SZ') AS t "
                                     f"FROM {table}")[0]["t"]
        for table, column in (("Alert", "dateIssued"), ("MeterReadingObserved", "observed_at"),
                              ("EVChargingSession", "startDateTime"),
                              ("StopBoardings", "dateObserved"))}
    # a boarding count is per hour: its 02:00 hour starts at 10:00Z by the same rule
    assert instants == {"Alert": "2024-03-10T10:30:00Z", "MeterReadingObserved":
                        "2024-03-10T10:30:00Z", "EVChargingSession": "2024-03-10T10:30:00Z",
                        "StopBoardings": "2024-03-10T10:00:00Z"}


def test_a_fixed_offset_zone_is_named_as_arrow_and_duckdb_take_it() -> None:
    from hubctl.localtime import zone

    assert str(zone("+09:00")) == "+09:00" and str(zone("-0330")) == "-03:30"
    stamp = pa.array([0], pa.timestamp("us", tz=str(zone("+09:00"))))
    assert stamp.type.tz == "+09:00"
    with pytest.raises(UsageError, match="--param timezone 'Mars/Base' is not a known"):
        zone("Mars/Base", "--param timezone")


def test_one_reader_of_local_time_texts() -> None:
    """ISO (fractions, offsets), the other spellings, a date alone (its local midnight, or
    unreadable where a time is needed) and strptime formats, through one function."""
    from datetime import UTC, datetime

    from hubctl.adapterkit import parse_times

    texts = pa.array(["2024-03-15", "2024-03-15T10:00:00.250", "2024-03-15 10:00+01:00",
                      "15/03/2024", "2024년 3월 15일 14시 30분", "03/15/2024 02:30 PM", None])
    values, bad = parse_times(texts, "Asia/Seoul")
    assert values.to_pylist()[:3] == [
        datetime(2024, 3, 14, 15, tzinfo=UTC),  # local midnight, not UTC midnight
        datetime(2024, 3, 15, 1, 0, 0, 250000, tzinfo=UTC),
        datetime(2024, 3, 15, 9, tzinfo=UTC)]
    assert values.to_pylist()[4:6] == [datetime(2024, 3, 15, 5, 30, tzinfo=UTC),
                                       datetime(2024, 3, 15, 5, 30, tzinfo=UTC)]
    assert bad.to_pylist() == [False, False, False, True, False, False, False]
    assert parse_times(texts, "Asia/Seoul", need_time=True)[1].to_pylist()[0] is True
    dmy, bad = parse_times(pa.array(["15/03/2024"]), "+09:00", "%d/%m/%Y")
    assert dmy.to_pylist() == [datetime(2024, 3, 14, 15, tzinfo=UTC)] and not bad[0].as_py()
