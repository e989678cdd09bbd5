"""The bus_routes pipeline end to end: a small feed with known answers, and the trips per
route and service day of the real Caltrain and Cairns feeds against an independent count."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hubctl.pipelines.transit_geo import cluster_cells
from hubctl.pipelines.transit_plans import Segments, removals
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json, write_zip

LAT0, LON0, STEP = 37.5, 127.0, 0.005  # stops every 0.005° of longitude (~440 m)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def write_feed(path: Path) -> Path:
    """A zipped GTFS feed with known answers.

    Route A (S1..S6 and back, weekdays): direction 0 every 10 min 07:00-08:50 (12 trips) and
    every 30 min 09:00-11:00 (5 trips); direction 1 every 30 min 07:00-11:00 (9 trips).
    Route B (S2-S3-S4, weekdays, 4 trips) runs on A's segments only. Route C (S6..S9 north,
    Saturdays plus an added Wednesday 2024-05-08; 5 trips). Weekday service is removed on
    2024-05-09.
    """
    stops = [(f"S{k}", LAT0, LON0 + STEP * (k - 1)) for k in range(1, 7)]
    stops += [(f"S{k}", LAT0 + STEP * (k - 6), LON0 + STEP * 5) for k in range(7, 10)]
    trips: list[tuple[str, str, str, int, list[str], int]] = []
    a_stops = [f"S{k}" for k in range(1, 7)]
    for m in [*range(420, 540, 10), *range(540, 661, 30)]:
        trips.append((f"A0-{m}", "A", "WK", 0, a_stops, m))
    for m in range(420, 661, 30):
        trips.append((f"A1-{m}", "A", "WK", 1, a_stops[::-1], m))
    for m in range(420, 601, 60):
        trips.append((f"B-{m}", "B", "WK", 0, ["S2", "S3", "S4"], m))
    for m in range(420, 661, 60):
        trips.append((f"C-{m}", "C", "SAT", 0, ["S6", "S7", "S8", "S9"], m))
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
                      "T,Test Transit,https://example.org,Asia/Seoul\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
                     + "".join(f"{s},Stop {s},{la},{lo}\n" for s, la, lo in stops),
        "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\n"
                      "A,T,A,Main line,3\nB,T,B,Short line,3\nC,T,C,North line,3\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
                        "start_date,end_date\nWK,1,1,1,1,1,0,0,20240501,20241231\n"
                        "SAT,0,0,0,0,0,1,0,20240501,20241231\n",
        "calendar_dates.txt": "service_id,date,exception_type\nSAT,20240508,1\n"
                              "WK,20240509,2\n",
        "trips.txt": "route_id,service_id,trip_id,direction_id\n"
                     + "".join(f"{r},{s},{t},{d}\n" for t, r, s, d, _, _ in trips),
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                          + "".join(f"{t},{_hhmm(m + 2 * k)},{_hhmm(m + 2 * k)},{s},{k + 1}\n"
                                    for t, _, _, _, seq, m in trips
                                    for k, s in enumerate(seq)),
    }
    return write_zip(path, files)


def write_population(path: Path) -> Path:
    """1,000 people beside each of S1..S6, 150 beside S7..S9, and 4 x 400 people 3.3 km
    north of the line, far from every stop."""
    rows = [(LAT0 + 0.0005, LON0 + STEP * k, 1000) for k in range(6)]
    rows += [(LAT0 + STEP * k + 0.0002, LON0 + STEP * 5 + 0.0005, 150) for k in (1, 2, 3)]
    rows += [(37.53 + dy, 127.01 + dx, 400) for dy in (0, 0.003) for dx in (0, 0.004)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lat", "lon", "population"])
        w.writerows(rows)
    return path


PARAMS = ("--param", "date=2024-05-08", "--param", "day_window=07:00-11:00",
          "--param", "min_trips_per_hour=4", "--param", "min_cluster_population=500")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The test feed and population ingested once, with one run at the default parameters;
    tests that change parameters or the lake work on a copy (``lake``)."""
    folder = tmp_path_factory.mktemp("bus_routes")
    lake = folder / "lake"
    feed = write_feed(folder / "t.zip")
    run = hub_json(lake, "ingest", "gtfs", str(feed), "--feed-id", "t")
    assert run["rejected"] == 0, run
    hub_json(lake, "ingest", "population", str(write_population(folder / "pop.csv")),
             "--dataset", "test")
    return lake, _run(lake)


@pytest.fixture()
def lake(base: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(base[0], tmp_path / "lake"))


def _run(lake: Path, *params: str) -> dict[str, Any]:
    result = hub(lake, "run", "bus_routes", "--json", *PARAMS, *params)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rows(lake: Path, table: str, order: str) -> list[dict[str, Any]]:
    rows = hub_json(lake, "sql", f"SELECT * EXCLUDE (_run_id) FROM derived.bus_routes_{table} "
                                 f"ORDER BY {order}")
    assert isinstance(rows, list)
    return rows


