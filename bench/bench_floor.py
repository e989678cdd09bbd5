"""Benchmark: ``hubctl ingest openaq`` against the Delta floor on the same OpenAQ long file.

The floor is the least any ingest of that file into a date-partitioned Delta table can do:
pyarrow CSV read -> long-to-wide pivot (one row per station and hour) -> ``write_deltalake``,
partitioned by date, ZSTD. Both run as child processes on the same generated file (the
generator of ``bench_ingest.py``: stations x hours x 2 pollutants, in time order), in a fresh
lake each time, alternating floor and hubctl; the medians of wall and CPU time (user + system
of the child, from getrusage: the machine is shared, CPU time is the steadier figure), their
ratio, rows/s and peak RSS are reported with the load average.

Whether ingest scales linearly: each round also runs both on a tiny file of the same shape
(one hour of every station: the fixed start-up) and the bare interpreter imports (``python -c
pass``, ``import pyarrow``, the floor's imports), alternated with the sizes. Beside the
end-to-end rows/s of each size come the rate net of the start-up, (rows - tiny rows) / (CPU -
tiny CPU), and the marginal rate between consecutive sizes, (rows2 - rows1) / (CPU2 - CPU1).
With ``--resident``, each round also runs every size in one resident process of each (the
floor script exec'd in a process that imported its modules once; hubctl's CLI called in a
process that imported hubctl once, as ``hubctl schedule run`` runs each due source): the
rates there carry no process start-up, only each run's own fixed work (creating the tables,
the ledger's commits).
Before timing, hubctl's own modules are compiled to bytecode once, as an install does (with
PYTHONDONTWRITEBYTECODE set, as on the shared machine, every run would compile them again).

    make bench      # or: .venv/bin/python bench/bench_floor.py --rows 1000000 5000000
    .venv/bin/python bench/bench_floor.py --rows 1000000 5000000 20000000 --resident
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

ROOT = Path(__file__).resolve().parents[1]
# bench_ingest's OUT. This process imports neither bench_ingest (numpy, pyarrow) nor hubctl
# nor deltalake: a child's peak RSS (getrusage) starts from its parent's at the exec.
OUT = ROOT / "bench-out"

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


# One resident process (as ``hubctl schedule run`` runs each due source: the engine function in
# its own process, imports paid once) ingests each (rows, data, stations, lake) of argv[2] in
# turn, the tiny file first, and prints one JSON line per run: CPU (getrusage of the process,
# every thread) and wall of that run alone.
RESIDENT = r"""
import contextlib, io, json, resource, shutil, sys, time
who, todo = sys.argv[1], json.loads(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
if who == "floor":
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv
    from deltalake import WriterProperties, write_deltalake
    def one(data, stations, lake):  # the floor script itself (its imports are loaded)
        sys.argv[1:4] = [data, stations, lake]
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(FLOOR_SCRIPT, {})
        return int(out.getvalue())
else:
    import hubctl.cli as hc
    hc.OWN_PROCESS = True  # as the console script
    def one(data, stations, lake):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            hc.cli.main(["--lake", lake, "ingest", "openaq", data, "--stations", stations,
                         "--json"], prog_name="hubctl", standalone_mode=False)
        run = json.loads(out.getvalue())
        assert run["reconciles"] and run["status"] == "ok", run
        return run["read"]
for rows, data, stations, lake in todo:
    shutil.rmtree(lake, ignore_errors=True)
    c0, t0 = cpu(), time.perf_counter()
    read = one(data, stations, lake)
    print(json.dumps({"rows": rows, "read": read, "cpu": cpu() - c0,
                      "wall": time.perf_counter() - t0}), flush=True)
    shutil.rmtree(lake, ignore_errors=True)
"""


def run_resident(who: str, paths: dict[int, tuple[Path, Path, Path]]) -> dict[int, dict]:
    """One resident child (``who``: floor or hubctl) that ingests every file of ``paths`` in
    turn, the tiny one first; each run's CPU, wall and rows read, by size."""
    todo = [[n, str(d), str(st), str(folder / f"lake-resident-{who}")]
            for n, (d, st, folder) in sorted(paths.items())]
    code = RESIDENT.replace("FLOOR_SCRIPT", repr(FLOOR))
    r = child([sys.executable, "-P", "-c", code, who, json.dumps(todo)])
    return {int(d["rows"]): d for d in map(json.loads, str(r["stdout"]).splitlines())}


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
    r["merges"] = sum(_operations(lake / "AirQualityObserved").count(op) for op in ("MERGE",))
    r["read"] = run["read"]
    return r


def _operations(table: Path) -> list[str]:
    """The operation of each commit of the Delta table at ``table``, from its log."""
    ops = []
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info:
                ops.append(str(info.get("operation")))
    return ops


def loadavg() -> str:
    """The first three fields of /proc/loadavg."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


TINY = 1_000  # one hour of 500 stations, two pollutants: the fixed start-up
IMPORTS = {"python -c pass": "pass", "import pyarrow": "import pyarrow",
           "floor imports": "import pyarrow, pyarrow.compute, pyarrow.csv, deltalake"}


def files(rows: int) -> tuple[Path, Path, Path]:
    """The generated file of ``rows`` rows (made once), its stations and its folder."""
    folder = OUT / f"floor-{rows}"
    data, st = folder / "openaq_long.csv", folder / "stations.csv"
    if not (data.exists() and st.exists()):
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        f"sys.path.insert(0, {str(ROOT)!r}); "
                        "from bench.bench_ingest import generate; "
                        f"generate(Path({str(folder)!r}), {rows})"], check=True)
    return data, st, folder


COMPILE = """
import compileall, sys
import hubctl, hubctl.adapters, hubctl.pipelines
from pathlib import Path
for pkg in (hubctl, hubctl.adapters, hubctl.pipelines):
    compileall.compile_dir(str(Path(pkg.__file__).parent), quiet=1)
"""


def compile_hubctl() -> None:
    """Compile the modules of this environment's hubctl to bytecode, as an install does (in
    a child: see OUT)."""
    subprocess.run([sys.executable, "-c", COMPILE], check=True)


def med(runs: list[dict[str, float]], k: str) -> float:
    """The median of field ``k`` over ``runs``."""
    return statistics.median(r[k] for r in runs)


def measure(sizes: list[int], repeat: int, before: str | None = None,
            hubctl: str = HUBCTL, resident: bool = False) -> dict[str, object]:
    """Time floor and hubctl on a tiny file and on each size, alternately, ``repeat`` rounds;
    the bare imports too; with ``resident``, each round also runs every size in one resident
    process of each."""
    paths = {n: files(n) for n in [TINY, *sizes]}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        k: {n: [] for n in paths} for k in ("floor", "hubctl", "before")}
    imports: dict[str, list[dict[str, float]]] = {k: [] for k in IMPORTS}
    loads = [loadavg()]
    stay: dict[str, dict[int, list[dict]]] = {k: {n: [] for n in paths}
                                              for k in ("floor", "hubctl")}
    for _ in range(repeat):
        if resident:
            for who in ("floor", "hubctl"):
                for n, r in run_resident(who, paths).items():
                    stay[who][n].append(r)
            print(f"  resident: floor {[round(v[-1]['cpu'], 2) for v in stay['floor'].values()]}"
                  f" s cpu | hubctl {[round(v[-1]['cpu'], 2) for v in stay['hubctl'].values()]}"
                  f" s cpu (load {loadavg()})", file=sys.stderr)
        for name, code in IMPORTS.items():
            imports[name].append(child([sys.executable, "-c", code]))
        for n, (data, st, folder) in paths.items():
            runs["floor"][n].append(run_floor(data, st, folder / "lake-floor"))
            runs["hubctl"][n].append(run_hubctl(data, st, folder / "lake-hubctl", hubctl))
            if before:
                runs["before"][n].append(run_hubctl(data, st, folder / "lake-hubctl", before))
            f, h = runs["floor"][n][-1], runs["hubctl"][n][-1]
            print(f"  {n:,}: floor {f['wall']:.2f}s wall {f['cpu']:.2f}s cpu | hubctl "
                  f"{h['wall']:.2f}s wall {h['cpu']:.2f}s cpu (load {loadavg()})",
                  file=sys.stderr)
        loads.append(loadavg())
    for _data, _st, folder in paths.values():
        shutil.rmtree(folder / "lake-floor", ignore_errors=True)
        shutil.rmtree(folder / "lake-hubctl", ignore_errors=True)
    return {"repeat": repeat, "loadavg": loads,
            "startup": {**{k: {"cpu_s": round(med(v, "cpu"), 3), "wall_s": round(med(v, "wall"), 3),
                               "peak_rss_mb": round(max(r["rss_mb"] for r in v))}
                           for k, v in imports.items()},
                        **{f"{who} on {TINY:,} rows": _fixed(runs[who][TINY])
                           for who in ("floor", "hubctl", "before") if runs[who][TINY]}},
            "sizes": _sizes(runs, sizes),
            **({"resident": _resident(stay, sizes)} if resident else {})}


def _resident(stay: dict[str, dict[int, list[dict]]], sizes: list[int]) -> dict[str, object]:
    """Per size in the resident processes: medians, the ratio to the floor and rows/s (per
    CPU s and per wall s), with the spread of hubctl's rates over the sizes."""
    out: list[dict[str, object]] = []
    for n in sizes:
        floor, hub = stay["floor"][n], stay["hubctl"][n]
        read = int(hub[0]["read"])
        out.append({"rows": read,
                    "floor_cpu_s": round(med(floor, "cpu"), 2),
                    "floor_wall_s": round(med(floor, "wall"), 2),
                    "hubctl_cpu_s": round(med(hub, "cpu"), 2),
                    "hubctl_wall_s": round(med(hub, "wall"), 2),
                    "ratio_cpu": round(med(hub, "cpu") / med(floor, "cpu"), 2),
                    "ratio_wall": round(med(hub, "wall") / med(floor, "wall"), 2),
                    "hubctl_rows_per_s_cpu": round(read / med(hub, "cpu")),
                    "hubctl_rows_per_s_wall": round(read / med(hub, "wall")),
                    "floor_rows_per_s_cpu": round(read / med(floor, "cpu")),
                    "floor_rows_per_s_wall": round(read / med(floor, "wall"))})
    spread: dict[str, object] = {}
    for k in ("hubctl_rows_per_s_cpu", "hubctl_rows_per_s_wall", "floor_rows_per_s_cpu",
              "floor_rows_per_s_wall"):
        rates = [int(r[k]) for r in out]  # type: ignore[call-overload]
        if len(rates) > 1:
            spread[k + "_spread"] = round(max(rates) / min(rates) - 1, 3)
    return {"sizes": out, **spread}


