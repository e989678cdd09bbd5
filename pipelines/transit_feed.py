"""The GTFS side of the transit pipelines, in DuckDB SQL over the lake's Gtfs* views.

:func:`load_service` picks the feed and the service dates, works out which trips run on them
(calendar rules, then calendar-date exceptions: added dates join, removed dates leave),
expands trips that ``frequencies.txt`` repeats (``GtfsFrequency``) into one trip per departure,
and summarises trips, stops, stop-route pairs, segments and headways into Arrow tables. Heavy work
(millions of stop times) stays in DuckDB; temporary tables are dropped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa

from hubctl.errors import InputError, UsageError
from hubctl.geo import EARTH_RADIUS_M
from hubctl.pipeline import PipelineContext

__all__ = ["Service", "as_dates", "busiest_date", "choose_feed", "load_service", "parse_windows",
           "service_days_sql"]

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HAVERSINE = (f"2 * {EARTH_RADIUS_M!r} * "
              "asin(sqrt(pow(sin(radians({lat2} - {lat1}) / 2), 2) + "
              "cos(radians({lat1})) * cos(radians({lat2})) * "
              "pow(sin(radians({lon2} - {lon1}) / 2), 2)))")
_TEMP = ("__br_days", "__br_trips", "__br_st", "__br_tripsum", "__br_tripdays", "__br_freq",
         "__br_inst")


@dataclass
class Service:
    """What runs on the analysed dates, summarised."""

    feed: str
    dates: list[date]
    trips: pa.Table        # route, dir, day, trip, start, end_, length_m (one row per trip-day)
    route_days: pa.Table   # route, dir, day, trips
    headways: pa.Table     # route, dir, peak_headway_min, offpeak_headway_min, mean_headway_min
    stops: pa.Table        # stop, stop_id, name, lon, lat, departures, day_departures, peak_hour
    stop_routes: pa.Table  # stop, route, dir, departures
    segments: pa.Table     # route, dir, a, b
    patterns: pa.Table     # route, dir, pos, stop (the most common stop sequence)
    routes: pa.Table       # route, route_id, short_name, name, route_type


def parse_windows(texts: list[str], what: str) -> list[tuple[int, int]]:
    """``["07:00-09:00", ...]`` as (start, end) seconds after midnight; a UsageError if bad."""
    out = []
    for text in texts:
        try:
            a, b = (part.strip() for part in text.split("-"))
            start, end = (_seconds(a), _seconds(b))
        except ValueError:
            raise UsageError(f"--param {what}={text}: write windows as HH:MM-HH:MM, "
                             "comma-separated, e.g. 07:00-09:00,17:00-19:00") from None
        if end <= start:
            raise UsageError(f"--param {what}={text}: the window ends before it starts")
        out.append((start, end))
    return out


def _seconds(text: str) -> int:
    h, m = text.split(":")
    value = int(h) * 3600 + int(m) * 60
    if not (0 <= int(m) < 60 and 0 <= value <= 48 * 3600):
        raise ValueError(text)
    return value


def choose_feed(ctx: PipelineContext, feed: str) -> str:
    """The feed to analyse: ``feed`` if given, else the lake's only one."""
    feeds = [r[0] for r in ctx.con.execute(
        "SELECT DISTINCT feedId FROM GtfsTrip WHERE feedId IS NOT NULL ORDER BY 1").fetchall()]
    if not feeds:
        raise InputError("the lake has no GTFS trips", hint="run `hubctl ingest gtfs FEED.zip`")
    if feed:
        if feed not in feeds:
            raise UsageError(f"--param feed={feed}: no such feed in the lake",
                             hint=f"feeds: {', '.join(feeds)}")
        return feed
    if len(feeds) > 1:
        raise UsageError(f"the lake holds {len(feeds)} GTFS feeds; choose one with "
                         "--param feed=ID", hint=f"feeds: {', '.join(feeds)}")
    return feeds[0]


