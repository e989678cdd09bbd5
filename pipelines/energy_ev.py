"""EV charging analytics over ``EVChargingSession`` for the ``energy`` pipeline, in DuckDB SQL.

Sessions, energy and occupancy per charge point and per site by weekday and hour of day (local
time), utilisation (occupied connector-hours over available connector-hours in the period the
data covers), and idle time after charging where the data has a charging end.

Occupancy counts closed sessions only (an open session has no end yet); open sessions are
counted as such. A session's energy is spread evenly over its charging time (start to
charging end, else start to end).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hubctl.pipeline import PipelineContext
from hubctl.pipelines.energy_meters import NO_SITE

__all__ = ["drop_temp", "ev_tables", "ev_totals"]

_CP = "urn:ngsi-ld:EVChargingStation:"


def _sessions(tz: str) -> str:
    return f"""
        SELECT id, url_decode(replace(refEVChargingStation, '{_CP}', '')) AS cp,
               coalesce(site, '{NO_SITE}') AS site, connector,
               timezone('{tz}', startDateTime) AS st, timezone('{tz}', endDateTime) AS en,
               CASE WHEN chargingEndDateTime IS NOT NULL THEN
                   timezone('{tz}', least(greatest(chargingEndDateTime, startDateTime),
                                          coalesce(endDateTime, chargingEndDateTime)))
               END AS ce,
               energy, status
        FROM EVChargingSession_latest"""


def _connectors(ctx: PipelineContext) -> str:
    """SQL of (cp, connectors): the station's socketNumber, else the connectors seen."""
    seen = "SELECT cp, count(DISTINCT connector) AS n FROM s GROUP BY cp"
    if not ctx.has("EVChargingStation"):
        return f"SELECT cp, n AS connectors FROM ({seen})"
    return f"""
        SELECT seen.cp, greatest(seen.n, coalesce(st.socketNumber, 0)) AS connectors
        FROM ({seen}) seen
        LEFT JOIN (SELECT url_decode(replace(id, '{_CP}', '')) AS cp, socketNumber
                   FROM EVChargingStation_latest) st USING (cp)"""


