"""``dispatch_coverage``: which calls and which parts of the road network stations of one kind
reach within a response-time target, per time-of-day band, where the gaps are, and what adding
or relocating stations would change.

Steps: the road graph from ``RoadSegment`` (:mod:`pipelines.roads`); stations
(``PointOfInterest`` with the kind in ``category``) and calls (``Alert``) snapped to the nearest
node of the largest strongly connected component; per band one multi-source Dijkstra from the
stations at that band's speeds; calls count in the band of their local issue hour. Vulnerable
areas are grid cells (aggregates only, never a call's position or case number). The what-if is
the maximal covering model (:func:`pipelines.covering.max_cover`) over (node, band) demands
weighted by calls, with road nodes sampled on a grid as candidate sites.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.localtime import zone
from hubctl.pipeline import Param, PipelineContext, PipelineResult, every_category
from hubctl.pipelines.covering import coverage_of, max_cover
from hubctl.pipelines.geo import (
    STUDY_AREAS,
    cell_centres,
    cell_index,
    cell_labels,
    in_polygons,
    read_polygons,
)
from hubctl.pipelines.roads import (
    DEFAULT_BANDS,
    SEGMENT_SQL,
    Band,
    RoadGraph,
    band_of_hour,
    build_graph,
    cover_within,
    parse_bands,
    parse_class_speeds,
)
from hubctl.registry import vocabulary

__all__ = ["PIPELINE", "DispatchCoverage"]

BANDS_SCHEMA = pa.schema([
    ("band", pa.string()), ("start_hour", pa.int64()), ("end_hour", pa.int64()),
    ("speed_factor", pa.float64()), ("calls", pa.int64()), ("calls_covered", pa.int64()),
    ("call_coverage", pa.float64()), ("nodes", pa.int64()), ("nodes_covered", pa.int64()),
    ("node_coverage", pa.float64()), ("median_minutes", pa.float64()),
    ("p90_minutes", pa.float64()), ("call_coverage_after", pa.float64()),
    ("node_coverage_after", pa.float64())])


@dataclass
class Calls:
    """Located calls on the network: snapped node, band, and the counts left out."""

    node: np.ndarray
    band: np.ndarray
    cell: np.ndarray  # (n, 2) grid column and row of the call's position
    total: int
    without_location: int
    off_network: int
    outside_area: int = 0  # located calls outside a study-area polygon


@dataclass
class Stations:
    """Stations on the network (sorted by id)."""

    table: pa.Table  # id, name, lon, lat
    node: np.ndarray
    snap_m: np.ndarray
    off_network: list[str]


class DispatchCoverage:
    """The ``dispatch_coverage`` pipeline."""

    name = "dispatch_coverage"
    summary = ("Share of calls and road nodes that stations reach within a response-time "
               "target per time band, vulnerable cells, and an add/relocate what-if.")
    inputs = ("RoadSegment", "Alert")
    optional_inputs = ("PointOfInterest",)
    example = ("hubctl run dispatch_coverage --param kind=fire-station "
               "--param target_minutes=5 --param k=2 --assert \"coverage.calls >= 0.6\"")
    params = (
        Param("kind", "fire-station", "station kind (a PointOfInterest category)",
              choices=vocabulary("PointOfInterest", "category")),
        Param("target_minutes", 5.0, "response-time target, minutes", minimum=0.1,
              maximum=120),
        Param("bands", list(DEFAULT_BANDS), "time bands HH-HH:speed factor, tiling 0-24",
              kind="list"),
        Param("class_speeds", [], "class:km/h overrides of the default class speeds",
              kind="list"),
        Param("use_maxspeed", True, "use a segment's posted speed limit when it has one"),
        Param("timezone", "UTC", "time zone of the band hours (e.g. Asia/Seoul)"),
        Param("category", "security", "Alert category of the calls ('any' for every alert)"),
        Param("max_snap_m", 300.0, "calls and stations farther from the road network are "
              "left out (counted)", minimum=1),
        Param("cell_m", 500.0, "grid cell size for vulnerable areas, metres", minimum=50,
              aliases=("cell_size_m",)),
        Param("study_area", "hull", "calls analysed: hull or bbox (every located call; the "
              "cells are those holding calls) or the path of a GeoJSON polygon such as the "
              "city boundary (calls outside it are left out, counted)"),
        Param("min_cell_calls", 5, "cells with fewer calls are not published", minimum=1),
        Param("whatif", "add", "what-if: add k stations, relocate the existing ones, or none",
              choices=("add", "relocate", "none")),
        Param("k", 2, "stations to add (whatif=add)", minimum=0, maximum=1000),
        Param("candidate_spacing_m", 1000.0, "one candidate road node per cell of this size",
              minimum=50),
        Param("time_limit", 30.0, "what-if time limit (coverage matrix + solver), seconds",
              minimum=1),
    )

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Coverage per band, vulnerable cells, what-if."""
        p = ctx.params
        bands = parse_bands(p["bands"])
        target = float(p["target_minutes"]) * 60
        t0 = time.perf_counter()
        ctx.step("road graph")
        graph = build_graph(ctx.sql(SEGMENT_SQL), parse_class_speeds(p["class_speeds"]),
                            bool(p["use_maxspeed"]))
        t_graph = time.perf_counter() - t0
        stations = _stations(ctx, graph, p["kind"], float(p["max_snap_m"]))
        calls = _calls(ctx, graph, bands, p)
        notes = _notes(calls, stations, p["kind"])
        ctx.step("coverage per band")
        t1 = time.perf_counter()
        rows, times, origins = _coverage(graph, bands, stations.node, calls, target)
        t_cov = time.perf_counter() - t1
        ctx.step("what-if")
        whatif, sites = _whatif(graph, bands, stations, calls, target, p, rows)
        if whatif.get("solver_seconds", 0) > 1.2 * whatif.get("solver_time_limit", np.inf):
            notes.append(f"the what-if solver took {whatif['solver_seconds']:.1f} s, over the "
                         f"{whatif['solver_time_limit']:.1f} s it was given")
        cells = _cells(graph, bands, calls, times, target, p)
        located = len(calls.node)
        covered = sum(r["calls_covered"] for r in rows)
        summary = {
            "kind": p["kind"], "target_minutes": float(p["target_minutes"]),
            "graph": graph.summary(),
            "calls": {"total": calls.total, "without_location": calls.without_location,
                      "off_network": calls.off_network, "outside_study_area": calls.outside_area,
                      "used": located},
            "stations": {"used": len(stations.node), "off_network": len(stations.off_network)},
            "coverage": {"calls": _share(covered, located),
                         "nodes_mean": round(float(np.mean([r["node_coverage"]
                                                            for r in rows])), 4)},
            "bands": [{k: r[k] for k in ("band", "speed_factor", "calls", "calls_covered",
                                         "call_coverage", "node_coverage", "median_minutes",
                                         "p90_minutes")} for r in rows],
            "vulnerable_cells": _top_cells(cells),
            "whatif": whatif,
            "seconds": {"graph": round(t_graph, 3), "coverage": round(t_cov, 3),
                        "total": round(time.perf_counter() - t0, 3)},
        }
        tables = {"bands": pa.Table.from_pylist(rows, schema=BANDS_SCHEMA), "cells": cells,
                  "stations": _station_table(graph, stations, calls, times, origins,
                                                   target, p["kind"]),
                  "whatif": sites}
        return PipelineResult(tables=tables, summary=summary, notes=notes,
                              empty=_nothing_used(located, len(stations.node), p["whatif"]))


