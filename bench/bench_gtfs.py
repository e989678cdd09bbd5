"""Benchmark: ingest of a city-scale GTFS feed (3 million stop times by default).

Generates a seeded feed with ``bench/gtfs_city.py`` under ``bench-out/``, runs
``hubctl ingest gtfs`` on it in a fresh lake as a child process (wall time includes process
start; peak RSS and CPU seconds from getrusage), ``--repeat`` times, and reports medians:
stop_times rows per second of the whole ingest (every file of the feed, gate, lake, ledger),
the CPU seconds of a run (user + system: its cost, whatever else the machine runs), one forced
re-ingest of the same feed into the full lake (every record a duplicate) and, in-process, the
rate of the adapter alone (read and convert, no lake) to show where the time goes.

    .venv/bin/python bench/bench_gtfs.py                # 3,000,000 stop times, 3 runs
    .venv/bin/python bench/bench_gtfs.py --quick        # 300,000 stop times, 1 run
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gtfs_city import generate_feed  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "bench-out"


def feed(stop_times: int) -> Path:
    """The generated feed for this size (generated once, then reused)."""
    folder = OUT / f"gtfs-city-{stop_times}"
    stamp = folder / ".complete"
    if not stamp.exists():
        t0 = time.perf_counter()
        generate_feed(folder, stop_times)
        stamp.touch()
        print(f"generated {folder} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return folder


def end_to_end(folder: Path, lake: Path, again: bool = False) -> dict[str, float]:
    """One ingest in a child process: wall seconds, counts, peak RSS of the children so far.
    ``again``: ingest the same feed once more into the same lake (``--force``: all duplicates)."""
    if not again:
        shutil.rmtree(lake, ignore_errors=True)
    hubctl = str(Path(sys.executable).parent / "hubctl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, "--lake", str(lake), "ingest", "gtfs", str(folder / "*.txt"),
                           "--feed-id", "city", "--source-name", "bench-city", "--json",
                           *(["--force"] if again else [])],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed: {proc.stderr}")
    run = json.loads(proc.stdout)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
    return {"seconds": wall, "cpu_seconds": cpu, "read": run["read"], "written": run["written"],
            "duplicate": run["duplicate"], "rejected": run["rejected"],
            "peak_rss_mb": usage.ru_maxrss / 1024}


def adapter_only(folder: Path) -> float:
    """Seconds for the adapter to read and convert the whole feed (no gate, no lake)."""
    from hubctl.adapter import ReadContext
    from hubctl.adapters.gtfs import ADAPTER

    t0 = time.perf_counter()
    for _ in ADAPTER.read(sorted(folder.glob("*.txt")), {"feed_id": "city"}, ReadContext()):
        pass
    return time.perf_counter() - t0


def count_stop_times(folder: Path) -> int:
    """Data rows of stop_times.txt (the generator writes one row per line)."""
    with open(folder / "stop_times.txt", "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1


def main() -> None:
    """Run the benchmark; print the runs, a markdown table and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stop-times", type=int, default=3_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="300,000 stop times, one run")
    args = ap.parse_args()
    if args.quick:
        args.stop_times, args.repeat = 300_000, 1
    folder = feed(args.stop_times)
    rows = count_stop_times(folder)
    load_before = os.getloadavg()[0]
    runs = [end_to_end(folder, OUT / "lake-gtfs") for _ in range(args.repeat)]
    for r in runs:
        print(f"  run: {r['seconds']:.2f}s ({r['cpu_seconds']:.1f} CPU s), "
              f"{rows / r['seconds']:,.0f} stop_times rows/s, peak RSS {r['peak_rss_mb']:.0f} MB",
              file=sys.stderr)
    again = end_to_end(folder, OUT / "lake-gtfs", again=True)
    print(f"  again (--force): {again['seconds']:.2f}s, {again['duplicate']:,} duplicate",
          file=sys.stderr)
    seconds = statistics.median(r["seconds"] for r in runs)
    convert = statistics.median(adapter_only(folder) for _ in range(args.repeat))
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "stop_times_rows": rows, "records_read": runs[0]["read"],
        "records_rejected": runs[0]["rejected"],
        "end_to_end_seconds": [round(r["seconds"], 2) for r in runs],
        "end_to_end_seconds_median": round(seconds, 2),
        "stop_times_rows_per_s": round(rows / seconds),
        "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in runs), 1),
        "again_force_seconds": round(again["seconds"], 2),
        "again_force_duplicate": again["duplicate"],
        "adapter_only_seconds_median": round(convert, 2),
        "adapter_only_stop_times_rows_per_s": round(rows / convert),
        "peak_rss_mb_max": round(max(r["peak_rss_mb"] for r in runs)),
        "load_average_1min_before_after": [round(load_before, 1),
                                           round(os.getloadavg()[0], 1)],
    }
    print("| figure | value |\n|---|---|")
    for key, value in summary.items():
        print(f"| {key} | {value:,} |" if isinstance(value, int) else f"| {key} | {value} |")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
