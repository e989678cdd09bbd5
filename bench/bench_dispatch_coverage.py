"""Benchmark: ``dispatch_coverage`` on a generated road graph of 202,500 nodes, 6 time bands.

Generates (seeded) an OpenStreetMap XML file of a perturbed 450 x 450 street grid (100 m
blocks, about 45 x 45 km): every 10th street primary, every 5th secondary, the rest
residential, a fifth of the residential streets one-way (alternating direction, some tagged
``oneway=-1``), speed limits on the arterials (some in mph). Then 100,000 calls in hotspots with
a daily profile and 40 fire stations, as NGSI-LD entities. Each repeat ingests the road file
with ``hubctl ingest osm`` (child process) and runs ``hubctl run dispatch_coverage`` (child
process: once with ``whatif=none``, once adding 5 stations with candidates every 1,000 m); it
reports medians, peak RSS and the optimality gap.

    make bench        # or: .venv/bin/python bench/bench_dispatch_coverage.py [--quick]
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

OUT = Path(__file__).resolve().parents[1] / "bench-out"
LON0, LAT0 = 127.0, 36.0  # south-west corner of the generated city
M_PER_DEG_LAT = 111_195.0


def generate_osm(path: Path, side: int, rng: np.random.Generator) -> tuple[float, float]:
    """A perturbed ``side`` x ``side`` street grid as OSM XML; returns (width_deg, height_deg)."""
    kx = M_PER_DEG_LAT * np.cos(np.radians(LAT0))
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")  # row i, column j
    x = jj * 100.0 + rng.uniform(-20, 20, ii.shape)
    y = ii * 100.0 + rng.uniform(-20, 20, ii.shape)
    lon = np.round(LON0 + x / kx, 7)
    lat = np.round(LAT0 + y / M_PER_DEG_LAT, 7)
    ids = 1 + ii * side + jj
    with open(path, "w", encoding="utf-8") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\" "
                "generator=\"hubctl bench\">\n")
        lines = [f'  <node id="{i}" lat="{a}" lon="{o}"/>\n'
                 for i, a, o in zip(ids.ravel().tolist(), lat.ravel().tolist(),
                                    lon.ravel().tolist(), strict=True)]
        f.writelines(lines)
        way = 1
        for axis in (0, 1):
            for k in range(side):
                refs = ids[k, :] if axis == 0 else ids[:, k]
                f.write(f'  <way id="{way}">\n')
                f.writelines(f'    <nd ref="{r}"/>\n' for r in refs.tolist())
                f.writelines(f'    <tag k="{t}" v="{v}"/>\n' for t, v in _tags(k, axis, rng))
                f.write("  </way>\n")
                way += 1
        f.write("</osm>\n")
    return float(side * 100 / kx), float(side * 100 / M_PER_DEG_LAT)


def _tags(k: int, axis: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    name = f"{'Row' if axis == 0 else 'Column'} {k}"
    if k % 10 == 0:
        return [("highway", "primary"), ("name", name), ("maxspeed", "60")]
    if k % 5 == 0:
        return [("highway", "secondary"), ("name", name),
                ("maxspeed", "30 mph" if k % 20 == 5 else "50")]
    tags = [("highway", "residential"), ("name", name)]
    if rng.random() < 0.2:
        tags.append(("oneway", "yes" if k % 2 else "-1"))
    return tags


def generate_entities(path: Path, width: float, height: float, calls: int, stations: int,
                      rng: np.random.Generator) -> None:
    """Calls (Alert) in hotspots with a daily profile, and fire stations, as NGSI-LD JSONL."""
    centres = rng.uniform(0.1, 0.9, (25, 2))
    which = rng.integers(0, len(centres), calls)
    spread = rng.uniform(0.01, 0.05, len(centres))[which]
    u = np.clip(centres[which, 0] + rng.normal(0, 1, calls) * spread, 0, 1)
    v = np.clip(centres[which, 1] + rng.normal(0, 1, calls) * spread, 0, 1)
    profile = np.array([2, 1.5, 1, 1, 1, 1.5, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 4, 4,
                        3, 2.5])
    hour = rng.choice(24, calls, p=profile / profile.sum())
    day = rng.integers(1, 29, calls)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(calls):
            e = {"id": f"urn:ngsi-ld:Alert:bench-{i}", "type": "Alert", "category": "security",
                 "subCategory": "buildingFire", "dateIssued": f"2026-02-{day[i]:02d}T{hour[i]:02d}:"
                                                      f"{i % 60:02d}:00Z"}
            if i % 50:  # one call in fifty has no location
                e["location"] = {"type": "Point", "coordinates": [
                    round(LON0 + u[i] * width, 6), round(LAT0 + v[i] * height, 6)]}
            f.write(json.dumps(e) + "\n")
        su, sv = rng.uniform(0.05, 0.95, stations), rng.uniform(0.05, 0.95, stations)
        for j in range(stations):
            f.write(json.dumps({
                "id": f"urn:ngsi-ld:PointOfInterest:fire-{j:03d}", "type": "PointOfInterest",
                "name": f"Fire station {j}", "category": ["fire-station"],
                "location": {"type": "Point", "coordinates": [
                    round(LON0 + su[j] * width, 6), round(LAT0 + sv[j] * height, 6)]}}) + "\n")


def _child(args: list[str]) -> tuple[float, dict, float]:
    """Run hubctl in a child process: (wall seconds, JSON output, peak RSS MB so far)."""
    hubctl = str(Path(sys.executable).parent / "hubctl")
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, *args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hubctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, json.loads(proc.stdout), peak


def main() -> None:
    """Generate, ingest, run; print per-run lines on stderr and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--side", type=int, default=450, help="grid side (nodes = side^2)")
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--stations", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--k", type=int, default=5, help="stations the what-if adds")
    ap.add_argument("--time-limit", type=float, default=30.0, help="what-if time limit (s)")
    ap.add_argument("--quick", action="store_true", help="a 100 x 100 grid, 10,000 calls, once")
    args = ap.parse_args()
    if args.quick:
        args.side, args.calls, args.repeat = 100, 10_000, 1
    folder = OUT / "dispatch"
    folder.mkdir(parents=True, exist_ok=True)
    osm, entities = folder / f"grid-{args.side}.osm", folder / f"calls-{args.calls}.jsonl"
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    width, height = generate_osm(osm, args.side, rng)
    generate_entities(entities, width, height, args.calls, args.stations, rng)
    print(f"generated {osm.name} ({osm.stat().st_size / 1e6:.0f} MB) and {entities.name} in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    base = folder / "lake-calls"
    shutil.rmtree(base, ignore_errors=True)
    _child(["--lake", str(base), "ingest", "ngsi-ld", str(entities)])  # setup, not timed
    runs = []
    for _ in range(args.repeat):
        lake = folder / "lake"
        shutil.rmtree(lake, ignore_errors=True)
        shutil.copytree(base, lake)
        ingest_s, run, ingest_rss = _child(["--lake", str(lake), "ingest", "osm", str(osm)])
        plain_s, _, _ = _child(["--lake", str(lake), "run", "dispatch_coverage",
                                "--param", "whatif=none"])
        run_s, out, run_rss = _child(["--lake", str(lake), "run", "dispatch_coverage",
                                      "--param", f"k={args.k}",
                                      "--param", f"time_limit={args.time_limit}"])
        s = out["summary"]
        runs.append({"ingest_s": ingest_s, "segments": run["written"], "run_s": run_s,
                     "plain_s": plain_s, "rss": max(ingest_rss, run_rss), "summary": s})
        print(f"  ingest osm {ingest_s:.1f}s ({run['written']:,} segments); run without "
              f"what-if {plain_s:.1f}s; run {run_s:.1f}s (graph {s['seconds']['graph']}s, "
              f"6 bands {s['seconds']['coverage']}s, cover matrix "
              f"{s['whatif']['matrix_seconds']}s, solver {s['whatif']['solver_seconds']}s "
              f"{s['whatif']['method']}, gap {s['whatif']['gap']})", file=sys.stderr)
    last = runs[-1]["summary"]
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "graph": last["graph"], "calls": last["calls"], "bands": len(last["bands"]),
        "ingest_osm_seconds_median": round(statistics.median(r["ingest_s"] for r in runs), 2),
        "segments": runs[-1]["segments"],
        "run_without_whatif_seconds_median": round(statistics.median(r["plain_s"]
                                                                     for r in runs), 2),
        "run_seconds_median": round(statistics.median(r["run_s"] for r in runs), 2),
        "graph_seconds_median": statistics.median(r["summary"]["seconds"]["graph"]
                                                  for r in runs),
        "coverage_6_bands_seconds_median": statistics.median(
            r["summary"]["seconds"]["coverage"] for r in runs),
        "peak_rss_mb_max": round(max(r["rss"] for r in runs)),
        "coverage": last["coverage"],
        "cover_matrix_seconds_median": statistics.median(
            r["summary"]["whatif"]["matrix_seconds"] for r in runs),
        "solver_seconds_median": statistics.median(
            r["summary"]["whatif"]["solver_seconds"] for r in runs),
        "whatif": {k: last["whatif"][k] for k in ("k", "candidates", "demands", "before",
                                                   "after", "gap", "method")},
    }, indent=2))


if __name__ == "__main__":
    main()
