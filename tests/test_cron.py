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


BERLIN = ZoneInfo("Europe/Berlin")  # 2026-10-25 03:00 CEST -> 02:00 CET: 02:00-03:00 twice


def _walk(expr: str, start: datetime, until: datetime, zone: ZoneInfo) -> list[datetime]:
    out, c, t = [], parse_cron(expr), start
    while (t := c.next_after(t, zone)) <= until:
        out.append(t)
    return out


def test_the_repeated_autumn_hour_fires_wildcard_jobs_in_both_passes() -> None:
    start = datetime(2026, 10, 25, 1, 40, tzinfo=BERLIN)
    until = datetime(2026, 10, 25, 3, 10, tzinfo=BERLIN)  # CET
    got = _walk("*/30 * * * *", start, until, BERLIN)
    assert [t.strftime("%H:%M %Z") for t in got] == [
        "02:00 CEST", "02:30 CEST", "02:00 CET", "02:30 CET", "03:00 CET"]
    utc = [t.astimezone(UTC) for t in got]  # every 30 minutes of real time, none missed
    assert all(b - a == timedelta(minutes=30) for a, b in zip(utc, utc[1:], strict=False))
    # restricted hour, wildcard minute (Vixie cron's rule): both passes too
    assert len(_walk("*/30 2 * * *", start, until, BERLIN)) == 4
    # a fixed-time job runs once, in the first pass
    assert [t.strftime("%H:%M %Z") for t in _walk("30 2 * * *", start, until, BERLIN)] == \
        ["02:30 CEST"]


def test_a_start_inside_the_second_pass_is_read_as_that_instant() -> None:
    c = parse_cron("*/30 * * * *")
    second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET
    assert c.next_after(second_pass, BERLIN).astimezone(UTC) == \
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    first_pass = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST: 02:00 CET is next
    assert c.next_after(first_pass, BERLIN).astimezone(UTC) == \
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    # what the scheduler asks: a run at 02:30 CEST, now 02:10 CET: a fire time has come
    assert c.fires_between(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN),
                           datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN))


def test_a_half_hour_fall_back_is_walked_too() -> None:
    howe = ZoneInfo("Australia/Lord_Howe")  # 2026-04-05 02:00 +11 -> 01:30 +10:30
    got = _walk("*/30 * * * *", datetime(2026, 4, 5, 1, 0, tzinfo=howe),
                datetime(2026, 4, 5, 3, 0, tzinfo=howe), howe)
    utc = [t.astimezone(UTC) for t in got]
    assert len(utc) == 5 and all(b - a == timedelta(minutes=30)
                                 for a, b in zip(utc, utc[1:], strict=False))


def test_on_calendar_in_utc_where_that_fires_at_the_same_instants() -> None:
    assert parse_cron("*/30 * * * *").on_calendar(BERLIN) == ["*-*-* *:00,30:00 UTC"]
    assert parse_cron("*/10 * * * *").on_calendar(ZoneInfo("Asia/Kolkata")) == \
        ["*-*-* *:00/10:00 UTC"]
    # minutes a +5:45 offset moves, restricted hours or days: local time
    assert parse_cron("*/20 * * * *").on_calendar(ZoneInfo("Asia/Kathmandu")) == \
        ["*-*-* *:00/20:00"]
    assert parse_cron("30 2 * * *").on_calendar(BERLIN) == ["*-*-* 02:30:00"]
    assert parse_cron("*/30 * * * mon").on_calendar(BERLIN) == ["Mon *-*-* *:00,30:00"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("expr", ["*/30 * * * *", "0 * * * *", "30 2 * * *", "*/30 2 * * *"])
@pytest.mark.parametrize("night", [(2026, 10, 25), (2026, 3, 29)], ids=["autumn", "spring"])
def test_systemd_walks_the_daylight_saving_nights_as_we_do(
        expr: str, night: tuple[int, int, int]) -> None:
    """Where systemd can fire at the same instants, it does (checked by systemd itself); a
    wildcard minute in restricted hours fires once in the repeated hour under systemd."""
    base = datetime(*night, 1, 40, tzinfo=BERLIN) - timedelta(days=1)
    until = datetime(*night, 5, 0, tzinfo=BERLIN)
    ours = [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            for t in _walk(expr, base, until, BERLIN)]
    theirs: list[str] = []
    for spec in parse_cron(expr).on_calendar(BERLIN):
        out = subprocess.run(
            ["systemd-analyze", "calendar", "--iterations=60",
             f"--base-time={base.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC", spec],
            capture_output=True, text=True, env={"TZ": "Europe/Berlin", "SYSTEMD_COLORS": "0"},
            check=True).stdout
        theirs += [ln.split(": ", 1)[1].split(" ", 1)[1].removesuffix(" UTC")
                   for ln in out.splitlines() if ln.strip().startswith("(in UTC)")]
    theirs = sorted(t for t in theirs if t <= until.astimezone(UTC).strftime("%F %T"))
    if expr == "*/30 2 * * *" and night[1] == 10:  # systemd: the repeated hour once
        assert len(ours) == len(theirs) + 2 and set(theirs) < set(ours)
    else:
        assert theirs == ours
