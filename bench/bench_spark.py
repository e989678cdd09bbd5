"""Benchmark: pipelines with ``--engine duckdb``, ``--engine local[2]`` and ``--engine
spark://...`` (a standalone master with two one-core workers on loopback), in one run.

The energy benchmark's meter readings (``bench_energy.generate``, seeded; 100 meters x 365 days
of quarter-hours by default, ``--meters 1000`` for its full 35 M) are ingested once; then each
round runs ``hubctl run energy`` once per engine, alternating, ``--repeat`` rounds, and the
medians are reported with their ratio to DuckDB. Every figure has its CPU seconds (the hubctl
process and its driver JVM; for the cluster also the master's and workers' JVMs with their
executors) and the load average beside it. Spark's figures include starting its driver (and on
the cluster its executors), which a long-lived session would pay once.

Skips with the reason where Java or pyspark is missing.

    make bench          # or: .venv/bin/python bench/bench_spark.py [--meters 100 --days 365]
    .venv/bin/python bench/bench_spark.py --quick      # 20 meters x 30 days, one round
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_energy import generate  # noqa: E402
from hubctl.spark import JAVA_OPTIONS_ENV, JVM_OPTIONS, java_missing  # noqa: E402

OUT = ROOT / "bench-out" / "spark"


def _jvm_cpu(pids: list[int]) -> float:
    """CPU seconds of processes and their reaped children (the workers' executors)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def _hubctl(args: list[str], cluster_pids: list[int]) -> tuple[float, float, dict]:
    """``hubctl ARGS --json`` as a child: wall seconds, CPU seconds, its JSON."""
    hubctl = str(Path(sys.executable).parent / "hubctl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    jvm = _jvm_cpu(cluster_pids)
    t0 = time.perf_counter()
    proc = subprocess.run([hubctl, *args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hubctl {' '.join(args)} failed: {proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu + _jvm_cpu(cluster_pids) - jvm, json.loads(proc.stdout)


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20 meters x 30 days, one round")
    ap.add_argument("--no-cluster", action="store_true", help="only duckdb and local[2]")
    args = ap.parse_args()
    why = java_missing()
    if why is not None:
        print(f"bench_spark: skipped: {why}", file=sys.stderr)
        return
    if args.quick:
        args.meters, args.days, args.repeat = 20, 30, 1
    # the fast-start JVM options of the tests, as the figures in docs/benchmarks.md were taken
    # (on 3.5 M readings Spark's default options were no faster and took about 40 % more CPU)
    os.environ.setdefault(JAVA_OPTIONS_ENV, JVM_OPTIONS)
    folder = OUT / f"{args.meters}x{args.days}"
    data, info = folder / "ami.csv", folder / "meters.csv"
    if not (folder / "done").exists():
        generate(folder, args.meters, args.days)
        (folder / "done").touch()
    lake = folder / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    wall, cpu, run = _hubctl(["--lake", str(lake), "ingest", "meter-readings", str(data),
                              "--meters", str(info), "--interval", "900"], [])
    readings = run["written"]
    print(f"ingest: {readings:,} readings in {wall:.1f}s ({cpu:.1f} CPU s), load average "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    with ExitStack() as stack:
        engines = {"duckdb": ("duckdb", []), "local[2]": ("local[2]", [])}
        if not args.no_cluster:
            from tests.spark import cluster

            master, pids = stack.enter_context(cluster(workers=2, with_pids=True))
            engines["cluster (2 workers x 1 core)"] = (master, pids)
        times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in engines}
        results: dict[str, dict] = {}
        for _ in range(args.repeat):
            for label, (engine, pids) in engines.items():
                wall, cpu, out = _hubctl(["--lake", str(lake), "run", "energy", "--engine",
                                          engine, "--param", "timezone=Asia/Seoul"], pids)
                load = os.getloadavg()[0]
                times[label].append((wall, cpu, load))
                results[label] = out["summary"]["meters"]
                print(f"  energy --engine {label}: {wall:.1f}s ({cpu:.1f} CPU s), load "
                      f"average {load:.1f}", file=sys.stderr)
    same = all(r["readings"] == results["duckdb"]["readings"] for r in results.values())
    base = statistics.median(t[0] for t in times["duckdb"])
    base_cpu = statistics.median(t[1] for t in times["duckdb"])
    print(f"| `hubctl run energy`, {readings:,} readings, median of {args.repeat} | wall s | "
          "CPU s | wall / DuckDB | CPU / DuckDB | load average |\n|---|---|---|---|---|---|")
    summary = {"readings": readings, "meters": args.meters, "days": args.days,
               "same_readings_count": same, "engines": {}}
    for label, runs in times.items():
        w = statistics.median(t[0] for t in runs)
        c = statistics.median(t[1] for t in runs)
        loads = ", ".join(f"{t[2]:.1f}" for t in runs)
        print(f"| --engine {label} | {w:.1f} | {c:.1f} | {w / base:.2f} | {c / base_cpu:.2f} | "
              f"{loads} |")
        summary["engines"][label] = {"seconds": [round(t[0], 2) for t in runs],
                                     "cpu_seconds": [round(t[1], 2) for t in runs],
                                     "load_average_1min": [round(t[2], 1) for t in runs]}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
