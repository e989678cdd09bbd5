"""city_kpis end to end on a small city ingested through the real adapters: each computable KPI
against a figure worked out here, and the not-computable ones with what they need."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hubctl.geo import haversine_m
from tests.helpers import hub, hub_json, write_openaq, write_zip

S1, S2 = (37.50, 127.00), (37.50, 127.01)
TRIPS = 40  # each stop is served 40 times on the service day: regular (>= 36)



def calls_112(path: Path) -> Path:
    """Three 112 calls in the Korean layout, with dispatch and arrival times (two 폭력, one
    절도): the calls behind the safety KPIs here and in tests/test_spark.py."""
    path.write_text("접수번호,접수일시,사건종별,위도,경도,출동일시,도착일시\n"
                    "1,2023-03-01 10:00:00,폭력,37.5,127.0,2023-03-01 10:01:00,"
                    "2023-03-01 10:05:00\n"
                    "2,2023-03-02 10:00:00,폭력,37.5,127.0,2023-03-02 10:02:00,"
                    "2023-03-02 10:10:00\n"
                    "3,2023-03-03 10:00:00,절도,37.5,127.0,2023-03-03 10:05:00,"
                    "2023-03-03 10:20:00\n", encoding="utf-8")
    return path

def _feed(path: Path) -> Path:
    trips = "".join(f"R,WK,t{i}\n" for i in range(TRIPS))
    times = "".join(f"t{i},{7 + i // 4:02d}:{(i % 4) * 15:02d}:00,{7 + i // 4:02d}:"
                    f"{(i % 4) * 15:02d}:00,S1,1\nt{i},{7 + i // 4:02d}:{(i % 4) * 15 + 5:02d}:"
                    f"00,{7 + i // 4:02d}:{(i % 4) * 15 + 5:02d}:00,S2,2\n" for i in range(TRIPS))
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
                      "T,Test,https://example.org,Asia/Seoul\n",
        "stops.txt": f"stop_id,stop_name,stop_lat,stop_lon\nS1,One,{S1[0]},{S1[1]}\n"
                     f"S2,Two,{S2[0]},{S2[1]}\nS3,Quiet,37.60,127.20\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nR,T,1,3\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
                        "start_date,end_date\nWK,1,1,1,1,1,1,1,20230101,20231231\n",
        "trips.txt": "route_id,service_id,trip_id\n" + trips,
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n" + times,
    }
    return write_zip(path, files)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("city")
    lake = folder / "lake"
    t0 = datetime(2023, 1, 1)
    rows = [["X", "KR", (t0 + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S+00:00"), "A",
             "pm25", 12.0, "µg/m³"] for h in range(365 * 24)]
    data, st = write_openaq(folder, rows, [("A", 37.5, 127.0)])
    hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))
    pop = folder / "pop.csv"
    pop.write_text(f"lat,lon,population\n{S1[0] + 0.001},{S1[1]},1000\n37.52,127.03,3000\n",
                   encoding="utf-8")
    hub_json(lake, "ingest", "population", str(pop), "--dataset", "census")
    hub_json(lake, "ingest", "gtfs", str(_feed(folder / "feed.zip")), "--feed-id", "t")
    assert hub_json(lake, "ingest", "calls", str(calls_112(folder / "112.csv")))["rejected"] == 0
    ev = folder / "ev.csv"
    ev.write_text("session,charge_point,start,end,energy,site\n"
                  "s1,CP1,2023-03-03T08:00:00Z,2023-03-03T10:00:00Z,10,Hall\n"
                  "s2,CP1,2023-03-04T09:30:00Z,2023-03-04T10:30:00Z,5,Hall\n", encoding="utf-8")
    hub_json(lake, "ingest", "ev-sessions", str(ev))
    for pipeline in ("air_quality", "energy"):
        assert hub(lake, "run", pipeline).exit_code == 0
    result = hub(lake, "run", "city_kpis", "--json")
    assert result.exit_code == 0, result.output
    return lake, json.loads(result.stdout)


def _kpis(lake: Path) -> dict[str, dict[str, Any]]:
    rows = hub_json(lake, "sql", "SELECT * FROM derived.city_kpis_kpis")
    return {r["kpi"]: r for r in rows}


def test_air_quality_kpis(city: tuple[Path, dict[str, Any]]) -> None:
    k = _kpis(city[0])
    pm = k["Air pollution: PM2.5"]
    assert (pm["value"], pm["unit"], pm["period"], pm["computable"]) == (12.0, "µg/m³", "2023",
                                                                        True)
    assert (pm["dimension"], pm["category"], pm["coverage"]) == (
        "Environment", "Environment", "1 of 1 stations with a complete year")
    assert k["Days above WHO guideline: PM2.5"]["value"] == 0.0  # 12 < 15 every day
    no2 = k["Air pollution: NO2"]
    assert no2["computable"] is False and "no station has a complete year of NO2" in no2["note"]


def test_transport_kpis(city: tuple[Path, dict[str, Any]]) -> None:
    k = _kpis(city[0])
    seg_km = float(haversine_m(np.array(S1[1]), np.array(S1[0]), np.array(S2[1]),
                               np.array(S2[0]))) / 1000
    net = k["Public transport network"]
    assert net["value"] == pytest.approx(seg_km * 100_000 / 4000, rel=1e-6)
    conv = k["Public transport network convenience"]
    assert conv["value"] == pytest.approx(25.0)  # 1,000 of 4,000 residents within 0.5 km
    assert conv["coverage"].startswith("2 stops with regular service")
    assert k["EV charging points"]["value"] == pytest.approx(1 * 100_000 / 4000)


def test_safety_kpis(city: tuple[Path, dict[str, Any]]) -> None:
    k = _kpis(city[0])
    assert k["Emergency service response time (median)"]["value"] == pytest.approx(10.0)
    assert k["Emergency service response time (90th percentile)"]["value"] == pytest.approx(
        18.0)  # 10 + 0.8 * (20 - 10)
    years = 2 / 365.25  # the calls span two days
    assert k["Emergency calls: 폭력"]["value"] == pytest.approx(2 / years / 4000 * 100_000)


def test_energy_and_not_computable(city: tuple[Path, dict[str, Any]]) -> None:
    lake, out = city
    k = _kpis(lake)
    (ev,) = hub_json(lake, "sql", "SELECT value FROM derived.energy_kpis "
                                  "WHERE kpi = 'ev_charging_kwh_per_year'")
    assert k["EV charging energy"]["value"] == pytest.approx(ev["value"])
    assert k["Electricity consumption"]["computable"] is False
    assert "needs meter readings" in k["Electricity consumption"]["note"]
    crime = k["Violent crime rate"]
    assert crime["computable"] is False and "recorded crimes by type" in crime["note"]
    assert out["summary"]["population"] == {"value": 4000.0, "source": "PopulationCell:census"}
    assert out["summary"]["computable"] == sum(1 for r in k.values() if r["computable"])


def test_calls_per_type_on_a_lake_written_before_call_type(tmp_path: Path) -> None:
    """A lake whose Alert table predates callType holds the call type in subCategory: the
    per-type counts read it from there instead of failing on the missing column."""
    from deltalake import DeltaTable, write_deltalake

    lake = tmp_path / "lake"
    calls = tmp_path / "112.csv"
    calls.write_text("접수번호,접수일시,사건종별,위도,경도\n1,2023-03-01 10:00:00,폭력,37.5,127.0\n"
                     "2,2023-03-02 10:00:00,절도,37.5,127.0\n", encoding="utf-8")
    assert hub_json(lake, "ingest", "calls", str(calls))["written"] == 2
    table = DeltaTable(str(lake / "Alert"))
    rows = table.to_pyarrow_table()
    old = rows.set_column(rows.column_names.index("subCategory"), "subCategory",
                          rows.column("callType")).drop_columns(["callType"])
    write_deltalake(str(lake / "Alert"), old, mode="overwrite", schema_mode="overwrite",
                    partition_by=table.metadata().partition_columns or None)
    assert hub(lake, "run", "city_kpis").exit_code == 0
    kpis = hub_json(lake, "sql", "SELECT kpi FROM derived.city_kpis_kpis "
                                 "WHERE kpi LIKE 'Emergency calls: %' ORDER BY kpi")
    assert [k["kpi"] for k in kpis] == ["Emergency calls: 절도", "Emergency calls: 폭력"]
