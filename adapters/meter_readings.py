"""AMI interval readings as CSV: one line per meter and interval (meter id, timestamp or date and
time, value, optional unit, duration and coordinates), to ``MeterReadingObserved``.

Columns are found by name (``meter_id``, ``timestamp``, ``kwh``, ...) or named with ``--map
COLUMN=FIELD``. Values convert to kWh from the unit column or ``--unit``. The interval length
comes from a duration column, ``--interval`` or, failing both, the most common step between a
meter's consecutive readings in the first batch. A meters file adds coordinates and a site.
Everything is vectorised over Arrow record batches: Python only touches rejected lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    Places,
    Problems,
    parse_map,
    parse_times,
    read_places,
    resolve_columns,
    text_column,
)
from hubctl.arrowkit import parse_numbers
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    BadLine,
    CsvStream,
    add_malformed,
    csv_limits,
    open_csv,
)
from hubctl.errors import InputError, UsageError
from hubctl.ngsild import entity_id
from hubctl.rejects import reason
from hubctl.units import conversion_factor, unit_code

__all__ = ["ADAPTER", "ALIASES", "MeterReadings"]

TYPE = "MeterReadingObserved"
# Field -> header spellings it is recognised by (compared case- and punctuation-blind).
ALIASES: dict[str, tuple[str, ...]] = {
    "meter": ("meter_id", "meterid", "meter id", "meter_no", "meter number", "mpan", "mprn",
              "device_id", "serial", "customer_id", "id"),
    "timestamp": ("datetime", "date_time", "interval_start", "start", "reading_time",
                  "read_time", "time_stamp", "ts"),
    "date": ("reading_date", "day"),
    "time": ("reading_time_of_day", "hour", "interval"),
    "value": ("kwh", "consumption", "energy", "reading", "usage", "kwh_delivered", "wh"),
    "unit": ("uom", "units"),
    "duration": ("interval_length", "duration_s", "seconds", "interval_seconds"),
    "lat": ("latitude",),
    "lon": ("lng", "long", "longitude"),
    "site": ("building", "district", "area"),
}
REQUIRED = [["meter", "timestamp", "value"], ["meter", "date", "time", "value"]]
_UNIT_FROM_HEADER = {"kwh": "kWh", "wh": "Wh", "kwhdelivered": "kWh"}


@dataclass
class _Plan:
    """What to read from one file and how."""

    path: Path
    cols: dict[str, str]
    unit: str
    tz: str
    fmt: str | None
    interval: int | None
    at_end: bool
    places: Places | None
    ids: dict[str, str] = field(default_factory=dict)


class MeterReadings(Adapter):
    """The ``meter-readings`` adapter."""

    name = "meter-readings"
    entity_types = (TYPE,)
    # Narrow rows (meter, instant, kWh): a million per batch is about 100 MB and means a
    # quarter of the commits, files and log entries of the default.
    batch_rows = 500_000
    summary = "AMI interval readings CSV (meter, timestamp, value) to MeterReadingObserved."
    example = ("hubctl ingest meter-readings ami-2025.csv --meters meters.csv "
               "--map 'MeterNo=meter' --map 'Read kWh=value' --timezone Asia/Seoul")
    reads_files_apart = True  # no state from one file to the next: one Spark task each
    # nor from one record to the next but the interval inferred from a file's first batch,
    # which file_options settles once: a large file in byte ranges
    reads_byte_ranges = True
    params: Sequence[click.Parameter] = (
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN as FIELD (repeatable). Fields: "
                          + ", ".join(ALIASES) + "."),
        click.Option(["--meters"], type=click.Path(exists=True, dir_okay=False),
                     help="CSV of meters: meter id, lat, lon, optional site."),
        click.Option(["--unit"], default=None,
                     help="Unit of the value column when the file has no unit column "
                          "(kWh, Wh, MWh; default: Wh for a column called Wh, else kWh)."),
        click.Option(["--interval"], type=click.IntRange(1), default=None,
                     help="Interval length in seconds (default: a duration column, else "
                          "inferred from the data)."),
        click.Option(["--timezone"], default="UTC", show_default=True,
                     help="Time zone of timestamps that carry none (IANA name or +HH:MM)."),
        click.Option(["--date-format"], default=None,
                     help="strptime format of the timestamp (or of date and time joined by a "
                          "space), e.g. '%d/%m/%Y %H:%M'; default ISO 8601 and the common other "
                          "spellings (03/01/2025 12:15 AM, 20250301001500)."),
        click.Option(["--timestamp-at"], type=click.Choice(["start", "end"]), default="start",
                     show_default=True,
                     help="Whether the timestamp marks the start or the end of the interval."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Batches of MeterReadingObserved rows from every input file."""
        mapping = parse_map(options.get("mapping") or (), ALIASES)
        meters = options.get("meters")
        places = (read_places(Path(meters), "meter", ALIASES["meter"])
                  if meters else None)
        for path in inputs:
            stream = open_csv(path, limits=csv_limits(options), batch_rows=ctx.batch_rows,
                              span=ctx.span)
            plan = _plan(path, stream, mapping, options, places)
            if options.get("interval_inferred") and (ctx.span is None or ctx.span.first):
                ctx.warn(_inferred(plan))  # settled by file_options on the whole file
            yield from _read_file(plan, stream, ctx)

    def file_options(self, path: Path, options: dict[str, Any],
                     ctx: ReadContext) -> dict[str, Any]:
        """``options`` with the interval the whole file's first batch gives (as its reading
        would infer it), when neither ``--interval`` nor a duration column gives one."""
        if options.get("interval"):
            return options
        stream = open_csv(path, limits=csv_limits(options), batch_rows=ctx.batch_rows)
        try:
            plan = _plan(path, stream, parse_map(options.get("mapping") or (), ALIASES),
                         options, None)
            if "duration" in plan.cols:
                return options
            for batch, _, _, _ in _whole_instants(plan, stream):
                start, end = _bounded(plan, batch, max(1, ctx.batch_rows))[0]
                piece = batch.slice(start, end - start)
                interval = _infer_interval(plan, _meters(plan, piece), _times(plan, piece)[0])
                return options | {"interval": interval, "interval_inferred": True}
            return options
        finally:
            stream.close()


