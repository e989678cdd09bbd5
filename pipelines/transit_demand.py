"""The demand side of the transit pipelines: population points and boardings per stop.

Population comes from ``PopulationCell``: one kind (residents or floating), all datasets or one;
a place with an all-day figure uses it, a place with only hourly figures uses their mean over
the hours given. Boardings come from ``StopBoardings`` of the feed: the mean per day over the
analysed dates where the lake has counts on them, else over every date it has counts for; a
stop and date with hourly counts uses them, else its whole-day total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from hubctl.ngsild import entity_id
from hubctl.pipeline import PipelineContext

__all__ = ["Boardings", "Population", "load_boardings", "load_population"]


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
    """Mean daily boardings and alightings per served stop of ``feed`` (grouped in DuckDB;
    only one row per stop reaches Python)."""
    if not ctx.has("StopBoardings"):
        return Boardings({}, 0, "none")
    unlinked = [r[0] for r in ctx.con.execute(
        "SELECT DISTINCT stopId FROM StopBoardings WHERE refStop IS NULL AND stopId IS NOT NULL "
        "AND (feedId = ? OR feedId IS NULL) ORDER BY 1", [feed]).fetchall()]
    links = pa.table({"stopId": pa.array(unlinked, pa.string()),
                      "urn": pa.array([entity_id("GtfsStop", f"{feed}:{s}") for s in unlinked],
                                      pa.string())})
    ctx.con.register("__br_stop_links", links)
    try:
        ctx.con.execute("""
            CREATE OR REPLACE TEMP TABLE __br_board AS
            SELECT coalesce(b.refStop, l.urn) AS stop, b.serviceDate AS day,
                   CASE WHEN count(b.hour) > 0
                        THEN sum(b.boardings) FILTER (WHERE b.hour IS NOT NULL)
                        ELSE sum(b.boardings) END AS b,
                   CASE WHEN count(b.hour) > 0
                        THEN sum(b.alightings) FILTER (WHERE b.hour IS NOT NULL)
                        ELSE sum(b.alightings) END AS a
            FROM StopBoardings b LEFT JOIN __br_stop_links l
                 ON b.refStop IS NULL AND l.stopId = b.stopId
            WHERE b.feedId = ? OR b.feedId IS NULL
            GROUP BY 1, 2""", [feed])
        return _per_stop(ctx, dates, served)
    finally:
        ctx.con.execute("DROP TABLE IF EXISTS __br_board")
        ctx.con.unregister("__br_stop_links")


def _per_stop(ctx: PipelineContext, dates: list[date], served: set[str]) -> Boardings:
    in_range = ctx.scalar("SELECT count(*) FROM __br_board WHERE day BETWEEN ? AND ?",
                          [dates[0], dates[-1]])
    if not in_range and not ctx.scalar("SELECT count(*) FROM __br_board"):
        return Boardings({}, 0, "none")
    where = "day BETWEEN ? AND ?" if in_range else "true"
    args = [dates[0], dates[-1]] if in_range else []
    days = len(dates) if in_range else int(ctx.scalar(
        "SELECT count(DISTINCT day) FROM __br_board") or 1)
    t = ctx.sql(f"""SELECT stop, coalesce(sum(b), 0) AS b, coalesce(sum(a), 0) AS a
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
