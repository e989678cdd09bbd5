"""Route and route-direction figures of a served network: the tables ``bus_routes`` reports
and the inputs of its recommendations.

:func:`build_network` turns the service summary into integer-coded arrays (stops, routes,
route directions); :meth:`Network.routedir_table` and :func:`route_totals` assemble the per
route-direction and per route figures with DuckDB over Arrow and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.duck import scratch
from hubctl.ngsild import local_id
from hubctl.pipeline import PipelineContext
from hubctl.pipelines.transit_coverage import Coverage, StopRoutes
from hubctl.pipelines.transit_demand import Boardings, match_lines
from hubctl.pipelines.transit_feed import Service
from hubctl.pipelines.transit_plans import Pattern, Segments, redundancy_of

__all__ = ["Network", "build_network", "route_boardings", "route_note", "route_totals"]


def _local(urn: str, feed: str) -> str:
    """The GTFS id inside a namespaced URN (``urn:ngsi-ld:T:<feed>:<id>`` -> ``<id>``)."""
    text = local_id(urn)
    return text[len(feed) + 1:] if text.startswith(f"{feed}:") else text


def _sql(query: str, **tables: pa.Table) -> pa.Table:
    con = scratch()
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


@dataclass
class Network:
    """Served stops and routes as arrays, with the service they come from."""

    service: Service
    stop_ids: list[str]
    stop_local: list[str]
    stop_names: pa.Array
    lon: np.ndarray
    lat: np.ndarray
    departures: np.ndarray
    day_trips_per_hour: np.ndarray
    peak_hour_trips: np.ndarray
    routes_per_stop: np.ndarray
    route_list: list[str]
    routedirs: list[tuple[str, int]]
    stop_routes: StopRoutes
    route_info: dict[str, dict[str, Any]]
    stop_best_route: list[str | None]
    stops_without_position: int
    stop_index: dict[str, int] = field(default_factory=dict)

    @property
    def route_names(self) -> dict[str, str]:
        """Route URN -> short name (else long name, else the GTFS id)."""
        return {r: str(i["short_name"] or i["name"] or i["route_id"])
                for r, i in self.route_info.items()}

    def routedir_table(self, cov: Coverage, stop_board: np.ndarray, weight: np.ndarray,
                       direct: np.ndarray | None = None) -> pa.Table:
        """One row per route and direction (see bus_routes), with ``_code`` its index."""
        s = self.service
        days = len(s.dates)
        t = _sql(f"""
            SELECT t.route, t.dir,
                   count(*) / {days}::DOUBLE AS trips_per_day,
                   min(t.start) AS first_s, max(t.start) AS last_s,
                   median(t.length_m) / 1000 AS route_length_km,
                   coalesce(sum(t.length_m), 0) / 1000 / {days}::DOUBLE AS vehicle_km_per_day,
                   coalesce(sum(t.end_ - t.start), 0) / 3600.0 / {days}::DOUBLE
                       AS vehicle_hours_per_day,
                   any_value(h.peak_headway_min) AS peak_headway_min,
                   any_value(h.offpeak_headway_min) AS offpeak_headway_min,
                   any_value(h.mean_headway_min) AS mean_headway_min
            FROM trips t LEFT JOIN heads h ON h.route = t.route AND h.dir = t.dir
            GROUP BY t.route, t.dir ORDER BY t.route, t.dir""", trips=s.trips, heads=s.headways)
        codes = {rd: k for k, rd in enumerate(self.routedirs)}
        code = np.array([codes[(r, int(d))] for r, d in zip(t["route"].to_pylist(),
                                                            t["dir"].to_pylist(), strict=True)],
                        np.int64)
        sr = self.stop_routes
        stops = np.bincount(sr.routedir, minlength=sr.n_routedirs)[code]
        board = self.allocated(stop_board, sr.routedir, sr.n_routedirs, direct)[code]
        named = (np.bincount(sr.routedir, weights=direct, minlength=sr.n_routedirs)[code]
                 if direct is not None else np.zeros(len(code)))
        vkm = t["vehicle_km_per_day"].to_numpy(zero_copy_only=False).astype(float)
        red = self.redundancy(weight, by_route=False)[code]
        info = [self.route_info[r] for r in t["route"].to_pylist()]
        return pa.table({
            "route": t["route"],
            "route_id": pa.array([i["route_id"] for i in info], pa.string()),
            "short_name": pa.array([i["short_name"] for i in info], pa.string()),
            "name": pa.array([i["name"] for i in info], pa.string()),
            "route_type": pa.array([i["route_type"] for i in info], pa.int64()),
            "direction": t["dir"], "trips_per_day": t["trips_per_day"],
            "first_departure": _clock(t["first_s"]), "last_departure": _clock(t["last_s"]),
            "peak_headway_min": t["peak_headway_min"],
            "offpeak_headway_min": t["offpeak_headway_min"],
            "mean_headway_min": t["mean_headway_min"],
            "route_length_km": t["route_length_km"], "vehicle_km_per_day": vkm,
            "vehicle_hours_per_day": t["vehicle_hours_per_day"], "stops": stops,
            "catchment_population": cov.routedir_population[code],
            "boardings_per_day": board, "boardings_direct_per_day": named,
            "boardings_per_vehicle_km": np.where(vkm > 0, board / np.where(vkm > 0, vkm, 1),
                                                 np.nan),
            "redundancy": red, "_code": code,
        })

    def allocated(self, stop_board: np.ndarray, group: np.ndarray, n: int,
                  direct: np.ndarray | None = None) -> np.ndarray:
        """Stop boardings per group: ``direct`` (per stop-route-direction pair, the boardings
        card data names the route for) plus the rest of each stop's boardings split among the
        groups in proportion to their departures there."""
        sr = self.stop_routes
        per_stop = np.bincount(sr.stop, weights=sr.departures, minlength=len(self.stop_ids))
        share = sr.departures / np.where(per_stop[sr.stop] > 0, per_stop[sr.stop], 1)
        if direct is None:
            return np.bincount(group, weights=stop_board[sr.stop] * share, minlength=n)
        named = np.bincount(sr.stop, weights=direct, minlength=len(self.stop_ids))
        rest = np.maximum(stop_board - named, 0.0)
        return np.bincount(group, weights=direct + rest[sr.stop] * share, minlength=n)

    def direct_boardings(self, per_route: dict[tuple[int, int], float]) -> np.ndarray:
        """Per stop-route-direction pair: the boardings of (stop index, route index) in
        ``per_route`` split among the route's directions at that stop by their departures
        (card data counts a route at a stop, not its direction)."""
        sr = self.stop_routes
        width = max(sr.n_routes, 1)
        key = sr.stop.astype(np.int64) * width + sr.route
        inverse = np.unique(key, return_inverse=True)[1].reshape(-1)
        dep_key = np.bincount(inverse, weights=sr.departures)
        share = sr.departures / np.where(dep_key[inverse] > 0, dep_key[inverse], 1)
        lookup = {s * width + r: v for (s, r), v in per_route.items()}
        values = np.array([lookup.get(int(k), 0.0) for k in key], dtype=float)
        return values * share

    def segments(self, weight: np.ndarray) -> Segments:
        """The served stop pairs as integer codes, weighted by the demand at both ends."""
        seg = self.service.segments
        idx = self.stop_index
        a = np.array([idx.get(x, -1) for x in seg["a"].to_pylist()], np.int64)
        b = np.array([idx.get(x, -1) for x in seg["b"].to_pylist()], np.int64)
        w = np.where(a >= 0, weight[a], 0.0) + np.where(b >= 0, weight[b], 0.0)
        pairs = pc.dictionary_encode(pc.binary_join_element_wise(
            seg["a"].combine_chunks(), seg["b"].combine_chunks(), "\x1f")).indices
        codes = {r: k for k, r in enumerate(self.route_list)}
        rd = {x: k for k, x in enumerate(self.routedirs)}
        routes = seg["route"].to_pylist()
        return Segments(
            route=np.array([codes[r] for r in routes], np.int64).reshape(-1),
            group=np.array([rd[(r, int(d))] for r, d in zip(routes, seg["dir"].to_pylist(),
                                                            strict=True)],
                           np.int64).reshape(-1),
            pair=pairs.to_numpy(zero_copy_only=False).astype(np.int64), weight=w,
            n_routes=len(self.route_list))

    def redundancy(self, weight: np.ndarray, by_route: bool) -> np.ndarray:
        """Demand-weighted share of each route's (or route direction's) stop pairs that other
        routes also serve."""
        seg = self.segments(weight)
        if by_route:
            return redundancy_of(seg, seg.route, len(self.route_list))
        return redundancy_of(seg, seg.group, len(self.routedirs))

    def patterns(self, routes: pa.Table) -> list[Pattern]:
        """The usual stop sequence of each route direction, with its daily figures."""
        rows = {(r["route"], int(r["direction"])): r for r in routes.to_pylist()}
        codes = {r: k for k, r in enumerate(self.route_list)}
        pat = self.service.patterns
        out: list[Pattern] = []
        route_col, dir_col = pat["route"].to_pylist(), pat["dir"].to_pylist()
        stop_col = pat["stop"].to_pylist()
        groups: dict[tuple[str, int], list[int]] = {}
        for r, d, s in zip(route_col, dir_col, stop_col, strict=True):
            if s in self.stop_index:
                groups.setdefault((r, int(d)), []).append(self.stop_index[s])
        for (r, d), stops in sorted(groups.items()):
            row = rows.get((r, d))
            if row is None or not row["trips_per_day"]:
                continue
            trips = float(row["trips_per_day"])
            out.append(Pattern(
                route_code=codes[r], route=r, route_id=row["route_id"],
                short_name=row["short_name"], direction=d, stops=np.array(stops, np.int64),
                trips_per_day=trips, km_per_trip=float(row["vehicle_km_per_day"]) / trips,
                hours_per_trip=float(row["vehicle_hours_per_day"] or 0) / trips,
                redundancy=float(row["redundancy"]),
                demand_per_vehicle_km=float(row["boardings_per_vehicle_km"])
                if row["boardings_per_vehicle_km"] is not None else float("nan")))
        return out


def _clock(seconds: pa.ChunkedArray) -> pa.Array:
    """Seconds after the service day's midnight as GTFS HH:MM:SS (may pass 24:00:00)."""
    out = []
    for s in seconds.to_pylist():
        out.append(None if s is None else
                   f"{int(s) // 3600:02d}:{int(s) % 3600 // 60:02d}:{int(s) % 60:02d}")
    return pa.array(out, pa.string())


