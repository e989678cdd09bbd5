"""``hubctl listen``: MQTT sources into the lake, micro-batch by micro-batch, nothing lost.

Per source, one paho-mqtt 2.x client (QoS 1 subscriptions, a persistent session, manual
acknowledgement) whose network thread only queues messages. The main thread cuts a micro-batch
when ``batch_size`` messages are waiting or the oldest has waited ``batch_time`` seconds,
parses it (:mod:`~hubctl.mqtt.onem2m`, :mod:`~hubctl.mqtt.iotagent`), commits it through the
ingest engine (gate, lake upsert, rejects, one ledger row per micro-batch), then answers oneM2M
requests, then acknowledges the messages. A crash at any point leaves the unacknowledged
messages with the broker, which sends them again; the lake key (id, observed_at) turns the
second copy into a counted duplicate.
"""

from __future__ import annotations

import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hubctl.lake import Lake
from hubctl.locks import hold
from hubctl.mqtt import iotagent, onem2m
from hubctl.mqtt.observe import Message, Observation, to_batches
from hubctl.mqtt.recover import recover_orphans
from hubctl.mqtt.settings import MqttSettings
from hubctl.rejects import Reject

__all__ = ["SourceListener", "Totals", "listen", "recover_cut_off", "stderr_log"]

RECONNECT_MIN, RECONNECT_MAX = 1, 30  # seconds of backoff between reconnect attempts


