"""The hub as an application entity (AE) of a oneM2M CSE: registration, subscriptions, catch-up.

With ``register = true`` in ``[sources.NAME.mqtt]``, a thread of ``hubctl listen`` (one per
source) talks to the CSE as the AE ``ae_id``, over the CSE's HTTP binding (``cse_url``) or over
MQTT (``/oneM2M/req/<ae_id>/<cse_id>/json``, registration on ``/oneM2M/reg_req/...``):

1. **Registration.** It retrieves its AE; if there is none it creates it under ``cse_name``
   (``rr = true``, ``poa`` the broker or the HTTP notification receiver); if its ``poa``
   changed it updates it.
2. **Subscriptions.** For every mapped container (a structured path such as
   ``cse-in/CairSensor/air``) it retrieves the container and creates, or finds, the
   subscription ``sub-<ae_id>`` under it with ``nu = [ae_id]`` (notification on the creation
   of a child contentInstance, all attributes). It keeps the resource id of each subscription
   and container, so a notification's ``sur`` or cin ``pi`` resolves to the container whatever
   form the CSE uses (:func:`hubctl.mqtt.onem2m.container_of`).
3. **Catch-up.** At start, after every reconnect to the broker and every ``reconcile`` seconds
   it retrieves each container's contentInstances created after the newest one the previous
   catch-up committed (minus :data:`LOOKBACK`, for creations in flight during that retrieve):
   a retrieve with ``rcn = 4`` (attributes and children) and filter criteria ``ty = 4``,
   ``cra``. They are handed to the listener as messages, oldest first, and go through the same
   parse, gate and commit as notifications; the lake key makes the repeats duplicates. A
   notification lost at QoS 0 (the listener down, a broker restart, the CSE's own reconnect)
   is therefore in the lake at the next catch-up. Notifications do not move the cursor, so
   each catch-up reads what arrived since the previous one again (counted duplicates): that
   is the price of not depending on the order in which notifications arrive or are lost.

The listener does not commit anything before the first registration and subscription pass has
finished, so that every notification it parses can be mapped.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hubctl.mqtt.onem2m import basic_time
from hubctl.mqtt.settings import MqttSettings
from hubctl.ngsild import parse_time

__all__ = ["LOOKBACK", "AeRefused", "AeSession", "Cse", "CseError"]

LOOKBACK = timedelta(seconds=10)  # catch-up reaches this far behind the newest cin it committed
TIMEOUT = 10.0  # seconds to wait for the CSE's answer
RETRY_MIN, RETRY_MAX = 1.0, 30.0
CREATED, OK, NOT_FOUND, CONFLICT, NO_PRIVILEGE = 2001, 2000, 4004, 4105, 4103


class CseError(Exception):
    """The CSE could not be reached or did not answer in time (transient: retried)."""


class AeRefused(Exception):
    """The CSE refused to register the AE: retrying cannot help (the listener fails)."""


class Cse:
    """Requests of the AE to its CSE: over HTTP when ``cse_url`` is set, else over MQTT
    through the listener's client (``publish``), the response arriving on the listener's
    subscription to ``/oneM2M/resp/<ae_id>/+/json`` (:meth:`on_response`)."""

    def __init__(self, s: MqttSettings, publish: Callable[[str, bytes], None] | None = None,
                 connected: threading.Event | None = None) -> None:
        self.s, self.publish, self.connected = s, publish, connected
        self.waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self.lock = threading.Lock()

    def request(self, op: int, to: str, *, ty: int | None = None, pc: Any = None,
                rcn: int | None = None, fc: dict[str, Any] | None = None,
                registration: bool = False) -> tuple[int, dict[str, Any]]:
        """One request as the hub's AE: ``(rsc, content)``; CseError when there is no answer."""
        rqi = "hub" + secrets.token_hex(6)
        if self.s.cse_url:
            return self._http(op, to, rqi, ty, pc, rcn, fc)
        primitive: dict[str, Any] = {"op": op, "to": to, "fr": self.s.ae_id, "rqi": rqi,
                                     "rvi": "3"}
        for key, value in (("ty", ty), ("pc", pc), ("rcn", rcn), ("fc", fc)):
            if value is not None:
                primitive[key] = value
        kind = "reg_req" if registration else "req"
        topic = f"/oneM2M/{kind}/{self.s.ae_id}/{self.s.cse_id}/json"
        if self.publish is None or self.connected is None or not self.connected.wait(TIMEOUT):
            raise CseError(f"not connected to the broker {self.s.host}:{self.s.port}")
        done, box = threading.Event(), []  # type: tuple[threading.Event, list[dict[str, Any]]]
        with self.lock:
            self.waiting[rqi] = (done, box)
        try:
            self.publish(topic, json.dumps(primitive).encode())
            if not done.wait(TIMEOUT):
                raise CseError(f"the CSE {self.s.cse_id} did not answer on {topic} within "
                               f"{TIMEOUT:.0f} s")
        finally:
            with self.lock:
                self.waiting.pop(rqi, None)
        rsp = box[0]
        pc_out = rsp.get("pc")
        return int(rsp.get("rsc", 0)), pc_out if isinstance(pc_out, dict) else {}

    def on_response(self, payload: bytes) -> bool:
        """A response primitive from the broker (network thread); True if it answered one of
        our requests."""
        try:
            rsp = json.loads(payload)
        except ValueError:
            return False
        if isinstance(rsp, dict) and isinstance(rsp.get("m2m:rsp"), dict):
            rsp = rsp["m2m:rsp"]
        if not isinstance(rsp, dict):
            return False
        with self.lock:
            waiter = self.waiting.get(str(rsp.get("rqi")))
        if waiter is None:
            return False
        waiter[1].append(rsp)
        waiter[0].set()
        return True

    def _http(self, op: int, to: str, rqi: str, ty: int | None, pc: Any, rcn: int | None,
              fc: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        method = {1: "POST", 2: "GET", 3: "PUT", 4: "DELETE"}[op]
        query = {**({"rcn": rcn} if rcn is not None else {}), **(fc or {})}
        url = f"{self.s.cse_url}/{urllib.parse.quote(to.lstrip('/'))}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"X-M2M-Origin": self.s.ae_id, "X-M2M-RI": rqi, "X-M2M-RVI": "3",
                   "Accept": "application/json"}
        data = None
        if pc is not None:
            headers["Content-Type"] = "application/json" + (f";ty={ty}" if ty else "")
            data = json.dumps(pc).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                rsc, body = resp.headers.get("X-M2M-RSC"), resp.read()
        except urllib.error.HTTPError as exc:
            rsc, body = exc.headers.get("X-M2M-RSC"), exc.read()
        except (OSError, ValueError) as exc:
            raise CseError(f"cannot reach the CSE at {self.s.cse_url}: {exc}") from None
        try:
            content = json.loads(body) if body else {}
        except ValueError:
            content = {"m2m:dbg": body.decode("utf-8", "replace")[:200]}
        return int(rsc or 0), content if isinstance(content, dict) else {}


