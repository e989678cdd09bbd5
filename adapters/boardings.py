"""Transport-card boardings and alightings per stop and time (CSV).

Each row counts the passengers who boarded and alighted at one stop in one hour (``stop_id,
date, hour, boardings, alightings``) or at one time (``stop_id, datetime, boardings,
alightings``: the time is floored to its hour), or in one whole day (``date`` without ``hour``),
or in one month (``month``, e.g. ``202405``: a month's total, or with ``hour`` the month's
total of that hour of the day). A wide row with one pair of columns per hour (the Korean card
exports' ``00시승차총승객수`` / ``04시-05시 승차인원``) is read as one record per hour.
A ``line`` (the route or line the count is for) stays in the key: a stop served by several
lines has one series per line, never summed or replaced silently.
Other headers are mapped with ``--map COLUMN=FIELD`` (for example ``--map 정류소ID=stop_id``).
Local times are in ``--timezone`` (an IANA name; a datetime with its own offset keeps it).
With ``--feed-id`` each count is linked to its GtfsStop (``urn:ngsi-ld:GtfsStop:<feed>:<stop>``).

Rows become ``StopBoardings`` (one temporal entity per stop, one lake row per stop and hour).
Everything is vectorised over Arrow batches; Python only touches rejected rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    Problems,
    field_batches,
    parse_hours,
    parse_map,
    parse_times,
    urns,
)
from hubctl.arrowkit import blank, parse_numbers
from hubctl.csvread import (
    CSV_LIMIT_PARAMS,
    csv_limits,
)
from hubctl.errors import InputError
from hubctl.localtime import local_to_utc, zone
from hubctl.rejects import Reason, reason

__all__ = ["ADAPTER", "Boardings", "parse_months", "series", "wide_hours"]

TYPE = "StopBoardings"
FIELDS = ("stop_id", "date", "month", "datetime", "hour", "boardings", "alightings", "line",
          "line_name")
# The standard headers of the Korean transport-card exports, read without --map: Seoul's
# subway and bus boardings per station and day (data.seoul.go.kr CARD_SUBWAY_MONTH,
# CARD_BUS_DAILY) and per hour of the day over a month (OA-12252 subway, 사용월/호선명/지하철역/
# "04시-05시 승차인원"; OA-12913 bus, 사용년월/노선번호/노선명/표준버스정류장ID/"00시승차총승객수").
# A bus file names its stop three ways: the first of these that the header has is the stop id;
# its route number (노선번호) is the line, the long route name (노선명) the line's name.
KOREAN = {"사용일자": "date", "사용월": "month", "사용년월": "month",
          "승차총승객수": "boardings", "하차총승객수": "alightings", "호선명": "line"}
KOREAN_STOP = ("표준버스정류장ID", "버스정류장ARS번호", "역명", "지하철역")
KOREA = "Asia/Seoul"  # the zone of Korean card data when --timezone is not given
#: One column of a wide hourly layout: the hour (a "HH시-HH시" range starts at its first hour),
#: boarding (승차) or alighting (하차).
WIDE_HOUR = re.compile(r"^\s*(\d{1,2})\s*시(?:\s*-\s*\d{1,2}\s*시)?\s*(승차|하차)"
                       r"(?:총승객수|총인원|인원|승객수)?\s*$")
_DATE = r"^\d{4}-\d{2}-\d{2}$"


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


def parse_months(text: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(date32 of each month's first day, mask of present-but-bad cells, mask of months) from
    YYYYMM, YYYY-MM, YYYY/MM or YYYY.MM; a whole date in a month column (20240507) is that
    day (its mask false)."""
    t = pc.utf8_trim_whitespace(text)
    month = pc.fill_null(pc.match_substring_regex(t, r"^\d{4}[-/.]?\d{1,2}$"), False)
    t = pc.replace_substring_regex(t, r"^(\d{4})[-/.]?(\d{1,2})$", r"\1-\2-01")
    day, bad = parse_dates(t)
    return day, bad, month


