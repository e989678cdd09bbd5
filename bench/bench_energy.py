"""Benchmark: AMI meter readings from CSV through ``hubctl ingest meter-readings``, then the
``energy`` pipeline on them.

Generates a year of quarter-hour readings for 1,000 meters (35,040,000 rows, seeded, in time
order as a head-end system exports them) plus a meters file with coordinates and 20 sites,
runs the ingest in a fresh lake as a child process (peak RSS from getrusage) ``--repeat``
times, then ``hubctl run energy`` on the last lake ``--repeat`` times, and reports medians.

    make bench          # or: .venv/bin/python bench/bench_energy.py [--meters 1000 --days 365]
    .venv/bin/python bench/bench_energy.py --quick      # 100 meters x 30 days
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

OUT = Path(__file__).resolve().parents[1] / "bench-out" / "energy"
TARGETS = {"readings_per_s": 1_000_000, "pipeline_s": 60, "rss_mb": 2048}


def generate(folder: Path, meters: int, days: int) -> tuple[Path, Path]:
    """The AMI CSV (meter_id,timestamp,kwh; one day at a time, all meters per quarter-hour)
    and the meters CSV (meter_id,lat,lon,site), seeded."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    steps = 96
    names = pa.array([f"MTR{i:05d}" for i in range(meters)])
    scale = rng.gamma(3.0, 0.1, meters)  # each meter's size
    start = np.datetime64("2025-01-01T00:00")
    data = folder / "ami.csv"
    schema = pa.schema([("meter_id", pa.string()), ("timestamp", pa.string()),
                        ("kwh", pa.string())])
    with pacsv.CSVWriter(data, schema,
                         write_options=pacsv.WriteOptions(quoting_style="none")) as out:
        for day in range(days):
            stamps = start + (day * steps + np.arange(steps)) * np.timedelta64(15, "m")
            text = pa.array([str(s) + ":00Z" for s in stamps])
            hour = np.repeat(np.arange(steps) / 4.0, meters)
            shape = 0.4 + 0.6 * np.exp(-((hour - 19.0) / 3.0) ** 2) + 0.3 * np.exp(
                -((hour - 8.0) / 2.0) ** 2)
            weekend = 0.85 if (day + 2) % 7 in (5, 6) else 1.0  # 2025-01-01 is a Wednesday
            kwh = np.round(np.tile(scale, steps) * shape * weekend
                           * rng.gamma(8.0, 1 / 8.0, steps * meters), 3)
            out.write_table(pa.table({
                "meter_id": names.take(pa.array(np.tile(np.arange(meters), steps))),
                "timestamp": text.take(pa.array(np.repeat(np.arange(steps), meters))),
                "kwh": pa.array(kwh).cast(pa.string())}))
    info = folder / "meters.csv"
    pacsv.write_csv(pa.table({
        "meter_id": names, "lat": np.round(35.80 + rng.random(meters) * 0.15, 6),
        "lon": np.round(128.50 + rng.random(meters) * 0.20, 6),
        "site": pa.array([f"district-{i % 20:02d}" for i in range(meters)])}), info,
        pacsv.WriteOptions(quoting_style="none"))
    return data, info


def generate_greenbutton(path: Path, points: int, days: int) -> int:
    """An ESPI Atom feed: ``points`` usage points, each a MeterReading of quarter-hours in daily
    IntervalBlocks (Wh, multiplier 0), seeded. Returns the number of IntervalReadings."""
    rng = np.random.default_rng(7)
    base = "https://utility.example/DataCustodian/espi/1_1/resource"
    start = 1_735_689_600  # 2025-01-01T00:00:00Z
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/'
                'Atom" xmlns:espi="http://naesb.org/espi">\n')
        f.write(f'<entry><link rel="self" href="{base}/ReadingType/1"/><content>'
                "<espi:ReadingType><flowDirection>1</flowDirection><intervalLength>900"
                "</intervalLength><powerOfTenMultiplier>0</powerOfTenMultiplier><uom>72</uom>"
                "</espi:ReadingType></content></entry>\n")
        for p in range(points):
            up = f"{base}/RetailCustomer/{p}/UsagePoint/1"
            f.write(f'<entry><link rel="self" href="{up}"/><content><espi:UsagePoint/>'
                    f'</content></entry>\n<entry><link rel="self" href="{up}/MeterReading/1"/>'
                    f'<link rel="up" href="{up}/MeterReading"/><link rel="related" '
                    f'href="{base}/ReadingType/1"/><content><espi:MeterReading/></content>'
                    "</entry>\n")
            for d in range(days):
                t0 = start + d * 86400
                values = rng.integers(20, 400, 96)
                readings = "".join(
                    f"<espi:IntervalReading><espi:timePeriod><espi:duration>900</espi:duration>"
                    f"<espi:start>{t0 + 900 * i}</espi:start></espi:timePeriod><espi:value>"
                    f"{v}</espi:value></espi:IntervalReading>" for i, v in enumerate(values))
                f.write(f'<entry><link rel="up" href="{up}/MeterReading/1/IntervalBlock"/>'
                        f"<content><espi:IntervalBlock><espi:interval><espi:duration>86400"
                        f"</espi:duration><espi:start>{t0}</espi:start></espi:interval>"
                        f"{readings}</espi:IntervalBlock></content></entry>\n")
        f.write("</feed>\n")
    return points * days * 96


