"""The demand side of the transit pipelines: population points and boardings per stop.

Population comes from ``PopulationCell``: one kind (residents or floating), all datasets or one;
a place with an all-day figure uses it, a place with only hourly figures uses their mean over
the hours given. Boardings come from ``StopBoardings`` of the feed: the mean per day over the
analysed dates where the lake has counts on them, else over every date it has counts for; a
stop and date with hourly counts uses them, else its whole-day total. A month's counts
(``period`` month: Seoul's hourly card data per month) are spread evenly over the month's days,
for the stops and days no count of a single day covers. Counts that name their line (the card
data's 노선번호 or 호선명) are also kept per stop and line, and :func:`match_lines` finds each
line's GTFS route by its normalised short or long name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from hubctl.ngsild import entity_id
from hubctl.pipeline import PipelineContext

__all__ = ["Boardings", "LineMatch", "Population", "load_boardings", "load_population",
           "match_lines", "route_keys"]


@dataclass
class Population:
    """Population points: lon, lat, people; ``kind`` as used, ``note`` for the summary."""

    lon: np.ndarray
    lat: np.ndarray
    people: np.ndarray
    kind: str
    note: str = ""

    @property
    def total(self) -> float:
        """Total people."""
        return float(self.people.sum())


@dataclass
class Boardings:
    """Mean daily boardings and alightings per GtfsStop id, and where they came from."""

    per_stop: dict[str, tuple[float, float]]
    days: int
    basis: str  # "analysed dates", "all dates" or "none"
    unmatched_stops: int = 0
    #: (stop URN, line) -> mean daily (boardings, alightings), for counts that name a line
    per_stop_line: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    #: line -> its long name where the card data gives one (노선명 beside 노선번호)
    line_names: dict[str, str] = field(default_factory=dict)


def load_population(ctx: PipelineContext, kind: str, dataset: str,
                    hour: int = -1) -> Population:
    """Population points of ``kind`` ("auto": residents if any, else floating); with ``hour``
    0-23 only that hour's figures (places without one are left out)."""
    empty = Population(np.zeros(0), np.zeros(0), np.zeros(0), kind, "no PopulationCell table")
    if not ctx.has("PopulationCell"):
        return empty
    where, args = "lon IS NOT NULL AND lat IS NOT NULL AND population IS NOT NULL", []
    if dataset:
        where += " AND dataset = ?"
        args.append(dataset)
    kinds = [r[0] for r in ctx.con.execute(
        f"SELECT DISTINCT kind FROM PopulationCell WHERE {where} ORDER BY 1", args).fetchall()]
    if kind == "auto":
        kind = "residents" if "residents" in kinds or not kinds else kinds[0]
    if kind not in kinds:
        empty.note = f"no {kind} population in the lake"
        return empty
    if hour >= 0:
        where += f" AND hour = {int(hour)}"
    t = ctx.sql(f"""
        SELECT lon, lat,
               CASE WHEN count(*) FILTER (WHERE hour IS NULL) > 0
                    THEN sum(population) FILTER (WHERE hour IS NULL)
                    ELSE sum(population) / count(DISTINCT hour) END AS people
        FROM PopulationCell WHERE {where} AND kind = ?
        GROUP BY dataset, lon, lat ORDER BY lon, lat""", [*args, kind])
    return Population(t["lon"].to_numpy(), t["lat"].to_numpy(),
                      t["people"].to_numpy(zero_copy_only=False).astype(float), kind)


