"""Sections of the city's state: air quality, the lake (the monitoring view) and KPIs."""

from __future__ import annotations

from typing import Any

import numpy as np

from hubctl.report.maps import Basemap, MapFrame
from hubctl.report.safety import band_buttons
from hubctl.report.source import Source
from hubctl.report.style import CATEGORY, DASHES, SEQUENTIAL, SYMBOLS, Section

__all__ = ["air_quality", "city_kpis", "lake_overview"]

# grade -> (colour, symbol): light to dark in grey, hue-safe, and a symbol per grade.
_GRADES = {1: ("#56B4E9", "circle"), 2: ("#F0E442", "square"), 3: ("#E69F00", "diamond"),
           4: ("#8B1A00", "x")}
_CLUSTER_KM = 150.0


def air_quality(source: Source, basemap: Basemap) -> Section | None:
    """Stations as traffic lights now, daily means per station with the WHO guideline, and
    an exceedance calendar (from the ``air_quality`` pipeline's latest run)."""
    run = source.latest_run("air_quality")
    if run is None:
        from hubctl.report.airlake import air_quality_from_lake

        return air_quality_from_lake(source, basemap)
    lights = source.derived(run, "lights", where="pollutant = 'overall'", order="id")
    means = source.derived(run, "means", where="period = 'day'", order="pollutant, id, start")
    limits = source.derived(run, "exceedances", "DISTINCT pollutant, threshold, unit",
                            where="level = 'AQG' AND averaging = '24h'")
    if lights is None or means is None or lights.num_rows + means.num_rows == 0:
        return None
    tz = run.params.get("timezone", "UTC")
    section = Section("air_quality", "Air quality", run,
                      intro="The stations' Korean CAI grade now (traffic lights), daily means "
                            "per station with the WHO 2021 24-hour guideline, and the days "
                            "above it.")
    names = _station_names(source)
    guideline = {r["pollutant"]: (r["threshold"], r["unit"]) for r in limits.to_pylist()} \
        if limits is not None else {}
    for i, fig in enumerate(_light_maps(source, basemap, lights.to_pylist(), names)):
        section.chart(f"lights-{i}", fig)
    m = means.to_pydict()
    if m["id"]:
        section.chart("daily-means", _means_chart(m, names, guideline, tz))
        section.chart("exceedance-calendar", _calendar(m, names, guideline, tz))
    return section


def _station_names(source: Source) -> dict[str, str]:
    if not source.has("AirQualityObserved_latest"):
        return {}
    rows = source.rows("SELECT id, lon, lat FROM AirQualityObserved_latest")
    from urllib.parse import unquote

    return {r["id"]: unquote(r["id"].rsplit(":", 1)[-1]) for r in rows}


def _light_maps(source: Source, basemap: Basemap, lights: list[dict[str, Any]],
                names: dict[str, str]) -> list[Any]:
    """One map per group of stations within ~150 km of each other (a lake may hold cities
    on several continents)."""
    import plotly.graph_objects as go

    if not source.has("AirQualityObserved_latest"):
        return []
    where = {r["id"]: (r["lon"], r["lat"]) for r in source.rows(
        "SELECT id, lon, lat FROM AirQualityObserved_latest WHERE lon IS NOT NULL")}
    rows = [{**r, "lon": where[r["id"]][0], "lat": where[r["id"]][1]}
            for r in lights if r["id"] in where]
    groups = station_groups(rows)
    figs = []
    for group in groups:
        frame = MapFrame(basemap, [where[r["id"]][0] for r in group],
                         [where[r["id"]][1] for r in group])
        traces = []
        for grade, (colour, symbol) in _GRADES.items():
            sel = [r for r in group if r["grade"] == grade]
            if not sel:
                continue
            x, y = frame.xy([where[r["id"]][0] for r in sel], [where[r["id"]][1] for r in sel])
            label = sel[0]["grade_name"]
            traces.append(go.Scatter(
                x=x, y=y, mode="markers+text", name=f"CAI grade {grade}: {label}",
                text=[names.get(r["id"], r["id"]) for r in sel], textposition="top center",
                customdata=[[r["cai"], r["driven_by"] or "", str(r["observed_at"])[:16]]
                            for r in sel],
                hovertemplate="%{text}<br>CAI %{customdata[0]} (" + label + "), driven by "
                              "%{customdata[1]}<br>at %{customdata[2]} UTC<extra></extra>",
                marker={"size": 18, "color": colour, "symbol": symbol,
                        "line": {"width": 1.5, "color": "black"}}))
        if traces:
            figs.append(frame.figure(traces, "Stations now: Korean CAI grade (latest hour)",
                                     height=480))
    return figs


