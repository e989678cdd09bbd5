"""The user's and the machine's problems are messages with what to do, never "internal error":
disk full, a read-only lake, JSON nested 100,000 levels deep, a zip with a bad CRC, a damaged
_delta_log, and no Rust panic report on the terminal."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hubctl.cli.panics import PanicFilter
from tests.helpers import hub, hub_json
from tests.test_gtfs import FEED

HUBCTL = str(Path(sys.executable).parent / "hubctl")


def _openaq(folder: Path, rows: int) -> tuple[Path, Path]:
    """An OpenAQ CSV of random values (it does not compress away) and its stations."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    data = folder / "long.csv"
    with open(data, "w", encoding="utf-8") as f:
        f.write("city,country,date.utc,location,parameter,value,unit\n")
        for i in range(rows):
            day, hour = divmod(i // 100, 24)
            f.write(f"X,XX,2024-{1 + day // 28:02d}-{1 + day % 28:02d} {hour:02d}:00:00+00:00,"
                    f"S{i % 50},{'no2' if i % 2 else 'pm25'},{rng.random() * 100:.6f},µg/m³\n")
    st = folder / "st.csv"
    st.write_text("location,coordinates.latitude,coordinates.longitude\n"
                  + "".join(f"S{i},{35 + i / 100},{127 + i / 100}\n" for i in range(50)),
                  encoding="utf-8")
    return data, st


def _hubctl(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HUBCTL_RAW_STDERR"}
    env["RUST_BACKTRACE"] = "1"  # as a developer's shell may have it: still no report shown
    return subprocess.run([HUBCTL, *args], capture_output=True, text=True, env=env,
                          timeout=300, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (root only); skips where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the file-size-limit "
                    "test covers disk full")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _no_internal_error(stderr: str) -> None:
    assert "internal error" not in stderr and "Traceback" not in stderr
    assert "panicked" not in stderr and "stack backtrace" not in stderr


@pytest.mark.subprocess
def test_disk_full_on_a_small_tmpfs(tmp_path: Path) -> None:
    data, st = _openaq(tmp_path / "in", 200_000)
    with _tmpfs(tmp_path / "small", "640k") as fs:
        done = _hubctl("--lake", str(fs / "lake"), "ingest", "openaq", str(data),
                       "--stations", str(st))
    assert done.returncode == 1, done.stderr
    assert "the disk is full" in done.stderr and "No space left on device" in done.stderr
    assert str(fs / "lake") in done.stderr and "free space" in done.stderr
    _no_internal_error(done.stderr)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))


