"""GTFS files to lake rows: agency, stops, routes, calendar, calendar_dates, services, trips.

Each converter takes a file's text table and the feed read so far, and returns the good rows
(already through the quality gate, so that only accepted ids are referenced later) and the
rejected records with their reasons. References that a row cannot do without (a trip's route,
a stop time's trip and stop) are checked as anti-joins and rejected when they point nowhere;
optional ones (a stop's parent station, a route's agency, a trip's shape) are kept and
reported in the run's warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit import Problems, extra_json, missing, urns
from hubctl.adapters.gtfs_parse import (
    clock_text,
    parse_bool,
    parse_clock,
    parse_date,
    parse_float,
    parse_int,
    text,
    trimmed,
)
from hubctl.gate import gate_for
from hubctl.registry import get_type
from hubctl.rejects import Reject, reason

__all__ = ["KNOWN_COLUMNS", "Converted", "Feed", "agency", "calendar", "calendar_dates",
           "frequencies", "later_repeats", "routes", "services", "stops", "trips"]

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Columns each converter maps; the others are kept as JSON in _extra.
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "agency.txt": ("agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang",
                   "agency_phone"),
    "stops.txt": ("stop_id", "stop_code", "stop_name", "stop_desc", "stop_lat", "stop_lon",
                  "zone_id", "location_type", "parent_station", "wheelchair_boarding"),
    "routes.txt": ("route_id", "agency_id", "route_short_name", "route_long_name", "route_desc",
                   "route_type", "route_url", "route_color", "route_text_color"),
    "calendar.txt": ("service_id", *DAYS, "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "trips.txt": ("route_id", "service_id", "trip_id", "trip_headsign", "trip_short_name",
                  "direction_id", "block_id", "shape_id", "wheelchair_accessible"),
    "stop_times.txt": ("trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence",
                       "stop_headsign", "pickup_type", "drop_off_type", "shape_dist_traveled"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs", "exact_times"),
}


@dataclass
class Feed:
    """One feed as it is read: its id, the ids accepted so far, and its warnings."""

    feed_id: str
    arrival: datetime
    warn: Callable[[str], None]
    agencies: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    stops: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    routes: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    shapes: pa.Array | None = None  # None: the feed has no shapes.txt
    route_agency: dict[str, str] = field(default_factory=dict)  # route_id -> agency_id
    service_agency: dict[str, set[str]] = field(default_factory=dict)  # from trips.txt
    trips: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    service_ids: dict[str, pa.Array] = field(default_factory=dict)  # by file

    def base(self, type_name: str, local: pa.Array, table: pa.Table,
             file: str) -> dict[str, pa.Array]:
        """id, observed_at, feedId, _time_index and _extra of a file's rows."""
        n = len(local)
        extras = [c for c in table.column_names if c not in KNOWN_COLUMNS.get(file, ())]
        return {"id": urns(type_name, local, self.feed_id),
                "observed_at": pa.repeat(pa.scalar(self.arrival), n),
                "feedId": pa.repeat(pa.scalar(self.feed_id), n),
                "_time_index": pa.repeat(pa.scalar("arrival"), n),
                "_extra": extra_json([(c, text(table, c)) for c in extras], n)}

    def dangling(self, file: str, column: str, values: pa.Array, known: pa.Array,
                 what: str) -> None:
        """Warn about references to ids the feed does not define (the rows are kept)."""
        lost = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=known)))
        count = pc.sum(lost).as_py() or 0
        if count:
            examples = pc.unique(pc.filter(values, lost)).to_pylist()[:3]
            self.warn(f"{file}: {count} row(s) refer in {column} to no {what} of the feed "
                      f"(e.g. {', '.join(map(repr, examples))}); kept, the reference dangles")


@dataclass
class Converted:
    """The outcome of one file (or block): good rows, rejects, and the accepted GTFS ids."""

    entity_type: str
    rows: pa.Table
    rejects: list[Reject]
    ids: pa.Array


def later_repeats(keys: pa.Array | np.ndarray) -> np.ndarray:
    """Mask of the rows whose key appeared in an earlier row (nulls never repeat)."""
    if isinstance(keys, np.ndarray):
        codes = keys
        valid = np.ones(len(keys), bool)
    else:
        enc = pc.dictionary_encode(keys)
        valid = np.asarray(pc.is_valid(keys).to_numpy(zero_copy_only=False), bool)
        codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False))
    out = np.zeros(len(codes), bool)
    if len(codes) == 0:
        return out
    _, first = np.unique(codes, return_index=True)
    out[:] = True
    out[first] = False
    return out & valid


