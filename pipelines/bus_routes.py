"""Pipeline ``bus_routes``: how a GTFS network serves its demand, and what to change.

Reads one feed's trips on a service date (or date range), population (PopulationCell) and/or
transport-card boardings (StopBoardings), and writes:

- ``routes``: per route and direction: trips per service day, peak / off-peak / mean headway,
  length, vehicle-km and vehicle-hours per day, stops, population within the walking catchment,
  boardings, boardings per vehicle-km, redundancy (demand-weighted share of its consecutive
  stop pairs that other routes also serve);
- ``route_days``: trips per route, direction and service date (the figure the calendar gives);
- ``stops``: per stop: departures per day, trips per hour in the day window and at its busiest
  hour, catchment population, boardings;
- ``uncovered``: grid cells of population beyond the catchment of every frequent stop;
- ``reallocation``: per route, the headways that minimise total expected waiting time with
  today's vehicle-hours (:mod:`hubctl.pipelines.headways`), before and after;
- ``removals``: routes to remove and route ends to cut, with what each saves and costs;
- ``new_service``: clusters of uncovered demand, their total and the nearest corridor.

Method and formulas: docs/bus-routes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from hubctl.errors import InputError, UsageError
from hubctl.pipeline import Param, PipelineContext, PipelineResult
from hubctl.pipelines.headways import Reallocation, reallocate
from hubctl.pipelines.hotspots import parse_bands
from hubctl.pipelines.transit_bands import demand_profile, reallocate_by_band, route_profiles
from hubctl.pipelines.transit_coverage import Coverage, coverage
from hubctl.pipelines.transit_demand import (
    Boardings,
    Population,
    load_boardings,
    load_population,
)
from hubctl.pipelines.transit_feed import (
    Service,
    as_dates,
    busiest_date,
    choose_feed,
    load_service,
    parse_windows,
)
from hubctl.pipelines.transit_geo import Grid, LocalProjection, nearest, projection_around, to_xy
from hubctl.pipelines.transit_plans import (
    REMOVAL_SCHEMA,
    new_service,
    removals,
    shortenings,
    uncovered_cells,
)
from hubctl.pipelines.transit_routes import (
    Network,
    build_network,
    route_boardings,
    route_note,
    route_totals,
)

__all__ = ["PIPELINE", "BusRoutes"]

_PARAMS = (
    Param("feed", "", "GTFS feed id to analyse (empty: the lake's only feed)"),
    Param("date", "", "service date YYYY-MM-DD (empty: the feed's busiest date)"),
    Param("end_date", "", "last service date of a range (empty: just --param date)"),
    Param("route_types", [], "GTFS route_type codes to include, e.g. 3,700 (empty: all)",
          kind="list"),
    Param("catchment_m", 400.0, "walking catchment radius of a stop, metres", minimum=50,
          maximum=5000),
    Param("catchment", "auto", "walking distance over the street network (network: needs "
          "RoadSegment from `hubctl ingest osm`), straight-line distance (straight), or auto "
          "(network when the lake has roads)", choices=("auto", "network", "straight")),
    Param("min_trips_per_hour", 4.0, "a stop covers its catchment when served at least this "
          "often per hour (mean over the day window)", minimum=0),
    Param("day_window", "07:00-19:00", "hours over which stop frequency is averaged"),
    Param("peak_windows", ["07:00-09:00", "17:00-19:00"], "peak periods for headways",
          kind="list"),
    Param("bands", ["00-07", "07-09", "09-16", "16-19", "19-24"], "time bands (local hours "
          "HH-HH, as in the safety pipelines) of the reallocation by time of day", kind="list"),
    Param("min_headway_min", 5.0, "shortest headway the reallocation may set, minutes",
          minimum=0.5),
    Param("max_headway_min", 60.0, "longest headway the reallocation may set, minutes",
          minimum=1),
    Param("demand", "auto", "demand of the reallocation: boardings, population, or auto "
          "(boardings when the lake has them for the feed)",
          choices=("auto", "boardings", "population")),
    Param("population_kind", "auto", "residents, floating, or auto (residents if present)",
          choices=("auto", "residents", "floating")),
    Param("population_dataset", "", "PopulationCell dataset to use (empty: all)"),
    Param("population_hour", -1, "use only this hour's population figures, 0-23 (-1: all-day "
          "figures, else each place's mean over its hours)", minimum=-1, maximum=23),
    Param("trip_rate", 1.0, "transit trips per person per day, for population-based demand",
          minimum=0),
    Param("cell_m", 500.0, "grid cell size of uncovered demand, metres", minimum=50,
          aliases=("grid_m",)),
    Param("min_cluster_population", 500.0, "smallest uncovered cluster worth new service",
          minimum=0),
    Param("extend_within_m", 1500.0, "a cluster this close to a stop suggests extending that "
          "stop's route rather than a new one", minimum=0),
    Param("max_candidates", 20, "most new-service candidates to list", minimum=0),
    Param("redundancy_threshold", 0.6, "removal candidates have at least this redundancy",
          minimum=0, maximum=1),
    Param("low_demand_quantile", 0.25, "... and demand per vehicle-km in this lowest share",
          minimum=0, maximum=1),
    Param("shorten_max_loss", 50.0, "cut a route end when it strands at most this many people "
          "and loses at most this many boardings a day", minimum=0),
    Param("shorten_min_stops", 3, "shortest route end worth cutting, stops", minimum=1),
)


class BusRoutes:
    """The ``bus_routes`` pipeline."""

    name = "bus_routes"
    summary = ("Bus network analysis on a GTFS feed with population/boardings: route and stop "
               "metrics, uncovered demand, frequency reallocation, removal and new-service "
               "candidates.")
    inputs = ("GtfsTrip", "GtfsStopTime", "GtfsStop", "GtfsRoute",
              "GtfsCalendarRule|GtfsCalendarDateRule")
    optional_inputs = ("GtfsShape", "PopulationCell", "StopBoardings", "RoadSegment")
    params = _PARAMS
    example = ("hubctl run bus_routes --param feed=daegu --param date=2024-05-08 "
               "--param catchment_m=400 --json")

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Run the analysis (see the module docstring)."""
        p = ctx.params
        if p["min_headway_min"] > p["max_headway_min"]:
            raise UsageError("--param min_headway_min must not exceed max_headway_min")
        ctx.step("reading the feed")
        feed = choose_feed(ctx, str(p["feed"]).strip())
        dates = _dates(ctx, feed, str(p["date"]).strip(), str(p["end_date"]).strip())
        service = load_service(
            ctx, feed, dates, _route_types(p["route_types"]),
            parse_windows(list(p["peak_windows"]), "peak_windows"),
            parse_windows([str(p["day_window"])], "day_window")[0])
        if service.trips.num_rows == 0:
            raise InputError(f"feed {feed}: no trip runs on {_span(dates)}",
                             hint="choose another --param date (empty picks the busiest)")
        ctx.step("reading demand")
        population = load_population(ctx, str(p["population_kind"]),
                                     str(p["population_dataset"]).strip(),
                                     int(p["population_hour"]))
        net = build_network(ctx, service)
        boardings = load_boardings(ctx, feed, dates, set(net.stop_ids))
        ctx.step("catchments")
        return _analyse(ctx, service, net, population, boardings)


