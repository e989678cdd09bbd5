"""Benchmark: sustained MQTT ingest (IoT-Agent JSON, QoS 1) from Mosquitto on loopback.

Starts a mosquitto broker on a free loopback port (persistence on), ``hubctl listen`` as a child
process with the default batching (10,000 messages or 1 s), and several publisher processes
that offer ``--rate`` messages/s in total (QoS 1, each message acknowledged by the broker).
Each payload carries its publish time as ``TimeInstant``, so ``observed_at`` is the publish
time; the delay of a message is the ``finished_at`` of the ledger row of its micro-batch (the
moment after which it is queryable) minus ``observed_at``. Reports messages/s (all messages
over the time from the first publish to the last commit, so it includes one last micro-batch
wait: use ``--seconds 30`` or more), how fast the publishers got their messages to the broker,
and the delay's p50/p95/max, medians of ``--repeat`` runs. ``--workers 1 2 3`` repeats all
that for each listener worker count (``hubctl listen --workers N``: N processes sharing the
subscription).

The publishers are minimal MQTT 3.1.1 clients on raw sockets (CONNECT, pipelined PUBLISH QoS 1
with a window of unacknowledged messages, PUBACK counting), so that on a 2-core machine they
leave the CPU to the broker and the listener being measured.

    make bench      # or: bench/bench_mqtt.py --rate 20000 --seconds 30 --workers 1 2
"""

from __future__ import annotations

import argparse
import getpass
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "bench-out" / "mqtt"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return b"\x10" + _length(len(body)) + body


