"""GTFS static feeds (a zip or a folder) into the Gtfs* entity types of Smart Data Models.

Every id is namespaced by the feed id (``urn:ngsi-ld:GtfsStop:<feed>:<stop_id>``), so several
feeds live in one lake. The feed is checked before anything is written: a missing required
file or column fails the run naming both. Then the files are read in dependency order
(agency, stops, routes, calendars, shapes, trips, frequencies, services, stop times); a bad
row is rejected with its reasons and the rest is written. stop_times.txt is streamed in blocks
of ``batch_rows`` and converted with Arrow and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import check_feed_id, feed_slug
from hubctl.adapters import gtfs_tables as tables
from hubctl.adapters.gtfs_parse import trimmed
from hubctl.adapters.gtfs_shapes import shapes
from hubctl.adapters.gtfs_source import (
    DEFAULT_ZIP_LIMITS,
    FeedSource,
    ZipLimits,
    find_feeds,
)
from hubctl.adapters.gtfs_stop_times import StopTimes
from hubctl.adapters.gtfs_tables import Converted, Feed
from hubctl.csvread import CSV_LIMIT_PARAMS, BadLine, csv_limits
from hubctl.errors import InputError, UsageError
from hubctl.rejects import Reject, reason

__all__ = ["ADAPTER", "REQUIRED_COLUMNS", "Gtfs"]

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "agency.txt": ("agency_name", "agency_url", "agency_timezone"),
    "stops.txt": ("stop_id", "stop_lat", "stop_lon"),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "calendar.txt": ("service_id", *tables.DAYS, "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs"),
}
REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
# Standard GTFS files that have no entity type here yet: read by nobody, said so in a warning.
NOT_INGESTED = ("feed_info.txt", "transfers.txt", "fare_attributes.txt",
                "fare_rules.txt", "fare_media.txt", "fare_products.txt",
                "fare_leg_rules.txt", "fare_transfer_rules.txt", "fare_leg_join_rules.txt",
                "rider_categories.txt", "areas.txt", "stop_areas.txt", "networks.txt",
                "route_networks.txt", "timeframes.txt", "pathways.txt", "levels.txt",
                "location_groups.txt", "location_group_stops.txt", "locations.geojson",
                "booking_rules.txt", "translations.txt", "attributions.txt")
# Whole-file converters in the order they run (each may need what the earlier ones accepted).
_SMALL: tuple[tuple[str, Callable[[Feed, pa.Table, str], Converted]], ...] = (
    ("agency.txt", tables.agency), ("stops.txt", tables.stops), ("routes.txt", tables.routes),
    ("calendar.txt", tables.calendar), ("calendar_dates.txt", tables.calendar_dates),
    ("shapes.txt", shapes), ("trips.txt", tables.trips),
    ("frequencies.txt", tables.frequencies))


class Gtfs(Adapter):
    """The ``gtfs`` adapter."""

    name = "gtfs"
    entity_types = ("GtfsAgency", "GtfsStop", "GtfsRoute", "GtfsCalendarRule",
                    "GtfsCalendarDateRule", "GtfsShape", "GtfsTrip", "GtfsFrequency",
                    "GtfsService", "GtfsStopTime")
    summary = ("GTFS static feed, a zip or a folder: agencies, stops, routes, calendars, "
               "shapes, trips, frequencies, stop times.")
    example = "hubctl ingest gtfs cairns-2014.zip --feed-id cairns"
    accepts_folders = True  # an unzipped feed is one input
    params: Sequence[click.Parameter] = (
        click.Option(["--feed-id"], metavar="ID", default=None,
                     help="Namespace of the feed's ids (default: the zip or folder name as a "
                          "slug, e.g. cairns-2014). Use the same id for the GTFS-realtime "
                          "feed of the same agency."),
        click.Option(["--max-unzipped-bytes"], type=click.IntRange(1), default=None,
                     help="Refuse a zipped feed whose files declare more than this many bytes "
                          f"unpacked (default {DEFAULT_ZIP_LIMITS.max_unzipped_bytes:,})."),
        click.Option(["--max-zip-ratio"], type=click.FloatRange(1), default=None,
                     help="Refuse a zipped feed with a file over 1 MiB that unpacks to more "
                          "than this many times its packed size (default "
                          f"{DEFAULT_ZIP_LIMITS.max_ratio:.0f})."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Batches of each feed, in dependency order; every feed is checked first."""
        feeds = find_feeds(list(inputs))
        given = options.get("feed_id")
        if given and len(feeds) > 1:
            raise UsageError(f"--feed-id names one feed but {len(feeds)} feeds were given",
                             hint="ingest them one at a time, each with its --feed-id")
        ids = [check_feed_id(given) if given else feed_slug(f) for f in feeds]
        if len(set(ids)) != len(ids):
            raise UsageError(f"two feeds would get the same feed id {ids}",
                             hint="ingest them one at a time with distinct --feed-id values")
        zip_limits = ZipLimits(
            max_unzipped_bytes=int(options.get("max_unzipped_bytes")
                                   or DEFAULT_ZIP_LIMITS.max_unzipped_bytes),
            max_ratio=float(options.get("max_zip_ratio") or DEFAULT_ZIP_LIMITS.max_ratio))
        sources: list[FeedSource] = []
        try:
            for f in feeds:
                sources.append(FeedSource(f, csv_limits(options), zip_limits))
        except BaseException:
            for src in sources:
                src.close()
            raise
        try:
            for src in sources:
                _check(src, ctx)
            for src, feed_id in zip(sources, ids, strict=True):
                yield from _FeedReader(src, Feed(feed_id, ctx.arrival, ctx.warn), ctx).batches()
        finally:
            for src in sources:
                src.close()


