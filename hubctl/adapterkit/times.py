"""Times of day and local times in text columns, read the same way by every adapter.

Local wall-clock times become UTC through :mod:`hubctl.localtime` (one zone lookup, one rule
for times in a DST gap or repeated hour).
"""

from __future__ import annotations

from datetime import tzinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit.problems import Problems
from hubctl.arrowkit import blank, parse_numbers, parse_timestamps
from hubctl.localtime import zone, zone_offsets
from hubctl.rejects import reason
from hubctl.types import TIMESTAMP

__all__ = ["parse_hours", "parse_times"]

_ISO_LOCAL = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$"  # most exports: the fast path



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


def parse_times(text: pa.Array | pa.ChunkedArray, tz: tzinfo | str = "UTC",
                fmt: str | None = None, *, need_time: bool = False
                ) -> tuple[pa.Array, pa.Array]:
    """(UTC timestamps, mask of present-but-unreadable texts) of date-time texts: the one
    reader of local times in text columns.

    ``fmt`` is a strptime format (``%d/%m/%Y %H:%M``). Without it, ISO 8601 (``T`` or a
    space, fractions of a second, an offset or ``Z``) and the other spellings sources publish:
    ``YYYYMMDDHHMMSS``, ``.`` or ``/`` separators, Korean 년월일/시분초, ``MM/DD/YYYY
    HH:MM[:SS] [AM|PM]``, 오전/오후, and hour 24 (the next midnight). Texts without an offset
    are wall-clock times in ``tz`` (an IANA name, an offset, or a tzinfo), converted by
    :mod:`hubctl.localtime`'s one rule: a time in a DST gap takes the offset before the change,
    a repeated hour is its first occurrence. A date alone is its midnight, or unreadable with
    ``need_time`` (a call's time is its key). Repeated texts (sensor data) are parsed once.
    """
    tz_ = tz if isinstance(tz, tzinfo) else zone(tz)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if len(text) == 0:
        return pa.array([], TIMESTAMP), pa.array([], pa.bool_())
    head = text.slice(0, 4096)
    if len(text) > 4096 and pc.count_distinct(head).as_py() * 2 > len(head):
        return _parse(text, tz_, fmt, need_time)  # mostly distinct texts: no dictionary
    encoded = pc.dictionary_encode(text)
    values, bad = _parse(encoded.dictionary, tz_, fmt, need_time)
    return pc.take(values, encoded.indices), pc.fill_null(pc.take(bad, encoded.indices), False)


def _parse(text: pa.Array, tz_: tzinfo, fmt: str | None,
           need_time: bool) -> tuple[pa.Array, pa.Array]:
    if fmt:
        naive = pc.strptime(pc.utf8_trim_whitespace(text), format=fmt, unit="us",
                            error_is_null=True)
        values = _wall_to_utc(naive, tz_)
        return values, pc.and_(pc.invert(blank(text)), pc.is_null(values))
    fast = _iso_local(text, tz_)
    return fast if fast is not None else _any_spelling(text, tz_, need_time)


def _iso_local(text: pa.Array, tz_: tzinfo) -> tuple[pa.Array, pa.Array] | None:
    """The fast path of most exports: every present text is ``YYYY-MM-DD[ T]HH:MM:SS``
    without an offset, read by Arrow's cast over the whole column. None when any text needs
    the general path."""
    present = pc.invert(blank(text))
    simple = pc.fill_null(pc.match_substring_regex(text, _ISO_LOCAL), False)
    if pc.sum(simple).as_py() != pc.sum(present).as_py():
        return None
    iso = pc.if_else(present, pc.replace_substring(text, " ", "T"), pa.scalar(None, pa.string()))
    try:
        naive = pc.cast(iso, pa.timestamp("us"))
    except pa.ArrowInvalid:  # an impossible date (Feb 30): the general path says which
        return None
    return _wall_to_utc(naive, tz_), pa.array(np.zeros(len(text), bool))


def _wall_to_utc(naive: pa.Array, tz_: tzinfo) -> pa.Array:
    """Zone-less timestamps as wall-clock times in ``tz_``, to UTC ``TIMESTAMP``."""
    ints = pc.cast(pc.cast(naive, pa.timestamp("us")), pa.int64())
    valid = np.asarray(pc.is_valid(ints).to_numpy(zero_copy_only=False), bool)
    local = np.asarray(pc.fill_null(ints, 0).to_numpy(zero_copy_only=False), np.int64)
    utc = local - zone_offsets(local, tz_, valid)
    return pa.array(utc, pa.int64(), mask=~valid).cast(TIMESTAMP)


