"""`hubctl sql` against plain DuckDB on the same lake of 40 tables (issue 13, section 5).

Builds a lake of 40 date-partitioned Delta tables (seeded), writes its catalog file with
`hubctl catalog`, then times, alternating, one process per call:

- A: `hubctl --lake LAKE sql QUERY` (the read-only connection; only the named tables opened);
- B: plain DuckDB: `python -c "import duckdb; duckdb.connect(CATALOG, read_only=True).sql(QUERY)"`
  started in the lake folder (the catalog's paths are relative to it).

Reports, per query, the median wall time and CPU time (user + system of the child) of each,
and the medians of the paired differences. Target: A - B < 0.15 s. On a loaded machine the
wall times stretch with the load; the CPU times much less.

    .venv/bin/python bench/bench_sql.py [--tables 40] [--repeat 9] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUERIES = {
    "count": "SELECT count(*) AS n FROM Type07",
    "latest group by": "SELECT count(*) AS n, round(avg(value), 3) AS v FROM Type12_latest",
    "join of two": "SELECT count(*) AS n FROM Type03 a JOIN Type31 b USING (id, observed_at)",
}
PLAIN = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True, "
         "config={'autoinstall_known_extensions': False, 'autoload_known_extensions': False}); "
         "print(con.sql(sys.argv[2]).fetchall())")


def build_lake(root: Path, tables: int, rows: int = 2_000, days: int = 5, seed: int = 13) -> None:
    """``tables`` Delta tables Type01..TypeNN with id, observed_at, value, date."""
    sys.path.insert(0, str(ROOT))
    from hubctl.lake import Lake

    lake = Lake(root)
    rng = np.random.default_rng(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for t in range(1, tables + 1):
        at = [start + timedelta(minutes=int(m)) for m in rng.integers(0, days * 1440, rows)]
        table = pa.table({
            "id": [f"urn:ngsi-ld:Type{t:02d}:{i % 50}" for i in range(rows)],
            "observed_at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "value": rng.normal(20, 5, rows),
            "date": pa.array([a.date() for a in at], pa.date32()),
        })
        lake.append(f"Type{t:02d}", table, partition_by=["date"])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system, every thread) of one process; fails loudly if
    it fails. CPU time hardly depends on what else the machine runs; wall time does."""
    cpu, t = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {done.stderr}")
    return elapsed, _children_cpu() - cpu


def main() -> None:
    """Build the lake, time both sides alternating, print a table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--keep", type=Path, default=None, help="build the lake here and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-sql-"))
    lake = work / "lake"
    if not lake.exists():
        build_lake(lake, args.tables)
    catalog = lake / "city.duckdb"
    subprocess.run([str(BIN / "hubctl"), "--lake", str(lake), "catalog", str(catalog)],
                   check=True, capture_output=True)
    results = {}
    for label, sql in QUERIES.items():
        for fmt in ("table", "csv"):
            a_argv = [str(BIN / "hubctl"), "--lake", str(lake), "sql", sql, "--format", fmt]
            b_argv = [sys.executable, "-c", PLAIN, str(catalog), sql]
            timed(a_argv, lake), timed(b_argv, lake)  # warm the page cache
            a, b = [], []
            for _ in range(args.repeat):
                a.append(timed(a_argv, lake))
                b.append(timed(b_argv, lake))
            results[f"{label} ({fmt})"] = {
                "hubctl_s": statistics.median(x[0] for x in a),
                "duckdb_s": statistics.median(x[0] for x in b),
                "extra_s": statistics.median(x[0] - y[0] for x, y in zip(a, b, strict=True)),
                "hubctl_cpu_s": statistics.median(x[1] for x in a),
                "duckdb_cpu_s": statistics.median(x[1] for x in b),
                "extra_cpu_s": statistics.median(x[1] - y[1] for x, y in zip(a, b, strict=True))}
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"{args.tables} tables, {args.repeat} alternating runs each, load average {load}")
    print(f"{'query':28} {'wall: hubctl':>12} {'duckdb':>8} {'extra':>8}"
          f" {'cpu: hubctl':>12} {'duckdb':>8} {'extra':>8}")
    for label, r in results.items():
        print(f"{label:28} {r['hubctl_s']:12.3f} {r['duckdb_s']:8.3f} {r['extra_s']:8.3f}"
              f" {r['hubctl_cpu_s']:12.3f} {r['duckdb_cpu_s']:8.3f} {r['extra_cpu_s']:8.3f}")
    for kind in ("extra_s", "extra_cpu_s"):
        worst = max(r[kind] for r in results.values())
        print(f"worst {kind} {worst:.3f} s (target < 0.150 s): "
              f"{'met' if worst < 0.15 else 'NOT met'}")
    print(json.dumps({"load": load, "results": results}))
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
