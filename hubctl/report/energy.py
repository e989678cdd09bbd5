"""The ``energy`` section: daily load curves, a calendar heat map of consumption and EV
charging occupancy by weekday and hour."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

from hubctl.report.maps import Basemap
from hubctl.report.safety import band_buttons
from hubctl.report.source import Run, Source
from hubctl.report.style import CATEGORY, DASHES, SEQUENTIAL, SYMBOLS, Section

__all__ = ["energy"]

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def energy(source: Source, basemap: Basemap) -> Section | None:
    """Load curves (from the lake's readings, in the run's time zone), consumption calendar
    (``derived.energy_site_daily``) and EV occupancy (``derived.energy_ev_hourly``)."""
    run = source.latest_run("energy")
    if run is None:
        return None
    section = Section("energy", "Energy", run,
                      intro="Mean load by hour of day per site, daily consumption as a "
                            "calendar, and EV charge-point occupancy by weekday and hour.")
    tz = str(run.params.get("timezone", "UTC"))
    if source.has("MeterReadingObserved"):
        curve = _load_curve(source, tz)
        if curve["site"]:
            section.chart("load-curves", _curve_chart(curve, tz))
    daily = source.derived(run, "site_daily", "site, day, kwh", order="site, day")
    if daily is not None and daily.num_rows:
        section.chart("calendar", _calendar(daily.to_pydict(), tz))
    ev = _occupancy(source, run)
    if ev is not None:
        section.chart("ev-occupancy", ev)
    return section if section.blocks else None


def _load_curve(source: Source, tz: str) -> dict[str, list[Any]]:
    """Mean kW per site and local hour of day (readings of an hour or less)."""
    return source.table(f"""
        WITH r AS (
            SELECT coalesce(site, '(no site)') AS site,
                   timezone('{tz.replace("'", "''")}', observed_at) AS t,
                   coalesce(activeEnergyImport, activeEnergyNet) * 3600.0 / intervalLength AS kw,
                   intervalLength AS secs
            FROM MeterReadingObserved
            WHERE intervalLength > 0 AND intervalLength <= 3600
              AND coalesce(activeEnergyImport, activeEnergyNet) IS NOT NULL)
        SELECT site, hour(t) AS hour,
               sum(kw * secs) / 3600.0 / count(DISTINCT CAST(t AS DATE)) AS kw
        FROM r GROUP BY ALL ORDER BY site, hour""").to_pydict()


def _curve_chart(c: dict[str, list[Any]], tz: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, site in enumerate(dict.fromkeys(c["site"])):
        idx = [i for i, s in enumerate(c["site"]) if s == site]
        fig.add_trace(go.Scatter(
            x=[c["hour"][i] for i in idx], y=[c["kw"][i] for i in idx], name=site,
            mode="lines+markers", line={"color": CATEGORY[k % len(CATEGORY)],
                                        "dash": DASHES[k % len(DASHES)]},
            marker={"symbol": SYMBOLS[k % len(SYMBOLS)]},
            hovertemplate="%{x}:00: %{y:.3~g} kW<extra>%{fullData.name}</extra>"))
    fig.update_layout(title="Daily load curve: mean load by hour of day", height=380,
                      template="simple_white",
                      xaxis={"title": f"hour of day ({tz})", "dtick": 2, "range": [-0.5, 23.5]},
                      yaxis={"title": "mean load (kW)", "rangemode": "tozero"})
    return fig


def _calendar(d: dict[str, list[Any]], tz: str) -> Any:
    """Weeks across, weekdays down, one heat map per site (buttons)."""
    import plotly.graph_objects as go

    sites = list(dict.fromkeys(d["site"]))
    fig = go.Figure()
    for b, site in enumerate(sites):
        days: list[date] = [d["day"][i] for i, s in enumerate(d["site"]) if s == site]
        kwh = [d["kwh"][i] for i, s in enumerate(d["site"]) if s == site]
        first = min(days) - timedelta(days=min(days).weekday())
        weeks = (max(days) - first).days // 7 + 1
        z = np.full((7, weeks), np.nan)
        for day, v in zip(days, kwh, strict=True):
            z[day.weekday(), (day - first).days // 7] = np.nan if v is None else v
        fig.add_trace(go.Heatmap(
            z=z, x=[f"{first + timedelta(weeks=w):%Y-%m-%d}" for w in range(weeks)], y=_DAYS,
            colorscale=SEQUENTIAL, visible=b == 0, name=site, hoverongaps=False, xgap=2,
            ygap=2, hovertemplate="week of %{x}, %{y}: %{z:,.1f} kWh"
                                  f"<extra>{site}</extra>",
            colorbar={"title": {"text": "consumption (kWh/day)"}}))
    band_buttons(fig, sites, 1, 0, 0)
    fig.update_layout(title="Consumption calendar (kWh per day, by site)", height=330,
                      template="simple_white",
                      xaxis={"title": f"week starting (Monday, {tz})", "type": "category"},
                      yaxis={"title": "weekday", "autorange": "reversed"})
    return fig


def _occupancy(source: Source, run: Run) -> Any:
    import plotly.graph_objects as go

    if not source.has("derived.energy_ev_hourly"):
        return None
    rows = source.rows("SELECT weekday, hour, sum(occupied_hours) AS occ, "
                       "sum(available_hours) AS avail FROM derived.energy_ev_hourly "
                       "WHERE _run_id = ? AND level = 'site' GROUP BY ALL", [run.run_id])
    if not rows:
        return None
    z = np.full((7, 24), np.nan)
    for r in rows:
        if r["avail"]:
            z[int(r["weekday"]) - 1, int(r["hour"])] = 100.0 * r["occ"] / r["avail"]
    tz = run.params.get("timezone", "UTC")
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(24)), y=_DAYS, colorscale=SEQUENTIAL, zmin=0, zmax=100,
        hoverongaps=False, xgap=1, ygap=1,
        hovertemplate="%{y} %{x}:00: %{z:.0f}% of charge-point hours occupied<extra></extra>",
        colorbar={"title": {"text": "occupancy (%)"}}))
    fig.update_layout(title="EV charging occupancy by weekday and hour (all sites)",
                      height=330, template="simple_white",
                      xaxis={"title": f"hour of day ({tz})", "dtick": 2},
                      yaxis={"title": "weekday", "autorange": "reversed"})
    return fig