@dataclass
class Totals:
    """What one source did during a listen session."""

    source: str
    messages: int = 0
    batches: int = 0
    read: int = 0
    written: int = 0
    updated: int = 0
    duplicate: int = 0
    rejected: int = 0
    responses: int = 0
    connects: int = 0
    workers: int = 1
    restarts: int = 0  # worker processes restarted after they died (``--workers``)
    runs: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals (the last ledger runs only, not all of them)."""
        out = {k: v for k, v in self.__dict__.items() if k != "runs"}
        out["last_run_id"] = self.runs[-1] if self.runs else None
        return out


class SourceListener:
    """One MQTT source: its client, its queue of received messages, its micro-batches."""

    def __init__(self, lake: Lake, settings: MqttSettings, log: Callable[[str], None],
                 wake: threading.Event,
                 commit_lock: AbstractContextManager[Any] | None = None) -> None:
        self.lake, self.s, self.log, self.wake = lake, settings, log, wake
        # several worker processes of one source commit one at a time (hubctl.mqtt.workers)
        self.commit_lock = commit_lock if commit_lock is not None else nullcontext()
        self.totals = Totals(settings.source)
        self.session = secrets.token_hex(4)
        self.pending: list[Message] = []
        self.lock = threading.Lock()
        self.generation = 0  # connection number: an ack is only valid on its own connection
        self.gens: dict[int, int] = {}  # message seq -> generation it arrived on
        self.closing = False
        self.seq = 0
        self._last_size, self._repeats, self._warned = 0, 0, False
        self.client = self._client()

    # ------------------------------------------------------------------ connection
    def _client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        v5 = self.s.version == "5"
        kwargs: dict[str, Any] = {"protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311}
        if not v5:
            kwargs["clean_session"] = False
        client = _client_class()(CallbackAPIVersion.VERSION2, client_id=self.s.client_id,
                                 manual_ack=True, reconnect_on_failure=True, **kwargs)
        if self.s.username is not None:
            client.username_pw_set(self.s.username, self.s.password)
        if self.s.tls is not None:
            tls = self.s.tls
            client.tls_set(ca_certs=tls.get("ca"), certfile=tls.get("cert"),
                           keyfile=tls.get("key"))
            if tls.get("insecure"):
                client.tls_insecure_set(True)
        client.reconnect_delay_set(RECONNECT_MIN, RECONNECT_MAX)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message  # QoS 2 and anything the fast path leaves
        client.hub_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        client.on_socket_open = _no_delay
        return client

    def start(self) -> None:
        """Connect in the background (retrying with backoff until the broker answers)."""
        properties = None
        if self.s.version == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.s.session_expiry
            # two batches in flight: the next one arrives while this one commits
            properties.ReceiveMaximum = min(65535, 2 * self.s.batch_size)
            self.client.connect_async(self.s.host, self.s.port, self.s.keepalive,
                                      clean_start=False, properties=properties)
        else:
            self.client.connect_async(self.s.host, self.s.port, self.s.keepalive)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.log(f"{self.s.source}: broker {self.s.host}:{self.s.port} refused the "
                     f"connection: {reason}")
            return
        with self.lock:
            self.generation += 1
        self.totals.connects += 1
        present = getattr(flags, "session_present", False)
        self.log(f"{self.s.source}: connected to {self.s.host}:{self.s.port} as "
                 f"{self.s.client_id} (MQTT {self.s.version}, session "
                 f"{'resumed' if present else 'new'})")
        client.subscribe([(t, 1) for t in self.s.topics])

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.log(f"{self.s.source}: cannot reach the broker at {self.s.host}:{self.s.port}; "
                 f"retrying with backoff ({RECONNECT_MIN} s doubling to {RECONNECT_MAX} s)")

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        failed = [t for t, r in zip(self.s.topics, reasons, strict=False) if r.is_failure]
        if failed:
            self.log(f"{self.s.source}: the broker refused the subscription to "
                     f"{', '.join(failed)}")
        else:
            self.log(f"{self.s.source}: subscribed to {', '.join(self.s.topics)} (QoS 1)")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if not self.closing:
            self.log(f"{self.s.source}: disconnected ({reason}); reconnecting with backoff")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._on_publish(msg.topic, msg.payload, msg.mid, msg.qos)

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """A PUBLISH received (network thread): queue it for the next micro-batch."""
        if self.closing:  # not stored, not acknowledged: the broker sends it again next time
            return
        with self.lock:
            self.seq += 1
            self.pending.append(Message(self.seq, topic, payload, datetime.now(UTC), mid, qos))
            self.gens[self.seq] = self.generation
            full = len(self.pending) >= self.s.batch_size
        if full:
            self.wake.set()

    # ------------------------------------------------------------------ batches
    def due_in(self, now: float) -> float | None:
        """Seconds until the pending batch is due (0: now), or None if nothing is waiting."""
        with self.lock:
            if not self.pending:
                return None
            if len(self.pending) >= self.s.batch_size:
                return 0.0
            first = self.pending[0].arrival.timestamp()
        return max(0.0, first + self.s.batch_time - now)

    def commit(self) -> None:
        """Commit the pending micro-batch, answer it, then acknowledge it."""
        with self.lock:
            batch, self.pending = self.pending[:self.s.batch_size], \
                self.pending[self.s.batch_size:]
            gens = {m.seq: self.gens.pop(m.seq, -1) for m in batch}
            generation = self.generation
        if not batch:
            return
        self._check_window(len(batch))
        requests, observations, rejects = self._parse(batch)
        from hubctl.ingest import ingest_batches

        self.totals.batches += 1
        batches = to_batches(observations, rejects, f"mqtt://{self.s.host}:{self.s.port}")
        with self.commit_lock:
            run, all_rejects = ingest_batches(
                self.lake, self.s.source, f"mqtt-{self.s.protocol}", batches,
                fingerprint=f"mqtt:{self.s.client_id}:{self.session}:{self.totals.batches}",
                inputs=[f"mqtt://{self.s.host}:{self.s.port}/{t}" for t in self.s.topics],
                options={"session": self.session, "batch": self.totals.batches,
                         "messages": len(batch)})
        self.totals.messages += len(batch)
        for key in ("read", "written", "updated", "duplicate", "rejected"):
            setattr(self.totals, key, getattr(self.totals, key) + getattr(run, key))
        self.totals.runs.append(run.run_id)
        if requests:
            self._answer(requests, all_rejects)
        _ack(self.client, [m.mid for m in batch if m.qos == 1 and gens[m.seq] == generation])

    def _check_window(self, size: int) -> None:
        """Warn once when MQTT 3.1.1 batches keep holding exactly 20 messages: Mosquitto's
        default in-flight window (max_inflight_messages 20) then caps every batch."""
        same = (size == self._last_size == 20 < self.s.batch_size and self.s.version == "3.1.1"
                and not self.closing)
        self._repeats = self._repeats + 1 if same else 0
        self._last_size = size
        if self._repeats == 3 and not self._warned:
            self._warned = True
            self.log(f"{self.s.source}: every batch holds {size} messages; if more are "
                     f"waiting, the broker allows only {size} unacknowledged messages (Mosquitto's "
                     "default max_inflight_messages): set it to 0 or use version = \"5\" "
                     "(docs/live.md)")

    def _parse(self, batch: list[Message]) -> tuple[list[onem2m.Request], list[Observation],
                                                    list[Reject]]:
        requests: list[onem2m.Request] = []
        observations: list[Observation] = []
        rejects: list[Reject] = []
        for m in batch:
            if self.s.protocol == "onem2m":
                req = onem2m.parse(m, self.s.mappings)
                requests.append(req)
                observations += req.observations
                if req.reject is not None:
                    rejects.append(req.reject)
            else:
                parsed = iotagent.parse(m, self.s.mappings)
                if isinstance(parsed, Reject):
                    rejects.append(parsed)
                else:
                    observations += parsed
        return requests, observations, rejects

    def _answer(self, requests: list[onem2m.Request], rejects: list[Reject]) -> None:
        """One response per request, after the commit: it tells the lake's outcome."""
        by_record: dict[str, list[str]] = {}
        for r in rejects:
            by_record.setdefault(r.record, []).extend(x.message for x in r.reasons)
        for req in requests:
            topic = onem2m.response_topic(req.message.topic)
            if topic is None or req.rqi is None and req.reject is None:
                continue
            reasons = by_record.get(req.message.record)
            if req.reject is not None:
                body = onem2m.response(req, req.rsc, "; ".join(reasons or []))
            elif reasons:
                body = onem2m.response(req, onem2m.BAD_REQUEST, "; ".join(reasons))
            else:
                body = onem2m.response(req, req.rsc)
            self.client.publish(topic, body, qos=self.s.response_qos)
            self.totals.responses += 1

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is held, disconnect."""
        self.closing = True
        while self.due_in(time.time()) is not None:
            self.commit()
        self.client.disconnect()
        self.client.loop_stop()


def _varint(buf: bytes, at: int, end: int) -> tuple[int, int, int]:
    """The MQTT variable byte integer at ``buf[at:end]``: ``(value, position after it, bits
    read)``, the position -1 when it runs past ``end``."""
    value, shift = 0, 0
    while at < end:
        byte = buf[at]
        value |= (byte & 0x7F) << shift
        shift += 7
        at += 1
        if byte < 0x80:
            return value, at, shift
    return value, -1, shift


def _in_packet(command: int, length: int, body: bytes) -> Any:
    """paho's incoming-packet state for a whole packet read (``command`` 0: none)."""
    return {"command": command, "have_remaining": 1 if command else 0, "remaining_count": [],
            "remaining_mult": 1, "remaining_length": length, "packet": bytearray(body),
            "to_process": 0, "pos": 0}


