"""Benchmark: contentInstances created on a real oneM2M CSE (ACME) -> queryable in the lake.

Starts Mosquitto and ACME (``.acme-venv``, installed by ``scripts/ensure-acme``; in-memory
database, MQTT binding on the broker) on free loopback ports, a device AE with ``--clients``
containers the hub may read, and ``--clients`` creating processes, each creating
contentInstances in its own container over ACME's HTTP binding as fast as ACME answers, for
``--seconds`` seconds. Two measurements per repeat, alternating:

- **ACME alone**: nobody subscribed; what ACME sustains on this machine (creates/s).
- **ACME notifying a minimal responder**: the same AE and subscriptions as the hub's, their
  notifications answered at once by a bare paho client that stores nothing: what ACME
  sustains when it notifies over MQTT, whoever listens.
- **with the hub**: ``hubctl listen`` registered as the AE ``Chubctl`` (``register = true``,
  notifications over MQTT at QoS 0 as ACME sends them, ``reconcile`` 60 s), killed with
  SIGKILL in the middle of the run and started again 2 s later. The run ends when the lake
  holds every contentInstance ACME holds (the containers' ``cni``).

Figures: created/s (ACME's rate while the hub listens, from the first create to the last);
lake rows = ACME's ``cni`` (0 lost, 0 doubled); the delay of each contentInstance from its
creation (``ct``, ACME's clock: it is the ``observed_at``) to the commit of the micro-batch
that first wrote it (the ledger's ``finished_at``), p50/p95/max, including those created while
the listener was away and recovered by the catch-up at its restart (their delay is the
outage), and p95 of those created before the kill (notifications); and the ratio of the rate
with the hub to ACME alone.

    make bench      # or: bench/bench_acme.py --seconds 20 --clients 4 --repeat 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_mqtt import MOSQUITTO, Broker  # noqa: E402
from tests.acme import ACME, Acme  # noqa: E402

OUT = ROOT / "bench-out" / "acme"
DEVICE, HUB = "Cdevice", "Chubctl"


def creator(port: int, path: str, until: float, start_at: float, out: Any) -> None:
    """Create contentInstances in ``path`` until ``until`` over one keep-alive connection;
    put the count on ``out``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < until:
        body = json.dumps({"m2m:cin": {"con": json.dumps({"PM10": n % 97, "n": n})}})
        conn.request("POST", f"/{path}", body, {
            "X-M2M-Origin": DEVICE, "X-M2M-RI": uuid.uuid4().hex, "X-M2M-RVI": "3",
            "Content-Type": "application/json;ty=4", "Accept": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise SystemExit(f"ACME answered {resp.status} to a create")
        n += 1
    out.put(n)


def _create(acme: Acme, containers: list[str], seconds: float) -> tuple[int, float, float]:
    """All creators for ``seconds``: (created, first, last) wall times."""
    q: Any = mp.Queue()
    start_at = time.time() + 0.5
    until = start_at + seconds
    procs = [mp.Process(target=creator, args=(acme.http_port, c, until, start_at, q))
             for c in containers]
    for p in procs:
        p.start()
    counts = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    return sum(counts), start_at, time.time()


def _setup(folder: Path, clients: int) -> tuple[Broker, Acme, list[str]]:
    shutil.rmtree(folder, ignore_errors=True)
    broker = Broker(folder / "broker")
    acme = Acme(folder / "acme", broker.port, log_level="off")
    acme.start()
    names = [f"c{i}" for i in range(clients)]
    acme.device("Cbench", DEVICE, names, grant=HUB)
    return broker, acme, [f"cse-in/Cbench/{n}" for n in names]


def alone(args: argparse.Namespace, folder: Path) -> float:
    """Creates/s ACME sustains with nobody subscribed."""
    broker, acme, containers = _setup(folder, args.clients)
    try:
        created, t0, t1 = _create(acme, containers, args.seconds)
    finally:
        acme.stop()
        broker.stop()
    return created / (t1 - t0)


def responder(args: argparse.Namespace, folder: Path) -> float:
    """Creates/s ACME sustains while notifying an AE that answers at once and stores nothing."""
    import paho.mqtt.client as mqtt

    broker, acme, containers = _setup(folder, args.clients)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-responder")

    def answer(c: Any, userdata: Any, m: Any) -> None:
        req = json.loads(m.payload)
        parts = m.topic.split("/")
        c.publish("/".join(parts[:2] + ["resp"] + parts[3:]), json.dumps(
            {"rsc": 2000, "rqi": req.get("rqi"), "rvi": req.get("rvi"), "fr": HUB,
             "to": req.get("fr")}))

    client.on_message = answer
    client.connect("127.0.0.1", broker.port)
    client.subscribe(f"/oneM2M/req/+/{HUB}/json")
    client.loop_start()
    try:
        assert acme.request("POST", "cse-in", HUB, {"m2m:ae": {
            "rn": HUB, "api": "Nbench", "rr": True, "srv": ["3"],
            "poa": [f"mqtt://127.0.0.1:{broker.port}"]}}, 2)[0] == 2001
        for c in containers:
            assert acme.request("POST", c, HUB, {"m2m:sub": {
                "rn": f"sub-{HUB}", "nu": [HUB], "enc": {"net": [3], "chty": [4]},
                "nct": 1}}, 23)[0] == 2001
        created, t0, t1 = _create(acme, containers, args.seconds)
    finally:
        client.disconnect()
        client.loop_stop()
        acme.stop()
        broker.stop()
    return created / (t1 - t0)


def _listener(config: Path) -> subprocess.Popen[str]:
    hubctl = str(Path(sys.executable).parent / "hubctl")
    proc = subprocess.Popen([hubctl, "--config", str(config), "listen", "bench", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "subscribed to cse-in/Cbench/c0" in line:
            break
    return proc


def with_hub(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The hub registered on ACME, killed -9 in the middle; figures from the lake."""
    broker, acme, containers = _setup(folder, args.clients)
    config = folder / "hub.toml"
    config.write_text(
        f'[lake]\npath = "lake"\n[sources.bench.mqtt]\nhost = "127.0.0.1"\n'
        f'port = {broker.port}\nprotocol = "onem2m"\nregister = true\ncse_id = "id-in"\n'
        f'cse_name = "cse-in"\nae_id = "{HUB}"\nreconcile = {args.reconcile:g}\n' + "".join(
            f'[sources.bench.mqtt.containers."{c}"]\ntype = "AirQualityObserved"\n'
            f'id = "bench-{c.rsplit("/", 1)[1]}"\nattributes = {{ PM10 = "pm10" }}\n'
            'static = { location = [128.6, 35.87] }\n' for c in containers))
    listener = _listener(config)
    try:
        ctx = mp.get_context("fork")
        box: Any = ctx.Queue()
        runner = ctx.Process(target=lambda: box.put(_create(acme, containers, args.seconds)))
        runner.start()
        time.sleep(0.5 + args.seconds / 2)
        killed = time.time()
        listener.kill()  # kill -9 while ACME creates and notifies at QoS 0
        listener.wait(10)
        time.sleep(2)
        listener = _listener(config)
        back = time.time()
        created, t0, t1 = box.get(timeout=args.seconds + 120)
        runner.join()
        cni = sum(acme.cni(c, DEVICE) for c in containers)
        drained = _wait_rows(folder / "lake", cni, timeout=120)
        listener.send_signal(signal.SIGTERM)
        listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
        acme.stop()
        broker.stop()
    figures = _figures(folder / "lake", killed)
    figures.update({"created": created, "cni": cni, "drained": drained,
                    "created_per_s": created / (t1 - t0), "outage_s": round(back - killed, 1)})
    return figures


def _count(lake: Path) -> int:
    from hubctl.duck import scan_sql, scratch
    from hubctl.lake import Lake

    lk = Lake(lake)
    if not lk.exists("AirQualityObserved"):
        return 0
    con = scratch()
    try:
        row = con.execute(f"SELECT count(*) FROM "
                          f"{scan_sql(lk.files('AirQualityObserved'))}").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _wait_rows(lake: Path, n: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _count(lake) >= n:
            return True
        time.sleep(0.5)
    return False


def _figures(lake: Path, killed: float) -> dict[str, Any]:
    from hubctl.duck import scan_sql, scratch
    from hubctl.lake import Lake

    lk = Lake(lake)
    con = scratch()
    try:
        row = con.execute(f"""
            WITH r AS (SELECT run_id, finished_at FROM {scan_sql(lk.files('_runs'), hive=False)}),
                 a AS (SELECT * FROM {scan_sql(lk.files('AirQualityObserved'))}),
                 d AS (SELECT epoch(r.finished_at) - epoch(a.observed_at) AS delay,
                              epoch(a.observed_at) < {killed} - 1 AS before
                       FROM a JOIN r ON r.run_id = a._run_id)
            SELECT (SELECT count(*) FROM a), (SELECT count(DISTINCT (id, observed_at)) FROM a),
                   quantile_cont(delay, 0.5), quantile_cont(delay, 0.95), max(delay),
                   quantile_cont(delay, 0.95) FILTER (WHERE before)
            FROM d""").fetchone()
    finally:
        con.close()
    assert row is not None
    rows, distinct, p50, p95, worst, steady = row
    return {"rows": rows, "distinct": distinct, "delay_p50_s": round(p50, 2),
            "delay_p95_s": round(p95, 2), "delay_max_s": round(worst, 2),
            "steady_p95_s": round(steady, 2)}


def main() -> None:
    """Alternate ACME alone and ACME with the hub ``--repeat`` times; print the medians."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20, help="how long the clients create")
    ap.add_argument("--clients", type=int, default=4, help="creating processes (one container "
                                                            "each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reconcile", type=float, default=60,
                    help="the listener's reconcile (seconds between catch-ups; default 60)")
    args = ap.parse_args()
    if not os.access(ACME, os.X_OK) or not os.access(MOSQUITTO, os.X_OK):
        print(f"bench_acme: ACME ({ACME}) or mosquitto is not installed (scripts/ensure-acme, "
              "scripts/ensure-mosquitto); skipped", file=sys.stderr)
        return
    alones, responders, hubs = [], [], []
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        alones.append(alone(args, OUT / f"alone{i}"))
        responders.append(responder(args, OUT / f"responder{i}"))
        h = with_hub(args, OUT / f"hub{i}")
        hubs.append(h)
        print(f"  run {i}: ACME alone {alones[-1]:.0f} creates/s, notifying a minimal responder "
              f"{responders[-1]:.0f} creates/s; with the hub "
              f"{h['created_per_s']:.0f} creates/s, {h['rows']} rows (distinct "
              f"{h['distinct']}) for cni {h['cni']} ({h['created']} created), delay p50 "
              f"{h['delay_p50_s']} s, p95 {h['delay_p95_s']} s, max {h['delay_max_s']} s, p95 "
              f"before the kill {h['steady_p95_s']} s, listener away {h['outage_s']} s; load "
              f"{load:.1f} -> {os.getloadavg()[0]:.1f}", file=sys.stderr)
    a = statistics.median(alones)
    r = statistics.median(responders)
    w = statistics.median(h["created_per_s"] for h in hubs)
    lost = sum(1 for h in hubs if not (h["rows"] == h["distinct"] == h["cni"] and h["drained"]))
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.clients} creating clients (HTTP, keep-alive), "
          f"{args.seconds:g} s per run, kill -9 of the listener in the middle; medians of "
          f"{args.repeat}; load average now {os.getloadavg()[0]:.1f}\n")
    print("| ACME alone | ACME notifying a minimal responder | ACME with the hub (runs) | "
          "ratio to alone / to the responder | lake rows = cni | delay p50 | "
          "delay p95 (runs) | worst | p95 before the kill | listener away | runs with a loss "
          "or a double |\n|---|---|---|---|---|---|---|---|---|---|---|")
    each = " / ".join(f"{h['created_per_s']:.0f}" for h in hubs)
    p95s = " / ".join(f"{h['delay_p95_s']:.2f}" for h in hubs)
    print(f"| {a:.0f} creates/s | {r:.0f} creates/s | **{w:.0f} creates/s** ({each}) | "
          f"{w / a:.2f} / {w / r:.2f} | "
          f"{' / '.join(str(h['rows']) + '=' + str(h['cni']) for h in hubs)} | "
          f"{statistics.median(h['delay_p50_s'] for h in hubs):.2f} s | "
          f"**{statistics.median(h['delay_p95_s'] for h in hubs):.2f} s** ({p95s}) | "
          f"{max(h['delay_max_s'] for h in hubs):.2f} s | "
          f"{statistics.median(h['steady_p95_s'] for h in hubs):.2f} s | "
          f"{statistics.median(h['outage_s'] for h in hubs):.1f} s | {lost} |")


if __name__ == "__main__":
    main()
