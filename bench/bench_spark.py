"""Benchmark: every pipeline with ``--engine duckdb``, ``--engine local[2]`` and ``--engine
spark://...`` (a standalone master with two one-core workers on loopback), in one run.

Each pipeline's lake is built once by its own benchmark's builders (seeded) and kept under
``bench-out/`` for later runs:

- ``energy``: ``bench_energy.generate``'s meter readings, ingested with ``ingest meter-readings``;
- ``air_quality``: ``bench_air_quality.build`` (hourly observations and population cells);
- ``bus_routes``: ``bench_bus_routes.prepare`` (the ``gtfs_city`` feed, population, a day of
  boardings; its own ``bench-out/bus_routes/`` lake, shared with that benchmark);
- ``patrol_points``: ``bench_patrol_points.generate``'s 112 calls and patrol points;
- ``dispatch_coverage``: ``bench_dispatch_coverage``'s street grid and calls with fire stations;
- ``city_kpis``: the bus_routes lake (without its derived tables) plus the patrol_points calls,
  so that both of its engine scans (stop times x trips, calls) have data, and population too
  (``bench_u4ssc_kpis`` runs it on each benchmark lake as it is).

Then each round runs every pipeline once per engine (the engines' order rotates from one round
to the next), ``--repeat`` rounds, and the medians are reported with their ratio to DuckDB.
Every figure has its CPU seconds (user + system of the hubctl process and its children: the
driver JVM and its Python workers; for the cluster also the master's and workers' JVMs with
their executors) and the 1-minute load average after it. Spark's figures include starting its
driver (and on the cluster its executors), which a long-lived session would pay once. The
engines must agree: the same derived tables with the same row counts, and the same summary
numbers within 1e-9 relative (wall-clock figures aside); the script exits non-zero otherwise.

``--sizes`` picks the inputs (``SIZES`` below): ``default`` keeps one round of all six
pipelines on the project's 2-core machine to about 30 minutes at load 10-20 (plus about 5 to
build the lakes the first time): the benchmark sizes for patrol_points and dispatch_coverage,
whose engine scans read only calls, smaller inputs for the scan-heavy energy, air_quality and
bus_routes; ``bench`` is every pipeline's own benchmark size (well over an hour there);
``quick`` is tiny (Spark's fixed cost only). ``--repeat 2`` (or a second run with
``--first-round 2``) gives medians.

Skips with the reason where Java or pyspark is missing.

    make bench          # or: .venv/bin/python bench/bench_spark.py [--repeat 2]
    .venv/bin/python bench/bench_spark.py --pipelines energy,city_kpis --sizes bench
    .venv/bin/python bench/bench_spark.py --quick      # --sizes quick --repeat 1
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
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    bench_air_quality,
    bench_bus_routes,
    bench_dispatch_coverage,
    bench_energy,
    bench_patrol_points,
)
from hubctl.pipeline import metrics  # noqa: E402
from hubctl.spark import JAVA_OPTIONS_ENV, JVM_OPTIONS, java_missing  # noqa: E402

OUT = ROOT / "bench-out" / "spark"
CLUSTER = "cluster (2 workers x 1 core)"
PIPELINES = ("energy", "air_quality", "bus_routes", "patrol_points", "dispatch_coverage",
             "city_kpis")
# Inputs per pipeline. BENCH is each pipeline's own benchmark (bench/bench_<name>.py
# defaults; city_kpis runs on the bus_routes lake with the patrol_points calls added).
BENCH: dict[str, dict[str, int]] = {
    "energy": {"meters": 1_000, "days": 365},
    "air_quality": {"stations": 500, "days": 365, "cells": 100_000},
    "bus_routes": {"stop_times": 3_000_000, "cells": 100_000},
    "patrol_points": {"calls": 200_000, "points": 150, "candidates": 2_000},
    "dispatch_coverage": {"side": 450, "calls": 100_000, "stations": 40},
}
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "bench": BENCH,
    # the benchmark's sizes where Spark's runs fit about 30 minutes on 2 cores, smaller where not
    "default": BENCH | {"energy": {"meters": 100, "days": 91},
                        "air_quality": {"stations": 100, "days": 365, "cells": 20_000},
                        "bus_routes": {"stop_times": 300_000, "cells": 10_000}},
    "quick": {
        "energy": {"meters": 20, "days": 30},
        "air_quality": {"stations": 20, "days": 30, "cells": 2_000},
        "bus_routes": {"stop_times": 30_000, "cells": 2_000},
        "patrol_points": {"calls": 5_000, "points": 30, "candidates": 200},
        "dispatch_coverage": {"side": 60, "calls": 5_000, "stations": 10},
    },
}


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


def _built(folder: Path, build: Callable[[Path], str]) -> str:
    """``build(folder)``'s size text, once: later runs reuse the folder (its ``done`` stamp
    holds the text); a folder without the stamp (an interrupted build) is built again."""
    stamp = folder / "done"
    if stamp.exists():
        return stamp.read_text()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    what = build(folder)
    stamp.write_text(what)
    print(f"built {folder.relative_to(ROOT)} ({what}) in {time.perf_counter() - t0:.0f}s",
          file=sys.stderr)
    return what


def _ingest(lake: Path, *args: str) -> dict:
    return _hubctl(["--lake", str(lake), "ingest", *args], [])[2]


def energy(size: dict[str, int]) -> tuple[Path, list[str], str]:
    """The energy benchmark's readings (``size``: meters, days) ingested into a lake."""
    folder = OUT / f"energy-{size['meters']}x{size['days']}"

    def build(folder: Path) -> str:
        data, info = bench_energy.generate(folder, size["meters"], size["days"])
        run = _ingest(folder / "lake", "meter-readings", str(data), "--meters", str(info),
                      "--interval", "900")
        data.unlink()
        return f"{run['written']:,} readings ({size['meters']} meters x {size['days']} days)"

    return folder / "lake", ["timezone=Asia/Seoul"], _built(folder, build)


