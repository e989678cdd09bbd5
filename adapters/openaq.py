"""OpenAQ long CSV, one pollutant per row, in any of three published layouts:

* the pandas-tutorial layout ``city,country,date.utc,location,parameter,value,unit`` with a
  station coordinates CSV (``--stations``: ``location,coordinates.latitude,
  coordinates.longitude``);
* OpenAQ's classic CSV export ``location,city,country,utc,local,parameter,value,unit,
  latitude,longitude,attribution`` (gases in ppm);
* the v3 CSV download ``location_id,location_name,parameter,value,unit,datetimeUtc,
  datetimeLocal,timezone,latitude,longitude,...`` and the v3 S3 archive ``location_id,
  sensors_id,location,datetime,lat,lon,parameter,units,value`` (stations keyed by
  ``location_id``; ``datetime`` carries its offset).

``--stations`` is optional when the file carries coordinates: then each station is the first
coordinates given for it in the file (derived rows that count no input records). ``--map
COLUMN=FIELD`` names other columns.

One input row is one pollutant at one station and hour; rows of the same station and hour
pivot into one AirQualityObserved row. Everything is vectorised over Arrow record batches:
Python only touches rejected records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl import csvread
from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import Problems, parse_map, resolve_columns
from hubctl.arrowkit import parse_numbers, parse_timestamps
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    CsvLimits,
    add_malformed,
    csv_limits,
    open_csv,
    require_columns,
)
from hubctl.errors import UsageError
from hubctl.gate import gate_for
from hubctl.ngsild import entity_id
from hubctl.registry import get_type
from hubctl.rejects import Reject, reason
from hubctl.units import conversion_factor, unit_code

__all__ = ["ADAPTER", "OpenAQ"]

FIELDS = ("time", "station", "name", "parameter", "value", "unit", "lat", "lon", "city")
ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("date.utc", "utc", "datetimeUtc", "datetime_utc", "date_utc", "datetime"),
    "station": ("location_id", "locationId", "location"),
    "name": ("location_name", "locationName", "location"),
    "parameter": ("pollutant",), "value": (), "unit": ("units",),
    "lat": ("latitude", "coordinates.latitude"), "lon": ("longitude", "coordinates.longitude",
                                                         "lng"),
    "city": ("locality",),
}
REQUIRED = [["time", "station", "parameter", "value", "unit"]]
PARAMETERS = {"pm25": "pm25", "pm2.5": "pm25", "pm10": "pm10", "no2": "no2", "o3": "o3",
              "so2": "so2", "co": "co", "no": "no", "nox": "nox"}
STATION_COLUMNS = ("location", "coordinates.latitude", "coordinates.longitude")
CELL_COLUMNS = tuple(sorted(set(PARAMETERS.values())))


class OpenAQ(Adapter):
    """The ``openaq`` adapter."""

    name = "openaq"
    entity_types = ("AirQualityObserved", "PointOfInterest")
    summary = ("OpenAQ long CSV (one pollutant per row: pandas-tutorial, classic export or v3 "
               "archive layout), with a station coordinates CSV unless the file has them.")
    example = ("hubctl ingest openaq air_quality_long.csv "
               "--stations air_quality_stations.csv")
    params: Sequence[click.Parameter] = (
        click.Option(["--stations"], type=click.Path(exists=True, dir_okay=False),
                     help="CSV with location,coordinates.latitude,coordinates.longitude "
                          "(needed when the measurements carry no latitude and longitude)."),
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN as FIELD (repeatable). Fields: " + ", ".join(FIELDS)
                          + " (time is UTC or carries its offset; station is the station's "
                          "key, name its name)."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Stations first (PointOfInterest), then the measurements of every input file."""
        limits = csv_limits(options)
        mapping = parse_map(options.get("mapping") or (), FIELDS)
        book = _Book()
        if options.get("stations"):
            stations, station_batch = _stations(Path(options["stations"]), ctx, limits)
            book.listed = stations
            yield station_batch
        held = _Held()
        for path in inputs:
            yield from _measurements(path, book, mapping, ctx, limits, held)
        yield from held.flush(book.table(), None)


