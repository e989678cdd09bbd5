"""Benchmark: ``hubctl export`` of a 5-million-row OpenAQ table beside a plain DuckDB COPY.

Builds a lake whose ``AirQualityObserved`` table holds ``--rows`` rows (500 stations x hours,
NO2 and PM2.5, seeded), then, alternating, ``--repeat`` times each:

- A: ``hubctl export bench AirQualityObserved --format parquet`` and ``--format csv`` (data,
  datapackage.json, DCAT, README, index.html, SHA256SUMS) in a child process;
- B: a plain DuckDB ``COPY (SELECT ...) TO ... (FORMAT parquet, COMPRESSION zstd)`` and
  ``(FORMAT csv)`` of the same rows in the same order (the Delta files' storage order, which
  is the order hubctl publishes rows in) from the same Delta files, in a child process.

Reports median rows/s (wall) and rows per CPU-second, the ratio A/B, the child's peak RSS
(getrusage) and the load average before each run.

    make bench          # or: .venv/bin/python bench/bench_export.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

OUT = Path(__file__).resolve().parents[1] / "bench-out"
STATIONS = 500


def build_lake(lake: Path, rows: int) -> int:
    """An AirQualityObserved table of ``rows`` rows, appended in 1 M-row commits."""
    from hubctl.lake import Lake
    from hubctl.registry import get_type

    shutil.rmtree(lake, ignore_errors=True)
    et = get_type("AirQualityObserved")
    schema = et.arrow_schema()
    store = Lake(lake)
    rng = np.random.default_rng(42)
    lon = 127 + rng.random(STATIONS) * 2
    lat = 35 + rng.random(STATIONS) * 3
    start = np.datetime64("2019-01-01T00:00", "us")
    done = 0
    while done < rows:
        n = min(1_000_000, rows - done)
        idx = np.arange(done, done + n)
        station = idx % STATIONS
        when = start + (idx // STATIONS).astype("timedelta64[h]")
        cols = {f.name: pa.nulls(n, f.type) for f in schema}
        cols.update({
            "id": pa.array([f"urn:ngsi-ld:AirQualityObserved:ST{s:04d}" for s in station]),
            "observed_at": pa.array(when, pa.timestamp("us", tz="UTC")),
            "dateObserved": pa.array(when, pa.timestamp("us", tz="UTC")),
            "no2": pa.array(np.round(rng.gamma(2.0, 10.0, n), 1)),
            "pm25": pa.array(np.round(rng.gamma(2.0, 5.0, n), 1)),
            "lon": pa.array(lon[station]), "lat": pa.array(lat[station]),
            "_source": pa.array(["bench"] * n), "_run_id": pa.array(["bench"] * n),
            "_ingested_at": pa.array(np.full(n, start), pa.timestamp("us", tz="UTC")),
            "date": pa.array(when.astype("datetime64[D]"), pa.date32()),
        })
        store.append(et.name, pa.table([cols[f.name] for f in schema], schema=schema),
                     partition_by=["date"])
        done += n
    return done


def _child(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of this one child process
    (wait4 gives its own rusage, not the maximum over every child so far)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{args[:4]} failed: {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def hubctl_export(lake: Path, out: Path, fmt: str) -> tuple[float, float, float]:
    """A: hubctl export of one format (plus all the metadata)."""
    shutil.rmtree(out, ignore_errors=True)
    return _child([str(Path(sys.executable).parent / "hubctl"), "--lake", str(lake), "export",
                   "bench", "AirQualityObserved", "--to", str(out), "--format", fmt,
                   "--licence", "CC-BY-4.0", "--publisher", "Bench", "--json"])


_COPY = """
import sys, duckdb
from hubctl.lake import Lake
files = Lake(sys.argv[1]).files("AirQualityObserved")
con = duckdb.connect(config={"autoinstall_known_extensions": False})
con.execute("SET memory_limit = '512MB'")
listing = "[" + ", ".join("'" + f + "'" for f in files) + "]"
opts = "FORMAT parquet, COMPRESSION zstd" if sys.argv[3] == "parquet" else "FORMAT csv, HEADER"
con.execute(f"COPY (SELECT * EXCLUDE (_source, _run_id, _ingested_at, _extra, _time_index, date) "
            f"FROM read_parquet({listing}, hive_partitioning=true, union_by_name=true)) "
            f"TO '{sys.argv[2]}' ({opts})").fetchall()
"""


def duckdb_copy(lake: Path, out: Path, fmt: str) -> tuple[float, float, float]:
    """B: a plain DuckDB COPY of the same rows, same order, same format."""
    out.mkdir(parents=True, exist_ok=True)
    return _child([sys.executable, "-c", _COPY, str(lake), str(out / f"copy.{fmt}"), fmt])


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse-lake", action="store_true",
                    help="keep bench-out/export-lake from an earlier run of the same --rows")
    ns = ap.parse_args()
    lake = OUT / "export-lake"
    t0 = time.perf_counter()
    rows = ns.rows if ns.reuse_lake and lake.is_dir() else build_lake(lake, ns.rows)
    built = time.perf_counter() - t0
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(ns.repeat):
        for fmt in ("parquet", "csv"):
            for label, fn in (("hubctl", hubctl_export), ("duckdb", duckdb_copy)):
                load = os.getloadavg()[0]
                wall, cpu, peak = fn(lake, OUT / f"export-{label}", fmt)
                slot = results.setdefault(f"{label}.{fmt}", {"seconds": [], "cpu_s": [],
                                                            "peak_rss_mb": [], "load": []})
                slot["seconds"].append(wall)
                slot["cpu_s"].append(cpu)
                slot["peak_rss_mb"].append(peak)
                slot["load"].append(load)
    summary: dict[str, object] = {"rows": rows, "build_lake_s": round(built, 1),
                                  "loadavg": os.getloadavg()}
    for key, slot in sorted(results.items()):
        med = statistics.median(slot["seconds"])
        cpu = statistics.median(slot["cpu_s"])
        summary[key] = {"median_s": round(med, 2), "rows_per_s": round(rows / med),
                        "median_cpu_s": round(cpu, 2), "rows_per_cpu_s": round(rows / cpu),
                        "runs_s": [round(s, 2) for s in slot["seconds"]],
                        "load_before": [round(x, 1) for x in slot["load"]],
                        "peak_rss_mb": round(max(slot["peak_rss_mb"]))}
    for fmt in ("parquet", "csv"):
        for what in ("seconds", "cpu_s"):
            a = statistics.median(results[f"hubctl.{fmt}"][what])
            b = statistics.median(results[f"duckdb.{fmt}"][what])
            summary[f"ratio.{fmt}" + (".cpu" if what == "cpu_s" else "")] = round(a / b, 2)
    print(json.dumps(summary, indent=2))
    shutil.rmtree(OUT / "export-hubctl", ignore_errors=True)
    shutil.rmtree(OUT / "export-duckdb", ignore_errors=True)


if __name__ == "__main__":
    main()
