"""Hourly indices per station: the Korean CAI, the US AQI and the European AQI.

DuckDB (Spark with ``hubctl run --engine``) puts the lake's ``AirQualityObserved`` rows on an
hourly grid (``h`` = hours since 1970
UTC, the hour an observation's time falls in; several rows in one hour are averaged). numpy
then lays each station's hours out densely between its first and last hour, so running means
are differences of cumulative sums and a lag of k is a shift by k: every step is a vectorised
pass over all station-hours, no Python loop per row. Every running mean carries the number of
hours it had; a mean with fewer than ``min_completeness`` of its hours is null, and so is every
index that needs it, with the reason in ``*_reason``. Only hours with an observation are
output, ordered by station id and hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.aq_standards import (
    CAI,
    CAI_BONUS,
    CAI_GRADES,
    EAQI,
    EAQI_BANDS,
    POLLUTANTS,
    US_AQI,
    US_CATEGORIES,
    Band,
)
from hubctl.units import conversion_factor

__all__ = ["CAI_PM_MODES", "INDICES", "band", "hourly_indices", "index", "load_hours",
           "need", "ppm", "stations"]

INDICES = ("cai", "us_aqi", "eaqi")
CAI_PM_MODES = ("c24e", "mean24h", "reported")
# AirKorea's 24-hour predicted moving average: thresholds M in µg/m³ (CAI calculator).
C24E_M = {"pm10": 70.0, "pm25": 30.0}
_REPORTED = {"reportedPm25Avg24h": "rep_pm25_24", "reportedPm10Avg24h": "rep_pm10_24",
             "reportedCai": "reported_cai", "reportedCaiGrade": "reported_cai_grade"}
EPS = 1e-6  # so that 0.087 ppm read back from µg/m³ as 0.0869999... truncates to 0.087
NAN = np.nan


def ppm(p: str) -> float:
    """Factor from the lake's canonical unit (µg/m³, CO mg/m³) to ppm."""
    factor = conversion_factor(p, "GP" if p == "co" else "GQ", "59")
    assert factor is not None
    return factor


def load_hours(ctx: PipelineContext) -> pa.Table:
    """The lake's observations on the hourly grid: one row per station and hour (``id``, ``h``,
    each pollutant, position and reported value; several rows in one hour averaged). Both
    scans go through :meth:`~hubctl.pipeline.PipelineContext.aggregate`, so with ``hubctl run
    --engine`` Spark runs them; the station-hours still come back to the driver, where the
    index code needs them all."""
    cols = {r[0] for r in ctx.con.execute("DESCRIBE AirQualityObserved").fetchall()}
    off_hour = ctx.aggregate("SELECT count(*) AS n FROM AirQualityObserved "
                             "WHERE epoch_us(observed_at) % 3600000000 <> 0")
    agg = bool(off_hour["n"][0].as_py()) if off_hour.num_rows else False

    def col(name: str, alias: str, how: str = "avg") -> str:
        if name not in cols:
            return f"CAST(NULL AS DOUBLE) AS {alias}"
        return f"{how}({name}) AS {alias}" if agg else f"CAST({name} AS DOUBLE) AS {alias}"

    select = [col(p, p) for p in (*POLLUTANTS, "lon", "lat")]
    select += [col(name, alias, "max" if "Grade" in name else "avg")
               for name, alias in _REPORTED.items()]
    return ctx.aggregate(f"""
        SELECT id, CAST(floor(epoch(observed_at) / 3600) AS BIGINT) AS h, {', '.join(select)}
        FROM AirQualityObserved WHERE observed_at IS NOT NULL AND id IS NOT NULL
        {'GROUP BY 1, 2' if agg else ''}""")


def need(hours: int, mc: float) -> int:
    """Hours (or days) a mean over ``hours`` needs at completeness ``mc``."""
    return max(1, math.ceil(hours * mc - 1e-9))