class _Book:
    """The stations: from --stations, else the first coordinates of each station in the
    measurement files."""

    def __init__(self) -> None:
        self.listed: pa.Table | None = None
        self.keys: list[str] = []
        self.names: list[str] = []
        self.lat: list[float] = []
        self.lon: list[float] = []
        self._table: pa.Table | None = None

    def table(self) -> pa.Table:
        """The station table (location, lat, lon, aq_id, poi_id)."""
        if self.listed is not None:
            return self.listed
        if self._table is None or self._table.num_rows != len(self.keys):
            self._table = _station_table(self.keys, self.lat, self.lon)
        return self._table

    def learn(self, path: Path, t: pa.Table, cols: dict[str, str], ctx: ReadContext
              ) -> Batch | None:
        """Stations of this batch not seen before, as a PointOfInterest batch of derived rows
        (no input records of their own)."""
        lat, _bad_lat = parse_numbers(t.column(cols["lat"]).combine_chunks())
        lon, _bad_lon = parse_numbers(t.column(cols["lon"]).combine_chunks())
        key = pc.utf8_trim_whitespace(t.column(cols["station"]).combine_chunks())
        name = (pc.utf8_trim_whitespace(t.column(cols["name"]).combine_chunks())
                if "name" in cols else key)
        found = pa.table({"key": key, "name": name, "lat": lat, "lon": lon}).filter(
            pc.and_(pc.is_valid(lat), pc.is_valid(lon)))
        found = found.filter(pc.invert(pc.is_in(found["key"], value_set=pa.array(
            self.keys, pa.string()))))
        if not found.num_rows:
            return None
        firsts = found.group_by("key", use_threads=False).aggregate(
            [("name", "first"), ("lat", "first"), ("lon", "first")])
        start = len(self.keys)
        self.keys += firsts["key"].to_pylist()
        self.names += firsts["name_first"].to_pylist()
        self.lat += firsts["lat_first"].to_pylist()
        self.lon += firsts["lon_first"].to_pylist()
        n = len(self.keys) - start
        poi = pa.table({
            "id": pa.array([entity_id("PointOfInterest", k) for k in self.keys[start:]],
                           pa.string()),
            "observed_at": pa.repeat(pa.scalar(ctx.arrival), n),
            "name": pa.array(self.names[start:], pa.string()),
            "lon": pa.array(self.lon[start:], pa.float64()),
            "lat": pa.array(self.lat[start:], pa.float64()),
            "category": pa.array([["airQualityStation"]] * n, pa.list_(pa.string())),
            "source": pa.repeat(pa.scalar("OpenAQ"), n),
            "_time_index": pa.repeat(pa.scalar("arrival"), n),
            "_records": pa.array(np.zeros(n, dtype=np.int64)),
        })
        return Batch("PointOfInterest", poi, str(path), 0)


def _station_table(keys: list[str], lat: Any, lon: Any) -> pa.Table:
    return pa.table({"location": pa.array(keys, pa.string()),
                     "lat": pa.array(lat, pa.float64()), "lon": pa.array(lon, pa.float64()),
                     "aq_id": pa.array([entity_id("AirQualityObserved", s) for s in keys],
                                       pa.string()),
                     "poi_id": pa.array([entity_id("PointOfInterest", s) for s in keys],
                                        pa.string())})