def _stop_routes(service: Service, index: dict[str, int], routedirs: list[tuple[str, int]],
                 route_list: list[str]) -> tuple[StopRoutes, int]:
    """The stop-route pairs as codes, and how many served stops lack a position."""
    rcode = {r: k for k, r in enumerate(route_list)}
    rdcode = {x: k for k, x in enumerate(routedirs)}
    t = service.stop_routes
    stop, route, rd, dep = [], [], [], []
    missing: set[str] = set()
    for s, r, d, n in zip(t["stop"].to_pylist(), t["route"].to_pylist(), t["dir"].to_pylist(),
                          t["departures"].to_pylist(), strict=True):
        if s not in index:
            missing.add(s)
            continue
        stop.append(index[s])
        route.append(rcode[r])
        rd.append(rdcode[(r, int(d))])
        dep.append(float(n))
    return StopRoutes(np.array(stop, np.int64), np.array(route, np.int64),
                      np.array(rd, np.int64), np.array(dep, float), len(route_list),
                      len(routedirs)), len(missing)


def _busiest_route(sr: StopRoutes, route_list: list[str], n_stops: int) -> list[str | None]:
    """The route with the most departures at each stop (ties: the first route id)."""
    best: list[str | None] = [None] * n_stops
    best_n = np.zeros(n_stops)
    if len(sr.stop):
        uniq, inv = np.unique(sr.stop * len(route_list) + sr.route, return_inverse=True)
        per_route = np.bincount(inv.reshape(-1), weights=sr.departures)
        for k, n in zip(uniq.tolist(), per_route.tolist(), strict=True):
            j, r = divmod(k, len(route_list))
            if n > best_n[j]:
                best_n[j], best[j] = n, route_list[r]
    return best


