"""The openaq adapter end to end through the CLI: pivot, units, idempotence, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json, row, write_openaq


def _ingest(lake: Path, data: Path, st: Path, *extra: str) -> dict:
    return hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st), *extra)


def test_rows_of_one_station_and_hour_pivot_into_one_row(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "pm25", 10), row("S1", 1, "no2", 20),
                                       row("S1", 2, "no2", 21), row("S2", 1, "pm25", 5)])
    run = _ingest(tmp_path / "lake", data, st)
    assert run["status"] == "ok" and run["reconciles"]
    assert run["read"] == 4 + 3 and run["written"] == 7 and run["rejected"] == 0
    rows = hub_json(tmp_path / "lake", "sql", "SELECT id, hour(observed_at) AS h, pm25, no2, "
                    "lon, lat, refPointOfInterest FROM AirQualityObserved ORDER BY id, h")
    assert [(r["id"].rsplit(":", 1)[1], r["h"], r["pm25"], r["no2"]) for r in rows] == [
        ("S1", 1, 10.0, 20.0), ("S1", 2, None, 21.0), ("S2", 1, 5.0, None)]
    assert rows[0]["lon"] == 4.4 and rows[0]["lat"] == 51.2
    assert rows[0]["refPointOfInterest"] == "urn:ngsi-ld:PointOfInterest:S1"


def test_units_convert_to_the_canonical_unit(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 0.02, "ppm"),
                                       row("S1", 1, "co", 1.0, "ppm"),
                                       row("S1", 1, "pm10", 0.05, "mg/m³"),
                                       row("S1", 1, "o3", 3, "furlongs")])
    run = _ingest(tmp_path / "lake", data, st)
    assert run["rejected"] == 1
    r = hub_json(tmp_path / "lake", "sql", "SELECT no2, co, pm10 FROM AirQualityObserved")[0]
    assert r["no2"] == pytest.approx(0.02 * 1000 * 46.0055 / 24.45)
    assert r["co"] == pytest.approx(28.010 / 24.45)  # mg/m³
    assert r["pm10"] == pytest.approx(50.0)
    rej = hub_json(tmp_path / "lake", "rejects")
    assert rej[0]["codes"] == "unknown-unit" and "furlongs" in rej[0]["reasons"][0]["message"]


def test_second_run_is_a_no_op_and_force_writes_no_duplicates(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(5)])
    lake = tmp_path / "lake"
    first = _ingest(lake, data, st)
    again = _ingest(lake, data, st)
    forced = _ingest(lake, data, st, "--force")
    assert first["written"] == 5 + 3
    assert again["status"] == "unchanged" and again["read"] == 0
    assert forced["duplicate"] == 8 and forced["written"] == 0 and forced["reconciles"]
    n = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")[0]["n"]
    assert n == 5


def test_changed_value_is_an_update_and_new_attribute_fills_the_row(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 20)])
    _ingest(lake, data, st)
    data2, _ = write_openaq(tmp_path, [row("S1", 1, "no2", 25), row("S1", 1, "pm25", 7)],
                            name="later.csv")
    run = _ingest(lake, data2, st)
    assert run["updated"] == 1 and run["written"] == 1
    r = hub_json(lake, "sql", "SELECT no2, pm25, count(*) OVER () AS n FROM AirQualityObserved")
    assert r == [{"no2": 25.0, "pm25": 7.0, "n": 1}]


def test_bad_records_are_rejected_with_reasons_and_the_rest_written(tmp_path: Path) -> None:
    rows = [row("S1", 1, "no2", 20), row("S1", 2, "no2", -4), row("S1", 3, "no2", "abc"),
            row("S1", 4, "xyz", 1), row("NOPE", 1, "no2", 3), row("S1", 5, "no2", 99999),
            ["X", "XX", "yesterday", "S1", "no2", 1, "µg/m³"], row("S1", 6, "no2", "")]
    data, st = write_openaq(tmp_path, rows)
    lake = tmp_path / "lake"
    run = _ingest(lake, data, st)
    assert run["written"] == 1 + 3 and run["rejected"] == 7 and run["reconciles"]
    codes = {r["record"]: r["codes"] for r in hub_json(lake, "rejects")}
    assert codes == {"line 3": "below-minimum", "line 4": "type-error",
                     "line 5": "unknown-parameter", "line 6": "unknown-station",
                     "line 7": "above-maximum", "line 8": "bad-timestamp",
                     "line 9": "missing-required"}


def test_max_reject_rate_exits_4_after_writing_the_good_records(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 1), row("S1", 2, "no2", -1)])
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "openaq", str(data), "--stations", str(st),
                 "--max-reject-rate", "0.1")
    assert result.exit_code == 4
    assert "max-reject-rate" in result.output
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")[0]["n"] == 1


@pytest.mark.parametrize("content, message", [
    ("location,parameter\nS1,no2\n", "no column for time, value, unit"),
    ("", "is empty (no header line)"),
])
def test_unusable_files_fail_with_the_file_named(tmp_path: Path, content: str,
                                                 message: str) -> None:
    _, st = write_openaq(tmp_path, [])
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "openaq", str(bad), "--stations", str(st))
    assert result.exit_code == 1
    assert "bad.csv" in result.output and message in result.output


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    _, st = write_openaq(tmp_path, [])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(tmp_path / "nope.csv"),
                 "--stations", str(st))
    assert result.exit_code == 1 and "nope.csv: no such file" in result.output
    cp949 = tmp_path / "cp949.csv"
    cp949.write_bytes("도시,country\n".encode("cp949"))
    result = hub(tmp_path / "lake", "ingest", "openaq", str(cp949), "--stations", str(st))
    assert result.exit_code == 1 and "not UTF-8" in result.output


def test_malformed_csv_rows_are_rejected_not_lost(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 1)])
    with open(data, "a", encoding="utf-8") as f:
        f.write("X,XX,2024-05-01 02:00:00+00:00,S1,no2\n")  # two fields short
    run = _ingest(tmp_path / "lake", data, st)
    assert run["rejected"] == 1 and run["written"] == 1 + 3 and run["reconciles"]


@needs_sample_data
def test_openaq_sample_one_row_per_station_and_hour(tmp_path: Path) -> None:
    folder = SAMPLE_DATA / "air" / "openaq-2019"
    long, st = folder / "air_quality_long.csv", folder / "air_quality_stations.csv"
    lake = tmp_path / "lake"
    run = _ingest(lake, long, st)
    lines = long.read_text(encoding="utf-8").splitlines()[1:]
    params: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        f = line.split(",")
        params.setdefault((f[3], f[2]), set()).add(f[4])
    keys = set(params)
    both = {k for k, p in params.items() if p >= {"pm25", "no2"}}
    got = hub_json(lake, "sql", "SELECT count(*) AS n, count(*) FILTER (WHERE pm25 IS NOT NULL "
                   "AND no2 IS NOT NULL) AS both FROM AirQualityObserved")[0]
    assert got == {"n": len(keys), "both": len(both)}
    assert run["read"] == len(lines) + 66 and run["rejected"] == 0 and run["reconciles"]
    assert any("FR04014" in w for w in run["warnings"])
    again = _ingest(lake, long, st)
    assert again["status"] == "unchanged"
    runs = hub_json(lake, "sql", "SELECT * FROM _runs ORDER BY started_at", "--format", "json")
    for r in runs:
        assert r["read"] == r["written"] + r["updated"] + r["duplicate"] + r["rejected"]
    assert json.loads(runs[0]["tables"])["AirQualityObserved"] >= 1


def test_repeats_within_one_file_count_as_duplicate_or_updated_and_last_wins(
        tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 20), row("S1", 1, "no2", 20),
                                       row("S1", 2, "no2", 5), row("S1", 2, "no2", 6),
                                       row("S1", 2, "pm25", 3)])
    lake = tmp_path / "lake"
    run = _ingest(lake, data, st)
    assert (run["written"], run["duplicate"], run["updated"]) == (3 + 3, 1, 1)
    rows = hub_json(lake, "sql", "SELECT hour(observed_at) AS h, no2, pm25 "
                    "FROM AirQualityObserved ORDER BY h")
    assert rows == [{"h": 1, "no2": 20.0, "pm25": None}, {"h": 2, "no2": 6.0, "pm25": 3.0}]


def test_openaq_classic_export_carries_coordinates_and_ppm(tmp_path: Path) -> None:
    """The layout of OpenAQ's classic CSV download (openaq.org 'Download data', fields
    location,city,country,utc,local,parameter,value,unit,latitude,longitude,attribution): no
    --stations needed, gases in ppm convert to µg/m³."""
    data = tmp_path / "openaq.csv"
    attribution = '"[{""name"":""DEFRA"",""url"":""https://uk-air.defra.gov.uk/""}]"'
    data.write_text(
        "location,city,country,utc,local,parameter,value,unit,latitude,longitude,attribution\n"
        f'"London Westminster","London","GB","2019-06-21T00:00:00.000Z",'
        f'"2019-06-21T01:00:00+01:00","no2",0.018,"ppm",51.49467,-0.131931,{attribution}\n'
        f'"London Westminster","London","GB","2019-06-21T00:00:00.000Z",'
        f'"2019-06-21T01:00:00+01:00","pm25",9,"µg/m³",51.49467,-0.131931,{attribution}\n'
        f'"London Bloomsbury","London","GB","2019-06-21T01:00:00.000Z",'
        f'"2019-06-21T02:00:00+01:00","o3",0.031,"ppm",51.52229,-0.125889,{attribution}\n',
        encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "openaq", str(data))
    assert (run["status"], run["read"], run["written"], run["rejected"]) == ("ok", 3, 3, 0)
    assert run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT id, CAST(dateObserved AS VARCHAR) AS t, no2, pm25, "
                    "o3, lat, areaServed FROM AirQualityObserved ORDER BY id")
    assert [r["id"] for r in rows] == ["urn:ngsi-ld:AirQualityObserved:London%20Bloomsbury",
                                       "urn:ngsi-ld:AirQualityObserved:London%20Westminster"]
    west = rows[1]
    assert west["t"] == "2019-06-21 00:00:00+00" and west["pm25"] == 9.0
    assert west["no2"] == pytest.approx(0.018 * 1000 * 46.0055 / 24.45)
    assert west["lat"] == 51.49467 and west["areaServed"] == "London"
    pois = hub_json(lake, "sql", "SELECT name, lon FROM PointOfInterest ORDER BY name")
    assert pois == [{"name": "London Bloomsbury", "lon": -0.125889},
                    {"name": "London Westminster", "lon": -0.131931}]


@pytest.mark.parametrize("header, line", [
    # OpenAQ Explorer v3 CSV download
    ("location_id,location_name,parameter,value,unit,datetimeUtc,datetimeLocal,timezone,"
     "latitude,longitude,country_iso,isMobile,isMonitor,owner_name,provider",
     "{loc},{name},{p},{v},µg/m³,{utc},2023-01-01T10:00:00+09:00,Asia/Seoul,37.5,127.0,KR,"
     "false,true,Unknown Governmental Organization,AirKorea"),
    # OpenAQ v3 S3 archive (openaq-data-archive, records/csv.gz/locationid=N/...)
    ("location_id,sensors_id,location,datetime,lat,lon,parameter,units,value",
     "{loc},9{loc},{name},2023-01-01T10:00:00+09:00,37.5,127.0,{p},µg/m³,{v}"),
])
def test_openaq_v3_layouts_key_stations_by_location_id(tmp_path: Path, header: str,
                                                       line: str) -> None:
    data = tmp_path / "v3.csv"
    lines = [line.format(loc=2622, name="Jongno-gu", p=p, v=v,
                         utc="2023-01-01T01:00:00Z") for p, v in (("pm25", 21), ("pm10", 30))]
    data.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "openaq", str(data))
    assert (run["read"], run["written"], run["rejected"]) == (2, 2, 0) and run["reconciles"]
    row_ = hub_json(lake, "sql", "SELECT id, CAST(dateObserved AS VARCHAR) AS t, pm25, pm10 "
                    "FROM AirQualityObserved")[0]
    assert row_ == {"id": "urn:ngsi-ld:AirQualityObserved:2622", "t": "2023-01-01 01:00:00+00",
                    "pm25": 21.0, "pm10": 30.0}
    assert hub_json(lake, "sql", "SELECT name FROM PointOfInterest") == [{"name": "Jongno-gu"}]


def test_openaq_map_names_other_columns_and_stations_stay_needed_without_coordinates(
        tmp_path: Path) -> None:
    data = tmp_path / "own.csv"
    data.write_text("when,site,pollutant,reading,unit\n2024-05-01T01:00:00Z,S1,pm25,7,µg/m³\n",
                    encoding="utf-8")
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "openaq", str(data), "--map", "when=time",
                 "--map", "reading=value", "--map", "site=station")
    assert result.exit_code == 2 and "--stations" in result.output
    _, st = write_openaq(tmp_path / "st", [])
    run = hub_json(lake, "ingest", "openaq", str(data), "--map", "when=time",
                   "--map", "reading=value", "--map", "site=station", "--stations", str(st))
    assert run["rejected"] == 0 and run["reconciles"]
    assert hub_json(lake, "sql", "SELECT pm25 FROM AirQualityObserved") == [{"pm25": 7.0}]


def _long_rows(days: int) -> list[list[Any]]:
    """Two stations, two pollutants, every hour of ``days`` days, with a bad value, an unknown
    station, an out-of-range value, a repeated reading and a short row about every 400 rows."""
    rows: list[list[Any]] = []
    for d in range(days):
        for h in range(24):
            at = f"2024-{5 + d // 28:02d}-{1 + d % 28:02d} {h:02d}:00:00+00:00"
            for s, p in (("S1", "no2"), ("S2", "no2"), ("S1", "pm25"), ("S2", "pm25")):
                rows.append(["X", "XX", at, s, p, (d * 24 + h) % 80 + 1, "µg/m³"])
            k = (d * 24 + h) % 100
            if k == 7:
                rows.append(["X", "XX", at, "S1", "o3", "abc", "µg/m³"])
            elif k == 31:
                rows.append(["X", "XX", at, "NOPE", "no2", 3, "µg/m³"])
            elif k == 55:
                rows.append(["X", "XX", at, "S2", "co", -5, "µg/m³"])
            elif k == 77:
                rows.append(["X", "XX", at, "S1", "no2", 99, "µg/m³"])  # repeated: last wins
            elif k == 91:
                rows.append(["X", "XX", at, "S2"])
    return rows


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_csv_read_ahead_changes_nothing_a_run_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffled: bool) -> None:
    """The CSV parsed on its own thread (the default) or on the adapter's
    (HUBCTL_CSV_READ_AHEAD=0), in blocks of 64 KiB, in time order and shuffled: the same ledger
    counts, warnings, rejects (line, raw text, reasons) and rows; no reading thread is left."""
    import random
    import threading

    from hubctl.csvread import READ_AHEAD_ENV, READ_AHEAD_THREAD

    monkeypatch.setattr("hubctl.csvread.BATCH_ROWS", 200)  # blocks of 64 KiB (the least)
    rows = _long_rows(120)
    if shuffled:
        random.Random(13).shuffle(rows)
    data, st = write_openaq(tmp_path, rows)
    assert data.stat().st_size > 8 * (1 << 16)
    outcomes = []
    for mode in ("0", "1"):
        monkeypatch.setenv(READ_AHEAD_ENV, mode)
        lake = tmp_path / f"lake{mode}"
        run = _ingest(lake, data, st)
        assert run["status"] == "ok" and run["reconciles"]
        assert not [t for t in threading.enumerate() if t.name.startswith(READ_AHEAD_THREAD)]
        counts = {k: run[k] for k in ("read", "written", "updated", "duplicate", "rejected",
                                      "unreached", "rows_added", "warnings")}
        rejects = sorted((r["record"], r["codes"], r["raw"], json.dumps(r["reasons"]))
                         for r in hub_json(lake, "rejects", "--limit", "100000"))
        table = hub_json(lake, "sql", "SELECT id, observed_at, no2, pm25, o3, co FROM "
                                      "AirQualityObserved ORDER BY id, observed_at")
        outcomes.append((counts, rejects, table))
    assert outcomes[0] == outcomes[1]
    counts, rejects, table = outcomes[0]
    assert counts["rejected"] == len(rejects) > 100 and counts["duplicate"] + \
        counts["updated"] > 20 and len(table) == 2 * 120 * 24
    assert {r[1] for r in rejects} == {"type-error", "unknown-station", "below-minimum",
                                       "malformed-record"}
