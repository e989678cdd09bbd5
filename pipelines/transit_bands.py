"""Frequencies by time of day: the reallocation of :mod:`pipelines.headways` run once per time
band, under each band's own vehicle-hour budget (the fleet a band has).

A route's trips belong to the band of their first departure's hour (GTFS clock modulo 24);
its vehicle-hours in a band are those trips' running times, its headway there the band's
minutes over its trips per direction. A route's demand in a band is its daily demand times
the band's share of the day's demand: of the feed's hourly boardings where the lake has them
(card data with an hour), else of the feed's departures (demand assumed to follow today's
service through the day; the summary names the basis). A route whose hourly card data names
it (its line matched, :func:`pipelines.transit_demand.match_lines`) uses its own hours.
Each band is then the exact convex problem of the whole-day reallocation: it never uses more
vehicle-hours in the band than today and never waits longer in total there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.headways import reallocate
from hubctl.pipelines.hotspots import Bands

__all__ = ["BandPlan", "demand_profile", "reallocate_by_band", "route_profiles"]

_MIN_TRIPS = 2.0  # a route needs two trips a day in a band for a headway there


@dataclass
class BandPlan:
    """The per-band plans: one table row per route and band, and per-band totals."""

    table: pa.Table
    bands: list[dict[str, object]]


def demand_profile(ctx: PipelineContext, feed: str, bands: Bands,
                   trips: pa.Table) -> tuple[np.ndarray, str]:
    """Share of the day's demand in each band, and its basis."""
    if ctx.has("StopBoardings"):
        t = ctx.aggregate(
            "SELECT hour, sum(boardings) AS n FROM StopBoardings WHERE hour IS NOT NULL AND "
            "boardings IS NOT NULL AND (feedId = ? OR feedId IS NULL) GROUP BY hour", [feed])
        per_hour = np.zeros(24)
        for hour, n in zip(t["hour"].to_pylist(), t["n"].to_pylist(), strict=True):
            if hour is not None and 0 <= int(hour) < 24:
                per_hour[int(hour)] += float(n or 0)
        if per_hour.sum() > 0:
            share = np.bincount(bands.of_hour, weights=per_hour, minlength=len(bands.names))
            return share / share.sum(), "hourly boardings"
    start = trips["start"].to_numpy(zero_copy_only=False).astype(float)
    ok = np.isfinite(start)
    hours = (start[ok] // 3600).astype(np.int64) % 24
    share = np.bincount(bands.of_hour[hours], minlength=len(bands.names)).astype(float)
    return (share / share.sum() if share.sum() else share), "departures (no hourly boardings)"


def route_profiles(ctx: PipelineContext, feed: str, bands: Bands, route_of: dict[str, str],
                   routes: list[str], base: np.ndarray) -> tuple[np.ndarray, int]:
    """Band shares per route, (bands x routes): a route whose hourly card data names it (its
    line matched, ``route_of``: line -> route URN) uses its own hours; the others ``base``.
    Also how many routes have their own."""
    out = np.repeat(np.asarray(base, dtype=float)[:, None], len(routes), axis=1)
    if not route_of or not ctx.has("StopBoardings"):
        return out, 0
    columns = {r[0] for r in ctx.con.execute("DESCRIBE StopBoardings").fetchall()}
    if "line" not in columns:
        return out, 0
    t = ctx.aggregate(
        "SELECT line, hour, sum(boardings) AS n FROM StopBoardings WHERE line IS NOT NULL AND "
        "hour IS NOT NULL AND boardings IS NOT NULL AND (feedId = ? OR feedId IS NULL) "
        "GROUP BY 1, 2", [feed])
    index = {r: k for k, r in enumerate(routes)}
    per_hour = np.zeros((len(routes), 24))
    for line, hour, n in zip(t["line"].to_pylist(), t["hour"].to_pylist(), t["n"].to_pylist(),
                             strict=True):
        k = index.get(route_of.get(line, ""), -1)
        if k >= 0 and 0 <= int(hour) < 24:
            per_hour[k, int(hour)] += float(n or 0)
    own = np.flatnonzero(per_hour.sum(axis=1) > 0)
    for j in own.tolist():
        share = np.bincount(bands.of_hour, weights=per_hour[j], minlength=len(bands.names))
        out[:, j] = share / share.sum()
    return out, int(len(own))


def reallocate_by_band(trips: pa.Table, days: int, totals: pa.Table, bands: Bands,
                       profile: np.ndarray, lo: float, hi: float) -> BandPlan:
    """Per band and route: today's trips, headway and vehicle-hours, and the band's optimal
    headways (``lo``..``hi`` minutes) for demand ``totals.demand_per_day`` x ``profile`` (the
    band shares of the day's demand: one per band, or bands x routes)."""
    route = np.asarray(trips["route"].to_pylist(), dtype=object)
    start = trips["start"].to_numpy(zero_copy_only=False).astype(float)
    end = trips["end_"].to_numpy(zero_copy_only=False).astype(float)
    ok = np.isfinite(start) & np.isfinite(end)
    names = list(totals["route"].to_pylist())
    code = {r: i for i, r in enumerate(names)}
    r = np.array([code.get(x, -1) for x in route[ok]], dtype=np.int64)
    keep = r >= 0
    r, s, e = r[keep], start[ok][keep], end[ok][keep]
    dirs = trips["dir"].to_numpy(zero_copy_only=False)[ok][keep].astype(np.int64)
    b = bands.of_hour[(s // 3600).astype(np.int64) % 24]
    nb, nr = len(bands.names), len(names)
    cell = b * nr + r
    n_trips = np.bincount(cell, minlength=nb * nr).reshape(nb, nr) / days
    vh = np.bincount(cell, weights=(e - s) / 3600, minlength=nb * nr).reshape(nb, nr) / days
    n_dirs = np.zeros((nb, nr))
    pairs = np.unique(np.column_stack([b, r, dirs]), axis=0)
    np.add.at(n_dirs, (pairs[:, 0], pairs[:, 1]), 1)
    minutes = np.bincount(bands.of_hour, minlength=nb) * 60.0
    demand_day = np.nan_to_num(totals["demand_per_day"].to_numpy(zero_copy_only=False)
                               .astype(float))
    rows: list[dict[str, object]] = []
    summary: list[dict[str, object]] = []
    for k, band in enumerate(bands.names):
        per_dir = n_trips[k] / np.maximum(n_dirs[k], 1)
        usable = (per_dir >= _MIN_TRIPS) & (vh[k] > 0)
        h0 = np.where(usable, minutes[k] / np.maximum(per_dir, 1e-9), np.nan)
        d = demand_day * profile[k]  # a band's share, or each route's own share of it
        idx = np.flatnonzero(usable)
        plan = reallocate(d[idx], vh[k][idx], h0[idx], lo, hi)
        ratio = plan.headway_before / plan.headway_after if len(idx) else np.zeros(0)
        for j, i in enumerate(idx.tolist()):
            h_before, h_after = float(plan.headway_before[j]), float(plan.headway_after[j])
            rows.append({
                "band": band, "route": names[i], "route_id": totals["route_id"][i].as_py(),
                "short_name": totals["short_name"][i].as_py(), "demand": float(d[i]),
                "trips_before": float(n_trips[k][i]), "trips_after": float(n_trips[k][i] *
                                                                           ratio[j]),
                "headway_before_min": h_before, "headway_after_min": h_after,
                "vehicle_hours_before": float(vh[k][i]),
                "vehicle_hours_after": float(vh[k][i] * ratio[j]),
                "change": "unchanged" if np.isclose(h_before, h_after, rtol=1e-9) else (
                    "more frequent" if h_after < h_before else "less frequent")})
        summary.append({
            "band": band, "demand_share": round(_share(profile, k, demand_day), 6),
            "routes": len(idx),
            "status": plan.status,
            "vehicle_hours_before": round(plan.vehicle_hours_before, 6),
            "vehicle_hours_after": round(plan.vehicle_hours_after, 6),
            "waiting_hours_before": round(plan.waiting_before / 60, 6),
            "waiting_hours_after": round(plan.waiting_after / 60, 6)})
    return BandPlan(pa.Table.from_pylist(rows, schema=BAND_SCHEMA), summary)


def _share(profile: np.ndarray, k: int, demand_day: np.ndarray) -> float:
    """Band ``k``'s share of the day's demand (demand-weighted over the routes' own shares)."""
    if profile.ndim == 1:
        return float(profile[k])
    total = float(demand_day.sum())
    return float((demand_day * profile[k]).sum()) / total if total else float(profile[k].mean())


BAND_SCHEMA = pa.schema([
    ("band", pa.string()), ("route", pa.string()), ("route_id", pa.string()),
    ("short_name", pa.string()), ("demand", pa.float64()), ("trips_before", pa.float64()),
    ("trips_after", pa.float64()), ("headway_before_min", pa.float64()),
    ("headway_after_min", pa.float64()), ("vehicle_hours_before", pa.float64()),
    ("vehicle_hours_after", pa.float64()), ("change", pa.string())])
