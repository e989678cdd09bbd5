"""Benchmark: ``hubctl ingest openaq`` in this process and with ``--engine local[2]``, in one run.

The OpenAQ long CSV of ``bench_ingest.generate`` (seeded; 2 M lines by default) is cut into
``--files`` files of whole station-hours (Spark ingest splits by file: one task per file). Each
round ingests them into a fresh lake once per engine, alternating, ``--repeat`` rounds; the
medians are reported with their ratio to the local path, CPU seconds beside wall seconds (the
hubctl process and its children: the driver JVM and its Python workers) and the load average
beside every figure. Both engines' counts must be equal. Spark's figures include starting its
driver, which a long-lived session would pay once.

Skips with the reason where Java or pyspark is missing.

    make bench     # or: .venv/bin/python bench/bench_spark_ingest.py [--rows 2000000 --files 2]
    .venv/bin/python bench/bench_spark_ingest.py --quick      # 200,000 lines, one round
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import generate  # noqa: E402
from bench.bench_spark import _hubctl  # noqa: E402
from hubctl.spark import java_missing  # noqa: E402

OUT = ROOT / "bench-out" / "spark-ingest"
COUNTS = ("read", "written", "updated", "duplicate", "rejected", "rows_added")


def split(data: Path, files: int, stations: int) -> list[Path]:
    """``data`` cut into ``files`` CSV files with its header, at whole station-hours (the
    generator writes 2 lines per station and hour)."""
    lines = data.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    block = 2 * stations
    hours = len(body) // block
    out = []
    for i in range(files):
        part = body[(hours * i // files) * block:(hours * (i + 1) // files) * block]
        path = data.with_name(f"part{i}.csv")
        path.write_bytes(header + b"".join(part))
        out.append(path)
    return out


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200,000 lines, one round")
    args = ap.parse_args()
    why = java_missing()
    if why is not None:
        print(f"bench_spark_ingest: skipped: {why}", file=sys.stderr)
        return
    if args.quick:
        args.rows, args.repeat = 200_000, 1
    stations = 500
    folder = OUT / f"{args.rows}x{args.files}"
    if not (folder / "done").exists():
        data, _ = generate(folder, args.rows, stations)
        split(data, args.files, stations)
        data.unlink()
        (folder / "done").touch()
    parts = [str(folder / f"part{i}.csv") for i in range(args.files)]
    st = str(folder / "stations.csv")
    engines = {"this process": [], "local[2]": ["--engine", "local[2]"]}
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in engines}
    counts: dict[str, dict] = {}
    for _ in range(args.repeat):
        for label, extra in engines.items():
            lake = folder / "lake"
            shutil.rmtree(lake, ignore_errors=True)
            wall, cpu, run = _hubctl(["--lake", str(lake), "ingest", "openaq", *parts,
                                      "--stations", st, *extra], [])
            load = os.getloadavg()[0]
            times[label].append((wall, cpu, load))
            counts[label] = {k: run[k] for k in COUNTS}
            print(f"  ingest openaq {label}: {wall:.1f}s ({cpu:.1f} CPU s), load average "
                  f"{load:.1f}", file=sys.stderr)
    same = counts["this process"] == counts["local[2]"]
    base = statistics.median(t[0] for t in times["this process"])
    base_cpu = statistics.median(t[1] for t in times["this process"])
    read = counts["this process"]["read"]
    print(f"| `hubctl ingest openaq`, {read:,} lines in {args.files} files, median of "
          f"{args.repeat} | wall s | CPU s | wall / local | CPU / local | load average |\n"
          "|---|---|---|---|---|---|")
    summary: dict = {"lines": read, "files": args.files, "same_counts": same, "engines": {}}
    for label, runs in times.items():
        w = statistics.median(t[0] for t in runs)
        c = statistics.median(t[1] for t in runs)
        loads = ", ".join(f"{t[2]:.1f}" for t in runs)
        print(f"| {label} | {w:.1f} | {c:.1f} | {w / base:.2f} | {c / base_cpu:.2f} | "
              f"{loads} |")
        summary["engines"][label] = {"seconds": [round(t[0], 2) for t in runs],
                                     "cpu_seconds": [round(t[1], 2) for t in runs],
                                     "load_average_1min": [round(t[2], 1) for t in runs]}
    print(json.dumps(summary, indent=2))
    if not same:
        raise SystemExit(f"the counts differ: {counts}")


if __name__ == "__main__":
    main()
