"""shapes.txt: points grouped into one GtfsShape per shape_id, as a GeoJSON LineString.

Vectorised: points are sorted by (shape_id, shape_pt_sequence), formatted as ``[lon,lat]``
text with string kernels, and joined per shape through a list array; lengths are haversine
sums in numpy. A shape row stands for its points (``_records``), so the ledger counts points.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit import Problems, missing, urns
from hubctl.adapters.gtfs_parse import (
    parse_float,
    parse_int,
    trimmed,
)
from hubctl.adapters.gtfs_tables import KNOWN_COLUMNS, Converted, Feed, later_repeats
from hubctl.gate import coordinate_reason
from hubctl.geo import haversine_m
from hubctl.rejects import reason

__all__ = ["shapes"]



def shapes(feed: Feed, table: pa.Table, where: str) -> Converted:
    """One GtfsShape per shape_id with the points that passed their checks."""
    p = Problems(table, "GtfsShape", where)
    p.flag_nul()
    shape_id = trimmed(table, "shape_id")
    p.flag(pc.is_null(shape_id), missing("shape_id"))
    parsed = {}
    for col, parse, kind in (("shape_pt_lat", parse_float, "number"),
                             ("shape_pt_lon", parse_float, "number"),
                             ("shape_pt_sequence", parse_int, "integer")):
        values, bad = p.parsed(col, parse, kind)
        p.flag(pc.and_(pc.is_null(values), pa.array(~bad)), missing(col))
        parsed[col] = values
    lat, lon, seq = parsed["shape_pt_lat"], parsed["shape_pt_lon"], parsed["shape_pt_sequence"]
    outside = pc.invert(pc.and_(pc.and_(pc.greater_equal(lon, -180), pc.less_equal(lon, 180)),
                                pc.and_(pc.greater_equal(lat, -90), pc.less_equal(lat, 90))))
    p.flag(outside, lambda i: coordinate_reason(  # type: ignore[arg-type,return-value]
        "shape_pt_lat/shape_pt_lon", lon[i].as_py(), lat[i].as_py()))
    key = pc.binary_join_element_wise(shape_id, pc.cast(seq, pa.string()), "\x1f")
    p.flag(later_repeats(key), lambda i: reason(
        "duplicate-key", "shape_pt_sequence", value=seq[i].as_py(),
        detail=f"shape {shape_id[i].as_py()!r} has this shape_pt_sequence in an earlier row; "
               "the first one is kept"))
    extras = [c for c in table.column_names if c not in KNOWN_COLUMNS["shapes.txt"]]
    if extras and table.num_rows:
        feed.warn(f"shapes.txt: per-point columns {', '.join(extras)} are not stored "
                  "(a GtfsShape is the whole line; its length is computed)")
    good = pa.table({"shape": shape_id, "seq": seq, "lon": lon, "lat": lat}).filter(
        pa.array(~p.bad()))
    rows = _lines(feed, good)
    feed.shapes = rows.column("_shape").combine_chunks() if rows.num_rows else pa.array(
        [], pa.string())
    return Converted("GtfsShape", rows.drop_columns(["_shape"]),
                     p.rejects(["shape_id", "shape_pt_sequence"]),
                     feed.shapes)


def _lines(feed: Feed, good: pa.Table) -> pa.Table:
    """One row per shape: LineString text, length, point count (``_records``)."""
    good = good.take(pc.sort_indices(good, [("shape", "ascending"), ("seq", "ascending")]))
    n = good.num_rows
    shape = good.column("shape").combine_chunks()
    if n:
        change = np.asarray(pc.not_equal(shape.slice(1), shape.slice(0, n - 1)).to_numpy(
            zero_copy_only=False), bool)
        starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
    else:
        starts = np.zeros(0, np.int64)
    counts = np.diff(np.append(starts, n))
    lon = good.column("lon").to_numpy()
    lat = good.column("lat").to_numpy()
    step = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:]) if n > 1 else np.zeros(0)
    step = np.append(step, 0.0)
    step[starts[1:] - 1] = 0.0  # no distance across two shapes
    length = np.add.reduceat(step, starts) if n else np.zeros(0)
    point = pc.binary_join_element_wise("[", pc.cast(good.column("lon"), pa.string()), ",",
                                        pc.cast(good.column("lat"), pa.string()), "]", "")
    lists = pa.ListArray.from_arrays(pa.array(np.append(starts, n).astype(np.int32)),
                                     point.combine_chunks() if isinstance(point, pa.ChunkedArray)
                                     else point)
    coords = pc.binary_join(lists, ",")
    names = shape.take(pa.array(starts)) if n else pa.array([], pa.string())
    m = len(names)
    return pa.table({
        "id": urns("GtfsShape", names, feed.feed_id),
        "observed_at": pa.repeat(pa.scalar(feed.arrival), m),
        "feedId": pa.repeat(pa.scalar(feed.feed_id), m),
        "location": pc.binary_join_element_wise(
            '{"type":"LineString","coordinates":[', coords, "]}", ""),
        "length": pa.array(length, pa.float64()),
        "points": pa.array(counts, pa.int64()),
        "_time_index": pa.repeat(pa.scalar("arrival"), m),
        "_records": pa.array(counts, pa.int64()),
        "_shape": names,
    })
