"""The ``dispatch_coverage`` section: per time band, the road network reached within the
target from the stations (and with the what-if stations), the vulnerable cells, and the
share of calls reached before and after.

The road network reached is recomputed here from the lake's ``RoadSegment`` with the run's
own parameters and the pipeline's own graph code (:mod:`hubctl.pipelines.roads`), so the
map draws exactly what the run counted (``nodes_covered`` of ``derived.dispatch_coverage_
bands``) as long as the roads have not changed since the run."""

from __future__ import annotations

from typing import Any

import numpy as np

from hubctl.report.grid import cell_heatmap
from hubctl.report.maps import Basemap, MapFrame
from hubctl.report.safety import band_buttons
from hubctl.report.source import Run, Source
from hubctl.report.style import CATEGORY, Section

__all__ = ["dispatch_coverage", "reached_per_band"]


def reached_per_band(source: Source, run: Run, stations: list[int], extra: list[int]
                     ) -> tuple[Any, list[str], list[np.ndarray], list[np.ndarray]]:
    """(graph, band names, nodes reached before, nodes reached after) per band of ``run``:
    ``stations`` and ``extra`` are OSM node ids of the sources before and added after."""
    from hubctl.pipelines.roads import (
        SEGMENT_SQL,
        build_graph,
        parse_bands,
        parse_class_speeds,
    )

    p = run.params
    graph = build_graph(source.table(SEGMENT_SQL), parse_class_speeds(p.get("class_speeds", [])),
                        bool(p.get("use_maxspeed", True)))
    bands = parse_bands(p.get("bands", ["00-24:1.0"]))
    target = float(p.get("target_minutes", 5.0)) * 60

    def index(osm: list[int]) -> np.ndarray:
        ids = np.asarray(osm, dtype=np.int64)
        pos = np.searchsorted(graph.node_osm, ids)
        ok = (pos < len(graph.node_osm)) & (graph.node_osm[np.minimum(
            pos, len(graph.node_osm) - 1)] == ids)
        return pos[ok]

    before, after = index(stations), index(stations + extra)
    return (graph, [b.name for b in bands],
            [graph.reachable(before, target, b.factor) for b in bands],
            [graph.reachable(after, target, b.factor) for b in bands])


def dispatch_coverage(source: Source, basemap: Basemap) -> Section | None:
    """Maps per band of the roads reached and the vulnerable cells; coverage by band."""
    run = source.latest_run("dispatch_coverage")
    if run is None or not source.has("RoadSegment"):
        return None
    bands_t = source.derived(run, "bands", order="start_hour")
    st = source.derived(run, "stations", order="id")
    if bands_t is None or st is None or bands_t.num_rows == 0:
        return None
    cells = source.derived(run, "cells", order="band, cell")
    whatif = source.derived(run, "whatif", order="site")
    s = st.to_pydict()
    w = whatif.to_pydict() if whatif is not None else {"action": [], "road_node": [],
                                                       "lon": [], "lat": [], "site": []}
    added = [n for a, n in zip(w["action"], w["road_node"], strict=True) if a == "add"]
    graph, names, before, after = reached_per_band(source, run, list(s["road_node"]), added)
    minutes = run.params.get("target_minutes", 5.0)
    tz = run.params.get("timezone", "UTC")
    section = Section("dispatch_coverage", "Dispatch coverage", run,
                      intro=f"Roads reached within {minutes:g} minutes from the "
                            f"{run.params.get('kind', 'station')}s per time band (drawn from "
                            "RoadSegment with this run's parameters), with the what-if "
                            "stations, and the cells whose calls are out of reach.")
    frame = MapFrame(basemap, [*graph.lon, *s["lon"]], [*graph.lat, *s["lat"]], margin=0.04)
    c = cells.to_pydict() if cells is not None else {"band": []}
    traces: list[Any] = []
    for b, name in enumerate(names):
        traces += _band_traces(frame, graph, before[b], after[b], c, name, b == 0)
    fixed = _stations(frame, s, w)
    fig = frame.figure([*traces, *fixed], f"Reached within {minutes:g} min, by time band "
                                          f"({tz})")
    band_buttons(fig, names, 3, len(fig.data) - len(traces) - len(fixed), len(fixed))
    section.chart("map", fig)
    section.chart("coverage", _chart(bands_t.to_pydict(), minutes, tz))
    return section