def _client_class() -> Any:
    """paho's Client with a bulk reader for incoming packets.

    paho reads a packet with three ``recv`` calls (type, length, body) through a state dict,
    builds an ``MQTTMessage`` and matches topic callbacks: about 50 us of Python per message,
    the largest cost of a listener at thousands of messages per second. This ``loop_read``
    reads whatever the socket holds (up to 256 KiB) in one call, cuts it into packets itself,
    hands each QoS 0/1 PUBLISH straight to ``hub_publish(topic, payload, mid, qos)`` and every
    other packet (CONNACK, SUBACK, PUBACK of our responses, PINGRESP, QoS 2, ...) to paho's own
    handler, so the protocol's state machine is still paho's. An incomplete packet at the end
    of a read waits for the next read.
    """
    import paho.mqtt.client as mqtt

    ok, lost = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST

    class Client(mqtt.Client):  # type: ignore[misc]
        hub_publish: Callable[[str, bytes, int, int], None] | None = None
        _hub_sock: Any = None
        _hub_rest = b""

        def loop_read(self, max_packets: int = 1) -> Any:
            if (self.hub_publish is None or not hasattr(self, "_packet_handle")
                    or self._in_packet.get("command")):  # paho is inside a packet: let it end
                return super().loop_read(max_packets)
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._hub_sock is not self._sock:  # a new connection: nothing carried over
                self._hub_sock, self._hub_rest = self._sock, b""
            try:
                data = self._sock_recv(262144)
            except BlockingIOError:
                return ok
            except (OSError, ConnectionError):
                return self._loop_rc_handle(lost)
            if not data:
                return self._loop_rc_handle(lost)
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            buf = self._hub_rest + data if self._hub_rest else data
            pos, end, v5, sink = 0, len(buf), self._protocol == mqtt.MQTTv5, self.hub_publish
            while pos + 2 <= end:
                header = buf[pos]
                length, i, shift = _varint(buf, pos + 1, end)  # remaining length: 1 to 4 bytes
                if i < 0:
                    break
                if shift > 28:
                    return self._loop_rc_handle(mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL)
                if i + length > end:
                    break
                body = buf[i:i + length]
                pos = i + length
                qos = (header >> 1) & 3
                if header >> 4 == 3 and qos < 2 and length >= 2:  # PUBLISH, QoS 0 or 1
                    n = int.from_bytes(body[:2], "big")
                    topic = body[2:2 + n].decode("utf-8", "replace")
                    at = 2 + n
                    mid = 0
                    if qos:
                        mid = int.from_bytes(body[at:at + 2], "big")
                        at += 2
                    if v5:  # skip the properties (a topic alias is never granted: we ask none)
                        plen, after, _ = _varint(body, at, length)
                        at = (after if after >= 0 else length) + plen
                    sink(topic, body[at:], mid, qos)
                    continue
                self._in_packet = _in_packet(header, length, body)
                try:
                    rc = self._packet_handle()
                except mqtt.MalformedPacket:
                    rc = mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL
                finally:
                    self._in_packet = _in_packet(0, 0, b"")
                if rc:
                    return self._loop_rc_handle(rc)
            self._hub_rest = buf[pos:]
            return ok

    return Client


