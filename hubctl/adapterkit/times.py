"""Times of day and local times in text columns, read the same way by every adapter.

Local wall-clock times become UTC through :mod:`hubctl.localtime` (one zone lookup, one rule
for times in a DST gap or repeated hour).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit.problems import Problems
from hubctl.arrowkit import parse_numbers
from hubctl.rejects import reason

__all__ = ["parse_hours"]


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