def test_route_metrics_follow_the_timetable(base: tuple[Path, dict[str, Any]]) -> None:
    lake, result = base
    out = result["summary"]
    assert out["first_date"] == "2024-05-08" and out["service_days"] == 1
    assert out["trips_per_day"] == 17 + 9 + 4 + 5
    routes = {(r["route_id"], r["direction"]): r
              for r in _rows(lake, "routes", "route_id, direction")}
    a0 = routes[("A", 0)]
    assert a0["trips_per_day"] == 17 and a0["stops"] == 6
    assert a0["peak_headway_min"] == pytest.approx(10.0)  # 07:00-08:50 every 10 min
    assert a0["offpeak_headway_min"] == pytest.approx(30.0)  # 09:00-11:00 every 30 min
    assert a0["mean_headway_min"] == pytest.approx((660 - 420) / 16)
    assert a0["first_departure"] == "07:00:00" and a0["last_departure"] == "11:00:00"
    assert a0["vehicle_hours_per_day"] == pytest.approx(17 * 10 / 60)
    km = 5 * 0.005 * 111.195 * 0.7934  # five gaps of 0.005° of longitude at 37.5°N
    assert a0["route_length_km"] == pytest.approx(km, rel=2e-3)
    assert a0["vehicle_km_per_day"] == pytest.approx(17 * km, rel=2e-3)
    assert routes[("B", 0)]["redundancy"] == pytest.approx(1.0)  # all on route A's segments
    assert routes[("C", 0)]["redundancy"] == pytest.approx(0.0)
    assert routes[("A", 0)]["catchment_population"] == 6000


def test_service_days_follow_calendar_and_exceptions(lake: Path) -> None:
    _run(lake, "--param", "end_date=2024-05-11")
    days = Counter()
    for r in _rows(lake, "route_days", "service_date, route_id, direction"):
        days[(r["service_date"], r["route_id"])] += r["trips"]
    assert days == {("2024-05-08", "A"): 26, ("2024-05-08", "B"): 4, ("2024-05-08", "C"): 5,
                    ("2024-05-10", "A"): 26, ("2024-05-10", "B"): 4,
                    ("2024-05-11", "C"): 5}  # 05-09: weekday service removed


