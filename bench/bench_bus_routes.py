"""Benchmark: ``hubctl run bus_routes`` on a city-scale feed with 100,000 demand cells.

Generates the seeded city feed of ``bench/gtfs_city.py`` (3 million stop times by default),
100,000 population cells over the city (seeded) and a day of hourly boardings at every stop,
ingests them once into ``bench-out/bus_routes/lake``, then runs the pipeline ``--repeat`` times
as a child process (wall time and peak RSS from getrusage) and reports medians.

    .venv/bin/python bench/bench_bus_routes.py                 # the target scale
    .venv/bin/python bench/bench_bus_routes.py --quick         # 300,000 stop times, 10,000 cells
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gtfs_city import generate_feed  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "bench-out" / "bus_routes"
DATE = "2026-05-06"  # a Wednesday of the generated calendar


def _hubctl() -> str:
    return str(Path(sys.executable).parent / "hubctl")


def _child(args: list[str]) -> tuple[float, float, dict]:
    """Run hubctl in a child process: (wall seconds, the child's own peak RSS in MB, JSON with
    the child's CPU seconds added as ``cpu_seconds``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([_hubctl(), *args, "--json"], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"hubctl {' '.join(args[:4])} failed: {err.read()[-2000:]!r}")
        result = json.loads(out.read())
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        return wall, usage.ru_maxrss / 1024, result


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(folder.glob("*.txt")):
            z.write(f, f.name)
    return target


def demand(feed: Path, folder: Path, cells: int, seed: int = 42) -> tuple[Path, Path]:
    """A population CSV of ``cells`` points over the feed's extent (denser near the centre)
    and one day of hourly boardings at every stop (seeded)."""
    rng = np.random.default_rng(seed)
    stops = pacsv.read_csv(feed / "stops.txt",
                           convert_options=pacsv.ConvertOptions(column_types={
                               "stop_id": pa.string()}))
    lon, lat = stops["stop_lon"].to_numpy(), stops["stop_lat"].to_numpy()
    pad_lon, pad_lat = 0.15 * np.ptp(lon), 0.15 * np.ptp(lat)
    x = rng.uniform(lon.min() - pad_lon, lon.max() + pad_lon, cells)
    y = rng.uniform(lat.min() - pad_lat, lat.max() + pad_lat, cells)
    centre = np.hypot((x - lon.mean()) / np.ptp(lon), (y - lat.mean()) / np.ptp(lat))
    people = np.round(rng.gamma(2.0, 60.0, cells) * np.exp(-2.0 * centre))
    population = folder / f"population-{cells}.csv"
    pacsv.write_csv(pa.table({"lat": np.round(y, 6), "lon": np.round(x, 6),
                              "population": people}), population)
    n = stops.num_rows
    hours = np.arange(5, 24)
    stop_col = np.repeat(stops["stop_id"].to_numpy(zero_copy_only=False), len(hours))
    base = rng.gamma(1.5, 8.0, n)
    board = np.round(np.repeat(base, len(hours)) * rng.uniform(0.2, 1.8, n * len(hours)))
    boardings = folder / "boardings.csv"
    pacsv.write_csv(pa.table({"stop_id": stop_col, "date": np.full(n * len(hours), DATE),
                              "hour": np.tile(hours, n), "boardings": board,
                              "alightings": np.round(board * rng.uniform(0.6, 1.4, len(board)))}),
                    boardings)
    return population, boardings


def prepare(stop_times: int, cells: int) -> tuple[Path, dict[str, float]]:
    """Generate and ingest everything once; returns the lake and ingest timings."""
    folder = OUT / f"st{stop_times}-c{cells}"
    lake = folder / "lake"
    stamp = folder / "ready.json"
    if stamp.exists():
        return lake, json.loads(stamp.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    feed = generate_feed(folder / "feed", stop_times=stop_times, seed=42)
    population, boardings = demand(feed, folder, cells)
    zipped = _zip(feed, folder / "city.zip")
    print(f"generated in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    lk = ["--lake", str(lake)]
    gtfs_s, _, run = _child([*lk, "ingest", "gtfs", str(zipped), "--feed-id", "city"])
    pop_s, _, _ = _child([*lk, "ingest", "population", str(population), "--dataset", "bench"])
    board_s, _, _ = _child([*lk, "ingest", "boardings", str(boardings), "--feed-id", "city",
                            "--timezone", "Asia/Seoul"])
    timings = {"gtfs_ingest_s": gtfs_s, "gtfs_records": run["read"],
               "population_ingest_s": pop_s, "boardings_ingest_s": board_s}
    stamp.write_text(json.dumps(timings))
    return lake, timings


def main() -> None:
    """Run the benchmark and print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stop-times", type=int, default=3_000_000)
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="300,000 stop times, 10,000 cells")
    args = ap.parse_args()
    if args.quick:
        args.stop_times, args.cells = 300_000, 10_000
    lake, timings = prepare(args.stop_times, args.cells)
    runs = []
    for _ in range(args.repeat):
        wall, peak, out = _child(["--lake", str(lake), "run", "bus_routes",
                                  "--param", f"date={DATE}"])
        runs.append((wall, peak, out))
        print(f"  run: {wall:.1f}s wall, pipeline {out['seconds']:.1f}s, CPU "
              f"{out['cpu_seconds']:.1f}s, peak RSS {peak:.0f} MB", file=sys.stderr)
    summary = runs[-1][2]["summary"]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "stop_times_in_feed": args.stop_times, "demand_cells": args.cells,
        "routes": summary["routes"], "stops": summary["stops"]["served"],
        "trips_per_day": summary["trips_per_day"],
        "wall_seconds_median": round(statistics.median(r[0] for r in runs), 2),
        "pipeline_seconds_median": round(statistics.median(r[2]["seconds"] for r in runs), 2),
        "cpu_seconds_median": round(statistics.median(r[2]["cpu_seconds"] for r in runs), 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "peak_rss_mb_max": round(max(r[1] for r in runs)),
        "reallocation": summary["reallocation"]["status"],
        "waiting_saved_share": summary["reallocation"]["waiting_saved_share"],
        **{k: round(v, 2) for k, v in timings.items()},
    }
    print("| stop times | demand cells | routes | stops | trips/day | bus_routes wall s "
          "(median) | in-pipeline s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.stop_times:,} | {args.cells:,} | {result['routes']} | {result['stops']} | "
          f"{result['trips_per_day']:,.0f} | {result['wall_seconds_median']} | "
          f"{result['pipeline_seconds_median']} | {result['cpu_seconds_median']} | "
          f"{result['peak_rss_mb_max']} |")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
