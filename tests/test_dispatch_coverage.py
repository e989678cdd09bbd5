"""dispatch_coverage end to end through the CLI: coverage per band equals an independent
networkx computation, the what-if equals brute force, calls without location are counted,
outputs publish only aggregates, and bad parameters give clear errors."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

from hubctl.pipelines.roads import CLASS_SPEEDS, parse_bands
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json
from tests.test_osm import write_osm

SIDE = 6
LON0, LAT0 = 127.0, 36.0
BANDS = ["00-06:1.0", "06-12:0.7", "12-18:0.5", "18-24:0.8"]


def node_id(i: int, j: int) -> int:
    return 1 + i * SIDE + j


def grid_osm(path: Path) -> Path:
    """A 6 x 6 street grid (0.001 degree blocks) with one-way streets and speed limits."""
    nodes = {node_id(i, j): (LON0 + j * 0.001, LAT0 + i * 0.001)
             for i in range(SIDE) for j in range(SIDE)}
    ways: list[Any] = []
    for i in range(SIDE):
        tags = {"highway": "primary" if i == 0 else "residential", "name": f"Row {i}"}
        if i == 2:
            tags["oneway"] = "yes"
        if i == 4:
            tags["oneway"] = "-1"
        ways.append((100 + i, [node_id(i, j) for j in range(SIDE)], tags))
    for j in range(SIDE):
        tags = {"highway": "secondary" if j == 0 else "residential", "name": f"Col {j}"}
        if j == 0:
            tags["maxspeed"] = "20 mph"
        if j == 3:
            tags["oneway"] = "yes"
        ways.append((200 + j, [node_id(i, j) for i in range(SIDE)], tags))
    return write_osm(path, nodes, ways)


def entities(path: Path, seed: int = 11) -> list[dict[str, Any]]:
    """Calls (150 located, 10 without location, 2 far off the network, 5 weather alerts) and
    stations, as NGSI-LD keyValues lines; returns the located security calls."""
    rng = np.random.default_rng(seed)
    lines, located = [], []
    for n in range(167):
        i, j = (int(v) for v in rng.integers(0, SIDE, 2))
        hour, day = int(rng.integers(0, 24)), int(rng.integers(1, 28))
        e: dict[str, Any] = {"id": f"urn:ngsi-ld:Alert:case-{n:04d}", "type": "Alert",
                             "category": "weather" if n >= 162 else "security",
                             "subCategory": "assault",
                             "dateIssued": f"2026-03-{day:02d}T{hour:02d}:{n % 60:02d}:00Z"}
        lon = LON0 + j * 0.001 + float(rng.uniform(-5e-5, 5e-5))
        lat = LAT0 + i * 0.001 + float(rng.uniform(-5e-5, 5e-5))
        if 150 <= n < 160:
            pass  # no location
        elif n in (160, 161):
            e["location"] = {"type": "Point", "coordinates": [LON0 + 1, LAT0]}
        else:
            e["location"] = {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}
            if n < 150:
                located.append({"lon": round(lon, 7), "lat": round(lat, 7), "hour": hour,
                                "node": node_id(i, j), "id": e["id"]})
        lines.append(e)
    for sid, kind, (i, j) in (("fs-a", "fire-station", (1, 1)), ("fs-b", "fire-station", (4, 4)),
                              ("pol-1", "police-station", (0, 5))):
        lines.append({"id": f"urn:ngsi-ld:PointOfInterest:{sid}", "type": "PointOfInterest",
                      "name": sid, "category": [kind], "location": {
                          "type": "Point", "coordinates": [LON0 + j * 0.001 + 2e-5,
                                                           LAT0 + i * 0.001]}})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return located


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("city")
    lake = folder / "lake"
    hub_json(lake, "ingest", "osm", str(grid_osm(folder / "grid.osm")))
    calls = entities(folder / "calls.jsonl")
    hub_json(lake, "ingest", "ngsi-ld", str(folder / "calls.jsonl"))
    return lake, calls


def run(lake: Path, *params: str) -> dict[str, Any]:
    args = [a for p in params for a in ("--param", p)]
    out = hub_json(lake, "run", "dispatch_coverage", *args)
    assert out["status"] == "ok"
    return out


BASE = ("target_minutes=0.5", "bands=" + ",".join(BANDS), "candidate_spacing_m=50",
        "min_cell_calls=3", "cell_size_m=200")


def reference_graph(lake: Path) -> nx.MultiDiGraph:
    """Independent: the segments as a networkx graph with free-flow seconds."""
    rows = hub_json(lake, "sql", "SELECT startNode, endNode, length, highway, "
                    "maximumAllowedSpeed, category FROM RoadSegment")
    g = nx.MultiDiGraph()
    for r in rows:
        kmh = r["maximumAllowedSpeed"] or CLASS_SPEEDS[r["highway"]]
        secs = r["length"] / (kmh / 3.6)
        g.add_edge(r["startNode"], r["endNode"], weight=secs)
        if "oneway" not in r["category"]:
            g.add_edge(r["endNode"], r["startNode"], weight=secs)
    return g


def band_times(g: nx.MultiDiGraph, stations: set[int], factor: float) -> dict[int, float]:
    times = nx.multi_source_dijkstra_path_length(g, stations)
    return {n: t / factor for n, t in times.items()}


def covered_counts(g: nx.MultiDiGraph, stations: set[int],
                   calls: list[dict[str, Any]], target: float) -> tuple[list[int], list[int]]:
    """Calls covered and nodes covered per band."""
    bands = parse_bands(BANDS)
    calls_ok, nodes_ok = [], []
    for b in bands:
        t = band_times(g, stations, b.factor)
        mine = [c for c in calls if b.start <= c["hour"] < b.end]
        calls_ok.append(sum(t.get(c["node"], math.inf) <= target for c in mine))
        nodes_ok.append(sum(v <= target for v in t.values()))
    return calls_ok, nodes_ok


def test_coverage_per_band_equals_networkx(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    out = run(lake, *BASE, "whatif=none")
    s = out["summary"]
    assert s["calls"] == {"total": 162, "without_location": 10, "off_network": 2,
                          "outside_study_area": 0, "used": 150}
    assert any("10 call(s) without a location were left out" in n for n in out["notes"])
    assert s["stations"]["used"] == 2 and s["graph"]["nodes"] == SIDE * SIDE
    g = reference_graph(lake)
    calls_ok, nodes_ok = covered_counts(g, {node_id(1, 1), node_id(4, 4)}, calls, 30.0)
    assert [b["calls_covered"] for b in s["bands"]] == calls_ok
    rows = hub_json(lake, "sql", "SELECT band, nodes_covered, calls FROM "
                    "derived.dispatch_coverage_bands ORDER BY start_hour")
    assert [r["nodes_covered"] for r in rows] == nodes_ok
    assert sum(r["calls"] for r in rows) == 150
    assert 0 < s["coverage"]["calls"] < 1
    assert s["coverage"]["calls"] == round(sum(calls_ok) / 150, 4)
    # slower bands never cover more
    assert nodes_ok[2] <= nodes_ok[1] <= nodes_ok[0]


def test_kind_selects_the_stations(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    s = run(lake, *BASE, "whatif=none", "kind=police-station")["summary"]
    calls_ok, _ = covered_counts(reference_graph(lake), {node_id(0, 5)}, calls, 30.0)
    assert s["stations"]["used"] == 1
    assert [b["calls_covered"] for b in s["bands"]] == calls_ok


def test_adding_a_station_equals_brute_force(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    s = run(lake, *BASE, "whatif=add", "k=1")["summary"]["whatif"]
    g = reference_graph(lake)
    existing = {node_id(1, 1), node_id(4, 4)}
    best = max(sum(covered_counts(g, existing | {v}, calls, 30.0)[0]) for v in g.nodes)
    assert s["after"] == round(best / 150, 4) and s["gap"] == 0.0
    assert s["before"] <= s["after"] and s["added"] == 1 and s["removed"] == 0
    sites = hub_json(lake, "sql", "SELECT site, action FROM derived.dispatch_coverage_whatif "
                     "ORDER BY site")
    assert [r["action"] for r in sites].count("keep") == 2


def test_relocating_equals_brute_force(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    s = run(lake, *BASE, "whatif=relocate")["summary"]["whatif"]
    g = reference_graph(lake)
    best = max(sum(covered_counts(g, {a, b}, calls, 30.0)[0])
               for a, b in itertools.combinations(sorted(g.nodes), 2))
    assert s["after"] == round(best / 150, 4) and s["k"] == 2
    assert s["after"] >= s["before"] and s["added"] == s["removed"]


def test_outputs_hold_aggregates_only(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    out = run(lake, *BASE, "k=1")
    text = json.dumps(out)
    for name in ("bands", "cells", "stations", "whatif"):
        text += json.dumps(hub_json(lake, "sql", f"SELECT * FROM derived.dispatch_coverage_{name}"))
    for c in calls:
        assert c["id"] not in text and c["id"].rsplit(":", 1)[1] not in text
        assert str(c["lon"]) not in text and str(c["lat"]) not in text
    cells = hub_json(lake, "sql", "SELECT cell, band, calls, out_of_reach FROM "
                     "derived.dispatch_coverage_cells WHERE band = 'all' ORDER BY rank")
    assert all(r["calls"] >= 3 for r in cells)
    assert [r["rank"] for r in hub_json(lake, "sql", "SELECT rank FROM derived."
            "dispatch_coverage_cells WHERE band = 'all' ORDER BY rank")] == list(
        range(1, len(cells) + 1))
    assert hub_json(lake, "sql", "SELECT min(calls) AS m FROM derived.dispatch_coverage_cells"
                    )[0]["m"] >= 3
    centres = hub_json(lake, "sql", "SELECT DISTINCT cell, centre_lon, centre_lat FROM "
                       "derived.dispatch_coverage_cells")
    assert all(abs(r["centre_lon"] - LON0 - 0.0025) < 0.005 for r in centres)
    assert all(abs(r["centre_lat"] - LAT0 - 0.0025) < 0.005 for r in centres)
    assert len({r["cell"] for r in centres}) == len(centres)
    assert sum(r["calls"] for r in cells) <= 150
    assert [r["out_of_reach"] for r in cells] == sorted((r["out_of_reach"] for r in cells),
                                                        reverse=True)


def test_runs_are_deterministic(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, _ = city
    a, b = run(lake, *BASE, "k=2")["summary"], run(lake, *BASE, "k=2")["summary"]
    a.pop("seconds"), b.pop("seconds")
    for x in (a, b):
        for key in ("solver_seconds", "matrix_seconds", "solver_time_limit"):
            x["whatif"].pop(key)
    assert a == b


def test_band_hours_use_the_time_zone(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, calls = city
    s = run(lake, *BASE, "whatif=none", "timezone=Asia/Seoul")["summary"]
    per_band = [b["calls"] for b in s["bands"]]
    local = [(c["hour"] + 9) % 24 for c in calls]
    assert per_band == [sum(b.start <= h < b.end for h in local) for b in parse_bands(BANDS)]


def test_assert_and_bad_params(city: tuple[Path, list[dict[str, Any]]]) -> None:
    lake, _ = city
    failed = hub(lake, "run", "dispatch_coverage", "--param", "whatif=none",
                 "--assert", "coverage.calls >= 2")
    assert failed.exit_code == 1 and "coverage.calls" in failed.output
    bad = hub(lake, "run", "dispatch_coverage", "--param", "bands=00-12:1,13-24:1")
    assert bad.exit_code == 2 and "cover hours 0-24" in bad.output
    tz = hub(lake, "run", "dispatch_coverage", "--param", "timezone=Mars/Olympus")
    assert tz.exit_code == 2 and "not a known time zone" in tz.output
    kind = hub(lake, "run", "dispatch_coverage", "--param", "kind=castle")
    assert kind.exit_code == 2 and "fire-station" in kind.output


def test_no_roads_says_what_to_ingest(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    entities(tmp_path / "calls.jsonl")
    hub_json(lake, "ingest", "ngsi-ld", str(tmp_path / "calls.jsonl"))
    result = hub(lake, "run", "dispatch_coverage")
    assert result.exit_code != 0 and "RoadSegment" in result.output


@needs_sample_data
def test_west_oakland_coverage_equals_networkx(tmp_path: Path) -> None:
    """Real roads: calls on the nodes of the largest strongly connected component (found here
    with networkx), two stations; calls covered per band equal networkx's times."""
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(SAMPLE_DATA / "osm" / "west-oakland.osm"))
    g = reference_graph(lake)
    core = sorted(max(nx.strongly_connected_components(g), key=len))
    points = {r["n"]: json.loads(r["p"])["coordinates"] for r in hub_json(
        lake, "sql", "SELECT startNode AS n, startPoint AS p FROM RoadSegment UNION "
                     "SELECT endNode, endPoint FROM RoadSegment")}
    rng = np.random.default_rng(4)
    calls, lines = [], []
    for n in range(120):
        node = core[int(rng.integers(0, len(core)))]
        hour = int(rng.integers(0, 24))
        lon, lat = points[node]
        calls.append({"node": node, "hour": hour})
        lines.append({"id": f"urn:ngsi-ld:Alert:wo-{n}", "type": "Alert", "category": "security",
                      "dateIssued": f"2026-01-05T{hour:02d}:00:00Z",
                      "location": {"type": "Point", "coordinates": [lon, lat]}})
    stations = core[0], core[len(core) // 2]
    for i, node in enumerate(stations):
        lines.append({"id": f"urn:ngsi-ld:PointOfInterest:wo-fs{i}", "type": "PointOfInterest",
                      "name": f"fs{i}", "category": ["fire-station"],
                      "location": {"type": "Point", "coordinates": points[node]}})
    path = tmp_path / "wo.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    hub_json(lake, "ingest", "ngsi-ld", str(path))
    s = run(lake, "target_minutes=0.75", "bands=" + ",".join(BANDS), "whatif=none")["summary"]
    expected, _ = covered_counts(g, set(stations), calls, 45.0)
    assert s["calls"]["used"] == 120
    assert [b["calls_covered"] for b in s["bands"]] == expected
    assert 0 < sum(expected) < 120


def test_study_area_polygon_leaves_out_the_calls_outside(
        city: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    """A GeoJSON polygon over the western half of the grid: the calls east of it are left
    out and counted; bbox and hull keep every located call."""
    lake, calls = city
    mid = LON0 + 0.0025
    ring = [[LON0 - 0.01, LAT0 - 0.01], [mid, LAT0 - 0.01], [mid, LAT0 + 0.01],
            [LON0 - 0.01, LAT0 + 0.01], [LON0 - 0.01, LAT0 - 0.01]]
    area = tmp_path / "west.geojson"
    area.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    whole = run(lake, *BASE)["summary"]["calls"]
    west = run(lake, *BASE, f"study_area={area}")["summary"]["calls"]
    east = sum(1 for c in calls if c["lon"] > mid)
    assert whole["outside_study_area"] == 0 and whole["used"] == len(calls)
    assert west["outside_study_area"] == east + 2  # and the two calls far off the network
    assert west["used"] == len(calls) - east
    cells = hub_json(lake, "sql", "SELECT centre_lon FROM derived.dispatch_coverage_cells")
    assert cells and all(c["centre_lon"] <= mid + 0.002 for c in cells)


def test_a_run_that_measured_nothing_is_empty_not_ok(
        city: tuple[Path, list[dict[str, Any]]]) -> None:
    """No call of the category: the run is recorded as empty and exits 1, with its JSON."""
    lake, _ = city
    r = hub(lake, "run", "dispatch_coverage", "--json", *[a for p in (*BASE, "category=fire")
                                                          for a in ("--param", p)])
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["status"] == "empty" and "analysed nothing" in out["error"]
    assert out["summary"]["calls"]["used"] == 0
    runs = hub_json(lake, "sql", "SELECT status FROM _pipeline_runs WHERE pipeline = "
                    "'dispatch_coverage' ORDER BY finished_at DESC LIMIT 1")
    assert runs == [{"status": "empty"}]
