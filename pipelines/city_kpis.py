"""``city_kpis``: the U4SSC key performance indicators for smart sustainable cities that the
lake can support (Recommendation ITU-T Y.4903 and the U4SSC "Collection Methodology for Key
Performance Indicators for Smart Sustainable Cities"), in the U4SSC layout, each with its
definition, unit, period, value, the data behind it and its coverage. KPIs the lake cannot
support are listed as not computable, with what data would make them so.

Environment KPIs come from the derived tables of ``air_quality`` and energy KPIs from those of
``energy`` (run them first); transport KPIs from GTFS, ``PopulationCell`` and
``EVChargingStation``; safety KPIs from calls (``Alert``) with dispatch and arrival times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.spatial import cKDTree

from hubctl.geo import haversine_m
from hubctl.pipeline import Param, PipelineContext, PipelineResult
from hubctl.pipelines.energy import _population
from hubctl.pipelines.geo import projection_for

__all__ = ["PIPELINE", "CityKpis", "KPI_SCHEMA"]

KPI_SCHEMA = pa.schema([
    ("dimension", pa.string()), ("category", pa.string()), ("subcategory", pa.string()),
    ("kpi", pa.string()), ("value", pa.float64()), ("unit", pa.string()),
    ("period", pa.string()), ("computable", pa.bool_()), ("note", pa.string()),
    ("definition", pa.string()), ("data", pa.string()), ("coverage", pa.string()),
])
ENV, ECO, SOC = "Environment", "Economy", "Society and Culture"
Kpi = dict[str, Any]


def _kpi(dimension: str, category: str, sub: str, kpi: str, unit: str, definition: str,
         value: float | None = None, period: str | None = None, note: str | None = None,
         data: str | None = None, coverage: str | None = None) -> Kpi:
    ok = value is not None and math.isfinite(value)
    return {"dimension": dimension, "category": category, "subcategory": sub, "kpi": kpi,
            "value": round(float(value), 6) if ok and value is not None else None,
            "unit": unit, "period": period, "computable": ok, "note": note,
            "definition": definition, "data": data, "coverage": coverage}


def _derived(ctx: PipelineContext, name: str) -> bool:
    return bool(ctx.scalar("SELECT count(*) FROM information_schema.tables WHERE "
                           "table_schema = 'derived' AND table_name = ?", [name]))


def _air(ctx: PipelineContext) -> list[Kpi]:
    """Annual mean concentrations (city: mean over stations with a complete year) and the
    share of station-days above the WHO 24-hour guideline, for the latest year."""
    sub = ("Environment", "Air quality")
    labels = {"pm25": "PM2.5", "pm10": "PM10", "no2": "NO2", "o3": "O3", "so2": "SO2"}
    defn = ("annual mean concentration of {p}: mean over monitoring stations of each "
            "station's annual mean (75 % of the year's days valid, each day 75 % of its hours)")
    if not _derived(ctx, "air_quality_means"):
        why = ("run `hubctl run air_quality` first" if ctx.has("AirQualityObserved") else
               "needs hourly air-quality measurements (AirQualityObserved: airkorea, openaq, "
               "ngsi-ld adapters), then `hubctl run air_quality`")
        out = [_kpi(ENV, *sub, f"Air pollution: {lab}", "µg/m³", defn.format(p=lab), note=why)
               for lab in labels.values()]
        return out + [_kpi(ENV, *sub, f"Days above WHO guideline: {lab}", "%",
                           "share of station-days above the WHO 2021 24-hour guideline",
                           note=why) for lab in ("PM2.5", "PM10")]
    rows = ctx.con.execute("""
        WITH y AS (SELECT pollutant, max(start) FILTER (WHERE mean IS NOT NULL) AS year
                   FROM derived.air_quality_means WHERE period = 'year' GROUP BY pollutant)
        SELECT m.pollutant, y.year, avg(m.mean), count(m.mean), count(*)
        FROM derived.air_quality_means m JOIN y ON y.pollutant = m.pollutant
             AND m.start = y.year
        WHERE m.period = 'year' GROUP BY ALL""").fetchall()
    got = {r[0]: r for r in rows}
    out = []
    for p, lab in labels.items():
        r = got.get(p)
        if r is None or r[1] is None:
            out.append(_kpi(ENV, *sub, f"Air pollution: {lab}", "µg/m³", defn.format(p=lab),
                            note=f"no station has a complete year of {lab} (75 % of days)",
                            data="derived.air_quality_means"))
            continue
        out.append(_kpi(ENV, *sub, f"Air pollution: {lab}", "µg/m³", defn.format(p=lab),
                        r[2], str(r[1])[:4], data="derived.air_quality_means",
                        coverage=f"{r[3]} of {r[4]} stations with a complete year"))
    days = {r[0]: r for r in ctx.con.execute("""
        SELECT pollutant, max(year), sum(days_above), sum(valid_days) FROM
        derived.air_quality_exceedances
        WHERE averaging = '24h' AND level = 'AQG' AND pollutant IN ('pm25', 'pm10')
              AND year = (SELECT max(year) FROM derived.air_quality_exceedances)
        GROUP BY pollutant""").fetchall()} if _derived(ctx, "air_quality_exceedances") else {}
    for p in ("pm25", "pm10"):
        r = days.get(p)
        share = 100.0 * r[2] / r[3] if r and r[3] else None
        out.append(_kpi(ENV, *sub, f"Days above WHO guideline: {labels[p]}", "%",
                        f"share of station-days whose daily mean {labels[p]} is above the WHO "
                        "2021 24-hour guideline", share, str(r[1])[:4] if r else None,
                        None if share is not None else f"no valid daily {labels[p]} means",
                        "derived.air_quality_exceedances",
                        f"{r[3]} valid station-days" if r else None))
    return out


def _energy(ctx: PipelineContext) -> list[Kpi]:
    sub = ("Energy", "Energy")
    meters = ("meter readings (MeterReadingObserved: greenbutton, meter-readings)",
              "MeterReadingObserved")
    ev = ("EV charging sessions (EVChargingSession: ev-sessions)", "EVChargingSession")
    wanted = {"electricity_kwh_per_capita_year": ("Electricity consumption",
                                                  "kWh/inhabitant/year", meters, True),
              "ev_charging_kwh_per_year": ("EV charging energy", "kWh/year", ev, False),
              "ev_charging_kwh_per_capita_year": ("EV charging energy per inhabitant",
                                                  "kWh/inhabitant/year", ev, True)}
    ran = _derived(ctx, "energy_kpis")
    have: dict[str, tuple[float, str]] = {}
    if ran:
        have = {r[0]: (r[1], r[2]) for r in ctx.con.execute(
            "SELECT kpi, value, definition FROM derived.energy_kpis").fetchall()}
    out = []
    for key, (name, unit, (what, table), per_capita) in wanted.items():
        if key in have and have[key][0] is not None:
            out.append(_kpi(ENV, *sub, name, unit, have[key][1], have[key][0],
                            "annualised over the data", data="derived.energy_kpis"))
            continue
        if ctx.has(table) and not ran:
            why = "run `hubctl run energy` first"
        else:
            why = f"needs {what}" + (" and the population (PopulationCell or --param "
                                     "population=N of energy)" if per_capita else "")
            why += ", then `hubctl run energy`"
        out.append(_kpi(ENV, *sub, name, unit, "from the energy pipeline", note=why))
    return out


def _row(table: pa.Table) -> tuple[Any, ...]:
    """The first row of a query's result as a tuple (as ``fetchall()[0]`` gives it)."""
    return tuple(table.slice(0, 1).to_pylist()[0].values())


