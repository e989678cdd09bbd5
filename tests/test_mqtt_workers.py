"""``hubctl listen --workers N`` against a real Mosquitto broker: worker processes sharing the
subscription (``$share/hubctl-<source>/...``), each message landing once, ``kill -9`` of one
worker mid-stream (restarted, nothing lost or duplicated), the source lock, oneM2M responses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hubctl.errors import ConfigError
from hubctl.mqtt.settings import MqttSettings, parse_settings
from hubctl.mqtt.workers import worker_settings
from tests.helpers import hub_json
from tests.test_mqtt import (
    HUBCTL,
    Broker,
    Listener,
    broker,
    lake_count,
    ledger,
    measures,
    needs_broker,
    paho_client,
    publish,
    wait_count,
    wait_first_commit,
    write_hub,
)

__all__ = ["broker"]  # the fixture, imported for pytest

GROUP = {"protocol": "iotagent-json", "groups": {"k": {"type": "AirQualityObserved"}}}


def test_worker_settings_share_the_topics_under_their_own_client_ids() -> None:
    s = parse_settings("live", {**GROUP, "workers": 3, "client_id": "hub"}, Path("."))
    assert s.workers == 3
    w1 = worker_settings(s, 1)
    assert w1.client_id == "hub-w1"
    assert w1.topics == ("$share/hubctl-live//json/+/+/attrs",
                         "$share/hubctl-live//json/+/+/attrs/+",
                         "$share/hubctl-live//+/+/attrs", "$share/hubctl-live//+/+/attrs/+")
    one: MqttSettings = parse_settings("live", GROUP, Path("."))
    assert one.workers == 1 and worker_settings(one, 0) == one  # one worker: unchanged
    with pytest.raises(ConfigError, match="workers must be a whole number from 1 to 32"):
        parse_settings("live", {**GROUP, "workers": 0}, Path("."))


def _runs_by_worker(lake: Path) -> dict[str, int]:
    rows = hub_json(lake, "sql", "SELECT regexp_extract(fingerprint, '-(w[0-9]+):', 1) AS w, "
                                 "sum(written) AS n FROM _runs GROUP BY 1 ORDER BY 1")
    return {r["w"]: int(r["n"]) for r in rows}


@needs_broker
def test_two_workers_share_the_subscription_every_message_lands_once_and_the_lock_holds(
        tmp_path: Path, broker: Broker) -> None:
    config = write_hub(tmp_path, broker)
    listener = Listener(config, "--workers", "2", subscribed=2)
    assert any("$share/hubctl-live/" in line for line in listener.lines)
    threads = [threading.Thread(target=publish, args=(broker, f"/json/k1/d{d}/attrs",
                                                      measures(0, 400), f"pub{d}"))
               for d in range(3)]
    for t in threads:
        t.start()
    for args in (["-t", "/json/k1/d9/attrs", "-m", measures(0, 1)[0]],
                 ["-t", "/json/k1/d9/attrs/p10", "-m", "42", "-V", "5"],
                 ["-t", "/json/k1/d9/attrs", "-m", "{oops"]):
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", *args], check=True,
                       timeout=10)
    for t in threads:
        t.join()
    second = subprocess.run([HUBCTL, "--config", str(config), "listen", "live", "--workers",
                             "2"], capture_output=True, text=True, timeout=30)
    assert second.returncode == 75 and "locked" in second.stderr
    lake = tmp_path / "lake"
    assert wait_count(lake, 1202) == 1202
    totals = listener.terminate()
    assert (totals["workers"], totals["messages"], totals["read"]) == (2, 1203, 1203)
    assert ledger(lake) == {"read": 1203, "written": 1202, "duplicate": 0, "rejected": 1,
                            "updated": 0}
    by_worker = _runs_by_worker(lake)
    assert set(by_worker) == {"w0", "w1"} and all(n > 0 for n in by_worker.values())
    # the repeat of a committed message is a duplicate whichever worker gets it
    listener = Listener(config, "--workers", "2", subscribed=2)
    publish(broker, "/json/k1/d0/attrs", measures(0, 50), "pub-again")
    deadline = time.monotonic() + 20
    while ledger(lake)["duplicate"] < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    again = listener.terminate()
    assert again["messages"] == 50, listener.lines
    assert lake_count(lake) == 1202 and ledger(lake)["duplicate"] == 50


@needs_broker
def test_kill_9_of_one_worker_mid_stream_it_is_restarted_and_nothing_is_lost_or_doubled(
        tmp_path: Path, broker: Broker) -> None:
    config = write_hub(tmp_path, broker, batch_time=0.1)
    lake = tmp_path / "lake"
    listener = Listener(config, "--workers", "2", subscribed=2)
    pids = {int(w): int(p) for w, p in
            re.findall(r"worker (\d+) started \(pid (\d+)\)", "".join(listener.lines))}
    assert set(pids) == {0, 1}
    total = 3000
    publisher = threading.Thread(target=publish, args=(broker, "/json/k1/d1/attrs",
                                                       measures(0, total)))
    publisher.start()
    first_commit = wait_first_commit(lake)
    os.kill(pids[1], signal.SIGKILL)  # mid-stream: held and unacknowledged messages with it
    publisher.join()
    assert first_commit
    listener.wait_for("worker 1 was killed by signal 9")
    listener.wait_for("worker 1 restarted")
    listener.wait_for("subscribed", count=3)
    assert wait_count(lake, total) == total
    totals = listener.terminate()
    assert totals["restarts"] == 1
    assert lake_count(lake) == total
    rows = hub_json(lake, "sql", "SELECT count(DISTINCT observed_at) AS n FROM AirQualityObserved")
    assert rows[0] == {"n": total}
    counts = ledger(lake)
    assert counts["written"] == total and counts["rejected"] == 0
    assert counts["read"] == counts["written"] + counts["duplicate"]  # redeliveries: duplicates
    assert _runs_by_worker(lake).keys() == {"w0", "w1"}


@needs_broker
def test_onem2m_responses_reach_the_originator_from_whichever_worker_committed(
        tmp_path: Path, broker: Broker) -> None:
    config = write_hub(tmp_path, broker, protocol="onem2m")
    listener = Listener(config, "--workers", "2", subscribed=2)
    responses: dict[str, int] = {}
    done = threading.Event()
    count = 40

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        rsp = json.loads(msg.payload)
        responses[rsp["rqi"]] = rsp["rsc"]
        if len(responses) == count:
            done.set()

    peer = paho_client(broker, "SAE-air01")
    peer.on_message = on_message
    peer.subscribe("/oneM2M/resp/SAE-air01/+/json", qos=1)
    time.sleep(0.3)
    for i in range(count):
        body = {"op": 1, "to": "Mobius/daegu/air01/data", "fr": "SAE-air01", "rqi": f"c{i}",
                "ty": 4, "pc": {"m2m:cin": {"con": {"PM10": i}, "ct": f"20240501T09{i:02d}00"}}}
        peer.publish("/oneM2M/req/SAE-air01/hubctl/json", json.dumps(body), qos=1)
    assert done.wait(20), responses
    peer.disconnect()
    peer.loop_stop()
    assert responses == {f"c{i}": 2001 for i in range(count)}
    totals = listener.terminate()
    assert totals["responses"] == count and lake_count(tmp_path / "lake") == count


def test_worker_sessions_of_an_earlier_larger_count_are_named(tmp_path: Path) -> None:
    from hubctl.ingest import ingest_batches
    from hubctl.lake import Lake
    from hubctl.mqtt.workers import retired_sessions

    lake = Lake(tmp_path / "lake")
    s = parse_settings("live", {**GROUP, "client_id": "hub"}, Path("."))
    assert retired_sessions(lake, replace(s, workers=2)) == []  # no ledger yet
    for fingerprint in ("mqtt:hub-w0:ab12cd34:1", "mqtt:hub-w2:ab12cd34:7", "mqtt:hub:ab:1",
                        "mqtt:other-w5:ab12cd34:1"):
        ingest_batches(lake, "live", "mqtt-iotagent-json", [], fingerprint=fingerprint)
    assert retired_sessions(lake, replace(s, workers=2)) == ["hub-w2"]
    assert retired_sessions(lake, replace(s, workers=3)) == []
    assert retired_sessions(lake, s) == ["hub-w0", "hub-w2"]  # one worker: the plain id