def _nothing_used(calls: int, stations: int, whatif: str) -> str | None:
    """Why the run measured nothing, or None: no call on the network, or no station and no
    what-if to place one."""
    if not calls:
        return "no call with a position lies on the road network (see the notes)"
    if not stations and whatif == "none":
        return "no station of this kind lies on the road network and whatif=none"
    return None


def _share(part: float, whole: float) -> float:
    return round(float(part) / whole, 4) if whole else 0.0


def _stations(ctx: PipelineContext, graph: RoadGraph, kind: str, max_snap: float) -> Stations:
    if ctx.has("PointOfInterest"):
        t = ctx.sql("SELECT id, name, lon, lat FROM PointOfInterest_latest "
                    "WHERE list_contains(category, ?) AND lon IS NOT NULL AND lat IS NOT NULL "
                    "ORDER BY id", [kind])
    else:
        t = pa.table({"id": pa.array([], pa.string()), "name": pa.array([], pa.string()),
                      "lon": pa.array([], pa.float64()), "lat": pa.array([], pa.float64())})
    node, dist = graph.snap(t["lon"].to_numpy(), t["lat"].to_numpy())
    near = dist <= max_snap
    far = [i for i, ok in zip(t["id"].to_pylist(), near.tolist(), strict=True) if not ok]
    return Stations(t.filter(pa.array(near)), node[near], dist[near], far)


