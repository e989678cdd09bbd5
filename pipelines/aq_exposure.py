"""Exposure: annual station means interpolated to population cells and to GTFS stops.

For each year and pollutant with a WHO annual guideline (PM2.5, PM10, NO2), the stations with a
complete annual mean are the sources. A target (a ``PopulationCell`` or a ``GtfsStop``) gets
the inverse-distance-weighted mean (power 2) of the stations within ``radius_m`` (at most the
32 nearest; a station closer than 1 m counts as 1 m), or null if none is that close, and,
always, the value and distance of its nearest station. Distances are metres on a local
projection (:class:`pipelines.geo.LocalProjection`). Cells are weighted by residents, stops by
their boardings (``StopBoardings``) where the lake has them, else equally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import cKDTree

from hubctl.ngsild import entity_id
from hubctl.pipeline import PipelineContext
from hubctl.pipelines.aq_standards import WHO_2021
from hubctl.pipelines.geo import projection_for

__all__ = ["EXPOSURE_SCHEMA", "Targets", "exposure", "population_cells", "stops", "summarise"]

POWER = 2.0
MAX_STATIONS = 32
ANNUAL = {p: dict(v["annual"]) for p, v in WHO_2021.items() if "annual" in v}
EXPOSURE_SCHEMA = pa.schema([
    ("target", pa.string()), ("target_id", pa.string()), ("lon", pa.float64()),
    ("lat", pa.float64()), ("weight", pa.float64()), ("year", pa.date32()),
    ("pollutant", pa.string()), ("idw", pa.float64()), ("stations_used", pa.int32()),
    ("nearest_station", pa.string()), ("nearest_value", pa.float64()),
    ("nearest_distance_m", pa.float64()), ("guideline", pa.float64()),
    ("above_guideline", pa.bool_()),
])


@dataclass
class Targets:
    """Points to estimate at, with their weights and what the weights are."""

    kind: str
    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    weight: np.ndarray
    weighted_by: str


def population_cells(ctx: PipelineContext, dataset: str, notes: list[str]) -> Targets | None:
    """All-day residents per cell of one PopulationCell dataset (the largest by default)."""
    if not ctx.has("PopulationCell"):
        return None
    sets = ctx.con.execute("""
        SELECT dataset, sum(population) FROM PopulationCell_latest
        WHERE kind = 'residents' AND hour IS NULL AND lon IS NOT NULL AND lat IS NOT NULL
        GROUP BY dataset ORDER BY 2 DESC, 1""").fetchall()
    if dataset:
        sets = [s for s in sets if s[0] == dataset]
    if not sets:
        notes.append("no all-day residents in PopulationCell"
                     + (f" for dataset {dataset}" if dataset else "")
                     + ": no exposure of the population")
        return None
    if len(sets) > 1 and not dataset:
        notes.append(f"PopulationCell has {len(sets)} datasets; exposure uses {sets[0][0]} "
                     "(the largest); choose one with --param population_dataset=NAME")
    t = ctx.sql("""
        SELECT min(id) AS id, lon, lat, sum(population) AS people FROM PopulationCell_latest
        WHERE kind = 'residents' AND hour IS NULL AND dataset IS NOT DISTINCT FROM ?
              AND lon IS NOT NULL AND lat IS NOT NULL
        GROUP BY lon, lat ORDER BY id""", [sets[0][0]])
    return Targets("cell", t["id"].to_numpy(zero_copy_only=False), t["lon"].to_numpy(),
                   t["lat"].to_numpy(), t["people"].to_numpy(zero_copy_only=False)
                   .astype(float), f"residents ({sets[0][0]})")


def stops(ctx: PipelineContext) -> Targets | None:
    """GTFS stops (not stations or entrances), weighted by their recorded boardings."""
    if not ctx.has("GtfsStop"):
        return None
    t = ctx.sql("""SELECT id, lon, lat FROM GtfsStop_latest
                   WHERE lon IS NOT NULL AND lat IS NOT NULL AND coalesce(locationType, 0) = 0
                   ORDER BY id""")
    ids = t["id"].to_numpy(zero_copy_only=False)
    weight = np.ones(len(ids))
    weighted_by = "none (each stop counts once; the lake has no StopBoardings)"
    if ctx.has("StopBoardings"):
        b = ctx.aggregate("""SELECT refStop, feedId, stopId, sum(boardings) AS b
                             FROM StopBoardings GROUP BY ALL""")
        totals: dict[str, float] = {}
        for ref, feed, stop, n in zip(b["refStop"].to_pylist(), b["feedId"].to_pylist(),
                                      b["stopId"].to_pylist(), b["b"].to_pylist(), strict=True):
            key = ref or (entity_id("GtfsStop", f"{feed}:{stop}") if feed and stop else None)
            if key is not None and n is not None:
                totals[key] = totals.get(key, 0.0) + float(n)
        weight = np.array([totals.get(i, 0.0) for i in ids], dtype=float)
        weighted_by = "boardings (StopBoardings, all dates)"
    return Targets("stop", ids, t["lon"].to_numpy(), t["lat"].to_numpy(), weight, weighted_by)


def _estimate(src_xy: np.ndarray, src_v: np.ndarray, dst_xy: np.ndarray,
              radius_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IDW value and station count within the radius; nearest station index and distance."""
    tree = cKDTree(src_xy)
    k = min(MAX_STATIONS, len(src_v))
    dist, idx = tree.query(dst_xy, k=k, distance_upper_bound=radius_m)
    dist, idx = dist.reshape(len(dst_xy), k), idx.reshape(len(dst_xy), k)
    inside = np.isfinite(dist)
    w = np.where(inside, 1.0 / np.maximum(dist, 1.0) ** POWER, 0.0)
    vals = np.where(inside, src_v[np.minimum(idx, len(src_v) - 1)], 0.0)
    wsum = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        idw = np.where(wsum > 0, (w * vals).sum(axis=1) / wsum, np.nan)
    near_d, near_i = tree.query(dst_xy, k=1)
    return idw, inside.sum(axis=1), np.asarray(near_i), np.asarray(near_d)


