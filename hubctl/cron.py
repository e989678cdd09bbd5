"""Cron expressions: parse, compute the next fire time, and convert to systemd ``OnCalendar=``.

Five fields as in crontab(5) (minute, hour, day of month, month, day of week), or six with a
leading seconds field (as Quartz and Spring write it; useful for tests and for systemd timers).
Each field takes ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n``, and lists
``a,b-c``; months and days of the week also take English names (``jan``, ``mon-fri``); day of
the week 0 and 7 are both Sunday. ``@hourly``, ``@daily``, ``@weekly``, ``@monthly`` and
``@yearly`` are accepted. As in Vixie cron, when both day fields are restricted (neither starts
with ``*``) a day matches if either does; otherwise both must.

Fire times are wall-clock times of a time zone (the machine's local zone by default, as cron
uses); a wall-clock time that does not exist there (a daylight-saving gap) is skipped. When the
clocks go back, the repeated wall times come twice: as in Vixie cron, an expression whose
minute or hour field starts with ``*`` (``*/30 * * * *``) fires in both passes, a fixed-time
one (``30 2 * * *``) in the first only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "CronExpr", "local_zone", "parse_cron"]

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
_SEARCH_YEARS = 30  # an expression that does not fire within this many years never fires


class CronError(ValueError):
    """A cron expression that cannot be parsed, with the field and what is wrong."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # value of names[0]


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DOM = _Field("day of month", 1, 31)
MONTH = _Field("month", 1, 12, MONTHS, 1)
DOW = _Field("day of week", 0, 7, DAYS, 0)


def _value(text: str, f: _Field) -> int:
    low = text.lower()
    if f.names and low in f.names:
        return f.names.index(low) + f.name_base
    if not text.isdigit():
        hint = f" or a name ({', '.join(f.names[:3])}, ...)" if f.names else ""
        raise CronError(f"{f.name}: {text!r} is not a number{hint}")
    value = int(text)
    if not f.low <= value <= f.high:
        raise CronError(f"{f.name}: {value} is outside {f.low}-{f.high}")
    return value


