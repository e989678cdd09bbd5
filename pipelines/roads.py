"""A routable road graph from ``RoadSegment`` rows, with travel times by highway class and a
time-of-day speed profile, snapping, and multi-source shortest travel times.

- Nodes are the segments' OSM end nodes, indexed 0..n-1 (``node_osm`` keeps the OSM id);
  coordinates come from the segments' start and end points, projected to metres with
  :mod:`pipelines.geo` for snapping (``scipy.spatial.cKDTree``).
- Each segment is one directed edge (start -> end) and, unless its ``category`` holds
  ``oneway``, a second edge (end -> start). Parallel edges keep the fastest; self loops go.
- Free-flow speed of an edge: its ``maximumAllowedSpeed`` when set (and ``use_maxspeed``), else
  the default speed of its OpenStreetMap ``highway`` class (:data:`CLASS_SPEEDS`). A time band
  multiplies every speed by its factor (:data:`DEFAULT_BANDS`), so the travel time in band b is
  the free-flow time divided by the band's factor. Both tables are documented in
  ``docs/roads.md`` and overridable by pipeline parameters.
- Shortest travel times use ``scipy.sparse.csgraph.dijkstra`` on a CSR matrix: one multi-source
  search (``min_only=True``) gives every node's time from its nearest source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from hubctl.errors import UsageError
from hubctl.pipelines.geo import LocalProjection, projection_for

__all__ = [
    "CLASS_SPEEDS",
    "DEFAULT_BANDS",
    "FALLBACK_SPEED",
    "SEGMENT_SQL",
    "Band",
    "RoadGraph",
    "band_of_hour",
    "build_graph",
    "cover_within",
    "parse_bands",
    "WALKING_SQL",
    "walking_graph",
    "walking_pairs",
    "walk_to_nearest",
    "parse_class_speeds",
]

#: Default free-flow speeds (km/h) by OSM highway class, where a segment has no maxspeed.
CLASS_SPEEDS: dict[str, float] = {
    "motorway": 100.0, "motorway_link": 60.0, "trunk": 80.0, "trunk_link": 50.0,
    "primary": 60.0, "primary_link": 45.0, "secondary": 50.0, "secondary_link": 40.0,
    "tertiary": 40.0, "tertiary_link": 35.0, "unclassified": 30.0, "residential": 30.0,
    "road": 30.0, "busway": 30.0, "service": 20.0, "living_street": 10.0, "track": 15.0,
    "pedestrian": 5.0, "footway": 5.0, "path": 5.0, "cycleway": 15.0, "steps": 2.0,
    "bridleway": 5.0, "corridor": 5.0,
}
FALLBACK_SPEED = 25.0  # km/h for a class not in the table
#: Default time bands (local hours, start-end) and their speed factors.
DEFAULT_BANDS = ("00-04:1.00", "04-08:0.90", "08-12:0.70", "12-16:0.60", "16-20:0.55",
                 "20-24:0.85")
#: Highway classes a pedestrian may not use (OSM's default access rules); every other class,
#: footways, paths, steps and service roads included, is walkable in both directions.
NO_WALKING = ("motorway", "motorway_link")
MIN_EDGE_SECONDS = 1e-3  # csgraph drops zero weights; a zero-length edge still costs this

#: The segment columns the graph needs, from the ``RoadSegment`` view.
SEGMENT_SQL = """
SELECT startNode, endNode,
       CAST(json_extract(startPoint, '$.coordinates[0]') AS DOUBLE) AS start_lon,
       CAST(json_extract(startPoint, '$.coordinates[1]') AS DOUBLE) AS start_lat,
       CAST(json_extract(endPoint, '$.coordinates[0]') AS DOUBLE) AS end_lon,
       CAST(json_extract(endPoint, '$.coordinates[1]') AS DOUBLE) AS end_lat,
       length, highway, maximumAllowedSpeed,
       coalesce(list_contains(category, 'oneway'), false) AS oneway
