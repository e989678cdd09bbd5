"""Traffic lights, daily and annual means, and WHO 2021 exceedances from the hourly indices.

All queries read the hourly table registered as ``__aq_idx`` (see :mod:`pipelines.aq_indices`).

Completeness (``min_completeness``, default 0.75): a daily mean needs 75 % of the day's hours
(18 of 24) and an annual mean 75 % of the year's days; an 8-hour mean 6 of 8 hours. This is the
75 % rule of US EPA 40 CFR Part 50 Appendix N (PM2.5: a valid day has at least 18 hourly
values; a valid year 75 % of its days) and of the EU Directive 2008/50/EC Annex VII (8-hour
means from 6 of 8 hours).
"""

from __future__ import annotations

import pyarrow as pa

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.aq_indices import ppm
from hubctl.pipelines.aq_standards import (
    CAI_COLOURS,
    CAI_GRADE_KO,
    CAI_GRADE_NAMES,
    POLLUTANTS,
    WHO_2021,
    grade_sql,
)

__all__ = ["IDX", "exceedances", "lights", "means"]

IDX = "__aq_idx"
UNITS = {"pm25": "µg/m³", "pm10": "µg/m³", "o3": "µg/m³", "no2": "µg/m³", "so2": "µg/m³",
         "co": "mg/m³"}


def _need(n: int | str, mc: float) -> str:
    return f"CAST(greatest(1, ceil({n} * {mc!r} - 1e-9)) AS INTEGER)"


def lights(ctx: PipelineContext) -> pa.Table:
    """Each station's latest CAI grade per pollutant and overall, with the time of the value
    used (the latest hour whose sub-index could be computed) and how far behind the newest
    hour in the lake it is."""
    used = {"pm25": ("round(pm25_cai_input, 1)", "µg/m³", "24h"),
            "pm10": ("round(pm10_cai_input, 1)", "µg/m³", "24h")}
    used |= {p: (f"round({p} * {ppm(p)!r}, {2 if p == 'co' else 4})", "ppm", "1h")
             for p in ("o3", "no2", "co", "so2")}
    aggs = ["max(observed_at) FILTER (WHERE cai IS NOT NULL) AS t_overall",
            "max_by(cai, observed_at) FILTER (WHERE cai IS NOT NULL) AS i_overall",
            "max_by(cai_pollutant, observed_at) FILTER (WHERE cai IS NOT NULL) AS v_overall"]
    for p, (expr, _, _) in used.items():
        aggs += [f"max(observed_at) FILTER (WHERE cai_{p} IS NOT NULL) AS t_{p}",
                 f"max_by(cai_{p}, observed_at) FILTER (WHERE cai_{p} IS NOT NULL) AS i_{p}",
                 f"max_by({expr}, observed_at) FILTER (WHERE cai_{p} IS NOT NULL) AS v_{p}"]
    parts = ["SELECT id, 'overall' AS pollutant, t_overall AS observed_at, i_overall AS cai, "
             "CAST(NULL AS DOUBLE) AS value, CAST(NULL AS VARCHAR) AS unit, 'CAI' AS averaging, "
             "v_overall AS driven_by FROM per"]
    parts += [f"SELECT id, '{p}', t_{p}, i_{p}, v_{p}, '{unit}', '{avg}', NULL FROM per"
              for p, (_, unit, avg) in used.items()]
    names = ", ".join(f"'{n}'" for n in CAI_GRADE_NAMES)
    ko = ", ".join(f"'{n}'" for n in CAI_GRADE_KO)
    colours = ", ".join(f"'{n}'" for n in CAI_COLOURS)
    grade = grade_sql("cai")
    return ctx.sql(f"""
        WITH per AS MATERIALIZED (SELECT id, {', '.join(aggs)} FROM {IDX} GROUP BY id),
        newest AS (SELECT max(observed_at) AS t FROM {IDX}),
        l AS ({' UNION ALL '.join(parts)})
        SELECT id, pollutant, observed_at, CAST(cai AS SMALLINT) AS cai,
               CAST({grade} AS TINYINT) AS grade, ([{names}])[{grade}] AS grade_name,
               ([{ko}])[{grade}] AS grade_ko, ([{colours}])[{grade}] AS colour,
               value, unit, averaging, driven_by,
               CAST(date_diff('hour', observed_at, (SELECT t FROM newest)) AS INTEGER)
               AS hours_behind
        FROM l WHERE observed_at IS NOT NULL
        ORDER BY id, array_position(['overall', {', '.join(repr(p) for p in used)}], pollutant)
        """)


