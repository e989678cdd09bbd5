"""The air_quality pipeline end to end on lakes built through the real adapters (openaq,
population, gtfs, boardings): indices against the published rules worked by hand here, means
with the completeness rule, WHO exceedances, exposure, lights and parameter errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import hub, hub_json, write_openaq, write_zip

YEAR0 = datetime(2023, 1, 1)
A, B, C = ("A", 37.50, 127.00), ("B", 37.50, 127.02), ("C", 37.60, 127.10)
SHORT_DAY = datetime(2023, 6, 1)  # station A has only 17 PM2.5 hours that day
SMOG_DAYS = 5  # A's PM2.5 is 40 on the first five days of 2023, 10 otherwise


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S+00:00")


def _a_pm25(t: datetime) -> float | None:
    if t.date() == SHORT_DAY.date() and t.hour >= 17:
        return None
    return 40.0 if t.timetuple().tm_yday <= SMOG_DAYS else 10.0


def _year_rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for h in range(365 * 24):
        t = YEAR0 + timedelta(hours=h)
        pm = _a_pm25(t)
        if pm is not None:
            rows.append(["X", "KR", _stamp(t), "A", "pm25", pm, "µg/m³"])
        rows.append(["X", "KR", _stamp(t), "A", "no2", 8.0, "µg/m³"])
        rows.append(["X", "KR", _stamp(t), "B", "pm25", 20.0, "µg/m³"])
        rows.append(["X", "KR", _stamp(t), "B", "no2", 30.0, "µg/m³"])
        if h < 200 * 24:
            rows.append(["X", "KR", _stamp(t), "C", "pm25", 12.0, "µg/m³"])
    return rows


def _feed(path: Path) -> Path:
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
                      "T,Test,https://example.org,Asia/Seoul\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
                     f"SA,At A,{A[1]},{A[2]}\nSB,At B,{B[1]},{B[2]}\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nR,T,1,3\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
                        "start_date,end_date\nWK,1,1,1,1,1,1,1,20230101,20231231\n",
        "trips.txt": "route_id,service_id,trip_id\nR,WK,t1\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                          "t1,08:00:00,08:00:00,SA,1\nt1,08:05:00,08:05:00,SB,2\n",
    }
    return write_zip(path, files)


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A year of hourly PM2.5 and NO2 at A and B, 200 days at C; residents and two bus stops
    with boardings; one run at the defaults plus radius 5 km."""
    folder = tmp_path_factory.mktemp("aq_year")
    lake = folder / "lake"
    data, st = write_openaq(folder, _year_rows(), [A, B, C])
    assert hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))["rejected"] == 0
    pop = folder / "pop.csv"
    mid_lon = (A[2] + B[2]) / 2
    pop.write_text(f"lat,lon,population\n{A[1]},{mid_lon},1000\n{A[1]},{A[2]},3000\n"
                   "37.90,127.50,500\n", encoding="utf-8")
    hub_json(lake, "ingest", "population", str(pop), "--dataset", "census")
    hub_json(lake, "ingest", "gtfs", str(_feed(folder / "feed.zip")), "--feed-id", "t")
    board = folder / "boardings.csv"
    board.write_text("stop_id,date,hour,boardings,alightings\nSA,2023-05-02,8,100,0\n"
                     "SB,2023-05-02,8,300,0\n", encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(board), "--feed-id", "t", "--timezone", "UTC")
    result = hub(lake, "run", "air_quality", "--json", "--param", "radius_m=5000")
    assert result.exit_code == 0, result.output
    return lake, json.loads(result.stdout)


def _q(lake: Path, sql: str) -> list[dict[str, Any]]:
    return list(hub_json(lake, "sql", sql))


def _urn(name: str) -> str:
    return f"urn:ngsi-ld:AirQualityObserved:{name}"


def test_daily_means_need_18_hours(year: tuple[Path, dict[str, Any]]) -> None:
    lake, _ = year
    (short,) = _q(lake, f"SELECT mean, count, complete, note FROM derived.air_quality_means "
                        f"WHERE id = '{_urn('A')}' AND pollutant = 'pm25' AND period = 'day' "
                        f"AND start = DATE '{SHORT_DAY.date()}'")
    assert short == {"mean": None, "count": 17, "complete": False,
                     "note": "daily mean needs 18 hourly values, has 17"}
    (smog,) = _q(lake, f"SELECT mean, count FROM derived.air_quality_means WHERE id = "
                       f"'{_urn('A')}' AND pollutant = 'pm25' AND period = 'day' "
                       "AND start = DATE '2023-01-03'")
    assert smog == {"mean": 40.0, "count": 24}


