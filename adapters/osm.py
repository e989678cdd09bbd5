"""OpenStreetMap extracts (``.osm``, ``.osm.bz2`` XML; ``.osm.pbf`` through pyosmium) into
RoadSegment entities.

The file is streamed with ``xml.etree.ElementTree.iterparse``: every element is cleared as soon
as it is read, node ids and coordinates go into numpy arrays (24 bytes a node, no per-node
Python object survives), and only the node lists and tags of highway ways are kept. Ways are
then cut at graph nodes (way ends, nodes shared by two ways or visited twice) into one
RoadSegment per piece, all in numpy: lengths (haversine along the geometry), one-way handling
(``oneway=yes|-1``, roundabouts, motorways), speed limits (``maxspeed`` incl. mph and knots)
and the GeoJSON geometry text are built as whole columns.

One input record is one road segment; a highway way that yields no segment (its nodes are
missing from the extract) is one rejected record. Ways that are not roads for the chosen
``--network`` are skipped and counted in a warning.
"""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.errors import InputError
from hubctl.geo import haversine_m
from hubctl.rejects import Reject, reason

__all__ = ["ADAPTER", "DRIVE_CLASSES", "OSM", "ROAD_CLASSES", "VEHICLES_ALLOWED", "parse_maxspeed",
           "read_osm", "read_osm_pbf", "segments"]

SOURCE = "OpenStreetMap"
# Highway classes a motor vehicle (fire engine, ambulance, patrol car) can use.
DRIVE_CLASSES = frozenset({
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "living_street", "service", "road", "busway", "motorway_link", "trunk_link", "primary_link",
    "secondary_link", "tertiary_link"})
# Highway values that are never a usable road, whatever the network.
NOT_ROADS = frozenset({"proposed", "construction", "abandoned", "disused", "razed", "platform",
                       "bus_stop", "elevator", "emergency_access_point", "rest_area", "services",
                       "traffic_signals", "stop", "give_way", "crossing", "turning_circle"})
_FORWARD = frozenset({"yes", "true", "1"})
_REVERSE = frozenset({"-1", "reverse"})
_TWO_WAY = frozenset({"no", "false", "0", "reversible", "alternating"})
_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots|kn)?\s*$", re.IGNORECASE)
_UNIT_KMH = {None: 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": 1.609344, "knots": 1.852,
             "kn": 1.852}
_CHUNK = 1 << 20  # values buffered in Python lists before they become a numpy chunk
#: SDM RoadSegment.roadClass (its enum) of an OSM highway value; any other value is
#: OTHER_PUBLIC_ROAD. OSM's own value is kept in the hub's ``highway`` attribute.
ROAD_CLASSES = {
    **dict.fromkeys(("motorway", "motorway_link", "trunk", "trunk_link"), "NATIONAL_HIGHWAY"),
    **dict.fromkeys(("primary", "primary_link"), "STATE_HIGHWAY"),
    **dict.fromkeys(("secondary", "secondary_link", "tertiary", "tertiary_link"),
                    "MAJOR_CITY_ROAD"),
    **dict.fromkeys(("residential", "living_street", "unclassified", "road"), "MINOR_CITY_ROAD"),
    "service": "SERVICE_ROAD",
}
_MOTOR_VEHICLES = ("bus", "car", "caravan", "carWithCaravan", "carWithTrailer", "lorry",
                   "motorcycle", "tanker", "trailer", "van")
#: SDM RoadSegment.allowedVehicleType of an OSM highway value, from the class alone (access
#: tags are not read); drivable classes not listed allow ``anyVehicle``, others none.
VEHICLES_ALLOWED: dict[str, tuple[str, ...]] = {
    "motorway": _MOTOR_VEHICLES, "motorway_link": _MOTOR_VEHICLES, "busway": ("bus",),
    "cycleway": ("bicycle",), "path": ("bicycle",), "bridleway": ("bicycle",),
    "track": ("agriculturalVehicle",),
}