def load_boardings(ctx: PipelineContext, feed: str, dates: list[date],
                   served: set[str]) -> Boardings:
    """Mean daily boardings and alightings per served stop of ``feed``, and per stop and line
    where the counts name one. The scans of ``StopBoardings`` go through
    :meth:`~hubctl.pipeline.PipelineContext.aggregate` (Spark with ``hubctl run --engine``),
    joined with the stop links built here (:meth:`~hubctl.pipeline.PipelineContext.share`);
    one row per stop and line reaches Python."""
    if not ctx.has("StopBoardings"):
        return Boardings({}, 0, "none")
    unlinked = ctx.aggregate(
        "SELECT DISTINCT stopId FROM StopBoardings WHERE refStop IS NULL AND stopId IS NOT NULL "
        "AND (feedId = ? OR feedId IS NULL)", [feed])["stopId"].to_pylist()
    unlinked.sort()
    links = pa.table({"stopId": pa.array(unlinked, pa.string()),
                      "urn": pa.array([entity_id("GtfsStop", f"{feed}:{s}") for s in unlinked],
                                      pa.string())})
    columns = {r[0] for r in ctx.con.execute("DESCRIBE StopBoardings").fetchall()}
    line = "b.line" if "line" in columns else "NULL::VARCHAR"
    period = "coalesce(b.period, 'day')" if "period" in columns else "'day'"
    try:
        ctx.share("__br_stop_links", links)
        ctx.stage("__br_rows", f"""
            SELECT coalesce(b.refStop, l.urn) AS stop, {line} AS line, b.serviceDate AS day,
                   b.hour, b.boardings AS b, b.alightings AS a, {period} AS period
            FROM StopBoardings b LEFT JOIN __br_stop_links l
                 ON b.refStop IS NULL AND l.stopId = b.stopId
            WHERE b.feedId = ? OR b.feedId IS NULL""", [feed])
        ctx.stage("__br_board", _BOARD_SQL)
        out = _per_stop(ctx, dates, served)
        if "line" in columns:
            out.per_stop_line = _per_stop_line(ctx, dates, served, out)
        if "lineName" in columns:
            names = ctx.aggregate(
                "SELECT line, min(lineName) AS name FROM StopBoardings WHERE line IS NOT NULL "
                "AND lineName IS NOT NULL GROUP BY line")
            out.line_names = dict(zip(names["line"].to_pylist(), names["name"].to_pylist(),
                                      strict=True))
        return out
    finally:
        for name in ("__br_rows", "__br_board", "__br_stop_links"):
            ctx.con.execute(f"DROP TABLE IF EXISTS {name}")


# Counts per stop, line and day: a stop and day with hourly counts uses them (over every line),
# else its whole-day totals; a stop and month likewise, spread evenly over the month's days
# where no count of a single day covers that stop and day. Written for both engines: the
# month's days come from a LATERAL series of dates (a generator inside an expression is
# DuckDB's alone).
_BOARD_SQL = """
WITH days AS (
    SELECT stop, day, count(hour) > 0 AS hourly FROM __br_rows WHERE period = 'day'
    GROUP BY 1, 2),
daily AS (
    SELECT r.stop, r.line, r.day, sum(r.b) AS b, sum(r.a) AS a
    FROM __br_rows r JOIN days d ON d.stop = r.stop AND d.day = r.day
    WHERE r.period = 'day' AND (r.hour IS NOT NULL OR NOT d.hourly)
    GROUP BY 1, 2, 3),
months AS (
    SELECT stop, day, count(hour) > 0 AS hourly FROM __br_rows WHERE period = 'month'
    GROUP BY 1, 2),
monthly AS (
    SELECT r.stop, r.line, r.day AS month, last_day(r.day) AS last, sum(r.b) AS b,
           sum(r.a) AS a, day(last_day(r.day)) AS n
    FROM __br_rows r JOIN months m ON m.stop = r.stop AND m.day = r.day
    WHERE r.period = 'month' AND (r.hour IS NOT NULL OR NOT m.hourly)
    GROUP BY 1, 2, 3, 4),
spread AS (
    SELECT m.stop, m.line, CAST(s.d AS DATE) AS day, m.b / m.n AS b, m.a / m.n AS a
    FROM monthly m,
         LATERAL (SELECT unnest(generate_series(m.month, m.last, INTERVAL 1 DAY)) AS d) s)
SELECT * FROM daily
UNION ALL
SELECT s.* FROM spread s
WHERE NOT EXISTS (SELECT 1 FROM days d WHERE d.stop = s.stop AND d.day = s.day)
"""


def _window(ctx: PipelineContext, dates: list[date]) -> tuple[str, list[Any], int, bool]:
    """(SQL condition on ``day``, its arguments, days averaged over, whether in range)."""
    t = ctx.aggregate("SELECT count(*) FILTER (WHERE day BETWEEN ? AND ?) AS n, "
                      "count(DISTINCT day) AS days FROM __br_board", [dates[0], dates[-1]])
    if t["n"][0].as_py():
        return "day BETWEEN ? AND ?", [dates[0], dates[-1]], len(dates), True
    return "true", [], int(t["days"][0].as_py() or 1), False