def _finish(type_name: str, cols: dict[str, pa.Array], table: pa.Table, ids: pa.Array,
            problems: Problems, where: str, key: Sequence[str]) -> Converted:
    """Gate the rows without problems yet, then split good rows from rejects."""
    out = pa.table(cols)
    clean = np.flatnonzero(~problems.bad())
    if len(clean):
        found = gate_for(get_type(type_name)).check(out.take(pa.array(clean)))
        for j, reasons in found.items():
            problems.add(int(clean[j]), reasons)
    keep = pa.array(~problems.bad())
    return Converted(type_name, out.filter(keep),
                     problems.rejects(key), ids.filter(keep))


def _repeated(problems: Problems, keys: pa.Array, field: str, file: str) -> None:
    problems.flag(later_repeats(keys), lambda i: reason(
        "duplicate-key", field, value=keys[i].as_py(),
        detail=f"another row of {file} has it; the first one is kept"))


def agency(feed: Feed, table: pa.Table, where: str) -> Converted:
    """agency.txt: one GtfsAgency per row; its id is agency_id, else agency_name."""
    p = Problems(table, "GtfsAgency", where)
    p.flag_nul()
    name = trimmed(table, "agency_name")
    local = pc.coalesce(trimmed(table, "agency_id"), name)
    p.flag(pc.is_null(local), missing("agency_id"))
    _repeated(p, local, "agency_id", "agency.txt")
    cols = feed.base("GtfsAgency", local, table, "agency.txt")
    source = Path(where).parent.name or where  # the feed's zip or folder
    cols.update({"agencyName": text(table, "agency_name"), "name": text(table, "agency_name"),
                 "source": pa.repeat(pa.scalar(source), table.num_rows),
                 "page": text(table, "agency_url"),
                 "timezone": text(table, "agency_timezone"),
                 "language": text(table, "agency_lang"), "phone": text(table, "agency_phone")})
    done = _finish("GtfsAgency", cols, table, local, p, where, ["agency_id", "agency_name"])
    feed.agencies = done.ids
    return done


def stops(feed: Feed, table: pa.Table, where: str) -> Converted:
    """stops.txt: one GtfsStop per row; location_type empty is 0."""
    p = Problems(table, "GtfsStop", where)
    p.flag_nul()
    stop_id = trimmed(table, "stop_id")
    p.flag(pc.is_null(stop_id), missing("stop_id"))
    lat, bad_lat = p.parsed("stop_lat", parse_float, "number")
    lon, bad_lon = p.parsed("stop_lon", parse_float, "number")
    kind, _ = p.parsed("location_type", parse_int, "integer")
    kind = pc.fill_null(kind, 0)
    placed = pc.is_in(kind, value_set=pa.array([0, 1, 2], pa.int64()))
    no_point = pc.or_(pc.is_null(lat), pc.is_null(lon))
    p.flag(pc.and_(pc.and_(placed, no_point), pa.array(~(bad_lat | bad_lon))),
           missing("stop_lat/stop_lon (required for stops, stations and entrances)"))
    wheel, _ = p.parsed("wheelchair_boarding", parse_int, "integer")
    _repeated(p, stop_id, "stop_id", "stops.txt")
    parent = trimmed(table, "parent_station")
    feed.dangling("stops.txt", "parent_station", parent, stop_id, "stop")
    cols = feed.base("GtfsStop", stop_id, table, "stops.txt")
    cols.update({"code": text(table, "stop_code"), "name": text(table, "stop_name"),
                 "description": text(table, "stop_desc"), "lon": lon, "lat": lat,
                 "zoneCode": text(table, "zone_id"), "locationType": kind,
                 "hasParentStation": urns("GtfsStop", parent, feed.feed_id),
                 "wheelChairAccessible": pc.cast(wheel, pa.string())})  # SDM: "0".."2"
    done = _finish("GtfsStop", cols, table, stop_id, p, where, ["stop_id"])
    feed.stops = done.ids
    return done


def routes(feed: Feed, table: pa.Table, where: str) -> Converted:
    """routes.txt: one GtfsRoute per row; an empty agency_id means the feed's only agency."""
    p = Problems(table, "GtfsRoute", where)
    p.flag_nul()
    route_id = trimmed(table, "route_id")
    p.flag(pc.is_null(route_id), missing("route_id"))
    route_type, _ = p.parsed("route_type", parse_int, "integer")
    agency_id = trimmed(table, "agency_id")
    if len(feed.agencies) == 1:
        agency_id = pc.fill_null(agency_id, feed.agencies[0])
    elif pc.any(pc.is_null(agency_id)).as_py() and table.num_rows:
        feed.warn(f"routes.txt: {pc.sum(pc.is_null(agency_id)).as_py()} route(s) have no "
                  f"agency_id although agency.txt lists {len(feed.agencies)} agencies; "
                  "operatedBy left empty")
    feed.dangling("routes.txt", "agency_id", agency_id, feed.agencies, "agency")
    _repeated(p, route_id, "route_id", "routes.txt")
    cols = feed.base("GtfsRoute", route_id, table, "routes.txt")
    cols.update({"shortName": text(table, "route_short_name"),
                 "name": text(table, "route_long_name"), "description": text(table, "route_desc"),
                 "routeType": pc.cast(route_type, pa.string()),  # SDM's text: "3"
                 "routeColor": text(table, "route_color"),
                 "routeTextColor": text(table, "route_text_color"),
                 "operatedBy": urns("GtfsAgency", agency_id, feed.feed_id),
                 "page": text(table, "route_url")})
    done = _finish("GtfsRoute", cols, table, route_id, p, where, ["route_id"])
    feed.routes = done.ids
    feed.route_agency.update((r, a) for r, a in zip(route_id.to_pylist(), agency_id.to_pylist(),
                                                    strict=True) if r is not None and a)
    return done


