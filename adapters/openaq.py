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

Reading is a map and a fold: :meth:`OpenAQ.read_parts` reads and checks each block into its
rejects and its good readings (a part: ``Batch.part``), :meth:`OpenAQ.fold` holds the parts'
readings and pivots them (:mod:`hubctl.adapters.openaq_pivot`). With ``--stations`` each byte
range of each input can be read on its own (``ingest --engine``: the executors read the
ranges, the driver folds); without it, a station's coordinates come from the first row that
gives them anywhere in the input, and the whole input is read in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import Problems, parse_map, resolve_columns
from hubctl.adapters.openaq_pivot import Held, Readings
from hubctl.arrowkit import parse_numbers, parse_timestamps
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    CsvLimits,
    CsvStream,
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
from hubctl.types import TIMESTAMP
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
_DICT = pa.dictionary(pa.int32(), pa.string())


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
        book = _Book()
        return _fold(_parts(inputs, options, ctx, book), book, ctx)

    def parts_apart(self, options: dict[str, Any]) -> bool:
        """With ``--stations``: every block is checked against the same station list."""
        return bool(options.get("stations"))

    def read_parts(self, inputs: Sequence[Path], options: dict[str, Any],
                   ctx: ReadContext) -> Iterator[Batch]:
        """The station batch, then each block's rejects and its good readings (a part)."""
        return _parts(inputs, options, ctx, _Book())

    def fold(self, parts: Iterator[Batch], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The parts' readings pivoted (the station list read again, quietly, for its
        table); every other batch as it comes."""
        book = _Book()
        if options.get("stations"):
            quiet = replace(ctx, warn=lambda message: None)
            book.listed = _stations(Path(options["stations"]), quiet, csv_limits(options))[0]
        return _fold(parts, book, ctx)


def _parts(inputs: Sequence[Path], options: dict[str, Any], ctx: ReadContext,
           book: _Book) -> Iterator[Batch]:
    limits = csv_limits(options)
    mapping = parse_map(options.get("mapping") or (), FIELDS)
    if options.get("stations"):
        stations, station_batch = _stations(Path(options["stations"]), ctx, limits)
        book.listed = stations
        yield station_batch
    for path in inputs:
        yield from _measurements(path, book, mapping, ctx, limits)


def _fold(parts: Iterator[Batch], book: _Book, ctx: ReadContext) -> Iterator[Batch]:
    """Hold the readings of each part and pivot them (early past :data:`FLUSH_ROWS`, all at
    the end); the other batches pass."""
    held = Held(CELL_COLUMNS, "AirQualityObserved",
                {"source": "OpenAQ", "_time_index": "dateObserved"}, ctx.batch_rows)
    for batch in parts:
        if not batch.part:
            yield batch
            continue
        assert batch.rows is not None
        held.add(_readings(batch.rows, held), batch.file)
        yield from held.flush(book.table(), FLUSH_ROWS)
    yield from held.flush(book.table())


def _readings(part: pa.Table, held: Held) -> Readings:
    """A part's readings, its cities coded in ``held``'s city list."""
    city = part.column("city").combine_chunks()
    codes = held.city_codes(city.dictionary.to_pylist())
    idx = city.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    cities = np.where(idx >= 0, codes[np.maximum(idx, 0)] if len(codes) else -1, -1)
    return Readings(*(part.column(c).to_numpy() for c in ("station", "ts", "attr", "value")),
                    cities.astype(np.int32))


def _part(path: Path, good: Readings, city: pa.DictionaryArray) -> Batch:
    """The good readings of a block as a part (cities as the block's dictionary)."""
    rows = pa.table({"station": good.station, "ts": good.ts, "attr": good.attr,
                     "value": good.value, "city": city})
    return Batch("AirQualityObserved", rows, str(path), 0, part=True)


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

    def learn(self, path: Path, t: pa.RecordBatch, cols: dict[str, str], ctx: ReadContext
              ) -> Batch | None:
        """Stations of this batch not seen before, as a PointOfInterest batch of derived rows
        (no input records of their own)."""
        lat, _bad_lat = parse_numbers(_text(t, cols["lat"]))
        lon, _bad_lon = parse_numbers(_text(t, cols["lon"]))
        key = pc.utf8_trim_whitespace(_text(t, cols["station"]))
        name = pc.utf8_trim_whitespace(_text(t, cols["name"])) if "name" in cols else key
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


def _text(t: pa.RecordBatch, name: str) -> pa.Array:
    """A column as plain text (a column the reader gave as a dictionary, decoded)."""
    arr = t.column(name)
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


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


FLUSH_ROWS = 40_000_000
"""Good readings held for one pivot (about 25 bytes each: 1 GB) before the oldest hours are
committed early; below it, no input order needs a MERGE (see :class:`Held`)."""

READ_TYPES = {"station": _DICT, "name": _DICT, "parameter": _DICT, "unit": _DICT,
              "city": _DICT, "value": pa.float64(), "time": TIMESTAMP}
"""Fields the CSV reader parses itself when a whole block allows it (repeated texts as
dictionaries: each distinct station, pollutant, unit and city is handled once per block)."""


def _measurements(path: Path, book: _Book, mapping: dict[str, str], ctx: ReadContext,
                  limits: CsvLimits) -> Iterator[Batch]:
    stream = open_csv(path, limits=limits, span=ctx.span)
    cols = resolve_columns(path, stream.schema.names, ALIASES, mapping, REQUIRED)
    from_file = book.listed is None
    if from_file and not ("lat" in cols and "lon" in cols):
        raise UsageError(f"{path.name} has no latitude and longitude columns: give the "
                         "stations' coordinates with --stations FILE (location,"
                         "coordinates.latitude,coordinates.longitude)",
                         hint="or name the columns with --map COLUMN=lat --map COLUMN=lon")
    stream.types = {cols[f]: t for f, t in READ_TYPES.items() if f in cols}
    for batch in stream:
        ctx.advance(stream.take_read_bytes())
        if from_file:
            learned = book.learn(path, batch, cols, ctx)
            if learned is not None:
                yield learned
        out, good, city = _convert(path, batch, cols, stream, book.table())
        add_malformed(out, "AirQualityObserved", path, stream.take_invalid())
        yield out
        if len(good):
            yield _part(path, good, city)


def _convert(path: Path, t: pa.RecordBatch, cols: dict[str, str], stream: CsvStream,
             stations: pa.Table) -> tuple[Batch, Readings, pa.DictionaryArray]:
    """The block's rejects (a batch of no rows that accounts for every record of the block),
    its good readings (their city column unset) and their cities. Texts repeated down the
    block (station, pollutant, unit, city) are looked at once per distinct value."""
    n = t.num_rows
    ts_arr, bad_ts = parse_timestamps(_text(t, cols["time"]))
    measured, bad_value = parse_numbers(_text(t, cols["value"]))
    attr, _ = _codes(t, cols["parameter"], _attr_code)
    unit, units = _codes(t, cols["unit"])
    station, _ = _codes(t, cols["station"], _station_lookup(stations))
    factor = _factors(attr, unit, units)
    ts = _numbers(ts_arr, np.int64)
    measured_np = _numbers(measured, np.float64)
    value = measured_np * factor
    missing_ts, missing_value = _nulls(ts_arr), _nulls(measured)
    bad_ts, bad_value = _mask(bad_ts), _mask(bad_value)
    no_attr, no_station = attr < 0, station < 0
    no_factor = ~no_attr & np.isnan(factor)
    out_of_range = _range_checks(attr, value)
    flagged = (bad_ts | missing_ts | bad_value | missing_value | no_attr | no_factor
               | no_station | (out_of_range >= 0))
    rejects: list[Reject] = []
    if flagged.any():
        rejects = _rejects(path, stream.text_batch(t), cols, stream.lines, {
            "bad_ts": bad_ts, "missing_ts": missing_ts, "bad_value": bad_value,
            "missing_value": missing_value, "no_attr": no_attr, "no_factor": no_factor,
            "no_station": no_station}, attr, value, out_of_range)
    if "city" in cols:
        city_idx, city_values = _dictionary(t.column(cols["city"]))
    else:
        city_idx, city_values = np.full(n, -1, np.int32), pa.array([], pa.string())
    good = Readings(station.astype(np.int32), ts, attr.astype(np.int8), value,
                    city_idx.astype(np.int32))
    if flagged.any():
        good = good.take(~flagged)
    city = pa.DictionaryArray.from_arrays(pa.array(good.city, mask=good.city < 0), city_values)
    return Batch("AirQualityObserved", None, str(path), n, rejects=rejects), good, city


def _dictionary(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(index of each cell in the distinct values, -1 for a null; the distinct values) of a
    text column, read as a dictionary or not."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    idx = arr.indices
    codes = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), np.int64) \
        if idx.null_count else idx.to_numpy().astype(np.int64)
    return codes, arr.dictionary


