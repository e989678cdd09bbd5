"""``air_quality``: indices per station and hour, traffic lights, means, WHO exceedances and
exposure.

1. Hourly indices (:mod:`pipelines.aq_indices`): the Korean CAI as AirKorea publishes it (PM
   from AirKorea's 24-hour predicted moving average by default), the US AQI (2024 PM2.5
   breakpoints, NowCast for PM, 8-hour and 1-hour ozone) and the European AQI (2023 bands).
2. Traffic lights: each station's latest CAI grade per pollutant and overall.
3. Daily and annual means with the 75 % completeness rule, days above each WHO 2021 level and
   annual means against the annual levels (:mod:`pipelines.aq_stats`).
4. Exposure: annual means interpolated to population cells and GTFS stops
   (:mod:`pipelines.aq_exposure`).

Tables: indices, lights, means, exceedances, exposure (``derived.air_quality_<table>``).
docs/air-quality.md gives every breakpoint and its source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.errors import UsageError
from hubctl.pipeline import Param, PipelineContext, PipelineResult
from hubctl.pipelines import aq_exposure, aq_stats
from hubctl.pipelines.aq_indices import CAI_PM_MODES, INDICES, hourly_indices, load_hours
from hubctl.pipelines.aq_standards import POLLUTANTS

__all__ = ["PIPELINE", "AirQuality"]


class AirQuality:
    """The ``air_quality`` pipeline."""

    name = "air_quality"
    summary = ("Air-quality indices per station and hour (Korean CAI, US AQI with NowCast, "
               "European AQI), traffic lights, daily/annual means, WHO 2021 exceedances, "
               "exposure of residents and bus stops.")
    inputs = ("AirQualityObserved",)
    optional_inputs = ("PopulationCell", "GtfsStop", "StopBoardings")
    params = (
        Param("timezone", "UTC", "IANA time zone of the days of daily and annual means, e.g. "
              "Asia/Seoul."),
        Param("index", list(INDICES), "Indices to compute, comma-separated: cai, us_aqi, eaqi.",
              kind="list"),
        Param("cai_pm", "c24e", "PM input of the CAI: c24e (AirKorea's 24-hour predicted moving "
              "average, as its real-time CAI), mean24h (24-hour mean), reported (the source's "
              "published 24-hour value, AirKorea pm10Value24/pm25Value24).",
              choices=CAI_PM_MODES),
        Param("population_dataset", "", "PopulationCell dataset for exposure (default: the "
              "largest).", aliases=("population",)),
        Param("radius_m", 5000.0, "Radius of the inverse-distance interpolation, metres.",
              minimum=1.0),
        Param("min_completeness", 0.75, "Share of hours a mean needs (of a day, of a running "
              "window) and share of days a year needs.", minimum=0.01, maximum=1.0),
    )
    example = ("hubctl run air_quality --param timezone=Asia/Seoul --param radius_m=5000 "
               "--assert \"indices.stations >= 1\" --json")

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Indices, lights, means, exceedances and exposure."""
        p = ctx.params
        tz = ctx.timezone(str(p["timezone"]))
        which = _indices(list(p["index"]))
        mc = float(p["min_completeness"])
        notes: list[str] = []
        ctx.step("hourly grid")
        grid = load_hours(ctx)
        hours = grid.num_rows
        ctx.step("indices")
        indices, stations = hourly_indices(grid, mc, str(p["cai_pm"]), which)
        del grid
        hourly = aq_stats.Hourly(indices)
        ctx.step("lights, means and exceedances")
        lights = aq_stats.lights(hourly)
        means, daily = aq_stats.means(ctx, hourly, tz, mc)
        exceed = aq_stats.exceedances(hourly, daily)
        del daily
        ctx.con.register("__aq_stations", stations)
        ctx.con.register("__aq_means", means)
        try:
            ctx.step("exposure")
            targets = [t for t in (aq_exposure.population_cells(ctx, str(p["population_dataset"]),
                                                                notes),
                                   aq_exposure.stops(ctx)) if t is not None]
            exposure = aq_exposure.exposure(ctx, targets, float(p["radius_m"]))
            summary = _summary(ctx, hourly, hours, which, tz, str(p["cai_pm"]), lights, exceed)
        finally:
            for name in ("__aq_means", "__aq_stations"):
                ctx.con.unregister(name)
        summary["exposure"] = aq_exposure.summarise(exposure, targets)
        if hours == 0:
            notes.append("AirQualityObserved has no rows with a time: every table is empty")
        if not targets:
            notes.append("no PopulationCell or GtfsStop in the lake: the exposure table is "
                         "empty")
        elif exposure.num_rows == 0:
            notes.append("no station has a complete annual mean (75 % of the year's days): "
                         "the exposure table is empty")
        if summary["means"]["complete_years"] == 0:
            notes.append("no station-year reaches the completeness rule: annual means are null "
                         "(see the note column of derived.air_quality_means)")
        return PipelineResult(
            tables={"indices": indices.drop_columns(list(POLLUTANTS)), "lights": lights,
                    "means": means,
                    "exceedances": exceed, "exposure": exposure},
            summary=summary, notes=notes)