def _per_stop(ctx: PipelineContext, dates: list[date], served: set[str]) -> Boardings:
    if not ctx.aggregate("SELECT count(*) AS n FROM __br_board")["n"][0].as_py():
        return Boardings({}, 0, "none")
    where, args, days, in_range = _window(ctx, dates)
    t = ctx.aggregate(f"""SELECT stop, coalesce(sum(b), 0) AS b, coalesce(sum(a), 0) AS a
                          FROM __br_board WHERE {where} GROUP BY stop ORDER BY stop""", args)
    per_stop: dict[str, tuple[float, float]] = {}
    unmatched = 0
    for stop, b, a in zip(t["stop"].to_pylist(), t["b"].to_pylist(), t["a"].to_pylist(),
                          strict=True):
        if stop in served:
            per_stop[stop] = (b / max(days, 1), a / max(days, 1))
        else:
            unmatched += 1
    return Boardings(per_stop, days, "analysed dates" if in_range else "all dates", unmatched)


def _per_stop_line(ctx: PipelineContext, dates: list[date], served: set[str],
                   base: Boardings) -> dict[tuple[str, str], tuple[float, float]]:
    if base.basis == "none":
        return {}
    where, args, days, _ = _window(ctx, dates)
    t = ctx.aggregate(f"""SELECT stop, line, coalesce(sum(b), 0) AS b, coalesce(sum(a), 0) AS a
                          FROM __br_board WHERE {where} AND line IS NOT NULL
                          GROUP BY stop, line ORDER BY stop, line""", args)
    return {(s, ln): (b / max(days, 1), a / max(days, 1))
            for s, ln, b, a in zip(t["stop"].to_pylist(), t["line"].to_pylist(),
                                   t["b"].to_pylist(), t["a"].to_pylist(), strict=True)
            if s in served}


_BRACKETS = re.compile(r"[(\[（].*?[)\]）]")
_SUFFIX = re.compile(r"(번|호선|선|line|route)$")


def route_keys(text: str | None) -> list[str]:
    """Normalised forms of a route or line name, most exact first: NFKC, case and spaces
    folded, then without bracketed parts (``100번(하계동~용산구청)`` -> ``100번``) and without
    a trailing 번/호선/line (``100``, ``1호선`` -> ``1``)."""
    if not text:
        return []
    base = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)).casefold())
    out = [base]
    bare = _BRACKETS.sub("", base) or base
    out.append(bare)
    out.append(_SUFFIX.sub("", bare) or bare)
    return [k for i, k in enumerate(out) if k and k not in out[:i]]


@dataclass
class LineMatch:
    """Card-data lines matched to GTFS routes: line -> route URN, and what did not match."""

    route_of: dict[str, str]
    how: dict[str, str]  # line -> "short_name", "long_name" or "short_name, at its stops"
    unmatched: list[str]
    ambiguous: dict[str, list[str]]  # line -> candidate route ids


def match_lines(lines: dict[str, set[str]], line_names: dict[str, str],
                route_info: dict[str, dict[str, Any]],
                routes_at: dict[str, set[str]]) -> LineMatch:
    """Each card-data line's GTFS route: its normalised name (or long name) equal to one
    route's ``route_short_name``, else to one route's ``route_long_name`` (exact forms before
    bracket- and suffix-stripped ones). When several routes share the name, the routes that
    serve the line's stops (``lines``: line -> stops with counts; ``routes_at``: stop ->
    route URNs) decide; still several is ambiguous, none unmatched."""
    index: dict[str, dict[str, set[str]]] = {"short_name": {}, "long_name": {}}
    for urn, info in route_info.items():
        for field_, value in (("short_name", info.get("short_name")),
                              ("long_name", info.get("name"))):
            for key in route_keys(value):
                index[field_].setdefault(key, set()).add(urn)
    out = LineMatch({}, {}, [], {})
    for line in sorted(lines):
        keys = route_keys(line) + [k for k in route_keys(line_names.get(line))
                                   if k not in route_keys(line)]
        found: tuple[str, set[str]] | None = None
        for key in keys:
            for field_ in ("short_name", "long_name"):
                if key in index[field_]:
                    found = (field_, index[field_][key])
                    break
            if found:
                break
        if found is None:
            out.unmatched.append(line)
            continue
        field_, candidates = found
        how = field_
        if len(candidates) > 1:
            serving = set().union(*(routes_at.get(s, set()) for s in lines[line]))
            narrowed = candidates & serving
            if len(narrowed) == 1:
                candidates, how = narrowed, f"{field_}, at its stops"
        if len(candidates) == 1:
            out.route_of[line] = next(iter(candidates))
            out.how[line] = how
        else:
            out.ambiguous[line] = sorted(str(route_info[c].get("route_id") or c)
                                         for c in candidates)
    return out
