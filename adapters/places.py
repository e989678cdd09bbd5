"""Point facilities (patrol points, police, fire and ambulance stations, CCTV cameras) from CSV
or GeoJSON into ``PointOfInterest`` rows with ``category`` = [kind].

Columns are found by common names in English and Korean (id/코드, name/명칭/시설명,
lat/위도, lon/경도, address/주소/소재지, ...) or named with ``--map column=field``. The id is
``urn:ngsi-ld:PointOfInterest:<kind>:<id>``; a file without an id column uses the name (the
position, ``lon,lat`` to 6 decimals, where the name is blank or repeated), so re-ingesting the
same list never duplicates a place and moving one keeps its entity. A GeoJSON in a projected
CRS is refused with what to do.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    blank_to_null,
    coordinates,
    extra_json,
    parse_map,
    postal_address,
    read_text_csv,
    resolve_columns,
    unescape_html,
    urns,
)
from hubctl.arrowkit import parse_numbers
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    CsvLimits,
    csv_limits,
)
from hubctl.errors import InputError
from hubctl.registry import vocabulary

__all__ = ["ADAPTER", "KINDS", "Places"]

TYPE = "PointOfInterest"
#: The facility kinds: the PointOfInterest schema's vocabulary of its category.
KINDS = vocabulary(TYPE, "category")
#: Place fields and the header names recognised for each (matched by adapterkit.fold: case,
#: spaces, dots, dashes and underscores aside).
FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "code", "station_id", "site_id", "코드", "관리번호", "시설코드", "관서코드",
           "번호"),
    "name": ("name", "station", "site", "명칭", "이름", "시설명", "관서명", "지구대명",
             "파출소명", "경찰서명", "소방서명", "안전센터명", "설치장소"),
    "lat": ("lat", "latitude", "y", "위도", "wgs84위도"),
    "lon": ("lon", "lng", "long", "longitude", "x", "경도", "wgs84경도"),
    "location": ("location", "geometry", "point", "좌표"),
    "address": ("address", "addr", "주소", "소재지", "도로명주소", "소재지도로명주소",
                "소재지지번주소"),
    "description": ("description", "remarks", "비고", "설명"),
    "areaServed": ("areaserved", "district", "area", "관할", "관할구역", "관할지역"),
    "capacity": ("capacity", "units", "vehicles", "cameras", "인원", "차량수", "카메라대수",
                 "대수"),
}


def _mapping(path: Path, header: Sequence[str], items: Sequence[str],
             joined: bool = False) -> dict[str, str]:
    """field -> column: the --map items first, then the recognised header names. Without
    coordinate columns it is an InputError, unless ``joined`` (``--coordinates``) and the
    file has a name or an address to join on."""
    out = resolve_columns(path, header, FIELDS, parse_map(items, FIELDS, "place"), [])
    has_position = {"lat", "lon"} <= set(out) or "location" in out
    if joined and not has_position and not {"name", "address"} & set(out):
        raise InputError("--coordinates needs a name or address column to join on "
                         "(name/명칭/관서명, address/주소/소재지)", path=str(path),
                         record="line 1", hint="name one with --map, e.g. --map '관서=name'")
    if not has_position and not joined:
        has = " or ".join(repr(out[f]) for f in ("address", "name") if f in out)
        geocode = (f"; the file has {has} but no position: join it with a list that has "
                   "them, --coordinates FILE (a CSV of name and/or address with lat and lon, "
                   "e.g. geocoded with a national address geocoder or Nominatim run locally)"
                   if has else "")
        raise InputError("no coordinate columns found (lat/lon, 위도/경도, location)",
                         path=str(path), record="line 1",
                         hint="name them with --map, e.g. --map 'Y=lat' --map 'X=lon'" + geocode)
    return out


class Places(Adapter):
    """The ``places`` adapter."""

    name = "places"
    entity_types = (TYPE,)
    summary = ("Point facilities (patrol points, police/fire/ambulance stations, CCTV) from CSV "
               "or GeoJSON into PointOfInterest with category [kind].")
    example = ("hubctl ingest places patrol_points.csv --kind patrol-point\n"
               "  hubctl ingest places stations.geojson --kind fire-station\n"
               "  hubctl ingest places 지구대_파출소.csv --kind patrol-point "
               "--coordinates geocoded.csv\n"
               "  hubctl ingest places cctv.csv --kind cctv --map '설치위치=name'")
    params: Sequence[click.Parameter] = (
        click.Option(["--kind"], required=True, type=click.Choice(KINDS),
                     help="What the places are; becomes their category."),
        click.Option(["--map", "map"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN (or GeoJSON property) as FIELD (" + ", ".join(FIELDS)
                          + "); repeat it."),
        click.Option(["--coordinates", "coordinates"], default=None, metavar="FILE",
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A CSV of name and/or address with lat and lon (same headers as "
                          "places): places without a position take it from there, joined on "
                          "the address, else on the name."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Each input file read whole (facility lists are small), yielded in batches of at most
        ``ctx.batch_rows`` rows."""
        for path in inputs:
            if path.suffix.lower() in (".geojson", ".json"):
                table, first = _geojson_table(path), "feature 0"
            else:
                table, first = read_text_csv(path, csv_limits(options)), "row 2"
            rows = _convert(path, table, options, ctx, first)
            size = max(1, ctx.batch_rows)
            for start in range(0, max(rows.num_rows, 1), size):  # bounded batches
                part = rows.slice(start, size)
                yield Batch(TYPE, part, str(path), part.num_rows)


