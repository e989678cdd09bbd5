"""The hub as an application entity on a real oneM2M CSE: ACME (PyPI ``acmecse``) started on free
loopback ports with a generated ``acme.ini``, its MQTT binding on a Mosquitto broker that each
test starts. ACME publishes its notifications at QoS 0 and never retries them; these tests
check that the hub registers, subscribes, answers the verification, resolves ACME's
unstructured ids, catches up on what it missed (``kill -9``, a broker restart), takes
aggregated notifications, answers over HTTP after the commit, and never answers what is
addressed to the CSE."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acme import Acme, free_port, needs_acme
from tests.helpers import hub_json
from tests.test_mqtt import Broker, InProcess, Listener, lake_count, needs_broker, paho_client

pytestmark = [pytest.mark.subprocess, needs_broker, needs_acme]

DEVICE, HUB = "Cdevice", "Chubctl"
AIR = "cse-in/CairSensor/air"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[Broker, Acme]]:
    """A Mosquitto broker and ACME on it, with a device AE and two containers the hub may read."""
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(folder)
    broker.start()
    acme = Acme(tmp_path / "acme", broker.port)
    try:
        acme.start()
        acme.device("CairSensor", DEVICE, ["air", "air2"], grant=HUB)
        yield broker, acme
    finally:
        acme.stop()
        broker.stop()


def write_hub(tmp: Path, broker: Broker, acme: Acme, *extra: str, containers: tuple[str, ...] = (
        AIR,), reconcile: float = 60) -> Path:
    mapping = "".join(f'[sources.live.mqtt.containers."{c}"]\ntype = "AirQualityObserved"\n'
                      f'id = "{c.rsplit("/", 1)[-1]}"\nattributes = {{ PM10 = "pm10" }}\n'
                      'static = { location = [128.6, 35.87] }\n' for c in containers)
    path = tmp / "hub.toml"
    path.write_text(
        f'[lake]\npath = "lake"\n[sources.live.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        'protocol = "onem2m"\nbatch_time = 0.2\nclient_id = "hub-acme"\nregister = true\n'
        f'cse_id = "id-in"\ncse_name = "cse-in"\nae_id = "{HUB}"\nreconcile = {reconcile}\n'
        + "".join(f"{e}\n" for e in extra) + mapping)
    return path


def create_many(acme: Acme, path: str, n: int, rate: float, start: int = 0) -> None:
    """``n`` contentInstances (PM10 = start, start+1, ...) at about ``rate`` per second."""
    for i in range(start, start + n):
        acme.create_cin(path, DEVICE, {"PM10": i})
        time.sleep(1 / rate)


def wait_rows(lake: Path, n: int, timeout: float = 40) -> int:
    deadline, found = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if (lake / "AirQualityObserved" / "_delta_log").exists():
            found = lake_count(lake)
            if found >= n:
                return found
        time.sleep(0.3)
    return found


def distinct_rows(lake: Path) -> int:
    rows = hub_json(lake, "sql", "SELECT count(DISTINCT (id, observed_at)) AS n FROM "
                                 "AirQualityObserved")
    return int(rows[0]["n"])


def reconciled(lake: Path) -> bool:
    rows = hub_json(lake, "sql", "SELECT sum(read) AS r, sum(written) AS w, sum(updated) AS u, "
                                 "sum(duplicate) AS d, sum(rejected) AS x FROM _runs")
    r = {k: int(v or 0) for k, v in rows[0].items()}
    return r["r"] == r["w"] + r["u"] + r["d"] + r["x"]


def test_registers_subscribes_answers_verification_and_maps_unstructured_ids(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    hub = InProcess(write_hub(tmp_path, broker, acme), wait=f"subscribed to {AIR}")
    try:
        rsc, ae = acme.request("GET", HUB, HUB)
        assert rsc == 2000 and ae["m2m:ae"]["rr"] is True
        assert ae["m2m:ae"]["poa"] == [f"mqtt://127.0.0.1:{broker.port}"]
        rsc, sub = acme.request("GET", f"{AIR}/sub-{HUB}", HUB)
        assert rsc == 2000 and sub["m2m:sub"]["nu"] == [HUB]
        # someone else subscribes the hub: ACME verifies with the hub first (5204 otherwise)
        rsc, body = acme.request("POST", f"{AIR}", DEVICE, {"m2m:sub": {
            "rn": "byDevice", "nu": [HUB], "enc": {"net": [3]}}}, 23)
        assert rsc == 2001, body
        made = [acme.create_cin(AIR, DEVICE, {"PM10": i}) for i in range(25)]
        assert wait_rows(tmp_path / "lake", 25) == 25
        time.sleep(1)  # the second subscription's copies arrive too: duplicates, not rows
        assert lake_count(tmp_path / "lake") == 25 == acme.cni(AIR, DEVICE)
        totals = hub.terminate()
    finally:
        hub.stop.set()
    assert totals["rejected"] == 0 and totals["duplicate"] >= 25
    rows = hub_json(tmp_path / "lake", "sql", "SELECT pm10, _time_index FROM "
                                              "AirQualityObserved ORDER BY observed_at")
    assert [r["pm10"] for r in rows] == [float(i) for i in range(25)]
    assert {r["_time_index"] for r in rows} == {"ct"} and len(made) == 25
    assert reconciled(tmp_path / "lake")


@pytest.mark.slow
def test_kill_9_while_acme_creates_and_a_broker_restart_lose_nothing(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    config = write_hub(tmp_path, broker, acme, reconcile=2)
    lake = tmp_path / "lake"
    listener = Listener(config, subscribed=2)
    done = threading.Event()

    def creator() -> None:
        create_many(acme, AIR, 240, rate=40)
        done.set()

    thread = threading.Thread(target=creator, daemon=True)
    thread.start()
    wait_rows(lake, 30)
    listener.kill()  # kill -9 while ACME goes on creating and notifying at QoS 0
    time.sleep(1.5)
    listener = Listener(config, subscribed=2)
    wait_rows(lake, lake_count(lake) + 20)
    broker.stop()  # ACME's and the hub's connections drop; notifications meanwhile are lost
    time.sleep(1.5)
    broker.start()
    thread.join(60)
    assert done.is_set()
    cni = acme.cni(AIR, DEVICE)
    assert cni == 240
    assert wait_rows(lake, cni, timeout=30) == cni
    totals = listener.terminate()
    assert lake_count(lake) == distinct_rows(lake) == cni  # none lost, none doubled
    assert totals["rejected"] == 0
    assert reconciled(lake)


def test_an_aggregated_notification_is_ingested_whole(tmp_path: Path,
                                                      peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    seen: list[dict[str, Any]] = []
    sniffer = paho_client(broker, "sniffer")
    sniffer.on_message = lambda c, u, m: seen.append({"topic": m.topic, **json.loads(m.payload)})
    sniffer.subscribe(f"/oneM2M/+/+/{HUB}/json")
    sniffer.subscribe(f"/oneM2M/resp/id-in/{HUB}/json")
    hub = InProcess(write_hub(tmp_path, broker, acme, containers=(AIR, AIR + "2")),
                    wait=f"subscribed to {AIR}2")
    try:
        rsc, body = acme.request("POST", AIR + "2", DEVICE, {"m2m:sub": {
            "rn": "batched", "nu": [HUB], "enc": {"net": [3]}, "bn": {"num": 5}}}, 23)
        assert rsc == 2001, body
        for i in range(5):
            acme.create_cin(AIR + "2", DEVICE, {"PM10": 100 + i})
        assert wait_rows(tmp_path / "lake", 5) == 5
        deadline = time.monotonic() + 15
        agn: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not agn:
            agn = [m for m in seen if "m2m:agn" in (m.get("pc") or {})]
            time.sleep(0.2)
        assert agn, "ACME sent no aggregated notification"
        instances = agn[0]["pc"]["m2m:agn"]
        assert len(instances.get("m2m:sgn", instances)) == 5
        deadline = time.monotonic() + 10
        answers: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not answers:
            answers = [m for m in seen if m.get("rqi") == agn[0]["rqi"] and "rsc" in m]
            time.sleep(0.2)
        assert answers and answers[0]["rsc"] == 2000 and answers[0]["rvi"] == agn[0]["rvi"]
        totals = hub.terminate()
    finally:
        hub.stop.set()
        sniffer.disconnect()
        sniffer.loop_stop()
    assert totals["rejected"] == 0 and lake_count(tmp_path / "lake") == 5


def test_never_answers_what_is_addressed_to_the_cse_and_drops_old_topics(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    old = write_hub(tmp_path, broker, acme, 'topics = ["/oneM2M/req/+/+/json"]',
                    f'cse_url = "{acme.url}"')
    hub = InProcess(old, wait=f"subscribed to {AIR}")
    acme.create_cin(AIR, DEVICE, {"PM10": 1})
    wait_rows(tmp_path / "lake", 1)
    hub.terminate()
    hub = InProcess(write_hub(tmp_path, broker, acme), wait=f"subscribed to {AIR}")
    answers: list[dict[str, Any]] = []
    peer_client = paho_client(broker, "device")  # the device AE, now over MQTT
    peer_client.on_message = lambda c, u, m: answers.append(json.loads(m.payload))
    peer_client.subscribe(f"/oneM2M/resp/{DEVICE}/+/json", 1)
    try:
        assert any("unsubscribed from /oneM2M/req/+/+/json" in line for line in hub.lines)
        time.sleep(0.5)
        for rqi, request in (("r1", {"op": 2, "to": "cse-in"}),
                             ("r2", {"op": 1, "to": AIR, "ty": 4, "pc": {"m2m:cin": {
                                 "con": json.dumps({"PM10": 2})}}})):
            peer_client.publish(f"/oneM2M/req/{DEVICE}/id-in/json", json.dumps(
                {**request, "fr": DEVICE, "rqi": rqi, "rvi": "3"}), qos=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(answers) < 2:
            time.sleep(0.1)
        time.sleep(1.5)  # a second answer (the hub impersonating the CSE) would arrive by now
        assert wait_rows(tmp_path / "lake", 2) == 2
        totals = hub.terminate()
    finally:
        hub.stop.set()
        peer_client.disconnect()
        peer_client.loop_stop()
    # one answer per request, ACME's (the create really made by ACME, then notified)
    assert sorted(a["rqi"] for a in answers) == ["r1", "r2"], answers
    assert [a["rsc"] for a in answers if a["rqi"] == "r2"] == [2001]
    assert all(a.get("fr") != HUB for a in answers)
    assert totals["responses"] == 1  # its answer to the notification of r2's cin, no other
    assert acme.cni(AIR, DEVICE) == 2 == lake_count(tmp_path / "lake")


def test_http_notifications_are_answered_only_after_the_commit(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    port = free_port()
    config = write_hub(tmp_path, broker, acme, f'notify_http = "127.0.0.1:{port}"',
                       f'cse_url = "{acme.url}"')
    hub = InProcess(config, wait=f"subscribed to {AIR}")
    lake = tmp_path / "lake"
    try:
        rsc, ae = acme.request("GET", HUB, HUB)
        assert ae["m2m:ae"]["poa"] == [f"http://127.0.0.1:{port}"]
        for i in range(10):
            acme.create_cin(AIR, DEVICE, {"PM10": i})
        assert wait_rows(lake, 10) == 10
        # a notification as ACME posts it: when its 2000 comes back, its row is queryable
        body = {"m2m:sgn": {"sur": f"/id-in/sub-{HUB}", "nev": {"net": 3, "rep": {"m2m:cin": {
            "con": json.dumps({"PM10": 77}), "ct": "20240501T090000", "pi": "nope",
            "ri": "cinX"}}}}}
        rsc, sub = acme.request("GET", f"{AIR}/sub-{HUB}", HUB)
        body["m2m:sgn"]["sur"] = f"/id-in/{sub['m2m:sub']['ri']}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(),
                                     method="POST", headers={
                                         "X-M2M-Origin": "/id-in", "X-M2M-RI": "h1",
                                         "X-M2M-RVI": "3", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["X-M2M-RSC"] == "2000"
            assert resp.headers["X-M2M-RI"] == "h1"
            assert lake_count(lake, "pm10 = 77") == 1  # committed before the answer
        totals = hub.terminate()
    finally:
        hub.stop.set()
    assert totals["rejected"] == 0 and totals["responses"] >= 11


def test_what_no_notification_brings_arrives_with_the_periodic_catch_up(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    broker, acme = peer
    hub = InProcess(write_hub(tmp_path, broker, acme, reconcile=1), wait=f"subscribed to {AIR}")
    try:
        acme.create_cin(AIR, DEVICE, {"PM10": 1})
        assert wait_rows(tmp_path / "lake", 1) == 1
        # the CSE stops notifying the hub (its subscription deleted by the CSE's admin)
        assert acme.request("DELETE", f"{AIR}/sub-{HUB}", "CAdmin")[0] == 2002
        for i in range(2, 7):
            acme.create_cin(AIR, DEVICE, {"PM10": i})
        assert wait_rows(tmp_path / "lake", 6, timeout=15) == 6
        hub.wait_for(f"subscribed to {AIR}", 2)  # and the subscription is made again
        assert acme.request("GET", f"{AIR}/sub-{HUB}", HUB)[0] == 2000
        totals = hub.terminate()
    finally:
        hub.stop.set()
    assert totals["rejected"] == 0 and acme.cni(AIR, DEVICE) == 6
    cursor = hub_json(tmp_path / "lake", "sql", "SELECT cursor_after FROM _runs WHERE "
                                                "cursor_after IS NOT NULL ORDER BY finished_at "
                                                "DESC LIMIT 1")[0]["cursor_after"]
    assert list(json.loads(cursor)) == [AIR]  # where the next start resumes


def test_an_ae_id_the_cse_refuses_fails_the_listener_with_exit_2_and_why(
        tmp_path: Path, peer: tuple[Broker, Acme]) -> None:
    import subprocess

    from tests.test_mqtt import HUBCTL

    broker, acme = peer
    config = write_hub(tmp_path, broker, acme)
    config.write_text(config.read_text().replace(f'ae_id = "{HUB}"', 'ae_id = "hubctl-bad"'))
    proc = subprocess.run([HUBCTL, "--config", str(config), "listen", "live"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "refused to register the AE hubctl-bad" in proc.stderr
    assert "allowedAEOriginators" in proc.stderr and "Traceback" not in proc.stderr