@cache
def parse_maxspeed(text: str | None) -> float | None:
    """A ``maxspeed`` tag in km/h: "50", "50 km/h", "30 mph", "10 knots"; for a list such as
    "50;30" the first value. None for "none", "walk", "signals", zone codes ("DE:urban")."""
    if not text:
        return None
    first = text.split(";")[0]
    match = _SPEED.match(first)
    if match is None:
        return None
    value = float(match.group(1)) * _UNIT_KMH[(match.group(2) or "").lower() or None]
    return round(value, 3) if value > 0 else None


def oneway_code(tags: dict[str, str]) -> int:
    """1 when traffic runs only along the node order, -1 only against it, 0 both ways."""
    value = tags.get("oneway", "").strip().lower()
    if value in _FORWARD:
        return 1
    if value in _REVERSE:
        return -1
    if value in _TWO_WAY:
        return 0
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") == "motorway":
        return 1
    return 0


class _Column:
    """A growing column: values buffer in a list and become numpy chunks of ``_CHUNK``."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype
        self.chunks: list[np.ndarray] = []
        self.buffer: list[Any] = []

    def append(self, value: Any) -> None:
        self.buffer.append(value)
        if len(self.buffer) >= _CHUNK:
            self.flush()

    def extend(self, values: list[Any]) -> None:
        self.buffer.extend(values)
        if len(self.buffer) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        """Move the buffer into a numpy chunk (the buffer list object stays the same)."""
        if self.buffer:
            self.chunks.append(np.asarray(self.buffer, dtype=self.dtype))
            self.buffer.clear()

    def array(self) -> np.ndarray:
        self.flush()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, self.dtype)


@dataclass
class Extract:
    """What an OSM file holds for routing: all nodes, and the highway ways kept."""

    node_id: np.ndarray
    node_lon: np.ndarray
    node_lat: np.ndarray
    way_id: np.ndarray  # per kept way
    way_start: np.ndarray  # offsets into refs, one more than ways
    refs: np.ndarray  # node ids of every kept way, concatenated
    tags: list[dict[str, str]]  # per kept way: the tags the segments use
    skipped: dict[str, int] = field(default_factory=dict)


_KEPT_TAGS = ("highway", "name", "ref", "oneway", "junction", "maxspeed", "lanes", "toll")


class _Collector:
    """What both readers (XML and PBF) gather: node columns, the kept ways, what was skipped."""

    def __init__(self) -> None:
        self.ids, self.lons, self.lats = (_Column(np.int64), _Column(np.float64),
                                          _Column(np.float64))
        self.way_ids, self.refs, self.starts = (_Column(np.int64), _Column(np.int64),
                                                _Column(np.int64))
        self.tags: list[dict[str, str]] = []
        self.skipped = {"ways that are not roads": 0, "nodes without coordinates": 0}
        self.n_refs = 0

    def add_way(self, way_id: Any, nds: list[Any], tags: dict[str, str]) -> None:
        """Keep one road way: its id, node refs and kept tags."""
        self.way_ids.append(way_id)
        self.starts.append(self.n_refs)
        self.refs.extend(nds)
        self.n_refs += len(nds)
        self.tags.append(tags)

    def extract(self) -> Extract:
        """The columns as an :class:`Extract` (a ValueError for a non-numeric id)."""
        self.starts.append(self.n_refs)
        return Extract(self.ids.array(), self.lons.array(), self.lats.array(),
                       self.way_ids.array(), self.starts.array(), self.refs.array(),
                       tags=self.tags, skipped=self.skipped)


def read_osm(path: Path, network: str = "drive", ctx: ReadContext | None = None) -> Extract:
    """Stream one OSM XML file (bz2 by suffix) into an :class:`Extract`."""
    ctx = ctx or ReadContext()
    got = _Collector()
    ids, lons, lats, skipped = got.ids, got.lons, got.lats, got.skipped
    with open(path, "rb") as raw:
        stream: IO[bytes] = bz2.BZ2File(raw) if path.name.endswith(".bz2") else raw
        seen = reported = 0
        try:
            events = ET.iterparse(stream, events=("start", "end"))
            _, root = next(events)
            if root.tag != "osm":
                raise InputError(f"is not OpenStreetMap XML (root element <{root.tag}>)",
                                 path=str(path), hint="export an .osm or .osm.bz2 extract")
            id_buf, lat_buf, lon_buf = ids.buffer, lats.buffer, lons.buffer
            for event, elem in events:
                if event == "start":
                    continue
                tag = elem.tag
                if tag == "node":
                    a = elem.attrib
                    lat, lon = a.get("lat"), a.get("lon")
                    if lat is not None and lon is not None:
                        id_buf.append(a["id"])
                        lat_buf.append(lat)
                        lon_buf.append(lon)
                        if len(id_buf) >= _CHUNK:
                            for column in (ids, lats, lons):
                                column.flush()
                    else:
                        skipped["nodes without coordinates"] += 1
                elif tag == "way":
                    way = _way(elem, network)
                    if way is None:
                        skipped["ways that are not roads"] += 1
                    else:
                        got.add_way(elem.attrib["id"], *way)
                elif tag != "relation":
                    continue
                root.clear()
                seen += 1
                if seen % 100_000 == 0:
                    ctx.advance(raw.tell() - reported)
                    reported = raw.tell()
            extract = got.extract()
        except ET.ParseError as exc:
            line, col = getattr(exc, "position", (0, 0))
            raise InputError(f"is not well-formed XML ({exc})", path=str(path),
                             record=f"line {line}, column {col}",
                             hint="the extract is damaged or truncated; export it again") from None
        except (OSError, EOFError) as exc:  # a damaged .bz2
            raise InputError(f"cannot be read ({exc})", path=str(path)) from None
        except ValueError as exc:  # a non-numeric id or coordinate
            raise InputError(f"has an element with a bad id or coordinate ({exc})",
                             path=str(path), hint="check the node and way attributes") from None
        ctx.advance(raw.tell() - reported)
    return extract


def _way(elem: ET.Element, network: str) -> tuple[list[str], dict[str, str]] | None:
    """(node refs, kept tags) of a way that is a road for ``network``, else None."""
    nds: list[str] = []
    tags: dict[str, str] = {}
    for child in elem:
        if child.tag == "nd":
            nds.append(child.attrib["ref"])
        elif child.tag == "tag":
            k = child.attrib.get("k", "")
            if k in _KEPT_TAGS or k == "area":
                tags[k] = child.attrib.get("v", "")
    road = _road_tags(tags, network)
    return None if road is None else (nds, road)


def _road_tags(tags: dict[str, str], network: str) -> dict[str, str] | None:
    """The kept tags of a way that is a road for ``network`` (XML or PBF), else None."""
    highway = tags.get("highway")
    if not highway or highway in NOT_ROADS or tags.get("area") == "yes":
        return None
    if network == "drive" and highway not in DRIVE_CLASSES:
        return None
    tags.pop("area", None)
    return tags


def read_osm_pbf(path: Path, network: str = "drive", ctx: ReadContext | None = None
                 ) -> Extract:
    """Stream one ``.osm.pbf`` (the format Geofabrik and BBBike hand out) into an
    :class:`Extract`, read with pyosmium: the same nodes and highway ways as the XML path."""
    try:
        import osmium
    except ImportError:
        raise InputError("is an OSM PBF extract, which needs pyosmium (a hubctl dependency "
                         "this installation lacks)", path=str(path),
                         hint="pip install 'osmium>=4.0' (or make setup), or convert it: "
                              "osmium cat FILE.osm.pbf -o FILE.osm.bz2") from None

    ctx = ctx or ReadContext()
    got = _Collector()
    try:
        for obj in osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY):
            if isinstance(obj, osmium.osm.Node):
                loc = obj.location
                if loc.valid():
                    got.ids.append(obj.id)
                    got.lons.append(loc.lon)
                    got.lats.append(loc.lat)
                else:
                    got.skipped["nodes without coordinates"] += 1
                continue
            if not isinstance(obj, osmium.osm.Way):
                continue
            kept = {t.k: t.v for t in obj.tags if t.k in _KEPT_TAGS or t.k == "area"}
            road = _road_tags(kept, network)
            if road is None:
                got.skipped["ways that are not roads"] += 1
                continue
            got.add_way(obj.id, [n.ref for n in obj.nodes], road)
    except RuntimeError as exc:  # libosmium: a damaged or truncated file
        raise InputError(f"cannot be read as OSM PBF ({exc})", path=str(path),
                         hint="the extract is damaged or truncated; download it again") from None
    ctx.advance(path.stat().st_size)
    return got.extract()


@dataclass
class Segments:
    """Road segments as columns (one row per way piece between graph nodes)."""

    table: pa.Table
    rejected_ways: list[tuple[int, int, int]]  # (way id, node refs, refs without coordinates)
    missing_refs: int
    graph_nodes: int


def segments(ex: Extract) -> Segments:
    """Cut the ways of an extract at graph nodes into segments, all columns in numpy."""
    order = np.argsort(ex.node_id, kind="stable")
    sorted_ids = ex.node_id[order]
    n_ways = len(ex.way_id)
    lengths = np.diff(ex.way_start)
    way_of = np.repeat(np.arange(n_ways), lengths)
    pos_in_way = np.arange(len(ex.refs)) - np.repeat(ex.way_start[:-1], lengths)
    at = np.searchsorted(sorted_ids, ex.refs)
    at = np.minimum(at, max(len(sorted_ids) - 1, 0))
    present = (sorted_ids[at] == ex.refs) if len(sorted_ids) else np.zeros(len(ex.refs), bool)
    # a chain is a run of consecutive present refs of one way; a missing node breaks the way
    chain_start = pos_in_way == 0
    chain_start[1:] |= ~present[:-1]
    chain = np.cumsum(chain_start)
    keep = present.copy()
    keep[1:] &= ~((ex.refs[1:] == ex.refs[:-1]) & (chain[1:] == chain[:-1]))  # repeated node
    ref, way, pos, chain = ex.refs[keep], way_of[keep], pos_in_way[keep], chain[keep]
    node_at = order[at[keep]]
    size = np.bincount(chain, minlength=int(chain.max(initial=0)) + 1)[chain]
    ok = size >= 2
    ref, way, pos, chain, node_at = ref[ok], way[ok], pos[ok], chain[ok], node_at[ok]
    rejected = _rejected_ways(ex, way, present, way_of)
    lon, lat = ex.node_lon[node_at], ex.node_lat[node_at]
    first = np.ones(len(ref), bool)
    first[1:] = chain[1:] != chain[:-1]
    last = np.ones(len(ref), bool)
    last[:-1] = chain[:-1] != chain[1:]
    _, inverse, counts = np.unique(ref, return_inverse=True, return_counts=True)
    is_node = first | last | (counts[inverse] >= 2)
    node_pos = np.flatnonzero(is_node)
    s = node_pos[~last[node_pos]]
    e = node_pos[np.searchsorted(node_pos, s, side="right")]
    step = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
    walked = np.concatenate([[0.0], np.cumsum(step)])
    seg_way = way[s]
    direction = np.array([oneway_code(ex.tags[w]) for w in range(n_ways)], np.int8)[seg_way]
    rev = direction < 0
    head, tail = np.where(rev, e, s), np.where(rev, s, e)
    n_points = e - s + 1
    offsets = np.concatenate([[0], np.cumsum(n_points)])
    local = np.arange(offsets[-1]) - np.repeat(offsets[:-1], n_points)
    point = np.where(np.repeat(rev, n_points), np.repeat(e, n_points) - local,
                     np.repeat(s, n_points) + local)
    table = _table(ex, seg_way, pos[s], ref[head], ref[tail], lon, lat, head, tail, point,
                   offsets, walked[e] - walked[s], direction != 0)
    return Segments(table, rejected, int((~present).sum()), int(len(np.unique(ref[node_pos]))))


def _rejected_ways(ex: Extract, kept_way: np.ndarray, present: np.ndarray,
                   way_of: np.ndarray) -> list[tuple[int, int, int]]:
    has = np.zeros(len(ex.way_id), bool)
    has[kept_way] = True
    missing = np.bincount(way_of[~present], minlength=len(ex.way_id))
    total = np.diff(ex.way_start)
    return [(int(ex.way_id[w]), int(total[w]), int(missing[w])) for w in np.flatnonzero(~has)]


def _table(ex: Extract, seg_way: np.ndarray, start_pos: np.ndarray, start_node: np.ndarray,
           end_node: np.ndarray, lon: np.ndarray, lat: np.ndarray, head: np.ndarray,
           tail: np.ndarray, point: np.ndarray, offsets: np.ndarray, length: np.ndarray,
           oneway: np.ndarray) -> pa.Table:
    n = len(seg_way)
    way_id = ex.way_id[seg_way]
    pair = _pairs(lon, lat)
    ids = pc.binary_join_element_wise(
        "urn:ngsi-ld:RoadSegment:osm-", pc.cast(pa.array(way_id), pa.string()), "-",
        pc.cast(pa.array(start_pos), pa.string()), "")
    line = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                                   pair.take(pa.array(point))), ",")
    w = pa.array(seg_way)
    per_way = _way_columns(ex)
    return pa.table({
        "id": ids,
        "name": per_way["name"].take(w),
        "refRoad": pc.binary_join_element_wise(
            "urn:ngsi-ld:Road:osm-", pc.cast(pa.array(way_id), pa.string()), ""),
        "roadClass": per_way["roadClass"].take(w),
        "highway": per_way["highway"].take(w),
        "location": pc.binary_join_element_wise(
            '{"type":"LineString","coordinates":[', line, "]}", ""),
        "startPoint": _point_json(pair.take(pa.array(head))),
        "endPoint": _point_json(pair.take(pa.array(tail))),
        "startNode": pa.array(start_node, pa.int64()),
        "endNode": pa.array(end_node, pa.int64()),
        "wayId": pa.array(way_id, pa.int64()),
        "length": pa.array(np.round(length, 3)),
        "maximumAllowedSpeed": per_way["maximumAllowedSpeed"].take(w),
        "totalLaneNumber": per_way["totalLaneNumber"].take(w),
        "allowedVehicleType": per_way["allowedVehicleType"].take(w),
        "category": _categories(oneway, per_way["link"].take(w), per_way["toll"].take(w)),
        "source": pa.repeat(pa.scalar(SOURCE), n),
    })


def _pairs(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """``lon,lat`` text of every point, 7 decimals as OSM stores them."""
    return pc.binary_join_element_wise(
        "[", pc.cast(pa.array(np.round(lon, 7)), pa.string()), ",",
        pc.cast(pa.array(np.round(lat, 7)), pa.string()), "]", "")


def _point_json(pair: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('{"type":"Point","coordinates":', pair, "}", "")


def _way_columns(ex: Extract) -> dict[str, pa.Array]:
    """Per-way attribute columns (a way's tags are parsed once, however many pieces it has)."""
    names, classes, speeds, lanes, link, toll, allowed = [], [], [], [], [], [], []
    for t in ex.tags:
        names.append(t.get("name") or t.get("ref") or None)
        highway = t.get("highway", "")
        classes.append(highway)
        allowed.append(list(VEHICLES_ALLOWED.get(
            highway, ("anyVehicle",) if highway in DRIVE_CLASSES else ())))
        speeds.append(parse_maxspeed(t.get("maxspeed")))
        lanes.append(_lanes(t.get("lanes")))
        link.append(highway.endswith("_link"))
        toll.append(t.get("toll", "").lower() == "yes")
    highways = pa.array(classes, pa.string())
    road_class = [ROAD_CLASSES.get(c, "OTHER_PUBLIC_ROAD") for c in classes]
    return {"name": pa.array(names, pa.string()), "highway": highways,
            "roadClass": pa.array(road_class, pa.string()),
            "allowedVehicleType": pa.array(allowed, pa.list_(pa.string())),
            "maximumAllowedSpeed": pa.array(speeds, pa.float64()),
            "totalLaneNumber": pa.array(lanes, pa.int64()),
            "link": pa.array(link, pa.bool_()), "toll": pa.array(toll, pa.bool_())}


def _lanes(text: str | None) -> int | None:
    if not text:
        return None
    first = text.split(";")[0].strip()
    return int(first) if first.isdigit() and 1 <= int(first) <= 20 else None


def _categories(oneway: np.ndarray, link: pa.Array, toll: pa.Array) -> pa.Array:
    """SDM ``category`` lists: oneway, link, toll where they apply (empty list otherwise)."""
    flags = np.column_stack([oneway, link.to_numpy(zero_copy_only=False),
                             toll.to_numpy(zero_copy_only=False)]).astype(bool)
    flat = np.flatnonzero(flags.ravel()) % 3
    offsets = np.concatenate([[0], np.cumsum(flags.sum(axis=1))]).astype(np.int32)
    values = pa.array(["oneway", "link", "toll"]).take(pa.array(flat))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


class OSM(Adapter):
    """The ``osm`` adapter."""

    name = "osm"
    entity_types = ("RoadSegment",)
    summary = ("OpenStreetMap extract (.osm, .osm.bz2, .osm.pbf): highways cut at "
               "intersections into RoadSegments (length, class, one-way, speed limit, "
               "geometry).")
    example = "hubctl ingest osm west-oakland.osm.bz2 --network drive"
    params: Sequence[click.Parameter] = (
        click.Option(["--network"], type=click.Choice(["drive", "all"]), default="drive",
                     show_default=True,
                     help="drive: roads a motor vehicle can use; all: also footways, cycleways, "
                          "paths, steps and tracks."),
    )

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """One file after the other: parse, cut into segments, yield bounded batches."""
        network = options.get("network") or "drive"
        for path in inputs:
            pbf = path.name.lower().endswith(".pbf")
            ex = read_osm_pbf(path, network, ctx) if pbf else read_osm(path, network, ctx)
            seg = segments(ex)
            _warn(path, ex, seg, ctx)
            table = seg.table.append_column(
                "observed_at", pa.repeat(pa.scalar(ctx.arrival), seg.table.num_rows))
            rejects = [Reject("RoadSegment", f'<way id="{w}"> with {total} node refs, '
                              f"{missing} not in the extract",
                              [reason("unknown-reference", "nd", value=str(w), type="node",
                                      where=f"{path.name} (fewer than 2 of its nodes)")],
                              file=str(path), record=f"way {w}")
                       for w, total, missing in seg.rejected_ways]
            step = max(ctx.batch_rows, 1)
            for lo in range(0, max(table.num_rows, 1), step):
                part = table.slice(lo, step)
                mine = rejects if lo == 0 else []
                yield Batch("RoadSegment", part, str(path), part.num_rows + len(mine),
                            rejects=mine)


def _warn(path: Path, ex: Extract, seg: Segments, ctx: ReadContext) -> None:
    notes = [f"{n:,} {what}" for what, n in ex.skipped.items() if n]
    if seg.missing_refs:
        notes.append(f"{seg.missing_refs:,} way node refs not in the extract (ways cut there)")
    if notes:
        ctx.warn(f"{path.name}: skipped " + "; ".join(notes))
    if seg.table.num_rows == 0:
        ctx.warn(f"{path.name}: no road segments found (is it an OSM extract with highways?)")


ADAPTER = OSM()
