"""The road graph: travel times by class and band, one-way edges, parallel edges, snapping,
multi-source times equal to networkx on the same graph, and the West Oakland extract."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hubctl.catalog import Catalog
from hubctl.errors import UsageError
from hubctl.lake import Lake
from hubctl.pipelines.roads import (
    CLASS_SPEEDS,
    SEGMENT_SQL,
    band_of_hour,
    build_graph,
    cover_within,
    parse_bands,
    parse_class_speeds,
)
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub_json


def seg_table(rows: list[tuple[int, int, float, str, float | None, bool]],
              coords: dict[int, tuple[float, float]]) -> pa.Table:
    """Segment rows as SEGMENT_SQL returns them: (start, end, metres, class, maxspeed, oneway)."""
    return pa.table({
        "startNode": [r[0] for r in rows], "endNode": [r[1] for r in rows],
        "start_lon": [coords[r[0]][0] for r in rows], "start_lat": [coords[r[0]][1] for r in rows],
        "end_lon": [coords[r[1]][0] for r in rows], "end_lat": [coords[r[1]][1] for r in rows],
        "length": [r[2] for r in rows], "highway": [r[3] for r in rows],
        "maximumAllowedSpeed": pa.array([r[4] for r in rows], pa.float64()),
        "oneway": [r[5] for r in rows]})


COORDS = {10: (0.0, 0.0), 20: (0.001, 0.0), 30: (0.002, 0.0), 40: (0.002, 0.001)}


def test_bands_must_tile_the_day() -> None:
    bands = parse_bands(["12-24:0.5", "00-12:1"])
    assert [b.name for b in bands] == ["00-12", "12-24"]
    assert band_of_hour(bands).tolist() == [0] * 12 + [1] * 12
    with pytest.raises(UsageError, match="cover hours 0-24 exactly once"):
        parse_bands(["00-12:1", "11-24:1"])
    with pytest.raises(UsageError, match="is not HH-HH:factor"):
        parse_bands(["morning"])
    with pytest.raises(UsageError, match="factor in"):
        parse_bands(["00-24:0"])


def test_class_speed_overrides() -> None:
    speeds = parse_class_speeds(["residential:25", "custom:12.5"])
    assert speeds["residential"] == 25 and speeds["custom"] == 12.5
    assert speeds["primary"] == CLASS_SPEEDS["primary"]
    with pytest.raises(UsageError, match="class:km/h"):
        parse_class_speeds(["residential=25"])


def test_edges_oneway_parallel_and_speeds() -> None:
    rows = [(10, 20, 100.0, "residential", None, False),   # 30 km/h: 12 s each way
            (20, 30, 100.0, "primary", 36.0, True),         # posted 36 km/h: 10 s, one way
            (20, 30, 100.0, "service", None, False),        # 20 km/h: 18 s; 20->30 keeps 10 s
            (30, 30, 5.0, "service", None, False),          # self loop: dropped
            (30, 40, 0.0, "residential", None, False)]      # zero length: still an edge
    g = build_graph(seg_table(rows, COORDS))
    assert g.node_osm.tolist() == [10, 20, 30, 40]
    edges = {(int(g.node_osm[s]), int(g.node_osm[d])): t
             for s, d, t in zip(g.src, g.dst, g.seconds, strict=True)}
    assert edges[(10, 20)] == pytest.approx(12.0) and edges[(20, 10)] == pytest.approx(12.0)
    assert edges[(20, 30)] == pytest.approx(10.0) and edges[(30, 20)] == pytest.approx(18.0)
    assert (30, 30) not in edges and (30, 40) in edges and len(edges) == 6
    t, origin = g.times_from(np.array([0]), factor=0.5)  # half speed: twice the time
    assert t[:3].tolist() == pytest.approx([0.0, 24.0, 44.0])
    assert origin.tolist() == [0, 0, 0, 0]
    slow = build_graph(seg_table(rows, COORDS), use_maxspeed=False)
    assert slow.times_from(np.array([0]))[0][2] == pytest.approx(12 + 6)  # primary: 60 km/h
    assert g.reachable(np.array([2]), 17.0).tolist() == [False, False, True, True]
    node, metres = g.snap(np.array([0.0011]), np.array([0.0001]))
    assert node.tolist() == [1] and metres[0] == pytest.approx(15.7, abs=0.5)


def test_multi_source_times_equal_networkx_on_a_random_graph() -> None:
    rng = np.random.default_rng(3)
    n = 300
    coords = {i: (float(rng.uniform(0, 0.05)), float(rng.uniform(0, 0.05))) for i in range(n)}
    rows = []
    for _ in range(900):
        a, b = (int(v) for v in rng.integers(0, n, 2))
        cls = str(rng.choice(["primary", "residential", "service", "unknown-class"]))
        posted = float(rng.choice([30, 50])) if rng.random() < 0.3 else None
        rows.append((a, b, float(rng.uniform(10, 800)), cls, posted, bool(rng.random() < 0.3)))
    g = build_graph(seg_table(rows, coords))
    sources = np.array([3, 77, 150])
    for factor in (1.0, 0.55):
        mine, _ = g.times_from(sources, factor)
        ref = _networkx_times(rows, [int(g.node_osm[s]) for s in sources], factor)
        for i, osm in enumerate(g.node_osm.tolist()):
            if osm in ref:
                assert mine[i] == pytest.approx(ref[osm], rel=1e-9, abs=1e-6)
            else:
                assert np.isinf(mine[i])


def _networkx_times(rows: list[tuple[int, int, float, str, float | None, bool]],
                    sources: list[int], factor: float) -> dict[int, float]:
    """Independent: a networkx MultiDiGraph of the same segments and speeds."""
    graph = nx.MultiDiGraph()
    for a, b, metres, cls, posted, oneway in rows:
        kmh = posted if posted else CLASS_SPEEDS.get(cls, 25.0)
        secs = max(metres / (kmh * factor / 3.6), 1e-3)
        if a == b:
            continue
        graph.add_edge(a, b, weight=secs)
        if not oneway:
            graph.add_edge(b, a, weight=secs)
    return dict(nx.multi_source_dijkstra_path_length(graph, set(sources)))


def test_cover_matrix_matches_pairwise_times() -> None:
    rng = np.random.default_rng(5)
    coords = {i: (float(rng.uniform(0, 0.03)), float(rng.uniform(0, 0.03))) for i in range(120)}
    rows = [(int(a), int(b), float(rng.uniform(50, 500)), "residential", None,
             bool(rng.random() < 0.2)) for a, b in rng.integers(0, 120, (360, 2))]
    g = build_graph(seg_table(rows, coords))
    sites = np.array([0, 5, 17, 40, 99])
    demand = np.arange(g.n_nodes)
    budget = rng.uniform(30, 200, g.n_nodes)
    cover = cover_within(g, sites, demand, budget, chunk=2).toarray()
    for j, s in enumerate(sites):
        t, _ = g.times_from(np.array([s]))
        assert (cover[:, j] == (t <= budget)).all()


def _lake_graph(tmp_path: Path) -> tuple[Path, Catalog]:
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(SAMPLE_DATA / "osm" / "west-oakland.osm"))
    return lake, Catalog(Lake(lake))


@needs_sample_data
def test_west_oakland_is_one_connected_road_graph(tmp_path: Path) -> None:
    """The largest weakly connected component holds the network; the rest are two single ways
    (an alley and a piece of Chase Street) that share no node with any other road of the
    clipped extract."""
    _, cat = _lake_graph(tmp_path)
    segs = cat.con.sql(SEGMENT_SQL).to_arrow_table()
    g = build_graph(segs)
    sizes = np.bincount(g.weak_components).tolist()
    assert g.n_nodes == 40 and sizes == [36, 2, 2]
    lengths = sum(g.length_m[g.weak_components[g.src] == 0])
    assert lengths / g.length_m.sum() > 0.98  # by road length it is nearly all of it
    rest = {int(o) for o in g.node_osm[g.weak_components > 0]}
    pieces = segs.filter(pc.is_in(segs["startNode"], pa.array(sorted(rest))))
    assert sorted(pieces["length"].to_pylist()) == [23.835, 81.003]
    # edge lengths: each edge's metres are its segment's, at least the straight line between
    # its end nodes (haversine, computed independently here)
    lon, lat = np.radians(g.lon), np.radians(g.lat)
    a = (np.sin((lat[g.dst] - lat[g.src]) / 2) ** 2 + np.cos(lat[g.src]) * np.cos(lat[g.dst])
         * np.sin((lon[g.dst] - lon[g.src]) / 2) ** 2)
    chord = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
    assert (g.length_m >= chord - 1e-3).all()
    by_pair: dict[tuple[int, int], set[float]] = {}
    for r in segs.to_pylist():
        by_pair.setdefault((r["startNode"], r["endNode"]), set()).add(r["length"])
        if not r["oneway"]:
            by_pair.setdefault((r["endNode"], r["startNode"]), set()).add(r["length"])
    for s, d, metres in zip(g.src, g.dst, g.length_m, strict=True):
        assert metres == min(by_pair[(int(g.node_osm[s]), int(g.node_osm[d]))])
    summary = g.summary()
    assert summary["weak_components"] == 3 and summary["largest_weak_share"] == 0.9


@needs_sample_data
def test_west_oakland_times_equal_networkx(tmp_path: Path) -> None:
    _, cat = _lake_graph(tmp_path)
    segs = cat.con.sql(SEGMENT_SQL).to_arrow_table()
    g = build_graph(segs)
    rows = [(r["startNode"], r["endNode"], r["length"], r["highway"],
             r["maximumAllowedSpeed"], r["oneway"]) for r in segs.to_pylist()]
    for sources in ([0], [3, 20]):
        for factor in (1.0, 0.6):
            mine, _ = g.times_from(np.array(sources), factor)
            ref = _networkx_times(rows, [int(g.node_osm[s]) for s in sources], factor)
            got = {int(o): float(t) for o, t in zip(g.node_osm, mine, strict=True)
                   if np.isfinite(t)}
            assert got.keys() == ref.keys()
            assert all(got[k] == pytest.approx(ref[k], rel=1e-9) for k in ref)


def test_graph_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(9)
    coords = {i: (float(rng.uniform(0, 0.02)), float(rng.uniform(0, 0.02))) for i in range(80)}
    rows = [(int(a), int(b), float(rng.choice([100.0, 200.0])), "residential", None,
             bool(rng.random() < 0.3)) for a, b in rng.integers(0, 80, (240, 2))]
    table = seg_table(rows, coords)
    shuffled = table.take(pa.array(rng.permutation(table.num_rows)))
    a, b = build_graph(table), build_graph(shuffled)
    assert (a.src == b.src).all() and (a.dst == b.dst).all() and (a.seconds == b.seconds).all()
    sources = np.array([1, 2, 40])
    ta, oa = a.times_from(sources)
    tb, ob = b.times_from(sources)
    assert (ta == tb).all() and (oa == ob).all()
