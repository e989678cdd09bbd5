"""Sections of the public-safety analyses: ``patrol_points`` and ``dispatch_coverage``."""

from __future__ import annotations

from typing import Any

import numpy as np

from hubctl.report.grid import cell_heatmap
from hubctl.report.maps import Basemap, MapFrame
from hubctl.report.source import Source
from hubctl.report.style import CATEGORY, Section

__all__ = ["band_buttons", "patrol_points"]

# action -> (legend label, colour, symbol)
_ACTIONS = {
    "keep": ("kept", "#000000", "circle"),
    "add": ("added", CATEGORY[2], "triangle-up"),
    "move": ("moved from", CATEGORY[1], "x-open"),
    "move-to": ("moved to", CATEGORY[0], "diamond"),
    "remove": ("removed", CATEGORY[3], "x"),
}


def band_buttons(fig: Any, bands: list[str], per_band: int, fixed_before: int,
                 fixed_after: int) -> None:
    """Buttons that show one band's traces at a time; ``per_band`` traces per band follow
    ``fixed_before`` always-visible traces and precede ``fixed_after`` more."""
    buttons = []
    for b, band in enumerate(bands):
        vis = [True] * fixed_before
        for other in range(len(bands)):
            vis += [other == b] * per_band
        vis += [True] * fixed_after
        buttons.append({"label": band, "method": "restyle", "args": [{"visible": vis}]})
    fig.update_layout(updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                                    "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
                                    "showactive": True}])


def _band_order(bands: list[str], params: dict[str, Any]) -> list[str]:
    declared = [b for b in params.get("bands", []) if b in bands]
    return declared + sorted(b for b in bands if b not in declared)


def patrol_points(source: Source, basemap: Basemap) -> Section | None:
    """Hotspot cells per band (Gi* z), existing and recommended points, coverage by band."""
    run = source.latest_run("patrol_points")
    if run is None:
        return None
    hot = source.derived(run, "hotspots", order="band, cell")
    points = source.derived(run, "points", order="site")
    if hot is None or points is None or hot.num_rows + points.num_rows == 0:
        return None
    tz = run.params.get("timezone", "UTC")
    section = Section("patrol_points", "Patrol points", run,
                      intro="Hotspot cells of the calls (Getis-Ord Gi* z-score per time band), "
                            "the existing patrol points and the recommended ones.")
    h = hot.to_pydict()
    p = points.to_pydict()
    frame = MapFrame(basemap, [*h["lon"], *p["lon"]], [*h["lat"], *p["lat"]])
    bands = _band_order(sorted(set(h["band"])), run.params)
    cell_km = float(h["cell_m"][0]) / 1000 if h["cell_m"] else 0.25
    z_all = np.asarray(h["gi_z"], dtype=np.float64)
    finite = z_all[np.isfinite(z_all)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    traces = _hotspot_traces(frame, h, bands, cell_km, zmin, zmax)
    fixed = _point_traces(frame, p)
    fig = frame.figure([*traces, *fixed], f"Hotspots and patrol points (time bands in {tz})")
    band_buttons(fig, bands, 2, len(fig.data) - len(traces) - len(fixed), len(fixed))
    section.chart("map", fig)
    coverage = source.derived(run, "coverage", order="band")
    if coverage is not None and coverage.num_rows:
        section.chart("coverage", _coverage_chart(coverage.to_pydict(), bands, tz))
    return section


def _hotspot_traces(frame: MapFrame, h: dict[str, list[Any]], bands: list[str],
                    cell_km: float, zmin: float, zmax: float) -> list[Any]:
    import plotly.graph_objects as go

    band = np.asarray(h["band"], dtype=object)
    lon = np.asarray(h["lon"], dtype=np.float64)
    lat = np.asarray(h["lat"], dtype=np.float64)
    hotspot = np.asarray(h["hotspot"], dtype=bool)
    traces = []
    for b, name in enumerate(bands):
        m = band == name
        traces.append(cell_heatmap(
            frame, lon[m], lat[m], np.asarray(h["gi_z"], dtype=np.float64)[m], cell_km,
            name=f"band {name}", label="Gi* z-score", extra=np.asarray(h["calls"])[m],
            extra_label="calls", zmin=zmin, zmax=zmax, visible=b == 0))
        x, y = frame.xy(lon[m & hotspot], lat[m & hotspot])
        traces.append(go.Scatter(
            x=x, y=y, mode="markers", name="hotspot cell (significant)", visible=b == 0,
            showlegend=b == 0, legendgroup="hotspot", hoverinfo="skip",
            marker={"symbol": "square-open", "size": 7, "color": "black",
                    "line": {"width": 1}}))
    return traces


def _point_traces(frame: MapFrame, p: dict[str, list[Any]]) -> list[Any]:
    import plotly.graph_objects as go

    traces: list[Any] = []
    by_site = {s: i for i, s in enumerate(p["site"])}
    xs, ys = frame.xy(p["lon"], p["lat"])
    lx: list[float | None] = []
    ly: list[float | None] = []
    for i, action in enumerate(p["action"]):
        j = by_site.get(p["paired_with"][i]) if action == "move" else None
        if j is not None:
            lx += [float(xs[i]), float(xs[j]), None]
            ly += [float(ys[i]), float(ys[j]), None]
    if lx:
        traces.append(go.Scatter(x=lx, y=ly, mode="lines", name="move", hoverinfo="skip",
                                 line={"color": CATEGORY[1], "dash": "dot", "width": 2}))
    for action, (label, colour, symbol) in _ACTIONS.items():
        idx = [i for i, a in enumerate(p["action"]) if a == action]
        if not idx:
            continue
        names = [p["name"][i] or p["site"][i] for i in idx]
        traces.append(go.Scatter(
            x=xs[idx], y=ys[idx], mode="markers", name=f"patrol point {label}",
            text=names, customdata=[p["nearest_calls_after"][i] for i in idx],
            hovertemplate=f"%{{text}}<br>{label}<br>nearest for %{{customdata}} calls "
                          "after<extra></extra>",
            marker={"symbol": symbol, "size": 13, "color": colour,
                    "line": {"width": 1.5, "color": "white" if symbol != "x-open" else colour}}))
    return traces


def _coverage_chart(c: dict[str, list[Any]], bands: list[str], tz: str) -> Any:
    import plotly.graph_objects as go

    order = [b for b in bands if b in c["band"]] + [b for b in c["band"] if b not in bands]
    idx = [c["band"].index(b) for b in order]
    unit = c["unit"][0] if c["unit"] else ""
    limit = c["limit"][0] if c["limit"] else None
    what = f"within {limit:g} {unit}" if limit is not None else "covered"
    fig = go.Figure([
        go.Bar(x=order, y=[100 * (c["share_before"][i] or 0) for i in idx], name="before",
               marker={"color": "#b8b8b8", "pattern": {"shape": "/"}},
               hovertemplate="%{x}: %{y:.1f}% before<extra></extra>"),
        go.Bar(x=order, y=[100 * (c["share_after"][i] or 0) for i in idx], name="after",
               marker={"color": CATEGORY[0]},
               hovertemplate="%{x}: %{y:.1f}% after<extra></extra>")])
    fig.update_layout(title=f"Calls {what} of a patrol point, by time band", barmode="group",
                      height=380, template="simple_white",
                      xaxis={"title": f"time band (hours, {tz} local time)", "type": "category"},
                      yaxis={"title": f"share of calls {what} (%)", "range": [0, 100]})
    return fig