def service_days_sql(ctx: PipelineContext) -> str:
    """SQL of (service, d) for every date d in [$2, $3] the services of feed $1 run on."""
    weekday = " ".join(f"WHEN {i + 1} THEN r.{name}" for i, name in enumerate(_WEEKDAYS))
    parts = []
    if ctx.has("GtfsCalendarRule"):
        parts.append(f"""
            SELECT r.hasService AS service, days.d
            FROM GtfsCalendarRule r
            JOIN (SELECT CAST(d AS DATE) AS d FROM (SELECT unnest(generate_series(
                      $2::DATE, $3::DATE, INTERVAL 1 DAY)) AS d)) days
                 ON days.d BETWEEN r.startDate AND r.endDate
            WHERE r.feedId = $1 AND coalesce(CASE isodow(days.d) {weekday} END, false)""")
    exceptions = ctx.has("GtfsCalendarDateRule")
    if exceptions:
        parts.append("""
            SELECT hasService, appliesOn FROM GtfsCalendarDateRule
            WHERE feedId = $1 AND exceptionType = '1'
              AND appliesOn BETWEEN $2::DATE AND $3::DATE""")
    if not parts:
        raise InputError("the feed has neither calendar.txt nor calendar_dates.txt rules in the "
                         "lake (GtfsCalendarRule, GtfsCalendarDateRule)",
                         hint="ingest the whole feed with `hubctl ingest gtfs`")
    sql = " UNION ".join(parts)
    if exceptions:
        sql = f"""({sql}) EXCEPT SELECT hasService, appliesOn FROM GtfsCalendarDateRule
                  WHERE feedId = $1 AND exceptionType = '2'"""
    return sql


def busiest_date(ctx: PipelineContext, feed: str) -> date:
    """The date of the feed's calendar with the most trips (the earliest such date)."""
    bounds = []
    if ctx.has("GtfsCalendarRule"):
        bounds.append("SELECT min(startDate) AS lo, max(endDate) AS hi FROM GtfsCalendarRule "
                      "WHERE feedId = $1")
    if ctx.has("GtfsCalendarDateRule"):
        bounds.append("SELECT min(appliesOn), max(appliesOn) FROM GtfsCalendarDateRule "
                      "WHERE feedId = $1")
    if not bounds:
        service_days_sql(ctx)  # raises the clear error
    lo, hi = ctx.con.execute(f"SELECT min(lo), max(hi) FROM ({' UNION ALL '.join(bounds)})",
                             [feed]).fetchone() or (None, None)
    if lo is None:
        raise InputError(f"feed {feed} has no calendar dates")
    hi = min(hi, lo + timedelta(days=3 * 366))  # open-ended calendars: three years suffice
    row = ctx.con.execute(f"""
        SELECT sd.d, sum(t.n) AS n FROM ({service_days_sql(ctx)}) sd
        JOIN (SELECT hasService, count(*) AS n FROM GtfsTrip WHERE feedId = $1
              GROUP BY hasService) t ON t.hasService = sd.service
        GROUP BY sd.d ORDER BY n DESC, sd.d LIMIT 1""", [feed, lo, hi]).fetchone()
    if row is None:
        raise InputError(f"feed {feed}: no trip runs on any date of its calendar")
    return row[0]  # type: ignore[no-any-return]


@contextmanager
def _temp_tables(ctx: PipelineContext) -> Iterator[None]:
    try:
        yield
    finally:
        for name in _TEMP:
            ctx.con.execute(f"DROP TABLE IF EXISTS {name}")