def _network_km(ctx: PipelineContext) -> tuple[float, int] | None:
    """Length of the network: distinct consecutive stop pairs of the trips, straight line."""
    if not (ctx.has("GtfsStopTime") and ctx.has("GtfsStop")):
        return None
    t = ctx.aggregate("""
        WITH st AS (SELECT hasTrip, hasStop, stopSequence FROM GtfsStopTime_latest),
        pairs AS (SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b FROM (
            SELECT hasStop AS a, lead(hasStop) OVER (PARTITION BY hasTrip
                                                   ORDER BY stopSequence) AS b FROM st)
            WHERE b IS NOT NULL AND a <> b)
        SELECT s1.lon AS lon1, s1.lat AS lat1, s2.lon AS lon2, s2.lat AS lat2
        FROM pairs JOIN GtfsStop_latest s1 ON s1.id = pairs.a
                   JOIN GtfsStop_latest s2 ON s2.id = pairs.b""")
    if t.num_rows == 0:
        return None
    d = haversine_m(t["lon1"].to_numpy(), t["lat1"].to_numpy(), t["lon2"].to_numpy(),
                    t["lat2"].to_numpy())
    return float(np.nansum(d)) / 1000.0, t.num_rows


def _regular_stops(ctx: PipelineContext, departures: int) -> tuple[np.ndarray, np.ndarray]:
    """Stops with at least ``departures`` scheduled departures on one service day (the busiest
    service of the stop)."""
    t = ctx.aggregate("""
        WITH dep AS (SELECT st.hasStop AS stop, t.hasService AS service, count(*) AS n
                     FROM GtfsStopTime_latest st JOIN GtfsTrip_latest t ON t.id = st.hasTrip
                     GROUP BY ALL),
        busiest AS (SELECT stop, max(n) AS n FROM dep GROUP BY stop)
        SELECT s.lon, s.lat FROM busiest b JOIN GtfsStop_latest s ON s.id = b.stop
        WHERE b.n >= ? AND s.lon IS NOT NULL ORDER BY s.id""", [departures])
    return t["lon"].to_numpy(), t["lat"].to_numpy()