def _codes(t: pa.RecordBatch, name: str, code_of: Callable[[str], int] | None = None
           ) -> tuple[np.ndarray, list[str | None]]:
    """A code per cell of text column ``name``: ``code_of`` of its trimmed text (-1: none),
    else the number of its distinct text; and the distinct texts."""
    idx, values = _dictionary(t.column(name))
    texts = [None if v is None else v.strip() for v in values.to_pylist()]
    if code_of is None:
        codes = np.arange(len(texts) + 1)
    else:
        codes = np.array([code_of(v) if v is not None else -1 for v in texts] + [-1])
    codes[-1] = -1  # a null cell (index -1)
    return codes[idx], texts


def _attr_code(text: str) -> int:
    attr = PARAMETERS.get(text.lower())
    return CELL_COLUMNS.index(attr) if attr else -1


def _station_lookup(stations: pa.Table) -> Callable[[str], int]:
    index = {k: i for i, k in enumerate(stations["location"].to_pylist())}
    return lambda key: index.get(key, -1)


def _numbers(arr: pa.Array, dtype: Any) -> np.ndarray:
    """The cells of a typed column as numpy (0 where null)."""
    if pa.types.is_timestamp(arr.type):
        arr = arr.view(pa.int64())
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype)


def _nulls(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.zeros(len(arr), bool)
    return np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), bool)


