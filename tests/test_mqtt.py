"""``hubctl listen`` against a real Mosquitto broker that each test starts on a free loopback
port: paho and ``mosquitto_pub`` publishers, a oneM2M peer that reads its responses, ``kill -9``
of the listener mid-stream, a broker restart, and SIGTERM."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import hub_json

pytestmark = pytest.mark.subprocess

HUBCTL = str(Path(sys.executable).parent / "hubctl")
MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
    None)
needs_broker = pytest.mark.skipif(
    MOSQUITTO is None or shutil.which("mosquitto_pub") is None,
    reason="the mosquitto broker and mosquitto-clients are not installed (Debian packages "
           "mosquitto, mosquitto-clients; `make test` runs scripts/ensure-mosquitto to add them)")


class Broker:
    """A mosquitto process with persistence in a temporary folder."""

    def __init__(self, folder: Path, security: str = "allow_anonymous true\n") -> None:
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{security}persistence true\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to its own user
            f"persistence_location {folder}/\nautosave_interval 1\n"
            "max_inflight_messages 0\nmax_queued_messages 100000\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # saves its persistence database
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder)
    b.start()
    yield b
    b.stop()


def write_hub(tmp: Path, broker: Broker, protocol: str = "iotagent-json",
              version: str = "3.1.1", batch_time: float = 0.2) -> Path:
    mapping = ('[sources.live.mqtt.groups.k1]\ntype = "AirQualityObserved"\n'
               'attributes = { p10 = "pm10" }\nstatic = { location = [128.6, 35.87] }\n'
               if protocol == "iotagent-json" else
               '[sources.live.mqtt.containers."Mobius/daegu/air01/data"]\n'
               'type = "AirQualityObserved"\nid = "air01"\nattributes = { PM10 = "pm10" }\n'
               'static = { location = [128.6, 35.87] }\n')
    path = tmp / "hub.toml"
    path.write_text(
        f'[lake]\npath = "lake"\n[sources.live.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'protocol = "{protocol}"\nversion = "{version}"\nbatch_size = 500\n'
        f'batch_time = {batch_time}\nclient_id = "hub-{protocol}-{version}"\n' + mapping)
    return path


class Listener:
    """``hubctl listen live`` as a child process; waits until it has subscribed."""

    def __init__(self, config: Path, *extra: str, subscribed: int = 1) -> None:
        self.config = config
        self.lines: list[str] = []
        self.proc = subprocess.Popen([HUBCTL, "--config", str(config), "listen", "live",
                                      "--json", *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:  # a loaded machine (load 20 on 2 cores) takes more than 20 s to start two workers
            self.wait_for("subscribed", subscribed, timeout=60)
        except AssertionError:  # stop it, or the listener and its workers outlive the test
            self.proc.terminate()  # SIGTERM first: the workers stop with it
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
            raise

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, words: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while sum(words in line for line in self.lines) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"listener never said {words!r}: {''.join(self.lines)}")
            time.sleep(0.05)

    def terminate(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, "".join(self.lines)
        return json.loads(out)[0]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class InProcess:
    """The same listener in a thread of the test process (no interpreter start-up): for the
    tests that need no real signal or kill."""

    def __init__(self, config: Path, wait: str = "subscribed") -> None:
        from hubctl.config import load_config
        from hubctl.lake import Lake
        from hubctl.mqtt.client import listen
        from hubctl.mqtt.settings import parse_settings

        cfg = load_config(config)
        src = cfg.sources["live"]
        settings = [parse_settings("live", src.mqtt, src.base)]
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.totals: list[Any] = []

        def run() -> None:
            self.totals = listen(Lake(cfg.lake), settings, self.lines.append, self.stop.is_set)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.wait_for(wait)

    def wait_for(self, words: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while sum(words in line for line in self.lines) < count:
            assert time.monotonic() < deadline and self.thread.is_alive(), self.lines
            time.sleep(0.05)

    def terminate(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join(30)
        return dict(self.totals[0].summary())


def paho_client(broker: Broker, client_id: str) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish(broker: Broker, topic: str, payloads: list[str], client_id: str = "pub") -> None:
    client = paho_client(broker, client_id)
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def measures(start: int, count: int, device: str = "d1") -> list[str]:
    """IoT-Agent JSON measures, one per second of 2024-05-01 from ``start``."""
    return [json.dumps({"p10": i % 97, "TimeInstant": f"2024-05-01T{i // 3600:02d}:"
                        f"{i // 60 % 60:02d}:{i % 60:02d}Z", "n": i}) for i in
            range(start, start + count)]


def lake_count(lake: Path, where: str = "true") -> int:
    rows = hub_json(lake, "sql", f"SELECT count(*) AS n FROM AirQualityObserved WHERE {where}")
    return int(rows[0]["n"])


def ledger(lake: Path) -> dict[str, int]:
    rows = hub_json(lake, "sql", "SELECT sum(read) AS read, sum(written) AS written, "
                                 "sum(duplicate) AS duplicate, sum(rejected) AS rejected, "
                                 "sum(updated) AS updated FROM _runs")
    return {k: int(v or 0) for k, v in rows[0].items()}


def wait_first_commit(lake: Path, timeout: float = 30) -> bool:
    """Wait until the first batch is committed (its ledger row is complete: version 0 creates
    ``_runs``, 1 is the batch's ``running`` row, 2 completes it); True when it is."""
    first_ledger_row = lake / "_runs" / "_delta_log" / f"{2:020d}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not first_ledger_row.exists():
        time.sleep(0.02)
    return first_ledger_row.exists()


def wait_count(lake: Path, n: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        if (lake / "AirQualityObserved").exists():
            found = lake_count(lake)
            if found >= n:
                return found
        time.sleep(0.2)
    return found


@needs_broker
def test_paho_and_mosquitto_pub_messages_land_once_and_rejects_keep_topic_and_payload(
        tmp_path: Path, broker: Broker) -> None:
    listener = InProcess(write_hub(tmp_path, broker))
    publish(broker, "/json/k1/d1/attrs", measures(0, 300))
    for args in (["-t", "/json/k1/d2/attrs", "-m", measures(0, 1)[0]],
                 ["-t", "/json/k1/d2/attrs/p10", "-m", "42", "-V", "5"],
                 ["-t", "/json/unknown/d2/attrs", "-m", "{}"],
                 ["-t", "/json/k1/d2/attrs", "-m", "{oops"]):
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", *args], check=True,
                       timeout=10)
    publish(broker, "/json/k1/d1/attrs", measures(250, 100), "pub-again")  # 50 repeats
    lake = tmp_path / "lake"
    assert wait_count(lake, 352) == 352
    totals = listener.terminate()
    assert totals["messages"] == 404 and totals["read"] == 404
    assert ledger(lake) == {"read": 404, "written": 352, "duplicate": 50, "rejected": 2,
                            "updated": 0}
    rejects = hub_json(lake, "sql", "SELECT record, raw, codes FROM _rejects ORDER BY raw")
    assert [(r["raw"], r["codes"]) for r in rejects] == [
        ("{oops", "unmapped-message"), ("{}", "unmapped-message")]
    assert rejects[1]["record"].startswith("/json/unknown/d2/attrs #")


@needs_broker
def test_onem2m_peer_gets_responses_with_its_rqi_after_the_commit(
        tmp_path: Path, broker: Broker) -> None:
    listener = InProcess(write_hub(tmp_path, broker, protocol="onem2m"))
    responses: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        body = json.loads(msg.payload)
        rsp = body.get("m2m:rsp", body)
        responses[rsp["rqi"]] = {"topic": msg.topic, "wrapped": "m2m:rsp" in body, **rsp}
        if len(responses) == 6:
            done.set()

    peer = paho_client(broker, "SAE-air01")  # the AE (and a CSE sending notifications)
    peer.on_message = on_message
    peer.subscribe("/oneM2M/resp/+/hubctl/json", qos=1)
    time.sleep(0.3)
    cin = {"con": json.dumps({"PM10": 30}), "lbl": ["pm"]}
    requests = [
        ("SAE-air01", {"m2m:rqp": {"op": 1, "to": "/Mobius/daegu/air01/data", "fr": "SAE-air01",
                                   "rqi": "c1", "ty": 4, "ot": "20240501T090000",
                                   "pc": {"m2m:cin": cin}}}),
        ("SAE-air01", {"op": 1, "to": "Mobius/daegu/air01/data", "fr": "SAE-air01", "rqi": "c2",
                       "ty": 4, "pc": {"m2m:cin": {"con": {"PM10": 31},
                                                   "ct": "20240501T100000"}}}),
        ("Mobius", {"op": 5, "to": "hubctl", "fr": "/Mobius", "rqi": "n1", "pc": {"m2m:sgn": {
            "sur": "Mobius/daegu/air01/data/sub", "nev": {"net": 3, "rep": {"m2m:cin": {
                "con": {"PM10": 32}, "ct": "20240501T110000"}}}}}}),
        ("SAE-air01", {"op": 1, "to": "Mobius/daegu/air01/data", "fr": "SAE-air01", "rqi": "c3",
                       "ty": 4, "pc": {"m2m:cin": {"con": {"PM10": -1},
                                                   "ct": "20240501T120000"}}}),
        ("SAE-air01", {"op": 1, "to": "Mobius/nowhere", "fr": "SAE-air01", "rqi": "c4", "ty": 4,
                       "pc": {"m2m:cin": {"con": "1"}}}),
        ("SAE-air01", {"op": 2, "to": "Mobius/daegu/air01/data", "fr": "SAE-air01",
                       "rqi": "r1"}),
    ]
    for originator, body in requests:
        peer.publish(f"/oneM2M/req/{originator}/hubctl/json", json.dumps(body), qos=1)
    assert done.wait(20), responses
    peer.disconnect()
    peer.loop_stop()
    lake = tmp_path / "lake"
    assert responses["c1"]["rsc"] == 2001 and responses["c1"]["wrapped"]
    assert responses["c1"]["topic"] == "/oneM2M/resp/SAE-air01/hubctl/json"
    assert responses["c2"]["rsc"] == 2001 and not responses["c2"]["wrapped"]
    assert responses["n1"]["rsc"] == 2000 and responses["n1"]["topic"].startswith(
        "/oneM2M/resp/Mobius/")
    assert responses["c3"]["rsc"] == 4000 and "below the minimum" in responses["c3"]["pc"][
        "m2m:dbg"]
    assert responses["c4"]["rsc"] == 4004 and responses["r1"]["rsc"] == 4005  # not allowed
    # a response is sent after its commit: the data is already queryable
    rows = hub_json(lake, "sql", "SELECT pm10, observed_at FROM AirQualityObserved ORDER BY 2")
    assert [r["pm10"] for r in rows] == [30.0, 31.0, 32.0]
    assert listener.terminate()["responses"] == 6
    assert ledger(lake) == {"read": 6, "written": 3, "duplicate": 0, "rejected": 3,
                            "updated": 0}


@needs_broker
def test_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, broker: Broker) -> None:
    config = write_hub(tmp_path, broker, batch_time=0.1)
    lake = tmp_path / "lake"
    listener = Listener(config)
    total = 2000
    publisher = threading.Thread(target=publish, args=(broker, "/json/k1/d1/attrs",
                                                       measures(0, total)))
    publisher.start()
    first_commit = wait_first_commit(lake)
    listener.kill()  # mid-stream: some batches committed, some held, some not yet received
    publisher.join()
    assert first_commit
    assert lake_count(lake) < total
    listener = Listener(config)
    assert wait_count(lake, total) == total
    listener.terminate()
    assert lake_count(lake) == total
    rows = hub_json(lake, "sql", "SELECT count(DISTINCT observed_at) AS n, "
                                 "count(*) FILTER (WHERE pm10 IS NULL) AS missing "
                                 "FROM AirQualityObserved")
    assert rows[0] == {"n": total, "missing": 0}
    counts = ledger(lake)
    assert counts["written"] == total and counts["rejected"] == 0
    assert counts["read"] == counts["written"] + counts["duplicate"]  # redeliveries: duplicates