def _stations(path: Path, ctx: ReadContext, limits: CsvLimits) -> tuple[pa.Table, Batch]:
    """The station table (one row per location) and its PointOfInterest batch."""
    stream = open_csv(path, limits=limits)
    require_columns(path, stream.schema.names, STATION_COLUMNS)
    table = stream.read_all()
    line_of = stream.lines.tolist()
    lat, bad_lat = parse_numbers(table.column("coordinates.latitude").combine_chunks())
    lon, bad_lon = parse_numbers(table.column("coordinates.longitude").combine_chunks())
    names = table.column("location").to_pylist()
    first: dict[str, int] = {}
    rejects: list[Reject] = []
    repeated = 0  # a station listed again: counted as a duplicate record, with a warning
    for i, name in enumerate(names):
        raw = ",".join(str(table.column(c)[i].as_py() or "") for c in STATION_COLUMNS)
        if bad_lat[i].as_py() or bad_lon[i].as_py() or not name:
            rejects.append(Reject("PointOfInterest", raw, [reason(
                "type-error", "location", value=raw, expected="name,lat,lon")],
                file=str(path), record=f"line {line_of[i]}"))
        elif name in first:
            j = first[name]
            ctx.warn(f"{path.name}: station {name} is listed again at line {line_of[i]} "
                     f"({lat[i]}, {lon[i]}); kept ({lat[j]}, {lon[j]}) from line {line_of[j]}")
            repeated += 1
        else:
            first[name] = i
    keep = pa.array(sorted(first.values()), pa.int64())
    kept = pa.array(names).take(keep).to_pylist()
    stations = _station_table(kept, lat.take(keep), lon.take(keep))
    n = stations.num_rows
    poi = pa.table({
        "id": stations["poi_id"],
        "observed_at": pa.repeat(pa.scalar(ctx.arrival), n),
        "name": stations["location"], "lon": stations["lon"], "lat": stations["lat"],
        "category": pa.array([["airQualityStation"]] * n, pa.list_(pa.string())),
        "source": pa.repeat(pa.scalar("OpenAQ"), n),
        "_time_index": pa.repeat(pa.scalar("arrival"), n),
    })
    out = Batch("PointOfInterest", poi, str(path), n + len(rejects) + repeated,
                rejects=rejects, duplicate=repeated)
    add_malformed(out, "PointOfInterest", path, stream.take_invalid())
    return stations, out


FLUSH_ROWS: int | None = None
"""Good input rows held for one pivot before the rows of the oldest hours are committed; None:
4 CSV blocks (``4 * hubctl.csvread.BATCH_ROWS``, 1 M rows): memory stays near 1 GB."""


class _Held:
    """Good measurement rows (one pollutant each) read but not yet pivoted: the pivot's open
    (station, hour) keys carried across CSV blocks and input files, whatever their order.

    Each block is accounted as read when it is read (its records stay ``unreached`` until
    the pivoted rows are committed); the rows are pivoted and committed together at the end
    of the input, so a (station, hour) split across blocks becomes one appended row and a
    fresh ingest never needs a MERGE. Past :data:`FLUSH_ROWS` held rows, the rows older than
    the newest block's first hour are committed early (bounded memory: a time-ordered input
    still never MERGEs); past twice that, all of them. Keys committed early can still come
    back later in an unsorted input; the lake's upsert then merges them (the same result).
    """

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.file = ""

    def add(self, good: pa.Table, file: str) -> None:
        """Hold the good rows of one block."""
        if good.num_rows:
            self.parts.append(good)
            self.rows += good.num_rows
            self.file = file

    def flush(self, stations: pa.Table, limit: int | None) -> Iterator[Batch]:
        """The pivoted rows held (all of them when ``limit`` is None; else, once more than
        ``limit`` are held, those older than the newest block's first hour)."""
        if not self.parts or (limit is not None and self.rows < limit):
            return
        held = pa.concat_tables(self.parts)
        keep = held.slice(0, 0)
        if limit is not None:  # keep the hours the newest block may still be filling
            newest = pc.min(self.parts[-1]["ts"])
            later = pc.fill_null(pc.greater_equal(held["ts"], newest), False)
            keep = held.filter(later)
            if keep.num_rows * 2 < held.num_rows:
                held = held.filter(pc.invert(later))
            elif self.rows < 2 * limit:  # mostly open hours (an unsorted input): wait
                return
            else:
                keep = held.slice(0, 0)
        self.parts = [keep] if keep.num_rows else []
        self.rows = keep.num_rows
        rows, dup, upd = _pivot(held, stations)
        yield Batch("AirQualityObserved", rows, self.file, 0, duplicate=dup, updated=upd,
                    cell_columns=CELL_COLUMNS, distinct_keys=True)