def load_service(ctx: PipelineContext, feed: str, dates: list[date], route_types: list[int],
                 peak: list[tuple[int, int]], day_window: tuple[int, int]) -> Service:
    """Summarise what feed ``feed`` runs on ``dates`` (one contiguous range)."""
    with _temp_tables(ctx):
        ctx.stage("__br_days", service_days_sql(ctx), [feed, dates[0], dates[-1]])
        type_filter = ""
        if route_types:
            kinds = ", ".join(f"'{int(t)}'" for t in route_types)  # SDM's text codes
            type_filter = (f"AND t.hasRoute IN (SELECT id FROM GtfsRoute WHERE feedId = $1 "
                           f"AND routeType IN ({kinds}))")
        ctx.stage("__br_trips", f"""
            SELECT t.id AS trip, t.hasRoute AS route, coalesce(t.direction, 0) AS dir,
                   t.hasShape AS shape, d.d AS day
            FROM GtfsTrip t JOIN __br_days d ON d.service = t.hasService
            WHERE t.feedId = $1 {type_filter}""", [feed])
        repeated = _expand_frequencies(ctx, feed)
        ctx.stage("__br_tripdays", """
                       SELECT trip, any_value(route) AS route, any_value(dir) AS dir,
                              any_value(shape) AS shape, count(*) AS days
                       FROM __br_trips GROUP BY trip""")
        if not repeated:
            ctx.stage("__br_st", """
                SELECT st.hasTrip AS trip, st.stopSequence AS seq, st.hasStop AS stop,
                       coalesce(st.departureSeconds, st.arrivalSeconds) AS dep,
                       coalesce(st.arrivalSeconds, st.departureSeconds) AS arr,
                       lead(st.hasStop) OVER (PARTITION BY st.hasTrip ORDER BY st.stopSequence)
                           AS next_stop
                FROM GtfsStopTime st
                WHERE st.feedId = $1 AND st.hasTrip IN (SELECT trip FROM __br_tripdays)""",
                      [feed])
        else:  # each departure of a repeated trip: its template's stop times, shifted
            ctx.stage("__br_st", """
                SELECT i.trip, st.stopSequence AS seq, st.hasStop AS stop,
                       coalesce(st.departureSeconds, st.arrivalSeconds) + i.shift AS dep,
                       coalesce(st.arrivalSeconds, st.departureSeconds) + i.shift AS arr,
                       lead(st.hasStop) OVER (PARTITION BY i.trip ORDER BY st.stopSequence)
                           AS next_stop
                FROM GtfsStopTime st JOIN __br_inst i ON i.template = st.hasTrip
                WHERE st.feedId = $1""", [feed])
        _trip_summary(ctx)
        return Service(
            feed=feed, dates=dates,
            trips=ctx.aggregate("""
                SELECT t.route, t.dir, t.day, t.trip, s.start, s.end_, s.length_m
                FROM __br_trips t LEFT JOIN __br_tripsum s USING (trip)
                ORDER BY t.route, t.dir, t.day, s.start, t.trip"""),
            route_days=ctx.aggregate("""
                SELECT route, dir, day, count(*) AS trips FROM __br_trips
                GROUP BY ALL ORDER BY route, dir, day"""),
            headways=_headways(ctx, peak, day_window, len(dates)),
            stops=_stops(ctx, len(dates), day_window),
            stop_routes=ctx.aggregate("""
                SELECT s.stop, d.route, d.dir, sum(d.days) AS departures
                FROM __br_st s JOIN __br_tripdays d USING (trip)
                GROUP BY ALL ORDER BY s.stop, d.route, d.dir"""),
            segments=ctx.aggregate("""
                SELECT DISTINCT d.route, d.dir, s.stop AS a, s.next_stop AS b
                FROM __br_st s JOIN __br_tripdays d USING (trip)
                WHERE s.next_stop IS NOT NULL AND s.next_stop <> s.stop
                ORDER BY ALL"""),
            patterns=_patterns(ctx),
            routes=ctx.aggregate("""
                SELECT id AS route, shortName AS short_name, name,
                       TRY_CAST(routeType AS BIGINT) AS route_type
                FROM GtfsRoute WHERE feedId = $1 AND id IN (SELECT route FROM __br_tripdays)
                ORDER BY id""", [feed]),
        )