@needs_broker
def test_broker_restart_is_survived_and_keeps_the_queued_session_with_mqtt_5(
        tmp_path: Path, broker: Broker) -> None:
    listener = InProcess(write_hub(tmp_path, broker, version="5"))
    lake = tmp_path / "lake"
    publish(broker, "/json/k1/d1/attrs", measures(0, 100))
    assert wait_count(lake, 100) == 100
    broker.stop()
    time.sleep(0.5)
    broker.start()
    listener.wait_for("subscribed", count=2, timeout=40)
    publish(broker, "/json/k1/d1/attrs", measures(100, 100), "pub-after")
    assert wait_count(lake, 200) == 200
    assert listener.terminate()["connects"] == 2
    # the listener is away: the broker queues for its session, persists, restarts, delivers
    publish(broker, "/json/k1/d1/attrs", measures(200, 100), "pub-offline")
    broker.stop()
    broker.start()
    listener = InProcess(write_hub(tmp_path, broker, version="5"))
    assert wait_count(lake, 300) == 300
    assert any("session resumed" in line for line in listener.lines)
    assert listener.terminate()["written"] == 100


@needs_broker
def test_sigterm_commits_what_is_held_then_exits_0_and_a_second_listener_exits_75(
        tmp_path: Path, broker: Broker) -> None:
    config = write_hub(tmp_path, broker, batch_time=600)
    listener = Listener(config)
    publish(broker, "/json/k1/d1/attrs", measures(0, 50))
    second = subprocess.run([HUBCTL, "--config", str(config), "listen", "live"],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode == 75 and "locked" in second.stderr
    assert not (tmp_path / "lake" / "AirQualityObserved").exists()  # held, not yet due
    totals = listener.terminate()
    assert totals["written"] == 50 and lake_count(tmp_path / "lake") == 50


def _tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl, EC keys: fast)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    files = {k: folder / f"{k}.pem" for k in ("ca", "ca_key", "server", "server_key", "csr")}
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", str(files["ca_key"]), "-out", str(files["ca"]),
        "-days", "1", "-subj", "/CN=hubctl-test-ca")
    run("req", *ec, "-keyout", str(files["server_key"]), "-out", str(files["csr"]),
        "-subj", "/CN=localhost")
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(files["csr"]), "-CA", str(files["ca"]), "-CAkey",
        str(files["ca_key"]), "-CAcreateserial", "-out", str(files["server"]), "-days", "1",
        "-extfile", str(ext))
    return files