def calendar(feed: Feed, table: pa.Table, where: str) -> Converted:
    """calendar.txt: one GtfsCalendarRule per row, keyed by service_id."""
    p = Problems(table, "GtfsCalendarRule", where)
    p.flag_nul()
    service = trimmed(table, "service_id")
    feed.service_ids["calendar.txt"] = service
    p.flag(pc.is_null(service), missing("service_id"))
    cols = feed.base("GtfsCalendarRule", service, table, "calendar.txt")
    cols.update({"hasService": urns("GtfsService", service, feed.feed_id)})
    for day in DAYS:
        cols[day], _ = p.parsed(day, parse_bool, "0 or 1")
    for col, attr in (("start_date", "startDate"), ("end_date", "endDate")):
        cols[attr], _ = p.parsed(col, parse_date, "date YYYYMMDD")
    p.flag(pc.less(cols["endDate"], cols["startDate"]), lambda i: reason(
        "end-before-start", "end_date", value=text(table, "end_date")[i].as_py(),
        start=text(table, "start_date")[i].as_py()))
    _repeated(p, service, "service_id", "calendar.txt")
    return _finish("GtfsCalendarRule", cols, table, service, p, where, ["service_id"])


def calendar_dates(feed: Feed, table: pa.Table, where: str) -> Converted:
    """calendar_dates.txt: one GtfsCalendarDateRule per row, keyed by service_id and date."""
    p = Problems(table, "GtfsCalendarDateRule", where)
    p.flag_nul()
    service = trimmed(table, "service_id")
    feed.service_ids["calendar_dates.txt"] = service
    p.flag(pc.is_null(service), missing("service_id"))
    day, bad_day = p.parsed("date", parse_date, "date YYYYMMDD")
    p.flag(pc.and_(pc.is_null(day), pa.array(~bad_day)), missing("date"))
    kind, _ = p.parsed("exception_type", parse_int, "integer")
    key = pc.binary_join_element_wise(service, pc.strftime(day, format="%Y%m%d"), ":")
    _repeated(p, key, "date", "calendar_dates.txt")
    cols = feed.base("GtfsCalendarDateRule", key, table, "calendar_dates.txt")
    cols.update({"hasService": urns("GtfsService", service, feed.feed_id), "appliesOn": day,
                 "exceptionType": pc.cast(kind, pa.string())})  # SDM's text: "1", "2"
    return _finish("GtfsCalendarDateRule", cols, table, key, p, where,
                   ["service_id", "date"])


def services(feed: Feed) -> pa.Table:
    """One GtfsService per service_id seen in calendar, calendar_dates or trips.

    Derived rows: they stand for no input record of their own (``_records`` 0).
    """
    seen = [s.drop_null() for s in feed.service_ids.values()]
    names = pc.unique(pa.concat_arrays(seen)) if seen else pa.array([], pa.string())
    names = pc.take(names, pc.array_sort_indices(names))
    dated = [feed.service_ids[f].drop_null() for f in ("calendar.txt", "calendar_dates.txt")
             if f in feed.service_ids]
    used = feed.service_ids.get("trips.txt", pa.array([], pa.string())).drop_null()
    undated = pc.unique(pc.filter(used, pc.invert(pc.is_in(
        used, value_set=pa.concat_arrays(dated) if dated else pa.array([], pa.string())))))
    if len(undated):
        feed.warn(f"trips.txt: {len(undated)} service_id(s) have no row in calendar.txt or "
                  f"calendar_dates.txt, so their trips run on no day (e.g. "
                  f"{', '.join(map(repr, undated.to_pylist()[:3]))})")
    cols = feed.base("GtfsService", names, pa.table({}), "")
    cols.update({"name": names,
                 "operatedBy": urns("GtfsAgency", _agencies(feed, names), feed.feed_id),
                 "_records": pa.array(np.zeros(len(names), np.int64))})
    return pa.table(cols)