def _transport(ctx: PipelineContext, population: float | None, source: str,
               departures: int) -> list[Kpi]:
    sub = ("Infrastructure", "Transport")
    out = []
    gtfs = ("needs a GTFS feed (GtfsStop, GtfsTrip, GtfsStopTime: `hubctl ingest gtfs`)")
    net = _network_km(ctx)
    per = 100_000 / population if population else None
    out.append(_kpi(ECO, *sub, "Public transport network", "km/100,000 inhabitants",
                    "length of the public transport network (distinct stop-to-stop segments "
                    "of the scheduled trips, straight line) per 100,000 inhabitants",
                    net[0] * per if net and per else None, None,
                    None if net and per else (gtfs if not net else "needs the population: "
                                              "PopulationCell or --param population=N"),
                    "GtfsStopTime, GtfsStop", f"{net[1]} segments, population from {source}"
                    if net else None))
    conv_note, conv, cov = None, None, None
    if not (ctx.has("GtfsStopTime") and ctx.has("GtfsTrip")):
        conv_note = gtfs
    elif not ctx.has("PopulationCell"):
        conv_note = "needs residents per cell (PopulationCell: `hubctl ingest population`)"
    else:
        lon, lat = _regular_stops(ctx, departures)
        cells = ctx.sql("""SELECT lon, lat, population FROM PopulationCell_latest
                           WHERE kind = 'residents' AND hour IS NULL AND lon IS NOT NULL""")
        people = cells["population"].to_numpy(zero_copy_only=False).astype(float)
        if people.sum() > 0:
            if len(lon):
                proj = projection_for(np.r_[lon, cells["lon"].to_numpy()],
                                      np.r_[lat, cells["lat"].to_numpy()])
                d, _ = cKDTree(np.column_stack(proj.to_xy(lon, lat))).query(
                    np.column_stack(proj.to_xy(cells["lon"].to_numpy(),
                                               cells["lat"].to_numpy())), k=1)
                conv = 100.0 * float(people[d <= 500.0].sum()) / float(people.sum())
            else:
                conv = 0.0
            cov = f"{len(lon)} stops with regular service, {len(people)} population cells"
        else:
            conv_note = "PopulationCell has no all-day residents"
    out.append(_kpi(ECO, *sub, "Public transport network convenience", "%",
                    "share of residents within 0.5 km (straight line) of a stop with regular "
                    f"service (at least {departures} scheduled departures on its busiest "
                    "service day, i.e. every 20 minutes over 12 hours)", conv, None, conv_note,
                    "GtfsStopTime, GtfsTrip, GtfsStop, PopulationCell", cov))
    points = ctx.scalar("SELECT sum(coalesce(socketNumber, 1)) FROM EVChargingStation_latest"
                        ) if ctx.has("EVChargingStation") else None
    out.append(_kpi(ECO, *sub, "EV charging points", "per 100,000 inhabitants",
                    "charging points (sockets; a station without socketNumber counts as one) "
                    "per 100,000 inhabitants", float(points) * per if points and per else None,
                    None, None if points and per else (
                        "needs EV charging stations (EVChargingStation: ev-sessions "
                        "--stations, ngsi-ld)" if not points else "needs the population"),
                    "EVChargingStation", None))
    return out


def _safety(ctx: PipelineContext, population: float | None) -> list[Kpi]:
    sub = ("Health", "Safety")
    if not ctx.has("Alert"):
        note = ("needs emergency calls with dispatch and arrival times (Alert: `hubctl ingest "
                "calls`)")
        return [_kpi(SOC, *sub, f"Emergency service response time ({q})", "minutes",
                     "time from the call to the first unit's arrival", note=note)
                for q in ("median", "90th percentile")] + [
            _kpi(SOC, *sub, "Emergency calls", "per 100,000 inhabitants per year",
                 "calls for service by category", note=note)]
    row = _row(ctx.aggregate("""
        SELECT quantile_cont(m, 0.5), quantile_cont(m, 0.9), count(m), count(*),
               min(t), max(t)
        FROM (SELECT coalesce(responseTime / 60.0,
                              (epoch_us(dateArrived) - epoch_us(dateIssued)) / 60e6) AS m,
                     coalesce(dateIssued, observed_at) AS t
              FROM Alert_latest)
        """))
    period = f"{str(row[4])[:10]}/{str(row[5])[:10]}" if row[4] else None
    out = [_kpi(SOC, *sub, f"Emergency service response time ({q})", "minutes",
                "time from the call to the first unit's arrival (responseTime, else "
                "dateArrived - dateIssued)", v, period,
                None if v is not None else "no call has both its time and an arrival time",
                "Alert", f"{row[2]} of {row[3]} calls with an arrival time")
           for q, v in (("median", row[0]), ("90th percentile", row[1]))]
    years = (row[5] - row[4]).total_seconds() / (365.25 * 86400) if row[4] else 0
    # a lake written before callType existed holds the call type in subCategory
    stored = set(ctx.sql("SELECT * FROM Alert_latest LIMIT 0").column_names)
    kinds = ", ".join(c for c in ("callType", "subCategory", "category") if c in stored)
    cats = [tuple(r.values()) for r in ctx.aggregate(
        f"SELECT coalesce({kinds}, 'unknown'), count(*) FROM Alert_latest "
        "GROUP BY ALL ORDER BY 2 DESC, 1").to_pylist()]
    for cat, n in cats:
        rate = n / years / population * 100_000 if population and years > 0 else None
        out.append(_kpi(SOC, *sub, f"Emergency calls: {cat}",
                        "per 100,000 inhabitants per year",
                        "calls for service of this type (callType as published, else SDM's "
                        "subCategory, else category), "
                        "annualised over the period "
                        "the calls cover", rate, period,
                        None if rate is not None else "needs the population and calls "
                        "spanning more than an instant", "Alert", f"{n} calls"))
    return out


