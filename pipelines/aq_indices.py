"""Hourly indices per station: the Korean CAI, the US AQI and the European AQI in one DuckDB
query over the lake's ``AirQualityObserved`` rows.

Rows are put on an hourly grid (``h`` = hours since 1970 UTC, the hour an observation's time
falls in; several rows in one hour are averaged), made dense per station between its first and
last hour so that window frames and ``lag`` count hours, not rows. Every running mean carries
the number of hours it had; a mean with fewer than ``min_completeness`` of its hours is null,
and so is every index that needs it, with the reason in ``*_reason``. Only hours with an
observation are output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pyarrow as pa

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.aq_standards import (
    CAI,
    CAI_BONUS,
    EAQI,
    EAQI_BANDS,
    POLLUTANTS,
    US_AQI,
    band_sql,
    category_sql,
    grade_sql,
    index_sql,
)
from hubctl.units import conversion_factor

__all__ = ["CAI_PM_MODES", "INDICES", "hourly_indices", "load_hours"]

INDICES = ("cai", "us_aqi", "eaqi")
CAI_PM_MODES = ("c24e", "mean24h", "reported")
OBS = "__aq_obs"
# AirKorea's 24-hour predicted moving average: thresholds M in µg/m³ (CAI calculator).
C24E_M = {"pm10": 70.0, "pm25": 30.0}
_REPORTED = {"reportedPm25Avg24h": "rep_pm25_24", "reportedPm10Avg24h": "rep_pm10_24",
             "reportedCai": "reported_cai", "reportedCaiGrade": "reported_cai_grade"}
EPS = 1e-6  # so that 0.087 ppm read back from µg/m³ as 0.0869999... truncates to 0.087


def _ppm(p: str) -> float:
    """Factor from the lake's canonical unit (µg/m³, CO mg/m³) to ppm."""
    factor = conversion_factor(p, "GP" if p == "co" else "GQ", "59")
    assert factor is not None
    return factor


