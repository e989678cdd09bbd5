"""Gridded or zoned population (CSV): residents and/or floating population, all day or by hour.

Gridded input gives each cell's centre (``lat, lon, population``); zoned input names a zone
(``zone_id, population``) and ``--zones FILE`` gives where each zone is: a CSV ``zone_id,lat,
lon`` or a GeoJSON FeatureCollection of Points or (Multi)Polygons, whose area-weighted centroid
is used (the zone id is the feature's ``--zone-field`` property, else its ``id``). Optional
columns: ``hour`` (0-23, local) and ``kind`` (``residents`` or ``floating``; ``--kind`` sets the
default). Other headers are mapped with ``--map COLUMN=FIELD``.

Rows become ``PopulationCell`` entities, one per dataset, place, kind and hour.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    Problems,
    field_batches,
    parse_hours,
    parse_map,
    urns,
)
from hubctl.arrowkit import blank, parse_numbers
from hubctl.csvread import CSV_LIMIT_PARAMS, csv_limits, read_whole
from hubctl.errors import InputError, UsageError
from hubctl.rejects import reason

__all__ = ["ADAPTER", "Population", "load_zones", "polygon_centroid"]

TYPE = "PopulationCell"
FIELDS = ("lat", "lon", "zone_id", "population", "hour", "kind")
KINDS = {"residents": "residents", "resident": "residents", "floating": "floating"}
_COLUMN_ALIASES = {"latitude": "lat", "longitude": "lon", "lng": "lon", "zone": "zone_id",
                   "people": "population"}
_ALIASES = {"latitude": "lat", "longitude": "lon", "lng": "lon", "zone": "zone_id",
            "id": "zone_id"}


def polygon_centroid(rings: list[list[list[float]]]) -> tuple[float, float, float]:
    """(lon, lat, area) of a GeoJSON polygon (outer ring minus holes), planar in degrees: an
    affine change of scale keeps centroids, so this is the centroid at city scale."""
    total = cx = cy = 0.0
    ox, oy = float(rings[0][0][0]), float(rings[0][0][1])  # work near the origin: exact sums
    for k, ring in enumerate(rings):
        a = x = y = 0.0
        pts = [(float(p[0]) - ox, float(p[1]) - oy) for p in ring]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
            cross = x0 * y1 - x1 * y0
            a += cross
            x += (x0 + x1) * cross
            y += (y0 + y1) * cross
        if a == 0:
            continue
        sign = 1.0 if k == 0 else -1.0  # holes are subtracted, whatever their orientation
        area = abs(a) / 2
        total += sign * area
        cx += sign * area * (x / (3 * a))
        cy += sign * area * (y / (3 * a))
    if total <= 0:
        raise ValueError("the polygon has no area")
    return ox + cx / total, oy + cy / total, total


def _feature_point(geom: Any) -> tuple[float, float]:
    if not isinstance(geom, dict):
        raise ValueError("has no geometry")
    kind, coords = geom.get("type"), geom.get("coordinates")
    if not isinstance(coords, list) or not coords:
        raise ValueError("has no coordinates")
    if kind == "Point":
        return float(coords[0]), float(coords[1])
    polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else None
    if not polygons:
        raise ValueError(f"geometry type {kind!r} is not a Point, Polygon or MultiPolygon")
    parts = [polygon_centroid(p) for p in polygons]
    area = sum(a for _, _, a in parts)
    return (sum(x * a for x, _, a in parts) / area, sum(y * a for _, y, a in parts) / area)


def load_zones(path: Path, field: str, ctx: ReadContext) -> dict[str, tuple[float, float]]:
    """{zone id: (lon, lat)} from a zones CSV or GeoJSON; a zone listed again keeps its first
    position (with a warning); a zone without a usable position is an InputError."""
    out: dict[str, tuple[float, float]] = {}
    repeated: list[str] = []
    for where, zone, lonlat in (_geojson_zones(path, _zones_text(path), field)
                                if _is_json(path) else _csv_zones(path)):
        lon, lat = lonlat
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
                and -90 <= lat <= 90):
            raise InputError(f"zone {zone}: ({lon}, {lat}) is not a WGS84 lon/lat position",
                             path=str(path), record=where)
        if zone in out:
            repeated.append(zone)
        else:
            out[zone] = (lon, lat)
    if repeated:
        ctx.warn(f"{path.name}: zone(s) listed again: {', '.join(dict.fromkeys(repeated))}; "
                 "the first listing of each is kept")
    if not out:
        raise InputError("lists no zones", path=str(path))
    return out


def _is_json(path: Path) -> bool:
    """Whether a zones file is GeoJSON (it starts with { or [) rather than CSV."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise InputError(f"cannot read the zones file: {exc.strerror}", path=str(path)) from None
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _zones_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the zones file: {exc}", path=str(path)) from None


def _csv_zones(path: Path) -> Iterator[tuple[str, str, tuple[float, float]]]:
    table, lines = read_whole(path)
    header = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in table.column_names]
    if not {"zone_id", "lat", "lon"} <= set(header):
        raise InputError(f"a zones CSV needs columns zone_id, lat, lon; the header has "
                         f"{', '.join(header)}", path=str(path), record="line 1",
                         hint="or give a GeoJSON FeatureCollection of zone polygons")
    for rec, line in zip(table.rename_columns(header).to_pylist(), lines.tolist(), strict=True):
        where = f"line {line}"
        try:
            lonlat = (float(rec["lon"]), float(rec["lat"]))
        except (TypeError, ValueError):
            raise InputError(f"zone {rec.get('zone_id')}: lat/lon ({rec.get('lat')!r}, "
                             f"{rec.get('lon')!r}) are not numbers", path=str(path),
                             record=where) from None
        yield where, str(rec["zone_id"]).strip(), lonlat


def _geojson_zones(path: Path, text: str,
                   field: str) -> Iterator[tuple[str, str, tuple[float, float]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"is not JSON ({exc.msg} at line {exc.lineno})", path=str(path)) from None
    features = doc.get("features") if isinstance(doc, dict) else doc
    if not isinstance(features, list):
        raise InputError("is not a GeoJSON FeatureCollection", path=str(path))
    for i, feat in enumerate(features):
        where = f"features[{i}]"
        props = feat.get("properties") or {} if isinstance(feat, dict) else {}
        zone = props.get(field, feat.get("id") if isinstance(feat, dict) else None)
        if zone is None or not str(zone).strip():
            raise InputError(f"feature has no {field!r} property nor id", path=str(path),
                             record=where, hint="name the property with --zone-field")
        try:
            lonlat = _feature_point(feat.get("geometry"))
        except (ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
            raise InputError(f"zone {zone}: {exc}", path=str(path), record=where) from None
        yield where, str(zone).strip(), lonlat


class Population(Adapter):
    """The ``population`` adapter."""

    name = "population"
    entity_types = (TYPE,)
    summary = "Gridded (lat, lon) or zoned (zone_id + --zones) population, by kind and hour."
    example = ("hubctl ingest population floating-2024.csv --zones zones.geojson "
               "--dataset daegu-floating --kind floating")
    params: Sequence[click.Parameter] = (
        click.Option(["--zones"], default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Zone positions for zone_id input: CSV zone_id,lat,lon or GeoJSON "
                          "(polygon centroids)."),
        click.Option(["--zone-field"], default="zone_id", show_default=True, metavar="NAME",
                     help="GeoJSON property holding the zone id (else the feature id)."),
        click.Option(["--dataset"], default="population", show_default=True, metavar="NAME",
                     help="Dataset name: namespaces the entity ids."),
        click.Option(["--kind"], type=click.Choice(["residents", "floating"]),
                     default="residents", show_default=True,
                     help="Kind of population for rows without a kind column."),
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read header COLUMN as FIELD (lat, lon, zone_id, population, hour, "
                          "kind); repeatable."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The cells or zones of every input file, batch by batch."""
        mapping = parse_map(options.get("mapping"), FIELDS)
        dataset = str(options.get("dataset") or "population").strip()
        if not dataset:
            raise UsageError("--dataset must not be empty")
        zones = (load_zones(Path(options["zones"]), str(options.get("zone_field") or "zone_id"),
                            ctx) if options.get("zones") else None)
        kind = str(options.get("kind") or "residents")
        for path in inputs:
            yield from field_batches(
                Path(path), mapping, TYPE, partial(_need, zones=zones), ctx,
                partial(_convert, path=Path(path), dataset=dataset, default_kind=kind,
                        zones=zones), aliases=_COLUMN_ALIASES,
                limits=csv_limits(options))


def _need(path: Path, names: list[str], zones: dict[str, tuple[float, float]] | None) -> None:
    gridded = {"lat", "lon"} <= set(names)
    if "population" not in names or not (gridded or "zone_id" in names):
        raise InputError(f"needs population and either lat, lon or zone_id; the header has "
                         f"{', '.join(names)}", path=str(path), record="line 1",
                         hint="name the columns with --map COLUMN=FIELD")
    if not gridded and zones is None:
        raise UsageError(f"{path}: zoned population (zone_id) needs --zones FILE with the zone "
                         "positions")


def _convert(t: pa.Table, p: Problems, path: Path, dataset: str, default_kind: str,
             zones: dict[str, tuple[float, float]] | None) -> Batch:
    n = t.num_rows
    people, bad = parse_numbers(t.column("population").combine_chunks())
    p.flag(bad, lambda i: reason("type-error", "population", value=p.cell("population", i),
                                 expected="number"))
    p.flag(pc.is_null(people), lambda i: reason("missing-required", "population"))
    p.flag(pc.less(people, 0), lambda i: reason("negative-value", "population",
                                                value=p.cell("population", i)))
    lon, lat, place, zone_col = _places(t, p, zones)
    hour = parse_hours(t, p)
    if "kind" in t.column_names:
        raw = pc.utf8_lower(pc.utf8_trim_whitespace(t.column("kind").combine_chunks()))
        known = pc.index_in(raw, value_set=pa.array(list(KINDS)))
        kind = pc.if_else(blank(raw), pa.scalar(default_kind),
                          pc.if_else(pc.is_valid(known),
                                     pc.take(pa.array(list(KINDS.values())), known), raw))
    else:
        kind = pa.repeat(pa.scalar(default_kind), n)
    hour_text = pc.fill_null(pc.cast(hour, pa.string()), "all")
    local = pc.binary_join_element_wise(pa.scalar(dataset), place, kind, hour_text, ":")
    ids = urns(TYPE, local)
    rows = pa.table({
        "id": ids, "observed_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "population": people, "kind": kind, "hour": hour, "lon": lon, "lat": lat,
        "zoneId": zone_col, "dataset": pa.repeat(pa.scalar(dataset), n),
        "source": pa.repeat(pa.scalar(path.name), n),
        "_time_index": pa.repeat(pa.scalar("arrival"), n),
        "_record": p.record_column(),
    }).filter(p.keep())
    return Batch(TYPE, _stamp(rows), str(path), n, rejects=p.rejects())


def _stamp(rows: pa.Table) -> pa.Table:
    """Static entities: observed_at is the snapshot (arrival) time."""
    from datetime import UTC, datetime

    now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
    return rows.set_column(1, "observed_at", pa.repeat(now, rows.num_rows))


def _places(t: pa.Table, p: Problems, zones: dict[str, tuple[float, float]] | None
            ) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(lon, lat, place key, zone id) per row: the cell centre, or the zone's position."""
    n = t.num_rows
    has_zone = "zone_id" in t.column_names and zones is not None
    zone = (pc.utf8_trim_whitespace(t.column("zone_id").combine_chunks()) if has_zone
            else pa.nulls(n, pa.string()))
    if has_zone and not {"lat", "lon"} <= set(t.column_names):
        assert zones is not None
        names = pa.array(list(zones), pa.string())
        idx = pc.index_in(zone, value_set=names)
        p.flag(blank(zone), lambda i: reason("missing-required", "zone_id"))
        p.flag(pc.and_(pc.invert(blank(zone)), pc.is_null(idx)), lambda i: reason(
            "unknown-reference", "zone_id", value=p.cell("zone_id", i), type="zone",
            where="the --zones file"))
        lon = pc.take(pa.array([z[0] for z in zones.values()], pa.float64()), idx)
        lat = pc.take(pa.array([z[1] for z in zones.values()], pa.float64()), idx)
        return lon, lat, pc.fill_null(zone, ""), zone
    lat, bad_lat = parse_numbers(t.column("lat").combine_chunks())
    lon, bad_lon = parse_numbers(t.column("lon").combine_chunks())
    p.flag(bad_lat, lambda i: reason("type-error", "lat", value=p.cell("lat", i),
                                     expected="number"))
    p.flag(bad_lon, lambda i: reason("type-error", "lon", value=p.cell("lon", i),
                                     expected="number"))
    p.flag(pc.or_(pc.is_null(lat), pc.is_null(lon)),
           lambda i: reason("missing-required", "location"))
    place = pc.binary_join_element_wise(
        pc.cast(pc.round(lat, 6), pa.string()), pc.cast(pc.round(lon, 6), pa.string()), ",")
    return lon, lat, pc.fill_null(place, ""), zone


ADAPTER = Population()