def air_quality(size: dict[str, int]) -> tuple[Path, list[str], str]:
    """``bench_air_quality.build``'s lake (``size``: stations, days, cells)."""
    folder = OUT / f"air_quality-{size['stations']}x{size['days']}-{size['cells']}"

    def build(folder: Path) -> str:
        bench_air_quality.build(folder / "lake", size["stations"], size["cells"], size["days"])
        return (f"{size['stations'] * size['days'] * 24:,} station-hours ({size['stations']} "
                f"stations x {size['days']} days), {size['cells']:,} cells")

    return folder / "lake", ["timezone=Asia/Seoul"], _built(folder, build)


def bus_routes(size: dict[str, int]) -> tuple[Path, list[str], str]:
    """``bench_bus_routes.prepare``'s lake (``size``: stop_times, cells)."""
    lake, timings = bench_bus_routes.prepare(size["stop_times"], size["cells"])
    what = (f"{size['stop_times']:,} stop times ({timings['gtfs_records']:,} GTFS records), "
            f"{size['cells']:,} cells, a day of boardings")
    return lake, [f"date={bench_bus_routes.DATE}"], what


def _patrol_files(size: dict[str, int]) -> tuple[Path, Path]:
    """``bench_patrol_points.generate``'s call and patrol-point CSV files."""
    folder = OUT / f"patrol_points-{size['calls']}-{size['points']}-files"

    def build(folder: Path) -> str:
        bench_patrol_points.generate(folder, size["calls"], size["points"])
        return f"{size['calls']:,} calls, {size['points']} patrol points"

    _built(folder, build)
    return folder / "calls_112.csv", folder / "patrol_points.csv"


def patrol_points(size: dict[str, int]) -> tuple[Path, list[str], str]:
    """``bench_patrol_points.generate``'s calls and points ingested (``size``: calls, points,
    candidates); the benchmark's parameters but the solver's time limit."""
    folder = OUT / f"patrol_points-{size['calls']}-{size['points']}"
    calls, points = _patrol_files(size)

    def build(folder: Path) -> str:
        _ingest(folder / "lake", "calls", str(calls))
        _ingest(folder / "lake", "places", str(points), "--kind", "patrol-point")
        return f"{size['calls']:,} calls, {size['points']} patrol points"

    what = _built(folder, build) + f", {size['candidates']:,} candidates"
    # the solver's safety net well above its work limits: at load 10-20 the benchmark's 30 s
    # cut the greedy fallback's improvement short in one run, and the plan then depended on
    # the machine's load, not on the engine
    params = [f"k={size['points']}", "radius_m=500", f"candidates={size['candidates']}",
              "timezone=Asia/Seoul", "time_limit=600"]
    return folder / "lake", params, what