def ev_tables(ctx: PipelineContext, tz: str) -> dict[str, pa.Table]:
    """ev_hourly, ev_charge_points and ev_sites."""
    con = ctx.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE __ev_s AS {_sessions(tz)}").fetchall()
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __ev_cp AS
        WITH s AS (SELECT * FROM __ev_s) {_connectors(ctx)}""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __ev_window AS
        SELECT date_trunc('hour', min(st)) AS w0,
               greatest(date_trunc('hour', max(en) - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR,
                        date_trunc('hour', max(st)) + INTERVAL 1 HOUR) AS w1
        FROM __ev_s""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __ev_occ AS
        WITH x AS (
            SELECT cp, site, st, en, coalesce(ce, en) AS ce, energy,
                   unnest(generate_series(date_trunc('hour', st), en, INTERVAL 1 HOUR)) AS h
            FROM __ev_s WHERE status = 'closed' AND en > st)
        SELECT cp, site, isodow(h) AS weekday, hour(h) AS hour,
               epoch(least(en, h + INTERVAL 1 HOUR) - greatest(st, h)) / 3600.0 AS occupied_h,
               CASE WHEN ce > st THEN coalesce(energy, 0)
                    * greatest(epoch(least(ce, h + INTERVAL 1 HOUR) - greatest(st, h)), 0)
                    / epoch(ce - st)
                    ELSE CASE WHEN h = date_trunc('hour', st) THEN coalesce(energy, 0) ELSE 0 END
               END AS energy_kwh
        FROM x WHERE least(en, h + INTERVAL 1 HOUR) > greatest(st, h)""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __ev_slots AS
        SELECT isodow(h) AS weekday, hour(h) AS hour, count(*)::BIGINT AS n
        FROM (SELECT unnest(generate_series(w0, w1 - INTERVAL 1 HOUR, INTERVAL 1 HOUR)) AS h
              FROM __ev_window) GROUP BY ALL""").fetchall()
    hourly = ctx.sql("""
        WITH keys AS (
            SELECT 'charge_point' AS level, cp AS key, connectors FROM __ev_cp
            UNION ALL
            SELECT 'site', s.site, sum(c.connectors)
            FROM (SELECT DISTINCT cp, site FROM __ev_s) s JOIN __ev_cp c USING (cp)
            GROUP BY s.site),
        occ AS (
            SELECT 'charge_point' AS level, cp AS key, weekday, hour,
                   sum(occupied_h) AS occupied_h, sum(energy_kwh) AS energy_kwh
            FROM __ev_occ GROUP BY ALL
            UNION ALL
            SELECT 'site', site, weekday, hour, sum(occupied_h), sum(energy_kwh)
            FROM __ev_occ GROUP BY ALL),
        starts AS (
            SELECT 'charge_point' AS level, cp AS key, isodow(st) AS weekday, hour(st) AS hour,
                   count(*)::BIGINT AS sessions FROM __ev_s GROUP BY ALL
            UNION ALL
            SELECT 'site', site, isodow(st), hour(st), count(*)::BIGINT
            FROM __ev_s GROUP BY ALL)
        SELECT k.level, k.key, sl.weekday, sl.hour,
               coalesce(st.sessions, 0)::BIGINT AS sessions,
               coalesce(o.energy_kwh, 0.0) AS energy_kwh,
               coalesce(o.occupied_h, 0.0) AS occupied_hours,
               (k.connectors * sl.n)::DOUBLE AS available_hours,
               coalesce(o.occupied_h, 0.0) / nullif(k.connectors * sl.n, 0) AS occupancy
        FROM keys k CROSS JOIN __ev_slots sl
        LEFT JOIN occ o ON o.level = k.level AND o.key = k.key AND o.weekday = sl.weekday
                        AND o.hour = sl.hour
        LEFT JOIN starts st ON st.level = k.level AND st.key = k.key
                           AND st.weekday = sl.weekday AND st.hour = sl.hour
        ORDER BY k.level, k.key, sl.weekday, sl.hour""")
    per = """
        SELECT {key} AS {name}, {extra}
               count(*)::BIGINT AS sessions,
               count(*) FILTER (WHERE status = 'open')::BIGINT AS open_sessions,
               coalesce(sum(energy), 0.0) AS energy_kwh,
               coalesce(sum(epoch(en - st)) FILTER (WHERE status = 'closed'), 0.0) / 3600.0
                   AS occupied_hours,
               avg(epoch(en - st) / 3600.0) FILTER (WHERE status = 'closed')
                   AS mean_session_hours,
               count(ce)::BIGINT AS sessions_with_charging_end,
               sum(epoch(en - ce)) FILTER (WHERE ce IS NOT NULL AND status = 'closed')
                   / 3600.0 AS idle_hours,
               sum(epoch(en - ce)) FILTER (WHERE ce IS NOT NULL AND status = 'closed')
                   / nullif(sum(epoch(en - st)) FILTER (WHERE ce IS NOT NULL
                                                         AND status = 'closed'), 0)
                   AS idle_share
        FROM __ev_s s GROUP BY {key}"""
    hours = "(SELECT epoch(w1 - w0) / 3600.0 FROM __ev_window)"
    points = ctx.sql(f"""
        WITH p AS ({per.format(key="s.cp", name="charge_point",
                               extra="min(s.site) AS site,")})
        SELECT p.*, c.connectors, c.connectors * {hours} AS available_hours,
               p.occupied_hours / nullif(c.connectors * {hours}, 0) AS utilisation
        FROM p JOIN __ev_cp c ON c.cp = p.charge_point ORDER BY p.charge_point""")
    sites = ctx.sql(f"""
        WITH p AS ({per.format(key="s.site", name="site",
                               extra="count(DISTINCT s.cp)::BIGINT AS charge_points,")}),
        c AS (SELECT s.site, sum(c.connectors) AS connectors
              FROM (SELECT DISTINCT cp, site FROM __ev_s) s JOIN __ev_cp c USING (cp)
              GROUP BY s.site)
        SELECT p.*, c.connectors, c.connectors * {hours} AS available_hours,
               p.occupied_hours / nullif(c.connectors * {hours}, 0) AS utilisation
        FROM p JOIN c USING (site) ORDER BY p.site""")
    return {"ev_hourly": hourly, "ev_charge_points": points, "ev_sites": sites}


def ev_totals(ctx: PipelineContext) -> dict[str, Any]:
    """Sessions, open sessions, energy, the covered period and overall utilisation."""
    row = ctx.con.execute("""
        SELECT count(*), count(*) FILTER (WHERE status = 'open'),
               coalesce(sum(energy), 0), count(DISTINCT cp), count(DISTINCT site),
               (SELECT epoch(w1 - w0) FROM __ev_window),
               (SELECT sum(connectors) FROM __ev_cp),
               coalesce(sum(epoch(en - st)) FILTER (WHERE status = 'closed'), 0),
               sum(epoch(en - ce)) FILTER (WHERE ce IS NOT NULL AND status = 'closed'),
               sum(epoch(en - st)) FILTER (WHERE ce IS NOT NULL AND status = 'closed'),
               CAST(min(st) AS VARCHAR), CAST(max(coalesce(en, st)) AS VARCHAR)
        FROM __ev_s""").fetchall()[0]
    assert row is not None
    (sessions, open_, kwh, cps, sites, seconds, connectors, occupied, idle, idle_base,
     first, last) = row
    available = float(connectors or 0) * float(seconds or 0)
    return {
        "sessions": int(sessions), "open_sessions": int(open_),
        "closed_sessions": int(sessions) - int(open_), "energy_kwh": float(kwh),
        "charge_points": int(cps), "sites": int(sites), "connectors": int(connectors or 0),
        "seconds": float(seconds or 0.0),
        "utilisation": occupied / available if available else None,
        "idle_share": (idle / idle_base) if idle is not None and idle_base else None,
        "first": first, "last": last,
    }


def drop_temp(ctx: PipelineContext) -> None:
    """Drop the temporary tables of this module."""
    for name in ("__ev_s", "__ev_cp", "__ev_window", "__ev_occ", "__ev_slots"):
        ctx.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
