"""The meter-readings adapter: AMI CSV into MeterReadingObserved, vectorised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import hub, hub_json


def _csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _quarter_hours(meter: str, day: str, values: list[float]) -> list[str]:
    return [f"{meter},{day}T{i // 4:02d}:{15 * (i % 4):02d}:00Z,{v}" for i, v in
            enumerate(values)]


def test_readings_land_in_kwh_with_the_inferred_interval(tmp_path: Path) -> None:
    lines = _quarter_hours("M1", "2025-03-01", [0.1, 0.2, 0.3]) + _quarter_hours(
        "M2", "2025-03-01", [1.0, 2.0])
    data = _csv(tmp_path / "ami.csv", "meter_id,timestamp,kwh", *lines)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "meter-readings", str(data))
    assert run["read"] == 5 and run["written"] == 5 and run["reconciles"]
    assert any("inferred as 900 s" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT id, CAST(observed_at AS VARCHAR) AS t, "
                    "CAST(dateObservedFrom AS VARCHAR) AS f, intervalLength AS len, "
                    "activeEnergyImport AS kwh FROM MeterReadingObserved ORDER BY id, t")
    assert rows[0] == {"id": "urn:ngsi-ld:MeterReadingObserved:M1",
                       "t": "2025-03-01 00:00:00+00", "f": "2025-03-01 00:00:00+00",
                       "len": 900, "kwh": 0.1}
    assert [r["kwh"] for r in rows] == [0.1, 0.2, 0.3, 1.0, 2.0]


def test_map_units_date_and_time_and_meters_file(tmp_path: Path) -> None:
    data = _csv(tmp_path / "ami.csv", "MeterNo;Day;Hour;Read;UOM".replace(";", ","),
                "A-1,2025-03-01,0:00,500,Wh", "A-1,2025-03-01,1:00,0.75,kWh",
                "B-2,2025-03-01,00:00,0.001,MWh", "B-2,2025-03-01,01:00,3,furlongs")
    meters = _csv(tmp_path / "meters.csv", "meter,latitude,longitude,site",
                  "A-1,35.87,128.6,Daegu City Hall", "B-2,35.9,128.55,")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "meter-readings", str(data), "--map", "MeterNo=meter",
                   "--map", "Day=date", "--map", "Hour=time", "--map", "Read=value",
                   "--map", "UOM=unit", "--meters", str(meters), "--interval", "3600",
                   "--timezone", "Asia/Seoul")
    assert run["written"] == 3 and run["rejected"] == 1 and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT id, CAST(observed_at AS VARCHAR) AS t, "
                    "activeEnergyImport AS kwh, lon, lat, site FROM MeterReadingObserved "
                    "ORDER BY id, t")
    assert [(r["t"], r["kwh"]) for r in rows] == [
        ("2025-02-28 15:00:00+00", 0.5), ("2025-02-28 16:00:00+00", 0.75),
        ("2025-02-28 15:00:00+00", 1.0)]
    assert (rows[0]["lon"], rows[0]["lat"], rows[0]["site"]) == (128.6, 35.87,
                                                                 "Daegu City Hall")
    [reject] = hub_json(lake, "rejects")
    assert reject["codes"] == "unknown-unit" and "furlongs" in reject["reasons"][0]["message"]


def test_bad_lines_are_rejected_with_reasons(tmp_path: Path) -> None:
    data = _csv(tmp_path / "ami.csv", "meter_id,timestamp,kwh",
                "M1,2025-03-01T00:00:00Z,0.5", "M1,2025-03-01T00:15:00Z,-0.2",
                "M1,yesterday,0.1", "M1,2025-03-01T00:45:00Z,abc", ",2025-03-01T01:00Z,1",
                "M1,2025-03-01T01:15:00Z,", "M1,2025-03-01T01:30:00Z,1,extra")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "meter-readings", str(data), "--interval", "900")
    assert run["read"] == 7 and run["written"] == 1 and run["rejected"] == 6
    assert run["reconciles"]
    rejects = hub_json(lake, "rejects")
    codes = {r["record"]: r["codes"] for r in rejects if r["codes"] != "malformed-record"}
    assert codes == {"line 3": "negative-value", "line 4": "bad-timestamp",
                     "line 5": "type-error", "line 6": "missing-required",
                     "line 7": "missing-required"}
    [malformed] = [r for r in rejects if r["codes"] == "malformed-record"]
    assert malformed["raw"] == "M1,2025-03-01T01:30:00Z,1,extra"
    raw = json.loads(next(r for r in hub_json(lake, "rejects") if r["record"] == "line 3")["raw"])
    assert raw["kwh"] == "-0.2"


def test_timestamp_at_end_and_reingest(tmp_path: Path) -> None:
    data = _csv(tmp_path / "ami.csv", "meter,datetime,value",
                "M1,2025-03-01 01:00,1.5", "M1,2025-03-01 02:00,2.5")
    lake = tmp_path / "lake"
    first = hub_json(lake, "ingest", "meter-readings", str(data), "--timestamp-at", "end")
    assert first["written"] == 2
    rows = hub_json(lake, "sql", "SELECT hour(observed_at) AS h, intervalLength AS len "
                    "FROM MeterReadingObserved ORDER BY h")
    assert rows == [{"h": 0, "len": 3600}, {"h": 1, "len": 3600}]
    again = hub_json(lake, "ingest", "meter-readings", str(data), "--timestamp-at", "end",
                     "--force")
    assert again["duplicate"] == 2 and again["written"] == 0


def test_usage_errors_name_what_to_do(tmp_path: Path) -> None:
    data = _csv(tmp_path / "ami.csv", "meter_id,when,kwh", "M1,2025-03-01T00:00Z,1")
    result = hub(tmp_path / "lake", "ingest", "meter-readings", str(data))
    assert result.exit_code == 1
    assert "no column for timestamp" in result.output and "--map" in result.output
    result = hub(tmp_path / "lake", "ingest", "meter-readings", str(data), "--map", "when")
    assert result.exit_code == 2 and "COLUMN=FIELD" in result.output
    result = hub(tmp_path / "lake", "ingest", "meter-readings", str(data), "--map",
                 "when=timestamp", "--unit", "litres")
    assert result.exit_code == 2 and "not an energy unit" in result.output
    single = _csv(tmp_path / "one.csv", "meter_id,timestamp,kwh", "M1,2025-03-01T00:00Z,1")
    result = hub(tmp_path / "lake", "ingest", "meter-readings", str(single))
    assert result.exit_code == 1 and "--interval" in result.output


@pytest.mark.parametrize("header", ["meter_id,timestamp,kwh", "MPAN,Interval Start,Usage"])
def test_header_aliases(tmp_path: Path, header: str) -> None:
    data = _csv(tmp_path / "ami.csv", header, "M1,2025-03-01T00:00:00Z,1",
                "M1,2025-03-01T00:30:00Z,2")
    run = hub_json(tmp_path / "lake", "ingest", "meter-readings", str(data))
    assert run["written"] == 2
    assert hub_json(tmp_path / "lake", "sql", "SELECT max(intervalLength) AS n FROM "
                    "MeterReadingObserved") == [{"n": 1800}]


def test_batches_keep_to_batch_rows_and_never_split_an_instant(tmp_path: Path) -> None:
    """Batches are cut where one instant's readings end: at most batch_rows rows, except an
    instant with more readings than that, which stays whole."""
    from hubctl.adapter import ReadContext
    from hubctl.adapters import get_adapter

    lines = [f"M{m},2025-03-01,{h:02d}:00,{m + h}" for h in range(3) for m in range(3)]
    lines += [f"M{m},2025-03-01,03:00,1" for m in range(2)]
    data = _csv(tmp_path / "ami.csv", "meter,date,time,kwh", *lines)
    adapter = get_adapter("meter-readings")
    options = {"mapping": (), "interval": 3600, "timestamp_at": "start", "timezone": "UTC"}
    batches = list(adapter.read([data], options, ReadContext(batch_rows=2)))
    instants = [sorted(set(b.rows.column("observed_at").to_pylist())) for b in batches
                if b.rows is not None]
    assert [b.rows.num_rows for b in batches if b.rows is not None] == [3, 3, 3, 2]
    assert all(len(i) == 1 for i in instants)  # one instant each, none split
    assert sum(b.records for b in batches) == len(lines)
