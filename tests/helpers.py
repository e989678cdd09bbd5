"""Helpers for CLI and lake tests: a CliRunner bound to a temporary lake, small fixtures."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
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