def _column(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t[name].to_numpy(zero_copy_only=False), float)


def build_network(ctx: PipelineContext, service: Service) -> Network:
    """Integer-coded stops, routes and route directions of the service."""
    del ctx
    st = service.stops
    stop_ids = st["stop"].to_pylist()
    index = {s: k for k, s in enumerate(stop_ids)}
    rd_table = _sql("SELECT DISTINCT route, dir FROM trips ORDER BY route, dir",
                    trips=service.trips)
    routedirs = [(r, int(d)) for r, d in zip(rd_table["route"].to_pylist(),
                                             rd_table["dir"].to_pylist(), strict=True)]
    route_list = sorted({r for r, _ in routedirs})
    sr, missing = _stop_routes(service, index, routedirs, route_list)
    width = max(len(route_list), 1)
    routes_per_stop = np.bincount(np.unique(sr.stop * width + sr.route) // width,
                                  minlength=len(stop_ids))
    info = {r["route"]: {"route_id": _local(r["route"], service.feed),
                         "short_name": r["short_name"], "name": r["name"],
                         "route_type": r["route_type"]} for r in service.routes.to_pylist()}
    for r in route_list:  # a trip's route missing from routes.txt still gets a row
        info.setdefault(r, {"route_id": _local(r, service.feed), "short_name": None,
                            "name": None, "route_type": None})
    return Network(
        service=service, stop_ids=stop_ids,
        stop_local=[_local(s, service.feed) for s in stop_ids], stop_names=st["name"],
        lon=_column(st, "lon"), lat=_column(st, "lat"), departures=_column(st, "departures"),
        day_trips_per_hour=_column(st, "day_trips_per_hour"),
        peak_hour_trips=_column(st, "peak_hour_trips"),
        routes_per_stop=routes_per_stop, route_list=route_list, routedirs=routedirs,
        stop_routes=sr, route_info=info,
        stop_best_route=_busiest_route(sr, route_list, len(stop_ids)),
        stops_without_position=missing, stop_index=index)