def _measurements(path: Path, book: _Book, mapping: dict[str, str], ctx: ReadContext,
                  limits: CsvLimits, held: _Held) -> Iterator[Batch]:
    stream = open_csv(path, limits=limits)
    cols = resolve_columns(path, stream.schema.names, ALIASES, mapping, REQUIRED)
    from_file = book.listed is None
    if from_file and not ("lat" in cols and "lon" in cols):
        raise UsageError(f"{path.name} has no latitude and longitude columns: give the "
                         "stations' coordinates with --stations FILE (location,"
                         "coordinates.latitude,coordinates.longitude)",
                         hint="or name the columns with --map COLUMN=lat --map COLUMN=lon")
    for batch in stream:
        ctx.advance(stream.take_read_bytes())
        t = pa.Table.from_batches([batch])
        if from_file:
            learned = book.learn(path, t, cols, ctx)
            if learned is not None:
                yield learned
        out, good = _convert(path, t, cols, stream.lines, book.table())
        add_malformed(out, "AirQualityObserved", path, stream.take_invalid())
        held.add(good, str(path))
        yield out
        yield from held.flush(book.table(), FLUSH_ROWS or 4 * csvread.BATCH_ROWS)


def _convert(path: Path, t: pa.Table, cols: dict[str, str], lines: np.ndarray,
             stations: pa.Table) -> tuple[Batch, pa.Table]:
    """The block's rejects (a batch of no rows that accounts for every record of the block)
    and its good rows (station index, hour, pollutant, value, city), for :class:`_Held`."""
    n = t.num_rows

    def col(field: str) -> pa.Array:
        return t.column(cols[field]).combine_chunks()

    ts, bad_ts = parse_timestamps(col("time"))
    measured, bad_value = parse_numbers(col("value"))
    param = pc.utf8_lower(pc.utf8_trim_whitespace(col("parameter")))
    attr = pc.if_else(pc.is_in(param, value_set=pa.array(list(PARAMETERS))),
                      _map(param, PARAMETERS), pa.scalar(None, pa.string()))
    factor = _factors(attr, col("unit"))
    value = pc.multiply(measured, factor)
    location = pc.utf8_trim_whitespace(col("station"))
    station_idx = pc.index_in(location, value_set=stations["location"])
    problems = Problems(t, "AirQualityObserved", path, lines)
    problems.flag(bad_ts, lambda i: reason("bad-timestamp", cols["time"],
                                             value=col("time")[i].as_py()))
    problems.flag(pc.is_null(ts), lambda i: reason("missing-required", cols["time"]))
    problems.flag(bad_value, lambda i: reason("type-error", cols["value"],
                                                value=col("value")[i].as_py(),
                                                expected="number"))
    problems.flag(pc.is_null(measured), lambda i: reason("missing-required", cols["value"]))
    problems.flag(pc.is_null(attr), lambda i: reason(
        "unknown-parameter", cols["parameter"], value=col("parameter")[i].as_py(),
        type="AirQualityObserved"))
    problems.flag(pc.and_(pc.is_valid(attr), pc.is_null(factor)), lambda i: reason(
        "unknown-unit", cols["unit"], unit=col("unit")[i].as_py(),
        canonical=_canonical(attr[i].as_py())))
    problems.flag(pc.is_null(station_idx), lambda i: reason(
        "unknown-station", cols["station"], value=col("station")[i].as_py()))
    _range_checks(problems, attr, value)
    rejects = problems.rejects()
    good = pa.table({"city": col("city")
                     if "city" in cols else pa.nulls(n, pa.string()),
                     "ts": ts, "attr": attr, "value": value,
                     "station": station_idx}).filter(problems.keep())
    return Batch("AirQualityObserved", None, str(path), n, rejects=rejects), good


def _map(values: pa.Array, mapping: dict[str, str]) -> pa.Array:
    keys = list(mapping)
    idx = pc.index_in(values, value_set=pa.array(keys))
    return pc.take(pa.array([mapping[k] for k in keys]), idx)


def _canonical(attr: str | None) -> str:
    et = get_type("AirQualityObserved")
    return (et.attributes[attr].unit or "") if attr in et.attributes else ""