@pytest.mark.subprocess
def test_disk_full_through_a_file_size_limit(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted, RLIMIT_FSIZE makes every write past 16 KiB fail."""
    data, st = _openaq(tmp_path / "in", 100_000)
    done = _hubctl("--lake", str(tmp_path / "lake"), "ingest", "openaq", str(data),
                   "--stations", str(st), preexec_fn=_limit_file_size)
    assert done.returncode == 1, done.stderr
    assert "the disk is full" in done.stderr and "File too large" in done.stderr
    _no_internal_error(done.stderr)


@pytest.mark.subprocess
def test_a_read_only_lake(tmp_path: Path) -> None:
    data, st = _openaq(tmp_path / "in", 200)
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead
        with _tmpfs(tmp_path / "ro", "4m") as fs:
            assert _hubctl("--lake", str(fs / "lake"), "ingest", "openaq", str(data),
                           "--stations", str(st)).returncode == 0
            subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
            done = _hubctl("--lake", str(fs / "lake"), "ingest", "openaq", str(data),
                           "--stations", str(st), "--force")
            expected = "Read-only file system"
    else:
        lake = tmp_path / "lake"
        assert _hubctl("--lake", str(lake), "ingest", "openaq", str(data),
                       "--stations", str(st)).returncode == 0
        for p in [lake, *lake.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        done = _hubctl("--lake", str(lake), "ingest", "openaq", str(data), "--stations",
                       str(st), "--force")
        expected = "Permission denied"
    assert done.returncode == 1, done.stderr
    assert "cannot write" in done.stderr and expected in done.stderr
    assert "the lake must be writable" in done.stderr
    _no_internal_error(done.stderr)


def test_json_nested_100000_levels_is_a_rejected_record(tmp_path: Path) -> None:
    good = {"id": "urn:ngsi-ld:AirQualityObserved:S1", "type": "AirQualityObserved",
            "dateObserved": {"type": "Property", "value": "2024-05-01T00:00:00Z"},
            "no2": {"type": "Property", "value": 5, "unitCode": "GQ"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [128.6, 35.9]}}}
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(good) + "\n" + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "\n"
                    + json.dumps({**good, "id": "urn:ngsi-ld:AirQualityObserved:S2"}) + "\n",
                    encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ngsi-ld", str(path))
    assert run["read"] == 3 and run["written"] == 2 and run["rejected"] == 1
    [reject] = hub_json(lake, "rejects")
    assert reject["record"] == "line 2" and "nested more deeply" in reject["reasons"][0]["message"]
    whole = tmp_path / "deep.json"
    whole.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    result = hub(lake, "ingest", "ngsi-ld", str(whole), "--json")
    assert "internal error" not in result.output and "RecursionError" not in result.output
    assert json.loads(result.stdout)["rejected"] == 1


def _feed_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_a_zip_member_with_a_bad_crc(tmp_path: Path) -> None:
    feed = _feed_zip(tmp_path / "feed.zip", FEED)
    raw = bytearray(feed.read_bytes())
    at = raw.find(FEED["stop_times.txt"].splitlines()[1].encode())
    raw[at] ^= 0x01  # one flipped bit in stop_times.txt's data
    feed.write_bytes(bytes(raw))
    result = hub(tmp_path / "lake", "ingest", "gtfs", str(feed))
    assert result.exit_code == 1
    assert "feed.zip/stop_times.txt: is damaged inside its zip file" in result.output
    assert "Bad CRC-32" in result.output and "unzip -t" in result.output
    assert "internal error" not in result.output


def test_a_zip_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    feed = tmp_path / "bomb.zip"
    with zipfile.ZipFile(feed, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in FEED.items():
            if name != "stop_times.txt":
                z.writestr(name, text)
        with z.open("stop_times.txt", "w") as w:
            w.write(FEED["stop_times.txt"].encode())
            line = b"T1,06:00:00,06:00:00,S1,1\n" * 4096
            for _ in range(200):  # 21 MB that pack into about 60 KB
                w.write(line)
    assert feed.stat().st_size < 200_000
    result = hub(tmp_path / "lake", "ingest", "gtfs", str(feed))
    assert result.exit_code == 1
    assert "stop_times.txt would unpack from" in result.output
    assert "--max-zip-ratio" in result.output and "zip bomb" in result.output
    raised = hub(tmp_path / "lake", "ingest", "gtfs", str(feed), "--max-zip-ratio", "100000",
                 "--max-unzipped-bytes", "1000000")
    assert raised.exit_code == 1 and "more than the limit of 1,000,000" in raised.output
    assert "--max-unzipped-bytes" in raised.output
    assert not (tmp_path / "lake" / "GtfsStopTime").exists()  # nothing was read


def test_a_damaged_delta_log_names_the_table_and_the_way_out(tmp_path: Path) -> None:
    data, st = _openaq(tmp_path / "in", 400)
    more, _ = _openaq(tmp_path / "more", 800)  # the same 400 records and 400 new ones
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))
    before = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")[0]["n"]
    hub_json(lake, "ingest", "openaq", str(more), "--stations", str(st))
    log = sorted((lake / "AirQualityObserved" / "_delta_log").glob("*.json"))
    assert len(log) >= 2
    log[-1].write_text('{"add": {"path": "part-', encoding="utf-8")  # cut off mid-write
    for args in (("tables",), ("sql", "SELECT count(*) FROM AirQualityObserved")):
        result = hub(lake, *args)
        assert result.exit_code == 1, result.output
        assert "table AirQualityObserved" in result.output and str(log[-1]) in result.output
        assert f"mv {log[-1]} {log[-1]}.damaged" in result.output
        assert "internal error" not in result.output
    log[-1].rename(f"{log[-1]}.damaged")  # the way out the message gives
    n = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")[0]["n"]
    assert n == before  # the table as it was before the damaged commit


def test_panic_reports_are_filtered_and_everything_else_passes() -> None:
    flt = PanicFilter()
    text = (b"reading...\n"
            b"thread 'tokio-rt-worker' (26458) panicked at /x/buffered.rs:369:41:\n"
            b"Already shut down\nstack backtrace:\n   0: foo\n             at bar.rs:1\n"
            b"note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose "
            b"backtrace.\n\n"
            b"thread 'tokio-rt-worker' (26458) panicked at /x/buffered.rs:369:41:\n"
            b"Already shut down\n\n"
            b"error: the disk is full: cannot write the lake /l (No space left on device)\n"
            b"  hint: free space\n")
    shown = b"".join(line for line in io.BytesIO(text) if flt.keep(line))
    assert shown == (b"reading...\nerror: the disk is full: cannot write the lake /l (No space "
                     b"left on device)\n  hint: free space\n")
    assert flt.panics == 2