def _child(args: list[str]) -> tuple[float, float, float, dict]:
    """Run ``hubctl ARGS --json`` as a child: wall seconds, CPU seconds (user + system), peak
    RSS (MB, the largest of any child so far), its JSON."""
    hubctl = str(Path(sys.executable).parent / "hubctl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, *args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hubctl {' '.join(args)} failed: {proc.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, max(after.ru_maxrss, before.ru_maxrss) / 1024, json.loads(proc.stdout)


def ingest(data: Path, info: Path, lake: Path) -> dict[str, float]:
    """One ingest in a fresh lake."""
    shutil.rmtree(lake, ignore_errors=True)
    wall, cpu, rss, run = _child(["--lake", str(lake), "ingest", "meter-readings", str(data),
                                  "--meters", str(info), "--interval", "900"])
    return {"seconds": wall, "cpu": cpu, "read": run["read"], "written": run["written"],
            "rss_mb": rss, "load": os.getloadavg()[0]}


def pipeline(lake: Path) -> dict[str, float]:
    """One ``hubctl run energy`` on the lake."""
    wall, cpu, rss, out = _child(["--lake", str(lake), "run", "energy",
                                  "--param", "timezone=Asia/Seoul"])
    return {"seconds": wall, "cpu": cpu, "rss_mb": rss, "load": os.getloadavg()[0],
            "anomalous_days": out["summary"]["meters"]["anomalous_days"]}


def greenbutton(points: int, days: int) -> None:
    """Readings/s and peak RSS of the streaming Green Button reader on a generated feed."""
    folder = OUT / f"greenbutton-{points}x{days}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feed.xml"
    readings = generate_greenbutton(path, points, days)
    shutil.rmtree(folder / "lake", ignore_errors=True)
    wall, cpu, rss, run = _child(["--lake", str(folder / "lake"), "ingest", "greenbutton",
                                  str(path)])
    assert run["written"] == readings, run
    print(f"| Green Button feed, {points} usage points x {days} days of quarter-hours "
          f"({path.stat().st_size / 1e6:,.0f} MB XML) | {readings:,} readings, "
          f"{readings / wall:,.0f} readings/s ({cpu:.1f} CPU s), peak RSS {rss:,.0f} MB |")


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100 meters x 30 days, one run")
    ap.add_argument("--greenbutton", nargs=2, type=int, metavar=("POINTS", "DAYS"),
                    help="instead: stream a generated Green Button feed of POINTS usage points "
                         "x DAYS of quarter-hours through `hubctl ingest greenbutton`")
    args = ap.parse_args()
    if args.greenbutton:
        greenbutton(*args.greenbutton)
        return
    if args.quick:
        args.meters, args.days, args.repeat = 100, 30, 1
    folder = OUT / f"{args.meters}x{args.days}"
    data, info = folder / "ami.csv", folder / "meters.csv"
    if not (data.exists() and info.exists() and (folder / "done").exists()):
        t0 = time.perf_counter()
        generate(folder, args.meters, args.days)
        (folder / "done").touch()
        print(f"generated {data} ({data.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    lake = OUT / "lake"
    runs = []
    for _ in range(args.repeat):
        runs.append(ingest(data, info, lake))
        r = runs[-1]
        print(f"  ingest: {r['seconds']:.1f}s ({r['cpu']:.1f} CPU s), "
              f"{r['read'] / r['seconds']:,.0f} readings/s, peak RSS {r['rss_mb']:.0f} MB, "
              f"load average {r['load']:.1f}", file=sys.stderr)
    pipes = []
    for _ in range(args.repeat):
        pipes.append(pipeline(lake))
        p = pipes[-1]
        print(f"  energy: {p['seconds']:.1f}s ({p['cpu']:.1f} CPU s), peak RSS "
              f"{p['rss_mb']:.0f} MB, load average {p['load']:.1f}", file=sys.stderr)
    seconds = statistics.median(r["seconds"] for r in runs)
    rate = runs[0]["read"] / seconds
    pipe_s = statistics.median(p["seconds"] for p in pipes)
    rss = max(max(r["rss_mb"] for r in runs), max(p["rss_mb"] for p in pipes))
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "meters": args.meters, "days": args.days, "readings": runs[0]["read"],
        "written": runs[0]["written"],
        "ingest_seconds": [round(r["seconds"], 2) for r in runs],
        "ingest_cpu_seconds": [round(r["cpu"], 2) for r in runs],
        "load_average_1min": [round(r["load"], 1) for r in runs + pipes],
        "ingest_readings_per_s_median": round(rate),
        "ingest_peak_rss_mb_max": round(max(r["rss_mb"] for r in runs)),
        "pipeline_seconds": [round(p["seconds"], 2) for p in pipes],
        "pipeline_cpu_seconds": [round(p["cpu"], 2) for p in pipes],
        "pipeline_seconds_median": round(pipe_s, 2),
        "pipeline_peak_rss_mb_max": round(max(p["rss_mb"] for p in pipes)),
    }
    print("| figure | value | target |\n|---|---|---|")
    print(f"| readings ingested ({args.meters} meters x {args.days} days of quarter-hours) | "
          f"{runs[0]['read']:,} | |")
    print(f"| ingest, median of {len(runs)} | {rate:,.0f} readings/s | "
          f"≥ {TARGETS['readings_per_s']:,} readings/s |")
    print(f"| `hubctl run energy`, median of {len(pipes)} | {pipe_s:.1f} s | "
          f"< {TARGETS['pipeline_s']} s |")
    print(f"| peak RSS, worst of all runs | {rss:,.0f} MB | < {TARGETS['rss_mb']:,} MB |")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
