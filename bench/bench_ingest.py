"""Benchmark: OpenAQ-format ingest, end to end, against the per-entity jsonschema path.

Generates a 5-million-row OpenAQ long CSV (500 stations x 5,000 hours x 2 pollutants), runs
``hubctl ingest openaq`` on it in a fresh lake as a child process (peak RSS from getrusage),
``--repeat`` times, and reports medians. The per-entity path builds each NGSI-LD entity as a
dict and validates it with jsonschema on a slice, as FIWARE-style per-entity stacks do.

    make bench                       # or: .venv/bin/python bench/bench_ingest.py --rows 5000000
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


def generate(folder: Path, rows: int, stations: int = 500) -> tuple[Path, Path]:
    """The OpenAQ long CSV and its stations CSV (seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    hours = rows // (stations * 2)
    n = hours * stations * 2
    stamps = np.datetime64("2019-01-01T00:00") + np.arange(hours).astype("timedelta64[h]")
    hour_text = pa.array([str(t).replace("T", " ") + ":00+00:00" for t in stamps])
    names = pa.array([f"ST{i:04d}" for i in range(stations)])
    idx = np.arange(n)
    table = pa.table({
        "city": pa.repeat(pa.scalar("Bench"), n), "country": pa.repeat(pa.scalar("XX"), n),
        "date.utc": hour_text.take(pa.array(idx // (stations * 2))),
        "location": names.take(pa.array((idx // 2) % stations)),
        "parameter": pa.array(np.where(idx % 2 == 0, "no2", "pm25")),
        "value": pa.array(np.round(rng.gamma(2.0, 10.0, n), 1)).cast(pa.string()),
        "unit": pa.repeat(pa.scalar("µg/m³"), n),
    })
    data = folder / "openaq_long.csv"
    pacsv.write_csv(table, data, pacsv.WriteOptions(quoting_style="none"))
    lat = 35 + rng.random(stations) * 3
    lon = 127 + rng.random(stations) * 2
    st = folder / "stations.csv"
    pacsv.write_csv(pa.table({"location": names, "coordinates.latitude": lat,
                              "coordinates.longitude": lon}), st,
                    pacsv.WriteOptions(quoting_style="none"))
    return data, st


def end_to_end(data: Path, st: Path, lake: Path) -> dict[str, float]:
    """One ingest in a child process: wall seconds and the child's peak RSS."""
    shutil.rmtree(lake, ignore_errors=True)
    hubctl = str(Path(sys.executable).parent / "hubctl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, "--lake", str(lake), "ingest", "openaq", str(data),
                           "--stations", str(st), "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed: {proc.stderr}")
    run = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": wall, "read": run["read"], "written": run["written"],
            "peak_rss_mb": max(peak, before) / 1024}


def per_entity(data: Path, st: Path, rows: int) -> float:
    """Rows/s of the per-entity path: one NGSI-LD dict per row, validated with jsonschema."""
    from hubctl.gate import validate_entity
    from hubctl.ngsild import entity_id
    from hubctl.registry import get_type
    from hubctl.units import conversion_factor, unit_code

    et = get_type("AirQualityObserved")
    coords = {r["location"]: (r["coordinates.longitude"], r["coordinates.latitude"])
              for r in pacsv.read_csv(st).to_pylist()}
    table = pacsv.read_csv(data, convert_options=pacsv.ConvertOptions(
        column_types={"value": pa.string()})).slice(0, rows).to_pylist()
    t0 = time.perf_counter()
    for r in table:
        factor = conversion_factor(r["parameter"], unit_code(r["unit"]) or "", "GQ")
        lon, lat = coords[r["location"]]
        entity = {
            "id": entity_id("AirQualityObserved", r["location"]), "type": et.name,
            "dateObserved": {"type": "Property", "value": str(r["date.utc"]).replace(" ", "T")},
            "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                          "coordinates": [lon, lat]}},
            r["parameter"]: {"type": "Property", "value": float(r["value"]) * (factor or 1),
                             "unitCode": "GQ"},
        }
        validate_entity(entity, et)
    return rows / (time.perf_counter() - t0)


def main() -> None:
    """Run the benchmark and print a JSON summary (medians of --repeat runs)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slice", type=int, default=20_000, help="rows for the per-entity path")
    args = ap.parse_args()
    folder = OUT / "openaq"
    data, st = folder / "openaq_long.csv", folder / "stations.csv"
    stamp = folder / f"rows-{args.rows}"
    if not (data.exists() and stamp.exists()):
        t0 = time.perf_counter()
        data, st = generate(folder, args.rows)
        stamp.touch()
        print(f"generated {data} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    runs = [end_to_end(data, st, OUT / "lake") for _ in range(args.repeat)]
    for r in runs:
        print(f"  run: {r['seconds']:.2f}s, {r['read'] / r['seconds']:,.0f} rows/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    seconds = statistics.median(r["seconds"] for r in runs)
    read = runs[0]["read"]
    entity_rate = statistics.median(per_entity(data, st, args.slice) for _ in range(3))
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "rows": read, "records_written": runs[0]["written"],
        "end_to_end_seconds_median": round(seconds, 2),
        "end_to_end_rows_per_s": round(read / seconds),
        "peak_rss_mb_max": round(max(r["peak_rss_mb"] for r in runs)),
        "per_entity_rows_per_s": round(entity_rate),
        "ratio": round(read / seconds / entity_rate, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