def _calls(ctx: PipelineContext, graph: RoadGraph, bands: list[Band],
           p: dict[str, Any]) -> Calls:
    tz = zone(p["timezone"], "--param timezone")
    every = every_category(p["category"])
    where = "" if every else "WHERE category = ?"
    args = None if every else [p["category"]]
    t = ctx.aggregate(f"SELECT lon, lat, coalesce(dateIssued, observed_at) AS t "
                      f"FROM Alert_latest {where} ORDER BY id", args)
    lon = t["lon"].to_numpy(zero_copy_only=False).astype(np.float64)
    lat = t["lat"].to_numpy(zero_copy_only=False).astype(np.float64)
    located = np.isfinite(lon) & np.isfinite(lat)
    outside = 0
    if p["study_area"] not in STUDY_AREAS:
        inside = in_polygons(lon, lat, read_polygons(p["study_area"]))
        outside = int((located & ~inside).sum())
        located &= inside
    local = t["t"].combine_chunks().cast(pa.timestamp("us", tz=str(tz)))
    hour = pc.fill_null(pc.hour(local), 0).to_numpy(zero_copy_only=False)
    node, dist = graph.snap(lon[located], lat[located])
    on = dist <= float(p["max_snap_m"])
    band = band_of_hour(bands)[hour[located][on]]
    x, y = graph.projection.to_xy(lon[located][on], lat[located][on])
    ix, iy = cell_index(x, y, float(p["cell_m"]))
    return Calls(node[on], band, np.column_stack([ix, iy]), t.num_rows,
                 int((~located).sum()) - outside, int((~on).sum()), outside)


def _notes(calls: Calls, stations: Stations, kind: str) -> list[str]:
    notes = []
    if not calls.total:
        notes.append("no call matched (check --param category; 'any' takes every Alert)")
    if calls.outside_area:
        notes.append(f"{calls.outside_area} located call(s) outside the study area were left "
                     "out")
    if calls.without_location:
        notes.append(f"{calls.without_location} call(s) without a location were left out")
    if calls.off_network:
        notes.append(f"{calls.off_network} call(s) farther than max_snap_m from the road "
                     "network were left out")
        if not len(calls.node):
            notes.append("no located call lies on the road network: do the roads "
                         "(hubctl ingest osm) cover the area of the calls?")
    if stations.off_network:
        notes.append(f"{len(stations.off_network)} {kind} station(s) off the road network were "
                     f"left out: {', '.join(stations.off_network[:5])}")
    if not len(stations.node):
        notes.append(f"no {kind} station on the road network: coverage before is 0")
    return notes


def _coverage(graph: RoadGraph, bands: list[Band], sources: np.ndarray, calls: Calls,
              target: float) -> tuple[list[dict[str, Any]], list[np.ndarray], list[np.ndarray]]:
    """One row per band, and per band every node's time from (and node of) the nearest
    source."""
    rows, times, origins = [], [], []
    for b, band in enumerate(bands):
        t, origin = graph.times_from(sources, band.factor)
        times.append(t)
        origins.append(origin)
        mine = t[calls.node[calls.band == b]]
        ok = t <= target
        rows.append({
            "band": band.name, "start_hour": band.start, "end_hour": band.end,
            "speed_factor": band.factor, "calls": int(len(mine)),
            "calls_covered": int((mine <= target).sum()),
            "call_coverage": _share(int((mine <= target).sum()), len(mine)),
            "nodes": graph.n_nodes, "nodes_covered": int(ok.sum()),
            "node_coverage": _share(int(ok.sum()), graph.n_nodes),
            "median_minutes": _minutes(mine, 50), "p90_minutes": _minutes(mine, 90)})
    return rows, times, origins


def _minutes(seconds: np.ndarray, q: float) -> float | None:
    if not len(seconds):
        return None
    with np.errstate(invalid="ignore"):  # unreachable calls are inf
        v = float(np.percentile(seconds, q))
    return round(v / 60, 3) if np.isfinite(v) else None