def _mask(arr: pa.Array) -> np.ndarray:
    if isinstance(arr, np.ndarray):
        return arr.astype(bool)
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), bool)


def _canonical(attr: str | None) -> str:
    et = get_type("AirQualityObserved")
    return (et.attributes[attr].unit or "") if attr in et.attributes else ""


def _factors(attr: np.ndarray, unit: np.ndarray, units: list[str | None]) -> np.ndarray:
    """Conversion factor to the canonical unit per row (NaN where not convertible), worked
    out once per (pollutant, unit) pair present (a table of every pair, no sort)."""
    width = len(units) + 1
    pair = (attr + 1) * width + (unit + 1)  # no pollutant (-1): the first row of pairs
    present = np.zeros((len(CELL_COLUMNS) + 1) * width, bool)
    present[pair] = True
    factors = np.full(len(present), np.nan)
    for p in np.flatnonzero(present[width:]).tolist():
        a, u = divmod(p, width)
        name = CELL_COLUMNS[a]
        code = unit_code(units[u - 1] or "") if u else None
        f = conversion_factor(name, code, _canonical(name)) if code else None
        if f is not None:
            factors[width + p] = f
    return factors[pair]


def _range_checks(attr: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per row, the index into the gate's checks of the first (minimum, maximum) its value
    fails, else -1: each row's bounds gathered by pollutant when every pollutant has at most
    one minimum and one maximum, else one pass per check."""
    limits = _limits()
    if limits is not None:
        lo_check, lo, hi_check, hi = limits
        row = attr + 1  # no pollutant (-1): no bounds
        below = np.where(value < lo[row], lo_check[row], _NO_CHECK)
        above = np.where(value > hi[row], hi_check[row], _NO_CHECK)
        first = np.minimum(below, above)
        return np.where(first == _NO_CHECK, -1, first)
    out = np.full(len(attr), -1, np.int64)
    for k, (a, check) in enumerate(_bounds()):
        mine = attr == a
        bad = mine & ((value < check[1]) if check[0] == "below-minimum" else (value > check[1]))
        out[bad & (out < 0)] = k
    return out


_NO_CHECK = np.iinfo(np.int64).max


@cache
def _limits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Per pollutant (row 0: none), the index of its minimum check and the minimum, and of its
    maximum check and the maximum (no check: an infinite bound); None when a pollutant has two
    checks of one kind."""
    n = len(CELL_COLUMNS) + 1
    lo_check, hi_check = np.full(n, _NO_CHECK), np.full(n, _NO_CHECK)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for k, (a, (code, limit)) in enumerate(_bounds()):
        checks, bounds = (lo_check, lo) if code == "below-minimum" else (hi_check, hi)
        if checks[a + 1] != _NO_CHECK:
            return None
        checks[a + 1], bounds[a + 1] = k, limit
    return lo_check, lo, hi_check, hi


@cache
def _bounds() -> list[tuple[int, tuple[str, float]]]:
    """(pollutant code, (check code, limit)) of the gate's value checks of the pollutants."""
    gate = gate_for(get_type("AirQualityObserved"))
    return [(CELL_COLUMNS.index(c.column), (c.code, c.limit)) for c in gate.checks
            if c.column in CELL_COLUMNS and c.code in ("below-minimum", "above-maximum")]


def _rejects(path: Path, text: pa.RecordBatch, cols: dict[str, str], lines: np.ndarray,
             masks: dict[str, np.ndarray], attr: np.ndarray, value: np.ndarray,
             out_of_range: np.ndarray) -> list[Reject]:
    """The rejects of a block, one per flagged row, through the one collector."""
    problems = Problems(text, "AirQualityObserved", path, lines)

    def cell(field: str, i: int) -> Any:
        return text.column(cols[field])[i].as_py()

    problems.flag(masks["bad_ts"], lambda i: reason("bad-timestamp", cols["time"],
                                                    value=cell("time", i)))
    problems.flag(masks["missing_ts"], lambda i: reason("missing-required", cols["time"]))
    problems.flag(masks["bad_value"], lambda i: reason("type-error", cols["value"],
                                                       value=cell("value", i),
                                                       expected="number"))
    problems.flag(masks["missing_value"], lambda i: reason("missing-required", cols["value"]))
    problems.flag(masks["no_attr"], lambda i: reason(
        "unknown-parameter", cols["parameter"], value=cell("parameter", i),
        type="AirQualityObserved"))
    problems.flag(masks["no_factor"], lambda i: reason(
        "unknown-unit", cols["unit"], unit=cell("unit", i),
        canonical=_canonical(CELL_COLUMNS[attr[i]])))
    problems.flag(masks["no_station"], lambda i: reason(
        "unknown-station", cols["station"], value=cell("station", i)))
    checks = _bounds()
    for i in np.flatnonzero(out_of_range >= 0).tolist():
        if i not in problems.rows:
            code, limit = checks[out_of_range[i]][1]
            name = CELL_COLUMNS[attr[i]]
            problems.add(i, [reason(code, name, value=float(value[i]), limit=limit)])
    return problems.rejects()


ADAPTER = OpenAQ()