def test_annual_means_need_75_percent_of_days(year: tuple[Path, dict[str, Any]]) -> None:
    lake, summary = year
    rows = {r["id"]: r for r in _q(lake, "SELECT id, mean, count, expected, note FROM "
                                         "derived.air_quality_means WHERE period = 'year' "
                                         "AND pollutant = 'pm25'")}
    expected_a = (SMOG_DAYS * 40 + (365 - SMOG_DAYS - 1) * 10) / 364  # the short day left out
    assert rows[_urn("A")]["mean"] == pytest.approx(expected_a)
    assert rows[_urn("A")]["count"] == 364 and rows[_urn("A")]["expected"] == 365
    assert rows[_urn("B")]["mean"] == pytest.approx(20.0)
    assert rows[_urn("C")]["mean"] is None
    assert rows[_urn("C")]["note"] == "annual mean needs 274 valid days, has 200"
    assert summary["summary"]["means"]["complete_years"] == 4  # A, B: PM2.5 and NO2


def test_who_exceedance_days_and_annual_levels(year: tuple[Path, dict[str, Any]]) -> None:
    lake, summary = year
    rows = _q(lake, f"SELECT averaging, level, threshold, days_above, valid_days, "
                    f"annual_mean, exceeds FROM derived.air_quality_exceedances "
                    f"WHERE id = '{_urn('A')}' AND pollutant = 'pm25'")
    short = {r["level"]: r["days_above"] for r in rows if r["averaging"] == "24h"}
    assert short == {"AQG": 5, "IT4": 5, "IT3": 5, "IT2": 0, "IT1": 0}
    assert {r["valid_days"] for r in rows if r["averaging"] == "24h"} == {364}
    annual = {r["level"]: r["exceeds"] for r in rows if r["averaging"] == "annual"}
    assert annual == {"AQG": True, "IT4": True, "IT3": False, "IT2": False, "IT1": False}
    (b,) = _q(lake, f"SELECT days_above, exceeds FROM derived.air_quality_exceedances WHERE "
                    f"id = '{_urn('B')}' AND pollutant = 'no2' AND averaging = '24h' "
                    "AND level = 'AQG'")
    assert b == {"days_above": 365, "exceeds": True}
    assert summary["summary"]["who_aqg"]["pm25_24h"]["days_above"] == 5 + 365 + 0


def test_exposure_of_residents_and_stops(year: tuple[Path, dict[str, Any]]) -> None:
    lake, summary = year
    a_no2, b_no2 = 8.0, 30.0
    cells = {(r["weight"]): r for r in _q(
        lake, "SELECT weight, idw, stations_used, nearest_station, nearest_distance_m, "
              "above_guideline FROM derived.air_quality_exposure "
              "WHERE target = 'cell' AND pollutant = 'no2'")}
    assert cells[1000.0]["idw"] == pytest.approx((a_no2 + b_no2) / 2, rel=1e-6)  # midpoint
    assert cells[1000.0]["stations_used"] == 2 and cells[1000.0]["above_guideline"] is True
    assert cells[3000.0]["idw"] == pytest.approx(a_no2, abs=0.01)  # on top of A
    assert cells[3000.0]["above_guideline"] is False
    far = cells[500.0]
    assert far["idw"] is None and far["stations_used"] == 0  # beyond 5 km of every station
    assert far["nearest_station"] == _urn("B") and far["nearest_distance_m"] > 40_000
    no2 = summary["summary"]["exposure"]["cell"]["no2"]["2023"]
    assert no2["covered_weight_share"] == pytest.approx(4000 / 4500, abs=1e-4)
    assert no2["share_above_guideline"] == pytest.approx(1000 / 4000, abs=1e-4)
    stops = summary["summary"]["exposure"]["stop"]["pm25"]["2023"]
    a_pm = (SMOG_DAYS * 40 + (365 - SMOG_DAYS - 1) * 10) / 364
    assert stops["weighted_mean"] == pytest.approx((100 * a_pm + 300 * 20.0) / 400, abs=1e-3)
    assert stops["worst"][0] == {"stop": "urn:ngsi-ld:GtfsStop:t:SB", "pm25": 20.0,
                                 "boardings": 300.0}