def publisher(port: int, index: int, count: int, rate: float, devices: int,
              window: int, start_at: float) -> None:
    """Publish ``count`` measures at ``rate``/s (0: as fast as possible), QoS 1."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_connect_packet(f"bench-pub-{index}"))
    assert sock.recv(4)[:2] == b"\x20\x02", "broker refused the connection"
    topics = [f"/json/bench/p{index}d{d}/attrs".encode() for d in range(devices)]
    sent = acked = 0
    buf = b""
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    while acked < count:
        due = count if rate <= 0 else min(count, int((time.time() - t0) * rate) + 1)
        chunk = []
        while sent < due and sent - acked < window and len(chunk) < 500:
            topic = topics[sent % devices]
            mid = sent % 65535 + 1
            payload = b'{"TimeInstant":%.6f,"p10":%d,"n":%d}' % (time.time(), sent % 97, sent)
            body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + payload
            chunk.append(b"\x32" + _length(len(body)) + body)
            sent += 1
        if chunk:
            sock.sendall(b"".join(chunk))
        sock.settimeout(0.002 if sent < count else 5)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            data = b""
        buf += data
        whole = len(buf) // 4 * 4  # PUBACKs are 4 bytes each
        acked += whole // 4
        buf = buf[whole:]
        if rate > 0 and sent >= due and sent - acked < window:
            time.sleep(0.001)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


class Broker:
    """mosquitto on a free loopback port, persistence in ``folder``."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        f"persistence true\npersistence_location {folder}/\n"
                        f"user {getpass.getuser()}\n"
                        "max_inflight_messages 0\nmax_queued_messages 10000000\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def one_run(args: argparse.Namespace, folder: Path, workers: int) -> dict[str, Any]:
    """One broker, one listener (``workers`` processes), the publishers; figures from the
    lake."""
    shutil.rmtree(folder, ignore_errors=True)
    broker = Broker(folder / "broker")
    lake = folder / "lake"
    hub = folder / "hub.toml"
    hub.write_text(
        f'[lake]\npath = "lake"\n[sources.bench.mqtt]\nhost = "127.0.0.1"\n'
        f'port = {broker.port}\nprotocol = "iotagent-json"\nversion = "{args.version}"\n'
        f'[sources.bench.mqtt.groups.bench]\ntype = "AirQualityObserved"\n'
        'attributes = { p10 = "pm10" }\nstatic = { location = [128.6, 35.87] }\n')
    hubctl = str(Path(sys.executable).parent / "hubctl")
    listener = subprocess.Popen([hubctl, "--config", str(hub), "listen", "bench", "--json",
                                 "--workers", str(workers)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert listener.stderr is not None
    subscribed = 0
    for line in listener.stderr:
        subscribed += "subscribed" in line
        if subscribed == workers:
            break
    total = int(args.rate * args.seconds) if args.rate > 0 else args.messages
    per = total // args.publishers
    total = per * args.publishers
    rate = args.rate / args.publishers if args.rate > 0 else 0
    start_at = time.time() + 1.0
    procs = [mp.Process(target=publisher, args=(broker.port, i, per, rate, args.devices,
                                                args.window, start_at))
             for i in range(args.publishers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    published = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the publishers are reaped
    done = _wait_ledger(lake, total, timeout=max(120.0, args.seconds * 10))
    listener.send_signal(signal.SIGTERM)
    out, _ = listener.communicate(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # + the listener and its workers
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    broker.stop()
    totals = json.loads(out)[0] if out.strip() else {}
    figures = _figures(lake, start_at)
    figures["tail_s"] = round(figures.pop("last_commit") - published, 2)
    figures.update({"cpu_us_per_msg": round(cpu / total * 1e6, 1), "messages": total,
                    "published_s": round(published - start_at, 2),
                    "offered_per_s": round(total / (published - start_at)),
                    "drained": done, "listener": totals})
    return figures


def _wait_ledger(lake: Path, total: int, timeout: float) -> bool:
    from hubctl.duck import scan_sql, scratch
    from hubctl.lake import Lake

    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        lk = Lake(lake)
        if not lk.exists("_runs"):
            continue
        con = scratch()
        try:
            n = con.execute(f"SELECT coalesce(sum(read), 0) FROM "
                            f"{scan_sql(lk.files('_runs'), hive=False)}").fetchone()
        finally:
            con.close()
        if n and n[0] >= total:
            return True
    return False


def _figures(lake: Path, start_at: float) -> dict[str, Any]:
    from hubctl.duck import scan_sql, scratch
    from hubctl.lake import Lake

    lk = Lake(lake)
    con = scratch()
    try:
        row = con.execute(f"""
            WITH r AS (SELECT run_id, finished_at, read FROM
                       {scan_sql(lk.files('_runs'), hive=False)}),
                 d AS (SELECT epoch(r.finished_at) - epoch(a.observed_at) AS delay,
                              epoch(r.finished_at) AS done
                       FROM {scan_sql(lk.files('AirQualityObserved'))} a
                       JOIN r ON r.run_id = a._run_id)
            SELECT count(*), quantile_cont(delay, 0.5), quantile_cont(delay, 0.95), max(delay),
                   max(done), (SELECT count(*) FROM r), (SELECT sum(read) FROM r)
            FROM d""").fetchone()
    finally:
        con.close()
    assert row is not None
    rows, p50, p95, worst, last, batches, read = row
    return {"rows": rows, "batches": batches, "read": read,
            "msgs_per_s": round(rows / (last - start_at)) if rows else 0, "last_commit": last,
            "delay_p50_s": round(p50, 3), "delay_p95_s": round(p95, 3),
            "delay_max_s": round(worst, 3)}


def main() -> None:
    """Run the benchmark ``--repeat`` times and print a markdown table of the medians."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20_000,
                    help="messages/s offered by all publishers together (0: as fast as they can)")
    ap.add_argument("--seconds", type=float, default=30, help="how long the publishers publish")
    ap.add_argument("--messages", type=int, default=200_000, help="total when --rate 0")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--devices", type=int, default=100, help="devices per publisher")
    ap.add_argument("--window", type=int, default=2000, help="unacked messages per publisher")
    ap.add_argument("--version", choices=["3.1.1", "5"], default="3.1.1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[2],
                    help="listener worker processes (hubctl listen --workers); several values "
                         "are measured one after the other (default 2)")
    ap.add_argument("--quick", action="store_true", help="5 s at the rate, one run")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.repeat = 5, 1
    if not (shutil.which("mosquitto") or os.access(MOSQUITTO, os.X_OK)):
        print("bench_mqtt: mosquitto is not installed (scripts/ensure-mosquitto); skipped",
              file=sys.stderr)
        return
    rows = []
    for workers in args.workers:
        runs = []
        for i in range(args.repeat):
            load = os.getloadavg()[0]
            r = one_run(args, OUT / f"run{i}", workers)
            print(f"  {workers} worker(s), run {i}: {r['rows']:,} rows of {r['messages']:,} "
                  f"messages, {r['msgs_per_s']:,} msg/s, delay p50 {r['delay_p50_s']} s, p95 "
                  f"{r['delay_p95_s']} s, max {r['delay_max_s']} s, {r['batches']} batches, "
                  f"listener CPU {r['cpu_us_per_msg']} us/msg, "
                  f"publishers {r['offered_per_s']:,} msg/s, "
                  f"last commit {r['tail_s']} s after the last publish, "
                  f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", file=sys.stderr)
            runs.append(r)
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("msgs_per_s", "delay_p50_s", "delay_p95_s", "delay_max_s",
                         "cpu_us_per_msg", "offered_per_s", "tail_s")}
        lost = [r for r in runs if r["rows"] != r["messages"] or not r["drained"]]
        each = " / ".join(f"{r['msgs_per_s']:,}" for r in runs)
        p95s = " / ".join(f"{r['delay_p95_s']:.2f}" for r in runs)
        rows.append(f"| {workers} | {med['offered_per_s']:,.0f} msg/s | "
                    f"**{med['msgs_per_s']:,.0f} msg/s** ({each}) | {med['tail_s']:.2f} s | "
                    f"{med['delay_p50_s']:.2f} s | **{med['delay_p95_s']:.2f} s** ({p95s}) | "
                    f"{med['delay_max_s']:.2f} s | {med['cpu_us_per_msg']:.0f} us | {len(lost)} |")
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.publishers} publishers, {args.devices} devices "
          f"each, offered {args.rate:,.0f} msg/s for {args.seconds:g} s, MQTT {args.version}, "
          f"QoS 1, default batching; medians of {args.repeat}; load average now "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| workers | published | ingest (runs) | last commit after last publish | delay p50 | "
          "delay p95 (runs) | worst | listener CPU per message | runs with a message lost or "
          "duplicated |\n|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nTargets: >= 20,000 msg/s sustained, p95 delay publish -> queryable < 5 s. "
          "Listener CPU: user + system of hubctl listen and its workers, start-up included.")


if __name__ == "__main__":
    main()