def local_wall_times(t: pa.Table, p: Problems,
                     tz_name: str) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(UTC instant of each period start, local date, local hour or null, period) from
    ``datetime``, ``date`` [+ ``hour``] or ``month`` [+ ``hour``]; bad or missing cells are
    flagged on ``p``. ``period`` is ``month`` for a month's count (``serviceDate`` its first
    day), else ``day`` (also for a whole date in a month column)."""
    period: pa.Array = pa.repeat(pa.scalar("day"), t.num_rows)
    if "datetime" in t.column_names:
        tz = zone(tz_name)
        instant, bad = parse_times(t.column("datetime"), tz)
        p.flag(bad, lambda i: reason("bad-timestamp", "datetime", value=p.cell("datetime", i)))
        p.flag(pc.is_null(instant), lambda i: reason("missing-required", "datetime"))
        wall = pc.local_timestamp(pc.cast(instant, pa.timestamp("us", tz=str(tz))))
        wall = pc.floor_temporal(wall, unit="hour")
        hour = pc.cast(pc.hour(wall), pa.int64())
    else:
        column = "date" if "date" in t.column_names else "month"
        if column == "date":
            day, bad_day = parse_dates(t.column(column).combine_chunks())
        else:
            day, bad_day, months = parse_months(t.column(column).combine_chunks())
            period = pc.if_else(months, "month", "day")
        p.flag(bad_day, lambda i: reason(
            "type-error", column, value=p.cell(column, i),
            expected="date (YYYY-MM-DD)" if column == "date" else "month (YYYYMM)"))
        p.flag(pc.is_null(day), lambda i: reason("missing-required", column))
        hour = parse_hours(t, p)
        seconds = pc.multiply(pc.fill_null(hour, 0), 3600_000_000)
        wall = pc.cast(pc.add(pc.cast(pc.cast(day, pa.timestamp("us")), pa.int64()), seconds),
                       pa.timestamp("us"))
    local_date = pc.cast(wall, pa.date32())
    return local_to_utc(wall, tz_name), local_date, hour, period


class Boardings(Adapter):
    """The ``boardings`` adapter."""

    name = "boardings"
    entity_types = (TYPE,)
    summary = ("Transport-card boardings and alightings per stop (and line) and hour, day or "
               "month (CSV; the Korean card exports as published).")
    example = ("hubctl ingest boardings card-2024-05.csv --feed-id daegu --timezone Asia/Seoul "
               "--map 정류소ID=stop_id --map 승차=boardings --map 하차=alightings\n"
               "  hubctl ingest boardings CARD_BUS_TIME_202405.csv --feed-id seoul")
    params: Sequence[click.Parameter] = (
        click.Option(["--feed-id"], default=None, metavar="ID",
                     help="GTFS feed id of the stop ids: links each count to its GtfsStop."),
        click.Option(["--timezone"], default=None, metavar="ZONE",
                     help="IANA time zone of local dates and hours, e.g. Asia/Seoul "
                          "(default: Asia/Seoul for the Korean card exports, else UTC)."),
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read header COLUMN as FIELD (stop_id, date, month, datetime, hour, "
                          "boardings, alightings, line, line_name); repeatable."),
        click.Option(["--sum-repeats"], is_flag=True, default=False,
                     help="Add up rows of the same stop, line and hour within an input (files "
                          "split by card type, or one row per tap); without it the last row "
                          "wins, with a warning. A line column (노선명, 호선명, --map "
                          "COLUMN=line) keeps one series per stop and line."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The counts of every input file, batch by batch."""
        mapping = parse_map(options.get("mapping"), FIELDS)
        given = str(options.get("timezone") or "").strip() or None
        if given:
            zone(given)  # a bad zone fails before any file is read
        feed = (options.get("feed_id") or "").strip() or None
        for path in inputs:
            zones = [given or "UTC"]
            hours: list[int] = []

            def rename(header: Sequence[str], zones: list[str] = zones,
                       where: Path = Path(path)) -> dict[str, str]:
                found = _korean(header)
                if given is None and (found or wide_hours(header)):
                    zones[0] = KOREA
                    ctx.warn(f"{where.name}: Korean card data: local dates and hours read in "
                             f"{KOREA} (give --timezone to change)")
                return found

            def need(where: Path, names: list[str], hours: list[int] = hours) -> None:
                _need(where, names)
                hours.append(len(wide_hours(names)))

            def convert(t: pa.Table, p: Problems, zones: list[str] = zones,
                        where: Path = Path(path)) -> Batch:
                return _convert(t, p, zone=zones[0], feed=feed, path=where)

            batches = _bounded(field_batches(Path(path), mapping, TYPE, need, ctx, convert,
                                             limits=csv_limits(options), rename=rename,
                                             cp949=True),
                               max(1, ctx.batch_rows), ctx, hours, Path(path))
            if options.get("sum_repeats"):
                yield from _summed(batches, Path(path), max(1, ctx.batch_rows), ctx)
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
    if "노선번호" in names:  # bus: the route number is the line, 노선명 its long name
        out["line"] = "노선번호"
        if "노선명" in names:
            out["line_name"] = "노선명"
    elif "노선명" in names:  # subway per day: 노선명 is the line (1호선)
        out["line"] = "노선명"
    return out


