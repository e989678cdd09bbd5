"""Vectorised parsing of GTFS text columns.

Each parser takes a text column (null = empty field) and returns the typed values plus a mask
of the cells whose text was present but did not parse. Only the rows that fail are touched
in Python: to build their reasons and their raw record.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["clock_text", "parse_bool", "parse_clock",
           "parse_date", "parse_float", "parse_int", "text", "trimmed"]

_CLOCK = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")


def text(table: pa.Table, name: str) -> pa.Array:
    """Column ``name`` as one string array (all null when the file lacks the column)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def trimmed(table: pa.Table, name: str) -> pa.Array:
    """An id column without surrounding blanks; a blank id is null."""
    arr = pc.ascii_trim_whitespace(text(table, name))
    blank = pc.equal(arr, "")
    return pc.if_else(blank, pa.scalar(None, pa.string()), arr) if pc.any(blank).as_py() else arr


def _mask(arr: pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(arr, np.ndarray):
        return arr.astype(bool)
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def parse_int(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(int64 values, bad mask). ``3``, `` 3 ``, ``+3`` and ``3.0`` are 3."""
    try:
        return pc.cast(arr, pa.int64()), np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    clean = pc.ascii_trim_whitespace(arr)
    ok = pc.fill_null(pc.match_substring_regex(clean, r"^[-+]?\d{1,18}(\.0*)?$"), False)
    digits = pc.replace_substring_regex(clean, r"^\+|\.0*$", "")
    values = pc.cast(pc.if_else(ok, digits, pa.scalar(None, pa.string())), pa.int64())
    blank = pc.fill_null(pc.equal(clean, ""), False)
    return values, _mask(pc.and_(pc.and_(pc.is_valid(arr), pc.invert(ok)), pc.invert(blank)))


def parse_float(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(float64 values, bad mask); NaN and infinity are bad."""
    try:
        values = pc.cast(arr, pa.float64())
        bad = np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        clean = pc.ascii_trim_whitespace(arr)
        ok = pc.fill_null(pc.match_substring_regex(
            clean, r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"), False)
        values = pc.cast(pc.if_else(ok, clean, pa.scalar(None, pa.string())), pa.float64())
        blank = pc.fill_null(pc.equal(clean, ""), False)
        bad = _mask(pc.and_(pc.and_(pc.is_valid(arr), pc.invert(ok)), pc.invert(blank)))
    finite = _mask(pc.is_finite(values)) | ~_mask(pc.is_valid(values))
    if not finite.all():
        bad |= ~finite
        values = pc.if_else(pa.array(finite), values, pa.scalar(None, pa.float64()))
    return values, bad


def parse_bool(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(boolean values, bad mask) from GTFS ``0`` / ``1``."""
    clean = pc.ascii_trim_whitespace(arr)
    one, zero = pc.equal(clean, "1"), pc.equal(clean, "0")
    ok = pc.or_(one, zero)
    values = pc.if_else(ok, one, pa.scalar(None, pa.bool_()))
    return values, _mask(pc.and_(pc.is_valid(arr), pc.invert(ok)))


def parse_date(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(date32 values, bad mask) from GTFS ``YYYYMMDD``."""
    clean = pc.ascii_trim_whitespace(arr)
    shaped = pc.fill_null(pc.match_substring_regex(clean, r"^\d{8}$"), False)
    stamps = pc.strptime(pc.if_else(shaped, clean, pa.scalar(None, pa.string())),
                         format="%Y%m%d", unit="s", error_is_null=True)
    values = pc.cast(stamps, pa.date32())
    # strptime rolls 20260229 over to 2026-03-01: a date must print back as its own text
    same = pc.equal(pc.strftime(values, format="%Y%m%d"), clean)
    values = pc.if_else(pc.fill_null(same, False), values, pa.scalar(None, pa.date32()))
    return values, _mask(pc.and_(pc.is_valid(arr), pc.is_null(values)))


def clock_text(seconds: pa.Array) -> pa.Array:
    """``HH:MM:SS`` (hours zero-padded to two digits, 25:10:00 past midnight) of seconds after
    the service day's midnight: the form GTFS and the SDM Gtfs* schemas write, whatever the
    feed's own spelling (``6:00:00``); null stays null."""
    def two(values: pa.Array) -> pa.Array:
        return pc.ascii_lpad(pc.cast(values, pa.string()), 2, "0")

    hours = pc.divide(seconds, 3600)
    minutes = pc.divide(pc.subtract(seconds, pc.multiply(hours, 3600)), 60)
    secs = pc.subtract(seconds, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    return pc.binary_join_element_wise(two(hours), two(minutes), two(secs), ":")


def parse_clock(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(seconds after the service day's midnight, bad mask) from ``H:MM:SS`` / ``HH:MM:SS``.

    Times past midnight (``25:10:00`` is 90600) are valid GTFS. Every cell is left-padded
    with zeros to nine characters (``006:00:00``), so the Arrow string buffer becomes a
    fixed-width byte matrix that numpy checks and converts column by column. Cells of another
    width, or with blanks around the time, go through a regular expression one by one.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    valid = _mask(pc.is_valid(arr))
    if n == 0 or not valid.any():
        return pa.nulls(n, pa.int64()), np.zeros(n, bool)
    padded = pc.ascii_lpad(pc.fill_null(arr.cast(pa.string()), "000:00:00"), 9, "0")
    odd = _mask(pc.not_equal(pc.binary_length(padded), 9))
    if odd.any():
        padded = pc.if_else(pa.array(odd), "000:00:00", padded)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[
        padded.offset:padded.offset + n + 1]
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    d = np.ascontiguousarray(data.reshape(n, 9).T) - np.uint8(48)  # digits 0..9, ':' is 10
    ok = valid & ~odd & (d[3] == 10) & (d[6] == 10) & (d[4] <= 5) & (d[7] <= 5)
    for k in (0, 1, 2, 5, 8):
        ok &= d[k] <= 9
    hours = d[0].astype(np.int64) * 100 + d[1].astype(np.int64) * 10 + d[2]
    seconds = hours * 3600 + (d[4].astype(np.int64) * 10 + d[5]) * 60 + d[7] * 10 + d[8]
    bad = np.zeros(n, bool)
    for i in np.flatnonzero(valid & ~ok):  # blanks around the time, or not a time at all
        value = arr[int(i)].as_py().strip()
        match = _CLOCK.match(value)
        if match:
            h, m, sec = (int(g) for g in match.groups())
            seconds[i] = h * 3600 + m * 60 + sec
            ok[i] = True
        elif value:
            bad[i] = True
    return pa.array(seconds, pa.int64(), mask=~ok), bad
