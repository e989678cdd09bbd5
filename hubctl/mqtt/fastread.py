"""A faster reader of incoming MQTT packets for paho-mqtt, checked against paho's version.

paho reads a packet with three ``recv`` calls (type, length, body) through a state dict, builds
an ``MQTTMessage`` and matches topic callbacks: about 50 us of Python per message, the largest
cost of a listener at thousands of messages per second. :func:`client_class` returns paho's
``Client`` with a ``loop_read`` that reads whatever the socket holds in one call and hands each
QoS 0/1 PUBLISH straight to ``hub_publish``; every other packet goes to paho's own handler.

It relies on private parts of paho (``_sock_recv``, ``_packet_handle``, ``_in_packet``,
``_loop_rc_handle``, ``_msgtime_mutex``, ``_last_bytes_received``, ``_packet_queue``), which
paho may change in any release. It is therefore used only with the paho versions it was
checked against (:data:`CHECKED`, which ``pyproject.toml`` pins to) and only when those parts
are there (:func:`fast_reader_problem`); otherwise the listener uses stock paho (``on_message``
and ``ack()``), which is slower but correct. ``tests/test_paho_fastread.py`` fails when the
installed paho is not one of these versions or lacks these parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CHECKED", "ack", "client_class", "fast_reader_problem"]

CHECKED = ("2.2.0",)  # paho-mqtt versions whose internals this module was read against
_PRIVATE = ("_sock_recv", "_packet_handle", "_loop_rc_handle", "_packet_queue", "_sock",
            "_msgtime_mutex", "_protocol")


def fast_reader_problem() -> str | None:
    """Why the fast reader cannot be used with the installed paho, or None if it can."""
    import paho.mqtt
    import paho.mqtt.client as mqtt

    version = getattr(paho.mqtt, "__version__", "?")
    if version not in CHECKED:
        return f"paho-mqtt {version} is not one of the versions checked ({', '.join(CHECKED)})"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    missing = [name for name in _PRIVATE if not hasattr(client, name)]
    keys = set(getattr(client, "_in_packet", {}) or {})
    expected = set(_in_packet(0, 0, b""))
    if keys != expected:
        missing.append(f"_in_packet keys {sorted(keys ^ expected)}")
    if not hasattr(mqtt, "time_func") or not hasattr(mqtt, "MalformedPacket"):
        missing.append("time_func/MalformedPacket")
    return f"paho-mqtt {version} lacks {', '.join(missing)}" if missing else None


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


def client_class() -> Any:
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


def ack(client: Any, mids: list[int], fast: bool = True) -> None:
    """PUBACK each message id, in the order received. paho's ``ack()`` queues and wakes its
    network thread once per message; with thousands per micro-batch we queue the PUBACK
    packets as one write through the same queue (``fast``), else through ``ack()``."""
    queue = getattr(client, "_packet_queue", None) if fast else None
    if queue is None:
        for mid in mids:
            client.ack(mid, 1)
        return
    if mids:
        queue(0x40, b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids), 0, 0)