def wide_hours(names: Sequence[str]) -> dict[int, dict[str, str]]:
    """{hour: {"boardings": column, "alightings": column}} of a wide hourly layout (empty when
    ``names`` has no hour columns)."""
    out: dict[int, dict[str, str]] = {}
    for name in names:
        m = WIDE_HOUR.match(name)
        if m and 0 <= int(m.group(1)) <= 23:
            field = "boardings" if m.group(2) == "승차" else "alightings"
            out.setdefault(int(m.group(1)), {})[field] = name
    return dict(sorted(out.items()))


def _bounded(batches: Iterator[Batch], size: int, ctx: ReadContext, hours: list[int],
             path: Path) -> Iterator[Batch]:
    """Batches of at most ``size`` rows: a wide hourly block melts into 24 rows per input
    row, so its batch is cut (each row is one record; rejects stay with the first part).
    For a wide layout (``hours``: its hour columns, known once the header is read) a note at
    the end says that records are rows times hours."""
    records = 0
    for b in batches:
        records += b.records
        if b.rows is None or b.rows.num_rows <= size:
            yield b
            continue
        for start in range(0, b.rows.num_rows, size):
            part = b.rows.slice(start, size)
            first = start == 0
            yield Batch(TYPE, part, b.file, part.num_rows + (b.records - b.rows.num_rows
                                                             if first else 0),
                        rejects=b.rejects if first else [])
    if hours and hours[0] and records:
        ctx.warn(f"{path.name}: a wide hourly layout ({hours[0]} hour columns): its "
                 f"{records:,} records are one per row and hour, so read counts rows times "
                 "hours")


def _watched(batches: Iterator[Batch], path: Path, ctx: ReadContext) -> Iterator[Batch]:
    """Batches as they come; at the end a warning when rows of one stop, line and time repeat
    within the file (the later row replaced the earlier), and a note of the stops that appear
    on several lines (kept one series per line)."""
    seen: dict[str, int] = {}
    keys: list[np.ndarray] = []
    lines: dict[str, set[str]] = {}
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
            pairs = b.rows.select(["stopId", "line"]).group_by(
                ["stopId", "line"], use_threads=False).aggregate([])
            for stop, line in zip(pairs["stopId"].to_pylist(), pairs["line"].to_pylist(),
                                  strict=True):
                if line is not None:
                    lines.setdefault(stop, set()).add(line)
        yield b
    if not keys:
        return
    several = {s: sorted(v) for s, v in lines.items() if len(v) > 1}
    if several:
        stop, names = next(iter(sorted(several.items())))
        ctx.warn(f"{path.name}: {len(several):,} stops appear on more than one line (e.g. "
                 f"{stop}: {', '.join(names)}); each line is kept as its own series "
                 "(the line is in the key), not summed")
    every = np.concatenate(keys)
    repeated = len(every) - len(np.unique(every))
    if repeated:
        ctx.warn(f"{path.name}: {repeated:,} of {len(every):,} rows repeat a stop and time "
                 "given earlier in the file; each replaced the one before (counted as updated "
                 "or duplicate). Give --sum-repeats to add them up, or --map COLUMN=line when "
                 "the file splits a stop's counts by line")


def _summed(batches: Iterator[Batch], path: Path, size: int,
            ctx: ReadContext) -> Iterator[Batch]:
    """The rows of a whole input with repeats of a stop (and line) and hour added up
    (``_records`` says how many input records each sum stands for); rejects pass through as
    they come."""
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
    keys = ["id", "observed_at"]
    counts = ["boardings", "alightings"]
    others = [c for c in rows.column_names if c not in (*keys, *counts)]
    summed = rows.group_by(keys, use_threads=False).aggregate(
        [(c, "sum") for c in counts] + [(c, "first") for c in others] + [("id", "count")])
    summed = summed.rename_columns(
        ["_records" if c == "id_count"
         else c.removesuffix("_sum").removesuffix("_first") for c in summed.column_names])
    summed = summed.sort_by([("id", "ascending"), ("observed_at", "ascending")])
    if summed.num_rows < rows.num_rows:
        several = pc.greater(summed["_records"], 1)
        example = summed.filter(several).slice(0, 1).to_pylist()[0]
        ctx.warn(f"{path.name}: {rows.num_rows:,} rows read became {summed.num_rows:,} rows "
                 f"of a stop and time: {rows.num_rows - summed.num_rows:,} repeats were added "
                 f"up, e.g. stop {example['stopId']} on {example['serviceDate']}")
    for start in range(0, summed.num_rows, size):
        part = summed.slice(start, size)
        yield Batch(TYPE, part, str(path), int(pc.sum(part["_records"]).as_py()))


