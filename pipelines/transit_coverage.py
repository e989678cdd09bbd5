"""Walking catchments of stops over demand points, per stop, route and route direction.

One KD-tree query pairs every population point with every served stop within the catchment
radius; everything else is integer arithmetic over those pairs (bincount, unique), so 100,000
points and thousands of stops take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubctl.pipelines.transit_geo import catchment_pairs

__all__ = ["Coverage", "StopRoutes", "coverage"]

_DENSE_LIMIT = 200_000_000  # points x groups of the bitmap (bytes)


@dataclass
class StopRoutes:
    """Which route (and route direction) serves which stop, as integer codes.

    ``stop`` indexes the stop arrays, ``route`` the route list, ``routedir`` the route-direction
    list; ``departures`` is how many times a day that route-direction departs from that stop.
    """

    stop: np.ndarray
    route: np.ndarray
    routedir: np.ndarray
    departures: np.ndarray
    n_routes: int
    n_routedirs: int


@dataclass
class Coverage:
    """Catchment figures; arrays are indexed by point, stop, route or route-direction."""

    pair_point: np.ndarray
    pair_stop: np.ndarray
    stop_population: np.ndarray
    covered: np.ndarray            # point is within the catchment of a frequent stop
    served: np.ndarray             # point is within the catchment of any served stop
    route_population: np.ndarray   # people within the catchment of a route's stops
    routedir_population: np.ndarray
    route_share: np.ndarray        # people split equally among the routes reaching them
    routes_reaching: np.ndarray    # per point: how many routes reach it
    only_route: np.ndarray         # per point: the one route reaching it, else -1


def coverage(points: np.ndarray, people: np.ndarray, stops: np.ndarray, frequent: np.ndarray,
             sr: StopRoutes, radius: float,
             pairs: tuple[np.ndarray, np.ndarray] | None = None) -> Coverage:
    """Catchment figures of ``stops`` (projected metres) over ``points`` weighted by ``people``:
    the points within ``radius`` in a straight line, or the (point, stop) ``pairs`` given (a
    walking catchment over the street network, :func:`pipelines.roads.walking_pairs`)."""
    n_points, n_stops = len(points), len(stops)
    pi, pj = pairs if pairs is not None else catchment_pairs(points, stops, radius)[:2]
    stop_population = np.bincount(pj, weights=people[pi], minlength=n_stops)
    covered = np.zeros(n_points, bool)
    covered[pi[frequent[pj]]] = True
    served = np.zeros(n_points, bool)
    served[pi] = True
    point_route = _point_groups(pi, pj, sr.stop, sr.route, sr.n_routes)
    point_routedir = _point_groups(pi, pj, sr.stop, sr.routedir, sr.n_routedirs)
    route_population = np.bincount(point_route[1], weights=people[point_route[0]],
                                   minlength=sr.n_routes)
    routedir_population = np.bincount(point_routedir[1], weights=people[point_routedir[0]],
                                      minlength=sr.n_routedirs)
    reaching = np.bincount(point_route[0], minlength=n_points)
    share: np.ndarray = np.zeros(sr.n_routes)
    if len(point_route[0]):
        share = np.bincount(point_route[1], minlength=sr.n_routes,
                            weights=people[point_route[0]] / reaching[point_route[0]])
    only = np.full(n_points, -1, np.int64)
    single = reaching[point_route[0]] == 1
    only[point_route[0][single]] = point_route[1][single]
    return Coverage(pi, pj, stop_population, covered, served, route_population,
                    routedir_population, share, reaching, only)


def _point_groups(pi: np.ndarray, pj: np.ndarray, sr_stop: np.ndarray, sr_group: np.ndarray,
                  n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (point, group) pairs where a stop of the group is within reach of the point."""
    if len(pi) == 0 or len(sr_stop) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(sr_stop, kind="stable")
    s_sorted, g_sorted = sr_stop[order], sr_group[order]
    starts = np.searchsorted(s_sorted, pj, side="left")
    ends = np.searchsorted(s_sorted, pj, side="right")
    counts = ends - starts
    rep_point = np.repeat(pi, counts)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    groups = g_sorted[np.arange(len(rep_point)) + offsets]
    width = max(n_groups, 1)
    if (int(pi.max()) + 1) * width <= _DENSE_LIMIT:  # a bitmap beats sorting at city scale
        seen = np.zeros((int(pi.max()) + 1, width), bool)
        seen[rep_point, groups] = True
        point, group = np.nonzero(seen)
        return point.astype(np.int64), group.astype(np.int64)
    key = np.unique(rep_point * np.int64(width) + groups)
    return key // width, key % width