def _any_spelling(uniq: pa.Array, tz_: tzinfo, need_time: bool) -> tuple[pa.Array, pa.Array]:
    """ISO 8601 through Arrow's cast; the texts it cannot read through the general pattern."""
    trimmed = pc.utf8_trim_whitespace(uniq)
    zoned = pc.fill_null(pc.match_substring_regex(  # an offset after a time of day
        trimmed, r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"), False)
    as_utc, bad = parse_timestamps(uniq, "+00:00")
    naive = pc.cast(pc.cast(as_utc, pa.int64()), pa.timestamp("us"))
    values = pc.if_else(zoned, as_utc, _wall_to_utc(naive, tz_))
    bad_np = np.asarray(pc.fill_null(bad, False).to_numpy(zero_copy_only=False), bool)
    if need_time:  # an ISO date alone: unreadable
        dated = np.asarray(pc.fill_null(pc.match_substring_regex(
            trimmed, r"^\d{4}-\d{2}-\d{2}$"), False).to_numpy(zero_copy_only=False), bool)
        values = pc.if_else(pa.array(dated), pa.scalar(None, TIMESTAMP), values)
        bad_np = bad_np | dated
    rest = np.flatnonzero(bad_np)
    if len(rest):
        more, still = _general(uniq.take(pa.array(rest)), tz_)
        mask = np.zeros(len(uniq), bool)
        mask[rest] = True
        values = pc.replace_with_mask(values, pa.array(mask), more)
        bad_np[rest] = still
    return values, pa.array(bad_np)


_DATETIME = (
    r"^\s*(?:(?P<y>\d{4})[-./년]?\s*(?P<mo>\d{1,2})[-./월]?\s*(?P<d>\d{1,2})일?"
    r"|(?P<mo2>\d{1,2})/(?P<d2>\d{1,2})/(?P<y2>\d{4}))"
    r"(?:(?:[T\s]+|)(?P<h>\d{1,2})(?:[:시]\s*)?(?P<mi>\d{2})분?"
    r"(?::?(?P<s>\d{2})(?:\.\d+)?초?)?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?|오전|오후)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?\s*$")


def _part(m: pa.Array, name: str, alt: str | None = None) -> np.ndarray:
    """One regex group as int64 (-1 where empty or unmatched)."""
    text = pc.struct_field(m, name)
    if alt is not None:
        text = pc.if_else(pc.equal(text, ""), pc.struct_field(m, alt), text)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return np.asarray(pc.fill_null(pc.cast(text, pa.int64()), -1).to_numpy(
        zero_copy_only=False))


def _general(text: pa.Array, tz_: tzinfo) -> tuple[pa.Array, np.ndarray]:
    """(UTC timestamps, mask of unreadable texts) of date-times in the other spellings:
    ``YYYYMMDDHHMMSS``, ``.`` or ``/`` separators, Korean 년월일/시분초, ``MM/DD/YYYY
    HH:MM[:SS] [AM|PM]``, 오전/오후, hour 24; a date needs a time of day here."""
    m = pc.extract_regex(pc.fill_null(text, ""), _DATETIME)
    matched = np.asarray(pc.is_valid(m).to_numpy(zero_copy_only=False), dtype=bool)
    m = pc.fill_null(m, pa.scalar({k: "" for k in (
        "y", "mo", "d", "mo2", "d2", "y2", "h", "mi", "s", "ampm", "tz")}, m.type))
    y, mo, d = _part(m, "y", "y2"), _part(m, "mo", "mo2"), _part(m, "d", "d2")
    h, mi, sec = _part(m, "h"), _part(m, "mi"), np.maximum(_part(m, "s"), 0)
    ampm = pc.utf8_upper(pc.replace_substring(pc.struct_field(m, "ampm"), ".", ""))
    pm = np.asarray(pc.is_in(ampm, value_set=pa.array(["PM", "오후"])).to_numpy(
        zero_copy_only=False), dtype=bool)
    twelve = np.asarray(pc.not_equal(ampm, "").to_numpy(zero_copy_only=False), dtype=bool)
    ok = matched & (y >= 1900) & (mo >= 1) & (mo <= 12) & (d >= 1) & (h >= 0) & (mi <= 59)
    ok &= (sec <= 60) & ((h < 24) | ((h == 24) & (mi == 0) & (sec == 0) & ~twelve))
    ok &= ~twelve | ((h >= 1) & (h <= 12))
    h = np.where(twelve, h % 12 + np.where(pm, 12, 0), h)
    month = np.where(ok, (y - 1970) * 12 + mo - 1, 0).astype("datetime64[M]")
    day = month.astype("datetime64[D]") + np.where(ok, d - 1, 0)
    ok &= day.astype("datetime64[M]") == month
    local = (day.astype(np.int64) * 86400 + (h * 60 + mi) * 60 + np.minimum(sec, 59)) * 1_000_000
    local = np.where(ok, local, 0)
    tz = pc.struct_field(m, "tz")
    has_tz = np.asarray(pc.not_equal(tz, "").to_numpy(zero_copy_only=False), dtype=bool)
    utc = local - np.where(has_tz, _fixed_offsets(tz), zone_offsets(local, tz_, ok & ~has_tz))
    return pa.array(utc, pa.int64(), mask=~ok).cast(TIMESTAMP), ~ok


def _fixed_offsets(tz: pa.Array) -> np.ndarray:
    """Microseconds east of UTC of texts like +09:00, -0700 or Z (0 where empty)."""
    parts = pc.extract_regex(tz, r"^(?P<sign>[+-]?)(?P<hh>\d{0,2}):?(?P<mm>\d{0,2})$")
    parts = pc.fill_null(parts, pa.scalar({"sign": "", "hh": "", "mm": ""}, parts.type))
    hh = _part(parts, "hh").clip(0)
    mm = _part(parts, "mm").clip(0)
    sign = np.where(np.asarray(pc.equal(pc.struct_field(parts, "sign"), "-").to_numpy(
        zero_copy_only=False), dtype=bool), -1, 1)
    return np.asarray(sign * (hh * 60 + mm) * 60_000_000, dtype=np.int64)