def _dates(ctx: PipelineContext, feed: str, start: str, end: str) -> list[date]:
    def parse(text: str, name: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"--param {name}={text}: not a date YYYY-MM-DD") from None

    first = parse(start, "date") if start else busiest_date(ctx, feed)
    last = parse(end, "end_date") if end else first
    if last < first:
        raise UsageError(f"--param end_date={last} is before date={first}")
    if (last - first).days > 366:
        raise UsageError("a date range longer than a year is not a service pattern; "
                         "analyse a typical week or month")
    return as_dates(first, last)


def _route_types(values: list[str]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise UsageError(f"--param route_types={','.join(values)}: give GTFS route_type "
                         "numbers, e.g. 3,700") from None


def _span(dates: list[date]) -> str:
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"


def _analyse(ctx: PipelineContext, service: Service, net: Network, population: Population,
             boardings: Boardings) -> PipelineResult:
    p = ctx.params
    proj = projection_around(net.lon, net.lat)
    stops_xy = to_xy(proj, net.lon, net.lat)
    points_xy = to_xy(proj, population.lon, population.lat)
    frequent = net.day_trips_per_hour >= float(p["min_trips_per_hour"])
    radius = float(p["catchment_m"])
    straight = coverage(points_xy, population.people, stops_xy, frequent, net.stop_routes,
                        radius)
    walk = _walking(ctx, str(p["catchment"]), net, population, radius)
    cov = straight if walk is None else coverage(
        points_xy, population.people, stops_xy, frequent, net.stop_routes, radius,
        pairs=walk.pairs)
    stop_board = np.array([boardings.per_stop.get(s, (0.0, 0.0))[0] for s in net.stop_ids])
    stop_alight = np.array([boardings.per_stop.get(s, (0.0, 0.0))[1] for s in net.stop_ids])
    use_boardings = _demand_basis(str(p["demand"]), boardings)
    if p["demand"] == "population" and population.total <= 0:
        raise InputError("--param demand=population but the lake has no population for it "
                         f"({population.note or 'all zero'})",
                         hint="ingest it with `hubctl ingest population`, or check "
                              "population_kind, population_dataset and population_hour")
    weight = stop_board if use_boardings else cov.stop_population
    has_demand = use_boardings or population.total > 0
    direct, by_route, route_of = route_boardings(net, boardings)
    routes = net.routedir_table(cov, stop_board, weight, direct)
    totals = route_totals(net, routes, cov, stop_board, weight, use_boardings,
                          float(p["trip_rate"]), direct)
    ctx.step("recommendations")
    plan = _reallocation(totals, float(p["min_headway_min"]), float(p["max_headway_min"]))
    bands = parse_bands(list(p["bands"]))
    profile, basis = demand_profile(ctx, service.feed, bands, service.trips)
    profiles, own = route_profiles(ctx, service.feed, bands, route_of,
                                   totals["route"].to_pylist(), profile)
    by_band = reallocate_by_band(service.trips, len(service.dates), totals, bands, profiles,
                                 float(p["min_headway_min"]), float(p["max_headway_min"]))
    grid = Grid(float(p["cell_m"]))
    unc = uncovered_cells(points_xy, population.people, cov.covered, grid)
    tables = {
        "routes": routes.drop_columns(["_code"]),
        "route_days": _route_days(service, net),
        "stops": _stops_table(net, frequent, cov, stop_board, stop_alight).append_column(
            "catchment_population_straight", pa.array(straight.stop_population)),
        "uncovered": _uncovered_table(unc, proj, stops_xy[frequent], walk,
                                      net.lon[frequent], net.lat[frequent]),
        "reallocation": _reallocation_table(totals, plan),
        "reallocation_bands": by_band.table,
        "removals": _removals(net, totals, routes, cov, population, stops_xy, stop_board,
                              weight, p) if has_demand else REMOVAL_SCHEMA.empty_table(),
        "new_service": new_service(
            unc, proj, points_xy, population.people, cov.covered, stops_xy, net.stop_local,
            net.stop_best_route, net.route_names, float(p["catchment_m"]),
            float(p["min_cluster_population"]), float(p["extend_within_m"]),
            int(p["max_candidates"])),
    }
    summary = _summary(service, net, population, boardings, use_boardings, cov, frequent,
                       routes, plan, unc, tables)
    summary["demand"]["by_route"] = by_route
    summary["catchments"] = _catchment_summary(walk, population, straight, cov, radius)
    summary["reallocation_bands"] = {"demand_basis": basis, "routes_with_own_hours": own,
                                     "bands": by_band.bands}
    notes = _notes(service, population, boardings, net, totals)
    if by_route["lines"]:
        notes.append(route_note(by_route))
    notes.append(_catchment_note(str(p["catchment"]), walk, summary["catchments"], radius))
    if not has_demand:
        notes.append("no demand in the lake (population or boardings): today's frequencies are "
                     "kept and no route is proposed for removal or shortening")
    return PipelineResult(tables=tables, summary=summary, notes=notes)


@dataclass
class _Walking:
    """Walking catchments over the street network: the (point, stop) pairs and the network."""

    pairs: tuple[np.ndarray, np.ndarray]
    network: dict[str, Any]
    graph: Any = None  # pipelines.roads.RoadGraph, edge weights in metres


def _walking(ctx: PipelineContext, mode: str, net: Network, population: Population,
             radius: float) -> _Walking | None:
    """Walking pairs over the lake's streets, or None for straight-line catchments (mode
    ``straight``, or ``auto`` without roads in the lake)."""
    if mode == "straight" or (mode == "auto" and not ctx.has("RoadSegment")):
        return None
    if not ctx.has("RoadSegment"):
        raise InputError("--param catchment=network needs streets in the lake",
                         hint="ingest an OpenStreetMap extract of the area (hubctl ingest osm "
                              "FILE), or use catchment=straight")
    from hubctl.pipelines.roads import WALKING_SQL, walking_graph, walking_pairs

    graph = walking_graph(ctx.sql(WALKING_SQL))
    pi, pj, _ = walking_pairs(graph, population.lon, population.lat, net.lon, net.lat, radius)
    _, stop_snap = graph.snap(net.lon, net.lat)
    info = graph.summary()
    paths = ctx.scalar("SELECT count(*) FROM RoadSegment WHERE highway IN ('footway', "
                       "'path', 'pedestrian', 'steps', 'cycleway', 'bridleway', 'corridor')")
    return _Walking((pi, pj), {
        "nodes": info["nodes"], "edges": info["edges"], "length_km": info["length_km"],
        "footpath_segments": int(paths or 0),
        "stops_beyond_reach": int((stop_snap > radius).sum())}, graph)


def _catchment_summary(walk: _Walking | None, population: Population, straight: Coverage,
                       cov: Coverage, radius: float) -> dict[str, Any]:
    """How catchments were measured, and the population they reach both ways."""
    served_straight = float(population.people[straight.served].sum())
    served = float(population.people[cov.served].sum())
    out: dict[str, Any] = {
        "mode": "straight" if walk is None else "network", "radius_m": radius,
        "population_served": round(served, 6),
        "population_served_straight": round(served_straight, 6),
        "network_over_straight": round(served / served_straight, 6) if served_straight
        else None}
    if walk is not None:
        out["walk_network"] = walk.network
    return out


def _catchment_note(mode: str, walk: _Walking | None, figures: dict[str, Any],
                    radius: float) -> str:
    if walk is None:
        why = "as asked" if mode == "straight" else (
            "no RoadSegment in the lake; ingest an OpenStreetMap extract (hubctl ingest osm) "
            "for walking distances over the streets")
        return f"catchments are straight-line {radius:g} m ({why})"
    ratio = figures["network_over_straight"]
    note = (f"catchments are {radius:g} m of walking over the street network (every class but "
            f"motorways, both directions): population within reach "
            f"{figures['population_served']:,.0f}, against "
            f"{figures['population_served_straight']:,.0f} in a straight line"
            + (f" ({ratio:.0%})" if ratio is not None else ""))
    if not walk.network["footpath_segments"]:
        note += ("; the lake's streets hold no footway or path (an extract ingested with the "
                 "default --network drive): ingest it with --network all for the footpaths")
    return note


def _demand_basis(mode: str, boardings: Boardings) -> bool:
    """True when the reallocation and the demand figures use boardings (else population)."""
    has = bool(boardings.per_stop) and sum(b for b, _ in boardings.per_stop.values()) > 0
    if mode == "boardings" and not has:
        raise InputError("--param demand=boardings but the lake has no boardings at this feed's "
                         "stops", hint="ingest them with `hubctl ingest boardings --feed-id ID`")
    return mode == "boardings" or (mode == "auto" and has)


def _reallocation(totals: pa.Table, lo: float, hi: float) -> Reallocation:
    usable = np.asarray(totals["reallocatable"].to_numpy(zero_copy_only=False), bool)
    d = np.asarray(totals["demand_per_day"].to_numpy(zero_copy_only=False), float)[usable]
    vh = np.asarray(totals["vehicle_hours_per_day"].to_numpy(zero_copy_only=False),
                    float)[usable]
    h0 = np.asarray(totals["mean_headway_min"].to_numpy(zero_copy_only=False), float)[usable]
    return reallocate(d, vh, h0, lo, hi)


def _reallocation_table(totals: pa.Table, plan: Reallocation) -> pa.Table:
    usable = np.asarray(totals["reallocatable"].to_numpy(zero_copy_only=False), bool)
    t = totals.filter(pa.array(usable))
    h0, h1 = plan.headway_before, plan.headway_after
    d = np.asarray(t["demand_per_day"].to_numpy(zero_copy_only=False), float)
    ratio = h0 / h1 if len(h0) else np.zeros(0)
    trips = np.asarray(t["trips_per_day"].to_numpy(zero_copy_only=False), float)
    vh = np.asarray(t["vehicle_hours_per_day"].to_numpy(zero_copy_only=False), float)
    vkm = np.asarray(t["vehicle_km_per_day"].to_numpy(zero_copy_only=False), float)
    change = np.where(np.isclose(h0, h1, rtol=1e-9), "unchanged",
                      np.where(h1 < h0, "more frequent", "less frequent"))
    return pa.table({
        "route": t["route"], "route_id": t["route_id"], "short_name": t["short_name"],
        "demand_per_day": d, "headway_before_min": h0, "headway_after_min": h1,
        "trips_before": trips, "trips_after": trips * ratio,
        "vehicle_hours_before": vh, "vehicle_hours_after": vh * ratio,
        "vehicle_km_before": vkm, "vehicle_km_after": vkm * ratio,
        "waiting_hours_before": d * h0 / 2 / 60, "waiting_hours_after": d * h1 / 2 / 60,
        "change": pa.array(change.tolist(), pa.string()),
    })


def _route_days(service: Service, net: Network) -> pa.Table:
    t = service.route_days
    return pa.table({
        "route": t["route"],
        "route_id": pa.array([net.route_info[r]["route_id"] for r in t["route"].to_pylist()],
                             pa.string()),
        "direction": t["dir"], "service_date": t["day"], "trips": t["trips"]})


def _stops_table(net: Network, frequent: np.ndarray, cov: Coverage, board: np.ndarray,
                 alight: np.ndarray) -> pa.Table:
    return pa.table({
        "stop": pa.array(net.stop_ids, pa.string()),
        "stop_id": pa.array(net.stop_local, pa.string()),
        "name": net.stop_names, "lon": net.lon, "lat": net.lat,
        "routes": net.routes_per_stop, "departures_per_day": net.departures,
        "trips_per_hour": net.day_trips_per_hour, "peak_hour_trips": net.peak_hour_trips,
        "frequent": frequent, "catchment_population": cov.stop_population,
        "boardings_per_day": board, "alightings_per_day": alight})


def _uncovered_table(unc: Any, proj: LocalProjection, frequent_xy: np.ndarray,
                     walk: _Walking | None, frequent_lon: np.ndarray,
                     frequent_lat: np.ndarray) -> pa.Table:
    """Uncovered cells with the distance to the nearest frequent stop: of walking when the
    catchments walk the streets (``nearest_frequent_stop_m``), and in a straight line."""
    xy = unc.centre_xy
    lon, lat = proj.to_lonlat(xy[:, 0], xy[:, 1]) if len(unc.col) else (np.zeros(0), np.zeros(0))
    straight, _ = nearest(unc.centre_xy, frequent_xy)
    from hubctl.pipelines.roads import walk_to_nearest

    dist = straight if walk is None else walk_to_nearest(walk.graph, lon, lat, frequent_lon,
                                                         frequent_lat)
    return pa.table({
        "cell": pa.array([f"{c}:{r}" for c, r in zip(unc.col.tolist(), unc.row.tolist(),
                                                     strict=True)], pa.string()),
        "lon": lon, "lat": lat, "population": unc.people, "points": unc.points,
        "nearest_frequent_stop_m": _finite(dist),
        "nearest_frequent_stop_m_straight": _finite(straight)})


def _finite(values: np.ndarray) -> pa.Array:
    return pa.array(np.where(np.isfinite(values), values, np.nan), pa.float64(),
                    from_pandas=True)


def _removals(net: Network, totals: pa.Table, routes: pa.Table, cov: Coverage,
              population: Population, stops_xy: np.ndarray, stop_board: np.ndarray,
              weight: np.ndarray, p: dict[str, Any]) -> pa.Table:
    people = population.people
    alone = cov.only_route >= 0
    only = np.bincount(cov.only_route[alone], weights=people[alone],
                       minlength=len(net.route_list))
    removed = removals(totals, only, net.segments(weight), float(p["redundancy_threshold"]),
                       float(p["low_demand_quantile"]))
    gone = set(removed["route"].to_pylist())
    patterns = [pt for pt in net.patterns(routes) if pt.route not in gone]
    cuts = shortenings(patterns, cov, people, stops_xy, stop_board, net.stop_local,
                       float(p["shorten_max_loss"]), int(p["shorten_min_stops"]))
    if not cuts:
        return removed
    return pa.concat_tables([removed, pa.Table.from_pylist(cuts, schema=REMOVAL_SCHEMA)])


def _summary(service: Service, net: Network, population: Population, boardings: Boardings,
             use_boardings: bool, cov: Coverage, frequent: np.ndarray, routes: pa.Table,
             plan: Reallocation, unc: Any, tables: dict[str, pa.Table]) -> dict[str, Any]:
    total = population.total
    covered = float(population.people[cov.covered].sum()) if total else 0.0
    realloc = tables["reallocation"]
    change = realloc["change"].to_pylist()
    kinds = tables["removals"]["kind"].to_pylist()

    def col_sum(name: str) -> float:
        return round(float(np.nansum(routes[name].to_numpy(zero_copy_only=False))), 6)

    return {
        "feed": service.feed, "first_date": str(service.dates[0]),
        "last_date": str(service.dates[-1]), "service_days": len(service.dates),
        "routes": len(net.route_list), "route_directions": routes.num_rows,
        "trips_per_day": col_sum("trips_per_day"),
        "vehicle_km_per_day": col_sum("vehicle_km_per_day"),
        "vehicle_hours_per_day": col_sum("vehicle_hours_per_day"),
        "stops": {"served": len(net.stop_ids), "frequent": int(frequent.sum())},
        "demand": {"basis": "boardings" if use_boardings else "population",
                   "population_kind": population.kind, "population": round(total, 6),
                   "boardings_per_day": round(float(sum(b for b, _ in
                                                        boardings.per_stop.values())), 6),
                   "boardings_dates": boardings.basis},
        "coverage": {"population": round(total, 6), "covered": round(covered, 6),
                     "uncovered": round(total - covered, 6),
                     "share": round(covered / total, 6) if total else None,
                     "uncovered_cells": len(unc.col)},
        "reallocation": {
            "status": plan.status, "routes": realloc.num_rows,
            "more_frequent": change.count("more frequent"),
            "less_frequent": change.count("less frequent"),
            "vehicle_hours_before": round(plan.vehicle_hours_before, 6),
            "vehicle_hours_after": round(plan.vehicle_hours_after, 6),
            "waiting_hours_before": round(plan.waiting_before / 60, 6),
            "waiting_hours_after": round(plan.waiting_after / 60, 6),
            "waiting_saved_share": round(plan.improvement, 6),
            "budget_multiplier": plan.multiplier,
            "method": "exact: KKT conditions, bisection on the budget multiplier, closed form "
                      "for the routes off their bounds"},
        "candidates": {"remove": kinds.count("remove"),
                       "shorten": len(kinds) - kinds.count("remove"),
                       "new_service": tables["new_service"].num_rows,
                       "removal_method": "greedy from the least demand per vehicle-km; each "
                                         "stays redundant without the earlier ones"},
    }


def _notes(service: Service, population: Population, boardings: Boardings, net: Network,
           totals: pa.Table) -> list[str]:
    notes = []
    if population.note:
        notes.append(f"population: {population.note}; catchment figures are zero")
    if boardings.basis == "all dates":
        notes.append(f"no boardings on {_span(service.dates)}: boardings are the mean per day "
                     f"over the {boardings.days} date(s) the lake has")
    if boardings.unmatched_stops:
        notes.append(f"{boardings.unmatched_stops} stop(s) with boardings are not served by "
                     f"feed {service.feed} on these dates; their boardings are left out")
    skipped = totals.num_rows - sum(totals["reallocatable"].to_pylist())
    if skipped:
        notes.append(f"{skipped} route(s) with fewer than two trips a day or no timed stops "
                     "keep their timetable in the reallocation")
    if net.stops_without_position:
        notes.append(f"{net.stops_without_position} served stop(s) have no coordinates or no "
                     "timed departure and are left out of stop figures and catchments")
    return notes


PIPELINE = BusRoutes()