def dispatch_coverage(size: dict[str, int]) -> tuple[Path, list[str], str]:
    """``bench_dispatch_coverage``'s street grid, calls and fire stations ingested (``size``:
    side, calls, stations); run without the what-if (the engine reads only the calls; the
    what-if's solver runs on the driver either way)."""
    folder = OUT / f"dispatch_coverage-{size['side']}-{size['calls']}-{size['stations']}"

    def build(folder: Path) -> str:
        osm, entities = folder / "grid.osm", folder / "calls.jsonl"
        rng = np.random.default_rng(7)  # as bench_dispatch_coverage seeds it
        width, height = bench_dispatch_coverage.generate_osm(osm, size["side"], rng)
        bench_dispatch_coverage.generate_entities(entities, width, height, size["calls"],
                                                  size["stations"], rng)
        _ingest(folder / "lake", "ngsi-ld", str(entities))
        run = _ingest(folder / "lake", "osm", str(osm))
        osm.unlink()
        return (f"{size['side'] ** 2:,} road nodes ({run['written']:,} segments), "
                f"{size['calls']:,} calls, {size['stations']} stations")

    return folder / "lake", ["whatif=none"], _built(folder, build)


def city_kpis(sizes: dict[str, dict[str, int]]) -> tuple[Path, list[str], str]:
    """The bus_routes lake's inputs (not its derived tables) plus the patrol_points calls."""
    bus, patrol = sizes["bus_routes"], sizes["patrol_points"]
    source, _, bus_what = bus_routes(bus)
    calls, _ = _patrol_files(patrol)
    folder = OUT / f"city_kpis-st{bus['stop_times']}-c{bus['cells']}-{patrol['calls']}"

    def build(folder: Path) -> str:
        shutil.copytree(source, folder / "lake", ignore=lambda d, names: [
            n for n in names if Path(d) == source and n == "derived"])
        _ingest(folder / "lake", "calls", str(calls))
        return f"{bus_what}; {patrol['calls']:,} calls"

    return folder / "lake", [], _built(folder, build)


def lakes(names: list[str], sizes: dict[str, dict[str, int]]
          ) -> dict[str, tuple[Path, list[str], str]]:
    """Each named pipeline's lake, its ``--param`` values and its size, built if missing."""
    builders: dict[str, Callable[[], tuple[Path, list[str], str]]] = {
        "energy": lambda: energy(sizes["energy"]),
        "air_quality": lambda: air_quality(sizes["air_quality"]),
        "bus_routes": lambda: bus_routes(sizes["bus_routes"]),
        "patrol_points": lambda: patrol_points(sizes["patrol_points"]),
        "dispatch_coverage": lambda: dispatch_coverage(sizes["dispatch_coverage"]),
        "city_kpis": lambda: city_kpis(sizes),
    }
    return {name: builders[name]() for name in names}


def differences(duck: dict, other: dict) -> list[str]:
    """Where a run's output disagrees with DuckDB's: derived tables and their row counts, and
    the summary's numbers beyond 1e-9 relative (wall-clock figures aside, as
    ``tests/test_spark.py`` compares them)."""
    out = []
    rows = ({t: v["rows"] for t, v in run["tables"].items()} for run in (duck, other))
    a, b = rows
    if a != b:
        out.append(f"derived rows {a} against {b}")
    from tests.test_spark import _clock, _close  # the equality tests' own rule

    m1, m2 = ({k: v for k, v in metrics(run["summary"]).items() if not _clock(k)}
              for run in (duck, other))
    for key in sorted(m1.keys() | m2.keys()):
        x, y = m1.get(key), m2.get(key)
        if x is None or y is None or not _close(x, y):
            out.append(f"summary {key}: {x} against {y}")
    return out


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", default=",".join(PIPELINES),
                    help=f"comma-separated, of {', '.join(PIPELINES)} (default: all)")
    ap.add_argument("--sizes", choices=sorted(SIZES), default="default")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="--sizes quick --repeat 1")
    ap.add_argument("--first-round", type=int, default=1,
                    help="number the rounds from this one: the engines' order rotates by it "
                         "(a later run continues an earlier one's alternation)")
    ap.add_argument("--no-cluster", action="store_true", help="only duckdb and local[2]")
    args = ap.parse_args()
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PIPELINES))
    if unknown:
        ap.error(f"unknown pipelines {', '.join(unknown)}; choose from {', '.join(PIPELINES)}")
    why = java_missing()
    if why is not None:
        print(f"bench_spark: skipped: {why}", file=sys.stderr)
        return
    if args.quick:
        args.sizes, args.repeat = "quick", 1
    # the fast-start JVM options of the tests, as the figures in docs/benchmarks.md were taken
    # (on 3.5 M readings Spark's default options were no faster and took about 40 % more CPU)
    os.environ.setdefault(JAVA_OPTIONS_ENV, JVM_OPTIONS)
    cases = lakes(names, SIZES[args.sizes])
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    outputs: dict[tuple[str, str], list[dict]] = {}
    log = OUT / f"runs-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    print(f"each run's figures and output: {log.relative_to(ROOT)}", file=sys.stderr)
    with ExitStack() as stack:
        engines: dict[str, tuple[str, list[int]]] = {"duckdb": ("duckdb", []),
                                                     "local[2]": ("local[2]", [])}
        if not args.no_cluster:
            from tests.spark import cluster

            master, pids = stack.enter_context(cluster(workers=2, with_pids=True))
            engines[CLUSTER] = (master, pids)
        labels = list(engines)
        for r in range(args.first_round - 1, args.first_round - 1 + args.repeat):
            order = labels[r % len(labels):] + labels[:r % len(labels)]
            for name, (lake, params, _) in cases.items():
                for label in order:
                    engine, pids = engines[label]
                    argv = ["--lake", str(lake), "run", name, "--engine", engine]
                    for p in params:
                        argv += ["--param", p]
                    wall, cpu, out = _hubctl(argv, pids)
                    load = os.getloadavg()[0]
                    times.setdefault((name, label), []).append((wall, cpu, load))
                    outputs.setdefault((name, label), []).append(out)
                    with log.open("a") as f:  # each run as it ends (the table is printed last)
                        f.write(json.dumps({"round": r + 1, "pipeline": name, "engine": label,
                                            "seconds": wall, "cpu_seconds": cpu,
                                            "load_average_1min": load, "output": out}) + "\n")
                    print(f"  round {r + 1}: {name} --engine {label}: {wall:.1f}s "
                          f"({cpu:.1f} CPU s), load average {load:.1f}", file=sys.stderr)
    report(args, cases, labels, times, outputs)


