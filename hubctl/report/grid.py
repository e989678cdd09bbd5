"""Grid cells of a derived table (centres in lon/lat and a cell size) as a plotly heatmap on
a :class:`~hubctl.report.maps.MapFrame`: cells scale with zoom and hovering one shows its
value."""

from __future__ import annotations

from typing import Any

import numpy as np

from hubctl.report.maps import MapFrame
from hubctl.report.style import SEQUENTIAL

__all__ = ["cell_heatmap"]


def cell_heatmap(frame: MapFrame, lon: Any, lat: Any, value: Any, cell_km: float, *,
                 name: str, label: str, extra: Any = None, extra_label: str = "",
                 zmin: float | None = None, zmax: float | None = None,
                 visible: bool = True, colorscale: str = SEQUENTIAL) -> Any:
    """A heatmap of ``value`` per cell (centres ``lon``/``lat``), cells ``cell_km`` wide;
    the hover shows ``label`` (with its unit) and, when given, ``extra``."""
    import plotly.graph_objects as go

    x, y = frame.xy(lon, lat)
    vals = np.asarray(value, dtype=np.float64)
    if len(x) == 0:
        return go.Heatmap(z=[[None]], name=name, visible=visible, showscale=False)
    x0, y0 = float(x.min()), float(y.min())
    ix = np.rint((x - x0) / cell_km).astype(np.int64)
    iy = np.rint((y - y0) / cell_km).astype(np.int64)
    z = np.full((iy.max() + 1, ix.max() + 1), np.nan)
    z[iy, ix] = vals
    custom = None
    hover = f"{label}: %{{z:.3~g}}<extra>{name}</extra>"
    if extra is not None:
        c = np.full(z.shape, np.nan)
        c[iy, ix] = np.asarray(extra, dtype=np.float64)
        custom = c
        hover = f"{label}: %{{z:.3~g}}<br>{extra_label}: %{{customdata:.4~g}}<extra>{name}</extra>"
    finite = vals[np.isfinite(vals)]
    lo = zmin if zmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = zmax if zmax is not None else (float(finite.max()) if finite.size else 1.0)
    return go.Heatmap(
        z=z, x0=x0, dx=cell_km, y0=y0, dy=cell_km, customdata=custom, name=name,
        colorscale=colorscale, zmin=lo, zmax=hi if hi > lo else lo + 1, visible=visible,
        hovertemplate=hover, hoverongaps=False, opacity=0.85,
        colorbar={"title": {"text": label, "side": "right"}, "len": 0.75})
