"""Helpers for CLI and lake tests: a CliRunner bound to a temporary lake, small fixtures."""

from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from hubctl.cli import cli

STATIONS = [("S1", 51.2, 4.4), ("S2", 48.8, 2.39), ("서울 중구", 37.56, 126.97)]


def hub(lake: Path, *args: str, input: str | None = None) -> Result:
    """Run ``hubctl --lake LAKE ARGS`` in-process; exceptions are not swallowed silently."""
    return CliRunner().invoke(cli, ["--lake", str(lake), *args], input=input,
                              catch_exceptions=True)


def hub_json(lake: Path, *args: str) -> Any:
    """Run a command with --json and parse its stdout."""
    result = hub(lake, *args, "--json") if "--json" not in args else hub(lake, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_meter_days(folder: Path) -> list[Path]:
    """Two days of meter readings, ``ami0.csv`` and ``ami1.csv``: meters M1 and M2 every hour
    for three hours a day (12 rows, M1's 01:00 reading 1.1) and one bad line a day (a time that
    is not one, a negative reading)."""
    days = []
    for i, day in enumerate(("2025-03-01", "2025-03-02")):
        lines = [f"M{m},{day}T{h:02d}:00:00Z,{m + h / 10}" for m in (1, 2) for h in range(3)]
        lines.append(f"M3,{day}T00:00:00Z,-1" if i else "M3,yesterday,1")  # rejects
        days.append(folder / f"ami{i}.csv")
        days[-1].write_text("meter_id,timestamp,kwh\n" + "\n".join(lines) + "\n",
                            encoding="utf-8")
    return days


def write_openaq(folder: Path, rows: Sequence[Sequence[Any]], stations: Sequence[Sequence[Any]]
                 = STATIONS, name: str = "long.csv") -> tuple[Path, Path]:
    """An OpenAQ long CSV and its stations CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / name
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["city", "country", "date.utc", "location", "parameter", "value", "unit"])
        w.writerows(rows)
    st = folder / "stations.csv"
    with open(st, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["location", "coordinates.latitude", "coordinates.longitude"])
        w.writerows(stations)
    return data, st


def row(station: str, hour: int, parameter: str, value: Any, unit: str = "µg/m³") -> list[Any]:
    """One OpenAQ long row on 2024-05-01."""
    return ["X", "XX", f"2024-05-01 {hour:02d}:00:00+00:00", station, parameter, value, unit]


def write_zip(path: Path, files: dict[str, str]) -> Path:
    """A zip archive at ``path`` holding ``files`` (member name -> text), as a GTFS feed is
    handed out; returns ``path``."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


@contextlib.contextmanager
def held_by_another_process(lake: Path, key: str) -> Iterator[None]:
    """Hold the lake lock ``key`` (e.g. ``source:eu``) from another process, as a long ingest
    would, for as long as the body runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from pathlib import Path; from hubctl.locks import hold\n"
         f"with hold(Path({str(lake)!r}), {key!r}):\n"
         "    print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()