def _agencies(feed: Feed, services: pa.Array) -> pa.Array:
    """The agency of each service (SDM's GtfsService.operatedBy): the one agency of the routes
    its trips run on, else the feed's only agency, else none."""
    only = feed.agencies[0].as_py() if len(feed.agencies) == 1 else None
    out = []
    for name in services.to_pylist():
        found = feed.service_agency.get(name, set())
        out.append(next(iter(found)) if len(found) == 1 else only)
    return pa.array(out, pa.string())


def trips(feed: Feed, table: pa.Table, where: str) -> Converted:
    """trips.txt: one GtfsTrip per row; its route must exist, its shape should."""
    p = Problems(table, "GtfsTrip", where)
    p.flag_nul()
    trip_id, route_id, service = (trimmed(table, c) for c in ("trip_id", "route_id",
                                                                "service_id"))
    feed.service_ids["trips.txt"] = service
    for col, values in (("trip_id", trip_id), ("route_id", route_id), ("service_id", service)):
        p.flag(pc.is_null(values), missing(col))
    p.flag(pc.and_(pc.is_valid(route_id), pc.invert(pc.is_in(route_id, value_set=feed.routes))),
           lambda i: reason("unknown-reference", "route_id", value=route_id[i].as_py(),
                            type="GtfsRoute", where="routes.txt"))
    direction, _ = p.parsed("direction_id", parse_int, "0 or 1")
    wheel, _ = p.parsed("wheelchair_accessible", parse_int, "integer")
    shape = trimmed(table, "shape_id")
    if feed.shapes is not None:
        feed.dangling("trips.txt", "shape_id", shape, feed.shapes, "shape in shapes.txt")
    elif pc.any(pc.is_valid(shape)).as_py():
        feed.warn("trips.txt: trips name a shape_id but the feed has no shapes.txt; "
                  "kept, the references dangle")
    _repeated(p, trip_id, "trip_id", "trips.txt")
    cols = feed.base("GtfsTrip", trip_id, table, "trips.txt")
    cols.update({"hasRoute": urns("GtfsRoute", route_id, feed.feed_id),
                 "hasService": urns("GtfsService", service, feed.feed_id),
                 "headSign": text(table, "trip_headsign"),
                 "shortName": text(table, "trip_short_name"), "direction": direction,
                 "block": text(table, "block_id"),
                 "hasShape": urns("GtfsShape", shape, feed.feed_id),
                 "wheelChairAccessible": wheel})
    done = _finish("GtfsTrip", cols, table, trip_id, p, where, ["trip_id"])
    feed.trips = done.ids
    pairs = pa.table({"r": route_id, "s": service}).group_by(["r", "s"]).aggregate([])
    for route, svc in zip(pairs.column("r").to_pylist(), pairs.column("s").to_pylist(),
                          strict=True):  # distinct (route, service): a few hundred at most
        if svc is not None and route in feed.route_agency:
            feed.service_agency.setdefault(svc, set()).add(feed.route_agency[route])
    return done


def frequencies(feed: Feed, table: pa.Table, where: str) -> Converted:
    """frequencies.txt: one GtfsFrequency per row, keyed by trip_id and start time."""
    p = Problems(table, "GtfsFrequency", where)
    p.flag_nul()
    trip_id = trimmed(table, "trip_id")
    p.flag(pc.is_null(trip_id), missing("trip_id"))
    p.flag(pc.and_(pc.is_valid(trip_id), pc.invert(pc.is_in(trip_id, value_set=feed.trips))),
           lambda i: reason("unknown-reference", "trip_id", value=trip_id[i].as_py(),
                            type="GtfsTrip", where="trips.txt"))
    times = {}
    for col in ("start_time", "end_time"):
        times[col], _ = p.parsed(col, parse_clock, "time H:MM:SS")
    p.flag(pc.less_equal(times["end_time"], times["start_time"]), lambda i: reason(
        "end-before-start", "end_time", value=text(table, "end_time")[i].as_py(),
        start=text(table, "start_time")[i].as_py()))
    headway, _ = p.parsed("headway_secs", parse_int, "integer")
    exact, _ = p.parsed("exact_times", parse_bool, "0 or 1")
    key = pc.binary_join_element_wise(trip_id, pc.cast(times["start_time"], pa.string()), ":")
    _repeated(p, key, "start_time", "frequencies.txt")
    cols = feed.base("GtfsFrequency", key, table, "frequencies.txt")
    cols.update({"hasTrip": urns("GtfsTrip", trip_id, feed.feed_id),
                 "startTime": clock_text(times["start_time"]),
                 "endTime": clock_text(times["end_time"]),
                 "startSeconds": times["start_time"], "endSeconds": times["end_time"],
                 "headwaySeconds": headway, "exactTimes": pc.fill_null(exact, False)})
    return _finish("GtfsFrequency", cols, table, key, p, where, ["trip_id", "start_time"])
