"""GTFS-realtime ``FeedMessage`` files (protobuf, or its JSON rendering) into time series.

VehiclePositions become ``Vehicle`` rows (Smart Data Models): position, bearing, speed
(m/s converted to km/h), current status and stop, with relationships to the trip, route and
stop of the static feed with the same feed id. TripUpdates become ``GtfsDelayObserved`` rows,
one per stop-time update. A row is dated by its own timestamp, else by the feed header's
(``_time_index`` says which). Realtime feeds hold thousands of entities, not millions, so they
are converted entity by entity; the typed table is then gated in bulk like any other.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import check_feed_id, feed_slug
from hubctl.errors import InputError, UsageError
from hubctl.ngsild import entity_id
from hubctl.registry import get_type
from hubctl.rejects import Reject, reason
from hubctl.rows import build_table

__all__ = ["ADAPTER", "GtfsRealtime", "decode"]

KMH_PER_MS = 3.6
KNOWN_VERSIONS = ("1.0", "2.0")


def decode(path: Path) -> Any:
    """The FeedMessage in a file: binary protobuf, or JSON as ``json_format`` renders it."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from google.transit import gtfs_realtime_pb2

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from None
    message = gtfs_realtime_pb2.FeedMessage()
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        try:
            json_format.Parse(data.decode("utf-8-sig"), message, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"is JSON but not a GTFS-realtime FeedMessage: {exc}",
                             path=str(path), hint="give the feed as protobuf or as the JSON "
                                                  "rendering of one FeedMessage") from None
    else:
        try:
            message.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise InputError(f"is not a GTFS-realtime FeedMessage (protobuf): {exc}",
                             path=str(path), hint="check that this is the feed's .pb "
                                                  "response, not an HTML error page") from None
    if not message.HasField("header") or not message.header.gtfs_realtime_version:
        raise InputError("is not a GTFS-realtime FeedMessage: it has no header with a "
                         "gtfs_realtime_version", path=str(path),
                         hint="check that this is a GTFS-realtime feed")
    return message