def _expand_frequencies(ctx: PipelineContext, feed: str) -> bool:
    """Replace every trip of ``__br_trips`` that ``frequencies.txt`` repeats by one trip per
    departure (``trip@seconds``): departures at start, start + headway, ... before the end of
    each window (GTFS: a trip starting exactly at end_time is not run), exact_times 0 or 1
    alike. ``__br_inst`` maps each (possibly repeated) trip to its template and the seconds
    its stop times move by. Returns False, changing nothing, when no analysed trip repeats."""
    if not ctx.has("GtfsFrequency"):
        return False
    ctx.stage("__br_freq", """
        WITH w AS (SELECT hasTrip AS trip, startSeconds AS a, endSeconds AS b,
                          headwaySeconds AS h
                   FROM GtfsFrequency
                   WHERE feedId = $1 AND headwaySeconds > 0 AND endSeconds > startSeconds
                     AND hasTrip IN (SELECT trip FROM __br_trips)),
        first AS (SELECT hasTrip AS trip,
                         min(coalesce(departureSeconds, arrivalSeconds)) AS t0
                  FROM GtfsStopTime WHERE feedId = $1 AND hasTrip IN (SELECT trip FROM w)
                  GROUP BY hasTrip)
        SELECT DISTINCT w.trip, d.dep, d.dep - first.t0 AS shift
        FROM w JOIN first USING (trip),
             LATERAL (SELECT unnest(generate_series(w.a, w.b - 1, w.h)) AS dep) d""", [feed])
    if not ctx.aggregate("SELECT count(*) AS n FROM __br_freq")["n"][0].as_py():
        return False
    ctx.stage("__br_inst", """
        SELECT DISTINCT trip AS template, trip, 0 AS shift FROM __br_trips
        WHERE trip NOT IN (SELECT trip FROM __br_freq)
        UNION ALL
        SELECT trip, trip || '@' || dep, shift FROM __br_freq""")
    ctx.stage("__br_trips", """
        SELECT i.trip, t.route, t.dir, t.shape, t.day
        FROM __br_trips t JOIN __br_inst i ON i.template = t.trip""")
    return True


def _trip_summary(ctx: PipelineContext) -> None:
    """Start, end and length of every trip: the shape's length where the trip has a shape,
    else the great-circle path through its stops."""
    hav = _HAVERSINE.format(lon1="a.lon", lat1="a.lat", lon2="b.lon", lat2="b.lat")
    shape_length = ("(SELECT id, length FROM GtfsShape WHERE length > 0)"
                    if ctx.has("GtfsShape") else "(SELECT NULL::VARCHAR AS id, NULL::DOUBLE "
                                                 "AS length WHERE false)")
    ctx.stage("__br_tripsum", f"""
        WITH path AS (
            SELECT s.trip, min(s.dep) AS start, max(s.arr) AS end_, count(*) AS stops,
                   sum(CASE WHEN b.id IS NOT NULL THEN {hav} ELSE 0 END) AS path_m
            FROM __br_st s JOIN GtfsStop a ON a.id = s.stop
            LEFT JOIN GtfsStop b ON b.id = s.next_stop
            GROUP BY s.trip)
        SELECT p.trip, p.start, p.end_, p.stops, coalesce(sh.length, p.path_m) AS length_m
        FROM path p JOIN __br_tripdays d USING (trip)
        LEFT JOIN {shape_length} sh ON sh.id = d.shape""")


def _in_windows(column: str, windows: list[tuple[int, int]]) -> str:
    if not windows:
        return "false"
    return "(" + " OR ".join(f"({column} % 86400 >= {a} AND {column} % 86400 < {b})"
                             for a, b in windows) + ")"


def _overlap(windows: list[tuple[int, int]], span: tuple[int, int]) -> int:
    """Seconds of ``span`` covered by ``windows`` (windows taken as not overlapping)."""
    return sum(max(0, min(b, span[1]) - max(a, span[0])) for a, b in windows)


