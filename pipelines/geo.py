"""Small geographic helpers shared by the safety pipelines: great-circle distance, a local
projection to metres around a centre, and square grid cells in projected metres.

Everything is vectorised over numpy arrays. The projection is equirectangular around its centre
(x east, y north, metres): at city scale (a few tens of kilometres) its distance error stays
below about 0.5 %, well under the size of a grid cell; use :func:`haversine_m` where exact
distances over long spans matter.

Grid cells are anchored at the projection centre, which :func:`projection_for` snaps to a round
0.05 degree, so the same city keeps the same cell ids from run to run even as data is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hubctl.geo import EARTH_RADIUS_M, haversine_m

__all__ = [
    "EARTH_RADIUS_M",
    "LocalProjection",
    "cell_centres",
    "cell_index",
    "cell_keys",
    "cell_labels",
    "STUDY_AREAS",
    "haversine_m",
    "in_polygons",
    "projection_for",
    "read_polygons",
    "split_cell_keys",
    "study_area_mask",
]

_SNAP_DEG = 0.05
_KEY_OFFSET = 1 << 30  # cell indices are shifted by this into a non-negative 31-bit range


@dataclass(frozen=True)
class LocalProjection:
    """Equirectangular projection to metres around (lon0, lat0): x east, y north."""

    lon0: float
    lat0: float

    @property
    def _kx(self) -> float:
        return EARTH_RADIUS_M * math.radians(1.0) * math.cos(math.radians(self.lat0))

    @property
    def _ky(self) -> float:
        return EARTH_RADIUS_M * math.radians(1.0)

    def to_xy(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Metres east and north of the centre for WGS84 longitudes and latitudes."""
        x = (np.asarray(lon, dtype=np.float64) - self.lon0) * self._kx
        y = (np.asarray(lat, dtype=np.float64) - self.lat0) * self._ky
        return x, y

    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitudes and latitudes of projected points (the inverse of :meth:`to_xy`)."""
        lon = np.asarray(x, dtype=np.float64) / self._kx + self.lon0
        lat = np.asarray(y, dtype=np.float64) / self._ky + self.lat0
        return lon, lat


def projection_for(lon: np.ndarray, lat: np.ndarray) -> LocalProjection:
    """A projection centred on the middle of the points' bounding box, snapped to 0.05 degree
    so that grids anchored at it are stable; raises ValueError when there is no finite point."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        raise ValueError("no point with finite coordinates")
    mid_lon = (lon[ok].min() + lon[ok].max()) / 2
    mid_lat = (lat[ok].min() + lat[ok].max()) / 2
    return LocalProjection(round(round(mid_lon / _SNAP_DEG) * _SNAP_DEG, 6),
                           round(round(mid_lat / _SNAP_DEG) * _SNAP_DEG, 6))


