"""The ev-sessions adapter: council and network layouts into EVChargingSession/-Station."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

DUNDEE = SAMPLE_DATA / "energy" / "dundee-ev-charging-sessions-2018-03-05.csv"
CPS_HEADER = ("Charging event,CP ID,Connector,Start Date,Start Time,End Date,End Time,"
              "Total kWh,Cost,Site,Group,Model")


def _csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_council_layout_open_sessions_and_rejects(tmp_path: Path) -> None:
    data = _csv(tmp_path / "council.csv", CPS_HEADER,
                '1,500,1,05/06/2018,11:00,05/06/2018,13:30,12.5,0,"Site A, Dundee",G,M 7kW',
                '2,500,2,05/06/2018,12:00,,,,,"Site A, Dundee",G,M 7kW',
                '3,501,1,04/06/2018,10:00,04/06/2018,09:00,3,0,Site B,G,M 50kW',
                '4,501,1,04/06/2018,10:00,04/06/2018,11:00,-2,0,Site B,G,M 50kW',
                '5,501,2,31/05/2018,23:30,01/06/2018,00:30,4,0,Site B,G,M 50kW')
    sites = _csv(tmp_path / "sites.csv", "site,lat,lon", '"Site A, Dundee",56.46,-2.97')
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(data), "--sites", str(sites))
    assert run["read"] == 5 and run["written"] == 3 and run["rejected"] == 2
    assert run["reconciles"] and any("1 sessions still open" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT id, CAST(startDateTime AS VARCHAR) AS s, "
                    "CAST(endDateTime AS VARCHAR) AS e, energy, status, connector, "
                    "refEVChargingStation AS cp, lat FROM EVChargingSession ORDER BY id")
    assert [r["id"].rsplit(":", 1)[1] for r in rows] == ["1", "2", "5"]
    first, open_, late = rows
    assert first["s"] == "2018-06-05 10:00:00+00"  # British Summer Time
    assert first["e"] == "2018-06-05 12:30:00+00" and first["energy"] == 12.5
    assert open_["status"] == "open" and open_["e"] is None and open_["energy"] is None
    assert first["cp"] == "urn:ngsi-ld:EVChargingStation:500" and first["lat"] == 56.46
    assert late["s"] == "2018-05-31 22:30:00+00" and late["lat"] is None
    codes = {r["record"]: r["codes"] for r in hub_json(lake, "rejects")}
    assert codes == {"line 4": "end-before-start", "line 5": "negative-value"}
    stations = hub_json(lake, "sql", "SELECT name, site, socketNumber AS n, description, "
                        "operator FROM EVChargingStation ORDER BY name")
    assert stations == [
        {"name": "500", "site": "Site A, Dundee", "n": 2, "description": "M 7kW",
         "operator": "G"},
        {"name": "501", "site": "Site B", "n": 1, "description": "M 50kW", "operator": "G"}]


def test_network_layout_durations_give_idle_time(tmp_path: Path) -> None:
    header = ("Station Name,Start Date,End Date,Total Duration (hh:mm:ss),"
              "Charging Time (hh:mm:ss),Energy (kWh),Port Number,Latitude,Longitude,"
              "Plug In Event Id")
    data = _csv(tmp_path / "paloalto.csv", header,
                "PALO ALTO CA / HAMILTON #1,7/29/2011 20:17,7/29/2011 23:20,3:03:32,1:54:03,"
                "6.25,2,37.444572,-122.160309,3",
                "PALO ALTO CA / HAMILTON #1,8/1/2011 8:00,,1:00:00,0:30:00,2,1,37.444572,"
                "-122.160309,4")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(data))
    assert run["written"] == 2 and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT CAST(startDateTime AS VARCHAR) AS s, "
                    "CAST(endDateTime AS VARCHAR) AS e, CAST(chargingEndDateTime AS VARCHAR) "
                    "AS c, status, lon FROM EVChargingSession ORDER BY s")
    assert rows[0] == {"s": "2011-07-30 03:17:00+00", "e": "2011-07-30 06:20:00+00",
                       "c": "2011-07-30 05:11:03+00", "status": "closed", "lon": -122.160309}
    assert rows[1]["e"] == "2011-08-01 16:00:00+00"  # end from the total duration


def test_generic_layout_through_map(tmp_path: Path) -> None:
    data = _csv(tmp_path / "other.csv", "charger;plugged;unplugged;kwh delivered".replace(
        ";", ","), "C1,2024-05-01T08:00:00+09:00,2024-05-01T09:00:00+09:00,10",
        "C1,2024-05-01T10:00:00+09:00,not a time,3")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(data), "--profile", "generic",
                   "--map", "charger=charge_point", "--map", "plugged=start",
                   "--map", "unplugged=end", "--map", "kwh delivered=energy")
    assert run["written"] == 1 and run["rejected"] == 1
    [row] = hub_json(lake, "sql", "SELECT id, CAST(startDateTime AS VARCHAR) AS s "
                     "FROM EVChargingSession")
    assert row == {"id": "urn:ngsi-ld:EVChargingSession:C1-1-20240430T230000",
                   "s": "2024-04-30 23:00:00+00"}
    assert hub_json(lake, "rejects")[0]["codes"] == "bad-timestamp"


def test_missing_columns_and_bad_profile(tmp_path: Path) -> None:
    data = _csv(tmp_path / "x.csv", "a,b", "1,2")
    result = hub(tmp_path / "lake", "ingest", "ev-sessions", str(data))
    assert result.exit_code == 1 and "no column for charge_point" in result.output
    result = hub(tmp_path / "lake", "ingest", "ev-sessions", str(data), "--profile", "nope")
    assert result.exit_code == 2


@needs_sample_data
def test_dundee_sessions_ingest_and_open_ones_are_counted(tmp_path: Path) -> None:
    with open(DUNDEE, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    fmt = "%d/%m/%Y %H:%M"
    bad = 0
    for r in records:
        negative = r["Total kWh"] != "" and float(r["Total kWh"]) < 0
        backwards = r["End Date"] != "" and datetime.strptime(
            f"{r['End Date']} {r['End Time']}", fmt) < datetime.strptime(
            f"{r['Start Date']} {r['Start Time']}", fmt)
        bad += negative or backwards
    open_ = sum(1 for r in records if r["End Date"] == "" and float(r["Total kWh"] or 0) >= 0)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(DUNDEE), "--profile", "dundee")
    assert run["read"] == len(records) == 16773
    assert run["rejected"] == bad and run["written"] == len(records) - bad
    assert any(f"{open_} sessions still open" in w for w in run["warnings"])
    counts = hub_json(lake, "sql", "SELECT status, count(*) AS n FROM EVChargingSession "
                      "GROUP BY status ORDER BY status")
    assert counts == [{"status": "closed", "n": len(records) - bad - open_},
                      {"status": "open", "n": open_}]
    stations = hub_json(lake, "sql", "SELECT count(*) AS n FROM EVChargingStation")
    assert stations == [{"n": len({r["CP ID"] for r in records})}]


@pytest.mark.parametrize(("header", "line", "extra"), [
    ("Charger ID,Start Date,Start Time,End Date,End Time,Energy (kWh)",
     "A1,2018-03-05,10:43,2018-03-05,11:10,4.5", ()),
    ("CP ID,Connector,Start Date,End Date,Total kWh,Site",
     "A1,1,05/03/2018 10:43,05/03/2018 11:10,4.5,Town Hall", ("--profile", "dundee")),
    ("Device ID;Session Start;Session End;Consumption (kWh)".replace(";", ","),
     "A1,2018-03-05T10:43:00Z,2018-03-05T11:10:00Z,4.5", ()),
    ("box,from,to,kwh", "A1,05.03.2018 10:43,05.03.2018 11:10,4.5",
     ("--map", "box=charge_point", "--map", "from=start", "--map", "to=end",
      "--date-format", "%d.%m.%Y %H:%M", "--timezone", "UTC")),
])
def test_other_council_layouts(tmp_path: Path, header: str, line: str,
                               extra: tuple[str, ...]) -> None:
    data = _csv(tmp_path / "council.csv", header, line)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(data), *extra)
    assert run["written"] == 1, run
    [row] = hub_json(lake, "sql", "SELECT CAST(startDateTime AS VARCHAR) AS s, "
                     "CAST(endDateTime AS VARCHAR) AS e, energy FROM EVChargingSession")
    assert row["s"][:16] == "2018-03-05 10:43"
    assert row["e"][:16] == "2018-03-05 11:10" and row["energy"] == 4.5


def test_other_councils_midnight_in_the_date_column_and_bom(tmp_path: Path) -> None:
    """Perth & Kinross's CKAN export (data.pkc.gov.uk 'EV ChargeStation Use', `_id` first,
    ISO dates at midnight beside HH:MM times) and its ArcGIS Hub CSV (`CP_ID`, `Start_Date`
    2017/08/31 00:00:00 beside 22:12:00), both with a BOM: the date's midnight is not the
    time of day; the time column is."""
    ckan = tmp_path / "pkc-ckan.csv"
    ckan.write_text(
        "\ufeff_id,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,"
        "Model\n"
        '1,50339,1,2019-08-31T00:00:00,23:26,2019-09-01T00:00:00,01:02,7.43,'
        '"Broxden Park & Ride",APT 22kW\n'
        '2,50340,2,2019-12-01T00:00:00,08:05,2019-12-01T00:00:00,09:40,11.2,'
        '"Canal Street",APT 22kW\n', encoding="utf-8")
    arcgis = tmp_path / "pkc-arcgis.csv"
    arcgis.write_text(
        "\ufeffOBJECTID,CP_ID,Connector,Start_Date,Start_Time,End_Date,End_Time,Total_kWh,"
        "Site,Model\n"
        "1,50339,1,2017/08/31 00:00:00,22:12:00,2017/08/31 00:00:00,23:50:00,5.2,Broxden,"
        "APT\n", encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(ckan), str(arcgis))
    assert (run["status"], run["read"], run["written"], run["rejected"]) == ("ok", 3, 3, 0)
    rows = hub_json(lake, "sql", "SELECT CAST(startDateTime AS VARCHAR) AS s, "
                    "CAST(endDateTime AS VARCHAR) AS e, energy FROM EVChargingSession "
                    "ORDER BY s")
    assert rows == [
        {"s": "2017-08-31 21:12:00+00", "e": "2017-08-31 22:50:00+00", "energy": 5.2},
        {"s": "2019-08-31 22:26:00+00", "e": "2019-09-01 00:02:00+00", "energy": 7.43},
        {"s": "2019-12-01 08:05:00+00", "e": "2019-12-01 09:40:00+00", "energy": 11.2}]


def test_recognised_layout_whose_dates_never_parse_stops_with_the_column(
        tmp_path: Path) -> None:
    data = _csv(tmp_path / "dotted.csv",
                "CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site",
                "50339,1,31.08.2019,23:26,31.08.2019,23:50,7.43,Broxden",
                "50339,1,01.09.2019,08:00,01.09.2019,09:00,2,Broxden")
    result = hub(tmp_path / "lake", "ingest", "ev-sessions", str(data))
    assert result.exit_code == 1
    assert "Start Date+Start Time = '31.08.2019 23:26'" in result.output
    assert "--date-format" in result.output


@pytest.mark.conformance
@needs_sample_data
def test_sdm_required_station_attributes_come_from_options(tmp_path: Path) -> None:
    """SDM requires socketType, capacity and allowedVehicleType of an EVChargingStation;
    sessions files lack them. Without the options the run says the stations will not validate
    and which options supply them; with them, the stations validate against SDM's schema."""
    import json

    from tests.sdm import sdm_errors

    data = _csv(tmp_path / "council.csv", CPS_HEADER,
                '1,500,1,05/06/2018,11:00,05/06/2018,13:30,12.5,0,Site A,G,M 7kW',
                '2,501,1,05/06/2018,12:00,05/06/2018,13:00,4,0,Site B,G,M 50kW')
    without = tmp_path / "without"
    run = hub_json(without, "ingest", "ev-sessions", str(data))
    [warning] = [w for w in run["warnings"] if "will not validate" in w]
    assert warning.startswith("2 of 2 charging stations will not validate against Smart "
                              "Data Models' EVChargingStation")
    assert "--socket-type TYPE, --capacity N, --allowed-vehicle-type TYPE" in warning
    kv = json.loads(hub(without, "entities", "EVChargingStation", "--format",
                        "keyValues").stdout)
    assert {e for s in kv for e in sdm_errors("EVChargingStation", s)} == {
        f": '{a}' is a required property" for a in ("socketType", "capacity",
                                                     "allowedVehicleType")}
    lake = tmp_path / "with"
    run = hub_json(lake, "ingest", "ev-sessions", str(data), "--socket-type", "type2",
                   "--socket-type", "CHAdeMO", "--capacity", "2", "--allowed-vehicle-type", "Car")
    assert not any("will not validate" in w for w in run["warnings"])
    kv = json.loads(hub(lake, "entities", "EVChargingStation", "--format", "keyValues").stdout)
    assert [(s["name"], s["socketType"], s["capacity"], s["allowedVehicleType"]) for s in kv] == [
        ("500", ["Type2", "CHAdeMO"], 2, ["car"]), ("501", ["Type2", "CHAdeMO"], 2, ["car"])]
    assert [sdm_errors("EVChargingStation", s) for s in kv] == [[], []]
    bad = hub(tmp_path / "bad", "ingest", "ev-sessions", str(data), "--socket-type", "Type 2")
    assert bad.exit_code == 2 and "'Type 2' is not one of Smart Data Models' values" in bad.output
    assert "Type2" in bad.output
    bad = hub(tmp_path / "bad", "ingest", "ev-sessions", str(data), "--capacity", "0")
    assert bad.exit_code == 2 and "--capacity" in bad.output


