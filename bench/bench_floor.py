"""Benchmark: ``hubctl ingest openaq`` against the Delta floor on the same OpenAQ long file.

The floor is the least any ingest of that file into a date-partitioned Delta table can do:
pyarrow CSV read -> long-to-wide pivot (one row per station and hour) -> ``write_deltalake``,
partitioned by date, ZSTD. Both run as child processes on the same generated file (the
generator of ``bench_ingest.py``: stations x hours x 2 pollutants, in time order), in a fresh
lake each time, alternating floor and hubctl; the medians of wall and CPU time (user + system
of the child, from getrusage: the machine is shared, CPU time is the steadier figure), their
ratio, rows/s and peak RSS are reported with the load average.

    make bench      # or: .venv/bin/python bench/bench_floor.py --rows 1000000 5000000
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_ingest import OUT, generate  # noqa: E402

FLOOR = r"""
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv
from deltalake import WriterProperties, write_deltalake
data, stations, lake = sys.argv[1:4]
t = pacsv.read_csv(data)
st = pacsv.read_csv(stations)
cols = {}
for p in pc.unique(t["parameter"]).to_pylist():
    cols[p] = pc.if_else(pc.equal(t["parameter"], p), t["value"], pa.scalar(None, pa.float64()))
long = pa.table({"location": t["location"], "observed_at": t["date.utc"], **cols})
wide = long.group_by(["location", "observed_at"]).aggregate([(p, "max") for p in cols])
wide = wide.rename_columns(["location", "observed_at"] + list(cols))
idx = pc.index_in(wide["location"], value_set=st["location"])
wide = wide.append_column("lat", pc.take(st["coordinates.latitude"], idx))
wide = wide.append_column("lon", pc.take(st["coordinates.longitude"], idx))
wide = wide.append_column("date", pc.cast(wide["observed_at"], pa.date32()))
write_deltalake(lake, wide, partition_by=["date"],
                writer_properties=WriterProperties(compression="ZSTD"))
print(wide.num_rows)
"""


def child(argv: list[str]) -> dict[str, float]:
    """Run one child process: wall seconds, CPU seconds (user + system) and peak RSS (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:4]} failed: {err[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024, "stdout": out}  # type: ignore[dict-item]


def run_floor(data: Path, st: Path, lake: Path) -> dict[str, float]:
    """The floor script on ``data`` into a fresh ``lake``."""
    shutil.rmtree(lake, ignore_errors=True)
    return child([sys.executable, "-c", FLOOR, str(data), str(st), str(lake)])


HUBCTL = str(Path(sys.executable).parent / "hubctl")


def run_hubctl(data: Path, st: Path, lake: Path, hubctl: str = HUBCTL) -> dict[str, float]:
    """``hubctl ingest openaq`` on ``data`` into a fresh ``lake``; checks it reconciles and
    counts the MERGE commits."""
    shutil.rmtree(lake, ignore_errors=True)
    r = child([hubctl, "--lake", str(lake), "ingest", "openaq", str(data), "--stations",
               str(st), "--json"])
    run = json.loads(str(r["stdout"]))
    assert run["reconciles"] and run["status"] == "ok", run
    from deltalake import DeltaTable
    ops = [h.get("operation") for h in DeltaTable(str(lake / "AirQualityObserved")).history()]
    r["merges"] = sum(op == "MERGE" for op in ops)
    r["read"] = run["read"]
    return r


def loadavg() -> str:
    """The first three fields of /proc/loadavg."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def measure(rows: int, repeat: int, before: str | None = None,
            hubctl: str = HUBCTL) -> dict[str, object]:
    """Generate (or reuse) a file of ``rows`` rows and time floor and hubctl alternately."""
    folder = OUT / f"floor-{rows}"
    data, st = folder / "openaq_long.csv", folder / "stations.csv"
    if not (data.exists() and st.exists()):
        generate(folder, rows)
    floor: list[dict[str, float]] = []
    hub: list[dict[str, float]] = []
    old: list[dict[str, float]] = []
    loads = [loadavg()]
    for _ in range(repeat):
        floor.append(run_floor(data, st, folder / "lake-floor"))
        hub.append(run_hubctl(data, st, folder / "lake-hubctl", hubctl))
        if before:
            old.append(run_hubctl(data, st, folder / "lake-hubctl", before))
            print(f"  {rows:,}: before {old[-1]['wall']:.2f}s wall {old[-1]['cpu']:.2f}s cpu "
                  f"({old[-1]['merges']} MERGEs)", file=sys.stderr)
        loads.append(loadavg())
        print(f"  {rows:,}: floor {floor[-1]['wall']:.2f}s wall {floor[-1]['cpu']:.2f}s cpu | "
              f"hubctl {hub[-1]['wall']:.2f}s wall {hub[-1]['cpu']:.2f}s cpu "
              f"(load {loads[-1]})", file=sys.stderr)
    shutil.rmtree(folder / "lake-floor", ignore_errors=True)
    shutil.rmtree(folder / "lake-hubctl", ignore_errors=True)

    def med(runs: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in runs)

    read = int(hub[0]["read"])
    extra: dict[str, object] = {}
    if old:
        extra = {"before_wall_s": round(med(old, "wall"), 2),
                 "before_cpu_s": round(med(old, "cpu"), 2),
                 "before_ratio_cpu": round(med(old, "cpu") / med(floor, "cpu"), 2),
                 "before_peak_rss_mb": round(max(r["rss_mb"] for r in old)),
                 "before_merges": max(int(r["merges"]) for r in old)}
    return {
        "rows": read, "repeat": repeat,
        "floor_wall_s": round(med(floor, "wall"), 2), "floor_cpu_s": round(med(floor, "cpu"), 2),
        "hubctl_wall_s": round(med(hub, "wall"), 2), "hubctl_cpu_s": round(med(hub, "cpu"), 2),
        "ratio_wall": round(med(hub, "wall") / med(floor, "wall"), 2),
        "ratio_cpu": round(med(hub, "cpu") / med(floor, "cpu"), 2),
        "hubctl_rows_per_s_wall": round(read / med(hub, "wall")),
        "hubctl_rows_per_s_cpu": round(read / med(hub, "cpu")),
        "floor_peak_rss_mb": round(max(r["rss_mb"] for r in floor)),
        "hubctl_peak_rss_mb": round(max(r["rss_mb"] for r in hub)),
        "hubctl_merges": max(int(r["merges"]) for r in hub),
        "loadavg": loads, **extra,
    }


def main() -> None:
    """Run the benchmark for each --rows and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", metavar="HUBCTL",
                    help="another hubctl (e.g. an older checkout's .venv/bin/hubctl), timed in "
                         "the same rounds")
    ap.add_argument("--hubctl", default=HUBCTL,
                    help="the hubctl to time (default: this environment's)")
    args = ap.parse_args()
    print(json.dumps([measure(n, args.repeat, args.before, args.hubctl) for n in args.rows],
                     indent=2))


if __name__ == "__main__":
    main()