def test_default_date_is_the_busiest_of_the_calendar(lake: Path) -> None:
    result = hub(lake, "run", "bus_routes", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    # weekdays run 30 trips, Saturdays 5; Wednesday 2024-05-08 has both: 35
    assert (summary["first_date"], summary["trips_per_day"]) == ("2024-05-08", 35)


def test_coverage_uncovered_cells_and_new_service(base: tuple[Path, dict[str, Any]]) -> None:
    lake, result = base
    out = result["summary"]
    # S1..S6 are served 4+ times an hour in 07:00-11:00; S7..S9 (route C) are not
    assert out["coverage"]["covered"] == 6000
    assert out["coverage"]["uncovered"] == 450 + 1600
    cells = _rows(lake, "uncovered", "cell")
    assert sum(c["population"] for c in cells) == 2050
    new = _rows(lake, "new_service", "candidate")
    assert len(new) == 1  # the 450 beside route C are under min_cluster_population
    assert new[0]["uncovered_population"] == 1600
    assert new[0]["population_reached_by_one_stop"] == 1600
    assert (new[0]["nearest_stop"], new[0]["nearest_route_name"]) == ("S9", "C")
    assert new[0]["action"] == "new-route" and new[0]["nearest_stop_m"] > 1500


def test_reallocation_keeps_vehicle_hours_and_cuts_waiting(
        base: tuple[Path, dict[str, Any]]) -> None:
    lake, result = base
    out = result["summary"]["reallocation"]
    assert out["vehicle_hours_after"] <= out["vehicle_hours_before"] * (1 + 1e-9)
    assert out["waiting_hours_after"] <= out["waiting_hours_before"]
    rows = _rows(lake, "reallocation", "route_id")
    assert [r["route_id"] for r in rows] == ["A", "B", "C"]
    assert sum(r["vehicle_hours_after"] for r in rows) == pytest.approx(
        sum(r["vehicle_hours_before"] for r in rows))
    free = []
    for r in rows:
        lo, hi = min(5.0, r["headway_before_min"]), max(60.0, r["headway_before_min"])
        assert lo - 1e-9 <= r["headway_after_min"] <= hi + 1e-9
        if lo + 1e-6 < r["headway_after_min"] < hi - 1e-6:
            cost = r["vehicle_hours_before"] * r["headway_before_min"]  # T = V h
            free.append(r["headway_after_min"] / (cost / r["demand_per_day"]) ** 0.5)
    assert len(free) >= 2 and max(free) == pytest.approx(min(free))  # h ∝ sqrt(T / d)


def test_boardings_drive_demand_when_present(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "cards.csv"
    path.write_text("stop_id,date,hour,boardings,alightings\n"
                    + "".join(f"S{k},2024-05-08,8,{100 * k},{50 * k}\n" for k in range(1, 7))
                    + "S9,2024-05-08,8,5,5\nX99,2024-05-08,8,7,7\n")
    hub_json(lake, "ingest", "boardings", str(path), "--feed-id", "t",
             "--timezone", "Asia/Seoul")
    result = _run(lake)
    out = result["summary"]
    assert out["demand"]["basis"] == "boardings"
    assert out["demand"]["boardings_per_day"] == 2100 + 5
    stops = {s["stop_id"]: s for s in _rows(lake, "stops", "stop_id")}
    assert stops["S3"]["boardings_per_day"] == 300 and stops["S3"]["alightings_per_day"] == 150
    assert any("not served" in n for n in result.get("notes", []))
    routes = {(r["route_id"], r["direction"]): r for r in _rows(lake, "routes", "route_id")}
    total = sum(r["boardings_per_day"] for r in routes.values())
    assert total == pytest.approx(2105)  # every boarding goes to exactly one route direction
    # hourly card data: every boarding is at 08:00, so the 07-09 band holds all the demand
    bands = {b["band"]: b for b in out["reallocation_bands"]["bands"]}
    assert out["reallocation_bands"]["demand_basis"] == "hourly boardings"
    assert bands["07-09"]["demand_share"] == 1.0 and bands["09-16"]["demand_share"] == 0.0


def test_hourly_floating_population_counts_its_mean_hour(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "floating.csv"
    path.write_text("lat,lon,population,hour\n37.5005,127.0,800,8\n37.5005,127.0,400,9\n"
                    "37.53,127.01,300,8\n")
    hub_json(lake, "ingest", "population", str(path), "--dataset", "phone", "--kind",
             "floating")
    out = _run(lake, "--param", "population_kind=floating")["summary"]
    assert out["demand"]["population_kind"] == "floating"
    assert out["coverage"]["population"] == 600 + 300  # mean of 08h and 09h, and 300
    assert out["coverage"]["covered"] == 600
    at_nine = _run(lake, "--param", "population_kind=floating", "--param", "population_hour=9")
    assert at_nine["summary"]["coverage"]["population"] == 400
    residents = _run(lake)["summary"]["coverage"]["population"]  # auto: residents
    assert residents == 6000 + 450 + 1600


def test_redundant_low_demand_route_is_a_removal_candidate(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "cards.csv"
    path.write_text("stop_id,date,boardings\nS1,2024-05-08,500\nS5,2024-05-08,300\n"
                    "S6,2024-05-08,300\nS9,2024-05-08,20\n")
    hub_json(lake, "ingest", "boardings", str(path), "--feed-id", "t")
    _run(lake, "--param", "redundancy_threshold=0.9", "--param", "low_demand_quantile=0.5")
    removed = [r for r in _rows(lake, "removals", "kind, route_id") if r["kind"] == "remove"]
    assert [r["route_id"] for r in removed] == ["B"]
    assert removed[0]["vehicle_km_after"] == 0 and removed[0]["vehicle_km_before"] > 0
    assert removed[0]["population_losing_only_route"] == 0  # route A serves all its stops


def test_same_lake_and_parameters_give_the_same_tables(lake: Path,
                                                     base: tuple[Path, dict[str, Any]]) -> None:
    tables = {t: _rows(lake, t, "ALL") for t in ("routes", "stops", "uncovered", "removals")}
    assert _run(lake)["summary"] == base[1]["summary"]
    assert {t: _rows(lake, t, "ALL") for t in tables} == tables


@pytest.mark.parametrize(("param", "message"), [
    ("date=2024-13-01", "not a date"),
    ("feed=nope", "no such feed"),
    ("peak_windows=7-9", "HH:MM-HH:MM"),
])
def test_bad_parameters_are_usage_errors(base: tuple[Path, dict[str, Any]], param: str,
                                        message: str) -> None:
    result = hub(base[0], "run", "bus_routes", "--param", param)
    assert result.exit_code == 2 and message in result.output


# --- trips per route and service day against an independent count of the real feeds ---

def _read(folder: Path | zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    if isinstance(folder, zipfile.ZipFile):
        if name not in folder.namelist():
            return []
        text = folder.read(name).decode("utf-8-sig")
    else:
        if not (folder / name).exists():
            return []
        text = (folder / name).read_text(encoding="utf-8-sig")
    return [{k.strip(): (v or "").strip() for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text))]


def independent_trip_counts(feed: Path, days: list[date]) -> Counter[tuple[str, str, str]]:
    """Trips per (date, route_id, direction_id) from trips.txt, calendar.txt and
    calendar_dates.txt with the csv module alone."""
    src: Path | zipfile.ZipFile = zipfile.ZipFile(feed) if feed.suffix == ".zip" else feed
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    calendar = _read(src, "calendar.txt")
    exceptions = _read(src, "calendar_dates.txt")
    counts: Counter[tuple[str, str, str]] = Counter()
    trips = _read(src, "trips.txt")
    for day in days:
        ymd = day.strftime("%Y%m%d")
        active = {c["service_id"] for c in calendar
                  if c["start_date"] <= ymd <= c["end_date"]
                  and c[weekdays[day.weekday()]] == "1"}
        active |= {e["service_id"] for e in exceptions
                   if e["date"] == ymd and e["exception_type"] == "1"}
        active -= {e["service_id"] for e in exceptions
                   if e["date"] == ymd and e["exception_type"] == "2"}
        for t in trips:
            if t["service_id"] in active:
                counts[(str(day), t["route_id"], t.get("direction_id") or "0")] += 1
    return counts


@needs_sample_data
@pytest.mark.parametrize(("name", "first", "last"), [
    ("caltrain-2017-07-24", date(2017, 9, 1), date(2017, 9, 7)),   # Labor Day exceptions
    ("cairns-2014.zip", date(2014, 6, 5), date(2014, 6, 11)),      # 9 June exceptions
])
def test_trips_per_route_and_day_equal_an_independent_count(tmp_path: Path, name: str,
                                                             first: date, last: date) -> None:
    feed = SAMPLE_DATA / "gtfs" / name
    if feed.is_dir():  # the ingest takes the folder's files zipped (the repository keeps none)
        zipped = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(zipped, "w") as z:
            for f in sorted(feed.iterdir()):
                z.write(f, f.name)
        source = zipped
    else:
        source = feed
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "gtfs", str(source), "--feed-id", "real")
    result = hub(lake, "run", "bus_routes", "--json", "--param", f"date={first}",
                 "--param", f"end_date={last}")
    assert result.exit_code == 0, result.output
    rows = hub_json(lake, "sql", "SELECT service_date, route_id, direction, trips "
                                 "FROM derived.bus_routes_route_days")
    ours = Counter({(r["service_date"], r["route_id"], str(r["direction"])): r["trips"]
                    for r in rows})
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    expected = independent_trip_counts(feed, days)
    assert ours == expected
    assert sum(expected.values()) > 100
    # no demand in this lake: today's frequencies stay, nothing is proposed for removal
    summary = json.loads(result.stdout)["summary"]
    assert summary["reallocation"]["status"] == "current-is-optimal"
    assert summary["candidates"]["remove"] == summary["candidates"]["shorten"] == 0


# --- units of the recommendations ---

def test_two_routes_that_only_duplicate_each_other_are_not_both_removed() -> None:
    # routes 0 and 1 run the same two segments; route 2 runs elsewhere
    seg = Segments(route=np.array([0, 0, 1, 1, 2]), group=np.array([0, 0, 1, 1, 2]),
                   pair=np.array([0, 1, 0, 1, 2]), weight=np.ones(5), n_routes=3)
    routes = pa.table({
        "route": ["r0", "r1", "r2"], "route_id": ["0", "1", "2"], "short_name": ["0", "1", "2"],
        "stops": [3, 3, 2], "demand_per_vehicle_km": [2.0, 1.0, 50.0],
        "redundancy": [1.0, 1.0, 0.0], "vehicle_km_per_day": [10.0, 10.0, 5.0],
        "vehicle_hours_per_day": [1.0, 1.0, 0.5], "boardings_per_day": [20.0, 10.0, 250.0],
        "_code": [0, 1, 2]})
    out = removals(routes, np.zeros(3), seg, redundancy_min=0.6, low_quantile=0.9)
    assert out["route"].to_pylist() == ["r1"]  # the less used one; r0 then stands alone


def test_touching_cells_form_one_cluster_whatever_the_input_order() -> None:
    col = np.array([0, 1, 5, 2, 6, 9])
    row = np.array([0, 1, 5, 2, 5, 0])  # a diagonal chain, a pair, a single cell
    labels = cluster_cells(col, row)
    assert labels.tolist() == [0, 0, 1, 0, 1, 2]
    perm = np.array([5, 3, 1, 4, 0, 2])
    assert cluster_cells(col[perm], row[perm]).tolist() == labels[perm].tolist()


@needs_sample_data
def test_real_feed_with_generated_demand_keeps_its_guarantees(tmp_path: Path) -> None:
    """Cairns with seeded population around its stops and a day of boardings at each stop."""
    rng = np.random.default_rng(11)
    feed = SAMPLE_DATA / "gtfs" / "cairns-2014.zip"
    stops = _read(zipfile.ZipFile(feed), "stops.txt")
    lat = np.array([float(s["stop_lat"]) for s in stops])
    lon = np.array([float(s["stop_lon"]) for s in stops])
    n = 3000
    pick = rng.integers(0, len(stops), n)
    pop = tmp_path / "pop.csv"
    with open(pop, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lat", "lon", "population"])
        for k in range(n):
            w.writerow([round(lat[pick[k]] + rng.normal(0, 0.006), 6),
                        round(lon[pick[k]] + rng.normal(0, 0.006), 6), int(rng.integers(5, 200))])
    cards = tmp_path / "cards.csv"
    with open(cards, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stop_id", "date", "hour", "boardings"])
        for s in stops:
            w.writerow([s["stop_id"], "2014-06-05", 8, int(rng.integers(0, 60))])
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "gtfs", str(feed), "--feed-id", "cairns")
    hub_json(lake, "ingest", "population", str(pop))
    hub_json(lake, "ingest", "boardings", str(cards), "--feed-id", "cairns",
             "--timezone", "Australia/Brisbane")
    out = hub_json(lake, "run", "bus_routes", "--param", "date=2014-06-05")["summary"]
    cov, realloc = out["coverage"], out["reallocation"]
    assert cov["covered"] + cov["uncovered"] == pytest.approx(cov["population"])
    assert 0 < cov["share"] < 1
    assert realloc["vehicle_hours_after"] <= realloc["vehicle_hours_before"] * (1 + 1e-9)
    assert realloc["waiting_hours_after"] <= realloc["waiting_hours_before"]
    assert out["demand"]["basis"] == "boardings"
    stops_out = hub_json(lake, "sql", "SELECT sum(boardings_per_day) AS b, "
                                      "max(catchment_population) AS c FROM derived."
                                      "bus_routes_stops")[0]
    assert stops_out["b"] == pytest.approx(out["demand"]["boardings_per_day"])
    assert stops_out["c"] <= cov["population"]
    days = hub_json(lake, "sql", "SELECT sum(trips) AS n FROM derived.bus_routes_route_days")
    assert days[0]["n"] == out["trips_per_day"]


def test_walking_catchments_follow_the_streets(lake: Path, tmp_path: Path) -> None:
    """A street along the line (S1..S6 sit on it) and a parallel street 55 m north where the
    population lives, joined only by a footway at S3 and a motorway link at S5 (no walking).

    By hand: in a straight line every stop reaches its 1,000 neighbours (6 x 1,000) and
    S7..S9 their 150 each: 6,450 people. Walking, only the people beside S3 reach a stop
    (55 m down the footway); their neighbours at S2 and S4 walk 440 m to the footway plus
    55 m, and the motorway link does not count: 1,000 people."""
    from tests.test_osm import write_osm

    step = 0.0025
    nodes: dict[int, tuple[float, float]] = {}
    for m in range(-4, 15):
        nodes[100 + m] = (LON0 + step * m, LAT0)
        nodes[200 + m] = (LON0 + step * m, LAT0 + 0.0005)
    ways = [(1, [100 + m for m in range(-4, 15)], {"highway": "residential"}),
            (2, [200 + m for m in range(-4, 15)], {"highway": "residential"}),
            (3, [104, 204], {"highway": "footway"}),
            (4, [108, 208], {"highway": "motorway_link", "oneway": "yes"})]
    hub_json(lake, "ingest", "osm", str(write_osm(tmp_path / "streets.osm", nodes, ways)),
             "--network", "all")
    out = _run(lake)
    walk = out["summary"]["catchments"]
    assert walk["mode"] == "network" and walk["radius_m"] == 400
    assert walk["population_served"] == pytest.approx(1000)
    assert walk["population_served_straight"] == pytest.approx(6450)
    assert walk["walk_network"]["nodes"] == 38  # every vertex of the two streets
    assert any("walking over the street network" in n for n in out["notes"])
    stops = {r["stop_id"]: r for r in _rows(lake, "stops", "stop_id")}
    assert stops["S3"]["catchment_population"] == pytest.approx(1000)
    assert stops["S2"]["catchment_population"] == 0
    assert stops["S2"]["catchment_population_straight"] == pytest.approx(1000)
    # uncovered cells: the walk to the nearest frequent stop (S1..S6), by hand: to the nearest
    # vertex of either street, along the south street to the nearest stop vertex, or along
    # the north street to the footway at S3 and 55 m down it
    from hubctl.geo import haversine_m

    cells = _rows(lake, "uncovered", "cell")
    vertices = [(m, LON0 + step * m, lat) for m in range(-4, 15) for lat in (LAT0, LAT0 + 0.0005)]
    metre = haversine_m(LON0, LAT0, LON0 + step, LAT0)  # one vertex spacing
    for c in cells:
        m, lon, lat = min(vertices, key=lambda v: haversine_m(c["lon"], c["lat"], v[1], v[2]))
        leg = haversine_m(c["lon"], c["lat"], lon, lat)
        if lat == LAT0:  # stops at even m from 0 to 10
            along = metre * (abs(m) if m < 0 else m - 10 if m > 10 else m % 2)
        else:
            along = metre * abs(m - 4) + haversine_m(LON0, LAT0, LON0, LAT0 + 0.0005)
        assert c["nearest_frequent_stop_m"] == pytest.approx(leg + along, rel=2e-3)
        assert c["nearest_frequent_stop_m"] >= c["nearest_frequent_stop_m_straight"] - 1e-6
    assert len(cells) >= 2
    straight = _run(lake, "--param", "catchment=straight")["summary"]["catchments"]
    assert straight["mode"] == "straight" and straight["population_served"] == pytest.approx(6450)
    plain = _rows(lake, "uncovered", "cell")
    assert all(c["nearest_frequent_stop_m"] == c["nearest_frequent_stop_m_straight"]
               for c in plain)


def test_straight_catchments_without_roads_say_so(base: tuple[Path, dict[str, Any]]) -> None:
    _, out = base
    assert out["summary"]["catchments"]["mode"] == "straight"
    assert any("no RoadSegment in the lake" in n for n in out["notes"])
    r = hub(base[0], "run", "bus_routes", *PARAMS, "--param", "catchment=network")
    assert r.exit_code == 1 and "needs streets in the lake" in r.output


def frequency_feed(feed: Path) -> Path:
    """Route F has one template trip (S1 -> S2, 8 minutes) that frequencies.txt repeats every
    10 minutes from 08:00 to 09:00 (6 departures: 08:00 .. 08:50; 09:00 is the window's end)
    and every 30 minutes from 09:00 to 10:00 (2), beside an ordinary trip at 10:30."""
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
                      "T,Test Transit,https://example.org,Asia/Seoul\n",
        "stops.txt": f"stop_id,stop_name,stop_lat,stop_lon\nS1,One,{LAT0},{LON0}\n"
                     f"S2,Two,{LAT0},{LON0 + STEP}\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\n"
                      "F,T,F,Frequent,3\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
                        "start_date,end_date\nWK,1,1,1,1,1,0,0,20240501,20241231\n",
        "trips.txt": "route_id,service_id,trip_id,direction_id\nF,WK,tmpl,0\nF,WK,late,0\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                          "tmpl,06:00:00,06:00:00,S1,1\ntmpl,06:08:00,06:08:00,S2,2\n"
                          "late,10:30:00,10:30:00,S1,1\nlate,10:38:00,10:38:00,S2,2\n",
        "frequencies.txt": "trip_id,start_time,end_time,headway_secs,exact_times\n"
                           "tmpl,08:00:00,09:00:00,600,0\ntmpl,09:00:00,10:00:00,1800,1\n",
    }
    return write_zip(feed, files)


def test_frequencies_expand_into_departures(tmp_path: Path) -> None:
    """The departures of :func:`frequency_feed` (9 a day, 6 in the peak hour)."""
    feed = frequency_feed(tmp_path / "f.zip")
    lake = tmp_path / "lake"
    assert hub_json(lake, "ingest", "gtfs", str(feed), "--feed-id", "f")["rejected"] == 0
    out = hub_json(lake, "run", "bus_routes", "--param", "date=2024-05-08",
                   "--param", "day_window=08:00-11:00", "--param", "peak_windows=08:00-09:00")
    assert out["summary"]["trips_per_day"] == 9
    assert out["summary"]["vehicle_hours_per_day"] == pytest.approx(9 * 8 / 60)
    routes = _rows(lake, "routes", "route")
    assert routes[0]["trips_per_day"] == 9
    assert routes[0]["first_departure"].startswith("08:00")
    assert routes[0]["peak_headway_min"] == pytest.approx(10.0)
    stops = {r["stop_id"]: r for r in _rows(lake, "stops", "stop_id")}
    assert stops["S1"]["departures_per_day"] == 9 and stops["S1"]["peak_hour_trips"] == 6


def test_reallocation_by_time_of_day_keeps_each_bands_fleet(
        base: tuple[Path, dict[str, Any]]) -> None:
    """Bands 00-07, 07-09, 09-24 on 2024-05-08. By hand from the feed: 07-09 has A 16 trips in
    two directions (headway 120 / 8 = 15 min), B 2 (60 min) and C 2 (60 min); 09-24 has A 10
    (900 / 5 = 180 min), B 2 (450 min), C 3 (300 min); 00-07 has none."""
    lake, _ = base
    out = _run(lake, "--param", "bands=00-07,07-09,09-24")
    bands = {b["band"]: b for b in out["summary"]["reallocation_bands"]["bands"]}
    assert out["summary"]["reallocation_bands"]["demand_basis"].startswith("departures")
    assert bands["00-07"]["routes"] == 0
    for b in bands.values():
        assert b["vehicle_hours_after"] <= b["vehicle_hours_before"] + 1e-9
        assert b["waiting_hours_after"] <= b["waiting_hours_before"] + 1e-9
    rows = _rows(lake, "reallocation_bands", "band, route")
    before = {(r["band"], r["route_id"]): (r["trips_before"], r["headway_before_min"])
              for r in rows}
    assert before == {("07-09", "A"): (16, 15.0), ("07-09", "B"): (2, 60.0),
                      ("07-09", "C"): (2, 60.0), ("09-24", "A"): (10, 180.0),
                      ("09-24", "B"): (2, 450.0), ("09-24", "C"): (3, 300.0)}
    # the peak band's demand share is its share of departures: 20 of the day's 35
    assert bands["07-09"]["demand_share"] == pytest.approx(20 / 35)


def test_card_data_naming_the_route_is_that_routes_demand(lake: Path, tmp_path: Path) -> None:
    """Seoul's per-route bus layout (CARD_BUS_DAILY): a stop's boardings on route A count for
    A, not shared with B by departures; a line that matches no route (Z), or a route that does
    not serve the stop (C at S2), is shared among the stop's routes by departures as before."""
    cards = tmp_path / "CARD_BUS_DAILY_202405.csv"
    rows = [("A", "S2", 100), ("B", "S2", 40), ("A", "S3", 60), ("Z", "S3", 30),
            ("C", "S2", 10), ("A", "S5", 20)]
    cards.write_text(
        "\ufeff사용일자,노선번호,노선명,표준버스정류장ID,버스정류장ARS번호,역명,승차총승객수,"
        "하차총승객수,등록일자\n" + "".join(
            f"20240508,{line},{line}번(시험),{stop},0{stop[1:]},정류장 {stop},{b},{b // 2},"
            "20240511,\n" for line, stop, b in rows), encoding="utf-8")
    run = hub_json(lake, "ingest", "boardings", str(cards), "--feed-id", "t",
                   "--timezone", "Asia/Seoul")
    assert run["written"] == 6 and run["reconciles"]
    result = _run(lake)
    by_route = result["summary"]["demand"]["by_route"]
    assert (by_route["lines"], by_route["matched"], by_route["unmatched"]) == (4, 3, ["Z"])
    assert by_route["boardings_at_stops_the_route_does_not_serve"] == 10
    assert by_route["boardings_direct_per_day"] == pytest.approx(220)
    assert by_route["direct_share"] == pytest.approx(220 / 260)
    assert any("3 of 4 card-data lines matched" in n for n in result["notes"])
    # an independent split: weekday departures at S2 and S3 are A 17 + 9, B 4 (the feed)
    a_dep, b_dep = 17 + 9, 4
    rest = {"S2": 10.0, "S3": 30.0}
    expect_a = 180 + sum(r * a_dep / (a_dep + b_dep) for r in rest.values())
    expect_b = 40 + sum(r * b_dep / (a_dep + b_dep) for r in rest.values())
    totals = {r["route_id"]: r for r in _rows(lake, "reallocation", "route_id")}
    assert totals["A"]["demand_per_day"] == pytest.approx(expect_a)
    assert totals["B"]["demand_per_day"] == pytest.approx(expect_b)
    routes = _rows(lake, "routes", "route_id, direction")
    direct = Counter()
    board = Counter()
    for r in routes:
        direct[r["route_id"]] += r["boardings_direct_per_day"]
        board[r["route_id"]] += r["boardings_per_day"]
    assert (direct["A"], direct["B"], direct["C"]) == (pytest.approx(180), pytest.approx(40), 0)
    assert board["A"] == pytest.approx(expect_a) and board["B"] == pytest.approx(expect_b)
    assert sum(board.values()) == pytest.approx(260)  # every boarding counted once
    # catchment population stays beside it
    assert all(r["catchment_population"] is not None for r in routes)


def test_a_months_hourly_counts_are_spread_over_its_days(lake: Path, tmp_path: Path) -> None:
    """Seoul's per-route, per-stop hourly bus layout of a month (OA-12913): the month's total
    at a stop is 31 days of May; a day's own count of another stop is used as is."""
    hours = [f"{'00' if h == 0 else h}시{k}총승객수" for h in range(24) for k in ("승차", "하차")]
    header = ["사용년월", "노선번호", "노선명", "표준버스정류장ID", "버스정류장ARS번호", "역명",
              *hours, "교통수단타입코드", "교통수단타입명", "등록일자"]
    counts = [31 * (h % 3) if k == 0 else 0 for h in range(24) for k in (0, 1)]
    monthly = tmp_path / "bus-hourly-202405.csv"
    monthly.write_text(",".join(header) + "\n" + ",".join(
        ["202405", "A", "A번", "S4", "04", "정류장 S4", *map(str, counts), "11", "간선",
         "20240603"]) + "\n", encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(monthly), "--feed-id", "t",
             "--timezone", "Asia/Seoul")
    daily = tmp_path / "daily.csv"
    daily.write_text("stop_id,date,boardings\nS1,2024-05-08,70\n", encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(daily), "--feed-id", "t")
    out = _run(lake)["summary"]
    stops = {s["stop_id"]: s for s in _rows(lake, "stops", "stop_id")}
    assert stops["S4"]["boardings_per_day"] == pytest.approx(sum(counts) / 31)
    assert stops["S1"]["boardings_per_day"] == 70
    assert out["demand"]["boardings_per_day"] == pytest.approx(70 + sum(counts) / 31)
    assert out["demand"]["by_route"]["matched"] == 1


def test_line_names_match_gtfs_routes_by_normalised_names() -> None:
    from hubctl.pipelines.transit_demand import match_lines, route_keys

    assert route_keys("100번(하계동~용산구청)") == ["100번(하계동~용산구청)", "100번", "100"]
    assert route_keys(" 1호선 ") == ["1호선", "1"]
    assert route_keys("Ｎ１５") == ["n15"]  # full-width forms fold (NFKC)
    info = {
        "r100": {"route_id": "100100001", "short_name": "100", "name": "하계동-용산구청"},
        "r1": {"route_id": "L1", "short_name": None, "name": "1호선"},
        "r7a": {"route_id": "7a", "short_name": "7", "name": "A city"},
        "r7b": {"route_id": "7b", "short_name": "7", "name": "B city"},
        "r9a": {"route_id": "9a", "short_name": "9", "name": None},
        "r9b": {"route_id": "9b", "short_name": "9", "name": None},
    }
    lines = {"100": {"s1"}, "1호선": {"s2"}, "7": {"s3"}, "9": {"s4"}, "N62": {"s5"}}
    at = {"s3": {"r7b"}, "s4": {"r9a", "r9b"}}
    m = match_lines(lines, {"100": "100번(하계동~용산구청)"}, info, at)
    assert m.route_of == {"100": "r100", "1호선": "r1", "7": "r7b"}
    assert m.how == {"100": "short_name", "1호선": "long_name", "7": "short_name, at its stops"}
    assert m.unmatched == ["N62"] and m.ambiguous == {"9": ["9a", "9b"]}


def test_routes_with_their_own_hourly_card_data_use_their_own_hours(
        lake: Path, tmp_path: Path) -> None:
    """Hourly card data per route (the OA-12913 layout of a month): route A's passengers all
    board at 08 (band 07-09), B's at 10 (band 09-24); C has none and keeps the feed's profile
    (here: of the card data's hours, every boarding being at 08 or 10)."""
    hours = [f"{'00' if h == 0 else h}시{k}총승객수" for h in range(24) for k in ("승차", "하차")]
    header = ["사용년월", "노선번호", "노선명", "표준버스정류장ID", "버스정류장ARS번호", "역명",
              *hours]

    def row(line: str, stop: str, hour: int, n: int) -> str:
        counts = [n if (h, k) == (hour, 0) else 0 for h in range(24) for k in (0, 1)]
        return ",".join(["202405", line, f"{line}번", stop, stop[1:], stop, *map(str, counts)])

    cards = tmp_path / "bus-hourly-202405.csv"
    cards.write_text("\n".join([",".join(header), row("A", "S2", 8, 3100),
                                row("B", "S3", 10, 620)]) + "\n", encoding="utf-8")
    hub_json(lake, "ingest", "boardings", str(cards), "--feed-id", "t",
             "--timezone", "Asia/Seoul")
    out = _run(lake, "--param", "bands=00-07,07-09,09-24")["summary"]
    assert out["reallocation_bands"]["routes_with_own_hours"] == 2
    rows = {(r["band"], r["route_id"]): r["demand"]
            for r in _rows(lake, "reallocation_bands", "band, route")}
    totals = {r["route_id"]: r["demand_per_day"] for r in _rows(lake, "reallocation", "route")}
    assert rows[("07-09", "A")] == pytest.approx(totals["A"])
    assert rows[("09-24", "A")] == 0
    assert rows[("07-09", "B")] == 0
    assert rows[("09-24", "B")] == pytest.approx(totals["B"])
    # the band's share in the summary is the demand-weighted share over the routes
    bands = {b["band"]: b for b in out["reallocation_bands"]["bands"]}
    day = sum(totals.values())
    assert bands["07-09"]["demand_share"] == pytest.approx(
        (totals["A"] + totals.get("C", 0) * 3100 / 3720) / day)