NOT_COMPUTABLE: list[tuple[str, str, str, str, str, str]] = [
    (ENV, "Environment", "Air quality", "Greenhouse gas emissions", "tCO2eq/inhabitant/year",
     "a GHG emission inventory by sector"),
    (ENV, "Environment", "Noise", "Noise exposure", "%",
     "noise measurements or strategic noise maps with residents per cell"),
    (ENV, "Energy", "Energy", "Renewable energy consumption", "%",
     "electricity consumption by generation source (renewable share)"),
    (ENV, "Environment", "Water and sanitation", "Drinking water consumption",
     "l/day/inhabitant", "water meter readings"),
    (ENV, "Environment", "Waste", "Solid waste", "t/inhabitant/year",
     "collected waste tonnages"),
    (SOC, "Health", "Safety", "Violent crime rate", "per 100,000 inhabitants",
     "recorded crimes by type (calls for service are not crimes)"),
    (ECO, "Infrastructure", "Transport", "Public transport ridership", "trips/inhabitant/year",
     "boardings for the whole network over a full year (StopBoardings covering every stop)"),
]


class CityKpis:
    """The ``city_kpis`` pipeline."""

    name = "city_kpis"
    summary = ("U4SSC smart-sustainable-city KPIs the lake supports (air quality, energy, "
               "transport, safety), the rest listed as not computable with what would do it.")
    inputs = ("AirQualityObserved|GtfsStop|EVChargingStation|MeterReadingObserved|"
              "EVChargingSession|Alert|PopulationCell",)
    optional_inputs = ("AirQualityObserved", "GtfsStop", "GtfsTrip", "GtfsStopTime",
                       "EVChargingStation", "MeterReadingObserved", "EVChargingSession",
                       "Alert", "PopulationCell")
    derived_inputs = ("derived.air_quality_means", "derived.air_quality_exceedances",
                      "derived.energy_kpis")
    params = (
        Param("population", 0.0, "City population for per-inhabitant KPIs; 0 = residents from "
              "PopulationCell.", minimum=0.0),
        Param("population_dataset", "", "PopulationCell dataset to take residents from "
              "(default: the largest)."),
        Param("regular_departures", 36, "Scheduled departures on a service day from which a "
              "stop has regular service (36 = every 20 minutes over 12 hours).", minimum=1),
    )
    example = "hubctl run city_kpis --param population=2370000 --json"

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Every KPI family, then the not-computable list."""
        notes: list[str] = []
        population, source = _population(ctx, notes)
        steps: list[tuple[str, Callable[[], list[Kpi]]]] = [
            ("air quality", lambda: _air(ctx)), ("energy", lambda: _energy(ctx)),
            ("transport", lambda: _transport(ctx, population, source,
                                             int(ctx.params["regular_departures"]))),
            ("safety", lambda: _safety(ctx, population))]
        kpis: list[Kpi] = []
        for label, fn in steps:
            ctx.step(label)
            kpis += fn()
        kpis += [_kpi(d, c, s, k, u, "U4SSC KPI", note=f"needs {what}")
                 for d, c, s, k, u, what in NOT_COMPUTABLE]
        table = pa.Table.from_pylist(kpis, schema=KPI_SCHEMA)
        done = [k for k in kpis if k["computable"]]
        summary = {"computable": len(done), "not_computable": len(kpis) - len(done),
                   "population": {"value": population, "source": source},
                   "kpis": {k["kpi"]: k["value"] for k in done}}
        return PipelineResult(tables={"kpis": table}, summary=summary, notes=notes)


PIPELINE = CityKpis()