def index(x: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
    """The piecewise-linear index of ``x``: the band is the first whose upper breakpoint is not
    below the value; above the last band the index stays at its top (500 for the CAI and the US
    AQI); NaN below the first band's low end or where ``x`` is NaN."""
    lo, hi, ilo, ihi = (np.array(c, dtype=float) for c in zip(*bands, strict=True))
    slope = (ihi - ilo) / (hi - lo)
    i = np.searchsorted(hi, x, side="left")  # NaN sorts last
    np.minimum(i, len(hi) - 1, out=i)
    out = (ilo - slope * lo)[i] + slope[i] * x
    out[x > hi[-1]] = ihi[-1]
    out[x < lo[0]] = NAN
    return out


def band(x: np.ndarray, uppers: Sequence[float]) -> np.ndarray:
    """The 1-based band of ``x`` given the upper bounds of all bands but the last (a value equal
    to a bound belongs to the lower band); NaN where ``x`` is NaN."""
    b = np.searchsorted(np.asarray(uppers, float), np.nan_to_num(x), side="left") + 1.0
    return np.where(np.isnan(x), NAN, b)


def _trunc(x: np.ndarray, decimals: int) -> np.ndarray:
    scale = 10.0 ** decimals
    return np.floor(x * scale + EPS) / scale


PAD = 24  # empty hours laid before each station's first: the longest window (24 h), so a
# lag or a running window never reaches the station before, without a mask


class Grid:
    """Each station's hours laid out densely after :data:`PAD` empty hours. Inputs (``dense``)
    span the whole grid; lags, running means and what is computed from them are *body* arrays,
    the grid without its first ``PAD`` positions, and ``observed`` picks the observed hours."""

    def __init__(self, station: np.ndarray, h: np.ndarray) -> None:
        if len(h) == 0:
            self.pos = np.zeros(0, dtype=np.int64)
            self.size = PAD
            return
        first = np.r_[True, station[1:] != station[:-1]]
        starts = np.flatnonzero(first)
        lo = h[starts] - PAD
        hi = np.r_[h[starts[1:] - 1], h[-1]]
        length = hi - lo + 1
        offset = np.r_[0, np.cumsum(length)[:-1]]
        self.size = int(length.sum())
        seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(h)]))
        self.pos = offset[seg] + (h - lo[seg])  # every one at least PAD

    def dense(self, values: np.ndarray) -> np.ndarray:
        """An observed-row array spread onto the whole grid (NaN where no observation)."""
        out = np.full(self.size, NAN)
        out[self.pos] = values
        return out

    def observed(self, values: np.ndarray) -> np.ndarray:
        """A body array at the observed rows only."""
        return values[self.pos - PAD]

    def lag(self, x: np.ndarray, k: int) -> np.ndarray:
        """The body of grid array ``x`` as of k hours before (a view; k at most PAD)."""
        return x[PAD - k:self.size - k]

    def rolling(self, x: np.ndarray, hours: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and count of the non-missing values of the last ``hours`` hours (a body
        array): differences of cumulative sums, the same sums whatever the padding."""
        ok = ~np.isnan(x)
        cs = np.r_[0.0, np.cumsum(np.where(ok, x, 0.0))]
        cn = np.r_[0, np.cumsum(ok)]
        end, start = slice(PAD + 1, self.size + 1), slice(PAD + 1 - hours, self.size + 1 - hours)
        n = cn[end] - cn[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, (cs[end] - cs[start]) / np.maximum(n, 1), NAN)
        return mean, n


def _nowcast(g: Grid, x: np.ndarray) -> np.ndarray:
    """EPA NowCast of the last 12 hours (weight factor min/max, at least 0.5); valid when two
    of the three most recent hours are present (AirNow's completeness rule). The weighted sums
    are evaluated by Horner's rule from the oldest hour."""
    now = g.lag(x, 0)
    lo, hi = now.copy(), now.copy()
    ok = ~np.isnan(x)
    zero = np.where(ok, x, 0.0)
    recent = ok[PAD:].astype(np.int8)
    for k in range(1, 12):
        v = g.lag(x, k)
        np.fmin(lo, v, out=lo)
        np.fmax(hi, v, out=hi)
        if k < 3:
            recent += g.lag(ok, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(hi <= 0, 1.0, np.maximum(0.5, lo / hi))
    body = g.size - PAD
    num, den = np.zeros(body), np.zeros(body)
    for k in range(11, -1, -1):
        num *= w
        num += g.lag(zero, k)
        den *= w
        den += g.lag(ok, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(recent >= 2, num / den, NAN)


def _c24e(g: Grid, x: np.ndarray, m: float, mc: float) -> tuple[np.ndarray, np.ndarray]:
    """AirKorea's 24-hour predicted moving average C24E = (12 C12 + 12 C4) / 24, where C4 is
    the mean of the last four hours, each taken as 0.75 of itself when it is at least M and
    between 0.9 and 1.7 times C12 (AirKorea's CAI calculator); and the hours C12 had."""
    c12, n12 = g.rolling(x, 12)
    total, n4 = np.zeros(g.size - PAD), np.zeros(g.size - PAD, dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(4):
            c = g.lag(x, k)
            ratio = c / c12
            cut = (c >= m) & (ratio >= 0.9) & (ratio <= 1.7)
            ok = ~np.isnan(c)
            total += np.where(ok, np.where(cut, 0.75 * c, c), 0.0)
            n4 += ok
        c4 = total / np.maximum(n4, 1)
    valid = (n12 >= need(12, mc)) & (n4 >= 3)
    return np.where(valid, (c12 * 12 + c4 * 12) / 24, NAN), n12


def _fmax(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Element-wise maximum ignoring NaN (NaN where all are NaN)."""
    it = iter(arrays)
    out = next(it).copy()
    for a in it:
        np.fmax(out, a, out=out)
    return out


def _argmax(subs: dict[str, np.ndarray], best: np.ndarray) -> pa.Array:
    """Name of the first pollutant whose sub-index equals the maximum (null where none)."""
    code = np.full(len(best), -1, dtype=np.int32)
    for i, p in reversed(list(enumerate(subs))):
        code[subs[p] == best] = i
    return pa.DictionaryArray.from_arrays(pa.array(code, mask=code < 0),
                                          pa.array(list(subs), pa.string()))


def _coded(code: np.ndarray, texts: dict[int, str]) -> pa.Array:
    """Dictionary text column from integer codes (-1 = null) and the text of each code."""
    keys = np.array(sorted(texts), dtype=np.int64)
    idx = np.searchsorted(keys, code).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=code < 0),
                                          pa.array([texts[k] for k in keys.tolist()],
                                                   pa.string()))


def _ints(x: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Rounded whole numbers of type ``typ`` (small: indices, grades, hour counts), null where
    NaN."""
    missing = np.isnan(x)
    whole = np.where(missing, 0.0, np.round(x)).astype(typ.to_pandas_dtype())
    return pa.array(whole, typ, mask=missing)


def _floats(x: np.ndarray) -> pa.Array:
    return pa.array(x, pa.float64(), mask=np.isnan(x))


def _text(mask: np.ndarray, text: str) -> pa.Array:
    """``text`` where ``mask``, else null (a dictionary column)."""
    return _coded(np.where(mask, 0, -1), {0: text})


class Hours:
    """The dense running means and lags every index draws on, computed once."""

    def __init__(self, ids: pa.DictionaryArray, obs: dict[str, np.ndarray], mc: float) -> None:
        self.g = g = Grid(ids.indices.to_numpy(), obs["h"])
        self.raw = {c: obs[c] for c in (*POLLUTANTS, "rep_pm25_24", "rep_pm10_24",
                                        "reported_cai", "reported_cai_grade")}
        d = {p: g.dense(self.raw[p]) for p in POLLUTANTS}
        n24, n8 = need(24, mc), need(8, mc)
        self.at: dict[str, np.ndarray] = {}  # per observed row
        for p in ("pm25", "pm10"):
            mean, n = g.rolling(d[p], 24)
            self.at[f"{p}_24h"] = g.observed(np.where(n >= n24, mean, NAN))
            self.at[f"{p}_n24"] = g.observed(n).astype(float)
            self.at[f"{p}_nowcast"] = g.observed(_nowcast(g, d[p]))
            c24e, n12 = _c24e(g, d[p], C24E_M[p], mc)
            self.at[f"{p}_c24e"] = g.observed(c24e)
            self.at[f"{p}_n12"] = g.observed(n12).astype(float)
        for p in ("o3", "co"):
            mean, n = g.rolling(d[p], 8)
            self.at[f"{p}_8h"] = g.observed(np.where(n >= n8, mean, NAN))
        mean, n = g.rolling(d["so2"], 24)
        self.at["so2_24h"] = g.observed(np.where(n >= n24, mean, NAN))

    def cai_pm(self, p: str, mode: str) -> np.ndarray:
        """The 24-hour PM concentration the CAI uses in ``mode``."""
        return {"c24e": self.at[f"{p}_c24e"], "mean24h": self.at[f"{p}_24h"],
                "reported": self.raw[f"rep_{p}_24"]}[mode]


def _cai(hr: Hours, mode: str, mc: float) -> dict[str, pa.Array]:
    subs = {p: np.round(index(hr.cai_pm(p, mode) if p in ("pm25", "pm10")
                              else hr.raw[p] * ppm(p), CAI[p])) for p in POLLUTANTS}
    best = _fmax(subs.values())
    bad = sum((np.nan_to_num(s) >= CAI_GRADES[2][0]).astype(int) for s in subs.values())
    bonus = np.zeros(len(best))
    for n, add in reversed(CAI_BONUS):
        bonus = np.where(bad >= n, add, bonus)
    ok = ~np.isnan(subs["pm25"]) & ~np.isnan(subs["pm10"]) & ~np.isnan(subs["o3"]) & \
        ~np.isnan(subs["no2"])
    cai = np.where(ok, np.minimum(500, best + bonus), NAN)
    grade = np.where(np.isnan(cai), NAN,
                     np.searchsorted(np.array([g[1] for g in CAI_GRADES[:3]], float),
                                     np.nan_to_num(cai), side="left") + 1.0)
    out = {"cai": _ints(cai, pa.int16()), "cai_grade": _ints(grade, pa.int8()),
           "cai_pollutant": _argmax(subs, np.where(ok, best, NAN)),
           "cai_reason": _cai_reason(hr, subs, ok, mode, mc)}
    out |= {f"cai_{p}": _ints(s, pa.int16()) for p, s in subs.items()}
    return out


def _cai_reason(hr: Hours, subs: dict[str, np.ndarray], ok: np.ndarray, mode: str,
                mc: float) -> pa.Array:
    """Why the CAI is null, coded per row (hours each PM mean had, O3/NO2 missing) so that
    only the few distinct reasons are ever written out as text."""
    hours = {"c24e": "n12", "mean24h": "n24", "reported": "n24"}[mode]
    code = np.zeros(len(ok), dtype=np.int64)
    for p in ("pm25", "pm10"):  # 0..25 hours, 26 = this sub-index is there
        n = np.where(np.isnan(subs[p]), hr.at[f"{p}_{hours}"], 26).astype(np.int64)
        code = code * 27 + n
    for p in ("o3", "no2"):
        code = code * 2 + np.isnan(subs[p])
    code = np.where(ok, -1, code)
    texts = {}
    for c in np.unique(code[code >= 0]).tolist():
        parts, rest = [], c
        no2, rest = rest % 2, rest // 2
        o3, rest = rest % 2, rest // 2
        n10, n25 = rest % 27, rest // 27
        for p, n in (("pm25", n25), ("pm10", n10)):
            if n < 26:
                parts.append({
                    "c24e": f"{p}: 24-hour predicted moving average needs {need(12, mc)} of "
                            f"the last 12 hours and 3 of the last 4, has {n} of 12",
                    "mean24h": f"{p}: 24-hour mean needs {need(24, mc)} of 24 hours, has {n}",
                    "reported": f"{p}: no reported 24-hour value"}[mode])
        parts += [f"{p}: no hourly value" for p, miss in (("o3", o3), ("no2", no2)) if miss]
        texts[c] = "; ".join(parts)
    return _coded(code, texts)


def _us(hr: Hours, mc: float) -> dict[str, pa.Array]:
    raw, at = hr.raw, hr.at
    o3_8 = _trunc(at["o3_8h"] * ppm("o3"), 3)
    o3_1 = _trunc(raw["o3"] * ppm("o3"), 3)
    so2 = _trunc(raw["so2"] * ppm("so2") * 1000, 0)
    so2_24 = _trunc(at["so2_24h"] * ppm("so2") * 1000, 0)
    subs = {
        "pm25": index(_trunc(at["pm25_nowcast"], 1), US_AQI["pm25"]),
        "pm10": index(_trunc(at["pm10_nowcast"], 0), US_AQI["pm10"]),
        "o3": np.fmax(np.where(o3_8 <= 0.200, index(o3_8, US_AQI["o3_8h"]), NAN),
                      index(o3_1, US_AQI["o3_1h"])),
        "no2": index(_trunc(raw["no2"] * ppm("no2") * 1000, 0), US_AQI["no2"]),
        "co": index(_trunc(at["co_8h"] * ppm("co"), 1), US_AQI["co"]),
        "so2": np.where(so2 <= 304, index(so2, US_AQI["so2_1h"]),
                        index(so2_24, US_AQI["so2_24h"])),
    }
    subs = {p: np.round(subs[p]) for p in POLLUTANTS}
    best = _fmax(subs.values())
    none = np.isnan(best)
    cat = np.searchsorted(np.array([50, 100, 150, 200, 300], float), np.nan_to_num(best),
                          side="left")
    out = {"us_aqi": _ints(best, pa.int16()),
           "us_aqi_category": _coded(np.where(none, -1, cat), dict(enumerate(US_CATEGORIES))),
           "us_aqi_pollutant": _argmax(subs, best),
           "us_aqi_reason": _text(none, "no complete averaging period for any pollutant (PM "
                                        "NowCast needs 2 of the last 3 hours, O3 and CO "
                                        f"8-hour means {need(8, mc)} of 8)")}
    out |= {f"aqi_{p}": _ints(s, pa.int16()) for p, s in subs.items()}
    return out


def _eaqi(hr: Hours, mc: float) -> dict[str, pa.Array]:
    src = {"pm25": hr.at["pm25_24h"], "pm10": hr.at["pm10_24h"], "no2": hr.raw["no2"],
           "o3": hr.raw["o3"], "so2": hr.raw["so2"]}
    subs = {p: band(src[p], EAQI[p]) for p in EAQI}
    ok = (~np.isnan(subs["pm25"]) | ~np.isnan(subs["pm10"])) & ~np.isnan(subs["no2"])
    best = np.where(ok, _fmax(subs.values()), NAN)
    out = {"eaqi": _ints(best, pa.int8()),
           "eaqi_band": _coded(np.where(ok, np.nan_to_num(best, nan=1) - 1, -1).astype(int),
                               dict(enumerate(EAQI_BANDS))),
           "eaqi_pollutant": _argmax(subs, best),
           "eaqi_reason": _text(~ok, "needs NO2 and a 24-hour PM10 or PM2.5 mean with "
                                     f"{need(24, mc)} of 24 hours (EEA: the index of a station "
                                     "needs NO2 and PM)")}
    out |= {f"eaqi_{p}": _ints(s, pa.int8()) for p, s in subs.items()}
    return out


def _sorted(t: pa.Table) -> tuple[pa.DictionaryArray, dict[str, np.ndarray]]:
    """The station ids (dictionary-encoded, the dictionary in id order) and every column of
    :func:`load_hours`' table as numpy, ordered by station id, then hour. The lake is read in
    its own order and sorted in numpy on integer keys (a DuckDB sort on the long text ids cost
    four times as much; the order is the same whatever order the engine returns rows in)."""
    enc = t["id"].combine_chunks().dictionary_encode()
    names = enc.dictionary
    rank = np.argsort(np.argsort(names.to_numpy(zero_copy_only=False), kind="stable"))
    code = rank[enc.indices.to_numpy()].astype(np.int32)
    h = t["h"].to_numpy()
    order = np.lexsort((h, code))
    code = code[order]
    cols = {c: t[c].to_numpy().astype(float)[order] for c in t.column_names
            if c not in ("id", "h")}
    cols["h"] = h[order]
    cols["starts"] = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(code) \
        else np.zeros(0, dtype=np.int64)
    dictionary = names.take(pa.array(np.argsort(rank)))
    return pa.DictionaryArray.from_arrays(pa.array(code), dictionary), cols


def _nulls(names: Iterable[str], n: int, typ: pa.DataType) -> dict[str, pa.Array]:
    return {name: pa.nulls(n, typ) for name in names}


def stations(ids: pa.DictionaryArray, obs: dict[str, np.ndarray]) -> pa.Table:
    """Each station's id and its last known position (for exposure)."""
    last = np.r_[obs["starts"][1:] - 1, len(ids) - 1] if len(ids) else np.zeros(0, int)
    lon, lat = obs["lon"], obs["lat"]
    ok = ~np.isnan(lon) & ~np.isnan(lat)
    pos = np.maximum.reduceat(np.where(ok, np.arange(len(ids)), -1), obs["starts"]) \
        if len(ids) else last
    pos = np.where(pos >= 0, pos, last)
    return pa.table({"id": ids.dictionary, "lon": _floats(lon[pos]), "lat": _floats(lat[pos])})


def hourly_indices(hours: pa.Table, mc: float, cai_pm: str,
                   which: Iterable[str] = INDICES) -> tuple[pa.Table, pa.Table]:
    """One row per station and observed hour of :func:`load_hours`' ``hours`` with every
    index, sub-index and averaged input; and each station's position."""
    ids, obs = _sorted(hours)
    n = len(ids)
    hr = Hours(ids, obs, mc)
    wanted = set(which)
    cols: dict[str, pa.Array] = {
        "id": ids,
        "observed_at": pa.array(obs["h"] * 3_600_000_000).cast(pa.timestamp("us", tz="UTC")),
    }
    text, i16, i8 = pa.string(), pa.int16(), pa.int8()
    cols |= _cai(hr, cai_pm, mc) if "cai" in wanted else (
        _nulls(("cai",), n, i16) | _nulls(("cai_grade",), n, i8)
        | _nulls(("cai_pollutant", "cai_reason"), n, text)
        | _nulls([f"cai_{p}" for p in POLLUTANTS], n, i16))
    cols |= _us(hr, mc) if "us_aqi" in wanted else (
        _nulls(("us_aqi",), n, i16) | _nulls(("us_aqi_category", "us_aqi_pollutant",
                                              "us_aqi_reason"), n, text)
        | _nulls([f"aqi_{p}" for p in POLLUTANTS], n, i16))
    cols |= _eaqi(hr, mc) if "eaqi" in wanted else (
        _nulls(("eaqi",), n, i8) | _nulls(("eaqi_band", "eaqi_pollutant", "eaqi_reason"), n,
                                          text) | _nulls([f"eaqi_{p}" for p in EAQI], n, i8))
    cols |= {p: _floats(hr.raw[p]) for p in POLLUTANTS}
    cols |= {c: _floats(hr.at[c]) for c in ("pm25_24h", "pm10_24h", "pm25_nowcast",
                                            "pm10_nowcast")}
    cols["pm25_cai_input"] = _floats(hr.cai_pm("pm25", cai_pm))
    cols["pm10_cai_input"] = _floats(hr.cai_pm("pm10", cai_pm))
    cols["pm25_hours_24h"] = _ints(hr.at["pm25_n24"], i8)
    cols["pm10_hours_24h"] = _ints(hr.at["pm10_n24"], i8)
    cols |= {c: _floats(hr.at[c]) for c in ("o3_8h", "co_8h", "so2_24h")}
    cols["reported_cai"] = _ints(hr.raw["reported_cai"], i16)
    cols["reported_cai_grade"] = _ints(hr.raw["reported_cai_grade"], i8)
    return pa.table([cols[c] for c in ORDER], names=list(ORDER)), stations(ids, obs)


ORDER = ("id", "observed_at", "cai", "cai_grade", "cai_pollutant", "cai_reason", "us_aqi",
         "us_aqi_category", "us_aqi_pollutant", "us_aqi_reason", "eaqi", "eaqi_band",
         "eaqi_pollutant", "eaqi_reason",
         *[f"cai_{p}" for p in POLLUTANTS], *[f"aqi_{p}" for p in POLLUTANTS],
         *[f"eaqi_{p}" for p in EAQI], *POLLUTANTS, "pm25_24h", "pm10_24h", "pm25_nowcast",
         "pm10_nowcast", "pm25_cai_input", "pm10_cai_input", "pm25_hours_24h",
         "pm10_hours_24h", "o3_8h", "co_8h", "so2_24h", "reported_cai", "reported_cai_grade")
