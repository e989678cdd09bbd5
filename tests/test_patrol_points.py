"""The patrol_points pipeline through the runner: coverage, plan, privacy, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hubctl.pipelines.geo import haversine_m
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

LON0, LAT0 = 128.60, 35.87  # Daegu
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * np.cos(np.radians(LAT0))
CLUSTERS = [(-1500.0, 800.0), (1200.0, -600.0), (300.0, 1800.0)]
EXISTING = [("P1", -1450.0, 750.0), ("P2", 1250.0, -650.0), ("P3", -4000.0, -4000.0),
            ("P4", 4200.0, 4100.0)]


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return LON0 + x / M_PER_DEG_LON, LAT0 + y / M_PER_DEG_LAT


def _calls(folder: Path, seed: int = 4) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, where = [], []
    for i in range(600):
        if i % 5 == 4:
            x, y = rng.uniform(-5000, 5000, 2)
        else:
            cx, cy = CLUSTERS[i % 3]
            x, y = cx + rng.normal(0, 180), cy + rng.normal(0, 180)
        lon, lat = _lonlat(x, y)
        hour = int(rng.integers(0, 24))
        rows.append([f"C{i:04d}", f"2024-05-{1 + i % 28:02d} {hour:02d}:{i % 60:02d}:00",
                     "폭력", f"{lat:.6f}", f"{lon:.6f}"])
        where.append((lon, lat))
    for j in range(3):  # calls without a position
        rows.append([f"N{j}", "2024-05-03 10:00:00", "절도", "", ""])
    path = folder / "calls.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["접수번호", "접수일시", "사건종별", "위도", "경도"])
        w.writerows(rows)
    return path, np.array(where)


def _points(folder: Path) -> Path:
    path = folder / "patrol.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "lat", "lon"])
        for pid, x, y in EXISTING:
            lon, lat = _lonlat(x, y)
            w.writerow([pid, f"거점 {pid}", f"{lat:.6f}", f"{lon:.6f}"])
    return path


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("city")
    calls, where = _calls(folder)
    lake = folder / "lake"
    assert hub_json(lake, "ingest", "calls", str(calls))["written"] == 603
    assert hub_json(lake, "ingest", "places", str(_points(folder)),
                    "--kind", "patrol-point")["written"] == 4
    return lake, where


def _run(lake: Path, *params: str) -> dict:
    args = ["run", "patrol_points", "--json"]
    for p in params:
        args += ["--param", p]
    return hub_json(lake, *args)


def test_plan_moves_far_points_to_hotspots_and_raises_coverage(
        city: tuple[Path, np.ndarray]) -> None:
    lake, where = city
    out = _run(lake, "k=4", "radius_m=500", "timezone=Asia/Seoul")
    s = out["summary"]
    assert s["calls"] == {"total": 603, "located": 600, "without_location": 3,
                          "outside_study_area": 0, "outside_bbox": 0}
    assert any("3 of 603 calls have no position" in n for n in out["notes"])
    # independent check of "before": haversine from every call to the existing points
    ex = np.array([_lonlat(x, y) for _, x, y in EXISTING])
    d = haversine_m(where[:, None, 0], where[:, None, 1], ex[None, :, 0], ex[None, :, 1])
    nearest = d.min(axis=1)
    assert abs(s["coverage"]["calls_before"] - int((nearest <= 500).sum())) <= 2
    assert s["distance_m"]["before"]["mean"] == pytest.approx(nearest.mean(), rel=0.01)
    assert s["distance_m"]["before"]["p90"] == pytest.approx(np.percentile(nearest, 90),
                                                             rel=0.01)
    assert s["coverage"]["after"] > s["coverage"]["before"]
    assert s["solver"]["method"] == "milp-optimal" and s["solver"]["gap"] == 0.0
    changes = s["changes"]
    assert changes["keep"] + changes["move"] + changes["remove"] == 4
    plan = hub_json(lake, "sql", "SELECT site, action FROM derived.patrol_points_points "
                    "ORDER BY site")
    actions = {r["site"].rsplit(":", 1)[-1]: r["action"] for r in plan}
    # the two far points leave; the ones at the clusters stay or move a little
    assert actions["P3"] in ("move", "remove") and actions["P4"] in ("move", "remove")
    added = [r for r in plan if r["action"] in ("add", "move-to")]
    assert len(added) == 4 - changes["keep"]
    assert all(r["site"].startswith("250m:") for r in added)
    bands = hub_json(lake, "sql", "SELECT band, calls, covered_after FROM "
                     "derived.patrol_points_coverage ORDER BY band")
    assert [b["band"] for b in bands] == ["00-06", "06-12", "12-18", "18-24", "all"]
    assert sum(b["calls"] for b in bands[:4]) == bands[4]["calls"] == 600


def test_hotspots_are_found_at_the_clusters(city: tuple[Path, np.ndarray]) -> None:
    lake, _ = city
    _run(lake, "k=4", "timezone=Asia/Seoul")
    hot = hub_json(lake, "sql", "SELECT lon, lat, gi_z FROM derived.patrol_points_hotspots "
                   "WHERE band = 'all' AND hotspot ORDER BY gi_z DESC LIMIT 3")
    centres = np.array([_lonlat(x, y) for x, y in CLUSTERS])
    for h in hot:
        dist = haversine_m(h["lon"], h["lat"], centres[:, 0], centres[:, 1]).min()
        assert dist < 500 and h["gi_z"] > 3


def test_outputs_hold_no_case_number_and_no_call_position(
        city: tuple[Path, np.ndarray]) -> None:
    lake, where = city
    _run(lake, "k=4")
    exact = {(round(lon, 6), round(lat, 6)) for lon, lat in where}
    for table in ("hotspots", "coverage", "points"):
        rows = hub_json(lake, "sql", f"SELECT * FROM derived.patrol_points_{table}")
        text = json.dumps(rows, ensure_ascii=False)
        assert "urn:ngsi-ld:Alert" not in text and "C0001" not in text
        for r in rows:
            if "lon" in r and r["lon"] is not None:
                assert (round(r["lon"], 6), round(r["lat"], 6)) not in exact


def test_runs_are_deterministic_and_asserts_gate(city: tuple[Path, np.ndarray]) -> None:
    lake, _ = city
    a = _run(lake, "k=5", "keep_existing=true")
    b = _run(lake, "k=5", "keep_existing=true")
    for s in (a["summary"], b["summary"]):
        s["solver"].pop("seconds")
    assert a["summary"] == b["summary"]
    assert a["summary"]["changes"]["keep"] == 4 and a["summary"]["changes"]["add"] == 1
    ok = hub(lake, "run", "patrol_points", "--param", "k=5", "--assert", "coverage.after>=0.1")
    assert ok.exit_code == 0, ok.output
    bad = hub(lake, "run", "patrol_points", "--param", "k=5", "--assert", "coverage.after>=0.99")
    assert bad.exit_code == 1 and "coverage.after" in bad.output


def test_bad_parameters_are_usage_errors(city: tuple[Path, np.ndarray]) -> None:
    lake, _ = city
    r = hub(lake, "run", "patrol_points", "--param", "k=2", "--param", "keep_existing=true")
    assert r.exit_code != 0 and "keep_existing holds 4 points" in r.output
    r = hub(lake, "run", "patrol_points", "--param", "timezone=Nowhere/Land")
    assert r.exit_code != 0 and "not a known time zone" in r.output
    r = hub(lake, "run", "patrol_points", "--param", "bands=00-12")
    assert r.exit_code != 0 and "in no band" in r.output


@needs_sample_data
def test_berkeley_sample_runs_end_to_end(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(SAMPLE_DATA / "calls" /
                                          "berkeley-pd-calls-for-service-2018.csv"))
    out = _run(lake, "k=8", "timezone=America/Los_Angeles")
    s = out["summary"]
    assert s["calls"]["without_location"] == 159 and s["calls"]["located"] == 3629
    assert s["candidates"]["existing"] == 0 and s["changes"]["add"] == 8
    assert 0 < s["coverage"]["after"] <= 1 and s["solver"]["method"] == "milp-optimal"


@needs_sample_data
def test_road_coverage_matches_networkx_on_the_west_oakland_graph(tmp_path: Path) -> None:
    import networkx as nx

    from hubctl.catalog import Catalog
    from hubctl.lake import Lake
    from hubctl.pipelines.roads import SEGMENT_SQL, build_graph

    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(SAMPLE_DATA / "osm" / "west-oakland.osm"))
    rng = np.random.default_rng(8)
    lat = rng.uniform(37.8057, 37.8095, 300)
    lon = rng.uniform(-122.3033, -122.2913, 300)
    path = tmp_path / "calls.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "lat", "lon"])
        w.writerows([f"c{i}", f"2024-01-01 {i % 24:02d}:00:00", f"{lat[i]:.6f}",
                     f"{lon[i]:.6f}"] for i in range(300))
    hub_json(lake, "ingest", "calls", str(path), "--map", "id=id", "--map", "t=dateIssued",
             "--map", "lat=lat", "--map", "lon=lon")
    out = _run(lake, "coverage=road", "travel_min=0.5", "cell_m=50", "k=3")
    s = out["summary"]
    assert s["limit"] == {"value": 30.0, "unit": "s"} and s["solver"]["method"] == "milp-optimal"
    sites = hub_json(lake, "sql", "SELECT lon, lat FROM derived.patrol_points_points "
                     "WHERE action IN ('add', 'keep', 'move-to')")
    con = Catalog(Lake(lake)).con
    graph = build_graph(con.sql(SEGMENT_SQL).to_arrow_table())
    g = nx.DiGraph()
    for a, b, secs in zip(graph.src.tolist(), graph.dst.tolist(), graph.seconds.tolist(),
                          strict=True):
        g.add_edge(a, b, weight=max(secs, 1e-3))
    site_nodes = graph.snap(np.array([r["lon"] for r in sites]),
                            np.array([r["lat"] for r in sites]))[0]
    times = nx.multi_source_dijkstra_path_length(g, set(site_nodes.tolist()))
    call_nodes = graph.snap(lon, lat)[0]
    reach = np.array([times.get(int(n), np.inf) for n in call_nodes])
    assert s["coverage"]["calls_after"] == int((reach <= 30.0).sum())
    assert s["time_s"]["after"]["mean"] == pytest.approx(reach[np.isfinite(reach)].mean(),
                                                         abs=0.06)


def test_demand_band_and_fdr(city: tuple[Path, np.ndarray]) -> None:
    lake, _ = city
    night = _run(lake, "k=4", "timezone=Asia/Seoul", "demand_band=00-06", "fdr=true")
    s = night["summary"]
    assert s["demand_band"] == "00-06" and 0 <= s["coverage_demand_band"]["after"] <= 1
    band = hub_json(lake, "sql", "SELECT share_after FROM derived.patrol_points_coverage "
                    "WHERE band = '00-06'")[0]
    assert band["share_after"] == s["coverage_demand_band"]["after"]
    r = hub(lake, "run", "patrol_points", "--param", "demand_band=dawn")
    assert r.exit_code != 0 and "not one of the bands" in r.output


def _write_calls(path: Path, points: list[tuple[float, float]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["접수번호", "접수일시", "사건종별", "위도", "경도"])
        for i, (x, y) in enumerate(points):
            lon, lat = _lonlat(x, y)
            w.writerow([f"T{i:05d}", f"2024-06-{1 + i % 28:02d} {i % 24:02d}:10:00", "폭력",
                        f"{lat:.7f}", f"{lon:.7f}"])
    return path


def test_study_area_hull_drops_empty_cells_and_a_polygon_drops_outside_calls(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    # calls fill a right triangle (x + y <= 6 km): half its bounding box can hold no call
    xy = rng.uniform(0, 6000, (3000, 2))
    xy = xy[xy.sum(axis=1) <= 6000][:1200]
    pts = [(float(x), float(y)) for x, y in xy] + [(500.0 + rng.normal(0, 60),
                                                    500.0 + rng.normal(0, 60))
                                                   for _ in range(150)]
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(_write_calls(tmp_path / "c.csv", pts)))
    bbox = _run(lake, "k=3", "study_area=bbox")["summary"]
    hull = _run(lake, "k=3", "study_area=hull")["summary"]
    assert bbox["grid"]["cells_in_study_area"] == bbox["grid"]["cells"]
    share = hull["grid"]["cells_in_study_area"] / hull["grid"]["cells"]
    assert 0.5 < share < 0.65  # the triangle and a one-cell rim
    assert hull["hotspots"]["all"] <= bbox["hotspots"]["all"]
    # the zeros outside the triangle inflate z: fewer cells are hot inside the hull
    assert hull["hotspots"]["all"] < bbox["hotspots"]["all"] or bbox["hotspots"]["all"] == 0
    # a GeoJSON polygon (the western half): calls east of it are left out, counted
    lon_mid, _ = _lonlat(3000.0, 0.0)
    lo, la = _lonlat(-100.0, -100.0)
    hi_lon, hi_lat = _lonlat(7000.0, 7000.0)
    ring = [[lo, la], [lon_mid, la], [lon_mid, hi_lat], [lo, hi_lat], [lo, la]]
    area = tmp_path / "west.geojson"
    area.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    west = _run(lake, "k=3", f"study_area={area}")["summary"]
    lons = np.array([_lonlat(x, y)[0] for x, y in pts])
    assert west["calls"]["outside_study_area"] == int((np.round(lons, 7) > lon_mid).sum())
    bad = hub(lake, "run", "patrol_points", "--param", f"study_area={tmp_path / 'nope.json'}")
    assert bad.exit_code == 2 and "study_area" in bad.output


def test_candidates_always_allow_k_sites(tmp_path: Path) -> None:
    """Calls spread evenly over a small area: no cell is a significant hotspot, yet k sites
    open, drawn from the busiest cells, and cover nearly every call."""
    rng = np.random.default_rng(5)
    pts = [(float(x), float(y)) for x, y in rng.uniform(0, 700, (300, 2))]
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(_write_calls(tmp_path / "c.csv", pts)))
    out = _run(lake, "k=6", "radius_m=200")
    s = out["summary"]
    cand = s["candidates"]
    assert cand["hotspot_cells"] < 6  # too few hotspots for k sites on their own
    assert cand["hotspot_cells"] + cand["busy_cells"] == 6 and s["changes"]["add"] == 6
    assert s["solver"]["opened"] == 6 and s["coverage"]["after"] > s["coverage"]["before"] == 0
    assert any("added as candidates" in n for n in out["notes"])
    rows = hub_json(lake, "sql", "SELECT source, count(*) AS n FROM "
                    "derived.patrol_points_candidates GROUP BY source ORDER BY source")
    assert {r["source"]: r["n"] for r in rows}.get("busy-cell") == cand["busy_cells"]


@needs_sample_data
def test_model_is_exact_per_call_and_equals_an_independent_milp(tmp_path: Path) -> None:
    """Berkeley 2018, k = 20, 300 m, study_area=bbox: the solver's covered calls equal the
    calls covered after, and equal the optimum of an independent per-call MILP (no merging,
    one row per call) over the same candidate sites."""
    from scipy.optimize import LinearConstraint, milp
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    from hubctl.pipelines.geo import projection_for

    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(SAMPLE_DATA / "calls" /
                                          "berkeley-pd-calls-for-service-2018.csv"))
    out = _run(lake, "k=20", "radius_m=300", "study_area=bbox",
               "timezone=America/Los_Angeles")
    s = out["summary"]
    assert s["solver"]["model_covered"] == s["coverage"]["calls_after"]
    calls = hub_json(lake, "sql", "SELECT lon, lat FROM Alert_latest WHERE lon IS NOT NULL "
                     "AND category = 'security'")
    sites = hub_json(lake, "sql", "SELECT lon, lat FROM derived.patrol_points_candidates")
    clon = np.array([c["lon"] for c in calls])
    clat = np.array([c["lat"] for c in calls])
    proj = projection_for(clon, clat)
    cx, cy = proj.to_xy(clon, clat)
    sx, sy = proj.to_xy(np.array([r["lon"] for r in sites]), np.array([r["lat"] for r in sites]))
    pairs = cKDTree(np.column_stack([cx, cy])).sparse_distance_matrix(
        cKDTree(np.column_stack([sx, sy])), 300.0, output_type="ndarray")
    n, m = len(cx), len(sx)
    a = csr_matrix((np.ones(len(pairs)), (pairs["i"], pairs["j"])), shape=(n, m))
    # variables: m sites (binary), then n calls (covered, 0..1); maximise covered calls
    from scipy.sparse import hstack, identity
    cover = hstack([-a, identity(n)]).tocsr()
    budget = csr_matrix(np.concatenate([np.ones(m), np.zeros(n)]))
    res = milp(c=np.concatenate([np.zeros(m), -np.ones(n)]),
               constraints=[LinearConstraint(cover, -np.inf, 0),
                            LinearConstraint(budget, 20, 20)],
               integrality=np.concatenate([np.ones(m), np.zeros(n)]),
               bounds=(0, 1), options={"time_limit": 120})
    assert res.status == 0
    optimum = round(-res.fun)
    if s["solver"]["method"] == "milp-optimal":
        assert s["coverage"]["calls_after"] == optimum
    else:
        assert optimum * (1 - s["solver"]["gap"]) - 1e-6 <= s["coverage"]["calls_after"] <= optimum


def test_bbox_keeps_one_city_and_far_points_are_warned_about(tmp_path: Path) -> None:
    """Two cities in one lake: Daegu's calls and points plus Berkeley's. Without bbox the
    Berkeley points lie ~9,800 km outside the calls' extent (a warning that names the bbox to
    give); with bbox= Daegu's extent they and the Berkeley calls are left out and counted."""
    calls, where = _calls(tmp_path)
    far_calls = tmp_path / "berkeley-calls.csv"
    far_calls.write_text("접수번호,접수일시,사건종별,위도,경도\n"
                         "B1,2024-05-02 10:00:00,폭력,37.8700,-122.2700\n"
                         "B2,2024-05-02 11:00:00,폭력,37.8650,-122.2600\n", encoding="utf-8")
    points = _points(tmp_path)
    far_points = tmp_path / "berkeley-points.csv"
    far_points.write_text("id,name,lat,lon\nBK1,Berkeley 1,37.8716,-122.2727\n"
                          "BK2,Berkeley 2,37.8590,-122.2850\n", encoding="utf-8")
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(calls))
    hub_json(lake, "ingest", "places", str(points), str(far_points), "--kind", "patrol-point")
    w, s = np.floor(where.min(axis=0) * 100) / 100
    e, n = np.ceil(where.max(axis=0) * 100) / 100
    box = f"{w:.2f},{s:.2f},{e:.2f},{n:.2f}"
    # the other city's points: a warning on stderr and in the notes naming the bbox to give
    everything = hub(lake, "run", "patrol_points", "--param", "k=4")
    assert everything.exit_code == 0, everything.output
    assert "2 of 6 existing points lie more than 5 km outside the calls' extent (farthest: " \
        "Berkeley" in everything.output
    assert f"--param bbox={box}" in everything.output
    assert _run(lake, "k=4")["summary"]["candidates"]["existing_far_from_calls"] == 2
    # calls of both cities do not fit one grid: the message says how to restrict them
    hub_json(lake, "ingest", "calls", str(far_calls))
    both = hub(lake, "run", "patrol_points", "--param", "k=4")
    assert both.exit_code == 2 and "--param bbox=minlon,minlat,maxlon,maxlat" in both.output
    out = _run(lake, "k=4", f"bbox={box}")
    summary = out["summary"]
    assert summary["calls"]["outside_bbox"] == 2 and summary["calls"]["located"] == 602
    assert summary["candidates"]["existing"] == 4
    assert summary["candidates"]["existing_outside_bbox"] == 2
    assert summary["candidates"]["existing_far_from_calls"] == 0
    assert not any("outside the calls' extent" in note for note in out["notes"])
    # the same answer as a lake that never held Berkeley
    alone = tmp_path / "alone"
    hub_json(alone, "ingest", "calls", str(calls))
    hub_json(alone, "ingest", "places", str(points), "--kind", "patrol-point")
    ref = _run(alone, "k=4")["summary"]
    assert summary["coverage"] == ref["coverage"]
    assert summary["distance_m"] == ref["distance_m"]
    for bad in ("1,2,3", "127,37,126,38", "a,b,c,d"):
        result = hub(lake, "run", "patrol_points", "--param", f"bbox={bad}")
        assert result.exit_code == 2 and "minlon,minlat,maxlon,maxlat" in result.output