FROM RoadSegment
WHERE startNode IS NOT NULL AND endNode IS NOT NULL AND length IS NOT NULL
"""  # no ORDER BY: build_graph sorts the edges itself, so the row order does not matter


@dataclass(frozen=True)
class Band:
    """A time-of-day band: local hours [start, end) and its speed factor."""

    name: str
    start: int
    end: int
    factor: float


def parse_bands(items: Sequence[str]) -> list[Band]:
    """Bands from ``"HH-HH:factor"`` items; they must tile 0-24 hours without overlap."""
    bands: list[Band] = []
    for item in items:
        try:
            span, factor = item.split(":")
            start, end = (int(h) for h in span.split("-"))
            value = float(factor)
        except ValueError:
            raise UsageError(f"--param bands: {item!r} is not HH-HH:factor",
                             hint="for example bands=00-07:1.0,07-10:0.6,10-24:0.8") from None
        if not (0 <= start < end <= 24) or not (0 < value <= 2):
            raise UsageError(f"--param bands: {item!r} needs 0 <= start < end <= 24 and a "
                             "factor in (0, 2]")
        bands.append(Band(f"{start:02d}-{end:02d}", start, end, value))
    bands.sort(key=lambda b: b.start)
    hours = [h for b in bands for h in range(b.start, b.end)]
    if sorted(hours) != list(range(24)):
        raise UsageError("--param bands: the bands must cover hours 0-24 exactly once",
                         hint=f"got {', '.join(b.name for b in bands)}")
    return bands


def band_of_hour(bands: Sequence[Band]) -> np.ndarray:
    """Band index of each local hour 0..23."""
    out = np.zeros(24, dtype=np.int64)
    for i, b in enumerate(bands):
        out[b.start:b.end] = i
    return out


def parse_class_speeds(items: Sequence[str]) -> dict[str, float]:
    """The default class speeds with ``class:kmh`` overrides applied."""
    speeds = dict(CLASS_SPEEDS)
    for item in items:
        name, _, value = item.partition(":")
        try:
            kmh = float(value)
        except ValueError:
            kmh = -1.0
        if not name or not 0 < kmh <= 300:
            raise UsageError(f"--param class_speeds: {item!r} is not class:km/h",
                             hint="for example class_speeds=residential:25,service:15")
        speeds[name.strip()] = kmh
    return speeds


@dataclass
class RoadGraph:
    """Directed road graph: node arrays, edge arrays, free-flow travel seconds per edge."""

    node_osm: np.ndarray  # OSM node id per node
    lon: np.ndarray
    lat: np.ndarray
    src: np.ndarray  # edge tail node index
    dst: np.ndarray  # edge head node index
    length_m: np.ndarray
    seconds: np.ndarray  # free-flow travel time per edge
    projection: LocalProjection

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_osm)

    @cached_property
    def xy(self) -> np.ndarray:
        """Projected node coordinates (n x 2, metres)."""
        x, y = self.projection.to_xy(self.lon, self.lat)
        return np.column_stack([x, y])

    def matrix(self, factor: float = 1.0) -> sp.csr_matrix:
        """CSR matrix of travel seconds at ``factor`` times free-flow speed."""
        w = np.maximum(self.seconds / factor, MIN_EDGE_SECONDS)
        return sp.csr_matrix((w, (self.src, self.dst)), shape=(self.n_nodes, self.n_nodes))

    @cached_property
    def weak_components(self) -> np.ndarray:
        """Weakly connected component label per node, 0 = the largest."""
        return _relabel(connected_components(self.matrix(), directed=True,
                                             connection="weak")[1])

    @cached_property
    def strong_components(self) -> np.ndarray:
        """Strongly connected component label per node, 0 = the largest."""
        return _relabel(connected_components(self.matrix(), directed=True,
                                             connection="strong")[1])

    @cached_property
    def _tree(self) -> tuple[cKDTree, np.ndarray]:
        core = np.flatnonzero(self.strong_components == 0)
        return cKDTree(self.xy[core]), core

    def snap(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(node, metres) of the nearest node of the largest strongly connected component
        (where a vehicle can both arrive and leave) for each point."""
        tree, core = self._tree
        x, y = self.projection.to_xy(lon, lat)
        if len(x) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        dist, idx = tree.query(np.column_stack([x, y]))
        return core[idx].astype(np.int64), np.asarray(dist, dtype=np.float64)

    def times_from(self, sources: np.ndarray, factor: float = 1.0,
                   limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, nearest source node) for every node from the nearest of ``sources``;
        inf and -1 where none is reachable (within ``limit`` seconds)."""
        sources = np.unique(np.asarray(sources, dtype=np.int64))
        if sources.size == 0:
            return np.full(self.n_nodes, np.inf), np.full(self.n_nodes, -1, np.int64)
        dist, _, origin = dijkstra(self.matrix(factor), directed=True, indices=sources,
                                   min_only=True, limit=limit, return_predecessors=True)
        return np.asarray(dist), np.asarray(origin, dtype=np.int64)

    def reachable(self, sources: np.ndarray, budget: float, factor: float = 1.0) -> np.ndarray:
        """Boolean per node: reachable from some source within ``budget`` seconds."""
        return self.times_from(sources, factor, limit=budget)[0] <= budget

    def summary(self) -> dict[str, Any]:
        """Sizes and connectivity, JSON-ready."""
        weak = np.bincount(self.weak_components)
        strong = np.bincount(self.strong_components)
        return {"nodes": self.n_nodes, "edges": int(len(self.src)),
                "length_km": round(float(self.length_m.sum()) / 1000, 3),
                "weak_components": int(len(weak)),
                "largest_weak_share": round(float(weak[0]) / max(self.n_nodes, 1), 4),
                "strong_components": int(len(strong)),
                "largest_strong_share": round(float(strong[0]) / max(self.n_nodes, 1), 4)}


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Component labels renumbered by decreasing size (ties by first node)."""
    sizes = np.bincount(labels)
    first = np.full(len(sizes), len(labels))
    np.minimum.at(first, labels, np.arange(len(labels)))
    order = np.lexsort((first, -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels]


def build_graph(segments: pa.Table, class_speeds: dict[str, float] | None = None,
                use_maxspeed: bool = True) -> RoadGraph:
    """The graph of segment rows as :data:`SEGMENT_SQL` selects them."""
    if segments.num_rows == 0:
        raise UsageError("the lake has no road segments",
                         hint="ingest an OpenStreetMap extract first: hubctl ingest osm FILE.osm")
    col = {name: segments.column(name).to_numpy(zero_copy_only=False)
           for name in ("startNode", "endNode", "start_lon", "start_lat", "end_lon", "end_lat",
                        "length", "oneway")}
    osm = np.concatenate([col["startNode"], col["endNode"]]).astype(np.int64)
    node_osm, first, inverse = np.unique(osm, return_index=True, return_inverse=True)
    lon = np.concatenate([col["start_lon"], col["end_lon"]]).astype(np.float64)[first]
    lat = np.concatenate([col["start_lat"], col["end_lat"]]).astype(np.float64)[first]
    n = segments.num_rows
    start, end = inverse[:n], inverse[n:]
    speed = _speeds(segments, class_speeds or CLASS_SPEEDS, use_maxspeed)
    length = np.asarray(col["length"], dtype=np.float64)
    seconds = length / (speed / 3.6)
    two_way = ~np.asarray(col["oneway"], dtype=bool)
    src = np.concatenate([start, end[two_way]])
    dst = np.concatenate([end, start[two_way]])
    secs = np.concatenate([seconds, seconds[two_way]])
    metres = np.concatenate([length, length[two_way]])
    keep = _fastest_edges(src, dst, secs, metres)
    ok = np.isfinite(lon) & np.isfinite(lat)
    projection = projection_for(lon[ok], lat[ok])
    return RoadGraph(node_osm, lon, lat, src[keep], dst[keep], metres[keep], secs[keep],
                     projection)


def _speeds(segments: pa.Table, class_speeds: dict[str, float],
            use_maxspeed: bool) -> np.ndarray:
    """Free-flow km/h per segment."""
    classes = segments.column("highway").combine_chunks().dictionary_encode()
    names = classes.dictionary.to_pylist()
    table = np.array([class_speeds.get(c or "", FALLBACK_SPEED) for c in names] or [0.0])
    codes = classes.indices.to_numpy(zero_copy_only=False)
    speed = table[np.nan_to_num(codes, nan=0).astype(np.int64)] if len(codes) else np.zeros(0)
    if use_maxspeed:
        posted = segments.column("maximumAllowedSpeed").to_numpy(zero_copy_only=False)
        posted = np.asarray(posted, dtype=np.float64)
        speed = np.where(np.isfinite(posted) & (posted > 0), posted, speed)
    return np.asarray(speed, dtype=np.float64)


def _fastest_edges(src: np.ndarray, dst: np.ndarray, secs: np.ndarray,
                   metres: np.ndarray) -> np.ndarray:
    """Indices of the edges kept, sorted by (tail, head) whatever the input order: no self
    loops, of parallel edges the fastest (then the shortest)."""
    order = np.lexsort((metres, secs, dst, src))
    s, d = src[order], dst[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    return order[first & (s != d)]


def cover_within(graph: RoadGraph, sites: np.ndarray, demand_nodes: np.ndarray,
                 budget: np.ndarray, chunk: int = 32) -> sp.csr_matrix:
    """Coverage matrix for :func:`pipelines.covering.max_cover`: ``cover[i, j]`` is true when
    demand i (at node ``demand_nodes[i]``) is reachable from site j (node ``sites[j]``) within
    ``budget[i]`` free-flow seconds. Searches run per site, ``chunk`` sites at a time, each
    stopped at the largest budget (``dijkstra(limit=...)``)."""
    sites = np.asarray(sites, dtype=np.int64)
    demand_nodes = np.asarray(demand_nodes, dtype=np.int64)
    budget = np.asarray(budget, dtype=np.float64)
    shape = (len(demand_nodes), len(sites))
    if not len(sites) or not len(demand_nodes):
        return sp.csr_matrix(shape, dtype=bool)
    m = graph.matrix()
    limit = float(budget.max())
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for lo in range(0, len(sites), chunk):
        d = dijkstra(m, directed=True, indices=sites[lo:lo + chunk], limit=limit)
        j, i = np.nonzero(d[:, demand_nodes] <= budget[None, :])
        rows.append(i)
        cols.append(j + lo)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=shape)


#: Vertices of the walkable segments' LineStrings, in order, one row per vertex.
WALKING_SQL = f"""
WITH s AS (
    SELECT row_number() OVER (ORDER BY id) AS seg,
           from_json(location, '{{"coordinates": "DOUBLE[][]"}}').coordinates AS c
    FROM RoadSegment
    WHERE location IS NOT NULL AND coalesce(highway, '') NOT IN
          ({", ".join(f"'{c}'" for c in NO_WALKING)}))
SELECT seg, generate_subscripts(c, 1) AS k, unnest(c)[1] AS lon, unnest(c)[2] AS lat
FROM s ORDER BY seg, k
"""


def walking_graph(vertices: pa.Table) -> RoadGraph:
    """The pedestrian network from the vertices of the walkable segments' LineStrings
    (:data:`WALKING_SQL`: every class but :data:`NO_WALKING`): a node at every vertex (shared
    vertices, such as crossings, are one node), each piece between two vertices walkable both
    ways whatever the one-way tag, edge weights in metres (``seconds`` holds metres, so
    :meth:`RoadGraph.matrix` measures distance). Vertices, not only crossings, are nodes so
    that a home or a stop snaps to the street beside it, not to a crossing 200 m away."""
    if vertices.num_rows == 0:
        raise UsageError("the lake has no walkable road segments",
                         hint="ingest an OpenStreetMap extract of the area: hubctl ingest osm "
                              "FILE")
    seg = vertices.column("seg").to_numpy(zero_copy_only=False).astype(np.int64)
    lon = vertices.column("lon").to_numpy(zero_copy_only=False).astype(np.float64)
    lat = vertices.column("lat").to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat)
    seg, lon, lat = seg[ok], lon[ok], lat[ok]
    key = np.round(lon * 1e7).astype(np.int64) * (1 << 32) + np.round(lat * 1e7).astype(np.int64)
    uniq, first, node = np.unique(key, return_index=True, return_inverse=True)
    projection = projection_for(lon, lat)
    x, y = projection.to_xy(lon, lat)
    same = seg[1:] == seg[:-1]
    a, b = node[:-1][same], node[1:][same]
    metres = np.hypot(np.diff(x)[same], np.diff(y)[same])
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    both = np.concatenate([metres, metres])
    keep = _fastest_edges(src, dst, both, both)
    return RoadGraph(np.arange(len(uniq), dtype=np.int64), lon[first], lat[first], src[keep],
                     dst[keep], both[keep], both[keep].copy(), projection)