def report(args: argparse.Namespace, cases: dict[str, tuple[Path, list[str], str]],
           labels: list[str], times: dict[tuple[str, str], list[tuple[float, float, float]]],
           outputs: dict[tuple[str, str], list[dict]]) -> None:
    """The medians as markdown tables and JSON; exits non-zero when the engines disagree."""
    print(f"| `hubctl run`, median of {args.repeat} | wall s | CPU s | wall / DuckDB | "
          "CPU / DuckDB | load average |\n|---|---|---|---|---|---|")
    summary: dict[str, Any] = {"sizes": args.sizes, "repeat": args.repeat,
                               "load_average_after_runs_at_end": list(os.getloadavg()),
                               "pipelines": {}}
    disagree = []
    for name, (_, params, what) in cases.items():
        base = statistics.median(t[0] for t in times[(name, "duckdb")])
        base_cpu = statistics.median(t[1] for t in times[(name, "duckdb")])
        first = outputs[(name, "duckdb")][0]
        entry: dict[str, Any] = {"size": what, "params": params,
                                 "derived_rows": {t: v["rows"] for t, v in
                                                  first["tables"].items()}, "engines": {}}
        for label in labels:
            runs = times[(name, label)]
            w = statistics.median(t[0] for t in runs)
            c = statistics.median(t[1] for t in runs)
            loads = ", ".join(f"{t[2]:.1f}" for t in runs)
            diff = [d for out in outputs[(name, label)] for d in differences(first, out)]
            disagree += [f"{name} {label}: {d}" for d in diff]
            print(f"| {name}, {label} | {w:.1f} | {c:.1f} | {w / base:.2f} | "
                  f"{c / base_cpu:.2f} | {loads} |")
            entry["engines"][label] = {"seconds": [round(t[0], 2) for t in runs],
                                       "cpu_seconds": [round(t[1], 2) for t in runs],
                                       "load_average_1min": [round(t[2], 1) for t in runs],
                                       "agrees_with_duckdb": not diff}
        summary["pipelines"][name] = entry
    print(f"\n| pipeline | size | {' | '.join(f'{x}: wall s (CPU s)' for x in labels)} |\n"
          f"|---|---|{'---|' * len(labels)}")
    for name, entry in summary["pipelines"].items():
        cells = []
        for label in labels:
            e = entry["engines"][label]
            cells.append(f"{statistics.median(e['seconds']):.1f} "
                         f"({statistics.median(e['cpu_seconds']):.1f})")
        print(f"| {name} | {entry['size']} | {' | '.join(cells)} |")
    print(json.dumps(summary, indent=2))
    if disagree:
        raise SystemExit("the engines disagree:\n" + "\n".join(disagree))


if __name__ == "__main__":
    main()