_DEGREES = ("crs84", "4326", "wgs84", "wgs 84")


def _join_key(text: str | None) -> str:
    """A name or address as a join key: NFKC, case folded, runs of spaces and punctuation
    between words made one space."""
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\s,.()\[\]·\-]+", " ", folded).split())


def _positions(path: Path, limits: CsvLimits) -> tuple[dict[str, dict[str, tuple[float, float]]],
                                                        dict[str, int]]:
    """The ``--coordinates`` file as {"address"|"name": {key: (lon, lat)}}, and how many
    keys of each were left out because the file gives them two different positions."""
    t = read_text_csv(path, limits)
    fields = _mapping(path, t.column_names, ())
    if not {"name", "address"} & set(fields):
        raise InputError("has no name or address column to join on (name/명칭/관서명, "
                         "address/주소/소재지)", path=str(path), record="line 1")

    def col(field: str) -> pa.Array | None:
        name = fields.get(field)
        return t.column(name).combine_chunks() if name is not None else None

    lon, lat, _ = coordinates(col("location"), col("lon"), col("lat"), t.num_rows)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    clashes: dict[str, int] = {}
    for field in ("address", "name"):
        values = col(field)
        if values is None:
            continue
        seen: dict[str, tuple[float, float]] = {}
        bad: set[str] = set()
        for text, x, y in zip(values.to_pylist(), lon.to_pylist(), lat.to_pylist(),
                              strict=True):
            key = _join_key(text)
            if not key or x is None or y is None:
                continue
            if key in seen and seen[key] != (x, y):
                bad.add(key)
            seen.setdefault(key, (x, y))
        out[field] = {k: v for k, v in seen.items() if k not in bad}
        clashes[field] = len(bad)
    return out, clashes


