"""Positions from text columns: lon/lat columns, or a text that holds the position (WKT
``POINT (lon lat)``, ``(lat, lon)`` inside an address, ``lat, lon``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.arrowkit import blank, parse_numbers

__all__ = ["coordinates"]

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_POINT_TEXT = (  # pattern, which group is the latitude
    (rf"POINT\s*\(\s*(?P<a>{_NUM})\s+(?P<b>{_NUM})\s*\)", "b"),  # WKT: lon lat
    (rf"\(\s*(?P<a>{_NUM})\s*,\s*(?P<b>{_NUM})\s*\)", "a"),  # "(lat, lon)"
    (rf"^\s*(?P<a>{_NUM})\s*[,;]\s*(?P<b>{_NUM})\s*$", "a"),  # "lat, lon"
)


def _from_text(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(lon, lat) from position texts: WKT POINT, '(lat, lon)' inside text, or 'lat, lon'."""
    lon = pa.nulls(len(text), pa.float64())
    lat = pa.nulls(len(text), pa.float64())
    filled = pc.fill_null(text, "")
    for pattern, lat_group in _POINT_TEXT:
        m = pc.extract_regex(filled, pattern)
        a = pc.cast(pc.struct_field(m, "a"), pa.float64())
        b = pc.cast(pc.struct_field(m, "b"), pa.float64())
        la, lo = (a, b) if lat_group == "a" else (b, a)
        take = pc.and_(pc.is_null(lat), pc.is_valid(m))
        lat = pc.if_else(take, la, lat)
        lon = pc.if_else(take, lo, lon)
    return lon, lat


def coordinates(text: pa.Array | None, lon_text: pa.Array | None, lat_text: pa.Array | None,
                n: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(lon, lat, present): WGS84 positions from lon/lat columns, else from a position text.

    ``present`` is true where the source gave something that looks like a position; lon and lat
    are null where it is missing, unreadable, outside WGS84 or exactly (0, 0).
    """
    lon = pa.nulls(n, pa.float64())
    lat = pa.nulls(n, pa.float64())
    present = pa.array(np.zeros(n, dtype=bool))
    if lon_text is not None and lat_text is not None:
        lon, _ = parse_numbers(lon_text)
        lat, _ = parse_numbers(lat_text)
        present = pc.or_(pc.invert(blank(lon_text)), pc.invert(blank(lat_text)))
    if text is not None:
        t_lon, t_lat = _from_text(text)
        missing = pc.or_(pc.is_null(lon), pc.is_null(lat))
        lon = pc.if_else(missing, t_lon, lon)
        lat = pc.if_else(missing, t_lat, lat)
        present = pc.or_(present, pc.is_valid(t_lat))
    ok = pc.and_(pc.and_(pc.greater_equal(lon, -180.0), pc.less_equal(lon, 180.0)),
                 pc.and_(pc.greater_equal(lat, -90.0), pc.less_equal(lat, 90.0)))
    ok = pc.and_(ok, pc.or_(pc.not_equal(lon, 0.0), pc.not_equal(lat, 0.0)))
    ok = pc.fill_null(ok, False)
    empty = pa.scalar(None, pa.float64())
    return pc.if_else(ok, lon, empty), pc.if_else(ok, lat, empty), pc.fill_null(present, False)
