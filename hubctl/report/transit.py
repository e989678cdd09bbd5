"""The ``bus_routes`` section: routes drawn from their shapes (else their stops in order),
coloured by the recommendation, uncovered demand, new-service candidates, and headways
before and after the reallocation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hubctl.report.maps import Basemap, MapFrame
from hubctl.report.source import Run, Source
from hubctl.report.style import CATEGORY, SEQUENTIAL, Section

__all__ = ["bus_routes", "recommendations"]

# recommendation -> (legend label, colour, dash, width)
_KINDS = {
    "remove": ("remove", CATEGORY[3], "dashdot", 3.0),
    "shorten": ("shorten", CATEGORY[1], "dash", 3.0),
    "more frequent": ("reallocate: more frequent", CATEGORY[0], "solid", 4.0),
    "less frequent": ("reallocate: less frequent", CATEGORY[5], "dot", 3.0),
    "keep": ("keep", "#000000", "solid", 1.5),
}


def recommendations(source: Source, run: Run) -> dict[str, str]:
    """Route URN -> remove, shorten, more frequent, less frequent or keep (the first that
    applies, in that order)."""
    out: dict[str, str] = {}
    removals = source.derived(run, "removals", "route, kind")
    for r in removals.to_pylist() if removals is not None else []:
        if out.get(r["route"]) != "remove":
            out[r["route"]] = "remove" if r["kind"] == "remove" else "shorten"
    realloc = source.derived(run, "reallocation", "route, change")
    for r in realloc.to_pylist() if realloc is not None else []:
        if r["route"] not in out and r["change"] in ("more frequent", "less frequent"):
            out[r["route"]] = r["change"]
    return out


def _geometry(source: Source) -> dict[str, tuple[list[float], list[float]]]:
    """Route URN -> (lons, lats): its longest trip's shape, else that trip's stops in order."""
    if not all(source.has(t) for t in ("GtfsTrip_latest", "GtfsStopTime", "GtfsStop_latest")):
        return {}
    rows = source.rows("""
        WITH n AS (SELECT hasTrip, count(DISTINCT stopSequence) AS n FROM GtfsStopTime
                   GROUP BY hasTrip),
        best AS (SELECT t.hasRoute AS route, t.id AS trip, t.hasShape AS shape FROM n
                 JOIN GtfsTrip_latest t ON t.id = n.hasTrip
                 QUALIFY row_number() OVER (PARTITION BY t.hasRoute ORDER BY n.n DESC, t.id)
                         = 1)
        SELECT DISTINCT b.route, b.shape, st.stopSequence AS seq, s.lon, s.lat
        FROM best b JOIN GtfsStopTime st ON st.hasTrip = b.trip
        JOIN GtfsStop_latest s ON s.id = st.hasStop
        WHERE s.lon IS NOT NULL ORDER BY b.route, seq""")
    shapes: dict[str, Any] = {}
    wanted = sorted({r["shape"] for r in rows if r["shape"]})
    if wanted and source.has("GtfsShape_latest"):
        for r in source.rows("SELECT id, location FROM GtfsShape_latest WHERE id IN (SELECT "
                             "unnest(?::VARCHAR[]))", [wanted]):
            try:
                geom = json.loads(r["location"])
            except (TypeError, ValueError):
                continue
            if geom.get("type") == "LineString":
                shapes[r["id"]] = geom["coordinates"]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for r in rows:
        if r["shape"] in shapes:
            coords = shapes[r["shape"]]
            out[r["route"]] = ([c[0] for c in coords], [c[1] for c in coords])
            continue
        lons, lats = out.setdefault(r["route"], ([], []))
        lons.append(r["lon"])
        lats.append(r["lat"])
    return out


def bus_routes(source: Source, basemap: Basemap) -> Section | None:
    """Routes by recommendation, uncovered demand, candidates; headways before and after."""
    run = source.latest_run("bus_routes")
    if run is None:
        return None
    routes = source.derived(run, "routes", "DISTINCT route, short_name, name", order="route")
    stops = source.derived(run, "stops", "stop, name, lon, lat, departures_per_day, frequent")
    if routes is None or stops is None or routes.num_rows == 0:
        return None
    section = Section("bus_routes", "Bus routes", run,
                      intro="Routes coloured by the recommendation, the populated cells no "
                            "frequent stop serves and the candidates for new service.")
    rec = recommendations(source, run)
    geometry = _geometry(source)
    names = {r["route"]: f"{r['short_name'] or ''} {r['name'] or ''}".strip() or r["route"]
             for r in routes.to_pylist()}
    s = stops.to_pydict()
    unc = source.derived(run, "uncovered", order="cell")
    new = source.derived(run, "new_service", order="candidate")
    u = unc.to_pydict() if unc is not None else {"lon": [], "lat": [], "population": []}
    c = new.to_pydict() if new is not None else {"lon": [], "lat": []}
    frame = MapFrame(basemap, [*s["lon"], *u["lon"], *c["lon"]],
                     [*s["lat"], *u["lat"], *c["lat"]])
    traces = _route_traces(frame, geometry, rec, names)
    traces += _point_traces(frame, s, u, c)
    section.chart("map", frame.figure(traces, "Routes by recommendation"))
    realloc = source.derived(run, "reallocation", order="route")
    if realloc is not None and realloc.num_rows:
        section.chart("headways", _headways(realloc.to_pydict(), run))
    return section


def _route_traces(frame: MapFrame, geometry: dict[str, tuple[list[float], list[float]]],
                  rec: dict[str, str], names: dict[str, str]) -> list[Any]:
    import plotly.graph_objects as go

    traces = []
    for kind, (label, colour, dash, width) in _KINDS.items():
        mine = [r for r in sorted(geometry) if rec.get(r, "keep") == kind and r in names]
        if not mine:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        text: list[str] = []
        for r in mine:
            x, y = frame.xy(*geometry[r])
            xs += [*x.tolist(), None]
            ys += [*y.tolist(), None]
            text += [names[r]] * (len(x) + 1)
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=f"route: {label}", text=text,
                                 hovertemplate=f"%{{text}}: {label}<extra></extra>",
                                 line={"color": colour, "dash": dash, "width": width}))
    return traces


def _point_traces(frame: MapFrame, s: dict[str, list[Any]], u: dict[str, list[Any]],
                  c: dict[str, list[Any]]) -> list[Any]:
    import plotly.graph_objects as go

    out = []
    if u["lon"]:
        x, y = frame.xy(u["lon"], u["lat"])
        pop = np.asarray(u["population"], dtype=np.float64)
        out.append(go.Scatter(
            x=x, y=y, mode="markers", name="uncovered populated cell", customdata=pop,
            hovertemplate="%{customdata:,.0f} people without a frequent stop<extra></extra>",
            marker={"symbol": "square", "size": 11, "color": pop, "colorscale": SEQUENTIAL,
                    "line": {"color": "black", "width": 0.5},
                    "colorbar": {"title": {"text": "uncovered people"}}}))
    x, y = frame.xy(s["lon"], s["lat"])
    freq = np.asarray(s["frequent"], dtype=bool)
    out.append(go.Scatter(
        x=x, y=y, mode="markers", name="stop (filled: frequent)", text=s["name"],
        customdata=s["departures_per_day"],
        hovertemplate="%{text}: %{customdata:.0f} departures per day<extra></extra>",
        marker={"symbol": np.where(freq, "circle", "circle-open").tolist(), "size": 7,
                "color": "#333333"}))
    if c["lon"]:
        x, y = frame.xy(c["lon"], c["lat"])
        out.append(go.Scatter(
            x=x, y=y, mode="markers", name="new-service candidate",
            customdata=np.column_stack([c["uncovered_population"], c["action"]]),
            hovertemplate="candidate: %{customdata[1]}, %{customdata[0]:,.0f} people"
                          "<extra></extra>",
            marker={"symbol": "star", "size": 16, "color": CATEGORY[2],
                    "line": {"color": "black", "width": 1}}))
    return out


def _headways(r: dict[str, list[Any]], run: Run) -> Any:
    import plotly.graph_objects as go

    label = [f"{n or ''}".strip() or rid for n, rid in zip(r["short_name"], r["route_id"],
                                                           strict=True)]
    window = run.params.get("day_window", "")
    fig = go.Figure([
        go.Bar(x=label, y=r["headway_before_min"], name="before",
               marker={"color": "#b8b8b8", "pattern": {"shape": "/"}},
               hovertemplate="route %{x}: every %{y:.1f} min before<extra></extra>"),
        go.Bar(x=label, y=r["headway_after_min"], name="after the reallocation",
               marker={"color": CATEGORY[0]},
               hovertemplate="route %{x}: every %{y:.1f} min after<extra></extra>")])
    fig.update_layout(title="Headway per route before and after"
                      + (f" ({window}, feed local time)" if window else ""),
                      barmode="group", height=380, template="simple_white",
                      xaxis={"title": "route", "type": "category"},
                      yaxis={"title": "mean headway (minutes)"})
    return fig
