"""Benchmark: ``hubctl ingest`` in this process and with ``--engine local[2]``, in one run.

Two inputs, each cut into ``--files`` files of whole lines with the header:

- ``meter-readings``: the energy benchmark's AMI CSV (``bench_energy.generate``, seeded;
  ``--meters`` x ``--days`` quarter-hours): one Spark task per byte range of about
  ``--range-mb`` (``HUBCTL_INGEST_RANGE_BYTES``, default 64 MiB) of each file, so one large
  file (``--files 1``) is read by several tasks;
- ``openaq``: the OpenAQ long CSV of ``bench_ingest.generate`` (seeded; ``--rows`` lines), cut
  at whole station-hours, with ``--stations``: one task per byte range of each file, each
  parsing and checking its range into readings that the driver pivots once.

Each round ingests each input into a fresh lake once per engine, alternating, ``--repeat``
rounds; the medians are reported with their ratio to the local path, CPU seconds beside wall
seconds (the hubctl process and its children: the driver JVM and its Python workers) and the
load average beside every figure. Both engines' counts must be equal. Spark's figures include
starting its driver, which a long-lived session would pay once.

Skips with the reason where Java or pyspark is missing.

    make bench     # or: .venv/bin/python bench/bench_spark_ingest.py [--files 2] [--cluster]
    .venv/bin/python bench/bench_spark_ingest.py --quick      # small inputs, one round
    .venv/bin/python bench/bench_spark_ingest.py --files 1 --meters 1000 --case meter-readings
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_energy import generate as generate_ami  # noqa: E402
from bench.bench_ingest import generate as generate_openaq  # noqa: E402
from bench.bench_spark import _hubctl  # noqa: E402
from hubctl.spark import JAVA_OPTIONS_ENV, JVM_OPTIONS, java_missing  # noqa: E402
from hubctl.spark_ingest import RANGE_BYTES_ENV  # noqa: E402

OUT = ROOT / "bench-out" / "spark-ingest"
COUNTS = ("read", "written", "updated", "duplicate", "rejected", "rows_added")
ENGINES = {"this process": [], "local[2]": ["--engine", "local[2]"]}
def cluster_label(workers: int) -> str:
    """The engine's name in the report for a standalone cluster of ``workers`` one-core
    workers."""
    return f"cluster ({workers} worker{'s' if workers > 1 else ''} x 1 core)"


def split(data: Path, files: int, block: int = 1) -> list[Path]:
    """``data`` cut into ``files`` CSV files with its header, each a whole number of
    ``block`` lines; ``data`` is removed."""
    lines = data.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    blocks = len(body) // block
    out = []
    for i in range(files):
        part = body[(blocks * i // files) * block:(blocks * (i + 1) // files) * block]
        path = data.with_name(f"{data.stem}-part{i}.csv")
        path.write_bytes(header + b"".join(part))
        out.append(path)
    data.unlink()
    return out


def inputs(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each benchmark's ``hubctl ingest`` arguments (generated once, kept in bench-out)."""
    stations = 500
    ami = OUT / f"ami-{args.meters}x{args.days}x{args.files}"
    aq = OUT / f"openaq-{args.rows}x{args.files}"
    if not (ami / "done").exists():
        data, _ = generate_ami(ami, args.meters, args.days)
        split(data, args.files)
        (ami / "done").touch()
    if not (aq / "done").exists():
        data, _ = generate_openaq(aq, args.rows, stations)
        split(data, args.files, 2 * stations)
        (aq / "done").touch()
    return {
        "meter-readings": ["meter-readings", *sorted(map(str, ami.glob("ami-part*.csv"))),
                           "--meters", str(ami / "meters.csv"), "--interval", "900"],
        "openaq": ["openaq", *sorted(map(str, aq.glob("openaq_long-part*.csv"))),
                   "--stations", str(aq / "stations.csv")],
    }


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON summary (medians)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--range-mb", type=float, default=None,
                    help="byte ranges of this many MiB (default: HUBCTL_INGEST_RANGE_BYTES "
                         "or 64)")
    ap.add_argument("--case", action="append", choices=["meter-readings", "openaq"],
                    help="only this input (repeatable; default both)")
    ap.add_argument("--cluster", action="store_true",
                    help="also a standalone master with two one-core workers on loopback")
    ap.add_argument("--workers", type=int, nargs="+", default=[2], metavar="N",
                    help="with --cluster: one cluster per N (one-core workers each), e.g. "
                         "--workers 1 2 to compare one worker with two (default: 2)")
    ap.add_argument("--quick", action="store_true",
                    help="20 meters x 30 days and 200,000 OpenAQ lines, one round")
    args = ap.parse_args()
    why = java_missing()
    if why is not None:
        print(f"bench_spark_ingest: skipped: {why}", file=sys.stderr)
        return
    if args.quick:
        args.meters, args.days, args.rows, args.repeat = 20, 30, 200_000, 1
    os.environ.setdefault(JAVA_OPTIONS_ENV, JVM_OPTIONS)  # short-lived JVMs, as measured
    if args.range_mb:
        os.environ[RANGE_BYTES_ENV] = str(int(args.range_mb * (1 << 20)))
    cases = {k: v for k, v in inputs(args).items() if not args.case or k in args.case}
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    counts: dict[tuple[str, str], dict] = {}
    lake = OUT / "lake"
    engines: dict[str, tuple[list[str], list[int]]] = {k: (v, []) for k, v in ENGINES.items()}
    with ExitStack() as stack:
        if args.cluster:
            from tests.spark import cluster

            for workers in args.workers:
                master, pids = stack.enter_context(cluster(workers=workers, with_pids=True))
                engines[cluster_label(workers)] = (["--engine", master], pids)
        _rounds(args.repeat, cases, engines, lake, times, counts)
    report(args, cases, list(engines), times, counts)