def _factors(attr: pa.Array, unit: pa.Array) -> pa.Array:
    """Conversion factor to the canonical unit per row (null where not convertible)."""
    pairs = pc.binary_join_element_wise(pc.fill_null(attr, ""), pc.fill_null(unit, ""), "\x1f")
    uniq = pc.unique(pairs)
    factors: list[float | None] = []
    for pair in uniq.to_pylist():
        a, u = pair.split("\x1f", 1)
        code = unit_code(u)
        factors.append(conversion_factor(a, code, _canonical(a)) if a and code else None)
    return pc.take(pa.array(factors, pa.float64()), pc.index_in(pairs, value_set=uniq))


def _range_checks(problems: Problems, attr: pa.Array, value: pa.Array) -> None:
    """The schema's minimum/maximum of each pollutant, through the compiled gate."""
    gate = gate_for(get_type("AirQualityObserved"))
    for name in pc.unique(attr).to_pylist():
        if name is None:
            continue
        values = pc.if_else(pc.equal(attr, name), value, pa.scalar(None, pa.float64()))
        for i, r in gate.check_column(name, values):
            if i not in problems.rows:
                problems.add(i, [r])


def _pivot(good: pa.Table, stations: pa.Table) -> tuple[pa.Table, int, int]:
    """One row per (station, time) in numpy; repeats of a cell within the batch are counted
    (same value: duplicate, other value: updated) and the last one wins."""
    if good.num_rows == 0:
        return good.slice(0, 0), 0, 0
    station = good["station"].to_numpy().astype(np.int64)
    ts = pc.cast(good["ts"], pa.int64()).to_numpy()
    first, group = _groups(station, ts)
    size = len(first)
    names = [a for a in pc.unique(good["attr"]).to_pylist() if a]
    codes = pc.index_in(good["attr"], value_set=pa.array(names)).to_numpy(zero_copy_only=False)
    value = good["value"].to_numpy()
    records = np.zeros(size, dtype=np.int64)
    columns: dict[str, pa.Array] = {}
    dup = upd = 0
    for j, name in enumerate(names):
        mask = codes == j
        g, v = group[mask], value[mask]
        cell = np.full(size, np.nan)
        present = np.zeros(size, dtype=bool)
        counts = np.bincount(g, minlength=size)
        repeats = bool((counts > 1).any())
        if repeats:
            last = len(g) - 1 - np.unique(g[::-1], return_index=True)[1]  # last row per cell
            g_last, v_last = g[last], v[last]
        else:  # every cell once (the usual case): no sort
            g_last, v_last = g, v
        cell[g_last] = v_last
        present[g_last] = True
        records += present
        if repeats:
            lo, hi = np.full(size, np.inf), np.full(size, -np.inf)
            np.minimum.at(lo, g, v)
            np.maximum.at(hi, g, v)
            repeated = counts > 1
            dup += int((counts - 1)[repeated & (lo == hi)].sum())
            upd += int((counts - 1)[repeated & (lo != hi)].sum())
        columns[name] = pa.array(cell, mask=~present)
    first_rows = pa.array(first)
    at = pc.take(good["ts"], first_rows)
    st = pa.array(station[first])
    out = pa.table({
        "id": pc.take(stations["aq_id"], st), "observed_at": at, "dateObserved": at,
        "areaServed": pc.take(good["city"], first_rows),
        "lon": pc.take(stations["lon"], st), "lat": pc.take(stations["lat"], st),
        "refPointOfInterest": pc.take(stations["poi_id"], st),
        "source": pa.repeat(pa.scalar("OpenAQ"), size),
        "_time_index": pa.repeat(pa.scalar("dateObserved"), size),
        "_records": pa.array(records), **columns,
    })
    return out, dup, upd


def _groups(station: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each (station, time) group, group number of every row)."""
    lo = int(ts.min())
    span = int(ts.max()) - lo + 1
    if (int(station.max()) + 1) * span < 2**62:
        combined = station * span + (ts - lo)
    else:  # an enormous time range: fall back to a structured key
        combined = np.rec.fromarrays([station, ts]).view(np.dtype("V16"))
    _, first, group = np.unique(combined, return_index=True, return_inverse=True)
    return first, group.reshape(-1)


ADAPTER = OpenAQ()