def _check(src: FeedSource, ctx: ReadContext) -> None:
    """Fail before writing anything when a required file or column is missing."""
    have = set(src.members)
    gtfs_files = set(REQUIRED_COLUMNS) | set(NOT_INGESTED)
    if not have & gtfs_files:
        raise InputError("is not a GTFS feed: it holds none of " + ", ".join(REQUIRED_FILES),
                         path=str(src.path), hint="give the folder or zip of a GTFS feed")
    missing = [f for f in REQUIRED_FILES if f not in have]
    if "calendar.txt" not in have and "calendar_dates.txt" not in have:
        missing.append("calendar.txt or calendar_dates.txt")
    if missing:
        raise InputError(f"is not a complete GTFS feed: required file(s) {', '.join(missing)} "
                         "missing", path=str(src.path),
                         hint="a GTFS feed needs agency, stops, routes, trips, stop_times and "
                              "a calendar; check that the whole feed was extracted")
    for name, need in REQUIRED_COLUMNS.items():
        if name not in have:
            continue
        columns = src.header(name)
        if not columns and name in REQUIRED_FILES:
            raise InputError("is empty (not even a header line)", path=src.where(name),
                             hint="a GTFS file starts with a header line of column names")
        lacking = [c for c in need if c not in columns] if columns else []
        if lacking:
            raise InputError(
                f"lacks the required column(s) {', '.join(lacking)}; the header has "
                f"{', '.join(columns)}", path=src.where(name), record="line 1",
                hint="fix the feed's header (GTFS reference: gtfs.org/schedule/reference)")
    ignored = sorted(have & set(NOT_INGESTED))
    if ignored:
        ctx.warn(f"{src.path.name}: {', '.join(ignored)} not ingested (no entity type for "
                 "them yet)")
    unknown = sorted(have - gtfs_files)
    if unknown:
        ctx.warn(f"{src.path.name}: {', '.join(unknown)} not part of GTFS; ignored")


