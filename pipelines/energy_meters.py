"""Consumption analytics over ``MeterReadingObserved`` for the ``energy`` pipeline, in DuckDB SQL.

Per meter and per site: daily and monthly consumption, peak and off-peak energy (tariff windows
in local time), load factor (mean over peak demand), base load (a low quantile of interval
demand), and days that are anomalous for their meter by a robust z-score.

Consumption is ``activeEnergyImport`` (``activeEnergyNet`` where a meter reports only net).
An interval counts as peak when its local start falls in a peak window (weekdays only unless
``peak_weekends``); intervals longer than an hour (daily readings) are left unclassified.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from hubctl.errors import UsageError
from hubctl.pipeline import PipelineContext

__all__ = ["NO_SITE", "anomalies", "meter_tables", "meters_summary", "parse_windows",
           "peak_condition", "prepare_local_time", "site_tables", "totals"]

NO_SITE = "(unassigned)"
_WINDOW = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")
_PREFIX = "urn:ngsi-ld:MeterReadingObserved:"


def parse_windows(items: list[str]) -> list[tuple[int, int]]:
    """``["08-11", "17:30-21"]`` as (start, end) minutes of the day; a window may wrap
    midnight (``22-06``)."""
    out = []
    for item in items:
        m = _WINDOW.match(item)
        if not m:
            raise UsageError(f"--param peak_windows: {item!r} is not a window like 08-22 or "
                             "07:30-11:00")
        start = int(m.group(1)) * 60 + int(m.group(2) or 0)
        end = int(m.group(3)) * 60 + int(m.group(4) or 0)
        if start > 24 * 60 or end > 24 * 60 or start == end:
            raise UsageError(f"--param peak_windows: {item!r} is not a window within a day")
        out.append((start, end))
    return out


def peak_condition(windows: list[tuple[int, int]], weekends: bool, t: str = "t") -> str:
    """SQL that is true when local timestamp ``t`` starts a peak interval."""
    minute = f"(hour({t}) * 60 + minute({t}))"
    parts = [f"({minute} >= {a} AND {minute} < {b})" if a < b
             else f"({minute} >= {a} OR {minute} < {b})" for a, b in windows]
    cond = "(" + " OR ".join(parts) + ")" if parts else "false"
    return cond if weekends else f"({cond} AND isodow({t}) <= 5)"


def prepare_local_time(ctx: PipelineContext, tz: str, peak: str) -> None:
    """``__energy_local``: each distinct reading start with its local time, day, month and
    peak flag. Converting once per distinct timestamp, into a table whose small size DuckDB
    knows (so it builds the join's hash table on it), costs a second on 35 million readings;
    converting per reading costs over a minute."""
    ctx.stage("__energy_local", f"""
        SELECT observed_at, t, CAST(t AS DATE) AS day,
               CAST(date_trunc('month', t) AS DATE) AS month, {peak} AS peak
        FROM (SELECT observed_at, timezone('{tz}', observed_at) AS t
              FROM (SELECT DISTINCT observed_at FROM MeterReadingObserved))""")


def _readings() -> str:
    """One row per reading: id, site, local start t, its day and month, whether it starts a
    peak interval, kWh, seconds, kW."""
    return f"""
        SELECT r.id, coalesce(r.site, '{NO_SITE}') AS site, l.t, l.day, l.month, l.peak,
               coalesce(r.activeEnergyImport, r.activeEnergyNet) AS kwh,
               r.intervalLength AS secs,
               coalesce(r.activeEnergyImport, r.activeEnergyNet) * 3600.0 / r.intervalLength
                   AS kw
        FROM MeterReadingObserved r JOIN __energy_local l USING (observed_at)
        WHERE coalesce(r.activeEnergyImport, r.activeEnergyNet) IS NOT NULL
          AND r.intervalLength > 0"""


# The aggregates a meter's daily and monthly rows share (over ``_readings()``).
_CONSUMPTION = """sum(kwh) AS kwh,
                     sum(kwh) FILTER (WHERE secs <= 3600 AND peak) AS peak_kwh,
                     sum(kwh) FILTER (WHERE secs <= 3600 AND NOT peak) AS offpeak_kwh,
                     count(*)::BIGINT AS readings, sum(secs) / 3600.0 AS hours,
                     max(kw) AS peak_kw"""


def _meter(column: str = "id") -> str:
    return f"url_decode(replace({column}, '{_PREFIX}', ''))"


def meter_tables(ctx: PipelineContext, tz: str, peak: str,
                 quantile: float) -> tuple[pa.Table, pa.Table]:
    """(meter_daily, meter_monthly) from the readings: two scans on the run's engine."""
    prepare_local_time(ctx, tz, peak)
    daily = ctx.aggregate(f"""
        WITH r AS ({_readings()}),
        g AS (SELECT id, min(site) AS site, day, {_CONSUMPTION}
              FROM r GROUP BY id, day)
        SELECT {_meter()} AS meter, * EXCLUDE (id) FROM g ORDER BY meter, day""")
    monthly = ctx.aggregate(f"""
        WITH r AS ({_readings()}),
        g AS (SELECT id, min(site) AS site, month, {_CONSUMPTION},
                     sum(kwh) / (sum(secs) / 3600.0) AS mean_kw,
                     quantile_cont(kw, {quantile}) AS base_load_kw
              FROM r GROUP BY id, month)
        SELECT {_meter()} AS meter, * EXCLUDE (id) FROM g ORDER BY meter, month""")
    ctx.con.register("__energy_meter_daily", daily)
    ctx.con.register("__energy_meter_monthly", monthly)
    monthly = ctx.sql("""
        SELECT m.meter, m.site, m.month, m.kwh, m.peak_kwh, m.offpeak_kwh,
               m.peak_kwh / nullif(m.peak_kwh + m.offpeak_kwh, 0) AS peak_share,
               d.days, m.readings, m.hours, m.peak_kw, m.mean_kw,
               m.mean_kw / nullif(m.peak_kw, 0) AS load_factor, m.base_load_kw
        FROM __energy_meter_monthly m
        JOIN (SELECT meter, CAST(date_trunc('month', day) AS DATE) AS month,
                     count(*)::BIGINT AS days
              FROM __energy_meter_daily GROUP BY ALL) d USING (meter, month)
        ORDER BY m.meter, m.month""")
    ctx.con.register("__energy_meter_monthly", monthly)
    return daily, monthly


def meters_summary(ctx: PipelineContext) -> pa.Table:
    """One row per meter over the whole period (from the monthly table)."""
    return ctx.sql("""
        SELECT meter, min(site) AS site, min(month) AS first_month, max(month) AS last_month,
               sum(days)::BIGINT AS days, sum(kwh) AS kwh, sum(kwh) / sum(days) AS kwh_per_day,
               sum(peak_kwh) / nullif(sum(peak_kwh) + sum(offpeak_kwh), 0) AS peak_share,
               max(peak_kw) AS peak_kw, sum(kwh) / sum(hours) AS mean_kw,
               (sum(kwh) / sum(hours)) / nullif(max(peak_kw), 0) AS load_factor,
               median(base_load_kw) AS base_load_kw
        FROM __energy_meter_monthly GROUP BY meter ORDER BY meter""")


def site_tables(ctx: PipelineContext, quantile: float) -> tuple[pa.Table, pa.Table]:
    """(site_daily, site_monthly): the summed load of each site's meters."""
    daily = ctx.sql("""
        SELECT site, day, count(*)::BIGINT AS meters, sum(kwh) AS kwh,
               sum(peak_kwh) AS peak_kwh, sum(offpeak_kwh) AS offpeak_kwh
        FROM __energy_meter_daily GROUP BY site, day ORDER BY site, day""")
    monthly = ctx.aggregate(f"""
        WITH r AS ({_readings()}),
        load AS (SELECT site, t, month, peak, sum(kwh) AS kwh, max(secs) AS secs,
                        sum(kw) AS kw
                 FROM r GROUP BY site, t, month, peak)
        SELECT site, month, sum(kwh) AS kwh,
               sum(kwh) FILTER (WHERE secs <= 3600 AND peak) / nullif(sum(kwh)
                   FILTER (WHERE secs <= 3600), 0) AS peak_share,
               max(kw) AS peak_kw, avg(kw) AS mean_kw,
               avg(kw) / nullif(max(kw), 0) AS load_factor,
               quantile_cont(kw, {quantile}) AS base_load_kw
        FROM load GROUP BY site, month ORDER BY site, month""")
    return daily, monthly


def anomalies(ctx: PipelineContext, threshold: float, min_days: int) -> pa.Table:
    """Days whose consumption is far from the meter's usual day of the same kind (weekday or
    weekend): modified z-score 0.6745 (x - median) / MAD, or (x - median) / (1.2533 mean
    absolute deviation) where the MAD is 0. Only days with at least 23 hours of readings."""
    return ctx.sql(f"""
        WITH d AS (SELECT meter, site, day, kwh, isodow(day) >= 6 AS weekend
                   FROM __energy_meter_daily WHERE hours >= 23),
        m AS (SELECT meter, weekend, median(kwh) AS med, count(*) AS n FROM d GROUP BY ALL),
        dev AS (SELECT d.*, m.med, m.n, abs(d.kwh - m.med) AS ad
                FROM d JOIN m USING (meter, weekend)),
        s AS (SELECT meter, weekend, median(ad) AS mad, avg(ad) AS mean_ad
              FROM dev GROUP BY ALL),
        z AS (SELECT dev.*, s.mad,
                     CASE WHEN s.mad > 0 THEN 0.6745 * (kwh - med) / s.mad
                          WHEN s.mean_ad > 0 THEN (kwh - med) / (1.2533 * s.mean_ad) END AS z
              FROM dev JOIN s USING (meter, weekend))
        SELECT meter, site, day, CASE WHEN weekend THEN 'weekend' ELSE 'weekday' END AS day_kind,
               kwh, med AS typical_kwh, mad AS mad_kwh, z AS robust_z,
               kwh - med AS excess_kwh, kwh / nullif(med, 0) AS ratio,
               CASE WHEN z > 0 THEN 'high' ELSE 'low' END AS direction
        FROM z
        WHERE n >= {int(min_days)} AND abs(z) >= {float(threshold)}
        ORDER BY meter, day""")


def totals(ctx: PipelineContext) -> dict[str, Any]:
    """Whole-lake figures: meters, readings, kWh, exported kWh, the first and last reading,
    and the annual consumption (each meter's kWh over the hours its readings cover, scaled to
    a year, summed over meters: meters that report different periods still add up)."""
    whole = ctx.aggregate(f"""
        WITH m AS (
            SELECT id, count(*) AS n,
                   sum(coalesce(activeEnergyImport, activeEnergyNet)) AS kwh,
                   sum(activeEnergyExport) AS export, sum(intervalLength) AS secs,
                   min(observed_at) AS first, max(observed_at) AS last
            FROM MeterReadingObserved
            WHERE intervalLength > 0
              AND coalesce(activeEnergyImport, activeEnergyNet, activeEnergyExport) IS NOT NULL
            GROUP BY id)
        SELECT count(*), sum(n), sum(kwh), sum(export),
               sum(kwh * {365.25 * 86400} / secs) FILTER (WHERE kwh IS NOT NULL),
               min(first) AS first, max(last) AS last
        FROM m""")
    ctx.con.register("__energy_totals", whole)  # the text of the times as DuckDB writes it
    row = ctx.con.execute("SELECT * EXCLUDE (first, last), CAST(first AS VARCHAR), "
                          "CAST(last AS VARCHAR) FROM __energy_totals").fetchall()[0]
    ctx.con.unregister("__energy_totals")
    meters, readings, kwh, export, annual, first, last = row
    return {"meters": int(meters or 0), "readings": int(readings or 0),
            "kwh": float(kwh or 0.0), "export_kwh": float(export or 0.0),
            "kwh_per_year": float(annual or 0.0), "first": first, "last": last}
