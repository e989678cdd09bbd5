"""The ``energy`` pipeline: consumption per meter and site, EV charging, city KPIs.

Inputs: ``MeterReadingObserved`` (greenbutton, meter-readings) and/or ``EVChargingSession``
(ev-sessions); optional ``EVChargingStation`` (connectors) and ``PopulationCell`` (residents).

Tables: meter_daily, meter_monthly, meters, site_daily, site_monthly, anomalies, ev_hourly,
ev_charge_points, ev_sites, kpis. The summary holds the headline figures and the U4SSC-style
KPIs: electricity consumption per capita per year and the share of EV charging energy.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import pyarrow as pa

from hubctl.pipeline import Param, PipelineContext, PipelineResult
from hubctl.pipelines import energy_ev, energy_meters
from hubctl.pipelines.energy_schemas import KPI_SCHEMA, SCHEMAS, empty

__all__ = ["PIPELINE", "Energy"]

YEAR_S = 365.25 * 86400


class Energy:
    """Consumption and EV charging analytics with city KPIs."""

    name = "energy"
    summary = ("Meters and sites: daily/monthly kWh, peak share, load factor, base load, "
               "anomalous days; EV charging occupancy and utilisation; kWh per capita.")
    inputs = ("MeterReadingObserved|EVChargingSession",)
    optional_inputs = ("MeterReadingObserved", "EVChargingSession", "EVChargingStation",
                       "PopulationCell")
    params = (
        Param("timezone", "UTC", "IANA time zone of days, hours and tariff windows, e.g. "
              "Asia/Seoul."),
        Param("peak_windows", ["08-22"], "Peak tariff windows in local time, comma-separated "
              "HH[:MM]-HH[:MM] (may wrap midnight), e.g. 10-12,13-17.", kind="list"),
        Param("peak_weekends", False, "Whether the peak windows also apply on Saturdays and "
              "Sundays."),
        Param("base_load_quantile", 0.05, "Quantile of interval demand (kW) taken as the base "
              "load.", minimum=0.0, maximum=0.5),
        Param("anomaly_z", 3.5, "Robust z-score (modified z, 0.6745 (x - median) / MAD) from "
              "which a day is anomalous for its meter.", minimum=0.5),
        Param("anomaly_min_days", 14, "Days of the same kind (weekday/weekend) a meter needs "
              "before its days are judged.", minimum=3),
        Param("population", 0.0, "City population for per-capita KPIs; 0 = residents from "
              "PopulationCell in the lake, if any.", minimum=0.0),
        Param("population_dataset", "", "PopulationCell dataset to take residents from "
              "(default: the largest)."),
    )
    example = ("hubctl run energy --param timezone=Asia/Seoul --param peak_windows=10-12,13-17 "
               "--param population=2370000 --json")

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Run the meter and EV analytics present in the lake, then the KPIs."""
        p = ctx.params
        tz = ctx.timezone(str(p["timezone"]))
        tables: dict[str, pa.Table] = {name: empty(name) for name in SCHEMAS}
        summary: dict[str, Any] = {"timezone": tz}
        notes: list[str] = []
        meters: dict[str, Any] | None = None
        ev: dict[str, Any] | None = None
        if ctx.has("MeterReadingObserved"):
            ctx.step("meter consumption")
            meters = _meters(ctx, tz, tables)
            summary["meters"] = meters
        else:
            notes.append("no MeterReadingObserved table: consumption tables are empty")
        if ctx.has("EVChargingSession"):
            ctx.step("EV charging")
            ev = _ev(ctx, tz, tables)
            summary["ev"] = ev
        else:
            notes.append("no EVChargingSession table: EV tables are empty")
        population, source = _population(ctx, notes)
        kpis = _kpis(meters, ev, population, source)
        tables["kpis"] = pa.Table.from_pylist(kpis, schema=KPI_SCHEMA)
        summary["kpis"] = {k["kpi"]: k["value"] for k in kpis}
        summary["population"] = {"value": population, "source": source}
        for name in ("__energy_meter_daily", "__energy_meter_monthly"):
            ctx.con.unregister(name)
        ctx.con.execute("DROP TABLE IF EXISTS __energy_local").fetchall()
        energy_ev.drop_temp(ctx)
        return PipelineResult(tables={k: _conform(k, v) for k, v in tables.items()},
                              summary=summary, notes=notes)