def _joined(path: Path, side: Path, name: pa.Array | None, address: pa.Array | None,
            lon: pa.Array, lat: pa.Array, ctx: ReadContext,
            limits: CsvLimits) -> tuple[pa.Array, pa.Array]:
    """Positions for the places that have none, from the ``--coordinates`` file: by address,
    else by name (not a name the places repeat, nor a key the file gives two positions for);
    a warning says how many were found each way and how many stay without a position."""
    known, clashes = _positions(side, limits)
    xs, ys = lon.to_pylist(), lat.to_pylist()
    by = {"address": 0, "name": 0}
    names = name.to_pylist() if name is not None else [None] * len(xs)
    addresses = address.to_pylist() if address is not None else [None] * len(xs)
    # a name the list repeats (중앙지구대 in many cities) does not say which one it is
    repeats = Counter(_join_key(v) for v in names)
    wanted = 0
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x is not None and y is not None:
            continue
        wanted += 1
        for field, text in (("address", addresses[i]), ("name", names[i])):
            key = _join_key(text)
            if field == "name" and repeats[key] > 1:
                continue
            hit = known.get(field, {}).get(key)
            if hit is not None:
                xs[i], ys[i] = hit
                by[field] += 1
                break
    found = by["address"] + by["name"]
    clash = "; ".join(f"{n} {f}(es) of {side.name} have two positions and were not used"
                      for f, n in clashes.items() if n)
    ctx.warn(f"{path.name}: {found} of {wanted} places without a position took it from "
             f"{side.name} (by address {by['address']}, by name {by['name']})"
             + (f"; {wanted - found} found none and are rejected (a place needs a position)"
                if wanted > found else "") + (f"; {clash}" if clash else ""))
    return pa.array(xs, pa.float64()), pa.array(ys, pa.float64())


def _require_degrees(path: Path, doc: dict[str, Any], features: list[Any]) -> None:
    """Refuse a GeoJSON in a projected CRS (EPSG:5179 in Korea, 27700 in the UK): its
    metres would be read as degrees. Named by a ``crs`` member, or seen in coordinates that
    no longitude/latitude has."""
    crs = doc.get("crs")
    named = json.dumps(crs.get("properties", crs) if isinstance(crs, dict) else crs)
    if crs is not None and not any(d in named.lower() for d in _DEGREES):
        match = re.search(r"EPSG:*(\d+)", named, re.IGNORECASE)
        system = f"EPSG:{match.group(1)}" if match else named
    else:
        points = [f["geometry"]["coordinates"] for f in features[:1000]
                  if isinstance(f, dict) and isinstance(f.get("geometry"), dict)
                  and f["geometry"].get("type") == "Point"
                  and isinstance(f["geometry"].get("coordinates"), list)
                  and len(f["geometry"]["coordinates"]) >= 2]
        far = [c for c in points if all(isinstance(v, int | float) for v in c[:2])
               and (abs(c[0]) > 180 or abs(c[1]) > 90)]
        if not points or len(far) * 2 <= len(points):
            return
        system = f"a projected system (e.g. {far[0][0]}, {far[0][1]})"
    raise InputError(f"its coordinates are in {system}, not WGS84 longitude/latitude",
                     path=str(path),
                     hint=f"reproject it first, e.g. ogr2ogr -t_srs EPSG:4326 "
                          f"{path.stem}-wgs84.geojson {path.name} (GeoJSON is WGS84 by "
                          "RFC 7946)")