def _plan(path: Path, stream: CsvStream, mapping: dict[str, str], options: dict[str, Any],
          places: Places | None) -> _Plan:
    """How to read ``path``, whose header ``stream`` read."""
    cols = resolve_columns(path, stream.names, ALIASES, mapping, REQUIRED)
    if "timestamp" in cols and "date" in cols:  # a full timestamp wins
        cols.pop("date")
        cols.pop("time", None)
    unit = options.get("unit") or _UNIT_FROM_HEADER.get(cols["value"].strip().lower(), "kWh")
    if energy_factors(pa.array([unit])).null_count:
        stream.close()
        raise UsageError(f"--unit {unit!r} is not an energy unit", hint="use kWh, Wh or MWh")
    return _Plan(path, cols, unit, options.get("timezone") or "UTC", options.get("date_format"),
                 options.get("interval"), options.get("timestamp_at") == "end", places)


def _inferred(plan: _Plan) -> str:
    return (f"{plan.path.name}: interval length inferred as {plan.interval} s from the data; "
            "pass --interval to set it")


def _read_file(plan: _Plan, stream: CsvStream, ctx: ReadContext) -> Iterator[Batch]:
    more = ctx.span is not None and ctx.span.index < ctx.span.count - 1
    for batch, lines, bad, joins in _whole_instants(plan, stream, more):
        ctx.advance(stream.take_read_bytes())
        pieces = _bounded(plan, batch, max(1, ctx.batch_rows))
        for k, (start, end) in enumerate(pieces):
            out = _convert(plan, batch.slice(start, end - start), lines[start:end], ctx)
            if k == 0:
                add_malformed(out, TYPE, plan.path, bad)
            out.continues = joins and k == len(pieces) - 1
            yield out


def _bounded(plan: _Plan, batch: pa.RecordBatch, size: int) -> list[tuple[int, int]]:
    """(start, end) of pieces of at most ``size`` rows, each cut where one instant's readings
    end (an instant with more readings than ``size`` stays whole)."""
    n = batch.num_rows
    if n <= size:
        return [(0, n)]
    column = plan.cols.get("timestamp") or plan.cols["date"]
    def codes(name: str) -> np.ndarray:
        indices = pc.fill_null(pc.dictionary_encode(batch.column(name)).indices, -1)
        return np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)

    key = codes(column)
    if "timestamp" not in plan.cols and plan.cols.get("time"):
        key = key * (n + 1) + codes(plan.cols["time"])
    ends = np.append(np.flatnonzero(key[1:] != key[:-1]) + 1, n)  # where instants end
    pieces, start = [], 0
    while start < n:
        fits = ends[(ends > start) & (ends <= start + size)]
        end = int(fits[-1]) if len(fits) else int(ends[ends > start][0])
        pieces.append((start, end))
        start = end
    return pieces