def _indices(names: list[str]) -> tuple[str, ...]:
    bad = [n for n in names if n not in INDICES]
    if bad or not names:
        raise UsageError(f"--param index={','.join(names)}: choose from {', '.join(INDICES)}",
                         hint="for example --param index=cai,us_aqi")
    return tuple(n for n in INDICES if n in names)


def _summary(ctx: PipelineContext, hr: aq_stats.Hourly, hours: int, which: tuple[str, ...],
             tz: str, cai_pm: str, lights: pa.Table, exceed: pa.Table) -> dict[str, Any]:
    t = hr.table
    cai, grade = hr.column("cai"), hr.column("cai_grade")
    reported, reported_grade = hr.column("reported_cai"), hr.column("reported_cai_grade")
    has = ~np.isnan(cai)
    grades = np.bincount(grade[has].astype(np.int64), minlength=5)
    span = pc.min_max(t.column("observed_at"))
    overall = lights.filter(pc.equal(lights.column("pollutant").cast(pa.string()), "overall"))
    light_grades = np.bincount(overall.column("grade").to_numpy(), minlength=5)
    m = ctx.con.execute("""
        SELECT count(*) FILTER (WHERE period = 'day' AND complete),
               count(*) FILTER (WHERE period = 'day'),
               count(*) FILTER (WHERE period = 'year' AND complete),
               count(*) FILTER (WHERE period = 'year'),
               avg(mean) FILTER (WHERE period = 'year' AND pollutant = 'pm25')
        FROM __aq_means""").fetchall()[0]
    assert m is not None
    ctx.con.register("__aq_exc", exceed)
    ex = ctx.con.execute("""
        SELECT pollutant, averaging, level, count(*) FILTER (WHERE exceeds), count(exceeds),
               sum(days_above)
        FROM __aq_exc WHERE level = 'AQG' GROUP BY ALL ORDER BY ALL""").fetchall()
    ctx.con.unregister("__aq_exc")
    return {
        "timezone": tz, "computed": list(which), "cai_pm": cai_pm,
        "indices": {"stations": len(hr.starts), "hours": t.num_rows, "grid_hours": hours,
                    "first": span["min"], "last": span["max"], "cai_hours": int(has.sum()),
                    "us_aqi_hours": t.num_rows - t.column("us_aqi").null_count,
                    "eaqi_hours": t.num_rows - t.column("eaqi").null_count,
                    "cai_grades": {"good": grades[1], "moderate": grades[2],
                                   "unhealthy": grades[3], "very_unhealthy": grades[4]}},
        "reported": {"hours_with_both": int((has & ~np.isnan(reported)).sum()),
                     "cai_within_1": int((has & (np.abs(cai - reported) <= 1)).sum()),
                     "same_grade": int((has & (grade == reported_grade)).sum())},
        "lights": {str(g): int(n) for g, n in enumerate(light_grades) if n},
        "means": {"complete_days": m[0], "days": m[1], "complete_years": m[2], "years": m[3],
                  "pm25_annual_mean_of_stations": None if m[4] is None else round(m[4], 3)},
        "who_aqg": {f"{p}_{a}": {"station_years_exceeding": n, "station_years": of,
                                 "days_above": days}
                    for p, a, _, n, of, days in ex},
    }


PIPELINE = AirQuality()
