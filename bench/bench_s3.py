"""The lake on S3 against a local lake: ``hubctl ingest openaq`` and ``hubctl sql`` on the
same input, alternating, medians of wall and CPU time (issue 20 §1). With ``--engine MASTER``
also ``run air_quality`` on each lake, and a third lake on S3 ingested and run with
``--engine MASTER`` (Spark's executors reading and staging on S3 through pyarrow); the CPU
time is the hubctl process's and its children's (with ``local[N]``, the driver JVM and the
executors' Python workers; a cluster's JVMs are not counted).

The S3 server is moto on loopback (a Python process on the same cores, much slower per
request than S3 itself): the figures bound hubctl's own overhead on object storage (requests
per commit, leases, listing), not S3's latency. Skips with a reason where moto is missing.

    .venv/bin/python bench/bench_s3.py --stations 200 --hours 250 --repeat 3
    .venv/bin/python bench/bench_s3.py --stations 200 --hours 250 --repeat 3 --engine 'local[2]'
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _write_openaq(folder: Path, stations: int, hours: int) -> tuple[Path, Path]:
    st = folder / "stations.csv"
    st.write_text("location,coordinates.latitude,coordinates.longitude\n" + "".join(
        f"S{s},{40 + s / 1000:.3f},{3 + s / 1000:.3f}\n" for s in range(stations)))
    data = folder / "long.csv"
    with open(data, "w", encoding="utf-8") as f:
        f.write("city,country,date.utc,location,parameter,value,unit\n")
        for h in range(hours):
            at = (T0 + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S+00:00")
            for p in ("no2", "pm25"):
                f.writelines(f"X,XX,{at},S{s},{p},{(s + h) % 90 + 1},µg/m³\n"
                             for s in range(stations))
    return data, st


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto_server did not start")


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Run the comparison and print one line per measure."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=200)
    ap.add_argument("--hours", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine", help="also run air_quality, and ingest and run it on a third "
                    "S3 lake with --engine ENGINE (local[N] or spark://HOST:PORT)")
    args = ap.parse_args()
    if not (BIN / "moto_server").exists():
        print("bench_s3: skipped: moto_server is not installed (pip install -e '.[dev]')")
        return
    import boto3

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    proc, url = _moto()
    try:
        data, st = _write_openaq(work, args.stations, args.hours)
        aws = {"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "AWS_ALLOW_HTTP": "true"}
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        wheres = ("local", "s3", "s3-spark") if args.engine else ("local", "s3")
        steps = ("ingest", "sql", "run") if args.engine else ("ingest", "sql")
        for r in range(args.repeat):
            for where in wheres:  # alternating
                if where.startswith("s3"):
                    bucket = f"bench-{uuid.uuid4().hex[:8]}"
                    s3.create_bucket(Bucket=bucket)
                    lake = f"s3://{bucket}/hub"
                else:
                    lake = str(work / f"lake{r}")
                env = {**os.environ, **aws, "HUBCTL_LAKE": lake}
                engine = ["--engine", args.engine] if where == "s3-spark" else []
                ingest = [str(BIN / "hubctl"), "ingest", "openaq", str(data), "--stations",
                          str(st), *engine]
                query = [str(BIN / "hubctl"), "sql",
                         "SELECT id, avg(no2), max(pm25) FROM AirQualityObserved GROUP BY id"]
                run = [str(BIN / "hubctl"), "run", "air_quality", *engine]
                times.setdefault((where, "ingest"), []).append(_timed(ingest, env))
                times.setdefault((where, "sql"), []).append(_timed(query, env))
                if "run" in steps:
                    times.setdefault((where, "run"), []).append(_timed(run, env))
        load = os.getloadavg()
        rows = args.stations * args.hours
        print(f"bench_s3: {rows:,} keys ({2 * rows:,} lines), {args.repeat} rounds, "
              f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
              + (f", --engine {args.engine} on s3-spark" if args.engine else ""))
        for step in steps:
            lw, lc = (statistics.median(x[i] for x in times[("local", step)]) for i in (0, 1))
            line = f"  {step:6s} local {lw:6.2f} s wall {lc:6.2f} s CPU"
            for where in wheres[1:]:
                rw, rc = (statistics.median(x[i] for x in times[(where, step)]) for i in (0, 1))
                line += (f" | {where} {rw:6.2f} s wall {rc:6.2f} s CPU (x{rw / lw:.2f} wall, "
                         f"x{rc / lc:.2f} CPU)")
            print(line)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