def exposure(ctx: PipelineContext, targets: list[Targets], radius_m: float) -> pa.Table:
    """The exposure table for every target, year and pollutant with a complete annual mean."""
    src = ctx.sql("""
        SELECT m.id, m.pollutant, m.start AS year, m.mean, s.lon, s.lat
        FROM __aq_means m JOIN __aq_stations s
             ON s.id = m.id
        WHERE m.period = 'year' AND m.mean IS NOT NULL AND s.lon IS NOT NULL
              AND s.lat IS NOT NULL AND m.pollutant IN ('pm25', 'pm10', 'no2')
        ORDER BY m.pollutant, m.start, m.id""").to_pydict()
    if not src["id"] or not targets:
        return EXPOSURE_SCHEMA.empty_table()
    all_lon = np.concatenate([np.asarray(src["lon"], float), *[t.lon for t in targets]])
    all_lat = np.concatenate([np.asarray(src["lat"], float), *[t.lat for t in targets]])
    proj = projection_for(all_lon, all_lat)
    groups: dict[tuple[str, Any], list[int]] = {}
    for i, key in enumerate(zip(src["pollutant"], src["year"], strict=True)):
        groups.setdefault(key, []).append(i)
    out: list[pa.Table] = []
    ids, values = np.asarray(src["id"], dtype=object), np.asarray(src["mean"], float)
    sx, sy = proj.to_xy(np.asarray(src["lon"], float), np.asarray(src["lat"], float))
    for t in targets:
        tx, ty = proj.to_xy(t.lon, t.lat)
        dst = np.column_stack([tx, ty])
        for (pollutant, year), rows in sorted(groups.items(), key=lambda kv: (kv[0][0],
                                                                              str(kv[0][1]))):
            r = np.asarray(rows)
            idw, used, near_i, near_d = _estimate(np.column_stack([sx[r], sy[r]]), values[r],
                                                  dst, radius_m)
            guide = float(ANNUAL[pollutant]["AQG"])
            n = len(t.ids)
            out.append(pa.table({
                "target": pa.array([t.kind] * n), "target_id": pa.array(t.ids, pa.string()),
                "lon": t.lon, "lat": t.lat, "weight": t.weight,
                "year": pa.array([year] * n, pa.date32()),
                "pollutant": pa.array([pollutant] * n),
                "idw": pa.array(idw, pa.float64(), mask=np.isnan(idw)),
                "stations_used": pa.array(used.astype(np.int32)),
                "nearest_station": pa.array(ids[r][near_i], pa.string()),
                "nearest_value": values[r][near_i], "nearest_distance_m": near_d,
                "guideline": np.full(n, guide),
                "above_guideline": pa.array(idw > guide, pa.bool_(), mask=np.isnan(idw)),
            }, schema=EXPOSURE_SCHEMA))
    return pa.concat_tables(out)


def summarise(table: pa.Table, targets: list[Targets]) -> dict[str, Any]:
    """Weighted mean and share above the guideline per target kind, pollutant and year;
    the stops with the worst PM2.5."""
    out: dict[str, Any] = {}
    if table.num_rows == 0:
        return out
    kind = table["target"].to_numpy(zero_copy_only=False)
    pol = table["pollutant"].to_numpy(zero_copy_only=False)
    year = pc.year(table["year"]).to_numpy()
    idw = table["idw"].to_numpy(zero_copy_only=False).astype(float)
    w = table["weight"].to_numpy()
    for t in targets:
        for p in sorted(set(pol[kind == t.kind])):
            for y in sorted(set(year[(kind == t.kind) & (pol == p)].tolist())):
                m = (kind == t.kind) & (pol == p) & (year == y)
                est = m & ~np.isnan(idw)
                total, covered = w[m].sum(), w[est].sum()
                guide = float(ANNUAL[p]["AQG"])
                entry = {"weighted_by": t.weighted_by, "targets": int(m.sum()),
                         "covered_weight_share": _r(covered / total) if total else None,
                         "weighted_mean": _r((w[est] * idw[est]).sum() / covered)
                         if covered else None,
                         "share_above_guideline": _r(w[est & (idw > guide)].sum() / covered)
                         if covered else None, "guideline": guide}
                out.setdefault(t.kind, {}).setdefault(p, {})[str(y)] = entry
                if t.kind == "stop" and p == "pm25":
                    order = np.argsort(-np.where(est, idw, -np.inf), kind="stable")[:5]
                    entry["worst"] = [{"stop": table["target_id"][int(i)].as_py(),
                                       "pm25": _r(idw[i]), "boardings": _r(w[i])}
                                      for i in order if est[i]]
    return out


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