def _need(path: Path, names: list[str]) -> None:
    missing = [] if "stop_id" in names else ["stop_id"]
    if not {"datetime", "date", "month"} & set(names):
        missing.append("date or datetime (or month)")
    if "boardings" not in names and "alightings" not in names and not wide_hours(names):
        missing.append("boardings or alightings")
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; the header has "
                         f"{', '.join(names)}", path=str(path), record="line 1",
                         hint="name them with --map COLUMN=FIELD")


def _melted(t: pa.Table, p: Problems) -> tuple[pa.Table, Problems]:
    """A wide hourly table as one row per input row and hour (``hour``, ``boardings``,
    ``alightings``), input row by input row; each keeps its file line."""
    hours = wide_hours(t.column_names)
    if not hours:
        return t, p
    wide = {c for cols in hours.values() for c in cols.values()}
    n, h = t.num_rows, len(hours)
    rows = np.repeat(np.arange(n), h)
    base = t.select([c for c in t.column_names if c not in wide and c not in (
        "hour", "boardings", "alightings")]).take(pa.array(rows))
    at = pa.array(np.tile(np.arange(h), n) * n + rows)
    columns: dict[str, pa.Array] = {"hour": pa.array(
        np.repeat(np.array([str(x) for x in hours], dtype=object)[None, :], n, axis=0).ravel(),
        pa.string())}
    for field in ("boardings", "alightings"):
        parts = [t.column(cols[field]).combine_chunks() if field in cols
                 else pa.nulls(n, pa.string()) for cols in hours.values()]
        columns[field] = pc.take(pa.concat_arrays([pc.cast(a, pa.string()) for a in parts]), at)
    melted = base
    for name, values in columns.items():
        melted = melted.append_column(name, values)
    return melted, Problems(melted, p.type_name, p.path, np.asarray(p.lines)[rows])


def _convert(t: pa.Table, p: Problems, zone: str, feed: str | None, path: Path) -> Batch:
    t, p = _melted(t, p)
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
    observed, local_date, hour, period = local_wall_times(t, p, zone)
    local = pc.if_else(blank(stop), pa.scalar(None, pa.string()), stop)
    line, line_name = (_text(t, c) for c in ("line", "line_name"))
    ids = urns(TYPE, series(local, line, hour, period), feed or "")
    rows = pa.table({
        "id": ids, "observed_at": observed, "dateObserved": observed,
        "serviceDate": local_date, "hour": hour, "period": period,
        "boardings": counts["boardings"], "alightings": counts["alightings"],
        "stopId": local, "line": line, "lineName": line_name,
        "feedId": pa.repeat(pa.scalar(feed, pa.string()), n),
        "refStop": urns("GtfsStop", local, feed) if feed else pa.nulls(n, pa.string()),
        "source": pa.repeat(pa.scalar(path.name), n),
        "_time_index": pa.repeat(pa.scalar("dateObserved"), n),
        "_record": p.record_column(),
    }).filter(p.keep())
    return Batch(TYPE, rows, str(path), n, rejects=p.rejects())


def _text(t: pa.Table, column: str) -> pa.Array:
    """A trimmed text column, null where blank or absent."""
    if column not in t.column_names:
        return pa.nulls(t.num_rows, pa.string())
    text = pc.utf8_trim_whitespace(t.column(column).combine_chunks())
    return pc.if_else(blank(text), pa.scalar(None, pa.string()), text)


def series(stop: pa.Array, line: pa.Array, hour: pa.Array, period: pa.Array) -> pa.Array:
    """The local part of each row's entity id: the stop, ``:line:<line>`` where the row names
    one, and the kind of count: nothing for an hour of a day, ``:daily`` for a day's total,
    ``:monthly-hours`` for a month's total of one hour of the day, ``:monthly`` for a month's
    total (each its own series, so that they never collide at the same start instant)."""
    with_line = pc.if_else(pc.is_null(line), stop,
                           pc.binary_join_element_wise(stop, line, ":line:"))
    month = pc.equal(period, "month")
    suffix = pc.if_else(pc.is_null(hour), pc.if_else(month, ":monthly", ":daily"),
                        pc.if_else(month, ":monthly-hours", ""))
    return pc.binary_join_element_wise(with_line, suffix, "")


def _not_a_number(p: Problems, column: str) -> Callable[[int], Reason]:
    return lambda i: reason("type-error", column, value=p.cell(column, i), expected="number")


def _negative(p: Problems, column: str) -> Callable[[int], Reason]:
    return lambda i: reason("negative-value", column, value=p.cell(column, i))


ADAPTER = Boardings()
