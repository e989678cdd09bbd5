"""Benchmark: ``hubctl run air_quality`` over a year of hourly data from 500 stations
(4,380,000 station-hours, six pollutants, about 2 % of values missing) and 100,000 population
cells, (``bench/bench_u4ssc_kpis.py`` then runs ``city_kpis`` on this lake and the others).

The lake is written once (seeded) through hubctl's own lake code (``Lake.upsert``, the path
``hubctl ingest`` commits with), month by month; the adapters are benchmarked elsewhere. Each
repeat runs the pipeline in a child process; wall time, the child's own CPU time and peak RSS
(wait4) are reported with the 1-minute load average before each run. Targets (issue 17): air_quality
under 30 s.

    make bench     # or: .venv/bin/python bench/bench_air_quality.py [--stations 500 --cells 100000]
    .venv/bin/python bench/bench_air_quality.py --quick     # 50 stations, 10,000 cells, 1 run
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
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hubctl.lake import Lake
from hubctl.registry import get_type

OUT = Path(__file__).resolve().parents[1] / "bench-out"
LON0, LAT0 = 128.45, 35.75  # south-west corner of the generated city (Daegu)
SIDE_DEG = 0.6  # about 54 x 67 km
TARGET_S = 30.0
# lake unit means and daily swings (µg/m³; CO mg/m³)
BASE = {"pm25": (18, 8), "pm10": (35, 12), "no2": (30, 15), "o3": (55, 30), "so2": (6, 2),
        "co": (0.5, 0.2)}


def _full(type_name: str, columns: dict[str, Any], n: int) -> pa.Table:
    """A table with every column of the type's lake schema (nulls where not given)."""
    schema = get_type(type_name).arrow_schema()
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema).append_column(
        "_records", pa.array(np.ones(n, dtype=np.int64)))


def build(lake_dir: Path, stations: int, cells: int, days: int) -> None:
    """Write AirQualityObserved (hourly, month by month) and PopulationCell."""
    shutil.rmtree(lake_dir, ignore_errors=True)
    lake = Lake(lake_dir)
    rng = np.random.default_rng(17)
    names = [f"urn:ngsi-ld:AirQualityObserved:BENCH{i:04d}" for i in range(stations)]
    lon = LON0 + rng.random(stations) * SIDE_DEG
    lat = LAT0 + rng.random(stations) * SIDE_DEG
    level = rng.gamma(6.0, 1 / 6.0, stations)  # each station's own level
    et = get_type("AirQualityObserved")
    start = np.datetime64("2025-01-01T00:00", "us")
    own: set[str] = set()
    for month_start in range(0, days, 31):
        d = np.arange(month_start * 24, min(days, month_start + 31) * 24)
        hours = np.repeat(d, stations)
        who = np.tile(np.arange(stations), len(d))
        n = len(hours)
        ts = pa.array(start + hours.astype("timedelta64[h]"), pa.timestamp("us", tz="UTC"))
        diurnal = np.sin((hours % 24) / 24 * 2 * np.pi)
        cols: dict[str, Any] = {
            "id": pa.array(np.asarray(names, dtype=object)[who], pa.string()),
            "observed_at": ts, "dateObserved": ts,
            "lon": pa.array(lon[who]), "lat": pa.array(lat[who]),
            "source": pa.array(["bench"] * n), "_source": pa.array(["bench"] * n),
            "_run_id": pa.array(["bench"] * n), "_ingested_at": ts,
            "_time_index": pa.array(["dateObserved"] * n),
            "date": pa.array((start + hours.astype("timedelta64[h]")).astype("datetime64[D]")),
        }
        for p, (mean, swing) in BASE.items():
            v = level[who] * (mean + swing * diurnal) * rng.gamma(5.0, 0.2, n)
            missing = rng.random(n) < 0.02
            cols[p] = pa.array(np.round(np.maximum(v, 0), 3), mask=missing)
        lake.upsert(et, _full("AirQualityObserved", cols, n), own_files=own)
    ids = [f"urn:ngsi-ld:PopulationCell:bench:{i}" for i in range(cells)]
    now = pa.array(np.full(cells, start), pa.timestamp("us", tz="UTC"))
    pop = {
        "id": pa.array(ids), "observed_at": now, "_ingested_at": now,
        "population": pa.array(rng.gamma(2.0, 120.0, cells)),
        "kind": pa.array(["residents"] * cells), "dataset": pa.array(["bench"] * cells),
        "lon": pa.array(LON0 + rng.random(cells) * SIDE_DEG),
        "lat": pa.array(LAT0 + rng.random(cells) * SIDE_DEG),
        "_source": pa.array(["bench"] * cells), "_run_id": pa.array(["bench"] * cells),
    }
    lake.upsert(get_type("PopulationCell"), _full("PopulationCell", pop, cells))