def station_groups(rows: list[dict[str, Any]], most: int = 4) -> list[list[dict[str, Any]]]:
    """Rows with ``lon``/``lat`` in groups within ~150 km of each group's first station (a
    lake may hold cities on several continents), the largest ``most`` groups first."""
    groups: list[list[dict[str, Any]]] = []
    for r in rows:
        for g in groups:
            if abs(r["lat"] - g[0]["lat"]) * 111 < _CLUSTER_KM and abs(
                    r["lon"] - g[0]["lon"]) * 111 * np.cos(np.radians(r["lat"])) < _CLUSTER_KM:
                g.append(r)
                break
        else:
            groups.append([r])
    return sorted(groups, key=len, reverse=True)[:most]


def _means_chart(m: dict[str, list[Any]], names: dict[str, str],
                 guideline: dict[str, tuple[float, str]], tz: str) -> Any:
    import plotly.graph_objects as go

    pollutants = list(dict.fromkeys(m["pollutant"]))
    fig = go.Figure()
    ids = list(dict.fromkeys(m["id"]))
    pol = np.asarray(m["pollutant"], dtype=object)
    sid = np.asarray(m["id"], dtype=object)
    per_band = len(ids) + 1
    for b, p in enumerate(pollutants):
        unit = ""
        for k, station in enumerate(ids):
            sel = np.flatnonzero((pol == p) & (sid == station))
            unit = m["unit"][sel[0]] if len(sel) else unit
            fig.add_trace(go.Scatter(
                x=[m["start"][i] for i in sel], y=[m["mean"][i] for i in sel],
                mode="lines+markers", name=names.get(station, station), visible=b == 0,
                legendgroup=station, showlegend=True,
                line={"color": CATEGORY[k % len(CATEGORY)], "dash": DASHES[k % len(DASHES)]},
                marker={"symbol": SYMBOLS[k % len(SYMBOLS)], "size": 6},
                hovertemplate=f"%{{x|%Y-%m-%d}}: %{{y:.3~g}} {unit}<extra>%{{fullData.name}}"
                              "</extra>"))
        limit = guideline.get(p)
        xs = [m["start"][i] for i in np.flatnonzero(pol == p)]
        fig.add_trace(go.Scatter(
            x=[min(xs), max(xs)] if xs and limit else [], y=[limit[0], limit[0]] if limit else [],
            mode="lines", name=f"WHO 24-h guideline ({limit[0]:g} {limit[1]})" if limit
            else "no 24-h guideline", visible=b == 0,
            line={"color": "black", "dash": "longdash", "width": 2}, hoverinfo="skip"))
    band_buttons(fig, pollutants, per_band, 0, 0)
    units = {p: m["unit"][m["pollutant"].index(p)] for p in pollutants}
    fig.update_layout(
        title="Daily mean per station (choose the pollutant)", height=460, template="simple_white",
        xaxis={"title": f"day ({tz})", "tickformat": "%Y-%m-%d"},
        yaxis={"title": "daily mean (" + ", ".join(f"{p}: {u}" for p, u in units.items()) + ")"})
    return fig


def _calendar(m: dict[str, list[Any]], names: dict[str, str],
              guideline: dict[str, tuple[float, str]], tz: str) -> Any:
    import plotly.graph_objects as go

    pollutants = [p for p in dict.fromkeys(m["pollutant"]) if p in guideline] \
        or list(dict.fromkeys(m["pollutant"]))
    pol = np.asarray(m["pollutant"], dtype=object)
    fig = go.Figure()
    for b, p in enumerate(pollutants):
        sel = np.flatnonzero(pol == p)
        days = sorted({m["start"][i] for i in sel})
        ids = list(dict.fromkeys(m["id"][i] for i in sel))
        z = np.full((len(ids), len(days)), np.nan)
        raw = np.full(z.shape, np.nan)
        limit = guideline.get(p, (None, ""))[0]
        for i in sel:
            r, c = ids.index(m["id"][i]), days.index(m["start"][i])
            raw[r, c] = m["mean"][i] if m["mean"][i] is not None else np.nan
            z[r, c] = raw[r, c] / limit if limit else raw[r, c]
        fig.add_trace(go.Heatmap(
            z=z, x=days, y=[names.get(i, i) for i in ids], customdata=raw, visible=b == 0,
            colorscale=SEQUENTIAL, zmin=0,  # a day without a valid mean is NaN: initial=0
            zmax=max(2.0, float(np.nanmax(z, initial=0.0))) if limit else None,
            name=p, hoverongaps=False,
            hovertemplate="%{y}, %{x|%Y-%m-%d}: %{customdata:.3~g} "
                          f"{m['unit'][sel[0]]} (%{{z:.2f}} × guideline)<extra>{p}</extra>",
            colorbar={"title": {"text": "daily mean ÷ WHO<br>24-h guideline" if limit
                                else "daily mean"}}))
    band_buttons(fig, pollutants, 1, 0, 0)
    fig.update_layout(title="Exceedance calendar: daily mean against the WHO guideline "
                            "(≥ 1 is above)", height=120 + 40 * len(set(m["id"])),
                      template="simple_white",
                      xaxis={"title": f"day ({tz})", "tickformat": "%Y-%m-%d", "dtick": 86400000},
                      yaxis={"title": "station"})
    return fig


