"""Benchmark: ``patrol_points`` with 200,000 calls and 2,000 candidate sites.

Generates (seeded) a 112-style call file in Korean headers (접수번호, 접수일시, 사건종별, 위도,
경도, 출동일시, 도착일시; 1 % without a position) for a 30 x 30 km city: calls in 200 hotspots
of different sizes and a daily profile, plus a uniform background; and 150 existing patrol points
(half near hotspots, half anywhere). Each repeat ingests both files into a fresh lake with
``hubctl ingest calls`` and ``hubctl ingest places`` (child processes), then runs
``hubctl run patrol_points`` (child process: 250 m grid, 4 bands, Gi*, candidates = the 150
points + the strongest hotspot cells up to 2,000, k = 150, 500 m radius, MILP time limit
40 s). It reports medians of the ingest and the pipeline, peak RSS, the model's size, the
solver's method and gap, and coverage before and after.

    make bench        # or: .venv/bin/python bench/bench_patrol_points.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

OUT = Path(__file__).resolve().parents[1] / "bench-out"
LON0, LAT0 = 128.45, 35.75  # south-west corner of the generated city (Daegu)
M_PER_DEG_LAT = 111_195.0
SIDE_M = 30_000.0
HOTSPOTS = 200
TIME_LIMIT = 30.0  # the pipeline default: a safety net; work limits decide the method
TYPES = ("폭력", "절도", "교통사고", "주취자", "소음", "분실물", "가정폭력", "기타")


def _lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kx = M_PER_DEG_LAT * np.cos(np.radians(LAT0))
    return np.round(LON0 + x / kx, 6), np.round(LAT0 + y / M_PER_DEG_LAT, 6)


def generate(folder: Path, calls: int, points: int) -> tuple[Path, Path]:
    """The call CSV and the patrol-point CSV (seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    centres = rng.uniform(2_000, SIDE_M - 2_000, (HOTSPOTS, 2))
    spread = rng.uniform(300, 1_200, HOTSPOTS)
    pull = rng.pareto(1.5, HOTSPOTS) + 1
    n_hot = int(calls * 0.8)
    which = rng.choice(HOTSPOTS, n_hot, p=pull / pull.sum())
    xy = np.concatenate([centres[which] + rng.normal(0, 1, (n_hot, 2)) * spread[which, None],
                         rng.uniform(0, SIDE_M, (calls - n_hot, 2))])
    xy = np.clip(xy, 0, SIDE_M)
    lon, lat = _lonlat(xy[:, 0], xy[:, 1])
    hour_p = np.array([3, 2, 2, 1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 6, 6, 7, 7, 7, 6, 5, 4],
                      dtype=float)
    hours = rng.choice(24, calls, p=hour_p / hour_p.sum())
    start = np.datetime64("2024-01-01T00:00:00") + (
        rng.integers(0, 365, calls) * 86400 + hours * 3600 + rng.integers(0, 3600, calls)
    ).astype("timedelta64[s]")
    dispatched = start + rng.integers(30, 300, calls).astype("timedelta64[s]")
    arrived = dispatched + rng.integers(60, 900, calls).astype("timedelta64[s]")
    no_place = rng.random(calls) < 0.01

    def text(ts: np.ndarray) -> pa.Array:
        return pa.array(np.datetime_as_string(ts, unit="s")).cast(pa.string())

    lat_text = pa.array(np.where(no_place, "", lat.astype(str)))
    lon_text = pa.array(np.where(no_place, "", lon.astype(str)))
    table = pa.table({
        "접수번호": pa.array([f"2024{i:08d}" for i in range(calls)]),
        "접수일시": pc_replace(text(start)), "사건종별": pa.array(rng.choice(TYPES, calls)),
        "위도": lat_text, "경도": lon_text,
        "출동일시": pc_replace(text(dispatched)), "도착일시": pc_replace(text(arrived)),
    })
    calls_path = folder / "calls_112.csv"
    pacsv.write_csv(table, calls_path)
    near = centres[rng.choice(HOTSPOTS, points // 2)] + rng.normal(0, 300, (points // 2, 2))
    anywhere = rng.uniform(0, SIDE_M, (points - points // 2, 2))
    pxy = np.concatenate([near, anywhere])
    plon, plat = _lonlat(pxy[:, 0], pxy[:, 1])
    points_path = folder / "patrol_points.csv"
    pacsv.write_csv(pa.table({"id": [f"P{i:03d}" for i in range(points)],
                              "name": [f"거점 {i}" for i in range(points)],
                              "lat": plat, "lon": plon}), points_path)
    return calls_path, points_path


def pc_replace(ts: pa.Array) -> pa.Array:
    """ISO text with a space instead of T, as 112 exports write it."""
    import pyarrow.compute as pc
    return pc.replace_substring(ts, "T", " ")


def _child(args: list[str]) -> tuple[float, dict, float]:
    """Run hubctl in a child process: (seconds, JSON output, peak RSS MB of children so far)."""
    hubctl = str(Path(sys.executable).parent / "hubctl")
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, *args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hubctl {' '.join(args)} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, json.loads(proc.stdout), peak


def once(calls: Path, points: Path, lake: Path, k: int, candidates: int) -> dict:
    """One fresh lake: ingest both files, run the pipeline."""
    shutil.rmtree(lake, ignore_errors=True)
    ingest_s, run, _ = _child(["--lake", str(lake), "ingest", "calls", str(calls)])
    _child(["--lake", str(lake), "ingest", "places", str(points), "--kind", "patrol-point"])
    params = [f"k={k}", "radius_m=500", f"candidates={candidates}", "timezone=Asia/Seoul",
              f"time_limit={TIME_LIMIT}"]
    args = ["--lake", str(lake), "run", "patrol_points"]
    for p in params:
        args += ["--param", p]
    pipe_s, out, peak = _child(args)
    return {"ingest_s": ingest_s, "read": run["read"], "pipeline_s": pipe_s, "peak_mb": peak,
            "summary": out["summary"]}


def main() -> None:
    """Run the benchmark; print each run, then a markdown table and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--points", type=int, default=150)
    ap.add_argument("--candidates", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 calls, 300 candidates, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.calls, args.candidates, args.repeat = 20_000, 300, 1
    folder = OUT / "patrol_points"
    t0 = time.perf_counter()
    calls, points = generate(folder, args.calls, args.points)
    print(f"generated {calls} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    runs = []
    for _ in range(args.repeat):
        r = once(calls, points, OUT / "lake-patrol", args.points, args.candidates)
        s = r["summary"]
        print(f"  run: ingest {r['ingest_s']:.2f}s, pipeline {r['pipeline_s']:.2f}s "
              f"(solver {s['solver']['method']} {s['solver']['seconds']}s, gap "
              f"{s['solver']['gap']}), peak RSS {r['peak_mb']:.0f} MB", file=sys.stderr)
        runs.append(r)
    s = runs[-1]["summary"]
    pipe = statistics.median(r["pipeline_s"] for r in runs)
    ingest = statistics.median(r["ingest_s"] for r in runs)
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "calls": s["calls"], "cells_with_calls": s["grid"]["cells_with_calls"],
        "candidates": s["candidates"], "k": s["k"],
        "ingest_seconds_median": round(ingest, 2),
        "ingest_rows_per_s": round(runs[0]["read"] / ingest),
        "pipeline_seconds_median": round(pipe, 2),
        "pipeline_seconds_all": [round(r["pipeline_s"], 2) for r in runs],
        "solver": s["solver"], "coverage": s["coverage"], "distance_m": s["distance_m"],
        "changes": s["changes"],
        "peak_rss_mb_max": round(max(r["peak_mb"] for r in runs)),
    }
    print("| figure | value |\n|---|---|")
    print(f"| calls (located / without position) | {s['calls']['total']:,} "
          f"({s['calls']['located']:,} / {s['calls']['without_location']:,}) |")
    print(f"| candidate sites (existing + hotspot cells) | "
          f"{s['candidates']['existing'] + s['candidates']['hotspot_cells']:,} |")
    print(f"| demand cells with calls | {s['grid']['cells_with_calls']:,} |")
    print(f"| ingest calls, median | {ingest:.2f} s ({summary['ingest_rows_per_s']:,} rows/s) |")
    print(f"| `hubctl run patrol_points`, median of {len(runs)} | **{pipe:.2f} s** |")
    print(f"| solver | {s['solver']['method']}, gap {s['solver']['gap']}, "
          f"{s['solver']['seconds']} s |")
    print(f"| coverage before / after (500 m) | {s['coverage']['before']:.3f} / "
          f"{s['coverage']['after']:.3f} |")
    print(f"| peak RSS (children) | {summary['peak_rss_mb_max']} MB |")
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
