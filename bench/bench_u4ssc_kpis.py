"""Benchmark: ``hubctl run city_kpis`` on the benchmark lakes the other benchmarks leave in
``bench-out/`` (air quality, calls, GTFS, energy, ...): every directory there that holds Delta
tables. ``make bench`` runs the benchmarks in name order, so this one (``u4ssc``) comes after
the ones that build those lakes. Target (issue 17): under 60 s on each lake.

    make bench      # or: .venv/bin/python bench/bench_u4ssc_kpis.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_air_quality import OUT, _rss  # noqa: E402

TARGET_S = 60.0


def lakes(root: Path) -> list[Path]:
    """Directories under ``root`` holding Delta tables (``<lake>/<table>/_delta_log``; derived
    tables under ``<lake>/derived/`` count for their lake)."""
    found = set()
    for log in root.glob("**/_delta_log"):
        parts = log.parent.relative_to(root).parts
        cut = parts.index("derived") if "derived" in parts else len(parts) - 1
        if cut > 0:
            found.add(root.joinpath(*parts[:cut]))
    return sorted(found)


def main() -> None:
    """Run city_kpis on each lake; print a markdown table and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    found = lakes(OUT)
    if not found:
        raise SystemExit(f"no benchmark lake under {OUT}: run the other benchmarks first")
    rows = []
    for lake in found:
        runs = [_rss(["--lake", str(lake), "run", "city_kpis"]) for _ in range(args.repeat)]
        s = runs[-1]["out"]["summary"]
        row = {"lake": str(lake.relative_to(OUT)),
               "seconds_median": round(statistics.median(r["seconds"] for r in runs), 2),
               "cpu_seconds": [round(r["cpu_s"], 2) for r in runs],
               "peak_rss_mb": round(max(r["rss_mb"] for r in runs)),
               "load_1min_before": [round(r["load"], 1) for r in runs],
               "computable": s["computable"], "not_computable": s["not_computable"]}
        print(f"  {row['lake']}: {row['seconds_median']}s, {row['computable']} KPIs",
              file=sys.stderr)
        rows.append(row)
    print("| lake | `hubctl run city_kpis`, median | CPU s | peak RSS | KPIs computable |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lake']} | {r['seconds_median']} s | {r['cpu_seconds']} | "
              f"{r['peak_rss_mb']} MB | {r['computable']} of "
              f"{r['computable'] + r['not_computable']} |")
    print(json.dumps({"cores": os.cpu_count(), "target_s": TARGET_S, "lakes": rows},
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
