"""Maps without tiles: a local projection in kilometres, the city's roads (``RoadSegment``)
and GTFS shapes drawn as grey vectors underneath, and a scale bar.

Everything is computed here and handed to plotly as numbers: the page needs no map server,
no tiles and no request to any host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hubctl.pipelines.geo import LocalProjection, projection_for
from hubctl.report.source import Source

__all__ = ["Basemap", "MapFrame"]

_NICE_KM = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0)
ROAD_GREY = "#9a9a9a"
SHAPE_GREY = "#5f5f5f"


class Basemap:
    """The lake's road segments and GTFS shapes as polylines in WGS 84 (read once per report).

    Each layer is a (lon, lat) pair of arrays with NaN between polylines, plus each polyline's
    bounding box so that a map keeps only what it shows."""

    def __init__(self, source: Source) -> None:
        self.layers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for label, table in (("roads (RoadSegment)", "RoadSegment_latest"),
                             ("GTFS shapes (GtfsShape)", "GtfsShape_latest")):
            if source.has(table):
                lines = _lines(source, table)
                if lines is not None:
                    self.layers[label] = lines

    @property
    def has_roads(self) -> bool:
        """True when the lake has road segments to draw."""
        return "roads (RoadSegment)" in self.layers


def _lines(source: Source, table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Concatenated polylines of ``table``'s GeoJSON ``location`` (LineString or
    MultiLineString) with NaN separators, and one [w, s, e, n] box per polyline."""
    texts = source.table(f"SELECT location FROM {table} WHERE location IS NOT NULL "
                         "ORDER BY id").column(0).to_pylist()
    parts: list[np.ndarray] = []
    boxes: list[tuple[float, float, float, float]] = []
    for text in texts:
        try:
            geom = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            continue
        kind = geom.get("type") if isinstance(geom, dict) else None
        rings = ([geom.get("coordinates")] if kind == "LineString"
                 else geom.get("coordinates") if kind == "MultiLineString" else [])
        for ring in rings or []:
            arr = np.asarray(ring, dtype=np.float64)
            if arr.ndim != 2 or len(arr) < 2:
                continue
            arr = arr[:, :2]
            parts.append(np.vstack([arr, [np.nan, np.nan]]))
            boxes.append((arr[:, 0].min(), arr[:, 1].min(), arr[:, 0].max(), arr[:, 1].max()))
    if not parts:
        return None
    joined = np.vstack(parts)
    return joined[:, 0], joined[:, 1], np.asarray(boxes)


class MapFrame:
    """The frame of one map: a local projection around the points it shows (kilometres east
    and north of a named centre), the basemap clipped to it, and a scale bar."""

    def __init__(self, basemap: Basemap, lon: Sequence[float] | np.ndarray,
                 lat: Sequence[float] | np.ndarray, margin: float = 0.08) -> None:
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        ok = np.isfinite(lon_a) & np.isfinite(lat_a)
        self.proj: LocalProjection = projection_for(lon_a[ok], lat_a[ok])
        x, y = self.xy(lon_a[ok], lat_a[ok])
        pad = max(0.3, margin * max(np.ptp(x), np.ptp(y)))
        self.x_range = (float(x.min() - pad), float(x.max() + pad))
        self.y_range = (float(y.min() - pad), float(y.max() + pad))
        self.basemap = basemap

    def xy(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Kilometres east and north of the frame's centre, rounded to the metre."""
        x, y = self.proj.to_xy(np.asarray(lon, dtype=np.float64),
                               np.asarray(lat, dtype=np.float64))
        return np.round(x / 1000, 3), np.round(y / 1000, 3)

    def base_traces(self) -> list[Any]:
        """Grey line traces of the roads and shapes inside the frame (no hover)."""
        import plotly.graph_objects as go

        traces = []
        w, s = self.proj.to_lonlat(np.array([self.x_range[0] * 1000]),
                                   np.array([self.y_range[0] * 1000]))
        e, n = self.proj.to_lonlat(np.array([self.x_range[1] * 1000]),
                                   np.array([self.y_range[1] * 1000]))
        for label, (lon, lat, boxes) in self.basemap.layers.items():
            inside = ((boxes[:, 2] >= w[0]) & (boxes[:, 0] <= e[0])
                      & (boxes[:, 3] >= s[0]) & (boxes[:, 1] <= n[0]))
            if not inside.any():
                continue
            breaks = np.flatnonzero(np.isnan(lon))
            starts = np.concatenate([[0], breaks[:-1] + 1])
            keep = np.concatenate([np.arange(a, b + 1) for a, b, ok in
                                   zip(starts, breaks, inside, strict=True) if ok])
            x, y = self.xy(lon[keep], lat[keep])
            roads = label.startswith("roads")
            traces.append(go.Scatter(
                x=x, y=y, mode="lines", name=label, hoverinfo="skip", legendrank=900,
                line={"color": ROAD_GREY if roads else SHAPE_GREY,
                      "width": 0.8 if roads else 1.6}))
        return traces

    def figure(self, traces: Sequence[Any], title: str, height: int = 560) -> Any:
        """A plotly figure: basemap, then ``traces``, equal axes in km and a scale bar."""
        import plotly.graph_objects as go

        fig = go.Figure([*self.base_traces(), *traces])
        centre = f"{self.proj.lon0:.2f}°E, {self.proj.lat0:.2f}°N"
        fig.update_layout(
            title=title, height=height, template="simple_white",
            margin={"l": 60, "r": 20, "t": 60, "b": 50},
            legend={"orientation": "h", "y": -0.12},
            xaxis={"title": f"km east of {centre}", "range": list(self.x_range),
                   "showgrid": False, "zeroline": False},
            yaxis={"title": f"km north of {centre}", "range": list(self.y_range),
                   "scaleanchor": "x", "scaleratio": 1, "showgrid": False, "zeroline": False})
        if not self.basemap.has_roads:
            fig.add_annotation(text="no RoadSegment in the lake: plain projected frame",
                               xref="paper", yref="paper", x=1, y=1.02, showarrow=False,
                               xanchor="right", font={"size": 11, "color": "#555"})
        self._scale_bar(fig)
        return fig

    def _scale_bar(self, fig: Any) -> None:
        width = self.x_range[1] - self.x_range[0]
        length = max([k for k in _NICE_KM if k <= width / 4] or [_NICE_KM[0]])
        x0 = self.x_range[0] + 0.05 * width
        y0 = self.y_range[0] + 0.05 * (self.y_range[1] - self.y_range[0])
        fig.add_shape(type="line", x0=x0, x1=x0 + length, y0=y0, y1=y0,
                      line={"color": "black", "width": 3})
        label = f"{length:g} km" if length >= 1 else f"{length * 1000:g} m"
        fig.add_annotation(x=x0 + length / 2, y=y0, text=label, showarrow=False, yshift=10,
                           font={"size": 11})


def nice_round(value: float) -> float:
    """``value`` rounded to two significant figures (for labels)."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = 1 - int(math.floor(math.log10(abs(value))))
    return round(value, digits)
