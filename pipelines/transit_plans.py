"""Route recommendations besides frequencies: removal and shortening candidates, and areas
that need new or extended service.

Each candidate carries before/after figures so an operator can weigh it: vehicle-km and
vehicle-hours a day saved, people who would lose their only route, boardings lost, people a
new stop would reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hubctl.pipelines.transit_coverage import Coverage
from hubctl.pipelines.transit_geo import (
    Grid,
    LocalProjection,
    catchment_pairs,
    cluster_cells,
    nearest,
)

__all__ = ["REMOVAL_SCHEMA", "Pattern", "Segments", "Uncovered", "new_service", "redundancy_of",
           "removals", "shortenings", "uncovered_cells"]


@dataclass
class Uncovered:
    """Uncovered demand gridded: one row per cell (col, row) with its people."""

    col: np.ndarray
    row: np.ndarray
    people: np.ndarray
    points: np.ndarray
    centre_xy: np.ndarray


def uncovered_cells(xy: np.ndarray, people: np.ndarray, covered: np.ndarray,
                    grid: Grid) -> Uncovered:
    """Population not covered by a frequent stop, summed per grid cell (cells sorted)."""
    keep = (~covered) & (people > 0)
    col, row = grid.index(xy[keep])
    if len(col) == 0:
        z = np.zeros(0, np.int64)
        return Uncovered(z, z.copy(), np.zeros(0), z.copy(), np.zeros((0, 2)))
    key = np.stack([col, row], axis=1)
    uniq, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, weights=people[keep], minlength=len(uniq))
    count = np.bincount(inverse, minlength=len(uniq))
    return Uncovered(uniq[:, 0], uniq[:, 1], total, count, grid.centres(uniq[:, 0], uniq[:, 1]))


def new_service(unc: Uncovered, proj: LocalProjection, points_xy: np.ndarray, people: np.ndarray,
                covered: np.ndarray, stops_xy: np.ndarray, stop_ids: list[str],
                stop_best_route: list[str | None], route_names: dict[str, str], radius: float,
                min_people: float, extend_within_m: float, limit: int) -> pa.Table:
    """Clusters of uncovered cells (touching by edge or corner) with at least ``min_people``,
    largest first. Each is placed where one new stop reaches the most uncovered people (its
    people-weighted centre, or the best centre of one of its cells for spread-out clusters),
    with the nearest served stop and its busiest route (the corridor)."""
    labels = cluster_cells(unc.col, unc.row)
    n = int(labels.max()) + 1 if len(labels) else 0
    total = np.bincount(labels, weights=unc.people, minlength=n)
    cells = np.bincount(labels, minlength=n)
    # where one stop reaches the most uncovered people: the best cell centre of each cluster
    reach_cell = _reached_by_stop(unc.centre_xy, points_xy[~covered], people[~covered], radius)
    best = np.lexsort((np.arange(len(labels)), -reach_cell, labels))
    first = best[np.r_[True, labels[best][1:] != labels[best][:-1]]] if len(best) else best
    anchor = np.full(n, -1, np.int64)
    anchor[labels[first]] = first
    order = [k for k in np.lexsort((np.arange(n), -total)) if total[k] >= min_people][:limit]
    # ... unless the people-weighted centre of the cluster reaches as many (compact clusters)
    cx = np.bincount(labels, weights=unc.people * unc.centre_xy[:, 0], minlength=n)
    cy = np.bincount(labels, weights=unc.people * unc.centre_xy[:, 1], minlength=n)
    mean_xy = np.column_stack([cx[order] / total[order], cy[order] / total[order]]) \
        if order else np.zeros((0, 2))
    reach_mean = _reached_by_stop(mean_xy, points_xy[~covered], people[~covered], radius)
    reach = reach_cell[anchor[order]] if order else np.zeros(0)
    use_mean = reach_mean >= reach
    centre = np.where(use_mean[:, None], mean_xy, unc.centre_xy[anchor[order]]) if order \
        else np.zeros((0, 2))
    reach = np.where(use_mean, reach_mean, reach)
    dist, idx = nearest(centre, stops_xy)
    lon, lat = (proj.to_lonlat(centre[:, 0], centre[:, 1]) if len(centre)
                else (np.zeros(0), np.zeros(0)))
    rows = []
    for k, label in enumerate(order):
        j = int(idx[k])
        route = stop_best_route[j] if j >= 0 else None
        action = ("extend" if route and dist[k] <= extend_within_m else "new-route")
        rows.append({
            "candidate": k + 1, "cells": int(cells[label]),
            "uncovered_population": float(total[label]),
            "lon": float(lon[k]), "lat": float(lat[k]),
            "nearest_stop": stop_ids[j] if j >= 0 else None,
            "nearest_stop_m": float(dist[k]) if np.isfinite(dist[k]) else None,
            "nearest_route": route, "nearest_route_name": route_names.get(route or ""),
            "action": action,
            "population_reached_by_one_stop": float(reach[k]),
            "uncovered_after_one_stop": float(total[label] - min(reach[k], total[label])),
        })
    return pa.Table.from_pylist(rows, schema=_NEW_SCHEMA)


_NEW_SCHEMA = pa.schema([
    ("candidate", pa.int64()), ("cells", pa.int64()), ("uncovered_population", pa.float64()),
    ("lon", pa.float64()), ("lat", pa.float64()), ("nearest_stop", pa.string()),
    ("nearest_stop_m", pa.float64()), ("nearest_route", pa.string()),
    ("nearest_route_name", pa.string()), ("action", pa.string()),
    ("population_reached_by_one_stop", pa.float64()),
    ("uncovered_after_one_stop", pa.float64())])


def _reached_by_stop(centres: np.ndarray, xy: np.ndarray, people: np.ndarray,
                     radius: float) -> np.ndarray:
    """People among ``xy`` within ``radius`` of each centre (a stop placed there)."""
    pi, pj, _ = catchment_pairs(xy, centres, radius)
    return np.bincount(pj, weights=people[pi], minlength=len(centres))


@dataclass
class Segments:
    """Consecutive stop pairs served, one entry per (route direction, ordered pair)."""

    route: np.ndarray   # route code
    group: np.ndarray   # route-direction code
    pair: np.ndarray    # id of the ordered stop pair (a, b)
    weight: np.ndarray  # demand at a plus demand at b
    n_routes: int


def redundancy_of(seg: Segments, group: np.ndarray, n: int,
                  active: np.ndarray | None = None) -> np.ndarray:
    """Per group: the demand-weighted share of its segments that another *active* route also
    serves (the plain share where its segments carry no demand)."""
    live = np.ones(seg.n_routes, bool) if active is None else active
    r = max(seg.n_routes, 1)
    key = np.unique(seg.pair * r + seg.route)
    pair_of, route_of = key // r, key % r
    routes = np.bincount(pair_of[live[route_of]], minlength=int(seg.pair.max(initial=-1)) + 1)
    shared = (routes[seg.pair] - live[seg.route]) >= 1
    weighted = np.bincount(group, weights=seg.weight * shared, minlength=n)
    wsum = np.bincount(group, weights=seg.weight, minlength=n)
    plain = np.bincount(group, weights=shared, minlength=n) / np.maximum(
        np.bincount(group, minlength=n), 1)
    return np.where(wsum > 0, weighted / np.where(wsum > 0, wsum, 1), plain)


def removals(routes: pa.Table, only_route_people: np.ndarray, seg: Segments,
             redundancy_min: float, low_quantile: float) -> pa.Table:
    """Routes whose segments are mostly served by other routes and whose demand per vehicle-km
    is in the lowest ``low_quantile`` of routes: candidates for removal, with what removal saves
    and who would lose their only route. ``routes`` is one row per route (see bus_routes).

    Candidates are taken greedily, least demand per vehicle-km first, and each must stay
    redundant with the earlier candidates gone, so the list holds as a whole: no two routes
    that only duplicate each other are both removed.
    """
    eff = np.asarray(routes["demand_per_vehicle_km"].to_numpy(zero_copy_only=False), float)
    red = np.asarray(routes["redundancy"].to_numpy(zero_copy_only=False), float)
    ok = np.isfinite(eff)
    limit = float(np.quantile(eff[ok], low_quantile)) if ok.any() else -np.inf
    pick = np.flatnonzero(ok & np.nan_to_num(red >= redundancy_min) & (eff <= limit))
    active = np.ones(seg.n_routes, bool)
    rows = []
    for k in sorted(pick.tolist(), key=lambda i: (eff[i], i)):
        now = redundancy_of(seg, seg.route, seg.n_routes, active)[k]
        if now < redundancy_min:
            continue
        active[k] = False
        r = {c: routes[c][int(k)].as_py() for c in routes.column_names}
        rows.append({
            "kind": "remove", "route": r["route"], "route_id": r["route_id"],
            "short_name": r["short_name"], "direction": None, "from_stop": None,
            "to_stop": None, "stops_removed": r["stops"], "redundancy": float(now),
            "demand_per_vehicle_km": r["demand_per_vehicle_km"],
            "vehicle_km_before": r["vehicle_km_per_day"], "vehicle_km_after": 0.0,
            "vehicle_hours_before": r["vehicle_hours_per_day"], "vehicle_hours_after": 0.0,
            "population_losing_only_route": float(only_route_people[int(r["_code"])]),
            "boardings_lost_per_day": r["boardings_per_day"],
        })
    return pa.Table.from_pylist(rows, schema=REMOVAL_SCHEMA)


REMOVAL_SCHEMA = pa.schema([
    ("kind", pa.string()), ("route", pa.string()), ("route_id", pa.string()),
    ("short_name", pa.string()), ("direction", pa.int64()), ("from_stop", pa.string()),
    ("to_stop", pa.string()), ("stops_removed", pa.int64()), ("redundancy", pa.float64()),
    ("demand_per_vehicle_km", pa.float64()), ("vehicle_km_before", pa.float64()),
    ("vehicle_km_after", pa.float64()), ("vehicle_hours_before", pa.float64()),
    ("vehicle_hours_after", pa.float64()), ("population_losing_only_route", pa.float64()),
    ("boardings_lost_per_day", pa.float64())])


@dataclass
class Pattern:
    """The usual stop sequence of one route direction, with what the route does per day."""

    route_code: int
    route: str
    route_id: str
    short_name: str | None
    direction: int
    stops: np.ndarray          # stop indices in order
    trips_per_day: float
    km_per_trip: float
    hours_per_trip: float
    redundancy: float
    demand_per_vehicle_km: float


def shortenings(patterns: list[Pattern], cov: Coverage, people: np.ndarray,
                stop_xy: np.ndarray, stop_boardings: np.ndarray, stop_ids: list[str],
                max_loss: float, min_stops: int) -> list[dict[str, object]]:
    """Route ends (first or last stops of the usual pattern) whose removal leaves at most
    ``max_loss`` people without any route and loses at most ``max_loss`` boardings a day.

    A person is lost when the route is the only one reaching them and every stop of the route
    that reaches them lies in the cut end. The longest such end of at least ``min_stops`` stops
    is proposed, per route direction.
    """
    rows: list[dict[str, object]] = []
    # pairs of points that have exactly one route, grouped by that route
    alone = cov.only_route[cov.pair_point]
    keep = np.flatnonzero(alone >= 0)
    by_route = keep[np.argsort(alone[keep], kind="stable")]
    routes_sorted = alone[by_route]
    position = np.full(len(stop_xy), -1, np.int64)
    for p in patterns:
        n = len(p.stops)
        if n < min_stops + 2:
            continue
        lo_i, hi_i = np.searchsorted(routes_sorted, [p.route_code, p.route_code + 1])
        sel = by_route[lo_i:hi_i]
        pts, sts = cov.pair_point[sel], cov.pair_stop[sel]
        position[p.stops] = np.arange(n)
        pos = position[sts]
        position[p.stops] = -1
        # per point: the first and last pattern position reaching it; a stop of the route
        # outside the pattern (another variant) keeps the point served
        touched, inv = np.unique(pts, return_inverse=True)
        inv = inv.reshape(-1)
        lo = np.full(len(touched), n, np.int64)
        hi = np.full(len(touched), -1, np.int64)
        np.minimum.at(lo, inv[pos >= 0], pos[pos >= 0])
        np.maximum.at(hi, inv[pos >= 0], pos[pos >= 0])
        outside = np.zeros(len(touched), bool)
        outside[inv[pos < 0]] = True
        lo, hi, weights = lo[~outside], hi[~outside], people[touched[~outside]]
        board = stop_boardings[p.stops]
        for kind, keep_end in (("shorten-end", True), ("shorten-start", False)):
            best = _best_cut(n, lo, hi, weights, board, keep_end, max_loss, min_stops)
            if best is None:
                continue
            cut, lost, lost_board = best
            cut_stops = p.stops[cut:] if keep_end else p.stops[:cut]
            path = p.stops[cut - 1:] if keep_end else p.stops[:cut + 1]
            seg = stop_xy[path]
            km = float(np.sum(np.hypot(*(seg[1:] - seg[:-1]).T))) / 1000
            rows.append({
                "kind": kind, "route": p.route, "route_id": p.route_id,
                "short_name": p.short_name, "direction": p.direction,
                "from_stop": stop_ids[int(cut_stops[0])], "to_stop": stop_ids[int(cut_stops[-1])],
                "stops_removed": len(cut_stops), "redundancy": p.redundancy,
                "demand_per_vehicle_km": p.demand_per_vehicle_km,
                "vehicle_km_before": p.trips_per_day * p.km_per_trip,
                "vehicle_km_after": p.trips_per_day * max(p.km_per_trip - km, 0.0),
                "vehicle_hours_before": p.trips_per_day * p.hours_per_trip,
                "vehicle_hours_after": p.trips_per_day * p.hours_per_trip
                * max(p.km_per_trip - km, 0.0) / p.km_per_trip if p.km_per_trip > 0 else None,
                "population_losing_only_route": lost, "boardings_lost_per_day": lost_board,
            })
    return rows


def _best_cut(n: int, lo: np.ndarray, hi: np.ndarray, people: np.ndarray, board: np.ndarray,
              keep_end: bool, max_loss: float, min_stops: int) -> tuple[int, float, float] | None:
    """The largest cut (positions cut.. n-1 for an end, 0..cut-1 for a start) whose losses
    stay within ``max_loss``; (cut, people lost, boardings lost) or None. ``lo``/``hi`` are the
    first and last pattern positions reaching each point that only this route reaches."""
    if keep_end:  # cutting positions >= c loses points whose first position is >= c
        ok = lo < n
        lost_at = np.bincount(lo[ok], weights=people[ok], minlength=n)
        lost = np.cumsum(lost_at[::-1])[::-1]       # lost[c] = people with first pos >= c
        boards = np.cumsum(board[::-1])[::-1]
        candidates = range(2, n - min_stops + 1)
    else:  # cutting positions < c loses points whose last position is < c
        ok = hi >= 0
        lost_at = np.bincount(hi[ok] + 1, weights=people[ok], minlength=n + 1)
        lost = np.cumsum(lost_at)                     # lost[c] = people with last pos < c
        boards = np.concatenate([[0.0], np.cumsum(board)])
        candidates = range(n - 2, min_stops - 1, -1)
    for c in candidates:  # from the biggest cut down: the first that fits is the longest
        if lost[c] <= max_loss and boards[c] <= max_loss:
            return c, float(lost[c]), float(boards[c])
    return None