def _part(part: str, f: _Field) -> set[int]:
    """Values of one list element: ``*``, ``a``, ``a-b``, each optionally ``/step``."""
    base, _, step_text = part.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{f.name}: step {step_text!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        start, end = f.low, f.high
    elif "-" in base:
        a, _, b = base.partition("-")
        start, end = _value(a, f), _value(b, f)
        if start > end:
            raise CronError(f"{f.name}: range {base!r} runs backwards")
    else:
        start = _value(base, f)
        end = f.high if step_text else start
    return set(range(start, end + 1, step))


def _field(text: str, f: _Field) -> frozenset[int]:
    if not text:
        raise CronError(f"{f.name}: empty field")
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{f.name}: empty list element in {text!r}")
        values |= _part(part, f)
    if f is DOW and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class CronExpr:
    """A parsed cron expression; ``text`` is what was written."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_or: bool  # both day fields restricted: a day matches if either matches
    wildcard: bool = True  # minute or hour field starts with "*" (Vixie cron's DST rule)

    @property
    def has_seconds(self) -> bool:
        """True for a six-field expression that fires at seconds other than :00."""
        return self.seconds != frozenset({0})

    def day_matches(self, day: datetime) -> bool:
        """Whether the calendar day of ``day`` is one the expression fires on."""
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        return (dom or dow) if self.day_or else (dom and dow)

    def next_after(self, after: datetime, tz: tzinfo | None = None) -> datetime:
        """The first fire time strictly after ``after``, as an aware datetime in ``tz``.

        ``tz`` defaults to ``after``'s zone if it is aware, else the machine's local zone.
        Instants are compared in UTC, so the repeated hour of an autumn night is walked twice:
        a wildcard expression (minute or hour field starting with ``*``) fires in both passes,
        a fixed-time one in the first only (:attr:`wildcard`). Raises CronError if the
        expression never fires (e.g. ``0 0 30 2 *``).
        """
        zone = tz or after.tzinfo or local_zone()
        start = after.astimezone(zone) if after.tzinfo else after.replace(tzinfo=zone)
        found = self._first_instant(start.replace(tzinfo=None, microsecond=0, fold=0)
                                    + timedelta(seconds=1), start, zone)
        back = _fall_back(start, zone)  # walls already passed come again after it
        if back is not None:
            again = self._first_instant(back.astimezone(zone).replace(tzinfo=None, fold=0),
                                        start, zone)
            found = min(found, again, key=lambda t: t.astimezone(UTC))
        return found

    def _first_instant(self, wall: datetime, start: datetime, zone: tzinfo) -> datetime:
        """The earliest fire instant after ``start`` among the first matching wall time at or
        after the naive ``wall`` that has one (both passes of a repeated wall time)."""
        utc_start = start.astimezone(UTC)
        while True:
            wall = self._next_wall(wall)
            instants = []
            for fold in (0, 1):
                aware = wall.replace(tzinfo=zone, fold=fold)
                if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
                    continue  # a wall time that does not exist (a daylight-saving gap)
                if fold and aware.utcoffset() == wall.replace(tzinfo=zone, fold=0).utcoffset():
                    continue  # not a repeated wall time
                if fold and not self.wildcard:
                    continue  # a fixed-time job fires in the first pass only
                if aware.astimezone(UTC) > utc_start:
                    instants.append(aware)
            if instants:
                return min(instants, key=lambda t: t.astimezone(UTC))
            wall += timedelta(seconds=1)

    def _next_wall(self, t: datetime) -> datetime:
        """The first matching wall-clock time at or after the naive ``t``."""
        limit = t.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif not self.day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise CronError(f"{self.text!r} never fires (checked {_SEARCH_YEARS} years ahead)")

    def fires_between(self, since: datetime, until: datetime) -> bool:
        """Whether a fire time falls in (since, until]."""
        return self.next_after(since, until.tzinfo) <= until

    def on_calendar(self, zone: tzinfo | None = None) -> list[str]:
        """systemd ``OnCalendar=`` values firing at exactly the same times (several when both
        day fields are restricted, since systemd requires both where cron accepts either).

        systemd walks the repeated hour of an autumn night once. An expression that fires
        every hour of every day at minutes that ``zone``'s UTC offsets do not move (``*/10``,
        ``*/30`` or ``0`` in whole-hour zones) is written in UTC instead, which fires at the
        same instants and in both passes, as :meth:`next_after` does.
        """
        time = ":".join(_systemd_list(v, f) for v, f in (
            (self.hours, HOUR), (self.minutes, MINUTE), (self.seconds, SECOND)))
        month = _systemd_list(self.months, MONTH)
        if zone is not None and self._same_in_utc(zone):
            return [f"*-*-* {time} UTC"]
        if not self.day_or:
            days = _systemd_list(self.days, DOM)
            return [f"{_systemd_weekdays(self.weekdays)}*-{month}-{days} {time}"]
        return [f"*-{month}-{_systemd_list(self.days, DOM)} {time}",
                f"{_systemd_weekdays(self.weekdays)}*-{month}-* {time}"]

    def _same_in_utc(self, zone: tzinfo) -> bool:
        """Whether the expression fires at the same instants read in UTC as in ``zone``."""
        every = (self.hours == frozenset(range(24)) and self.days == frozenset(range(1, 32))
                 and self.months == frozenset(range(1, 13))
                 and self.weekdays == frozenset(range(7)))
        if not every:
            return False
        year = datetime.now(UTC).year
        shifts = {int(o.total_seconds()) % 3600 for y in (year, year + 1) for m in range(1, 13)
                  if (o := datetime(y, m, 1, tzinfo=zone).utcoffset()) is not None}
        marks = {m * 60 + s for m in self.minutes for s in self.seconds}
        return all({(v + shift) % 3600 for v in marks} == marks for shift in shifts)


_MAX_SHIFT = timedelta(hours=3)  # the largest daylight-saving shift a zone has had is 2 h


def _fall_back(start: datetime, zone: tzinfo) -> datetime | None:
    """The instant, within a few hours after ``start``, at which ``zone``'s clocks go back
    (so wall times already passed come again), or None."""
    lo, hi = start.astimezone(UTC), (start + _MAX_SHIFT).astimezone(UTC)
    before = lo.astimezone(zone).utcoffset()
    after = hi.astimezone(zone).utcoffset()
    if before is None or after is None or after >= before:
        return None
    while hi - lo > timedelta(seconds=1):  # the first instant with the later offset
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def _first_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return datetime(year, month, 1)


def _systemd_list(values: frozenset[int], f: _Field) -> str:
    """``*``, ``a/step`` (to the end of the range), or a list of ``a..b`` ranges and values."""
    full = set(range(f.low, (6 if f is DOW else f.high) + 1))
    if set(values) == full:
        return "*"
    ordered = sorted(values)
    if len(ordered) > 2:
        step = ordered[1] - ordered[0]
        expected = list(range(ordered[0], f.high + 1, step))
        if step > 1 and ordered == expected:
            return f"{ordered[0]:02d}/{step}" if f in (HOUR, MINUTE, SECOND) else \
                f"{ordered[0]}/{step}"
    width = 2 if f in (HOUR, MINUTE, SECOND) else 1
    parts: list[str] = []
    run: list[int] = []
    for v in [*ordered, -10]:
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            a, b = run[0], run[-1]
            parts.append(f"{a:0{width}d}" if a == b else f"{a:0{width}d}..{b:0{width}d}")
        run = [v]
    return ",".join(parts)


def _systemd_weekdays(values: frozenset[int]) -> str:
    if set(values) == set(range(7)):
        return ""
    runs: list[list[int]] = []
    for d in sorted(values):
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(SYSTEMD_DAYS[r[0]] if len(r) == 1 else
                    f"{SYSTEMD_DAYS[r[0]]}..{SYSTEMD_DAYS[r[-1]]}" for r in runs) + " "


def parse_cron(text: str) -> CronExpr:
    """Parse a cron expression (5 fields, 6 with leading seconds, or an ``@`` macro)."""
    if not isinstance(text, str):
        raise CronError(f"a schedule must be text such as \"*/10 * * * *\", not {text!r}")
    spec = MACROS.get(text.strip().lower(), text.strip())
    if spec.startswith("@"):
        raise CronError(f"unknown macro {text!r} (known: {', '.join(MACROS)})")
    fields = re.split(r"\s+", spec)
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"{text!r} has {len(fields)} fields; expected 5 (minute hour "
                        "day-of-month month day-of-week) or 6 (with seconds first)")
    sec, minute, hour, dom, month, dow = fields
    expr = CronExpr(
        text=text.strip(), seconds=_field(sec, SECOND), minutes=_field(minute, MINUTE),
        hours=_field(hour, HOUR), days=_field(dom, DOM), months=_field(month, MONTH),
        weekdays=_field(dow, DOW), day_or=not dom.startswith("*") and not dow.startswith("*"),
        wildcard=minute.startswith("*") or hour.startswith("*") or sec.startswith("*"))
    expr.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # raises if it never fires
    return expr


def local_zone() -> tzinfo:
    """The machine's time zone, as cron uses it: ``$TZ``, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        if os.path.exists("/etc/localtime"):
            with open("/etc/localtime", "rb") as f:
                return ZoneInfo.from_file(f, key="localtime")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return datetime.now().astimezone().tzinfo or UTC