def _rounds(repeat: int, cases: dict[str, list[str]],
            engines: dict[str, tuple[list[str], list[int]]], lake: Path,
            times: dict[tuple[str, str], list[tuple[float, float, float]]],
            counts: dict[tuple[str, str], dict]) -> None:
    for _ in range(repeat):
        for name, argv in cases.items():
            for label, (extra, pids) in engines.items():
                shutil.rmtree(lake, ignore_errors=True)
                wall, cpu, run = _hubctl(["--lake", str(lake), "ingest", *argv, *extra], pids)
                load = os.getloadavg()[0]
                times.setdefault((name, label), []).append((wall, cpu, load))
                counts[(name, label)] = {k: run[k] for k in COUNTS}
                print(f"  ingest {name} {label}: {wall:.1f}s ({cpu:.1f} CPU s), load "
                      f"average {load:.1f}", file=sys.stderr)
    shutil.rmtree(lake, ignore_errors=True)


def report(args: argparse.Namespace, cases: dict[str, list[str]], engines: list[str],
           times: dict[tuple[str, str], list[tuple[float, float, float]]],
           counts: dict[tuple[str, str], dict]) -> None:
    """The medians as a markdown table and JSON; exits non-zero when counts differ."""
    print(f"| `hubctl ingest`, {args.files} files, median of {args.repeat} | records | wall s | "
          "CPU s | wall / local | CPU / local | load average |\n|---|---|---|---|---|---|---|")
    summary: dict = {"files": args.files, "cases": {}}
    for name in cases:
        base = statistics.median(t[0] for t in times[(name, "this process")])
        base_cpu = statistics.median(t[1] for t in times[(name, "this process")])
        read = counts[(name, "this process")]["read"]
        same = all(counts[(name, "this process")] == counts[(name, e)] for e in engines)
        summary["cases"][name] = {"records": read, "same_counts": same, "engines": {}}
        for label in engines:
            runs = times[(name, label)]
            w = statistics.median(t[0] for t in runs)
            c = statistics.median(t[1] for t in runs)
            loads = ", ".join(f"{t[2]:.1f}" for t in runs)
            print(f"| {name}, {label} | {read:,} | {w:.1f} | {c:.1f} | {w / base:.2f} | "
                  f"{c / base_cpu:.2f} | {loads} |")
            summary["cases"][name]["engines"][label] = {
                "seconds": [round(t[0], 2) for t in runs],
                "cpu_seconds": [round(t[1], 2) for t in runs],
                "load_average_1min": [round(t[2], 1) for t in runs]}
    print(json.dumps(summary, indent=2))
    if not all(c["same_counts"] for c in summary["cases"].values()):
        raise SystemExit(f"the counts differ: {counts}")


if __name__ == "__main__":
    main()