class _FeedReader:
    """One feed: its files in dependency order, as batches."""

    def __init__(self, src: FeedSource, feed: Feed, ctx: ReadContext) -> None:
        self.src, self.feed, self.ctx = src, feed, ctx
        self.all_ids: dict[str, pa.Array] = {}
        self.scope = ("feedId", feed.feed_id)

    def batches(self) -> Iterator[Batch]:
        """Every file's batches, then the services, then the stop times."""
        accepted: dict[str, pa.Array] = {}
        core = 0  # agencies, stops, routes and trips read
        for name, convert in _SMALL:
            if name not in self.src.members:
                continue
            gf = self.src.open(name, self.ctx.batch_rows)
            table, malformed = gf.read_all()
            if name in ("agency.txt", "stops.txt", "routes.txt", "trips.txt"):
                core += table.num_rows + len(malformed)
                if name == "trips.txt" and not core:
                    raise InputError("has no agencies, stops, routes or trips: agency.txt, "
                                     "stops.txt, routes.txt and trips.txt hold a header only",
                                     path=str(self.src.path),
                                     hint="check that the export is complete (a feed "
                                          "exported before its data was loaded?)")
            done = convert(self.feed, table, gf.where)
            accepted[name] = done.ids
            key = {"stops.txt": "stop_id", "trips.txt": "trip_id"}.get(name)
            if key:
                self.all_ids[name] = trimmed(table, key)
            yield from self._emit(done, gf.where, malformed)
            self.ctx.advance(self.src.size(name))
        services = tables.services(self.feed)
        yield Batch("GtfsService", services, str(self.src.path), 0, unique_keys=True,
                    replaces=self.scope)
        yield from self._stop_times(accepted.get("trips.txt", pa.array([], pa.string())))
        for name in Gtfs.entity_types:  # this feed id now holds this version, and only it
            yield Batch(name, None, str(self.src.path), 0, replaces=self.scope)

    def _stop_times(self, trips: pa.Array) -> Iterator[Batch]:
        converter = StopTimes(self.feed, trips, self._rejected("trips.txt", trips),
                              self.feed.stops, self._rejected("stops.txt", self.feed.stops))
        gf = self.src.open("stop_times.txt", self.ctx.batch_rows)
        for table, malformed in gf.batches():
            yield from self._emit(converter.convert(table, gf.where), gf.where, malformed)
            self.ctx.advance(self.src.disk_share("stop_times.txt", table.num_rows,
                                                 gf.bytes_per_row))
        for warning in converter.end_warnings():
            self.ctx.warn(f"{gf.where}: {warning}")

    def _rejected(self, name: str, accepted: pa.Array) -> pa.Array:
        every = self.all_ids.get(name, pa.array([], pa.string())).drop_null()
        return pc.filter(every, pc.invert(pc.is_in(every, value_set=accepted)))

    def _emit(self, done: Converted, where: str, malformed: list[BadLine]) -> Iterator[Batch]:
        """The good rows in slices of ``batch_rows``; rejects ride with the first slice."""
        rejects = done.rejects + [_malformed(done.entity_type, where, m) for m in malformed]
        rows = done.rows
        step = max(self.ctx.batch_rows, 1)
        start = 0
        while True:
            part = rows.slice(start, step)
            records = _records(part) + len(rejects)
            # keys are unique across the run: repeats were rejected (duplicate-key) and two
            # feeds never share a feed id
            yield Batch(done.entity_type, part, where, records, rejects=rejects,
                        unique_keys=True, replaces=self.scope)
            rejects = []
            start += step
            if start >= rows.num_rows:
                return


def _records(rows: pa.Table) -> int:
    if "_records" in rows.column_names:
        return int(pc.sum(rows.column("_records")).as_py() or 0)
    return rows.num_rows


def _malformed(entity_type: str, where: str, bad: BadLine) -> Reject:
    return Reject(entity_type, bad.text, [reason(bad.code, detail=bad.detail)],
                  file=where, record=f"line {bad.line}" if bad.line else bad.text[:60])


ADAPTER = Gtfs()