def route_totals(net: Network, routes: pa.Table, cov: Coverage, stop_board: np.ndarray,
                 weight: np.ndarray, use_boardings: bool, trip_rate: float,
                 direct: np.ndarray | None = None) -> pa.Table:
    """One row per route (both directions): the reallocation's and removals' inputs."""
    n = len(net.route_list)
    code = {r: k for k, r in enumerate(net.route_list)}
    g = np.array([code[r] for r in routes["route"].to_pylist()], np.int64).reshape(-1)

    def total(col: str) -> np.ndarray:
        values = np.nan_to_num(routes[col].to_numpy(zero_copy_only=False).astype(float))
        return np.bincount(g, weights=values, minlength=n)

    trips, vkm, vh = total("trips_per_day"), total("vehicle_km_per_day"), \
        total("vehicle_hours_per_day")
    head = routes["mean_headway_min"].to_numpy(zero_copy_only=False).astype(float)
    rd_trips = routes["trips_per_day"].to_numpy(zero_copy_only=False).astype(float)
    has = np.isfinite(head)
    wsum = np.bincount(g[has], weights=rd_trips[has], minlength=n)
    headway = np.where(wsum > 0, np.bincount(g[has], weights=(head * rd_trips)[has],
                                             minlength=n) / np.where(wsum > 0, wsum, 1), np.nan)
    sr = net.stop_routes
    board = net.allocated(stop_board, sr.route, n, direct)
    named = (np.bincount(sr.route, weights=direct, minlength=n) if direct is not None
             else np.zeros(n))
    demand = board if use_boardings else cov.route_share * trip_rate
    stops = np.bincount(np.unique(sr.stop * n + sr.route) % max(n, 1), minlength=n) \
        if len(sr.stop) else np.zeros(n, np.int64)
    info = [net.route_info[r] for r in net.route_list]
    return pa.table({
        "route": pa.array(net.route_list, pa.string()),
        "route_id": pa.array([i["route_id"] for i in info], pa.string()),
        "short_name": pa.array([i["short_name"] for i in info], pa.string()),
        "trips_per_day": trips, "vehicle_km_per_day": vkm, "vehicle_hours_per_day": vh,
        "mean_headway_min": headway, "stops": stops,
        "catchment_population": cov.route_population, "boardings_per_day": board,
        "boardings_direct_per_day": named, "demand_per_day": demand,
        "demand_per_vehicle_km": np.where(vkm > 0, demand / np.where(vkm > 0, vkm, 1), np.nan),
        "redundancy": net.redundancy(weight, by_route=True),
        "reallocatable": np.isfinite(headway) & (headway > 0) & (vh > 0),
        "_code": np.arange(n, dtype=np.int64),
    })


