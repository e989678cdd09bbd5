"""Local wall-clock times to UTC: the one conversion every adapter uses.

The rule, for every adapter and every time zone, is RFC 5545's (iCalendar, section 3.3.5) and
Python's ``fold=0`` (PEP 495):

* a local time that does not exist (inside a spring-forward gap, e.g. 02:30 on 2024-03-10 in
  America/Los_Angeles) is read with the UTC offset before the transition: 02:30 PST =
  10:30Z (which is 03:30 PDT);
* a local time that happens twice (the fall-back hour, e.g. 01:30 on 2024-11-03 there) is its
  first occurrence: 01:30 PDT = 08:30Z.

So a call and a meter reading at the same local time always land on the same instant.
Offsets come from the zone database once per distinct local minute.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.errors import UsageError
from hubctl.types import TIMESTAMP

__all__ = ["local_to_utc", "wall_to_utc", "zone", "zone_offsets"]

_OFFSET = re.compile(r"^(?:Z|UTC|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_US_PER_MINUTE = 60_000_000


def zone(name: str, option: str = "--timezone") -> tzinfo:
    """The time zone ``name``: an IANA name (Asia/Seoul) or a fixed offset (+09:00, Z, UTC);
    a UsageError naming ``option`` otherwise."""
    text = name.strip()
    if _OFFSET.match(text):
        if text.upper() in ("Z", "UTC"):
            return UTC
        sign = -1 if text[0] == "-" else 1
        hh, mm = int(text[1:3]), int(text[-2:])
        # named +HH:MM, so that str() of the zone is a time zone Arrow and DuckDB take
        return timezone(sign * timedelta(hours=hh, minutes=mm), f"{text[0]}{hh:02d}:{mm:02d}")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"{option} {name!r} is not a known time zone",
                         hint="use an IANA name such as Asia/Seoul, America/Los_Angeles or "
                              "UTC, or an offset like +09:00") from None


def wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """One zone-less wall-clock time in ``tz`` as a UTC datetime, by the module's rule (the
    scalar form of :func:`local_to_utc`)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def zone_offsets(local_us: np.ndarray, tz: tzinfo, use: np.ndarray | None = None) -> np.ndarray:
    """UTC offset in microseconds of each local time (microseconds since 1970-01-01 on the
    wall clock) in ``tz``, by the module's rule; 0 where ``use`` is False."""
    out = np.zeros(len(local_us), dtype=np.int64)
    mask = np.ones(len(local_us), bool) if use is None else np.asarray(use, bool)
    if not mask.any():
        return out
    minutes, inverse = np.unique(local_us[mask] // _US_PER_MINUTE, return_inverse=True)
    epoch = datetime(1970, 1, 1)
    offsets = np.array([
        ((epoch + timedelta(minutes=int(m))).replace(tzinfo=tz, fold=0).utcoffset()
         or timedelta(0)) // timedelta(microseconds=1) for m in minutes], dtype=np.int64)
    out[mask] = offsets[inverse.reshape(-1)]
    return out


def local_to_utc(naive: pa.Array | pa.ChunkedArray, name: str) -> pa.Array:
    """Zone-less timestamps read as wall-clock times in ``name`` (IANA name or offset), as
    UTC ``TIMESTAMP``; nulls stay null."""
    tz = zone(name)
    if isinstance(naive, pa.ChunkedArray):
        naive = naive.combine_chunks()
    ints = pc.cast(pc.cast(naive, pa.timestamp("us")), pa.int64())
    valid = np.asarray(pc.is_valid(ints).to_numpy(zero_copy_only=False), bool)
    local = np.asarray(pc.fill_null(ints, 0).to_numpy(zero_copy_only=False), np.int64)
    utc = local - zone_offsets(local, tz, valid)
    return pa.array(utc, pa.int64(), mask=~valid).cast(TIMESTAMP)
