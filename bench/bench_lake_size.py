"""Lake size and ingest time with ZSTD against uncompressed Parquet (issue 13, section 3).

Generates the OpenAQ long CSV of bench_ingest.py (seeded), then ingests it into fresh lakes,
alternating: A with the hub's writer properties (ZSTD), B with the same properties but no
compression (what the hub wrote before). Each run is a child process; reports the lake's size
on disk and the medians of the wall times.

    .venv/bin/python bench/bench_lake_size.py [--rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import sys
import pyarrow as pa
from deltalake import WriterProperties
import hubctl.lake as lake
if sys.argv[1] == "uncompressed":
    zstd = lake._writer_properties
    def plain(schema: pa.Schema) -> WriterProperties:
        props = zstd(schema)
        return WriterProperties(column_properties=props.column_properties)
    lake._writer_properties = plain
from hubctl.cli import main
sys.argv = ["hubctl", *sys.argv[2:]]
main()
"""


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ingest(mode: str, data: Path, st: Path, lake: Path) -> tuple[float, int]:
    """Wall time and lake size of one ingest into a fresh lake."""
    shutil.rmtree(lake, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, mode, "--lake", str(lake), "ingest", "openaq",
                    str(data), "--stations", str(st)], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t, folder_bytes(lake)


def main() -> None:
    """Generate, ingest alternating, print a table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-size-"))
    try:
        data, st = generate(work / "in", args.rows)
        runs: dict[str, list[tuple[float, int]]] = {"zstd": [], "uncompressed": []}
        for _ in range(args.repeat):
            for mode in runs:
                runs[mode].append(ingest(mode, data, st, work / f"lake-{mode}"))
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        out = {m: {"seconds": statistics.median(t for t, _ in r), "bytes": r[-1][1]}
               for m, r in runs.items()}
        print(f"{args.rows:,} input rows, {args.repeat} alternating runs, load average {load}")
        for m, r in out.items():
            print(f"{m:13} {r['bytes'] / 1e6:8.1f} MB  {r['seconds']:6.2f} s (median)")
        z, u = out["zstd"], out["uncompressed"]
        print(f"size ratio {u['bytes'] / z['bytes']:.1f}x, "
              f"time ratio zstd/uncompressed {z['seconds'] / u['seconds']:.2f}")
        print(json.dumps({"load": load, "rows": args.rows, "results": out}))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