def route_boardings(net: Network, boardings: Boardings) -> tuple[
        np.ndarray | None, dict[str, Any], dict[str, str]]:
    """Boardings per stop-route-direction pair where card data names the route (its line
    matched to one GTFS route that serves the stop), how the lines matched, and the route of
    each matched line."""
    if not boardings.per_stop_line:
        return None, {"lines": 0}, {}
    sr = net.stop_routes
    routes_at: dict[str, set[str]] = {}
    served: set[tuple[int, int]] = set()
    for s, r in zip(sr.stop.tolist(), sr.route.tolist(), strict=True):
        routes_at.setdefault(net.stop_ids[s], set()).add(net.route_list[r])
        served.add((s, r))
    lines: dict[str, set[str]] = {}
    for stop, line in boardings.per_stop_line:
        lines.setdefault(line, set()).add(stop)
    match = match_lines(lines, boardings.line_names, net.route_info, routes_at)
    route_index = {r: k for k, r in enumerate(net.route_list)}
    per_route: dict[tuple[int, int], float] = {}
    elsewhere = 0.0
    for (stop, line), (b, _) in boardings.per_stop_line.items():
        route = match.route_of.get(line)
        if route is None:
            continue
        key = (net.stop_index[stop], route_index[route])
        if key in served:
            per_route[key] = per_route.get(key, 0.0) + b
        else:
            elsewhere += b
    direct = net.direct_boardings(per_route)
    named = sum(b for b, _ in boardings.per_stop_line.values())
    total = sum(b for b, _ in boardings.per_stop.values())
    return direct, {
        "lines": len(lines), "matched": len(match.route_of),
        "matched_by": {h: list(match.how.values()).count(h) for h in sorted(set(
            match.how.values()))},
        "unmatched": match.unmatched[:20], "unmatched_lines": len(match.unmatched),
        "ambiguous": dict(list(match.ambiguous.items())[:20]),
        "boardings_with_line_per_day": round(named, 6),
        "boardings_direct_per_day": round(float(direct.sum()), 6),
        "boardings_at_stops_the_route_does_not_serve": round(elsewhere, 6),
        "direct_share": round(float(direct.sum()) / total, 6) if total else None}, \
        match.route_of


def route_note(f: dict[str, Any]) -> str:
    """The run's note on boardings by route (the figures of :func:`route_boardings`)."""
    note = (f"boardings by route: {f['matched']} of {f['lines']} card-data lines matched a GTFS "
            "route by name; "
            + (f"{f['direct_share']:.0%} of boardings are counted on their own route, "
               if f["direct_share"] is not None else "")
            + "the rest (no line, or no matching route) are split among a stop's routes by "
              "their departures")
    if f["unmatched_lines"]:
        note += f"; unmatched: {', '.join(f['unmatched'][:5])}"
    if f["ambiguous"]:
        note += f"; ambiguous: {', '.join(f['ambiguous'])}"
    if f["boardings_at_stops_the_route_does_not_serve"]:
        note += (f"; {f['boardings_at_stops_the_route_does_not_serve']:,.0f} boardings a day "
                 "of matched lines are at stops their route does not serve on these dates")
    return note