@pytest.mark.conformance
@needs_sample_data
def test_sdm_station_attributes_from_columns_and_options_for_the_rest(tmp_path: Path) -> None:
    """ChargePoint's 'Plug Type' is the socket type (J1772 is SDM's J-1772); capacity and
    vehicle types come from mapped columns; the options fill what a charge point lacks, and a
    text that is none of SDM's values is left out and named."""
    import json

    from tests.sdm import sdm_errors

    header = "Station Name,Start Date,End Date,Energy (kWh),Plug Type,Bays,Vehicles"
    data = _csv(tmp_path / "cp.csv", header,
                "PALO ALTO CA / A,7/29/2011 20:17,7/29/2011 23:20,6.2,J1772,2,Car",
                "PALO ALTO CA / A,7/30/2011 10:00,7/30/2011 11:00,3.0,CHAdeMO,2,car",
                "PALO ALTO CA / B,7/30/2011 12:00,7/30/2011 13:00,1.0,NEMA 5-20R,,",
                "PALO ALTO CA / C,7/30/2011 12:00,7/30/2011 13:00,1.0,,1,bus")
    lake = tmp_path / "lake"
    maps = ["--map", "Bays=capacity", "--map", "Vehicles=vehicle_type"]
    run = hub_json(lake, "ingest", "ev-sessions", str(data), "--profile", "chargepoint", *maps)
    assert any("1 socket types are none of Smart Data Models' values and are left out (e.g. "
               "'NEMA 5-20R')" in w for w in run["warnings"])
    [warning] = [w for w in run["warnings"] if "will not validate" in w]
    assert warning.startswith("2 of 3 charging stations will not validate")
    assert "requires socketType and capacity and allowedVehicleType" in warning
    run = hub_json(lake, "ingest", "ev-sessions", str(data), "--profile", "chargepoint", *maps,
                   "--socket-type", "Type2", "--capacity", "1", "--allowed-vehicle-type", "car",
                   "--force")
    assert not any("will not validate" in w for w in run["warnings"])
    kv = json.loads(hub(lake, "entities", "EVChargingStation", "--format", "keyValues").stdout)
    got = {s["name"]: (s["socketType"], s["capacity"], s["allowedVehicleType"]) for s in kv}
    assert got == {"PALO ALTO CA / A": (["J-1772", "CHAdeMO"], 2, ["car"]),
                   "PALO ALTO CA / B": (["Type2"], 1, ["car"]),
                   "PALO ALTO CA / C": (["Type2"], 1, ["bus"])}
    assert [e for s in kv for e in sdm_errors("EVChargingStation", s)] == []
