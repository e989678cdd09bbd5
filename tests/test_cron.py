"""The cron parser: fields, names, steps, next fire times, and systemd OnCalendar conversion."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hubctl.cron import CronError, parse_cron

T0 = datetime(2024, 5, 1, 10, 3, 20, tzinfo=UTC)  # a Wednesday


def fires(expr: str, start: datetime = T0, n: int = 4) -> list[str]:
    out, t = [], start
    c = parse_cron(expr)
    for _ in range(n):
        t = c.next_after(t)
        out.append(t.strftime("%a %Y-%m-%d %H:%M:%S"))
    return out


def test_fields_expand_ranges_steps_lists_and_names() -> None:
    c = parse_cron("*/15 9-17/4 1,15 jan-mar,DEC mon-fri")
    assert c.minutes == {0, 15, 30, 45}
    assert c.hours == {9, 13, 17}
    assert c.days == {1, 15}
    assert c.months == {1, 2, 3, 12}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert c.day_or  # both day fields restricted: either matches
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert parse_cron("5/20 * * * *").minutes == {5, 25, 45}
    hourly, plain = parse_cron("@hourly"), parse_cron("0 * * * *")
    assert (hourly.minutes, hourly.hours, hourly.days) == (plain.minutes, plain.hours, plain.days)


@pytest.mark.parametrize("expr, expected", [
    ("*/10 * * * *", ["Wed 2024-05-01 10:10:00", "Wed 2024-05-01 10:20:00",
                      "Wed 2024-05-01 10:30:00", "Wed 2024-05-01 10:40:00"]),
    ("0 9 * * mon-fri", ["Thu 2024-05-02 09:00:00", "Fri 2024-05-03 09:00:00",
                         "Mon 2024-05-06 09:00:00", "Tue 2024-05-07 09:00:00"]),
    # day of month OR day of week when both are restricted (Vixie cron)
    ("0 0 1 * mon", ["Mon 2024-05-06 00:00:00", "Mon 2024-05-13 00:00:00",
                     "Mon 2024-05-20 00:00:00", "Mon 2024-05-27 00:00:00"]),
    ("30 2 31 * *", ["Fri 2024-05-31 02:30:00", "Wed 2024-07-31 02:30:00",
                     "Sat 2024-08-31 02:30:00", "Thu 2024-10-31 02:30:00"]),
    ("0 0 29 feb *", ["Tue 2028-02-29 00:00:00", "Sun 2032-02-29 00:00:00",
                      "Fri 2036-02-29 00:00:00", "Wed 2040-02-29 00:00:00"]),
    ("*/20 * * * * *", ["Wed 2024-05-01 10:03:40", "Wed 2024-05-01 10:04:00",
                        "Wed 2024-05-01 10:04:20", "Wed 2024-05-01 10:04:40"]),
    ("59 23 31 12 *", ["Tue 2024-12-31 23:59:00", "Wed 2025-12-31 23:59:00",
                       "Thu 2026-12-31 23:59:00", "Fri 2027-12-31 23:59:00"]),
])
def test_next_fire_times(expr: str, expected: list[str]) -> None:
    assert fires(expr) == expected


def test_next_fire_is_strictly_after_and_ignores_sub_second() -> None:
    c = parse_cron("*/10 * * * *")
    on_fire = datetime(2024, 5, 1, 10, 10, tzinfo=UTC)
    assert c.next_after(on_fire) == on_fire + timedelta(minutes=10)
    assert c.next_after(on_fire - timedelta(microseconds=1)) == on_fire
    assert c.fires_between(on_fire - timedelta(seconds=1), on_fire)
    assert not c.fires_between(on_fire, on_fire + timedelta(minutes=9, seconds=59))


def test_wall_clock_in_a_zone_skips_the_daylight_saving_gap() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 2024-03-31 02:00 -> 03:00
    c = parse_cron("30 2 * * *")
    nxt = c.next_after(datetime(2024, 3, 30, 12, 0, tzinfo=berlin))
    assert nxt.strftime("%m-%d %H:%M") == "04-01 02:30"  # 03-31 02:30 does not exist there
    seoul = ZoneInfo("Asia/Seoul")
    utc_start = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)  # 09:00 in Seoul
    assert c.next_after(utc_start, seoul) == datetime(2024, 5, 2, 2, 30, tzinfo=seoul)


@pytest.mark.parametrize("expr, message", [
    ("* * * *", "4 fields"),
    ("60 * * * *", "minute: 60 is outside 0-59"),
    ("* * * foo *", "month: 'foo' is not a number"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("5-1 * * * *", "runs backwards"),
    ("1,,2 * * * *", "empty list element"),
    ("0 0 30 2 *", "never fires"),
    ("@often", "unknown macro"),
])
def test_bad_expressions_say_which_field_and_why(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expr)


def test_on_calendar_text() -> None:
    assert parse_cron("*/10 * * * *").on_calendar() == ["*-*-* *:00/10:00"]
    assert parse_cron("0 9 * * mon-fri").on_calendar() == ["Mon..Fri *-*-* 09:00:00"]
    assert parse_cron("0 0 1 * mon").on_calendar() == ["*-*-1 00:00:00", "Mon *-*-* 00:00:00"]
    assert parse_cron("15 6-18/3 * jan,jul sat,sun").on_calendar() == [
        "Sun,Sat *-1,7-* 06,09,12,15,18:15:00"]


CROSS_CHECK = ["*/10 * * * *", "0 9 * * mon-fri", "0 0 1 * mon", "15 6-18/3 * jan,jul sat,sun",
               "30 2 1,15 * *", "0 */6 * * *", "5 4 * * 7", "0 0 29 2 *", "*/20 * * * * *"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("expr", CROSS_CHECK)
def test_on_calendar_fires_when_cron_does_per_systemd_itself(expr: str) -> None:
    """systemd's own calendar parser gives the same next fire times as our cron parser."""
    c = parse_cron(expr)
    base = "2024-05-01 10:03:20 UTC"
    got: set[str] = set()
    for spec in c.on_calendar():
        out = subprocess.run(
            ["systemd-analyze", "calendar", "--iterations=6", f"--base-time={base}", spec],
            capture_output=True, text=True, env={"TZ": "UTC", "SYSTEMD_COLORS": "0"},
            check=True).stdout
        got |= {line.split(": ", 1)[1].strip().split(" ", 1)[1].removesuffix(" UTC")
                for line in out.splitlines()
                if line.strip().startswith(("Next elapse:", "Iter. #"))}
    ours = [t[4:] for t in fires(expr, n=6)]
    assert sorted(got)[:6] == ours