def _dbg(content: dict[str, Any]) -> str:
    return str(content.get("m2m:dbg") or json.dumps(content)[:200])


class AeSession:
    """Registration, subscriptions and catch-up of one source (a thread of the listener).

    ``inject(container, cins)`` hands retrieved contentInstances to the listener;
    ``cursor()`` returns the newest committed ``ct`` per container."""

    def __init__(self, s: MqttSettings, cse: Cse, log: Callable[[str], None],
                 inject: Callable[[str, list[dict[str, Any]]], None],
                 cursor: Callable[[], dict[str, str]]) -> None:
        self.s, self.cse, self.log, self.inject, self.cursor = s, cse, log, inject, cursor
        self.ids: dict[str, str] = {}  # resource id (subscription, container) -> container
        self.subscribed: set[str] = set()
        self.registered = False
        self.ready = threading.Event()  # the first registration and subscription pass is done
        self.wake = threading.Event()  # set after a reconnect: catch up now
        self.stop = threading.Event()
        self.fatal: AeRefused | None = None  # the listener fails with it
        self.thread = threading.Thread(target=self.run, name=f"ae-{s.source}", daemon=True)

    @property
    def sub_name(self) -> str:
        """The resource name of the hub's subscription under each container."""
        return f"sub-{self.s.ae_id}"

    def start(self) -> None:
        """Start the session's thread."""
        self.thread.start()

    def close(self) -> None:
        """Stop the thread (it ends after the request in progress)."""
        self.stop.set()
        self.wake.set()
        self.thread.join(TIMEOUT + 1)

    def run(self) -> None:
        """Register, subscribe and catch up; then catch up after each reconnect and every
        ``reconcile`` seconds. Transient failures are retried with backoff."""
        delay = RETRY_MIN
        while not self.stop.is_set():
            try:
                self.setup()
                self.catch_up()
                delay = RETRY_MIN
                self.wake.wait(self.s.reconcile or None)
                self.wake.clear()
            except CseError as exc:
                self.log(f"{self.s.source}: {exc}; retrying in {delay:.0f} s")
                self.stop.wait(delay)
                delay = min(RETRY_MAX, delay * 2)
            except AeRefused as exc:
                self.fatal = exc
                return

    def setup(self) -> None:
        """Register the AE and subscribe to every mapped container not subscribed yet (or no
        longer: a subscription the CSE deleted, or expired, is created again)."""
        if not self.registered:
            self.register()
        for container in sorted(self.subscribed):
            rsc, _ = self.cse.request(2, f"{container}/{self.sub_name}")
            if rsc == NOT_FOUND:
                self.log(f"{self.s.source}: the subscription to {container} is gone from "
                         f"{self.s.cse_id}; subscribing again")
                self.subscribed.discard(container)
        for container in self.s.mappings:
            if container not in self.subscribed:
                self.subscribe(container)
        self.ready.set()

    def register(self) -> None:
        """Find the hub's AE on the CSE, create it, or update its point of access."""
        s, poa = self.s, list(self.s.poa)
        rsc, content = self.cse.request(2, s.ae_id)
        if rsc == OK:
            ae = content.get("m2m:ae", {})
            if ae.get("poa") != poa or ae.get("rr") is not True:
                rsc, content = self.cse.request(3, s.ae_id, pc={"m2m:ae": {"poa": poa,
                                                                           "rr": True}})
                if rsc != OK:
                    raise CseError(f"the CSE refused to update the AE {s.ae_id}'s poa: {rsc} "
                                   f"{_dbg(content)}")
            self.log(f"{s.source}: AE {s.ae_id} is registered with {s.cse_id} (poa "
                     f"{', '.join(poa)})")
        else:
            rsc, content = self.cse.request(
                1, s.cse_name, ty=2, registration=True, pc={"m2m:ae": {
                    "rn": s.ae_id, "api": f"N{s.source}", "rr": True, "poa": poa,
                    "srv": ["3"]}})
            if rsc != CREATED:
                raise AeRefused(f"{s.source}: the CSE {s.cse_id} refused to register the AE "
                                f"{s.ae_id}: {rsc} {_dbg(content)}")
            aei = content.get("m2m:ae", {}).get("aei")
            self.log(f"{s.source}: registered the AE {s.ae_id} with {s.cse_id} (aei {aei}, "
                     f"poa {', '.join(poa)})")
        self.registered = True

    def subscribe(self, container: str) -> None:
        """Create or find the hub's subscription under ``container``; remember its ids."""
        s = self.s
        rsc, content = self.cse.request(2, container)
        if rsc != OK:
            hint = (f"; grant {s.ae_id} RETRIEVE and CREATE on it with an access control "
                    "policy (docs/live.md)" if rsc == NO_PRIVILEGE else "; retrying at the "
                    "next catch-up")
            self.log(f"{s.source}: container {container} on {s.cse_id}: {rsc} "
                     f"{_dbg(content)}{hint}")
            return
        self.ids[str(content.get("m2m:cnt", {}).get("ri", container))] = container
        sub = {"rn": self.sub_name, "nu": [s.ae_id], "enc": {"net": [3], "chty": [4]},
               "nct": 1}
        rsc, content = self.cse.request(1, container, ty=23, pc={"m2m:sub": sub})
        if rsc == CONFLICT:  # ours from an earlier start
            rsc, content = self.cse.request(2, f"{container}/{self.sub_name}")
            found = content.get("m2m:sub", {})
            if rsc == OK and s.ae_id not in found.get("nu", []):
                rsc, content = self.cse.request(3, f"{container}/{self.sub_name}",
                                                pc={"m2m:sub": {"nu": [s.ae_id]}})
        if rsc not in (OK, CREATED):
            self.log(f"{s.source}: cannot subscribe to {container}: {rsc} {_dbg(content)}")
            return
        ri = str(content.get("m2m:sub", {}).get("ri", ""))
        if ri:
            self.ids[ri] = container
        self.subscribed.add(container)
        self.log(f"{s.source}: subscribed to {container} on {s.cse_id} ({self.sub_name}, ri "
                 f"{ri}, nu {s.ae_id})")

    def catch_up(self) -> int:
        """Retrieve what each subscribed container holds after the cursor; hand it to the
        listener. Returns the number of contentInstances handed over."""
        cursor, total = self.cursor(), 0
        for container in sorted(self.subscribed):
            fc: dict[str, Any] = {"ty": [4]}
            since = parse_time(cursor[container]) if container in cursor else None
            if since is not None:
                fc["cra"] = basic_time(since - LOOKBACK).split(",")[0]
            rsc, content = self.cse.request(2, container, rcn=4, fc=fc)
            if rsc != OK:
                self.log(f"{self.s.source}: catch-up of {container} failed: {rsc} "
                         f"{_dbg(content)}")
                continue
            cnt = content.get("m2m:cnt", {})
            cins = sorted((c for c in cnt.get("m2m:cin", []) if isinstance(c, dict)),
                          key=lambda c: str(parse_time(c.get("ct")) or ""))
            if cnt.get("ri"):
                self.ids[str(cnt["ri"])] = container
            if cins:
                self.inject(container, cins)
            total += len(cins)
        return total