@needs_broker
@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
                    reason="openssl and mosquitto_passwd are needed for the TLS broker")
def test_tls_and_password_from_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "secure"
    folder.mkdir()
    tls = _tls_files(folder)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(folder / "passwd"), "hub", "s3cret"],
                   check=True, capture_output=True)
    broker = Broker(folder, f"allow_anonymous false\npassword_file {folder / 'passwd'}\n"
                            f"cafile {tls['ca']}\ncertfile {tls['server']}\n"
                            f"keyfile {tls['server_key']}\n")
    broker.start()
    try:
        config = write_hub(tmp_path, broker)
        config.write_text(config.read_text().replace(
            'client_id = "hub-iotagent-json-3.1.1"\n',
            f'client_id = "hub-tls"\nusername = "hub"\npassword_env = "HUB_MQTT_PW"\n'
            f'tls = {{ ca = "{tls["ca"]}" }}\n'))
        monkeypatch.setenv("HUB_MQTT_PW", "s3cret")
        listener = InProcess(config)
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-pub")
        pub.tls_set(ca_certs=str(tls["ca"]))
        pub.username_pw_set("hub", "s3cret")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for info in [pub.publish("/json/k1/d1/attrs", p, qos=1) for p in measures(0, 20)]:
            info.wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        assert wait_count(tmp_path / "lake", 20) == 20
        assert listener.terminate()["written"] == 20
    finally:
        broker.stop()