def means(ctx: PipelineContext, tz: str, mc: float) -> pa.Table:
    """Daily and annual means per station and pollutant (local days in ``tz``), with the
    completeness rule applied; the daily maximum 8-hour mean for O3 and CO."""
    aggs = []
    for p in POLLUTANTS:
        aggs += [f"avg({p}) AS m_{p}", f"count({p}) AS n_{p}"]
    aggs += ["max(o3_8h) AS x8_o3", "max(co_8h) AS x8_co"]
    unpivot = " UNION ALL ".join(
        f"SELECT id, day, '{p}' AS pollutant, m_{p} AS m, n_{p} AS n, "
        f"{'x8_' + p if p in ('o3', 'co') else 'CAST(NULL AS DOUBLE)'} AS x8 FROM agg"
        for p in POLLUTANTS)
    units = " ".join(f"WHEN '{p}' THEN '{u}'" for p, u in UNITS.items())
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __aq_daily AS
        WITH local AS (  -- the time zone conversion once per distinct hour, not per row
            SELECT t, CAST(timezone('{tz}', t) AS DATE) AS day
            FROM (SELECT DISTINCT observed_at AS t FROM {IDX})),
        agg AS MATERIALIZED (
            SELECT id, day, {', '.join(aggs)}
            FROM {IDX} JOIN local ON local.t = {IDX}.observed_at GROUP BY ALL),
        u AS ({unpivot})
        SELECT id, pollutant, day, n, n >= {_need(24, mc)} AS complete,
               CASE WHEN n >= {_need(24, mc)} THEN m END AS mean, x8 AS max_8h
        FROM u WHERE n > 0""").fetchall()
    return ctx.sql(f"""
        WITH years AS (
            SELECT id, pollutant, CAST(date_trunc('year', day) AS DATE) AS start,
                   count(*) FILTER (WHERE complete) AS n,
                   avg(mean) AS m,
                   date_diff('day', date_trunc('year', min(day)),
                             date_trunc('year', min(day)) + INTERVAL 1 YEAR) AS expected
            FROM __aq_daily GROUP BY ALL)
        SELECT id, pollutant, 'day' AS period, day AS start, mean, max_8h,
               CAST(n AS INTEGER) AS count, 24 AS expected, complete,
               CASE {'pollutant'} {units} END AS unit,
               CASE WHEN NOT complete THEN 'daily mean needs ' || {_need(24, mc)}
                    || ' hourly values, has ' || n END AS note
        FROM __aq_daily
        UNION ALL
        SELECT id, pollutant, 'year', start, CASE WHEN n >= {_need('expected', mc)} THEN m END,
               NULL, CAST(n AS INTEGER), CAST(expected AS INTEGER),
               n >= {_need('expected', mc)}, CASE pollutant {units} END,
               CASE WHEN n < {_need('expected', mc)} THEN 'annual mean needs '
                    || {_need('expected', mc)} || ' valid days, has ' || n END
        FROM years
        ORDER BY id, pollutant, period, start""")


def exceedances(ctx: PipelineContext) -> pa.Table:
    """Per station, year and pollutant: days above each WHO 2021 24-hour / 8-hour level, and
    the annual mean against each annual level. Needs ``means`` first (``__aq_daily``)."""
    rows: list[str] = []
    for p, by_avg in WHO_2021.items():
        for averaging, levels in by_avg.items():
            for level, threshold in levels:
                rows.append(f"('{p}', '{averaging}', '{level}', {float(threshold)!r})")
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE __aq_who (pollutant VARCHAR, averaging "
                    f"VARCHAR, level VARCHAR, threshold DOUBLE); INSERT INTO __aq_who VALUES "
                    f"{', '.join(rows)}").fetchall()
    return ctx.sql("""
        WITH d AS (SELECT id, pollutant, CAST(date_trunc('year', day) AS DATE) AS year, mean,
                          max_8h FROM __aq_daily),
        short AS (
            SELECT d.id, d.year, w.pollutant, w.averaging, w.level, w.threshold,
                   count(*) FILTER (WHERE (CASE w.averaging WHEN '8h' THEN d.max_8h
                                             ELSE d.mean END) > w.threshold) AS days_above,
                   count(CASE w.averaging WHEN '8h' THEN d.max_8h ELSE d.mean END) AS valid_days
            FROM d JOIN __aq_who w ON w.pollutant = d.pollutant AND w.averaging <> 'annual'
            GROUP BY ALL),
        annual AS (
            SELECT m.id, m.start AS year, w.pollutant, w.averaging, w.level, w.threshold,
                   m.mean AS annual_mean, m.count AS valid_days
            FROM __aq_means m JOIN __aq_who w ON w.pollutant = m.pollutant
                                             AND w.averaging = 'annual'
            WHERE m.period = 'year')
        SELECT id, year, pollutant, averaging, level, threshold,
               CASE pollutant WHEN 'co' THEN 'mg/m³' ELSE 'µg/m³' END AS unit,
               CAST(days_above AS INTEGER) AS days_above, CAST(valid_days AS INTEGER)
               AS valid_days, CAST(NULL AS DOUBLE) AS annual_mean,
               days_above > 3 AS exceeds
        FROM short
        UNION ALL
        SELECT id, year, pollutant, averaging, level, threshold, 'µg/m³', NULL,
               CAST(valid_days AS INTEGER), annual_mean,
               CASE WHEN annual_mean IS NOT NULL THEN annual_mean > threshold END
        FROM annual
        ORDER BY id, year, pollutant, averaging, threshold DESC""")

