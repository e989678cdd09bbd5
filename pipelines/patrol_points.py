"""``patrol_points``: where to put k patrol points so that the most calls lie within reach.

1. Calls (``Alert``) with a position go on a grid (``cell_m``, projected metres) over the
   study area (``study_area``: the calls' convex hull buffered by one cell by default, their
   bounding box, or a GeoJSON polygon such as the city boundary); counts per cell and time
   band give Getis-Ord Gi* z-scores and p-values (:mod:`pipelines.hotspots`) over the cells of
   the study area only.
2. Candidates are the existing points (``PointOfInterest`` of category ``kind``) plus the
   centres of hotspot cells (z > 0, p < alpha in any band, strongest first); when fewer than
   k cells are hotspots, the occupied cells with the most calls join them, so that k sites
   can always be placed.
3. Demand is the calls at each distinct call position (weights): the points coverage is
   reported on, so the model is exact and ``milp-optimal`` means optimal for
   ``coverage.after``. A candidate covers a position within ``radius_m`` (straight line) or
   within ``travel_min`` of driving on the road graph (``coverage=road``,
   :mod:`pipelines.roads`).
4. The maximal covering model (:func:`pipelines.covering.max_cover`) opens k sites.
5. Existing points against the plan, call by call: coverage before and after, mean and 90th
   percentile distance (or travel time) to the nearest point, per band; points to keep, add,
   move (a removed point paired with an added one within ``move_m``) or remove.

Outputs are aggregates only: grid cells, facilities and counts; never a case number or a
call's own position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from hubctl.errors import UsageError
from hubctl.geo import haversine_m
from hubctl.localtime import zone
from hubctl.pipeline import Param, PipelineContext, PipelineResult, every_category
from hubctl.pipelines.covering import CoverSolution, max_cover
from hubctl.pipelines.geo import (
    STUDY_AREAS,
    LocalProjection,
    cell_centres,
    cell_labels,
    in_polygons,
    projection_for,
    read_polygons,
    study_area_mask,
)
from hubctl.pipelines.hotspots import (
    Bands,
    GridCounts,
    gi_star,
    grid_counts,
    hotspots,
    local_hours,
    neighbour_weights,
    parse_bands,
)
from hubctl.registry import vocabulary

__all__ = ["FAR_M", "PIPELINE", "PatrolPoints", "in_bbox", "parse_bbox"]

_CALLS_SQL = """
SELECT epoch_us(dateIssued) AS t, lon, lat FROM Alert_latest
WHERE dateIssued IS NOT NULL AND (? OR category = ?)
ORDER BY id
"""
_POINTS_SQL = """
SELECT id, name, lon, lat FROM PointOfInterest_latest
WHERE list_contains(category, ?) AND lon IS NOT NULL AND lat IS NOT NULL ORDER BY id
"""


class PatrolPoints:
    """The ``patrol_points`` pipeline."""

    name = "patrol_points"
    summary = ("Call hotspots (Gi*) per time band and the k patrol points that cover the most "
               "calls (maximal covering MILP), against the existing points.")
    inputs = ("Alert",)
    optional_inputs = ("PointOfInterest", "RoadSegment")
    example = ("hubctl run patrol_points --param k=12 --param radius_m=500 "
               "--param timezone=America/Los_Angeles --assert 'coverage.after>=0.5'")
    params = (
        Param("k", 0, "patrol points to open; 0 = as many as exist (10 when none)", minimum=0),
        Param("radius_m", 500.0, "a call is covered within this distance of a point (m)",
              minimum=10.0),
        Param("coverage", "radius", "coverage by straight-line radius or road travel time",
              choices=("radius", "road")),
        Param("travel_min", 3.0, "road coverage: minutes of driving at free-flow speed",
              minimum=0.1),
        Param("cell_m", 250.0, "grid cell size (m) of the hotspots", minimum=25.0),
        Param("study_area", "hull", "cells the hotspots are computed over: hull (the calls' "
              "convex hull buffered by one cell), bbox (their bounding box; earlier results) or "
              "the path of a GeoJSON polygon such as the city boundary"),
        Param("bbox", "", "minlon,minlat,maxlon,maxlat: only the calls and existing points "
              "inside (one city of a lake that holds several); empty = all"),
        Param("bands", ["00-06", "06-12", "12-18", "18-24"],
              "time bands of local hours (HH-HH, 22-06 wraps)", kind="list"),
        Param("timezone", "UTC", "zone of the bands (IANA name; the lake keeps UTC)"),
        Param("kind", "patrol-point", "category of the existing points",
              choices=vocabulary("PointOfInterest", "category")),
        Param("category", "security", "Alert category to analyse ('any' for all)"),
        Param("alpha", 0.05, "hotspot: Gi* z > 0 and two-sided p below this",
              minimum=1e-9, maximum=0.5),
        Param("fdr", False, "hotspots by Benjamini-Hochberg false-discovery rate at alpha"),
        Param("rings", 1, "Gi* neighbourhood in cells around each cell", minimum=1, maximum=10),
        Param("demand_band", "all", "optimise for the calls of one band (e.g. 18-24) or all"),
        Param("candidates", 2000, "most candidate sites (existing + hotspot cells; at least k "
              "new cells are always offered)", minimum=1),
        Param("keep_existing", False, "existing points stay open; the model only adds"),
        Param("move_m", 1000.0, "a removed and an added point this close count as a move (m)",
              minimum=0.0),
        Param("time_limit", 30.0, "safety net in seconds for the solver (work limits, not "
              "the clock, decide its answer)",
              minimum=0.1),
    )

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Hotspots, the covering model and the comparison with the existing points."""
        p = ctx.params
        bands = parse_bands(p["bands"])
        local = zone(p["timezone"], "--param timezone")
        ctx.step("reading calls")
        calls = ctx.aggregate(_CALLS_SQL, [every_category(p["category"]), p["category"]])
        total = calls.num_rows
        lon = calls.column("lon").to_numpy(zero_copy_only=False).astype(np.float64)
        lat = calls.column("lat").to_numpy(zero_copy_only=False).astype(np.float64)
        located = np.isfinite(lon) & np.isfinite(lat)
        if not located.any():
            raise UsageError(f"none of the {total} calls (category {p['category']}) has a "
                             "position", hint="ingest calls with coordinates: hubctl ingest "
                             "calls FILE")
        when = calls.column("t").to_numpy(zero_copy_only=False).astype(np.int64)[located]
        lon, lat = lon[located], lat[located]
        box = parse_bbox(str(p["bbox"]))
        in_box = in_bbox(box, lon, lat)
        if not in_box.any():
            raise UsageError(f"none of the {len(lon)} located calls lies in bbox={p['bbox']}",
                             hint="the calls span " + _extent(lon, lat) + " (minlon,minlat,"
                             "maxlon,maxlat)")
        when, lon, lat = when[in_box], lon[in_box], lat[in_box]
        inside = _inside(p["study_area"], lon, lat)
        if not inside.any():
            raise UsageError(f"none of the {len(lon)} located calls lies in study_area="
                             f"{p['study_area']}", hint="check that the polygon covers the "
                             "calls (WGS 84 longitude, latitude)")
        when, lon, lat = when[inside], lon[inside], lat[inside]
        existing = _existing(ctx, p["kind"])
        existing_outside = int((~in_bbox(box, existing["lon"], existing["lat"])).sum())
        existing = {c: v[in_bbox(box, existing["lon"], existing["lat"])]
                    for c, v in existing.items()}
        n_far, far = _far_points(existing, lon, lat)
        if far:
            ctx.warn(far)
        proj = projection_for(np.concatenate([lon, existing["lon"]]),
                              np.concatenate([lat, existing["lat"]]))
        x, y = proj.to_xy(lon, lat)
        band = bands.of_hour[local_hours(when, local)]
        ctx.step("hotspots")
        grid = grid_counts(x, y, band, len(bands.names), p["cell_m"])
        counts = np.column_stack([grid.counts, grid.counts.sum(axis=1)])
        area = _area(p["study_area"], grid, proj, x, y, counts)
        z, pv = _gi_star_in(counts, grid, area, p["rings"])
        hot = hotspots(z, pv, p["alpha"], p["fdr"]) & area[:, None]
        n_exist = len(existing["id"])
        k = int(p["k"]) or (n_exist or 10)
        sites = _candidates(grid, z, hot, counts[:, -1], existing, proj, p["candidates"], k)
        ctx.step("covering model")
        dmask = _band_mask(bands, band, p["demand_band"])
        demand = _demand(x, y, dmask)
        model = _Model(p, proj, ctx)
        cover = model.cover(demand["x"], demand["y"], sites["x"], sites["y"])
        fixed = list(range(n_exist)) if p["keep_existing"] else []
        if len(fixed) > k:
            raise UsageError(f"keep_existing holds {len(fixed)} points open but k={k}",
                             hint=f"use --param k={len(fixed)} or more")
        sol = max_cover(cover, demand["w"], k, fixed=fixed, time_limit=p["time_limit"])
        ctx.step("comparison")
        before = model.reach(x, y, sites["x"][:n_exist], sites["y"][:n_exist])
        after = model.reach(x, y, sites["x"][sol.chosen], sites["y"][sol.chosen])
        plan = _plan(sites, n_exist, sol.chosen, p["move_m"], before, after)
        tables = {
            "hotspots": _hotspot_table(grid, proj, counts, z, pv, hot, bands),
            "coverage": _coverage_table(bands, band, before, after, model),
            "points": _with_lonlat(plan, proj),
            "candidates": _candidate_table(sites, sol.chosen, proj),
        }
        summary = _summary(p, total, int(located.sum()), grid, hot, bands, sites, n_exist, k,
                           sol, before, after, plan, model)
        summary["calls"]["outside_study_area"] = int((~inside).sum())
        summary["calls"]["outside_bbox"] = int((~in_box).sum())
        summary["candidates"]["existing_outside_bbox"] = existing_outside
        summary["candidates"]["existing_far_from_calls"] = n_far
        summary["grid"]["cells_in_study_area"] = int(area.sum())
        summary["solver"]["demand_points"] = len(demand["w"])
        summary["solver"]["model"] = (
            "exact: one demand point per distinct call position" if p["demand_band"] == "all"
            else f"exact for the calls of band {p['demand_band']}")
        if p["demand_band"] != "all":
            summary["coverage_demand_band"] = {
                "before": _stats(before["reach"][dmask], model.limit)["share"],
                "after": _stats(after["reach"][dmask], model.limit)["share"]}
        notes = [f"{total - int(located.sum())} of {total} calls have no position and are "
                 "left out of the hotspots and the coverage figures"]
        if p["timezone"] == "UTC":
            notes.append("time bands are in UTC hours; pass --param timezone=<IANA zone> "
                         "(e.g. Asia/Seoul) for the city's local hours")
        if far:
            notes.append(far)
        if box is not None:
            notes.append(f"bbox={p['bbox']}: {int((~in_box).sum())} located calls and "
                         f"{existing_outside} existing points outside it are left out")
        if int((~inside).sum()):
            notes.append(f"{int((~inside).sum())} located calls lie outside study_area="
                         f"{p['study_area']} and are left out")
        from_demand = int(sites["from_demand"].sum())
        if from_demand:
            notes.append(f"only {int(hot.any(axis=1).sum())} cells are significant hotspots at "
                         f"alpha {p['alpha']}: the {from_demand} occupied cells with the most "
                         "calls were added as candidates so that k sites can be placed")
        notes.append(f"covering model: {sol.method}, {len(sol.chosen)} sites open, "
                     + ("proven optimal" if sol.gap == 0 else
                        f"within {sol.gap:.2%} of the optimum") + f" ({sol.seconds:.1f} s)")
        return PipelineResult(tables=tables, summary=summary, notes=notes)


