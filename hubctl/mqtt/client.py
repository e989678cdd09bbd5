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

import json
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

from hubctl.errors import ConfigError
from hubctl.lake import Lake
from hubctl.locks import hold
from hubctl.mqtt import fastread, iotagent, onem2m
from hubctl.mqtt.observe import Message, Observation, to_batches
from hubctl.mqtt.recover import previous_topics, recover_orphans
from hubctl.mqtt.settings import OLD_ONEM2M_TOPIC, MqttSettings
from hubctl.ngsild import parse_time
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
        self.connected = threading.Event()
        self.cursor: dict[str, str] = {}  # container -> newest committed cin ct (register)
        # topics an earlier configuration subscribed this client id to: a persistent session
        # keeps them, so they are unsubscribed on connect
        self.stale = sorted(previous_topics(lake, settings.source, settings.client_id)
                            - set(settings.topics))
        self._warned_cse = False  # topics of an earlier configuration, unsubscribed on connect
        problem = fastread.fast_reader_problem()
        self.fast = problem is None
        if problem:
            log(f"{settings.source}: using stock paho-mqtt ({problem}); the fast packet reader "
                "is off")
        self.client = self._client()
        self.ae: Any = None
        self.http: Any = None
        if settings.protocol == "onem2m":
            self._onem2m_setup()

    def _onem2m_setup(self) -> None:
        """The AE session (``register``), the HTTP receiver (``notify_http``) and the cursor
        of the catch-up."""
        s = self.s
        if s.register:
            from hubctl.ledger import last_cursor
            from hubctl.mqtt.ae import AeSession, Cse

            try:
                self.cursor = dict(json.loads(last_cursor(self.lake, s.source) or "{}"))
            except (ValueError, TypeError):
                self.cursor = {}
            cse = Cse(s, self._publish_request, self.connected)
            self.ae = AeSession(s, cse, self.log, self.inject, lambda: dict(self.cursor))
        if s.notify_http:
            from hubctl.mqtt.http_notify import NotifyServer

            self.http = NotifyServer(s.notify_http, self.deliver, self.log)

    # ------------------------------------------------------------------ connection
    def _client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        v5 = self.s.version == "5"
        kwargs: dict[str, Any] = {"protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311}
        if not v5:
            kwargs["clean_session"] = False
        cls: Any = fastread.client_class() if self.fast else mqtt.Client
        client = cls(CallbackAPIVersion.VERSION2, client_id=self.s.client_id,
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
        if self.fast:
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
        if self.http is not None:
            self.http.start()
        if self.ae is not None:
            self.ae.start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.log(f"{self.s.source}: broker {self.s.host}:{self.s.port} refused the "
                     f"connection: {reason}")
            return
        with self.lock:
            self.generation += 1
        self.totals.connects += 1
        self.connected.set()
        present = getattr(flags, "session_present", False)
        self.log(f"{self.s.source}: connected to {self.s.host}:{self.s.port} as "
                 f"{self.s.client_id} (MQTT {self.s.version}, session "
                 f"{'resumed' if present else 'new'})")
        if self.s.protocol == "onem2m" and OLD_ONEM2M_TOPIC not in self.s.topics:
            client.unsubscribe(OLD_ONEM2M_TOPIC)  # the old default, whether it ever committed
        if self.stale:  # an earlier configuration's topics stay in a persistent session
            client.unsubscribe(self.stale)
            self.log(f"{self.s.source}: unsubscribed from {', '.join(self.stale)} (no longer "
                     "configured)")
        client.subscribe([(t, 1) for t in self.s.topics])
        if self.ae is not None and self.totals.connects > 1:
            self.ae.wake.set()  # catch up on what was published while we were away

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
        self.connected.clear()
        if not self.closing:
            self.log(f"{self.s.source}: disconnected ({reason}); reconnecting with backoff")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._on_publish(msg.topic, msg.payload, msg.mid, msg.qos)

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """A PUBLISH received (network thread): queue it for the next micro-batch."""
        if self.closing:  # not stored, not acknowledged: the broker sends it again next time
            return
        response = topic.startswith(("/oneM2M/resp/", "/oneM2M/reg_resp/"))
        if response or self._for_cse(topic):
            if response and self.ae is not None:
                self.ae.cse.on_response(payload)  # an answer to the hub's own request
            if qos == 1:
                self.client.ack(mid, qos)
            return
        self._queue([(topic, payload, mid, qos, None)])

    def _for_cse(self, topic: str) -> bool:
        """A request addressed to the CSE (a topic such as ``/oneM2M/req/+/+/json`` catches
        them): the CSE answers it, never the hub, which neither stores nor answers it."""
        parts = topic.split("/")
        if not self.s.cse_id or len(parts) < 5 or parts[-4] != "req" or \
                parts[-2] != self.s.cse_id:
            return False
        if not self._warned_cse:
            self._warned_cse = True
            self.log(f"{self.s.source}: ignoring requests addressed to the CSE {self.s.cse_id} "
                     f"({topic}); narrow `topics` to the hub's own (docs/live.md)")
        return True

    def _queue(self, items: list[tuple[str, bytes, int, int, Any]]) -> None:
        """Messages for the next micro-batch: ``(topic, payload, mid, qos, reply)``."""
        now = datetime.now(UTC)
        with self.lock:
            for topic, payload, mid, qos, reply in items:
                self.seq += 1
                self.pending.append(Message(self.seq, topic, payload, now, mid, qos, reply))
                self.gens[self.seq] = self.generation
            full = len(self.pending) >= self.s.batch_size
        if full:
            self.wake.set()

    def inject(self, container: str, cins: list[dict[str, Any]]) -> None:
        """ContentInstances retrieved from the CSE (catch-up) for the next micro-batches."""
        topic = onem2m.CATCH_UP + container
        self._queue([(topic, json.dumps(c, ensure_ascii=False).encode(), 0, 0, None)
                     for c in cins])

    def deliver(self, topic: str, payload: bytes, reply: Any) -> None:
        """A notification received over HTTP; ``reply`` is answered after the commit."""
        self._queue([(topic, payload, 0, 0, reply)])

    def _publish_request(self, topic: str, payload: bytes) -> None:
        """A request of the hub's AE to its CSE over MQTT."""
        self.client.publish(topic, payload, qos=self.s.response_qos)


    # ------------------------------------------------------------------ batches
    def due_in(self, now: float) -> float | None:
        """Seconds until the pending batch is due (0: now), or None if nothing is waiting."""
        if self.ae is not None and not self.ae.ready.is_set():
            return None  # not before the subscriptions' resource ids are known
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

        cursor = _advance(self.cursor, requests)

        self.totals.batches += 1
        batches = to_batches(observations, rejects, f"mqtt://{self.s.host}:{self.s.port}")
        with self.commit_lock:
            run, all_rejects = ingest_batches(
                self.lake, self.s.source, f"mqtt-{self.s.protocol}", batches,
                fingerprint=f"mqtt:{self.s.client_id}:{self.session}:{self.totals.batches}",
                inputs=[f"mqtt://{self.s.host}:{self.s.port}/{t}" for t in self.s.topics],
                options={"session": self.session, "batch": self.totals.batches,
                         "messages": len(batch)},
                cursor=json.dumps(cursor, sort_keys=True) if cursor != self.cursor else None)
        self.cursor = cursor
        self.totals.messages += len(batch)
        for key in ("read", "written", "updated", "duplicate", "rejected"):
            setattr(self.totals, key, getattr(self.totals, key) + getattr(run, key))
        self.totals.runs.append(run.run_id)
        if requests:
            self._answer(requests, all_rejects)
        fastread.ack(self.client, [m.mid for m in batch if m.qos == 1 and
                                   gens[m.seq] == generation], self.fast)

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
                req = onem2m.parse(m, self.s.mappings, self.ae.ids if self.ae else None)
                requests.append(req)
                observations += req.observations
                rejects += req.rejects
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
            reply = req.message.reply
            topic = onem2m.response_topic(req.message.topic)
            if reply is None and topic is None:  # a catch-up: nobody to answer
                continue
            reasons = by_record.get(req.message.record)
            rsc = req.rsc
            if req.rsc < 4000 and reasons and not (req.op == 5 and req.observations and len(
                    reasons) < len(req.observations)):
                rsc = onem2m.BAD_REQUEST  # the gate rejected what it carried
            body = onem2m.response(req, rsc, "; ".join(reasons or []) if rsc >= 4000 else None)
            if reply is not None:
                rsp = json.loads(body)
                rsp = rsp.get("m2m:rsp", rsp)
                reply.send(rsc, rsp.get("pc") or {})
            elif topic is not None:
                self.client.publish(topic, body, qos=self.s.response_qos)
            self.totals.responses += 1

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is held, disconnect."""
        self.closing = True
        if self.ae is not None:
            self.ae.close()
            self.ae.ready.set()  # commit what is held even if the CSE never answered
        while self.due_in(time.time()) is not None:
            self.commit()
        self.abort()

    def abort(self) -> None:
        """Disconnect without committing anything more (the broker keeps what is not
        acknowledged; HTTP notifications in progress get a 500)."""
        self.closing = True
        if self.ae is not None:
            self.ae.stop.set()
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.client.disconnect()
        self.client.loop_stop()


def _advance(cursor: dict[str, str], requests: list[onem2m.Request]) -> dict[str, str]:
    """The catch-up cursor after these requests: the newest ``ct`` per container among the
    contentInstances a catch-up retrieved (``op`` 0). Notifications do not move it: one lost
    at QoS 0 can be older than the next that arrives, and the next catch-up must reach it."""
    out = dict(cursor)
    for req in requests:
        if req.op != 0:
            continue
        for container, cts in req.cins.items():
            for ct in cts:
                new, old = parse_time(ct), parse_time(out.get(container))
                if new is not None and (old is None or new > old):
                    out[container] = ct
    return out


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
                for li in listeners:
                    if li.ae is not None and li.ae.fatal is not None:
                        raise ConfigError(str(li.ae.fatal), hint=(
                            f"ae_id must be an AE-ID the CSE accepts (ACME: [cse.registration] "
                            f"allowedAEOriginators, by default C* and S*), or register the AE "
                            f"{li.s.ae_id} on the CSE yourself"))
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
                li.abort()
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