def _meters(ctx: PipelineContext, tz: str, tables: dict[str, pa.Table]) -> dict[str, Any]:
    p = ctx.params
    windows = energy_meters.parse_windows(list(p["peak_windows"]))
    peak = energy_meters.peak_condition(windows, bool(p["peak_weekends"]))
    q = float(p["base_load_quantile"])
    daily, monthly = energy_meters.meter_tables(ctx, tz, peak, q)
    tables["meter_daily"], tables["meter_monthly"] = daily, monthly
    tables["meters"] = energy_meters.meters_summary(ctx)
    tables["site_daily"], tables["site_monthly"] = energy_meters.site_tables(ctx, q)
    found = energy_meters.anomalies(ctx, float(p["anomaly_z"]), int(p["anomaly_min_days"]))
    tables["anomalies"] = found
    totals = energy_meters.totals(ctx)
    per_meter = tables["meters"]
    row = ctx.con.execute("""
        SELECT sum(peak_kwh) / nullif(sum(peak_kwh) + sum(offpeak_kwh), 0),
               median(load_factor), median(base_load_kw), count(DISTINCT site)
        FROM __energy_meter_monthly""").fetchall()[0]
    assert row is not None
    # each meter's load factor over its whole period (mean / peak demand; for a year of
    # readings the annual load factor), the median over meters when there are several
    factors = [v for v in per_meter.column("load_factor").to_pylist()
               if v is not None and math.isfinite(v)]
    load_factor = statistics.median(factors) if factors else None
    return {
        "meters": totals["meters"], "readings": totals["readings"],
        "kwh": round(totals["kwh"], 3), "export_kwh": round(totals["export_kwh"], 3),
        "kwh_per_year": round(totals["kwh_per_year"], 3),
        "days": int(ctx.scalar("SELECT count(DISTINCT day) FROM __energy_meter_daily") or 0),
        "first": totals["first"], "last": totals["last"],
        "sites": int(row[3] or 0),
        "peak_share": _round(row[0]), "load_factor": _round(load_factor),
        "monthly_load_factor_median": _round(row[1]),
        "base_load_kw_median": _round(row[2]),
        "anomalous_days": found.num_rows,
        "meters_with_anomalies": len(set(found.column("meter").to_pylist())),
        "meter_rows": per_meter.num_rows,
    }


def _ev(ctx: PipelineContext, tz: str, tables: dict[str, pa.Table]) -> dict[str, Any]:
    tables.update(energy_ev.ev_tables(ctx, tz))
    totals = energy_ev.ev_totals(ctx)
    for key in ("energy_kwh", "utilisation", "idle_share"):
        totals[key] = _round(totals[key])
    return totals


def _population(ctx: PipelineContext, notes: list[str]) -> tuple[float | None, str]:
    given = float(ctx.params["population"] or 0)
    if given > 0:
        return given, "parameter"
    if not ctx.has("PopulationCell"):
        notes.append("no population: pass --param population=N for per-capita KPIs")
        return None, "none"
    rows = ctx.con.execute("""
        SELECT dataset, sum(population) FROM PopulationCell_latest
        WHERE kind = 'residents' AND hour IS NULL GROUP BY dataset ORDER BY 2 DESC, 1
        """).fetchall()
    wanted = str(ctx.params["population_dataset"] or "")
    if wanted:
        rows = [r for r in rows if r[0] == wanted]
    if not rows or not rows[0][1]:
        notes.append("PopulationCell has no all-day residents figures"
                     + (f" for dataset {wanted}" if wanted else "")
                     + ": per-capita KPIs left empty")
        return None, "none"
    if len(rows) > 1:
        notes.append(f"PopulationCell has {len(rows)} datasets; used {rows[0][0]} "
                     "(the largest); choose one with --param population_dataset=NAME")
    return float(rows[0][1]), f"PopulationCell:{rows[0][0]}"


def _kpis(meters: dict[str, Any] | None, ev: dict[str, Any] | None,
          population: float | None, source: str) -> list[dict[str, Any]]:
    """U4SSC-style KPIs, each with its value, unit and how it was computed."""
    out: list[dict[str, Any]] = []
    per_year = None
    if meters and meters["kwh_per_year"] > 0:
        per_year = meters["kwh_per_year"]
        out.append(_kpi("electricity_kwh_per_year", per_year, "kWh/year",
                        "each meter's consumption annualised over the hours its readings "
                        "cover, summed over meters"))
        if population:
            out.append(_kpi("electricity_kwh_per_capita_year", per_year / population,
                            "kWh/person/year", f"annual consumption / population ({source})"))
    ev_year = None
    if ev and ev["seconds"] > 0:
        ev_year = ev["energy_kwh"] * YEAR_S / ev["seconds"]
        out.append(_kpi("ev_charging_kwh_per_year", ev_year, "kWh/year",
                        "EV charging energy annualised over the period the sessions cover"))
        out.append(_kpi("ev_utilisation", ev["utilisation"], "ratio",
                        "occupied connector-hours / available connector-hours"))
        if population:
            out.append(_kpi("ev_charging_kwh_per_capita_year", ev_year / population,
                            "kWh/person/year", f"annual EV energy / population ({source})"))
    if per_year and ev_year is not None:
        out.append(_kpi("ev_energy_ratio", ev_year / per_year, "ratio",
                        "annualised EV charging energy / annualised metered consumption (a "
                        "ratio, not a share: above 1 when the chargers serve more people "
                        "than the meters measure)"))
    return out


def _kpi(name: str, value: float | None, unit: str, how: str) -> dict[str, Any]:
    return {"kpi": name, "value": _round(value), "unit": unit, "definition": how}


def _round(value: Any, digits: int = 6) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def _conform(name: str, table: pa.Table) -> pa.Table:
    """Derived tables keep one schema whether or not their input was present."""
    schema = SCHEMAS[name]
    if table.num_rows == 0:
        return empty(name)
    return table.select(schema.names).cast(schema)


PIPELINE = Energy()