def test_indices_on_a_normal_hour(year: tuple[Path, dict[str, Any]]) -> None:
    lake, _ = year
    (row,) = _q(lake, f"SELECT cai, cai_reason, us_aqi, us_aqi_category, us_aqi_pollutant, "
                      "aqi_pm25, aqi_no2, eaqi, eaqi_band, eaqi_pollutant, eaqi_pm25, eaqi_no2 "
                      f"FROM derived.air_quality_indices WHERE id = '{_urn('B')}' "
                      "AND observed_at = TIMESTAMPTZ '2023-03-01 12:00:00+00'")
    # B: PM2.5 20 µg/m³ -> NowCast 20.0 -> 51 + 49/26.3 * (20.0 - 9.1) = 71.3;
    # NO2 30 µg/m³ = 15.9 ppb -> 15 -> 50/53 * 15 = 14.2
    assert (row["aqi_pm25"], row["aqi_no2"], row["us_aqi"]) == (71, 14, 71)
    assert (row["us_aqi_category"], row["us_aqi_pollutant"]) == ("Moderate", "pm25")
    # EAQI: PM2.5 24-h 20 is band 3 (15-50], NO2 30 band 3 (25-60]
    assert (row["eaqi_pm25"], row["eaqi_no2"], row["eaqi"], row["eaqi_band"]) == (
        3, 3, 3, "moderate")
    assert row["eaqi_pollutant"] == "pm25"
    # the CAI needs PM10, PM2.5, NO2 and O3 (AirKorea's CAI calculator): B has no PM10 or O3
    assert row["cai"] is None
    assert "pm10: 24-hour predicted moving average needs 9 of the last 12 hours" in (
        row["cai_reason"])
    assert "o3: no hourly value" in row["cai_reason"]


def test_lights_show_the_latest_value(year: tuple[Path, dict[str, Any]]) -> None:
    lake, _ = year
    rows = _q(lake, f"SELECT pollutant, CAST(observed_at AS VARCHAR) AS t, grade, grade_name, "
                    f"value, unit FROM derived.air_quality_lights WHERE id = '{_urn('C')}'")
    by = {r["pollutant"]: r for r in rows}
    assert "overall" not in by  # no CAI without PM10 and O3
    assert by["pm25"]["t"].startswith("2023-07-19 23:00:00")  # C's last hour (day 200)
    assert (by["pm25"]["grade"], by["pm25"]["grade_name"]) == (1, "good")
    assert by["pm25"]["value"] == pytest.approx(12.0) and by["pm25"]["unit"] == "µg/m³"


def _hours(station: str, start: datetime, values: list[float], parameter: str,
           unit: str = "µg/m³") -> list[list[Any]]:
    return [["X", "KR", _stamp(start + timedelta(hours=k)), station, parameter, v, unit]
            for k, v in enumerate(values)]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short series, one station per rule, run once."""
    folder = tmp_path_factory.mktemp("aq_cases")
    lake = folder / "lake"
    t0 = datetime(2024, 3, 1)
    rows = _hours("N", t0, [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13], "pm25")
    rows += _hours("P", t0, [12.0] * 12, "pm25")
    rows += _hours("O", t0, [0.078] * 8, "o3", "ppm")
    rows += _hours("Q", t0, [0.040] * 7 + [0.130], "o3", "ppm")
    rows += _hours("E", t0, [25.0], "no2") + _hours("F", t0, [25.1], "no2")
    rows += _hours("G", t0, [10.0] * 6, "pm25") + _hours("G", t0 + timedelta(hours=10),
                                                         [20.0] * 6, "pm25")
    rows += _hours("K", t0, [50.0] * 24, "pm25") + _hours("K", t0, [100.0] * 24, "pm10")
    rows += _hours("K", t0, [0.1] * 24, "no2", "ppm") + _hours("K", t0, [0.02] * 24, "o3",
                                                                "ppm")
    stations = [(s, 37.5 + i / 100, 127.0) for i, s in enumerate("NPOQEFKG")]
    data, st = write_openaq(folder, rows, stations)
    assert hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))["rejected"] == 0
    result = hub(lake, "run", "air_quality", "--json")
    assert result.exit_code == 0, result.output
    return lake


def _last(lake: Path, station: str, *cols: str) -> dict[str, Any]:
    rows = _q(lake, f"SELECT {', '.join(cols)} FROM derived.air_quality_indices WHERE id = "
                    f"'{_urn(station)}' ORDER BY observed_at DESC LIMIT 1")
    return rows[0]


def test_nowcast_matches_epas_worked_example(cases: Path) -> None:
    # EPA's NowCast example (AirNow, "Computing the NowCast"): these 12 hours, oldest first,
    # give a weight factor of 0.5 (1 - 80/90 < 0.5) and a NowCast of 17.4 µg/m³.
    row = _last(cases, "N", "pm25_nowcast", "aqi_pm25")
    assert round(row["pm25_nowcast"], 1) == 17.4
    assert row["aqi_pm25"] == 66  # 2024 breakpoints: 51 + 49/26.3 * (17.4 - 9.1)


def test_2024_pm25_breakpoints(cases: Path) -> None:
    # 12.0 µg/m³ was AQI 50 under the 2012 table; from 2024 'Good' ends at 9.0
    assert _last(cases, "P", "aqi_pm25")["aqi_pm25"] == 56


def test_ozone_8_hour_and_1_hour_rules(cases: Path) -> None:
    # 8 hours at 0.078 ppm: 8-hour mean 0.078 -> 101 + 49/0.014 * (0.078 - 0.071) = 125.5
    assert _last(cases, "O", "aqi_o3")["aqi_o3"] == 126
    # 7 hours at 0.040 then 0.130: 8-hour mean 0.051 (AQI 47), 1-hour 0.130 >= 0.125 gives
    # 101 + 49/0.039 * 0.005 = 107.3; the larger is reported
    assert _last(cases, "Q", "aqi_o3")["aqi_o3"] == 107


def test_gaps_count_hours_not_rows(cases: Path) -> None:
    """G has hours 0-5 at 10 and 10-15 at 20 µg/m³: windows and lags count clock hours."""
    rows = _q(cases, f"SELECT pm25_nowcast, pm25_hours_24h, pm25_24h FROM "
                     f"derived.air_quality_indices WHERE id = '{_urn('G')}' ORDER BY observed_at")
    assert len(rows) == 12
    assert rows[6]["pm25_nowcast"] is None  # hour 10: hours 9 and 8 are missing
    # hour 11: weight 0.5 (10/20); present hours 11, 10 (k = 0, 1) and 5..0 (k = 6..11)
    ks = [(0, 20.0), (1, 20.0)] + [(k, 10.0) for k in range(6, 12)]
    expected = sum(v * 0.5 ** k for k, v in ks) / sum(0.5 ** k for k, _ in ks)
    assert rows[7]["pm25_nowcast"] == pytest.approx(expected)
    assert rows[11]["pm25_hours_24h"] == 12 and rows[11]["pm25_24h"] is None  # 12 < 18


def test_eaqi_band_edges(cases: Path) -> None:
    assert _last(cases, "E", "eaqi_no2")["eaqi_no2"] == 2  # 25 is the top of 'fair'
    assert _last(cases, "F", "eaqi_no2")["eaqi_no2"] == 3


def _c24e(values: list[float], m: float) -> float:
    """AirKorea's 24-hour predicted moving average at the last hour (CAI calculator)."""
    c12 = sum(values[-12:]) / 12

    def adj(c: float) -> float:
        return c if c < m or not 0.9 <= c / c12 <= 1.7 else 0.75 * c

    return (c12 * 12 + sum(adj(c) for c in values[-4:]) / 4 * 12) / 24


