"""The air-quality section when the ``air_quality`` pipeline has not run: the stations'
latest values, daily means per station and pollutant with the WHO 2021 24-hour guideline
(:data:`hubctl.pipelines.aq_standards.WHO_2021`) and the exceedance calendar, all computed
from the lake's ``AirQualityObserved`` (days in UTC)."""

from __future__ import annotations

from typing import Any

from hubctl.report.maps import Basemap, MapFrame
from hubctl.report.source import Source
from hubctl.report.style import SEQUENTIAL, Section

__all__ = ["air_quality_from_lake"]

POLLUTANTS = ("pm25", "pm10", "no2", "o3", "so2", "co")
_SYMBOLS = {"GQ": "µg/m³", "GP": "mg/m³"}


def _units() -> dict[str, str]:
    from hubctl.registry import get_type

    attrs = get_type("AirQualityObserved").attributes
    return {p: _SYMBOLS.get(attrs[p].unit or "", attrs[p].unit or "") for p in POLLUTANTS
            if p in attrs}


def air_quality_from_lake(source: Source, basemap: Basemap) -> Section | None:
    """Latest values on a map, daily means and the exceedance calendar from the lake."""
    from hubctl.pipelines.aq_standards import WHO_2021
    from hubctl.report.city import _calendar, _means_chart, _station_names, station_groups

    if not source.has("AirQualityObserved"):
        return None
    columns = set(source.table("SELECT * FROM AirQualityObserved LIMIT 0").column_names)
    present = [p for p in POLLUTANTS if p in columns]
    if not present:
        return None
    units = _units()
    section = Section("air_quality", "Air quality (from the lake)", None,
                      intro="The <code>air_quality</code> pipeline has not run on this lake: "
                            "the stations' latest measurements and daily means (UTC days) "
                            "straight from <code>AirQualityObserved</code>, with the WHO 2021 "
                            "24-hour guideline. Run <code>hubctl run air_quality</code> for "
                            "the indices and traffic lights.")
    names = _station_names(source)
    unions = " UNION ALL ".join(
        f"SELECT id, '{p}' AS pollutant, CAST(observed_at AS DATE) AS start, {p} AS v "
        f"FROM AirQualityObserved WHERE {p} IS NOT NULL" for p in present)
    m = source.table(f"SELECT id, pollutant, start, avg(v) AS mean FROM ({unions}) "
                     "GROUP BY ALL ORDER BY pollutant, id, start").to_pydict()
    if not m["id"]:
        return None
    m["unit"] = [units.get(p, "") for p in m["pollutant"]]
    guideline = {p: (dict(levels["24h"])["AQG"], units.get(p, ""))
                 for p, levels in WHO_2021.items() if "24h" in levels}
    main = present[0]
    latest = source.rows(f"SELECT id, lon, lat, {main} AS v, observed_at FROM "
                         f"AirQualityObserved WHERE {main} IS NOT NULL AND lon IS NOT NULL "
                         "QUALIFY row_number() OVER (PARTITION BY id ORDER BY observed_at "
                         "DESC) = 1 ORDER BY id")
    for i, group in enumerate(station_groups(latest)):
        section.chart(f"latest-{i}", _latest_map(basemap, group, names, main,
                                                 units.get(main, "")))
    section.chart("daily-means", _means_chart(m, names, guideline, "UTC"))
    section.chart("exceedance-calendar", _calendar(m, names, guideline, "UTC"))
    return section


def _latest_map(basemap: Basemap, rows: list[dict[str, Any]], names: dict[str, str],
                pollutant: str, unit: str) -> Any:
    import plotly.graph_objects as go

    frame = MapFrame(basemap, [r["lon"] for r in rows], [r["lat"] for r in rows])
    x, y = frame.xy([r["lon"] for r in rows], [r["lat"] for r in rows])
    trace = go.Scatter(
        x=x, y=y, mode="markers+text", name=f"station (colour: latest {pollutant})",
        text=[names.get(r["id"], r["id"]) for r in rows], textposition="top center",
        customdata=[[r["v"], str(r["observed_at"])[:16]] for r in rows],
        hovertemplate=f"%{{text}}<br>{pollutant} %{{customdata[0]:.3~g}} {unit}<br>at "
                      "%{customdata[1]} UTC<extra></extra>",
        marker={"size": 18, "color": [r["v"] for r in rows], "colorscale": SEQUENTIAL,
                "line": {"width": 1.5, "color": "black"},
                "colorbar": {"title": {"text": f"{pollutant} ({unit})"}}})
    return frame.figure([trace], f"Stations: latest {pollutant} ({unit})", height=480)