def _headways(ctx: PipelineContext, peak: list[tuple[int, int]], day_window: tuple[int, int],
              days: int) -> pa.Table:
    """Scheduled headways per route and direction, in minutes: the length of the peak windows
    in which the route runs over the trips starting in them, the same for the rest of the day
    window (off-peak), and the mean gap between consecutive trip starts over the service day."""
    in_peak = _in_windows("start", peak)
    counts = ", ".join(f"count(*) FILTER (WHERE {_in_windows('start', [w])}) AS p{i}"
                       for i, w in enumerate(peak)) or "0 AS p0"
    served = " + ".join(f"CASE WHEN p{i} > 0 THEN {(b - a) / 60} ELSE 0 END"
                        for i, (a, b) in enumerate(peak)) or "0"
    trips = " + ".join(f"p{i}" for i in range(len(peak))) or "0"
    off_min = ((day_window[1] - day_window[0]) - _overlap(peak, day_window)) / 60
    return ctx.aggregate(f"""
        WITH starts AS (
            SELECT t.route, t.dir, t.day, s.start,
                   s.start - lag(s.start) OVER (PARTITION BY t.route, t.dir, t.day
                                                ORDER BY s.start) AS gap
            FROM __br_trips t JOIN __br_tripsum s USING (trip) WHERE s.start IS NOT NULL),
        per AS (
            SELECT route, dir, {counts},
                   count(*) FILTER (WHERE NOT {in_peak} AND {_in_windows("start", [day_window])})
                       AS off, avg(gap) / 60.0 AS mean_headway_min
            FROM starts GROUP BY route, dir)
        SELECT route, dir,
               ({served}) * {days} / nullif({trips}, 0) AS peak_headway_min,
               {off_min} * {days} / nullif(off, 0) AS offpeak_headway_min,
               mean_headway_min
        FROM per ORDER BY route, dir""")


def _stops(ctx: PipelineContext, days: int, day_window: tuple[int, int]) -> pa.Table:
    """Served stops with their departures per day, in the day window, and at the busiest hour."""
    hours = max(1.0, (day_window[1] - day_window[0]) / 3600)
    in_day = _in_windows("s.dep", [day_window])
    return ctx.aggregate(f"""
        WITH per_hour AS (
            SELECT s.stop, (s.dep // 3600) % 24 AS hour, sum(d.days) AS n,
                   sum(d.days) FILTER (WHERE {in_day}) AS n_day
            FROM __br_st s JOIN __br_tripdays d USING (trip)
            WHERE s.dep IS NOT NULL GROUP BY ALL)
        SELECT h.stop, g.lon, g.lat, g.name,
               sum(h.n) / {days}::DOUBLE AS departures,
               coalesce(sum(h.n_day), 0) / {days}::DOUBLE / {hours} AS day_trips_per_hour,
               max(h.n) / {days}::DOUBLE AS peak_hour_trips
        FROM per_hour h JOIN GtfsStop g ON g.id = h.stop
        WHERE g.lon IS NOT NULL AND g.lat IS NOT NULL
        GROUP BY h.stop, g.lon, g.lat, g.name ORDER BY h.stop""")


def _patterns(ctx: PipelineContext) -> pa.Table:
    """The most common stop sequence of each route and direction (ties: the longest, then the
    smallest trip id), one row per position. Trips are grouped by a fingerprint of their
    (stop, sequence) pairs, so no per-trip list is built over millions of stop times."""
    return ctx.aggregate("""
        WITH fp AS (
            SELECT trip, sum(hash(stop, seq)) AS f, count(*) AS n FROM __br_st GROUP BY trip),
        counted AS (
            SELECT d.route, d.dir, fp.f, any_value(fp.n) AS n, sum(d.days) AS k,
                   min(fp.trip) AS trip
            FROM fp JOIN __br_tripdays d USING (trip) GROUP BY d.route, d.dir, fp.f),
        best AS (
            SELECT route, dir, trip FROM counted
            QUALIFY row_number() OVER (PARTITION BY route, dir ORDER BY k DESC, n DESC, trip) = 1)
        SELECT b.route, b.dir,
               row_number() OVER (PARTITION BY b.route, b.dir ORDER BY s.seq) - 1 AS pos, s.stop
        FROM best b JOIN __br_st s ON s.trip = b.trip
        ORDER BY b.route, b.dir, pos""")


def as_dates(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]

