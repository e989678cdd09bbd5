"""Transport-card boardings and alightings per stop and time (CSV).

Each row counts the passengers who boarded and alighted at one stop in one hour (``stop_id,
date, hour, boardings, alightings``) or at one time (``stop_id, datetime, boardings,
alightings``: the time is floored to its hour), or in one whole day (``date`` without ``hour``).
Other headers are mapped with ``--map COLUMN=FIELD`` (for example ``--map 정류소ID=stop_id``).
Local times are in ``--timezone`` (an IANA name; a datetime with its own offset keeps it).
With ``--feed-id`` each count is linked to its GtfsStop (``urn:ngsi-ld:GtfsStop:<feed>:<stop>``).

Rows become ``StopBoardings`` (one temporal entity per stop, one lake row per stop and hour).
Everything is vectorised over Arrow batches; Python only touches rejected rows.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import tzinfo
from functools import partial
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import check_mapped, parse_map, urns
from hubctl.arrowkit import blank, parse_numbers, parse_timestamps
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    DEFAULT_LIMITS,
    CsvLimits,
    CsvStream,
    add_malformed,
    csv_limits,
    open_csv,
)
from hubctl.errors import InputError
from hubctl.localtime import local_to_utc, zone
from hubctl.rejects import Reason, Reject, reason

__all__ = ["ADAPTER", "Boardings", "Problems", "line_numbers", "parse_hours",
           "read_csv_batches", "rename_columns", "zone_of"]

TYPE = "StopBoardings"
FIELDS = ("stop_id", "date", "datetime", "hour", "boardings", "alightings", "line")
# The standard headers of the Korean transport-card exports (Seoul's subway and bus boardings
# per station and day, data.seoul.go.kr CARD_SUBWAY_MONTH / CARD_BUS_DAILY): read without
# --map. A bus file names its stop three ways: the first of these that the header has is the
# stop id.
KOREAN = {"사용일자": "date", "승차총승객수": "boardings", "하차총승객수": "alightings",
          "노선명": "line", "호선명": "line"}
KOREAN_STOP = ("표준버스정류장ID", "버스정류장ARS번호", "역명", "지하철역")
_DATE = r"^\d{4}-\d{2}-\d{2}$"


def rename_columns(header: Sequence[str], fields: dict[str, str],
                   aliases: dict[str, str] | None = None) -> list[str]:
    """Header names after the mapping ``{field: column}`` (else case-folded, then common
    aliases resolved)."""
    by_column = {column: field for field, column in fields.items()}
    folded = [n.strip().lower() for n in header]
    return [by_column[n] if n in by_column else (aliases or {}).get(f, f)
            for n, f in zip(header, folded, strict=True)]


def zone_of(name: str) -> tzinfo:
    """The time zone ``name`` or a UsageError (:func:`hubctl.localtime.zone`)."""
    return zone(name)


class Problems:
    """Reasons per row of one batch, filled from vectorised masks (Python only on bad rows)."""

    def __init__(self, table: pa.Table, type_name: str, path: Path, lines: np.ndarray) -> None:
        self.table, self.type_name, self.path = table, type_name, path
        self.lines = lines  # the file line number of every row
        self.by_row: dict[int, list[Reason]] = {}

    def flag(self, mask: pa.Array | pa.ChunkedArray, make: Callable[[int], Reason]) -> None:
        """Add ``make(i)`` for every row ``i`` where ``mask`` is true."""
        filled = pc.fill_null(mask, False)
        if isinstance(filled, pa.ChunkedArray):
            filled = filled.combine_chunks()
        if filled.true_count == 0:
            return
        for i in np.flatnonzero(filled.to_numpy(zero_copy_only=False)):
            found = self.by_row.setdefault(int(i), [])
            r = make(int(i))
            if all(x.field != r.field for x in found):
                found.append(r)

    def cell(self, column: str, i: int) -> Any:
        """The raw text of a cell."""
        return self.table.column(column)[i].as_py()

    def rejects(self) -> list[Reject]:
        """One Reject per bad row, with its raw record and line number."""
        out = []
        for i, reasons in sorted(self.by_row.items()):
            raw = json.dumps({c: self.table.column(c)[i].as_py() for c in self.table.column_names},
                             ensure_ascii=False)
            out.append(Reject(self.type_name, raw, reasons, file=str(self.path),
                              record=f"line {int(self.lines[i])}"))
        return out

    def keep(self) -> pa.Array:
        """True for rows without problems."""
        keep = np.ones(self.table.num_rows, dtype=bool)
        keep[list(self.by_row)] = False
        return pa.array(keep)


def read_csv_batches(path: Path, mapping: dict[str, str], type_name: str,
                     need: Callable[[Path, list[str]], None], ctx: ReadContext,
                     convert: Callable[[pa.Table, Problems], Batch],
                     aliases: dict[str, str] | None = None,
                     limits: CsvLimits = DEFAULT_LIMITS,
                     rename: Callable[[Sequence[str]], dict[str, str]] | None = None,
                     ) -> Iterator[Batch]:
    """Stream a CSV through ``convert`` batch by batch, header renamed by ``mapping``
    (``{field: column}``, and ``rename(header)`` for the fields and columns ``mapping``
    leaves); lines with the wrong number of
    fields, bad encoding or over-long are rejected alone."""
    stream: CsvStream = open_csv(path, limits=limits)
    header = stream.schema.names
    check_mapped(path, header, mapping)
    fields = dict(mapping)
    if rename is not None:
        for field, column in rename(header).items():
            if field not in fields and column not in fields.values():
                fields[field] = column
    names = rename_columns(header, fields, aliases)
    need(path, names)
    for batch in stream:
        ctx.advance(stream.take_read_bytes())
        table = pa.Table.from_batches([batch]).rename_columns(names)
        problems = Problems(table, type_name, path, stream.lines)
        out = convert(table, problems)
        add_malformed(out, type_name, path, stream.take_invalid())
        yield out


def parse_dates(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(date32, mask of present-but-bad cells) from YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD."""
    t = pc.utf8_trim_whitespace(text)
    t = pc.replace_substring_regex(t, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    t = pc.replace_substring_regex(t, r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$", r"\1-\2-\3")
    t = pc.replace_substring_regex(t, r"^(\d{4})-(\d)-", r"\1-0\2-")
    t = pc.replace_substring_regex(t, r"^(\d{4}-\d{2})-(\d)$", r"\1-0\2")
    ok = pc.fill_null(pc.match_substring_regex(t, _DATE), False)
    clean = pc.if_else(ok, t, pa.scalar(None, pa.string()))
    try:
        values = pc.cast(pc.cast(clean, pa.timestamp("s")), pa.date32())
    except pa.ArrowInvalid:  # a date that does not exist (2024-02-30): one by one
        values = pa.array([_one_date(v) for v in clean.to_pylist()], pa.date32())
    bad = pc.and_(pc.invert(blank(text)), pc.is_null(values))
    return values, bad


def _one_date(text: str | None) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def parse_hours(t: pa.Table, p: Problems) -> pa.Array:
    """The optional ``hour`` column as int64 0-23 (null where absent or rejected)."""
    if "hour" not in t.column_names:
        return pa.nulls(t.num_rows, pa.int64())
    hours, bad = parse_numbers(t.column("hour").combine_chunks())
    p.flag(bad, lambda i: reason("type-error", "hour", value=p.cell("hour", i),
                                 expected="whole hour 0-23"))
    whole = pc.and_(pc.equal(pc.floor(hours), hours),
                    pc.and_(pc.greater_equal(hours, 0), pc.less_equal(hours, 23)))
    p.flag(pc.and_(pc.is_valid(hours), pc.invert(whole)), lambda i: reason(
        "constraint-error", "hour", detail=f"{p.cell('hour', i)!r} is not a whole hour 0-23"))
    return pc.cast(pc.if_else(whole, hours, pa.scalar(None, pa.float64())), pa.int64())


def local_wall_times(t: pa.Table, p: Problems, zone: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(UTC instant of each period start, local date, local hour or null) from ``datetime``
    or ``date`` [+ ``hour``]; bad or missing cells are flagged on ``p``."""
    if "datetime" in t.column_names:
        text = t.column("datetime").combine_chunks()
        trimmed = pc.utf8_trim_whitespace(text)
        zoned = pc.fill_null(pc.match_substring_regex(trimmed, r"(Z|[+-]\d{2}:?\d{2})$"), False)
        instant, bad = parse_timestamps(text)  # zone-less text read as wall time (UTC)
        p.flag(bad, lambda i: reason("bad-timestamp", "datetime", value=p.cell("datetime", i)))
        p.flag(pc.is_null(instant), lambda i: reason("missing-required", "datetime"))
        naive = pc.cast(instant, pa.timestamp("us"))
        local_of_zoned = pc.local_timestamp(pc.cast(instant, pa.timestamp("us", tz=zone)))
        wall = pc.if_else(zoned, local_of_zoned, naive)
        wall = pc.floor_temporal(wall, unit="hour")
        hour = pc.cast(pc.hour(wall), pa.int64())
    else:
        day, bad_day = parse_dates(t.column("date").combine_chunks())
        p.flag(bad_day, lambda i: reason("type-error", "date", value=p.cell("date", i),
                                         expected="date (YYYY-MM-DD)"))
        p.flag(pc.is_null(day), lambda i: reason("missing-required", "date"))
        hour = parse_hours(t, p)
        seconds = pc.multiply(pc.fill_null(hour, 0), 3600_000_000)
        wall = pc.cast(pc.add(pc.cast(pc.cast(day, pa.timestamp("us")), pa.int64()), seconds),
                       pa.timestamp("us"))
    local_date = pc.cast(wall, pa.date32())
    return local_to_utc(wall, zone), local_date, hour


class Boardings(Adapter):
    """The ``boardings`` adapter."""

    name = "boardings"
    entity_types = (TYPE,)
    summary = "Transport-card boardings and alightings per stop and hour (CSV)."
    example = ("hubctl ingest boardings card-2024-05.csv --feed-id daegu --timezone Asia/Seoul "
               "--map 정류소ID=stop_id --map 승차=boardings --map 하차=alightings")
    params: Sequence[click.Parameter] = (
        click.Option(["--feed-id"], default=None, metavar="ID",
                     help="GTFS feed id of the stop ids: links each count to its GtfsStop."),
        click.Option(["--timezone"], default="UTC", show_default=True, metavar="ZONE",
                     help="IANA time zone of local dates and hours, e.g. Asia/Seoul."),
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read header COLUMN as FIELD (stop_id, date, datetime, hour, "
                          "boardings, alightings); repeatable."),
        click.Option(["--sum-repeats"], is_flag=True, default=False,
                     help="Add up rows of the same stop and hour within an input (files split "
                          "by route or card type, or one row per tap); without it the last "
                          "row wins, with a warning. A file with a line column (노선명, "
                          "--map COLUMN=line) is always summed over its lines."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The counts of every input file, batch by batch."""
        mapping = parse_map(options.get("mapping"), FIELDS)
        zone = str(options.get("timezone") or "UTC")
        zone_of(zone)
        feed = (options.get("feed_id") or "").strip() or None
        for path in inputs:
            convert = partial(_convert, zone=zone, feed=feed, path=Path(path))
            lined: list[bool] = []

            def need(where: Path, names: list[str], lined: list[bool] = lined) -> None:
                _need(where, names)
                lined.append("line" in names)

            batches = read_csv_batches(Path(path), mapping, TYPE, need, ctx, convert,
                                       limits=csv_limits(options), rename=_korean)
            first = next(batches, None)
            if first is None:
                continue
            batches = itertools.chain([first], batches)
            if options.get("sum_repeats") or lined[0]:
                yield from _summed(batches, Path(path), max(1, ctx.batch_rows), ctx,
                                   "lines" if lined[0] and not options.get("sum_repeats")
                                   else "")
            else:
                yield from _watched(batches, Path(path), ctx)


def _korean(names: Sequence[str]) -> dict[str, str]:
    """{field: column} for the standard Korean card-data headers among ``names``."""
    out: dict[str, str] = {}
    for n in names:
        if n in KOREAN:
            out.setdefault(KOREAN[n], n)
    stop = next((n for n in KOREAN_STOP if n in names), None)
    if stop is not None:
        out["stop_id"] = stop
    return out


def _watched(batches: Iterator[Batch], path: Path, ctx: ReadContext) -> Iterator[Batch]:
    """Batches as they come; at the end a warning when rows of one stop and time repeat
    within the file (the later row replaced the earlier)."""
    seen: dict[str, int] = {}
    keys: list[np.ndarray] = []
    for b in batches:
        if b.rows is not None and b.rows.num_rows:
            ids = b.rows.column("id").combine_chunks()
            uniq = pc.unique(ids).to_pylist()
            for u in uniq:
                seen.setdefault(u, len(seen))
            idx = pc.take(pa.array([seen[u] for u in uniq], pa.int64()),
                          pc.index_in(ids, value_set=pa.array(uniq, pa.string())))
            ts = pc.cast(b.rows.column("observed_at"), pa.int64()).to_numpy()
            keys.append(np.rec.fromarrays([idx.to_numpy(), ts]).view(np.dtype("V16")))
        yield b
    if not keys:
        return
    every = np.concatenate(keys)
    repeated = len(every) - len(np.unique(every))
    if repeated:
        ctx.warn(f"{path.name}: {repeated:,} of {len(every):,} rows repeat a stop and time "
                 "given earlier in the file; each replaced the one before (counted as updated "
                 "or duplicate). Give --sum-repeats to add them up, or --map COLUMN=line when "
                 "the file splits a stop's counts by line")


def _summed(batches: Iterator[Batch], path: Path, size: int, ctx: ReadContext,
            why: str = "") -> Iterator[Batch]:
    """The rows of a whole input with repeats of a stop and hour added up (``_records`` says
    how many input rows each sum stands for); rejects pass through as they come."""
    parts: list[pa.Table] = []
    for b in batches:
        if b.rows is not None and b.rows.num_rows:
            parts.append(b.rows.drop_columns(["_record"]))
        if b.rejects:
            yield Batch(TYPE, None, str(path), sum(r.records for r in b.rejects),
                        rejects=b.rejects)
    if not parts:
        return
    rows = pa.concat_tables(parts)
    if "_line" not in rows.column_names:
        rows = rows.append_column("_line", pa.nulls(rows.num_rows, pa.string()))
    keys = ["id", "observed_at"]
    counts = ["boardings", "alightings"]
    others = [c for c in rows.column_names if c not in (*keys, *counts)]
    others = [c for c in others if c != "_line"]
    summed = rows.group_by(keys, use_threads=False).aggregate(
        [(c, "sum") for c in counts] + [(c, "first") for c in others] + [("id", "count")]
        + [("_line", "distinct")])
    summed = summed.rename_columns(
        ["_records" if c == "id_count" else "lines" if c == "_line_distinct"
         else c.removesuffix("_sum").removesuffix("_first") for c in summed.column_names])
    summed = summed.sort_by([("id", "ascending"), ("observed_at", "ascending")])
    if summed.num_rows < rows.num_rows:
        several = pc.greater(summed["_records"], 1)
        example = summed.filter(several).slice(0, 1).to_pylist()[0]
        lines = (f" over its lines ({', '.join(example['lines'])})"
                 if why == "lines" else "")
        ctx.warn(f"{path.name}: {rows.num_rows:,} rows read became {summed.num_rows:,} rows "
                 f"of a stop and time: {rows.num_rows - summed.num_rows:,} repeats were added "
                 f"up, e.g. stop {example['stopId']} on {example['serviceDate']}{lines}"
                 + (" (transfer stations appear once per line)" if why == "lines" else ""))
    summed = summed.drop_columns([c for c in ("lines",) if c in summed.column_names])
    for start in range(0, summed.num_rows, size):
        part = summed.slice(start, size)
        yield Batch(TYPE, part, str(path), int(pc.sum(part["_records"]).as_py()))


def _need(path: Path, names: list[str]) -> None:
    missing = [] if "stop_id" in names else ["stop_id"]
    if "datetime" not in names and "date" not in names:
        missing.append("date or datetime")
    if "boardings" not in names and "alightings" not in names:
        missing.append("boardings or alightings")
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; the header has "
                         f"{', '.join(names)}", path=str(path), record="line 1",
                         hint="name them with --map COLUMN=FIELD")


def _convert(t: pa.Table, p: Problems, zone: str, feed: str | None, path: Path) -> Batch:
    n = t.num_rows
    stop = pc.utf8_trim_whitespace(t.column("stop_id").combine_chunks())
    p.flag(blank(stop), lambda i: reason("missing-required", "stop_id"))
    counts: dict[str, pa.Array] = {}
    for name in ("boardings", "alightings"):
        if name not in t.column_names:
            counts[name] = pa.nulls(n, pa.float64())
            continue
        values, bad = parse_numbers(t.column(name).combine_chunks())
        p.flag(bad, _not_a_number(p, name))
        p.flag(pc.less(values, 0), _negative(p, name))
        counts[name] = values
    p.flag(pc.and_(pc.is_null(counts["boardings"]), pc.is_null(counts["alightings"])),
           lambda i: reason("missing-required", "boardings"))
    observed, local_date, hour = local_wall_times(t, p, zone)
    local = pc.if_else(blank(stop), pa.scalar(None, pa.string()), stop)
    # a whole-day total is its own series, so that it never collides with the 00:00 hour
    series = pc.if_else(pc.is_null(hour), pc.binary_join_element_wise(local, ":daily", ""), local)
    ids = urns(TYPE, series, feed or "")
    rows = pa.table({
        "id": ids, "observed_at": observed, "dateObserved": observed,
        "serviceDate": local_date, "hour": hour,
        "boardings": counts["boardings"], "alightings": counts["alightings"],
        "stopId": local, "feedId": pa.repeat(pa.scalar(feed, pa.string()), n),
        "refStop": urns("GtfsStop", local, feed) if feed else pa.nulls(n, pa.string()),
        "source": pa.repeat(pa.scalar(path.name), n),
        "_time_index": pa.repeat(pa.scalar("dateObserved"), n),
        "_record": line_numbers(p.lines),
        **({"_line": pc.utf8_trim_whitespace(t.column("line").combine_chunks())}
           if "line" in t.column_names else {}),
    }).filter(p.keep())
    return Batch(TYPE, rows, str(path), n, rejects=p.rejects())


def _not_a_number(p: Problems, column: str) -> Callable[[int], Reason]:
    return lambda i: reason("type-error", column, value=p.cell(column, i), expected="number")


def _negative(p: Problems, column: str) -> Callable[[int], Reason]:
    return lambda i: reason("negative-value", column, value=p.cell(column, i))


def line_numbers(lines: np.ndarray) -> pa.Array:
    """``line N`` texts for rows at file lines ``lines``."""
    numbers = pc.cast(pa.array(np.asarray(lines, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar("line "), numbers, "")


ADAPTER = Boardings()