def lake_overview(source: Source, basemap: Basemap) -> Section | None:
    """The monitoring view: tables, row counts, time spans, last run and rejects per source."""
    import plotly.graph_objects as go

    tables = [v for v in sorted(source.catalog.views)
              if not v.startswith("_") and not v.endswith("_latest")]
    if not tables:
        return None
    section = Section("lake", "The lake", None,
                      intro="Every table of the lake with its rows and time span, and the last "
                            "run and rejects of each source (from <code>_runs</code> and "
                            "<code>_rejects</code>).")
    rows = []
    for t in tables:
        r = source.rows(f'SELECT count(*) AS n, min(observed_at) AS a, max(observed_at) AS b '
                        f'FROM "{t}"')[0] if _has_observed(source, t) else \
            {**source.rows(f'SELECT count(*) AS n FROM "{t}"')[0], "a": None, "b": None}
        rows.append([t, r["n"], _ts(r["a"]), _ts(r["b"])])
    fig = go.Figure(go.Bar(x=[r[1] for r in rows], y=[r[0] for r in rows], orientation="h",
                           marker={"color": CATEGORY[0]},
                           hovertemplate="%{y}: %{x:,} rows<extra></extra>"))
    fig.update_layout(title="Rows per table", height=200 + 30 * len(rows),
                      template="simple_white",
                      xaxis={"title": "rows (count, log scale)", "type": "log"},
                      yaxis={"title": "table", "autorange": "reversed"})
    section.chart("rows", fig)
    section.table("tables", ["table", "rows", "first observed_at (UTC)",
                             "last observed_at (UTC)"], rows)
    if source.has("_runs"):
        runs = source.rows(
            "SELECT source, adapter, run_id, status, finished_at, read, written, updated, "
            "duplicate, rejected FROM _runs QUALIFY row_number() OVER (PARTITION BY source "
            "ORDER BY started_at DESC) = 1 ORDER BY source")
        section.table("last-runs", ["source", "adapter", "last run", "status", "finished (UTC)",
                                    "read", "written", "updated", "duplicate", "rejected"],
                      [[r["source"], r["adapter"], r["run_id"], r["status"],
                        _ts(r["finished_at"]), r["read"], r["written"], r["updated"],
                        r["duplicate"], r["rejected"]] for r in runs])
    if source.has("_rejects"):
        rej = source.rows("SELECT source, count(*) AS n, string_agg(DISTINCT codes, ', ') AS c "
                          "FROM _rejects GROUP BY source ORDER BY source")
        if rej:
            section.table("rejects", ["source", "rejected records", "codes"],
                          [[r["source"], r["n"], (r["c"] or "")[:200]] for r in rej])
    return section


def _has_observed(source: Source, table: str) -> bool:
    cols = source.table(f'SELECT * FROM "{table}" LIMIT 0').column_names
    return "observed_at" in cols


def _ts(value: Any) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else value


def city_kpis(source: Source, basemap: Basemap) -> Section | None:
    """The ``city_kpis`` table of the latest run, and how many are computable per dimension."""
    import plotly.graph_objects as go

    run = source.latest_run("city_kpis")
    if run is None:
        return None
    kpis = source.derived(run, "kpis", order="dimension, category, subcategory, kpi")
    if kpis is None or kpis.num_rows == 0:
        return None
    section = Section("city_kpis", "City KPIs (ITU U4SSC)", run,
                      intro="Key performance indicators computed from the lake; the ones that "
                            "cannot be computed say what they need.")
    k = kpis.to_pylist()
    dims = list(dict.fromkeys(r["dimension"] for r in k))
    yes = [sum(1 for r in k if r["dimension"] == d and r["computable"]) for d in dims]
    no = [sum(1 for r in k if r["dimension"] == d and not r["computable"]) for d in dims]
    fig = go.Figure([
        go.Bar(y=dims, x=yes, orientation="h", name="computed", marker={"color": CATEGORY[0]},
               hovertemplate="%{y}: %{x} computed<extra></extra>"),
        go.Bar(y=dims, x=no, orientation="h", name="not computable from this lake",
               marker={"color": "#cccccc", "pattern": {"shape": "x"}},
               hovertemplate="%{y}: %{x} not computable<extra></extra>")])
    fig.update_layout(title="KPIs per dimension", barmode="stack", height=260,
                      template="simple_white", xaxis={"title": "KPIs (count)"},
                      yaxis={"title": "dimension"})
    section.chart("computable", fig)
    section.table("kpis", ["dimension", "KPI", "value", "unit", "period", "from", "note"],
                  [[r["dimension"], r["kpi"], r["value"], r["unit"], r["period"], r["data"],
                    r["note"] or r["coverage"]] for r in k])
    return section