def _rss(args: list[str]) -> dict[str, Any]:
    """Run hubctl in a child process: wall seconds, its own peak RSS (MB, from wait4), the
    1-minute load average before it and its JSON output."""
    hubctl = str(Path(sys.executable).parent / "hubctl")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull, subprocess.Popen(
            [hubctl, *args, "--json"], stdout=subprocess.PIPE, stderr=devnull) as proc:
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hubctl {' '.join(args)} failed (exit {proc.returncode})")
    return {"seconds": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024, "load": load, "out": json.loads(out)}


def main() -> None:
    """Build the lake, run the pipelines, print a markdown table and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stations", type=int, default=500)
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 stations, 10,000 cells, 1 run")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the lake of an earlier run with the same sizes")
    args = ap.parse_args()
    if args.quick:
        args.stations, args.cells, args.repeat = 50, 10_000, 1
    lake = OUT / f"lake-air-quality-{args.stations}x{args.days}-{args.cells}"
    if not (args.reuse and (lake / "PopulationCell").exists()):
        t0 = time.perf_counter()
        build(lake, args.stations, args.cells, args.days)
        print(f"lake written in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    runs = []
    if args.repeat == 0:
        return
    for _ in range(args.repeat):
        r = _rss(["--lake", str(lake), "run", "air_quality", "--param", "timezone=Asia/Seoul"])
        print(f"  air_quality {r['seconds']:.1f}s (CPU {r['cpu_s']:.1f}s), peak RSS "
              f"{r['rss_mb']:.0f} MB, load {r['load']:.1f}", file=sys.stderr)
        runs.append(r)
    s = runs[-1]["out"]["summary"]
    med = statistics.median(r["seconds"] for r in runs)
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "stations": s["indices"]["stations"], "station_hours": s["indices"]["hours"],
        "cells": args.cells,
        "air_quality_seconds_median": round(med, 2),
        "air_quality_seconds_all": [round(r["seconds"], 2) for r in runs],
        "air_quality_cpu_seconds_median": round(statistics.median(r["cpu_s"] for r in runs), 2),
        "air_quality_cpu_seconds_all": [round(r["cpu_s"], 2) for r in runs],
        "peak_rss_mb_max": round(max(r["rss_mb"] for r in runs)),
        "load_1min_before": [round(r["load"], 1) for r in runs],
        "target_s": TARGET_S, "within_target": med < TARGET_S,
        "rows": runs[-1]["out"]["tables"] and {t: v["rows"] for t, v in
                                               runs[-1]["out"]["tables"].items()},
    }
    print("| figure | value |\n|---|---|")
    print(f"| station-hours (stations) | {summary['station_hours']:,} "
          f"({summary['stations']}) |")
    print(f"| population cells | {args.cells:,} |")
    print(f"| `hubctl run air_quality`, median of {len(runs)} | **{med:.1f} s** "
          f"(target < {TARGET_S:.0f} s) |")
    print(f"| CPU time (user + system), median | {summary['air_quality_cpu_seconds_median']} s "
          f"(per run: {summary['air_quality_cpu_seconds_all']}) |")
    print(f"| peak RSS | {summary['peak_rss_mb_max']} MB |")
    print(f"| load average before runs | {summary['load_1min_before']} |")
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