class GtfsRealtime(Adapter):
    """The ``gtfs-rt`` adapter."""

    name = "gtfs-rt"
    entity_types = ("Vehicle", "GtfsDelayObserved")
    summary = ("GTFS-realtime FeedMessage (protobuf or JSON): VehiclePositions as Vehicle, "
               "TripUpdates as GtfsDelayObserved time series.")
    example = "hubctl ingest gtfs-rt vehicle-positions.pb --feed-id mbta"
    params: Sequence[click.Parameter] = (
        click.Option(["--feed-id"], metavar="ID", default=None,
                     help="Feed id of the static GTFS feed the trips, routes and stops belong "
                          "to (default: the file name as a slug)."),
        click.Option(["--vehicle-type"], metavar="TYPE", default=None,
                     help="Smart Data Models vehicleType of the feed's vehicles (bus, tram, "
                          "...), which GTFS-realtime does not carry (default: none)."),
    )

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Vehicle and GtfsDelayObserved batches of each file."""
        given = options.get("feed_id")
        feed = check_feed_id(given) if given else None
        kind = _vehicle_type(options.get("vehicle_type"))
        for path in inputs:
            message = decode(path)
            feed_id = feed or feed_slug(path.with_suffix("") if path.suffix else path)
            if feed is None:
                ctx.warn(f"{path.name}: feed id {feed_id!r} taken from the file name; pass "
                         "--feed-id with the static feed's id so trips, routes and stops "
                         "resolve")
            yield from _FileReader(path, message, feed_id, ctx, kind).batches()
            ctx.advance(path.stat().st_size)


def _vehicle_type(value: str | None) -> str | None:
    """``--vehicle-type``: one of SDM's vehicle types (the Vehicle schema's enum)."""
    if not value:
        return None
    known = get_type("Vehicle").attributes["vehicleType"].value_schema["enum"]
    if value not in known:
        raise UsageError(f"--vehicle-type {value!r} is not a Smart Data Models vehicle type",
                         hint=f"use one of: {', '.join(known)}")
    return value


class _FileReader:
    """One FeedMessage: its entities as lake rows, rejects and notes."""

    def __init__(self, path: Path, message: Any, feed: str, ctx: ReadContext,
                 vehicle_type: str | None = None) -> None:
        self.path, self.message, self.feed, self.ctx = path, message, feed, ctx
        self.vehicle_type = vehicle_type
        self.header_time = _epoch(message.header.timestamp) if message.header.HasField(
            "timestamp") else None
        self.notes: Counter[str] = Counter()
        self.rows: dict[str, list[dict[str, Any]]] = {"Vehicle": [], "GtfsDelayObserved": []}
        # "FeedEntity": entities that map to no type (alerts, deletions), rejected with a reason
        self.rejects: dict[str, list[Reject]] = {"Vehicle": [], "GtfsDelayObserved": [],
                                                 "FeedEntity": []}

    def batches(self) -> Iterator[Batch]:
        """Every entity converted, then one batch per type and ``batch_rows`` slice."""
        version = self.message.header.gtfs_realtime_version
        if version not in KNOWN_VERSIONS:
            self.ctx.warn(f"{self.path.name}: header gtfs_realtime_version {version!r} is not "
                          "a published version; read as 1.0")
        for entity in self.message.entity:
            self.entity(entity)
        for name in ("Vehicle", "GtfsDelayObserved"):
            yield from self.emit(name)
        if self.rejects["FeedEntity"]:
            yield Batch("Vehicle", None, str(self.path), len(self.rejects["FeedEntity"]),
                        rejects=self.rejects["FeedEntity"])
        for note, count in self.notes.items():
            self.ctx.warn(f"{self.path.name}: {count} {note}")

    def emit(self, name: str) -> Iterator[Batch]:
        """Typed batches of one entity type (type errors reported per row)."""
        rows, rejects = self.rows[name], self.rejects[name]
        step = max(self.ctx.batch_rows, 1)
        for start in range(0, max(len(rows), 1), step):
            part = rows[start:start + step]
            if not part and not rejects:
                return
            table, bad = build_table(part, get_type(name))
            table = table.append_column("_record", pa.array([r["_record"] for r in part],
                                                            pa.string()))
            yield Batch(name, table, str(self.path), len(part) + len(rejects), typed_bad=bad,
                        rejects=rejects)
            rejects = []

    def entity(self, entity: Any) -> None:
        """Route one FeedEntity to its converter; what has no entity type is rejected."""
        if entity.is_deleted:
            self.reject("FeedEntity", entity, "is_deleted: a deletion notice of an "
                                              "incremental feed; nothing to store")
            return
        if entity.HasField("vehicle"):
            self.vehicle(entity)
        if entity.HasField("trip_update"):
            self.trip_update(entity)
        if not (entity.HasField("vehicle") or entity.HasField("trip_update")):
            kinds = [f.name for f, _ in entity.ListFields() if f.name not in ("id", "is_deleted")]
            self.reject("FeedEntity", entity, f"the entity holds {' and '.join(kinds) or 'nothing'}"
                                              ": only vehicle positions and trip updates are "
                                              "ingested")

    def reject(self, type_name: str, entity: Any, detail: str) -> None:
        """Keep an entity that maps to no row, with its reason."""
        from google.protobuf import json_format

        raw = json.dumps(json_format.MessageToDict(entity), ensure_ascii=False)
        self.rejects[type_name].append(Reject(
            type_name, raw, [reason("unmapped-message", detail=detail)], file=str(self.path),
            record=f"entity {entity.id}"))

    def when(self, has: bool, stamp: int, source: str) -> tuple[datetime, str]:
        """The row's time and where it came from."""
        if has and stamp > 0:
            return _epoch(stamp), source
        if self.header_time is not None:
            self.notes[f"{source} missing: dated by the feed header's timestamp"] += 1
            return self.header_time, "header.timestamp"
        self.notes["entities without a timestamp in a feed without header timestamp: dated "
                   "by arrival"] += 1
        return self.ctx.arrival, "arrival"

    def urn(self, type_name: str, local: str) -> str | None:
        """The namespaced URN of a GTFS id, or None for an empty one."""
        return entity_id(type_name, f"{self.feed}:{local}") if local else None

    def vehicle(self, entity: Any) -> None:
        """One VehiclePosition as a Vehicle row."""
        vp = entity.vehicle
        desc = vp.vehicle
        vid = desc.id or desc.label
        if not vid:
            vid = entity.id
            self.notes["vehicle positions without a vehicle descriptor: id taken from the "
                       "feed entity id"] += 1
        at, source = self.when(vp.HasField("timestamp"), vp.timestamp, "vehicle.timestamp")
        pos = vp.position if vp.HasField("position") else None
        row: dict[str, Any] = {
            "id": self.urn("Vehicle", vid), "observed_at": at, "_time_index": source,
            "_record": f"entity {entity.id}", "feedId": self.feed, "dateObserved": at,
            "vehicleType": self.vehicle_type, "category": ["public"],
            "lon": _f32(pos.longitude) if pos else None,
            "lat": _f32(pos.latitude) if pos else None,
            "bearing": _f32(pos.bearing) if pos and pos.HasField("bearing") else None,
            "speed": _f32(pos.speed) * KMH_PER_MS if pos and pos.HasField("speed") else None,
            "currentStatus": _enum(vp, "current_status"),
            "currentStopSequence": vp.current_stop_sequence if vp.HasField(
                "current_stop_sequence") else None,
            "hasStop": self.urn("GtfsStop", vp.stop_id),
            "hasTrip": self.urn("GtfsTrip", vp.trip.trip_id),
            "hasRoute": self.urn("GtfsRoute", vp.trip.route_id),
            "tripStartDate": self.start_date(vp.trip.start_date),
            "name": desc.label or None, "vehiclePlateIdentifier": desc.license_plate or None,
            "occupancyStatus": _enum(vp, "occupancy_status"),
            "congestionLevel": _enum(vp, "congestion_level"),
        }
        self.rows["Vehicle"].append(row)

    def trip_update(self, entity: Any) -> None:
        """A TripUpdate as one GtfsDelayObserved row per stop-time update."""
        tu = entity.trip_update
        trip = tu.trip
        at, source = self.when(tu.HasField("timestamp"), tu.timestamp, "trip_update.timestamp")
        vid = tu.vehicle.id or tu.vehicle.label
        base: dict[str, Any] = {
            "observed_at": at, "_time_index": source, "feedId": self.feed, "dateObserved": at,
            "hasTrip": self.urn("GtfsTrip", trip.trip_id),
            "hasRoute": self.urn("GtfsRoute", trip.route_id),
            "hasVehicle": self.urn("Vehicle", vid) if vid else None,
            "tripStartDate": self.start_date(trip.start_date),
            "tripDelay": tu.delay if tu.HasField("delay") else None,
            "tripScheduleRelationship": _enum(trip, "schedule_relationship"),
        }
        stem = f"{trip.trip_id}:{trip.start_date}"
        if not trip.trip_id:
            self.reject("GtfsDelayObserved", entity, "trip_update without trip.trip_id: "
                                                     "cannot name the trip it delays")
            return
        if not tu.stop_time_update:
            self.rows["GtfsDelayObserved"].append({
                **base, "id": self.urn("GtfsDelayObserved", f"{stem}:trip"),
                "_record": f"entity {entity.id}"})
            return
        for k, stu in enumerate(tu.stop_time_update):
            seq = stu.stop_sequence if stu.HasField("stop_sequence") else None
            where = str(seq) if seq is not None else stu.stop_id
            row = {**base, "id": self.urn("GtfsDelayObserved", f"{stem}:{where}") if where
                   else None, "_record": f"entity {entity.id} stop_time_update {k}",
                   "hasStop": self.urn("GtfsStop", stu.stop_id), "stopSequence": seq,
                   "scheduleRelationship": _enum(stu, "schedule_relationship")}
            for name, event in (("arrival", stu.arrival), ("departure", stu.departure)):
                if stu.HasField(name):
                    row[f"{name}Delay"] = event.delay if event.HasField("delay") else None
                    row[f"{name}Time"] = _epoch(event.time) if event.HasField("time") else None
            self.rows["GtfsDelayObserved"].append(row)

    def start_date(self, text: str) -> date | str | None:
        """A trip's start_date (YYYYMMDD) as a date; bad text is passed on as a type error."""
        if not text:
            return None
        try:
            return datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            return text


def _f32(value: float) -> float:
    """A protobuf ``float`` as the decimal it was written as (42.38797, not 42.387969970...)."""
    return float(str(np.float32(value)))


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def _enum(message: Any, field: str) -> str | None:
    """The name of an enum field that is set, else None."""
    if not message.HasField(field):
        return None
    fd = message.DESCRIPTOR.fields_by_name[field]
    value = getattr(message, field)
    named = fd.enum_type.values_by_number.get(value)
    return named.name if named else str(value)


ADAPTER = GtfsRealtime()