def _edges(frame: MapFrame, graph: Any, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src, dst = graph.src[mask], graph.dst[mask]
    lon = np.column_stack([graph.lon[src], graph.lon[dst], np.full(len(src), np.nan)]).ravel()
    lat = np.column_stack([graph.lat[src], graph.lat[dst], np.full(len(src), np.nan)]).ravel()
    return frame.xy(lon, lat)


def _band_traces(frame: MapFrame, graph: Any, before: np.ndarray, after: np.ndarray,
                 c: dict[str, list[Any]], name: str, visible: bool) -> list[Any]:
    import plotly.graph_objects as go

    both = before[graph.src] & before[graph.dst]
    new = after[graph.src] & after[graph.dst] & ~both
    x1, y1 = _edges(frame, graph, both)
    x2, y2 = _edges(frame, graph, new)
    band = np.asarray(c["band"], dtype=object)
    m = band == name
    cell_km = 0.2
    if len(c["band"]) and "cell" in c:
        size = str(c["cell"][0]).split("m:", 1)[0]
        cell_km = float(size) / 1000 if size.replace(".", "").isdigit() else cell_km
    heat = cell_heatmap(
        frame, np.asarray(c.get("centre_lon", []), dtype=np.float64)[m],
        np.asarray(c.get("centre_lat", []), dtype=np.float64)[m],
        100 * np.asarray(c.get("out_of_reach_share", []), dtype=np.float64)[m], cell_km,
        name=f"cells {name}", label="calls out of reach (%)",
        extra=np.asarray(c.get("calls", []), dtype=np.float64)[m], extra_label="calls",
        zmin=0, zmax=100, visible=visible)
    return [
        heat,
        go.Scatter(x=x1, y=y1, mode="lines", name="road reached by the stations",
                   legendgroup="before", showlegend=visible, visible=visible,
                   hoverinfo="skip", line={"color": CATEGORY[0], "width": 2.5}),
        go.Scatter(x=x2, y=y2, mode="lines", name="reached only with the what-if stations",
                   legendgroup="after", showlegend=visible, visible=visible, hoverinfo="skip",
                   line={"color": CATEGORY[1], "width": 2.5, "dash": "dash"})]


def _stations(frame: MapFrame, s: dict[str, list[Any]], w: dict[str, list[Any]]) -> list[Any]:
    import plotly.graph_objects as go

    x, y = frame.xy(s["lon"], s["lat"])
    out = [go.Scatter(x=x, y=y, mode="markers", name="station", text=s["name"],
                      customdata=s["calls_reached"],
                      hovertemplate="%{text}: reaches %{customdata} calls<extra></extra>",
                      marker={"symbol": "square", "size": 12, "color": "black",
                              "line": {"color": "white", "width": 1}})]
    add = [i for i, a in enumerate(w["action"]) if a == "add"]
    if add:
        ax, ay = frame.xy([w["lon"][i] for i in add], [w["lat"][i] for i in add])
        out.append(go.Scatter(x=ax, y=ay, mode="markers", name="what-if station (added)",
                              text=[w["site"][i] for i in add], hovertemplate="%{text}"
                              "<extra>what-if</extra>",
                              marker={"symbol": "triangle-up", "size": 13,
                                      "color": CATEGORY[2], "line": {"color": "black",
                                                                     "width": 1}}))
    return out


def _chart(b: dict[str, list[Any]], minutes: float, tz: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure([
        go.Bar(x=b["band"], y=[100 * (v or 0) for v in b["call_coverage"]], name="before",
               marker={"color": "#b8b8b8", "pattern": {"shape": "/"}},
               hovertemplate="%{x}: %{y:.1f}% of calls before<extra></extra>"),
        go.Bar(x=b["band"], y=[100 * (v or 0) for v in b["call_coverage_after"]],
               name="with the what-if stations", marker={"color": CATEGORY[0]},
               hovertemplate="%{x}: %{y:.1f}% of calls after<extra></extra>")])
    fig.update_layout(title=f"Calls reached within {minutes:g} min, by time band",
                      barmode="group", height=380, template="simple_white",
                      xaxis={"title": f"time band (hours, {tz} local time)", "type": "category"},
                      yaxis={"title": f"share of calls reached within {minutes:g} min (%)",
                             "range": [0, 100]})
    return fig