def _whole_instants(plan: _Plan, stream: CsvStream, more: bool = False
                    ) -> Iterator[tuple[pa.RecordBatch, np.ndarray, list[BadLine], bool]]:
    """The reader's batches (with their line numbers and the lines kept out), cut so that
    the readings of one instant (one timestamp text) are never split across two batches:
    head-end exports are in time order, and a batch whose readings are all later than
    anything stored is appended without comparing a row. ``more``: a byte range that another
    follows; its last instant comes apart, marked True: it joins the next range's first
    batch (one commit, where the whole file's reading puts it)."""
    pending: pa.RecordBatch | None = None
    lines = np.zeros(0, np.int64)
    for batch in stream:
        if pending is None or pending.num_rows == 0:
            pending, lines = batch, stream.lines
            continue
        n, cut = pending.num_rows, _last_instant(plan, pending)
        yield pending.slice(0, cut), lines[:cut], stream.take_invalid(), False
        if cut < n:
            pending = pa.concat_batches([pending.slice(cut), batch])
            lines = np.concatenate((lines[cut:], stream.lines))
        else:
            pending, lines = batch, stream.lines
    if pending is None:
        return
    cut = _last_instant(plan, pending) if more and pending.num_rows else pending.num_rows
    yield pending.slice(0, cut), lines[:cut], stream.take_invalid(), False
    if cut < pending.num_rows:
        yield pending.slice(cut), lines[cut:], stream.take_invalid(), True


def _last_instant(plan: _Plan, batch: pa.RecordBatch) -> int:
    """Where the readings of a batch's last instant start (its length when the batch is one
    instant: nothing is held back)."""
    column = plan.cols.get("timestamp") or plan.cols["date"]
    extra = None if "timestamp" in plan.cols else plan.cols.get("time")
    n = batch.num_rows
    same = pc.equal(batch.column(column), batch.column(column)[n - 1])
    if extra is not None:
        same = pc.and_(same, pc.equal(batch.column(extra), batch.column(extra)[n - 1]))
    differs = np.flatnonzero(~pc.fill_null(same, False).to_numpy(zero_copy_only=False))
    return int(differs[-1]) + 1 if len(differs) else n


def _times(plan: _Plan, batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array, str]:
    if "timestamp" in plan.cols:
        text = text_column(batch, plan.cols["timestamp"])
        field_name = plan.cols["timestamp"]
    else:
        text = pc.binary_join_element_wise(
            pc.utf8_trim_whitespace(text_column(batch, plan.cols["date"])),
            pc.utf8_trim_whitespace(text_column(batch, plan.cols["time"])), " ")
        field_name = plan.cols["date"] + "+" + plan.cols["time"]
        if plan.fmt is None:  # ISO date and HH:MM[:SS] time
            text = pc.replace_substring_regex(text, r" (\d):", r" 0\1:")
    ts, bad = parse_times(text, plan.tz, plan.fmt)
    return ts, bad, field_name


def _meters(plan: _Plan, batch: pa.RecordBatch) -> pa.Array:
    return pc.utf8_trim_whitespace(text_column(batch, plan.cols["meter"]))


def _convert(plan: _Plan, batch: pa.RecordBatch, lines: np.ndarray, ctx: ReadContext) -> Batch:
    n = batch.num_rows
    meter = _meters(plan, batch)
    ts, bad_ts, ts_field = _times(plan, batch)
    value, bad_value = _numbers(text_column(batch, plan.cols["value"]))
    unit_text = text_column(batch, plan.cols.get("unit"))
    factor = (energy_factors(unit_text) if unit_text is not None
              else pa.repeat(pa.scalar(energy_factors(pa.array([plan.unit]))[0].as_py()), n))
    kwh = pc.multiply(value, factor)
    duration, bad_duration = _durations(plan, batch, meter, ts, ctx)
    if plan.at_end:
        ts = pc.subtract(ts, pc.cast(pc.multiply(duration, 1_000_000), pa.duration("us")))
    problems = Problems(batch, TYPE, plan.path, lines)
    col = plan.cols
    problems.flag(pc.equal(pc.utf8_length(meter), 0),
                  lambda i: reason("missing-required", col["meter"]))
    problems.flag(bad_ts, lambda i: reason("bad-timestamp", ts_field, value=_raw_ts(
        plan, batch, i)))
    problems.flag(pc.and_(pc.is_null(ts), pc.invert(bad_ts)),
                  lambda i: reason("missing-required", ts_field))
    problems.flag(bad_value, lambda i: reason("type-error", col["value"], value=_cell(
        batch, col["value"], i), expected="number"))
    problems.flag(pc.and_(pc.is_null(value), pc.invert(bad_value)),
                  lambda i: reason("missing-required", col["value"]))
    problems.flag(pc.is_null(factor), lambda i: reason(
        "unknown-unit", col.get("unit", "unit"), unit=_cell(batch, col["unit"], i),
        canonical="kWh"))
    problems.flag(pc.less(kwh, 0), lambda i: reason(
        "negative-value", col["value"], value=kwh[i].as_py()))
    if bad_duration is not None:
        problems.flag(bad_duration, lambda i: reason(
            "type-error", col["duration"], value=_cell(batch, col["duration"], i),
            expected="whole number of seconds > 0"))
    rows = _rows(plan, meter, ts, duration, kwh, problems.keep() if problems.rows else None)
    return Batch(TYPE, rows, str(plan.path), n, rejects=problems.rejects())


