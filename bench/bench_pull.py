"""Benchmark: HTTP pulls end to end, from a local server replaying API pages on loopback.

Generates seeded AirKorea pages (``--stations`` stations x ``--hours`` hours, 1,000 items a
page) and NGSI-LD temporal entities (the same stations and hours, ``--limit`` entities a page),
serves them from an in-process ``ThreadingHTTPServer`` on 127.0.0.1, runs
``hubctl ingest airkorea --api`` and ``hubctl ingest ngsi-ld-broker --temporal`` in a fresh
lake as child processes (peak RSS from getrusage), ``--repeat`` times, and prints a markdown
table of medians.

    make bench                       # or: .venv/bin/python bench/bench_pull.py --quick
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
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "bench-out" / "pull"
HUBCTL = str(Path(sys.executable).parent / "hubctl")
T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)


def airkorea_pages(stations: int, hours: int, rows: int = 1000) -> dict[int, bytes]:
    """getCtprvnRltmMesureDnsty answers, page number -> body (values seeded)."""
    rng = np.random.default_rng(42)
    items = []
    for h in range(hours):
        kst = (T0 + timedelta(hours=h + 9)).strftime("%Y-%m-%d %H:%M")
        pm = rng.gamma(2.0, 15.0, stations).round()
        no2 = rng.gamma(2.0, 0.01, stations).round(3)
        items += [{"stationName": f"st{i}", "dataTime": kst, "sidoName": "대구",
                   "pm10Value": str(int(pm[i])), "pm25Value": str(int(pm[i] // 2)),
                   "no2Value": str(no2[i]), "o3Value": "0.031", "coValue": "0.4",
                   "so2Value": "0.003", "khaiValue": "72", "khaiGrade": "2"}
                  for i in range(stations)]
    pages = [items[i:i + rows] for i in range(0, len(items), rows)]
    return {n: json.dumps({"response": {
        "header": {"resultCode": "00", "resultMsg": "NORMAL_CODE"},
        "body": {"items": p, "totalCount": len(items), "pageNo": n, "numOfRows": rows}}},
        ensure_ascii=False).encode() for n, p in enumerate(pages, 1)}


def temporal_entities(stations: int, hours: int) -> list[bytes]:
    """One temporal AirQualityObserved entity per station, as JSON text."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(stations):
        times = [(T0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(hours)]
        no2 = rng.gamma(2.0, 10.0, hours).round(1)
        out.append(json.dumps({
            "id": f"urn:ngsi-ld:AirQualityObserved:st{i}", "type": "AirQualityObserved",
            "location": {"type": "GeoProperty", "value": {
                "type": "Point", "coordinates": [128.5 + i / 10_000, 35.8]}},
            "dateObserved": [{"type": "Property", "value": t, "observedAt": t} for t in times],
            "no2": {"type": "Property", "unitCode": "GQ",
                    "values": [[float(v), t] for v, t in zip(no2, times, strict=True)]},
        }).encode())
    return out


def serve(pages: dict[int, bytes], entities: list[bytes]) -> ThreadingHTTPServer:
    """A loopback server: AirKorea pages by pageNo, NGSI-LD entities by limit/offset."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            if "pageNo" in q:
                body = pages[int(q["pageNo"])]
            else:
                off, lim = int(q["offset"]), int(q["limit"])
                body = b"[" + b",".join(entities[off:off + lim]) + b"]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("NGSILD-Results-Count", str(len(entities)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def once(args: list[str], lake: Path) -> dict[str, float]:
    """One pull in a child process: wall seconds, records read, peak RSS."""
    shutil.rmtree(lake, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([HUBCTL, "--lake", str(lake), "ingest", *args, "--rate", "0",
                           "--json"], capture_output=True, text=True,
                          env={**os.environ, "AIRKOREA_SERVICE_KEY": "bench"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"pull failed: {proc.stderr}")
    run = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": wall, "read": run["read"], "written": run["written"], "rss": peak}


def main() -> None:
    """Run both pulls ``--repeat`` times and print a markdown table of medians."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--hours", type=int, default=50)
    ap.add_argument("--limit", type=int, default=100, help="NGSI-LD entities per page")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 stations x 10 hours, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.stations, args.hours, args.repeat = 200, 10, 1
    OUT.mkdir(parents=True, exist_ok=True)
    st = OUT / "stations.csv"
    st.write_text("name,lat,lon\n" + "".join(f"st{i},{35 + i / 10_000:.4f},128.5\n"
                                             for i in range(args.stations)), encoding="utf-8")
    pages = airkorea_pages(args.stations, args.hours)
    server = serve(pages, temporal_entities(args.stations, args.hours))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    cases = {
        f"airkorea --api ({len(pages)} pages of 1,000)": [
            "airkorea", "--api", "--sido", "대구", "--stations", str(st), "--endpoint", url,
            "--num-rows", "1000"],
        f"ngsi-ld-broker --temporal ({args.stations} entities x {args.hours} h, "
        f"{args.limit}/page)": [
            "ngsi-ld-broker", "--url", url, "--type", "AirQualityObserved", "--temporal",
            "--since", "2024-04-30T00:00:00Z", "--limit", str(args.limit)],
    }
    print("| pull | records | median s | records/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, cli in cases.items():
        runs = [once(cli, OUT / "lake") for _ in range(args.repeat)]
        for r in runs:
            print(f"  {name}: {r['seconds']:.2f}s, {r['read']:,.0f} records", file=sys.stderr)
        secs = statistics.median(r["seconds"] for r in runs)
        read = runs[0]["read"]
        print(f"| {name} | {read:,.0f} | {secs:.2f} | {read / secs:,.0f} | "
              f"{max(r['rss'] for r in runs):.0f} |")
    server.shutdown()


if __name__ == "__main__":
    main()