#: Existing points farther than this outside the calls' bounding box are warned about: they
#: cannot cover a call, and the plan would advise removing every one of them.
FAR_M = 5000.0


def parse_bbox(text: str) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` in WGS 84 degrees (None when empty); a UsageError
    saying what fits otherwise."""
    if not text.strip():
        return None
    hint = ("give minlon,minlat,maxlon,maxlat in degrees, e.g. "
            "--param bbox=126.76,37.41,127.18,37.70")
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--param bbox={text}: not four numbers", hint=hint) from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise UsageError(f"--param bbox={text}: not four numbers", hint=hint)
    w, s, e, n = values
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise UsageError(f"--param bbox={text}: needs -180 <= minlon < maxlon <= 180 and "
                         "-90 <= minlat < maxlat <= 90", hint=hint)
    return w, s, e, n


def in_bbox(box: tuple[float, float, float, float] | None, lon: np.ndarray,
            lat: np.ndarray) -> np.ndarray:
    """True for the points inside ``box`` (every point when it is None)."""
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if box is None:
        return np.ones(len(lon), dtype=bool)
    w, s, e, n = box
    return (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)


def _extent(lon: np.ndarray, lat: np.ndarray) -> str:
    return (f"{np.floor(lon.min() * 100) / 100:.2f},{np.floor(lat.min() * 100) / 100:.2f},"
            f"{np.ceil(lon.max() * 100) / 100:.2f},{np.ceil(lat.max() * 100) / 100:.2f}")


def _far_points(existing: dict[str, np.ndarray], lon: np.ndarray,
                lat: np.ndarray) -> tuple[int, str]:
    """How many existing points lie more than :data:`FAR_M` outside the calls' bounding box
    (another city's facilities in the same lake), and a warning about them ('' for none)."""
    if not len(existing["id"]):
        return 0, ""
    plon = np.asarray(existing["lon"], dtype=np.float64)
    plat = np.asarray(existing["lat"], dtype=np.float64)
    near_lon = np.clip(plon, lon.min(), lon.max())
    near_lat = np.clip(plat, lat.min(), lat.max())
    dist = haversine_m(plon, plat, near_lon, near_lat)
    far = dist > FAR_M
    if not far.any():
        return 0, ""
    worst = int(np.argmax(dist))
    name = existing["name"][worst] or existing["id"][worst]
    n = int(far.sum())
    return n, (f"{n} of {len(dist)} existing points lie more than {FAR_M / 1000:g} km "
               f"outside the calls' extent (farthest: {name}, {dist[worst] / 1000:,.0f} km): "
               "they cannot cover a call and the plan would remove them; if the lake holds "
               f"another city's points, restrict the analysis with --param "
               f"bbox={_extent(lon, lat)} (the calls' extent)")


def _existing(ctx: PipelineContext, kind: str) -> dict[str, np.ndarray]:
    """The existing points of ``kind`` (empty when the lake has no PointOfInterest)."""
    if not ctx.has("PointOfInterest"):
        t = pa.table({"id": pa.array([], pa.string()), "name": pa.array([], pa.string()),
                      "lon": pa.array([], pa.float64()), "lat": pa.array([], pa.float64())})
    else:
        t = ctx.sql(_POINTS_SQL, [kind])
    return {c: np.asarray(t.column(c).to_numpy(zero_copy_only=False)) for c in t.column_names}


def _inside(spec: str, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Calls inside the study area: all of them for bbox and hull (the area is built from
    them), those inside the polygon for a GeoJSON file."""
    if spec in STUDY_AREAS:
        return np.ones(len(lon), dtype=bool)
    return in_polygons(lon, lat, read_polygons(spec))


def _area(spec: str, grid: GridCounts, proj: LocalProjection, x: np.ndarray, y: np.ndarray,
          counts: np.ndarray) -> np.ndarray:
    """Cells of the grid in the study area (a cell holding calls always is)."""
    cx, cy = cell_centres(*grid.cell_ix_iy(), grid.size)
    return study_area_mask(spec, proj, cx, cy, x, y, grid.size) | (counts[:, -1] > 0)


def _gi_star_in(counts: np.ndarray, grid: GridCounts, area: np.ndarray,
                rings: int) -> tuple[np.ndarray, np.ndarray]:
    """Gi* over the cells of the study area only (cells outside: z 0, p 1): empty cells where
    no call can occur would pull the mean down and inflate every occupied cell's z."""
    weights = neighbour_weights(grid.width, grid.height, rings)
    if area.all():
        return gi_star(counts, weights)
    sub = np.flatnonzero(area)
    z = np.zeros(counts.shape)
    pv = np.ones(counts.shape)
    z[sub], pv[sub] = gi_star(counts[sub], weights[sub][:, sub])
    return z, pv


def _candidates(grid: GridCounts, z: np.ndarray, hot: np.ndarray, calls: np.ndarray,
                existing: dict[str, np.ndarray], proj: LocalProjection,
                limit: int, k: int) -> dict[str, np.ndarray]:
    """Existing points first, then hotspot cell centres by decreasing peak z (ties by cell);
    when fewer than ``k`` cells are hotspots, the occupied cells with the most calls (ties by
    cell) fill up to ``k`` new cells."""
    ex_x, ex_y = proj.to_xy(existing["lon"], existing["lat"])
    room = max(limit - len(ex_x), k)
    any_hot = np.asarray(hot.any(axis=1), dtype=bool)
    peak = np.where(hot, z, -np.inf).max(axis=1)
    cells = np.flatnonzero(any_hot)
    cells = cells[np.lexsort((cells, -peak[cells]))][:room]
    extra = np.flatnonzero(~any_hot & (calls > 0))
    extra = extra[np.lexsort((extra, -calls[extra]))][:max(k - len(cells), 0)]
    cells = np.sort(np.concatenate([cells, extra]))
    ix, iy = grid.cell_ix_iy()
    cx, cy = cell_centres(ix[cells], iy[cells], grid.size)
    labels = cell_labels(ix[cells], iy[cells], grid.size)
    kind = ["hotspot cell" if any_hot[c] else "busy cell" for c in cells.tolist()]
    return {
        "x": np.concatenate([ex_x, cx]), "y": np.concatenate([ex_y, cy]),
        "site": np.array(list(existing["id"]) + labels, dtype=object),
        "name": np.array(list(existing["name"]) + [f"{w} {c}" for w, c in
                                                   zip(kind, labels, strict=True)],
                         dtype=object),
        "existing": np.arange(len(ex_x) + len(cells)) < len(ex_x),
        "from_demand": np.concatenate([np.zeros(len(ex_x), dtype=bool), ~any_hot[cells]]),
    }


def _band_mask(bands: Bands, band: np.ndarray, name: str) -> np.ndarray:
    """Calls of the demand band (every call for ``all``)."""
    if name == "all":
        return np.ones(len(band), dtype=bool)
    if name not in bands.names:
        raise UsageError(f"--param demand_band={name}: not one of the bands",
                         hint=f"choose all or one of {', '.join(bands.names)}")
    return np.asarray(band == bands.names.index(name))


def _demand(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Calls at each distinct position of the demand band (kept internal): coverage is
    reported call by call, so the model solves on the calls themselves, merged where they
    share a position (block geocodes put many calls on one point)."""
    points, w = np.unique(np.column_stack([x[mask], y[mask]]), axis=0, return_counts=True)
    return {"x": points[:, 0], "y": points[:, 1], "w": w.astype(np.float64)}


class _Model:
    """Coverage by radius or by road travel time: the matrix and per-call reach."""

    def __init__(self, p: dict[str, Any], proj: LocalProjection, ctx: PipelineContext) -> None:
        self.radius = float(p["radius_m"])
        self.road = p["coverage"] == "road"
        self.budget = float(p["travel_min"]) * 60.0
        self.proj = proj
        self.graph: Any = None
        if self.road:
            if not ctx.has("RoadSegment"):
                raise UsageError("coverage=road needs road segments in the lake",
                                 hint="hubctl ingest osm FILE.osm, or use coverage=radius")
            from hubctl.pipelines.roads import SEGMENT_SQL, build_graph
            self.graph = build_graph(ctx.sql(SEGMENT_SQL))

    @property
    def unit(self) -> str:
        """What reach is measured in."""
        return "s" if self.road else "m"

    @property
    def limit(self) -> float:
        """The reach within which a call counts as covered."""
        return self.budget if self.road else self.radius

    def _nodes(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        lon, lat = self.proj.to_lonlat(x, y)
        return np.asarray(self.graph.snap(lon, lat)[0], dtype=np.int64)

    def cover(self, dx: np.ndarray, dy: np.ndarray, sx: np.ndarray,
              sy: np.ndarray) -> sp.csr_matrix:
        """cover[i, j]: site j reaches demand i."""
        if self.road:
            from hubctl.pipelines.roads import cover_within
            demand = self._nodes(dx, dy)
            return cover_within(self.graph, self._nodes(sx, sy), demand,
                                np.full(len(demand), self.budget))
        shape = (len(dx), len(sx))
        if not len(sx):
            return sp.csr_matrix(shape, dtype=bool)
        pairs = cKDTree(np.column_stack([dx, dy])).sparse_distance_matrix(
            cKDTree(np.column_stack([sx, sy])), self.radius, output_type="ndarray")
        return sp.csr_matrix((np.ones(len(pairs), dtype=bool), (pairs["i"], pairs["j"])),
                             shape=shape)

    def reach(self, x: np.ndarray, y: np.ndarray, sx: np.ndarray,
              sy: np.ndarray) -> dict[str, np.ndarray]:
        """Per call: distance (m) or travel time (s) to the nearest site, and which site."""
        if not len(sx):
            return {"reach": np.full(len(x), np.inf), "site": np.full(len(x), -1)}
        if self.road:
            nodes = self._nodes(sx, sy)
            secs, origin = self.graph.times_from(nodes)
            at = self._nodes(x, y)
            site_of_node = {int(n): i for i, n in reversed(list(enumerate(nodes)))}
            lookup = np.array([site_of_node.get(int(o), -1) for o in origin], dtype=np.int64)
            return {"reach": np.asarray(secs)[at], "site": lookup[at]}
        dist, idx = cKDTree(np.column_stack([sx, sy])).query(np.column_stack([x, y]))
        return {"reach": np.asarray(dist, dtype=np.float64), "site": np.asarray(idx)}


def _stats(reach: np.ndarray, limit: float) -> dict[str, Any]:
    finite = reach[np.isfinite(reach)]
    n = len(reach)
    return {
        "covered": int((reach <= limit).sum()),
        "share": round(float((reach <= limit).sum()) / n, 6) if n else 0.0,
        "mean": round(float(finite.mean()), 1) if finite.size else None,
        "p90": round(float(np.percentile(finite, 90)), 1) if finite.size else None,
        "unreachable": int(n - finite.size),
    }


def _plan(sites: dict[str, np.ndarray], n_exist: int, chosen: np.ndarray, move_m: float,
          before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> pa.Table:
    """One row per existing or chosen site: keep, add, move (from -> to) or remove."""
    open_ = np.zeros(len(sites["x"]), dtype=bool)
    open_[chosen] = True
    removed = np.flatnonzero(~open_[:n_exist])
    added = np.flatnonzero(open_[n_exist:]) + n_exist
    partner = np.full(len(open_), -1)
    if len(removed) and len(added) and move_m > 0:
        d = np.hypot(sites["x"][removed, None] - sites["x"][None, added],
                     sites["y"][removed, None] - sites["y"][None, added])
        r, a = linear_sum_assignment(np.where(d <= move_m, d, 1e12))
        ok = d[r, a] <= move_m
        partner[removed[r[ok]]] = added[a[ok]]
        partner[added[a[ok]]] = removed[r[ok]]
    calls_before = np.bincount(before["site"][before["site"] >= 0], minlength=len(open_))
    chosen_sorted = np.asarray(chosen)
    calls_after = np.zeros(len(open_), dtype=np.int64)
    if len(chosen_sorted):
        hit = after["site"] >= 0
        calls_after[chosen_sorted] = np.bincount(after["site"][hit],
                                                 minlength=len(chosen_sorted))
    rows = np.concatenate([np.arange(n_exist), added]).astype(np.int64)
    action = []
    for i in rows.tolist():
        if i < n_exist:
            action.append("keep" if open_[i] else ("move" if partner[i] >= 0 else "remove"))
        else:
            action.append("move-to" if partner[i] >= 0 else "add")
    other = [str(sites["site"][partner[i]]) if partner[i] >= 0 else None for i in rows]
    dist = [round(float(np.hypot(sites["x"][i] - sites["x"][partner[i]],
                                 sites["y"][i] - sites["y"][partner[i]])), 1)
            if partner[i] >= 0 else None for i in rows]
    return pa.table({
        "site": pa.array([str(s) for s in sites["site"][rows]], pa.string()),
        "name": pa.array([str(s) for s in sites["name"][rows]], pa.string()),
        "existing": pa.array(sites["existing"][rows]),
        "action": pa.array(action, pa.string()),
        "paired_with": pa.array(other, pa.string()),
        "move_m": pa.array(dist, pa.float64()),
        "x_m": pa.array(np.round(sites["x"][rows], 1)),
        "y_m": pa.array(np.round(sites["y"][rows], 1)),
        "nearest_calls_before": pa.array(calls_before[rows].astype(np.int64)),
        "nearest_calls_after": pa.array(calls_after[rows]),
    })


def _with_lonlat(plan: pa.Table, proj: LocalProjection) -> pa.Table:
    lon, lat = proj.to_lonlat(plan.column("x_m").to_numpy(), plan.column("y_m").to_numpy())
    out = plan.drop_columns(["x_m", "y_m"])
    return out.append_column("lon", pa.array(np.round(lon, 6))).append_column(
        "lat", pa.array(np.round(lat, 6)))


def _candidate_table(sites: dict[str, np.ndarray], chosen: np.ndarray,
                     proj: LocalProjection) -> pa.Table:
    """Every candidate site the model chose from: where it came from and whether it opened."""
    open_ = np.zeros(len(sites["x"]), dtype=bool)
    open_[np.asarray(chosen, dtype=np.int64)] = True
    source = np.where(sites["existing"], "existing",
                      np.where(sites["from_demand"], "busy-cell", "hotspot-cell"))
    lon, lat = proj.to_lonlat(sites["x"], sites["y"])
    return pa.table({
        "site": pa.array([str(v) for v in sites["site"]], pa.string()),
        "source": pa.array(source.tolist(), pa.string()),
        "chosen": pa.array(open_),
        "lon": pa.array(lon), "lat": pa.array(lat),  # unrounded: the model's own positions
    })


def _hotspot_table(grid: GridCounts, proj: LocalProjection, counts: np.ndarray, z: np.ndarray,
                   pv: np.ndarray, hot: np.ndarray, bands: Bands) -> pa.Table:
    """Per cell with calls (or a hotspot) and band: calls, Gi* z and p, hotspot flag."""
    names = [*bands.names, "all"]
    keep_cell, keep_band = np.nonzero((counts > 0) | hot)
    ix, iy = grid.cell_ix_iy()
    cx, cy = cell_centres(ix[keep_cell], iy[keep_cell], grid.size)
    lon, lat = proj.to_lonlat(cx, cy)
    return pa.table({
        "cell": pa.array(cell_labels(ix[keep_cell], iy[keep_cell], grid.size), pa.string()),
        "band": pa.array([names[b] for b in keep_band], pa.string()),
        "calls": pa.array(counts[keep_cell, keep_band].astype(np.int64)),
        "gi_z": pa.array(np.round(z[keep_cell, keep_band], 4)),
        "gi_p": pa.array(np.round(pv[keep_cell, keep_band], 6)),
        "hotspot": pa.array(hot[keep_cell, keep_band]),
        "lon": pa.array(np.round(lon, 6)), "lat": pa.array(np.round(lat, 6)),
        "cell_m": pa.array(np.full(len(keep_cell), grid.size)),
    })


def _coverage_table(bands: Bands, band: np.ndarray, before: dict[str, np.ndarray],
                    after: dict[str, np.ndarray], model: _Model) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for b, name in enumerate([*bands.names, "all"]):
        mask = band == b if name != "all" else np.ones(len(band), dtype=bool)
        sb, sa = _stats(before["reach"][mask], model.limit), _stats(after["reach"][mask],
                                                                     model.limit)
        rows.append({"band": name, "calls": int(mask.sum()), "unit": model.unit,
                     "limit": model.limit,
                     **{f"{k}_before": v for k, v in sb.items()},
                     **{f"{k}_after": v for k, v in sa.items()}})
    return pa.Table.from_pylist(rows)


def _summary(p: dict[str, Any], total: int, located: int, grid: GridCounts, hot: np.ndarray,
             bands: Bands, sites: dict[str, np.ndarray], n_exist: int, k: int,
             sol: CoverSolution, before: dict[str, np.ndarray], after: dict[str, np.ndarray],
             plan: pa.Table, model: _Model) -> dict[str, Any]:
    actions = plan.column("action").to_pylist()
    sb, sa = _stats(before["reach"], model.limit), _stats(after["reach"], model.limit)
    reach = "time_s" if model.road else "distance_m"
    return {
        "calls": {"total": total, "located": located, "without_location": total - located},
        "grid": {"cell_m": grid.size, "cells": grid.n_cells,
                 "cells_with_calls": int((grid.counts.sum(axis=1) > 0).sum())},
        "hotspots": {name: int(hot[:, b].sum()) for b, name in
                     enumerate([*bands.names, "all"])},
        "candidates": {"existing": n_exist,
                       "hotspot_cells": int(len(sites["x"]) - n_exist - sites["from_demand"].sum()),
                       "busy_cells": int(sites["from_demand"].sum())},
        "k": k,
        "demand_band": p["demand_band"],
        "coverage_mode": p["coverage"],
        "limit": {"value": model.limit, "unit": model.unit},
        "coverage": {"before": sb["share"], "after": sa["share"],
                     "calls_before": sb["covered"], "calls_after": sa["covered"]},
        reach: {"before": {"mean": sb["mean"], "p90": sb["p90"]},
                "after": {"mean": sa["mean"], "p90": sa["p90"]}},
        "changes": {a: actions.count(a) for a in ("keep", "add", "move", "remove")},
        "solver": {"method": sol.method,
                   "gap": round(sol.gap, 6) if np.isfinite(sol.gap) else None,
                   "seconds": round(sol.seconds, 3), "model_covered": sol.covered,
                   "model_total": sol.total, "opened": int(len(sol.chosen))},
    }


PIPELINE = PatrolPoints()