def test_cai_predicted_moving_average_and_the_unhealthy_bonus(cases: Path) -> None:
    row = _last(cases, "K", "pm25_cai_input", "pm10_cai_input", "cai_pm25", "cai_pm10",
                "cai_no2", "cai_o3", "cai", "cai_grade", "cai_pollutant")
    assert row["pm25_cai_input"] == pytest.approx(_c24e([50.0] * 24, 30))  # 43.75
    assert row["pm10_cai_input"] == pytest.approx(_c24e([100.0] * 24, 70))  # 87.5
    assert row["cai_pm25"] == round(101 + 149 / 39 * (43.75 - 36))  # 131
    assert row["cai_pm10"] == round(101 + 149 / 69 * (87.5 - 81))  # 115
    assert row["cai_no2"] == round(101 + 149 / 0.139 * (0.1 - 0.061))  # 143
    # three sub-indices 'unhealthy' (101+): the highest plus 75
    assert (row["cai"], row["cai_grade"], row["cai_pollutant"]) == (143 + 75, 3, "no2")


def test_bad_parameters_are_usage_errors(cases: Path) -> None:
    result = hub(cases, "run", "air_quality", "--param", "timezone=Mars/Olympus")
    assert result.exit_code == 2 and "not a time zone" in result.output
    result = hub(cases, "run", "air_quality", "--param", "index=cai,aqhi")
    assert result.exit_code == 2 and "choose from cai, us_aqi, eaqi" in result.output


def test_index_parameter_limits_the_work(cases: Path) -> None:
    result = hub(cases, "run", "air_quality", "--json", "--param", "index=eaqi")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["summary"]["indices"]
    assert out["cai_hours"] == 0 and out["us_aqi_hours"] == 0 and out["eaqi_hours"] > 0


def test_a_lake_without_air_quality_is_an_input_error(tmp_path: Path) -> None:
    pop = tmp_path / "pop.csv"
    pop.write_text("lat,lon,population\n37.5,127.0,10\n", encoding="utf-8")
    hub_json(tmp_path / "lake", "ingest", "population", str(pop))
    result = hub(tmp_path / "lake", "run", "air_quality")
    assert result.exit_code != 0 and "AirQualityObserved" in result.output