def _rows(plan: _Plan, meter: pa.Array, ts: pa.Array, duration: pa.Array, kwh: pa.Array,
          keep: pa.Array | None) -> pa.Table:
    if keep is not None:
        meter, ts, duration, kwh = (a.filter(keep) for a in (meter, ts, duration, kwh))
    n = len(meter)
    encoded = pc.dictionary_encode(meter)
    names = encoded.dictionary.to_pylist()
    for name in names:
        if name not in plan.ids:
            plan.ids[name] = entity_id(TYPE, name)
    ids = pa.array([plan.ids[m] for m in names], pa.string())
    # Dictionary-encoded: the engine's key checks hash small integers instead of URN texts.
    cols: dict[str, Any] = {"id": pa.DictionaryArray.from_arrays(encoded.indices, ids),
                            "observed_at": ts,
                            "dateObservedFrom": ts, "intervalLength": duration,
                            "activeEnergyImport": kwh}
    if plan.places is not None:
        where = plan.places.lookup(encoded.dictionary)
        idx = pc.take(where, encoded.indices)
        cols["lon"] = pc.take(plan.places.lon, idx)
        cols["lat"] = pc.take(plan.places.lat, idx)
        cols["site"] = pc.take(plan.places.site, idx)
    cols["_time_index"] = pa.repeat(pa.scalar("dateObservedFrom"), n)
    return pa.table(cols)


def _numbers(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Fast path: the whole column casts to float64; otherwise the checked parser."""
    try:
        values = pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return parse_numbers(text)
    if values.null_count == 0:
        return values, pa.repeat(pa.scalar(False), len(text))
    return parse_numbers(text)


def _durations(plan: _Plan, batch: pa.RecordBatch, meter: pa.Array, ts: pa.Array,
               ctx: ReadContext) -> tuple[pa.Array, pa.Array | None]:
    n = batch.num_rows
    if "duration" in plan.cols:
        values, bad = _numbers(text_column(batch, plan.cols["duration"]))
        whole = pc.and_(pc.equal(pc.floor(values), values), pc.greater(values, 0))
        bad = pc.or_(bad, pc.fill_null(pc.invert(whole), False))
        fallback = plan.interval or 0
        ints = pc.cast(pc.if_else(bad, fallback, pc.fill_null(values, fallback)), pa.int64())
        return ints, bad
    if plan.interval is None:
        plan.interval = _infer_interval(plan, meter, ts)
        ctx.warn(_inferred(plan))
    return pa.repeat(pa.scalar(plan.interval, pa.int64()), n), None


def _infer_interval(plan: _Plan, meter: pa.Array, ts: pa.Array) -> int:
    """The most common step between consecutive readings of one meter (seconds)."""
    codes = pc.dictionary_encode(meter).indices.to_numpy(zero_copy_only=False)
    micros = pc.fill_null(pc.cast(ts, pa.int64()), -1).to_numpy()
    ok = micros >= 0
    codes, micros = codes[ok], micros[ok]
    order = np.lexsort((micros, codes))
    codes, micros = codes[order], micros[order]
    same = codes[1:] == codes[:-1]
    steps = (micros[1:] - micros[:-1])[same]
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise InputError("cannot infer the interval length: no meter has two readings in the "
                         "first rows", path=str(plan.path),
                         hint="pass --interval SECONDS (900 for quarter-hours)")
    values, counts = np.unique(steps, return_counts=True)
    return max(1, int(values[np.argmax(counts)] // 1_000_000))


def _cell(batch: pa.RecordBatch, column: str, i: int) -> Any:
    return batch.column(column)[i].as_py()


def _raw_ts(plan: _Plan, batch: pa.RecordBatch, i: int) -> str:
    if "timestamp" in plan.cols:
        return str(_cell(batch, plan.cols["timestamp"], i))
    return f"{_cell(batch, plan.cols['date'], i)} {_cell(batch, plan.cols['time'], i)}"



def energy_factors(units: pa.Array) -> pa.Array:
    """Factor to kWh of each unit text (:mod:`hubctl.units`); null where the unit is not an
    energy unit. Each distinct text is looked up once."""
    encoded = pc.dictionary_encode(pc.fill_null(units, ""))
    factors = []
    for text in encoded.dictionary.to_pylist():
        code = unit_code(text)
        factors.append(conversion_factor("energy", code, "KWH") if code else None)
    return pc.take(pa.array(factors, pa.float64()), encoded.indices)


ADAPTER = MeterReadings()