def _geojson_table(path: Path) -> pa.Table:
    """Point features as a text table: properties plus a 'location' column 'POINT (lon lat)'."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"is not a GeoJSON file: {exc}", path=str(path)) from None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise InputError("is not a GeoJSON FeatureCollection", path=str(path))
    _require_degrees(path, doc, features)
    rows: list[dict[str, str]] = []
    for f in features:
        props = f.get("properties") or {} if isinstance(f, dict) else {}
        geom = f.get("geometry") or {} if isinstance(f, dict) else {}
        coords = geom.get("coordinates") if isinstance(geom, dict) else None
        row = {str(k): "" if v is None else str(v) for k, v in props.items()}
        if isinstance(f, dict) and "id" in f and "id" not in row:
            row["id"] = str(f["id"])
        ok = isinstance(geom, dict) and geom.get("type") == "Point" and isinstance(
            coords, list) and len(coords) >= 2
        row["location"] = f"POINT ({coords[0]} {coords[1]})" if ok and coords else json.dumps(
            geom, ensure_ascii=False)
        rows.append(row)
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: pa.array([r.get(k, "") for r in rows], pa.string()) for k in names})


def _local_ids(name: pa.Array | None, lon: pa.Array, lat: pa.Array) -> pa.Array:
    """Ids of places in a file without an id column: the name, so that moving a station a
    metre keeps its entity; the position (``lon,lat`` to 6 decimals) where the name is blank
    or names more than one place in the file (``name@lon,lat``)."""
    position = pc.binary_join_element_wise(
        pc.cast(pc.round(lon, 6), pa.string()), pc.cast(pc.round(lat, 6), pa.string()), ",")
    if name is None:
        return position
    named = blank_to_null(pc.utf8_trim_whitespace(name))
    counts = pa.table({"n": named}).group_by("n").aggregate([("n", "count")])
    repeated = counts.filter(pc.greater(counts["n_count"], 1))["n"]
    shared = pc.fill_null(pc.is_in(named, value_set=repeated), False)
    both = pc.binary_join_element_wise(named, position, "@")
    return pc.coalesce(pc.if_else(shared, both, named), position)


def _convert(path: Path, t: pa.Table, options: dict[str, Any], ctx: ReadContext,
             first: str) -> pa.Table:
    """The lake rows of a whole place list (ids need the whole list: a repeated name)."""
    kind = options["kind"]
    side = options.get("coordinates")
    fields = _mapping(path, t.column_names, options.get("map") or (), joined=side is not None)
    n = t.num_rows

    def col(field: str) -> pa.Array | None:
        name = fields.get(field)
        return t.column(name).combine_chunks() if name is not None else None

    lon, lat, present = coordinates(col("location"), col("lon"), col("lat"), n)
    if side is not None:
        lon, lat = _joined(path, Path(side), col("name"), col("address"), lon, lat, ctx,
                           csv_limits(options))
    ids = col("id")
    name = col("name")
    local = blank_to_null(ids) if ids is not None else _local_ids(name, lon, lat)
    fallback = pc.binary_join_element_wise(f"{kind} ", pc.fill_null(local, "?"), "")
    rows: dict[str, Any] = {
        "id": urns(TYPE, local, kind),
        "observed_at": pa.repeat(pa.scalar(ctx.arrival), n),
        "name": fallback if name is None else pc.coalesce(blank_to_null(name), fallback),
        "category": pa.array([[kind]] * n, pa.list_(pa.string())),
        "lon": lon, "lat": lat,
        "source": pa.repeat(pa.scalar(path.name), n),
        "_time_index": pa.repeat(pa.scalar("arrival"), n),
        "_record": pa.array([f"{first.split()[0]} {i + int(first.split()[1])}"
                             for i in range(n)], pa.string()),
    }
    for field in ("description", "areaServed"):
        if col(field) is not None:
            rows[field] = blank_to_null(unescape_html(col(field)))  # type: ignore[arg-type]
    if col("address") is not None:
        rows["address"] = postal_address(blank_to_null(col("address")))  # type: ignore[arg-type]
    mapped = set(fields.values())
    rows["_extra"] = extra_json([(c, t.column(c).combine_chunks()) for c in t.column_names
                                 if c not in mapped], n)
    if col("capacity") is not None:
        cap, bad = parse_numbers(col("capacity"))  # type: ignore[arg-type]
        rows["capacity"] = cap
        for i in np.flatnonzero(bad.to_numpy(zero_copy_only=False)):
            ctx.warn(f"{path.name}: capacity {col('capacity')[int(i)]} at "  # type: ignore[index]
                     f"{rows['_record'][int(i)]} is not a number; left empty")
    unusable = int(pc.sum(pc.and_(present, pc.is_null(lon))).as_py() or 0)
    if unusable:
        ctx.warn(f"{path.name}: {unusable} places have coordinates outside WGS84 or (0, 0); "
                 "they are rejected (a place needs a position)")
    return pa.table(rows)


ADAPTER = Places()
