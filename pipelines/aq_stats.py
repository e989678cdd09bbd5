"""Traffic lights, daily and annual means, and WHO 2021 exceedances from the hourly indices.

Everything is computed with numpy from the hourly indices table as
:func:`pipelines.aq_indices.hourly_indices` returns it (rows ordered by station id, then hour,
the station as a dictionary column): a station's local days are runs of consecutive rows, so
every daily count, sum and maximum is one ``reduceat`` over all rows, and a station's years are
runs of consecutive daily rows. Only the hour-to-local-day table comes from DuckDB (its time
zone database, one row per hour of the span).

Completeness (``min_completeness``, default 0.75): a daily mean needs 75 % of the day's hours
(18 of 24) and an annual mean 75 % of the year's days; an 8-hour mean 6 of 8 hours. This is the
75 % rule of US EPA 40 CFR Part 50 Appendix N (PM2.5: a valid day has at least 18 hourly
values; a valid year 75 % of its days) and of the EU Directive 2008/50/EC Annex VII (8-hour
means from 6 of 8 hours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.aq_indices import ppm
from hubctl.pipelines.aq_standards import (
    CAI_COLOURS,
    CAI_GRADE_KO,
    CAI_GRADE_NAMES,
    CAI_GRADES,
    POLLUTANTS,
    WHO_2021,
)

__all__ = ["Daily", "Hourly", "exceedances", "lights", "means"]

UNITS = {"pm25": "µg/m³", "pm10": "µg/m³", "o3": "µg/m³", "no2": "µg/m³", "so2": "µg/m³",
         "co": "mg/m³"}
_US_PER_HOUR = 3_600_000_000
# the pollutants in the order of the means and exceedances tables (by name)
_BY_NAME = tuple(sorted(POLLUTANTS))
# traffic lights: the value shown beside each sub-index, its unit, averaging and decimals
_SHOWN = {"pm25": ("pm25_cai_input", "µg/m³", "24h", 1),
          "pm10": ("pm10_cai_input", "µg/m³", "24h", 1),
          **{p: (p, "ppm", "1h", 2 if p == "co" else 4) for p in ("o3", "no2", "co", "so2")}}


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Start of every run of rows whose keys are all equal (rows grouped by the keys)."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _floats(a: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for null."""
    return np.asarray(pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


def _optional(x: np.ndarray, typ: pa.DataType = pa.float64()) -> pa.Array:
    return pa.array(x, mask=np.isnan(x)).cast(typ)


def _text(code: np.ndarray, texts: list[str]) -> pa.DictionaryArray:
    """Dictionary text from codes into ``texts`` (-1 = null)."""
    return pa.DictionaryArray.from_arrays(pa.array(code.astype(np.int32), mask=code < 0),
                                          pa.array(texts, pa.string()))


def _need(n: np.ndarray | int, mc: float) -> np.ndarray:
    """Hours (or days) a mean over ``n`` needs (:func:`pipelines.aq_indices.need`, vectorised)."""
    return np.maximum(1, np.ceil(np.asarray(n) * mc - 1e-9)).astype(np.int64)


def _notes(code: np.ndarray, template: str, need: np.ndarray, have: np.ndarray
           ) -> pa.DictionaryArray:
    """``template`` filled with (need, have) where ``code`` is set, as dictionary text (only
    the few distinct texts are ever formatted)."""
    key = np.where(code, need * 100_000 + have, -1)
    uniq, inv = np.unique(key, return_inverse=True)
    texts = [template.format(k // 100_000, k % 100_000) for k in uniq.tolist()]
    idx = np.where(key < 0, -1, inv)
    return _text(idx, texts)


def _round(x: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded half away from zero, as SQL's round()."""
    scale = 10.0 ** decimals
    return np.trunc(x * scale + np.copysign(0.5, x)) / scale


class Hourly:
    """The hourly indices table as numpy: station codes (in id order), hours since 1970 UTC and
    the station runs."""

    def __init__(self, indices: pa.Table) -> None:
        self.table = indices
        ids = indices.column("id").combine_chunks()
        assert isinstance(ids, pa.DictionaryArray)
        self.ids = ids.dictionary
        self.station = ids.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self.h = pc.cast(indices.column("observed_at"), pa.int64()).to_numpy() // _US_PER_HOUR
        self.starts = _runs(self.station)

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` as float64, NaN for null."""
        return _floats(self.table.column(name))

    def last(self, valid: np.ndarray) -> np.ndarray:
        """Per station run, the last row where ``valid`` (-1 where none)."""
        if not len(valid):
            return np.zeros(0, dtype=np.int64)
        return np.maximum.reduceat(np.where(valid, np.arange(len(valid)), -1), self.starts)


def lights(hr: Hourly) -> pa.Table:
    """Each station's latest CAI grade per pollutant and overall, with the time of the value
    used (the latest hour whose sub-index could be computed) and how far behind the newest
    hour in the lake it is."""
    newest = int(hr.h.max()) if len(hr.h) else 0
    order = ["overall", *_SHOWN]
    parts: list[dict[str, np.ndarray]] = []
    for k, p in enumerate(order):
        index = hr.column("cai" if p == "overall" else f"cai_{p}")
        at = hr.last(~np.isnan(index))
        got = at >= 0
        rows = at[got]
        value = np.full(len(rows), np.nan)
        if p != "overall":
            col, _, _, decimals = _SHOWN[p]
            raw = hr.column(col)[rows]
            value = _round(raw if col.endswith("_input") else raw * ppm(p), decimals)
        parts.append({"station": hr.station[hr.starts][got], "kind": np.full(len(rows), k),
                      "row": rows, "cai": index[rows], "value": value})
    cat = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    sort = np.lexsort((cat["kind"], cat["station"]))
    cat = {key: v[sort] for key, v in cat.items()}
    kind, rows = cat["kind"], cat["row"]
    uppers = np.array([hi for _, hi in CAI_GRADES[:3]], dtype=float)
    grade = np.searchsorted(uppers, cat["cai"], side="left")  # 0-based
    overall = kind == 0
    driven = hr.table.column("cai_pollutant").combine_chunks()
    driven_by = pc.if_else(pa.array(overall), driven.take(pa.array(rows)).cast(pa.string()),
                           pa.nulls(len(rows), pa.string()))
    units = [u for _, u, _, _ in _SHOWN.values()]
    averaging = ["CAI", *[a for _, _, a, _ in _SHOWN.values()]]
    t = hr.h[rows]
    return pa.table({
        "id": hr.ids.take(pa.array(cat["station"])),
        "pollutant": _text(kind, order),
        "observed_at": pa.array(t * _US_PER_HOUR, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "cai": _optional(cat["cai"], pa.int16()),
        "grade": pa.array(grade + 1, pa.int8()),
        "grade_name": _text(grade, list(CAI_GRADE_NAMES)),
        "grade_ko": _text(grade, list(CAI_GRADE_KO)),
        "colour": _text(grade, list(CAI_COLOURS)),
        "value": _optional(cat["value"]),
        "unit": _text(np.where(overall, -1, kind - 1), units),
        "averaging": _text(kind, averaging),
        "driven_by": driven_by,
        "hours_behind": pa.array(newest - t, pa.int32()),
    })


@dataclass
class Daily:
    """Per pollutant: one entry per station and local day with at least one hourly value, and
    one per station and year with at least one such day."""

    station: np.ndarray  # station code of each day
    day: np.ndarray  # local day, days since 1970-01-01
    n: np.ndarray  # hours with a value
    mean: np.ndarray  # NaN where the day is incomplete
    max_8h: np.ndarray  # the day's highest 8-hour mean (O3, CO; NaN otherwise)
    year_runs: np.ndarray  # the first day of each station's year among the days
    year_station: np.ndarray
    year: np.ndarray  # first day of the year, days since 1970-01-01
    year_days: np.ndarray  # valid (complete) days
    year_expected: np.ndarray  # days in the year
    year_mean: np.ndarray  # mean of the valid daily means; NaN unless complete
    year_complete: np.ndarray


def local_days(ctx: PipelineContext, h: np.ndarray, tz: str) -> np.ndarray:
    """The local day (days since 1970-01-01 in ``tz``) of each hour ``h`` (hours since 1970
    UTC), from DuckDB's time zone database: one conversion per hour of the span."""
    if not len(h):
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(h.min()), int(h.max())
    days = ctx.sql(f"""
        SELECT CAST(timezone('{tz}', to_timestamp(h * 3600)) AS DATE) AS day
        FROM range({lo}, {hi + 1}) AS r(h) ORDER BY h""").column("day")
    table = days.to_numpy().astype("datetime64[D]").astype(np.int64)
    return table[h - lo]


def _daily(hr: Hourly, day: np.ndarray, p: str, mc: float) -> Daily:
    starts = _runs(hr.station, day)
    v = hr.column(p)
    ok = ~np.isnan(v)
    n = np.add.reduceat(ok.astype(np.int64), starts) if len(v) else np.zeros(0, np.int64)
    total = np.add.reduceat(np.where(ok, v, 0.0), starts) if len(v) else np.zeros(0)
    if p in ("o3", "co") and len(v):
        max_8h = np.fmax.reduceat(hr.column(f"{p}_8h"), starts)
    else:
        max_8h = np.full(len(starts), np.nan)
    keep = n > 0
    n, total, max_8h = n[keep], total[keep], max_8h[keep]
    station, d = hr.station[starts][keep], day[starts][keep]
    complete = n >= _need(24, mc)
    mean = np.where(complete, total / np.maximum(n, 1), np.nan)
    year = d.astype("datetime64[D]").astype("datetime64[Y]")
    first = year.astype("datetime64[D]").astype(np.int64)
    ys = _runs(station, first)
    valid = complete.astype(np.int64)
    year_days = np.add.reduceat(valid, ys) if len(ys) else valid
    year_sum = np.add.reduceat(np.where(complete, mean, 0.0), ys) if len(ys) else mean
    year_first = first[ys]
    expected = ((year[ys] + 1).astype("datetime64[D]").astype(np.int64) - year_first)
    year_complete = year_days >= _need(expected, mc)
    return Daily(station=station, day=d, n=n, mean=mean, max_8h=max_8h, year_runs=ys,
                 year_station=station[ys], year=year_first, year_days=year_days,
                 year_expected=expected, year_complete=year_complete,
                 year_mean=np.where(year_complete, year_sum / np.maximum(year_days, 1), np.nan))


def means(ctx: PipelineContext, hr: Hourly, tz: str, mc: float
          ) -> tuple[pa.Table, dict[str, Daily]]:
    """Daily and annual means per station and pollutant (local days in ``tz``), with the
    completeness rule applied, the daily maximum 8-hour mean for O3 and CO; and the daily
    figures by pollutant (for :func:`exceedances`)."""
    day = local_days(ctx, hr.h, tz)
    daily = {p: _daily(hr, day, p, mc) for p in _BY_NAME}
    need24 = int(_need(24, mc))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "station", "pollutant", "period", "start", "mean", "max_8h", "count", "expected",
        "complete")}
    for k, p in enumerate(_BY_NAME):
        d = daily[p]
        for period, (station, start, mean, count, expected, complete, max_8h) in enumerate((
                (d.station, d.day, d.mean, d.n, np.full(len(d.n), 24), d.n >= need24,
                 d.max_8h),
                (d.year_station, d.year, d.year_mean, d.year_days, d.year_expected,
                 d.year_complete, np.full(len(d.year), np.nan)))):
            for key, value in (("station", station), ("pollutant", np.full(len(start), k)),
                               ("period", np.full(len(start), period)), ("start", start),
                               ("mean", mean), ("max_8h", max_8h), ("count", count),
                               ("expected", expected), ("complete", complete)):
                cols[key].append(value)
    c = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((c["start"], c["period"], c["pollutant"], c["station"]))
    c = {k: v[order] for k, v in c.items()}
    is_day = c["period"] == 0
    incomplete = ~c["complete"].astype(bool)
    notes = [_notes(incomplete & is_day, "daily mean needs {} hourly values, has {}",
                    np.full(len(is_day), need24), c["count"]),
             _notes(incomplete & ~is_day, "annual mean needs {} valid days, has {}",
                    _need(c["expected"], mc), c["count"])]
    note = pc.coalesce(notes[0].cast(pa.string()), notes[1].cast(pa.string()))
    table = pa.table({
        "id": hr.ids.take(pa.array(c["station"])),
        "pollutant": _text(c["pollutant"], list(_BY_NAME)),
        "period": _text(c["period"], ["day", "year"]),
        "start": pa.array(c["start"].astype(np.int32), pa.int32()).cast(pa.date32()),
        "mean": _optional(c["mean"]),
        "max_8h": _optional(c["max_8h"]),
        "count": pa.array(c["count"], pa.int32()),
        "expected": pa.array(c["expected"], pa.int32()),
        "complete": pa.array(c["complete"].astype(bool)),
        "unit": _text(c["pollutant"], [UNITS[p] for p in _BY_NAME]),
        "note": note.dictionary_encode(),
    })
    return table, daily


def exceedances(hr: Hourly, daily: dict[str, Daily]) -> pa.Table:
    """Per station, year and pollutant: days above each WHO 2021 24-hour / 8-hour level, and
    the annual mean against each annual level."""
    levels = [(p, averaging, level, float(threshold))
              for p, by_avg in WHO_2021.items() for averaging, lv in by_avg.items()
              for level, threshold in lv]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "station", "year", "level", "days_above", "valid_days", "annual_mean", "exceeds")}
    for k, (p, averaging, _, limit) in enumerate(levels):
        d = daily[p]
        if averaging == "annual":
            station, year, valid = d.year_station, d.year, d.year_days
            annual = d.year_mean
            above = np.full(len(year), -1)
            exceeds = np.where(np.isnan(annual), -1, annual > limit)
        else:
            value = d.max_8h if averaging == "8h" else d.mean
            ys = d.year_runs
            station, year = d.year_station, d.year
            if len(ys):
                above = np.add.reduceat((value > limit).astype(np.int64), ys)
                valid = np.add.reduceat((~np.isnan(value)).astype(np.int64), ys)
            else:
                above = valid = np.zeros(0, dtype=np.int64)
            annual = np.full(len(year), np.nan)
            exceeds = (above > 3).astype(np.int64)
        for key, v in (("station", station), ("year", year), ("level", np.full(len(year), k)),
                       ("days_above", above), ("valid_days", valid), ("annual_mean", annual),
                       ("exceeds", exceeds)):
            cols[key].append(v)
    c = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    lv = c["level"].astype(np.int64)
    pollutant = np.array([_BY_NAME.index(p) for p, _, _, _ in levels])[lv]
    averaging = np.array([("24h", "8h", "annual").index(a) for _, a, _, _ in levels])[lv]
    threshold = np.array([t for _, _, _, t in levels])[lv]
    order = np.lexsort((-threshold, averaging, pollutant, c["year"], c["station"]))
    c = {k: v[order] for k, v in c.items()}
    lv, pollutant, averaging, threshold = (lv[order], pollutant[order], averaging[order],
                                           threshold[order])
    is_annual = averaging == 2
    unit = np.where(is_annual | (pollutant != _BY_NAME.index("co")), 0, 1)
    above = c["days_above"]
    return pa.table({
        "id": hr.ids.take(pa.array(c["station"].astype(np.int64))),
        "year": pa.array(c["year"].astype(np.int32), pa.int32()).cast(pa.date32()),
        "pollutant": _text(pollutant, list(_BY_NAME)),
        "averaging": _text(averaging, ["24h", "8h", "annual"]),
        "level": _text(lv, [level for _, _, level, _ in levels]),
        "threshold": pa.array(threshold, pa.float64()),
        "unit": _text(unit, ["µg/m³", "mg/m³"]),
        "days_above": pa.array(above.astype(np.int32), mask=above < 0),
        "valid_days": pa.array(c["valid_days"].astype(np.int32)),
        "annual_mean": _optional(c["annual_mean"].astype(float)),
        "exceeds": pa.array(c["exceeds"] > 0, mask=c["exceeds"] < 0),
    })