def _cells(graph: RoadGraph, bands: list[Band], calls: Calls, times: list[np.ndarray],
           target: float, p: dict[str, Any]) -> pa.Table:
    """Calls and calls out of reach per grid cell and band (plus 'all'); small cells withheld."""
    size = float(p["cell_m"])
    t = np.full(len(calls.node), np.inf)
    for b in range(len(bands)):
        at = calls.band == b
        t[at] = times[b][calls.node[at]]
    out = t > target
    keys, inv = np.unique(calls.cell.reshape(-1, 2), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    n_cells, nb = len(keys), len(bands)
    total = np.bincount(inv, minlength=n_cells)
    shown = total >= int(p["min_cell_calls"])
    per = np.zeros((n_cells, nb + 1), np.int64)
    miss = np.zeros((n_cells, nb + 1), np.int64)
    np.add.at(per, (inv, calls.band), 1)
    np.add.at(miss, (inv, calls.band), out.astype(np.int64))
    per[:, nb], miss[:, nb] = total, miss[:, :nb].sum(axis=1)
    ix, iy = keys[:, 0], keys[:, 1]
    cx, cy = cell_centres(ix, iy, size)
    clon, clat = graph.projection.to_lonlat(cx, cy)
    sel = np.flatnonzero(shown)
    rank = np.zeros(n_cells, np.int64)  # among published cells: most calls out of reach first
    rank[sel[np.lexsort((iy[sel], ix[sel], -miss[sel, nb]))]] = np.arange(1, len(sel) + 1)
    names = [b.name for b in bands] + ["all"]
    cell_ids = np.array(cell_labels(ix[sel], iy[sel], size), dtype=object)
    reps = len(names)
    order = np.lexsort((np.tile(np.arange(reps), len(sel)), np.repeat(rank[sel], reps)))
    calls_flat = per[sel].reshape(-1)
    miss_flat = miss[sel].reshape(-1)
    table = pa.table({
        "cell": pa.array(np.repeat(cell_ids, reps), pa.string()),
        "band": pa.array(np.tile(np.array(names, dtype=object), len(sel)), pa.string()),
        "centre_lon": pa.array(np.round(np.repeat(clon[sel], reps), 6)),
        "centre_lat": pa.array(np.round(np.repeat(clat[sel], reps), 6)),
        "calls": pa.array(calls_flat),
        "out_of_reach": pa.array(miss_flat),
        "out_of_reach_share": pa.array(np.round(miss_flat / np.maximum(calls_flat, 1), 4)),
        "rank": pa.array(np.repeat(rank[sel], reps)),
    })
    table = table.take(pa.array(order))
    # a band row of a published cell is withheld too when that band has few calls there
    return table.filter(pc.greater_equal(table["calls"], int(p["min_cell_calls"])))


def _top_cells(cells: pa.Table, n: int = 10) -> list[dict[str, Any]]:
    rows = cells.filter(pc.equal(cells["band"], "all")).slice(0, n).to_pylist()
    return [{k: r[k] for k in ("cell", "calls", "out_of_reach", "out_of_reach_share")}
            for r in rows if r["out_of_reach"] > 0]


def _station_table(graph: RoadGraph, st: Stations, calls: Calls, times: list[np.ndarray],
                   origins: list[np.ndarray], target: float, kind: str) -> pa.Table:
    """Each station with the calls it is nearest to (in each call's band) and how many of
    those it reaches within the target."""
    nearest = np.full(len(calls.node), -1, np.int64)
    t = np.full(len(calls.node), np.inf)
    for b in range(len(times)):
        at = calls.band == b
        nearest[at] = origins[b][calls.node[at]]
        t[at] = times[b][calls.node[at]]
    order = np.argsort(st.node, kind="stable")
    ranked = st.node[order]
    pos = np.searchsorted(ranked, nearest)
    pos = np.minimum(pos, max(len(ranked) - 1, 0))
    ok = nearest >= 0
    if len(ranked):
        ok &= ranked[pos] == nearest
    # stations on the same road node: their calls count for the first by id
    owner = order[pos[ok]]
    served = np.bincount(owner, minlength=len(st.node))
    reached = np.bincount(owner, weights=(t[ok] <= target), minlength=len(st.node))
    return pa.table({
        "id": st.table["id"], "name": st.table["name"],
        "kind": pa.array([kind] * st.table.num_rows, pa.string()),
        "lon": st.table["lon"], "lat": st.table["lat"],
        "road_node": pa.array(graph.node_osm[st.node], pa.int64()),
        "snap_m": pa.array(np.round(st.snap_m, 1)),
        "calls_nearest": pa.array(served.astype(np.int64)),
        "calls_reached": pa.array(reached.astype(np.int64)),
    })


def _candidates(graph: RoadGraph, spacing: float) -> np.ndarray:
    """One road node per ``spacing`` cell: the node of the main component nearest the cell
    centre (ties by node index), sorted by node index."""
    core = np.flatnonzero(graph.strong_components == 0)
    x, y = graph.xy[core, 0], graph.xy[core, 1]
    ix, iy = cell_index(x, y, spacing)
    cx, cy = cell_centres(ix, iy, spacing)
    order = np.lexsort((core, np.hypot(x - cx, y - cy), iy, ix))
    a, b = ix[order], iy[order]
    first = np.ones(len(order), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return np.sort(core[order[first]])


def _whatif(graph: RoadGraph, bands: list[Band], st: Stations, calls: Calls, target: float,
            p: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], pa.Table]:
    mode = p["whatif"]
    empty = pa.table({"site": pa.array([], pa.string()), "action": pa.array([], pa.string()),
                      "lon": pa.array([], pa.float64()), "lat": pa.array([], pa.float64()),
                      "road_node": pa.array([], pa.int64())})
    if mode == "none" or not len(calls.node):
        return {"mode": "none" if mode == "none" else f"{mode} (no located calls)"}, empty
    existing = np.unique(st.node)
    grid = _candidates(graph, float(p["candidate_spacing_m"]))
    sites = np.concatenate([existing, np.setdiff1d(grid, existing)])
    nb = len(bands)
    pair, weight = np.unique(calls.node * nb + calls.band, return_counts=True)
    budget = target * np.array([b.factor for b in bands])[pair % nb]
    t0 = time.perf_counter()
    cover = cover_within(graph, sites, pair // nb, budget)
    matrix_s = time.perf_counter() - t0
    left = max(float(p["time_limit"]) - matrix_s, 1.0)
    fixed = range(len(existing)) if mode == "add" else range(0)
    k = len(existing) + int(p["k"]) if mode == "add" else len(existing)
    sol = max_cover(cover, weight.astype(np.float64), k, fixed=list(fixed),
                    time_limit=left)
    before = coverage_of(cover, weight, list(range(len(existing))))
    chosen = sites[sol.chosen]
    after_rows, _, _ = _coverage(graph, bands, chosen, calls, target)
    for r, a in zip(rows, after_rows, strict=True):
        r["call_coverage_after"] = a["call_coverage"]
        r["node_coverage_after"] = a["node_coverage"]
    table = _site_table(graph, st, existing, chosen)
    actions = table["action"].to_pylist()
    return {
        "mode": mode, "k": int(p["k"]) if mode == "add" else len(existing),
        "candidates": int(len(sites)), "demands": int(len(pair)),
        "before": _share(before, sol.total), "after": _share(sol.covered, sol.total),
        "gain": _share(sol.covered - before, sol.total),
        "added": actions.count("add"), "removed": actions.count("remove"),
        "gap": round(float(sol.gap), 6), "method": sol.method,
        "matrix_seconds": round(float(matrix_s), 3),
        "solver_time_limit": round(left, 3),
        "solver_seconds": round(float(sol.seconds), 3),
        "bands": [{"band": r["band"], "before": r["call_coverage"],
                   "after": r["call_coverage_after"]} for r in rows],
    }, table


def _site_table(graph: RoadGraph, st: Stations, existing: np.ndarray,
                chosen: np.ndarray) -> pa.Table:
    """keep / remove for existing stations (by id), add for new road-node sites."""
    site, action, node = [], [], []
    ids = st.table["id"].to_pylist()
    open_nodes = set(chosen.tolist())
    for sid, n in zip(ids, st.node.tolist(), strict=True):
        site.append(sid)
        action.append("keep" if n in open_nodes else "remove")
        node.append(n)
    for n in np.setdiff1d(chosen, existing).tolist():
        site.append(f"road-node:{graph.node_osm[n]}")
        action.append("add")
        node.append(n)
    idx = np.asarray(node, dtype=np.int64)
    return pa.table({"site": pa.array(site, pa.string()), "action": pa.array(action, pa.string()),
                     "lon": pa.array(np.round(graph.lon[idx], 7)),
                     "lat": pa.array(np.round(graph.lat[idx], 7)),
                     "road_node": pa.array(graph.node_osm[idx], pa.int64())})


PIPELINE = DispatchCoverage()