def _fixed(runs: list[dict[str, float]]) -> dict[str, float]:
    return {"cpu_s": round(med(runs, "cpu"), 3), "wall_s": round(med(runs, "wall"), 3),
            "peak_rss_mb": round(max(r["rss_mb"] for r in runs))}


def _sizes(runs: dict[str, dict[int, list[dict[str, float]]]],
           sizes: list[int]) -> list[dict[str, object]]:
    """Per size: medians, ratios, end-to-end, net and marginal rows/s."""
    out: list[dict[str, object]] = []
    tiny_rows = int(runs["hubctl"][TINY][0]["read"])
    prev: tuple[int, float, float] | None = None
    for n in sizes:
        floor, hub, old = runs["floor"][n], runs["hubctl"][n], runs["before"][n]
        read = int(hub[0]["read"])
        cpu, wall = med(hub, "cpu"), med(hub, "wall")
        fixed_cpu = med(runs["hubctl"][TINY], "cpu")
        fixed_floor = med(runs["floor"][TINY], "cpu")
        row: dict[str, object] = {
            "rows": read,
            "floor_wall_s": round(med(floor, "wall"), 2),
            "floor_cpu_s": round(med(floor, "cpu"), 2),
            "hubctl_wall_s": round(wall, 2), "hubctl_cpu_s": round(cpu, 2),
            "ratio_wall": round(wall / med(floor, "wall"), 2),
            "ratio_cpu": round(cpu / med(floor, "cpu"), 2),
            "hubctl_rows_per_s_wall": round(read / wall),
            "hubctl_rows_per_s_cpu": round(read / cpu),
            "hubctl_net_rows_per_s_cpu": round((read - tiny_rows) / (cpu - fixed_cpu)),
            "floor_rows_per_s_cpu": round(read / med(floor, "cpu")),
            "floor_net_rows_per_s_cpu": round((read - tiny_rows)
                                              / (med(floor, "cpu") - fixed_floor)),
            "floor_peak_rss_mb": round(max(r["rss_mb"] for r in floor)),
            "hubctl_peak_rss_mb": round(max(r["rss_mb"] for r in hub)),
            "hubctl_merges": max(int(r["merges"]) for r in hub),
        }
        if prev is not None:
            row["hubctl_marginal_rows_per_s_cpu"] = round((read - prev[0]) / (cpu - prev[1]))
            row["floor_marginal_rows_per_s_cpu"] = round(
                (read - prev[0]) / (med(floor, "cpu") - prev[2]))
        prev = (read, cpu, med(floor, "cpu"))
        if old:
            row |= {"before_wall_s": round(med(old, "wall"), 2),
                    "before_cpu_s": round(med(old, "cpu"), 2),
                    "before_ratio_cpu": round(med(old, "cpu") / med(floor, "cpu"), 2),
                    "before_peak_rss_mb": round(max(r["rss_mb"] for r in old)),
                    "before_merges": max(int(r["merges"]) for r in old)}
        out.append(row)
    rates = [int(r["hubctl_rows_per_s_cpu"]) for r in out]  # type: ignore[call-overload]
    if len(rates) > 1:
        out.append({"hubctl_rows_per_s_cpu_spread": round(max(rates) / min(rates) - 1, 3)})
    return out


def main() -> None:
    """Run the benchmark over every --rows (one round covers them all) and print a JSON
    summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", metavar="HUBCTL",
                    help="another hubctl (e.g. an older checkout's .venv/bin/hubctl), timed in "
                         "the same rounds")
    ap.add_argument("--hubctl", default=HUBCTL,
                    help="the hubctl to time (default: this environment's)")
    ap.add_argument("--resident", action="store_true",
                    help="also run every size in one resident process of each (floor and "
                         "hubctl: imports paid once, as `hubctl schedule run` runs sources), "
                         "once per round")
    args = ap.parse_args()
    compile_hubctl()
    print(json.dumps(measure(sorted(args.rows), args.repeat, args.before, args.hubctl,
                             args.resident), indent=2))


if __name__ == "__main__":
    main()
