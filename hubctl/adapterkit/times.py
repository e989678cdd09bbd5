"""Times of day and local times in text columns, read the same way by every adapter.

Local wall-clock times become UTC through :mod:`hubctl.localtime` (one zone lookup, one rule
for times in a DST gap or repeated hour).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit.problems import Problems
from hubctl.arrowkit import blank, parse_numbers, parse_timestamps
from hubctl.localtime import local_to_utc
from hubctl.rejects import reason
from hubctl.types import TIMESTAMP

__all__ = ["parse_hours", "parse_times"]

_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$|^Z$|^UTC$", re.IGNORECASE)


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


def parse_times(text: pa.Array, tz: str = "UTC", fmt: str | None = None
                ) -> tuple[pa.Array, pa.Array]:
    """(UTC timestamps, mask of present-but-unparseable cells).

    ``fmt`` is a strptime format (``%d/%m/%Y %H:%M``); without it ISO 8601 is expected.
    Texts without a zone are local times in ``tz``: an IANA name (``Europe/London``) or an
    offset (``+09:00``). Each distinct text is parsed once.
    """
    n = len(text)
    if n == 0:
        return pa.array([], TIMESTAMP), pa.array([], pa.bool_())
    encoded = pc.dictionary_encode(text)
    uniq, idx = encoded.dictionary, encoded.indices
    if fmt:
        missing = blank(uniq)
        naive = pc.strptime(pc.utf8_trim_whitespace(uniq), format=fmt, unit="us",
                            error_is_null=True)
        values = local_to_utc(naive, tz)
        bad = pc.and_(pc.invert(missing), pc.is_null(values))
    elif _OFFSET.match(tz.strip()):
        offset = tz.strip().upper()
        offset = "+00:00" if offset in ("Z", "UTC") else offset
        values, bad = parse_timestamps(uniq, offset)
    else:
        zoned = pc.fill_null(pc.match_substring_regex(
            pc.utf8_trim_whitespace(uniq), r"(Z|[+-]\d{2}(:?\d{2})?)$"), False)
        as_utc, bad = parse_timestamps(uniq, "+00:00")
        naive = pc.cast(pc.cast(as_utc, pa.int64()), pa.timestamp("us"))
        values = pc.if_else(zoned, as_utc, local_to_utc(naive, tz))
    return pc.take(values, idx), pc.fill_null(pc.take(bad, idx), False)