def load_hours(ctx: PipelineContext) -> int:
    """Put the lake's observations on the hourly grid in temp table ``__aq_obs``; returns the
    number of station-hours."""
    cols = {r[0] for r in ctx.con.execute("DESCRIBE AirQualityObserved").fetchall()}

    def col(name: str, alias: str, agg: str = "avg") -> str:
        return f"{agg}({name}) AS {alias}" if name in cols else f"CAST(NULL AS DOUBLE) AS {alias}"

    select = [col(p, p) for p in POLLUTANTS]
    select += [col(name, alias, "max" if "Grade" in name else "avg")
               for name, alias in _REPORTED.items()]
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {OBS} AS
        SELECT id, CAST(floor(epoch(observed_at) / 3600) AS BIGINT) AS h, {', '.join(select)}
        FROM AirQualityObserved WHERE observed_at IS NOT NULL AND id IS NOT NULL
        GROUP BY 1, 2""").fetchall()
    return int(ctx.scalar(f"SELECT count(*) FROM {OBS}") or 0)


def _need(hours: int, mc: float) -> int:
    return max(1, math.ceil(hours * mc - 1e-9))


def _windows() -> str:
    parts = []
    for p in ("pm25", "pm10"):
        parts += [f"avg({p}) OVER w24 AS {p}_24h", f"count({p}) OVER w24 AS {p}_n24",
                  f"avg({p}) OVER w12 AS {p}_c12", f"count({p}) OVER w12 AS {p}_n12",
                  f"min({p}) OVER w12 AS {p}_min12", f"max({p}) OVER w12 AS {p}_max12"]
        parts += [f"lag({p}, {k}) OVER wl AS {p}_l{k}" for k in range(1, 12)]
    for p in ("o3", "co"):
        parts += [f"avg({p}) OVER w8 AS {p}_8h", f"count({p}) OVER w8 AS {p}_n8"]
    parts += ["avg(so2) OVER w24 AS so2_24h", "count(so2) OVER w24 AS so2_n24"]
    return ",\n".join(parts)


def _lags(p: str) -> list[str]:
    return [p] + [f"{p}_l{k}" for k in range(1, 12)]


def _nowcast(p: str) -> str:
    """EPA NowCast of the last 12 hours (weight factor min/max, at least 0.5); valid when two of
    the three most recent hours are present (AirNow's completeness rule)."""
    w = (f"(CASE WHEN {p}_max12 IS NULL THEN NULL WHEN {p}_max12 <= 0 THEN 1.0 "
         f"ELSE greatest(0.5, {p}_min12 / {p}_max12) END)")
    lags = _lags(p)
    num = " + ".join(f"coalesce({c} * power({w}, {k}), 0)" for k, c in enumerate(lags))
    den = " + ".join(f"CASE WHEN {c} IS NULL THEN 0 ELSE power({w}, {k}) END"
                     for k, c in enumerate(lags))
    recent = " + ".join(f"CAST({c} IS NOT NULL AS INT)" for c in lags[:3])
    return f"CASE WHEN {recent} >= 2 THEN ({num}) / ({den}) END"


def _c24e(p: str, mc: float) -> str:
    """AirKorea's 24-hour predicted moving average C24E = (12 C12 + 12 C4) / 24."""
    m = C24E_M[p]
    adj = [f"CASE WHEN {c} IS NULL THEN NULL WHEN {c} < {m} THEN {c} "
           f"WHEN {c} / {p}_c12 < 0.9 OR {c} / {p}_c12 > 1.7 THEN {c} ELSE 0.75 * {c} END"
           for c in _lags(p)[:4]]
    n4 = " + ".join(f"CAST({c} IS NOT NULL AS INT)" for c in _lags(p)[:4])
    c4 = f"(({' + '.join(f'coalesce({a}, 0)' for a in adj)}) / nullif({n4}, 0))"
    return (f"CASE WHEN {p}_n12 >= {_need(12, mc)} AND {n4} >= 3 "
            f"THEN ({p}_c12 * 12 + {c4} * 12) / 24 END")


def _trunc(x: str, decimals: int) -> str:
    scale = 10 ** decimals
    return f"(floor(({x}) * {scale} + {EPS}) / {scale})"


def _inputs(mc: float, cai_pm: str) -> str:
    """Averaged concentrations each index uses (null when incomplete)."""
    n24, n8 = _need(24, mc), _need(8, mc)
    out = []
    for p in ("pm25", "pm10"):
        out.append(f"CASE WHEN {p}_n24 >= {n24} THEN {p}_24h END AS {p}_24h")
        out.append(f"{_nowcast(p)} AS {p}_nowcast")
        out.append(f"{_c24e(p, mc)} AS {p}_c24e")
        out.append(f"{p}_n24, {p}_n12")
    for p in ("o3", "co"):
        out.append(f"CASE WHEN {p}_n8 >= {n8} THEN {p}_8h END AS {p}_8h")
    out.append(f"CASE WHEN so2_n24 >= {n24} THEN so2_24h END AS so2_24h")
    return ",\n".join(out)


def _cai_pm_input(p: str, cai_pm: str) -> str:
    return {"c24e": f"{p}_c24e", "mean24h": f"{p}_24h", "reported": f"rep_{p}_24"}[cai_pm]


def _cai(cai_pm: str) -> list[str]:
    out = []
    for p in POLLUTANTS:
        x = _cai_pm_input(p, cai_pm) if p in ("pm25", "pm10") else f"{p} * {_ppm(p)!r}"
        out.append(f"CAST(round({index_sql(x, CAI[p])}) AS SMALLINT) AS cai_{p}")
    return out


def _us() -> list[str]:
    o3_ppm, co_ppm = _ppm("o3"), _ppm("co")
    so2_ppb, no2_ppb = _ppm("so2") * 1000, _ppm("no2") * 1000
    o3_8 = _trunc(f"o3_8h * {o3_ppm!r}", 3)
    o3_1 = _trunc(f"o3 * {o3_ppm!r}", 3)
    so2 = _trunc(f"so2 * {so2_ppb!r}", 0)
    so2_24 = _trunc(f"so2_24h * {so2_ppb!r}", 0)
    co = _trunc(f"co_8h * {co_ppm!r}", 1)
    no2 = _trunc(f"no2 * {no2_ppb!r}", 0)
    o3_8_index = index_sql(o3_8, US_AQI["o3_8h"])
    return [
        f"round({index_sql(_trunc('pm25_nowcast', 1), US_AQI['pm25'])}) AS aqi_pm25",
        f"round({index_sql(_trunc('pm10_nowcast', 0), US_AQI['pm10'])}) AS aqi_pm10",
        f"round(greatest(CASE WHEN {o3_8} <= 0.200 THEN {o3_8_index} END, "
        f"{index_sql(o3_1, US_AQI['o3_1h'])})) AS aqi_o3",
        f"round({index_sql(co, US_AQI['co'])}) AS aqi_co",
        f"round(CASE WHEN {so2} <= 304 THEN {index_sql(so2, US_AQI['so2_1h'])} "
        f"ELSE {index_sql(so2_24, US_AQI['so2_24h'])} END) AS aqi_so2",
        f"round({index_sql(no2, US_AQI['no2'])}) AS aqi_no2",
    ]


def _eaqi() -> list[str]:
    src = {"pm25": "pm25_24h", "pm10": "pm10_24h", "no2": "no2", "o3": "o3", "so2": "so2"}
    return [f"CAST({band_sql(src[p], EAQI[p])} AS TINYINT) AS eaqi_{p}" for p in EAQI]


def _argmax(prefix: str, names: Iterable[str], best: str) -> str:
    cases = " ".join(f"WHEN {prefix}{p} = {best} THEN '{p}'" for p in names)
    return f"CASE WHEN {best} IS NULL THEN NULL {cases} END"


def _overall(mc: float, cai_pm: str) -> list[str]:
    cai_max = f"greatest({', '.join(f'cai_{p}' for p in POLLUTANTS)})"
    bad = " + ".join(f"CAST(coalesce(cai_{p} >= 101, false) AS INT)" for p in POLLUTANTS)
    bonus = " ".join(f"WHEN {bad} >= {n} THEN {add}" for n, add in CAI_BONUS)
    required = " AND ".join(f"cai_{p} IS NOT NULL" for p in ("pm25", "pm10", "o3", "no2"))
    cai = f"CASE WHEN {required} THEN least(500, {cai_max} + CASE {bonus} ELSE 0 END) END"
    us_max = f"greatest({', '.join(f'aqi_{p}' for p in POLLUTANTS)})"
    e_max = f"greatest({', '.join(f'eaqi_{p}' for p in EAQI)})"
    e_ok = "(eaqi_pm25 IS NOT NULL OR eaqi_pm10 IS NOT NULL) AND eaqi_no2 IS NOT NULL"
    names = ", ".join(f"'{b}'" for b in EAQI_BANDS)
    return [
        f"CAST({cai} AS SMALLINT) AS cai",
        f"CAST({grade_sql(cai)} AS TINYINT) AS cai_grade",
        f"CASE WHEN {required} THEN {_argmax('cai_', POLLUTANTS, cai_max)} END AS cai_pollutant",
        f"CASE WHEN NOT ({required}) THEN {_cai_reason(mc, cai_pm)} END AS cai_reason",
        f"CAST({us_max} AS SMALLINT) AS us_aqi",
        f"{category_sql(us_max)} AS us_aqi_category",
        f"{_argmax('aqi_', POLLUTANTS, us_max)} AS us_aqi_pollutant",
        f"CASE WHEN {us_max} IS NULL THEN 'no complete averaging period for any pollutant "
        f"(PM NowCast needs 2 of the last 3 hours, O3 and CO 8-hour means {_need(8, mc)} of 8)'"
        " END AS us_aqi_reason",
        f"CAST(CASE WHEN {e_ok} THEN {e_max} END AS TINYINT) AS eaqi",
        f"CASE WHEN {e_ok} THEN ([{names}])[{e_max}] END AS eaqi_band",
        f"CASE WHEN {e_ok} THEN {_argmax('eaqi_', EAQI, e_max)} END AS eaqi_pollutant",
        f"CASE WHEN NOT ({e_ok}) THEN 'needs NO2 and a 24-hour PM10 or PM2.5 mean with "
        f"{_need(24, mc)} of 24 hours (EEA: the index of a station needs NO2 and PM)' END "
        "AS eaqi_reason",
    ]


def _cai_reason(mc: float, cai_pm: str) -> str:
    parts = []
    for p in ("pm25", "pm10"):
        why = {"c24e": f"'{p}: 24-hour predicted moving average needs {_need(12, mc)} of the "
                       f"last 12 hours and 3 of the last 4, has ' || {p}_n12 || ' of 12'",
               "mean24h": f"'{p}: 24-hour mean needs {_need(24, mc)} of 24 hours, has ' || "
                          f"{p}_n24",
               "reported": f"'{p}: no reported 24-hour value'"}[cai_pm]
        parts.append(f"CASE WHEN cai_{p} IS NULL THEN {why} END")
    parts += [f"CASE WHEN cai_{p} IS NULL THEN '{p}: no hourly value' END" for p in ("o3", "no2")]
    return f"concat_ws('; ', {', '.join(parts)})"


def hourly_indices(ctx: PipelineContext, mc: float, cai_pm: str,
                   which: Iterable[str] = INDICES) -> pa.Table:
    """One row per station and observed hour with every index, sub-index and averaged input."""
    wanted = set(which)
    sub = []
    if "cai" in wanted:
        sub += _cai(cai_pm)
    else:
        sub += [f"CAST(NULL AS SMALLINT) AS cai_{p}" for p in POLLUTANTS]
    sub += _us() if "us_aqi" in wanted else [f"CAST(NULL AS DOUBLE) AS aqi_{p}"
                                             for p in POLLUTANTS]
    sub += _eaqi() if "eaqi" in wanted else [f"CAST(NULL AS TINYINT) AS eaqi_{p}" for p in EAQI]
    query = f"""
    WITH span AS (SELECT id, min(h) AS lo, max(h) AS hi FROM {OBS} GROUP BY id),
    grid AS (SELECT id, unnest(range(lo, hi + 1)) AS h FROM span),
    d AS (SELECT g.id, g.h, o.* EXCLUDE (id, h), o.h IS NOT NULL AS observed
          FROM grid g LEFT JOIN {OBS} o ON o.id = g.id AND o.h = g.h),
    w AS (SELECT *, {_windows()} FROM d
          WINDOW w24 AS (PARTITION BY id ORDER BY h ROWS BETWEEN 23 PRECEDING AND CURRENT ROW),
                 w12 AS (PARTITION BY id ORDER BY h ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
                 w8 AS (PARTITION BY id ORDER BY h ROWS BETWEEN 7 PRECEDING AND CURRENT ROW),
                 wl AS (PARTITION BY id ORDER BY h)),
    a AS (SELECT id, h, {', '.join(POLLUTANTS)}, rep_pm25_24, rep_pm10_24,
                 reported_cai, reported_cai_grade, {_inputs(mc, cai_pm)}
          FROM w WHERE observed),
    s AS (SELECT *, {', '.join(sub)} FROM a)
    SELECT id, to_timestamp(h * 3600) AS observed_at, {', '.join(_overall(mc, cai_pm))},
           cai_pm25, cai_pm10, cai_o3, cai_no2, cai_co, cai_so2,
           CAST(aqi_pm25 AS SMALLINT) AS aqi_pm25, CAST(aqi_pm10 AS SMALLINT) AS aqi_pm10,
           CAST(aqi_o3 AS SMALLINT) AS aqi_o3, CAST(aqi_co AS SMALLINT) AS aqi_co,
           CAST(aqi_so2 AS SMALLINT) AS aqi_so2, CAST(aqi_no2 AS SMALLINT) AS aqi_no2,
           eaqi_pm25, eaqi_pm10, eaqi_no2, eaqi_o3, eaqi_so2,
           {', '.join(POLLUTANTS)},
           pm25_24h, pm10_24h, pm25_nowcast, pm10_nowcast,
           {_cai_pm_input('pm25', cai_pm)} AS pm25_cai_input,
           {_cai_pm_input('pm10', cai_pm)} AS pm10_cai_input,
           CAST(pm25_n24 AS TINYINT) AS pm25_hours_24h, CAST(pm10_n24 AS TINYINT)
           AS pm10_hours_24h, o3_8h, co_8h, so2_24h,
           CAST(reported_cai AS SMALLINT) AS reported_cai,
           CAST(reported_cai_grade AS TINYINT) AS reported_cai_grade
    FROM s ORDER BY id, h"""
    return ctx.sql(query)