def walking_pairs(graph: RoadGraph, points_lon: np.ndarray, points_lat: np.ndarray,
                  stops_lon: np.ndarray, stops_lat: np.ndarray, radius: float,
                  chunk: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, stop, metres) of every point within ``radius`` metres of walking of a stop on
    ``graph`` (:func:`walking_graph`): straight to the nearest node of the network, along it,
    and straight from its node to the stop. Sorted by point then stop, like
    :func:`pipelines.transit_geo.catchment_pairs`. Searches run from the stops' nodes,
    ``chunk`` nodes at a time, each stopped at ``radius``."""
    pnode, psnap = graph.snap(points_lon, points_lat)
    snode, ssnap = graph.snap(stops_lon, stops_lat)
    empty = np.zeros(0, np.int64)
    if not len(pnode) or not len(snode):
        return empty, empty.copy(), np.zeros(0)
    nodes, row = np.unique(snode, return_inverse=True)
    m = graph.matrix()
    pi: list[np.ndarray] = []
    pj: list[np.ndarray] = []
    dv: list[np.ndarray] = []
    for lo in range(0, len(nodes), chunk):
        d = dijkstra(m, directed=True, indices=nodes[lo:lo + chunk], limit=radius)
        stops = np.flatnonzero((row >= lo) & (row < lo + chunk))
        walk = d[row[stops] - lo][:, pnode] + psnap[None, :] + ssnap[stops, None]
        j, i = np.nonzero(walk <= radius)
        pi.append(i)
        pj.append(stops[j])
        dv.append(walk[j, i])
    i, j, v = np.concatenate(pi), np.concatenate(pj), np.concatenate(dv)
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), v[order]


def walk_to_nearest(graph: RoadGraph, lon: np.ndarray, lat: np.ndarray, stop_lon: np.ndarray,
                     stop_lat: np.ndarray) -> np.ndarray:
    """Metres of walking from each point to the nearest of the stops: straight to its nearest
    node, along the network, straight from the stop's node to the stop (as the catchments);
    inf where no stop is reachable."""
    if not len(lon) or not len(stop_lon):
        return np.full(len(lon), np.inf)
    snode, sleg = graph.snap(stop_lon, stop_lat)
    leg_at = np.full(graph.n_nodes, np.inf)
    np.minimum.at(leg_at, snode, sleg)
    metres, origin = graph.times_from(snode)
    pnode, pleg = graph.snap(lon, lat)
    reached = origin[pnode] >= 0
    out = np.full(len(lon), np.inf)
    out[reached] = pleg[reached] + metres[pnode][reached] + leg_at[origin[pnode][reached]]
    return out