def cell_index(x: np.ndarray, y: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Column and row (int64) of the ``size``-metre cell holding each projected point."""
    if size <= 0:
        raise ValueError(f"cell size must be positive, got {size}")
    ix = np.floor(np.asarray(x, dtype=np.float64) / size).astype(np.int64)
    iy = np.floor(np.asarray(y, dtype=np.float64) / size).astype(np.int64)
    return ix, iy


def cell_keys(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """One int64 per cell (column in the high half, row in the low half); sorts row-major by
    column then row, and :func:`split_cell_keys` undoes it. Columns and rows must lie in
    [-2**30, 2**30) (a billion cells either way of the anchor); ValueError otherwise (an
    index outside would overflow int64 or spill into the column: a NaN coordinate floors to
    the smallest int64)."""
    ix = np.asarray(ix, dtype=np.int64)
    iy = np.asarray(iy, dtype=np.int64)
    for name, v in (("column", ix), ("row", iy)):
        if v.size and (int(v.min()) < -_KEY_OFFSET or int(v.max()) >= _KEY_OFFSET):
            raise ValueError(f"cell {name} index outside [-2**30, 2**30): "
                             f"{int(v.min())}..{int(v.max())} (a non-finite coordinate?)")
    return np.asarray(((ix + _KEY_OFFSET) << 32) | (iy + _KEY_OFFSET), dtype=np.int64)


def split_cell_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of cell keys made by :func:`cell_keys`."""
    keys = np.asarray(keys, dtype=np.int64)
    return (keys >> 32) - _KEY_OFFSET, (keys & 0xFFFFFFFF) - _KEY_OFFSET


def cell_centres(ix: np.ndarray, iy: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Projected x, y (metres) of the centres of cells."""
    return ((np.asarray(ix, dtype=np.float64) + 0.5) * size,
            (np.asarray(iy, dtype=np.float64) + 0.5) * size)


def cell_labels(ix: np.ndarray, iy: np.ndarray, size: float) -> list[str]:
    """Readable cell ids such as ``250m:E12:N-3`` (column east, row north of the anchor)."""
    s = f"{size:g}m"
    return [f"{s}:E{a}:N{b}" for a, b in zip(np.asarray(ix).tolist(), np.asarray(iy).tolist(),
                                              strict=True)]


STUDY_AREAS = ("bbox", "hull")  # or the path of a GeoJSON polygon


def study_area_mask(spec: str, proj: LocalProjection, cx: np.ndarray, cy: np.ndarray,
                    event_x: np.ndarray, event_y: np.ndarray, cell_m: float) -> np.ndarray:
    """Which cells (centres ``cx``, ``cy`` in projected metres) lie in the study area.

    ``bbox``: every cell of the events' bounding box. ``hull``: cells whose centre lies in the
    events' convex hull buffered by one cell (``cell_m``). Anything else is the path of a
    GeoJSON file whose Polygon or MultiPolygon features (WGS 84) bound the area, e.g. the city
    boundary: cells whose centre lies inside. A UsageError names what is wrong with the file.
    """
    cx, cy = np.asarray(cx, dtype=np.float64), np.asarray(cy, dtype=np.float64)
    if spec == "bbox":
        return np.ones(cx.shape, dtype=bool)
    if spec == "hull":
        return _in_buffered_hull(cx, cy, event_x, event_y, cell_m)
    lon, lat = proj.to_lonlat(cx, cy)
    return in_polygons(lon, lat, read_polygons(spec))


def _in_buffered_hull(cx: np.ndarray, cy: np.ndarray, ex: np.ndarray, ey: np.ndarray,
                      buffer: float) -> np.ndarray:
    """Points within ``buffer`` of the convex hull of the events (mitred corners)."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.unique(np.column_stack([ex, ey]), axis=0)
    if len(pts) < 3:
        return np.ones(cx.shape, dtype=bool)
    try:
        eq = ConvexHull(pts).equations  # rows (nx, ny, offset): inside where n.p + offset <= 0
    except QhullError:  # the events lie on a line: the hull has no area
        return np.ones(cx.shape, dtype=bool)
    side = cx[:, None] * eq[None, :, 0] + cy[:, None] * eq[None, :, 1] + eq[None, :, 2]
    return np.asarray((side <= buffer).all(axis=1))


def read_polygons(path: str) -> list[list[np.ndarray]]:
    """Polygons (each a list of rings of (lon, lat) vertices, outer ring first) of a GeoJSON
    file: a FeatureCollection, a Feature or a bare geometry of Polygons and MultiPolygons."""
    import json
    from pathlib import Path

    from hubctl.errors import UsageError

    hint = "give bbox, hull or a GeoJSON file of the area's Polygon(s) in WGS 84 degrees"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"study_area={path}: cannot read it ({exc.strerror})",
                         hint=hint) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"study_area={path}: not JSON ({exc})", hint=hint) from None
    geoms = [f.get("geometry") for f in doc.get("features", [])] if isinstance(doc, dict) \
        and doc.get("type") == "FeatureCollection" else [doc.get("geometry") if isinstance(
            doc, dict) and doc.get("type") == "Feature" else doc]
    polygons: list[list[np.ndarray]] = []
    for g in geoms:
        if not isinstance(g, dict):
            continue
        coords = g.get("coordinates") or []
        parts = [coords] if g.get("type") == "Polygon" else (
            coords if g.get("type") == "MultiPolygon" else [])
        for rings in parts:
            try:
                polygons.append([np.asarray(r, dtype=np.float64)[:, :2] for r in rings])
            except (TypeError, ValueError, IndexError):
                raise UsageError(f"study_area={path}: a polygon's coordinates are not "
                                 "[[lon, lat], ...] rings", hint=hint) from None
    if not polygons:
        raise UsageError(f"study_area={path}: no Polygon or MultiPolygon in it", hint=hint)
    lon_max = max(float(np.abs(r[:, 0]).max()) for p in polygons for r in p)
    lat_max = max(float(np.abs(r[:, 1]).max()) for p in polygons for r in p)
    if lon_max > 180 or lat_max > 90:
        raise UsageError(f"study_area={path}: coordinates up to {lon_max:g}, {lat_max:g} are "
                         "not degrees (a projected CRS?)", hint="reproject it to WGS 84 "
                         "(EPSG:4326), e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson")
    return polygons


def in_polygons(lon: np.ndarray, lat: np.ndarray,
                polygons: list[list[np.ndarray]]) -> np.ndarray:
    """Points inside any of ``polygons`` (even-odd rule per polygon: holes are outside)."""
    x, y = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    inside = np.zeros(x.shape, dtype=bool)
    for rings in polygons:
        odd = np.zeros(x.shape, dtype=bool)
        for ring in rings:
            x1, y1 = ring[:, 0], ring[:, 1]
            x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
            edge = y1 != y2
            x1, y1, x2, y2 = x1[edge], y1[edge], x2[edge], y2[edge]
            if not len(y1):
                continue
            near = (y >= y1.min()) & (y <= y1.max()) & (x <= max(x1.max(), x2.max()))
            px, py = x[near][:, None], y[near][:, None]
            flips = np.zeros(len(px), dtype=bool)
            for s in range(0, len(x1), 256):  # edges in chunks: bounded memory
                a, b, c, d = (v[None, s:s + 256] for v in (x1, y1, x2, y2))
                crosses = (b > py) != (d > py)
                with np.errstate(divide="ignore", invalid="ignore"):
                    at = a + (py - b) * (c - a) / (d - b)
                flips ^= np.logical_xor.reduce(crosses & (px < at), axis=1)
            odd[near] ^= flips
        inside |= odd
    return inside