def _ack(client: Any, mids: list[int]) -> None:
    """PUBACK each message id, in the order received. paho's ``ack()`` queues and wakes its
    network thread once per message; with thousands per micro-batch we queue the PUBACK
    packets as one write through the same queue (falling back to ``ack()`` if that ever
    changes)."""
    queue = getattr(client, "_packet_queue", None)
    if queue is None:
        for mid in mids:
            client.ack(mid, 1)
        return
    if mids:
        queue(0x40, b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids), 0, 0)


def _no_delay(client: Any, userdata: Any, sock: Any) -> None:
    """Small packets (acknowledgements) leave at once instead of waiting for Nagle."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listen(lake: Lake, sources: list[MqttSettings], log: Callable[[str], None],
           should_stop: Callable[[], bool] | None = None, *,
           locks: list[str] | None = None,
           commit_lock: AbstractContextManager[Any] | None = None,
           recover: bool = True) -> list[Totals]:
    """Listen to the sources until SIGTERM or SIGINT (or ``should_stop()``), then commit what
    is held and return each source's totals. Holds every source's lock meanwhile (exit 75 if
    another process has one).

    A worker process of ``hubctl listen --workers N`` (:mod:`hubctl.mqtt.workers`) passes its
    own lock names, the lock that serialises its source's commits (held around each commit and
    around the recovery of cut-off runs), and ``recover=False`` on its first start (the parent
    recovered before starting the workers).
    """
    lake.root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    wake = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        wake.set()

    with ExitStack() as stack:
        for name in locks if locks is not None else [f"source:{s.source}" for s in sources]:
            stack.enter_context(hold(lake.root, name))
        if threading.current_thread() is threading.main_thread():  # else: should_stop
            previous = {sig: signal.signal(sig, on_signal)
                        for sig in (signal.SIGTERM, signal.SIGINT)}
            stack.callback(lambda: [signal.signal(k, v) for k, v in previous.items()])
        if recover:
            with commit_lock if commit_lock is not None else nullcontext():
                recover_cut_off(lake, sources, log)
        listeners = [SourceListener(lake, s, log, wake, commit_lock) for s in sources]
        for li in listeners:
            li.start()
        try:
            while not stop.is_set() and not (should_stop and should_stop()):
                now = time.time()
                waits = [w for li in listeners if (w := li.due_in(now)) is not None]
                for li in listeners:
                    if li.due_in(now) == 0.0:
                        li.commit()
                if not any(w == 0.0 for w in waits):
                    wake.wait(min(waits + [0.2]))
                    wake.clear()
        except BaseException:
            for li in listeners:  # nothing more is acknowledged: the broker keeps it all
                li.closing = True
                li.client.disconnect()
                li.client.loop_stop()
            raise
        for li in listeners:
            li.stop()
        return [li.totals for li in listeners]


def recover_cut_off(lake: Lake, sources: list[MqttSettings], log: Callable[[str], None]) -> None:
    """Write the ``recovered`` ledger rows of micro-batches cut off before their ledger row (the
    caller holds the source's lock, and its commit lock if it has workers)."""
    for s in sources:
        types = {m.entity_type.name for m in s.mappings.values()}
        for run in recover_orphans(lake, s.source, f"mqtt-{s.protocol}", types):
            log(f"{s.source}: run {run.run_id} was cut off before its ledger row; recorded "
                f"it as recovered ({run.written} rows, {run.rejected} rejected)")


def stderr_log(text: str) -> None:
    """A status line on stderr, with the UTC time."""
    sys.stderr.write(f"{datetime.now(UTC).strftime('%H:%M:%S')} {text}\n")
    sys.stderr.flush()
