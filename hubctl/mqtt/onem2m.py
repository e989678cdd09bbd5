"""oneM2M request primitives (TS-0004) as they reach the hub, over the MQTT binding (TS-0010),
the HTTP binding (TS-0009, :mod:`~hubctl.mqtt.http_notify`) or a catch-up from the CSE
(:mod:`~hubctl.mqtt.ae`).

Request primitives arrive on ``/oneM2M/req/<originator>/<receiver>/json``, with or without an
``m2m:rqp`` wrapper. Two of them carry data:

- create of a contentInstance (``op`` 1, ``ty`` 4) under a container: ``pc.m2m:cin.con``,
  a JSON object, a JSON text of one, or a single value;
- notification (``op`` 5) of a subscription on a container: ``pc.m2m:sgn.nev.rep.m2m:cin``,
  or an aggregated notification ``pc.m2m:agn`` holding several ``m2m:sgn`` (each ingested).

The container of a notification is found, in this order, from the subscription's resource id
(``sur``, structured or not: ``/id-in/subOvqfR2Cr62``) or the cin's parent id (``pi``), both
known to the hub when it created the subscription itself (``register = true``), else from a
structured ``sur`` minus its last segment (Mobius). The container path selects a mapping
(``[sources.NAME.mqtt.containers."<path>"]``). The observation time is a ``con`` field named in
the mapping's ``time`` (or ``TimeInstant``), else the cin's ``ct`` (``20240501T090000``, UTC),
else the request's ``ot``, else the arrival time.

Each request is answered like a CSE would (see :func:`response`): the ``rqi`` and ``rvi`` of the
request, 2001 with the created resource, 2000 for a notification, 4000/4004/4005/5001 with the
reason in ``m2m:dbg``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hubctl.mqtt.observe import Message, Observation, unmapped
from hubctl.mqtt.settings import Mapping
from hubctl.rejects import Reject

__all__ = ["BAD_REQUEST", "CATCH_UP", "CREATED", "NOT_FOUND", "NOT_IMPLEMENTED", "OK",
           "OPERATION_NOT_ALLOWED", "Request", "basic_time", "container_of", "parse",
           "response", "response_topic"]

OK, CREATED, BAD_REQUEST, NOT_FOUND = 2000, 2001, 4000, 4004
OPERATION_NOT_ALLOWED, NOT_IMPLEMENTED = 4005, 5001
CATCH_UP = "catch-up:"  # topic prefix of contentInstances retrieved from the CSE


@dataclass
class Request:
    """What the hub needs to answer one request, and what it parsed from it."""

    message: Message
    wrapped: bool = False
    rqi: str | None = None
    rvi: str | None = None
    fr: str | None = None
    to: str | None = None
    op: int | None = None
    ot: Any = None  # originating timestamp
    observations: list[Observation] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rsc: int = OK  # the answer if nothing goes wrong in the lake
    cin: dict[str, Any] | None = None  # the created contentInstance, as received
    cins: dict[str, list[str]] = field(default_factory=dict)  # container -> ct of its cins

    @property
    def reject(self) -> Reject | None:
        """The first reason this request carried no (or not all its) data."""
        return self.rejects[0] if self.rejects else None


def basic_time(ts: datetime | None = None) -> str:
    """A oneM2M timestamp in the basic format (``20240501T090000,123456``), UTC."""
    ts = (ts or datetime.now(UTC)).astimezone(UTC)
    return ts.strftime("%Y%m%dT%H%M%S") + (f",{ts.microsecond:06d}" if ts.microsecond else "")


def _find(mappings: dict[str, Mapping], path: str) -> str | None:
    """The configured container path of a path: exact, else the longest configured path it
    ends with (``/cse-id/Mobius/x`` matches ``Mobius/x``)."""
    path = path.strip("/")
    if path in mappings:
        return path
    ends = [k for k in mappings if path.endswith("/" + k)]
    return max(ends, key=len) if ends else None


def container_of(sgn: dict[str, Any], cin: dict[str, Any], mappings: dict[str, Mapping],
                 ids: dict[str, str]) -> str | None:
    """The configured container a notification's cin belongs to: by the subscription's or the
    container's resource id (``ids``: resource id -> container, built at registration), else
    by a structured ``sur`` minus its last segment."""
    sur = str(sgn.get("sur") or "").strip("/")
    for key in (sur, sur.rsplit("/", 1)[-1], str(cin.get("pi") or "").strip("/"),
                str(cin.get("pi") or "").rsplit("/", 1)[-1]):
        if key and key in ids:
            return ids[key]
    return _find(mappings, sur.rsplit("/", 1)[0]) if "/" in sur else None


def _con(con: Any) -> dict[str, Any]:
    if isinstance(con, str):
        try:
            con = json.loads(con)
        except json.JSONDecodeError:
            return {"con": con}
    return dict(con) if isinstance(con, dict) else {"con": con}


def _observation(req: Request, mapping: Mapping, cin: dict[str, Any]) -> Observation | str:
    """The observation of one cin, or why it carries nothing for the entity type."""
    values = _con(cin.get("con"))
    time, time_key = None, "arrival"
    for key in mapping.time_keys:
        if key in values:
            time, time_key = values.pop(key), key
            break
    else:
        if cin.get("ct"):
            time, time_key = cin["ct"], "ct"
        elif req.ot:
            time, time_key = req.ot, "ot"
    et = mapping.entity_type.name
    if not values:
        return f"con has no values besides its time (con: {json.dumps(cin.get('con'))[:200]})"
    if not any(mapping.attribute(k) for k in values):
        return (f"con maps to no attribute of {et} (keys: {', '.join(sorted(values))[:200]}); "
                "name them in the container's attributes = {...} in hub.toml")
    return Observation(req.message, mapping, mapping.entity_id or "", values, time, time_key,
                       json.dumps(cin, ensure_ascii=False) if req.op != 1 else None)


def _fail(req: Request, rsc: int, detail: str, et: str = "") -> Request:
    req.rsc = rsc
    req.rejects.append(unmapped(req.message, detail, et))
    return req


def _add(req: Request, mappings: dict[str, Mapping], container: str | None,
         cin: dict[str, Any]) -> None:
    """One contentInstance of ``container`` into the request's observations (or rejects)."""
    mapping = mappings.get(container) if container else None
    if mapping is None:
        where = f"container {container!r}" if container else \
            f"contentInstance {cin.get('ri') or ''} (parent {cin.get('pi')!r})"
        _fail(req, NOT_FOUND, f"{where} is not mapped in hub.toml")
        return
    obs = _observation(req, mapping, cin)
    if isinstance(obs, str):
        _fail(req, BAD_REQUEST, obs, mapping.entity_type.name)
        return
    assert container is not None
    req.observations.append(obs)
    if cin.get("ct"):
        req.cins.setdefault(container, []).append(str(cin["ct"]))


def _notification(req: Request, pc: dict[str, Any], mappings: dict[str, Mapping],
                  ids: dict[str, str]) -> Request:
    agn = pc.get("m2m:agn")
    if agn is not None:  # {"m2m:agn": {"m2m:sgn": [...]}} or {"m2m:agn": [{"m2m:sgn": ...}]}
        items = agn.get("m2m:sgn") if isinstance(agn, dict) else agn
        sgns = [i.get("m2m:sgn", i) if isinstance(i, dict) else i
                for i in (items if isinstance(items, list) else [items])]
    else:
        sgns = [pc.get("m2m:sgn")]
    if not sgns or not all(isinstance(s, dict) for s in sgns):
        return _fail(req, BAD_REQUEST, "notification without pc.m2m:sgn (or m2m:agn of them)")
    for sgn in sgns:
        assert isinstance(sgn, dict)
        if sgn.get("vrq") or sgn.get("sud"):  # verification or deletion: answered, no data
            continue
        rep = (sgn.get("nev") or {}).get("rep") or {}
        if isinstance(rep, dict) and rep and "m2m:cin" not in rep:  # another child: no data
            continue
        cin = rep.get("m2m:cin") if isinstance(rep, dict) else None
        if not isinstance(cin, dict):
            _fail(req, BAD_REQUEST, "notification without nev.rep.m2m:cin")
            continue
        _add(req, mappings, container_of(sgn, cin, mappings, ids), cin)
    if req.observations or not req.rejects:  # else: the error of what could not be used
        req.rsc = OK
    return req


def parse(message: Message, mappings: dict[str, Mapping],
          ids: dict[str, str] | None = None) -> Request:
    """Parse one request primitive; its observations, or the rejects and the answer.

    ``ids`` maps resource ids (subscriptions, containers) to configured container paths."""
    req = Request(message)
    try:
        doc = json.loads(message.text())
    except json.JSONDecodeError as exc:
        return _fail(req, BAD_REQUEST, f"request is not JSON ({exc.msg} at column {exc.colno})")
    if message.topic.startswith(CATCH_UP):  # a cin retrieved from the CSE: nothing to answer
        req.op = 0
        if isinstance(doc, dict):
            _add(req, mappings, message.topic[len(CATCH_UP):], doc)
        return req
    if isinstance(doc, dict) and isinstance(doc.get("m2m:rqp"), dict):
        doc, req.wrapped = doc["m2m:rqp"], True
    if not isinstance(doc, dict):
        return _fail(req, BAD_REQUEST, "request primitive must be a JSON object")
    req.rqi, req.fr, req.to = doc.get("rqi"), doc.get("fr"), doc.get("to")
    req.ot = doc.get("ot")
    req.rvi = str(doc["rvi"]) if doc.get("rvi") is not None else None
    if req.rqi is None:
        return _fail(req, BAD_REQUEST, "request has no rqi (request identifier)")
    try:
        req.op = int(doc.get("op"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _fail(req, BAD_REQUEST, f"op {doc.get('op')!r} is not an operation number")
    pc_value = doc.get("pc")
    pc: dict[str, Any] = pc_value if isinstance(pc_value, dict) else {}
    if req.op == 5:
        return _notification(req, pc, mappings, ids or {})
    if req.op == 1:
        if str(doc.get("ty")) != "4" or not isinstance(pc.get("m2m:cin"), dict):
            return _fail(req, NOT_IMPLEMENTED, "only contentInstance creation (ty 4, pc.m2m:cin) "
                                               "is implemented by this hub")
        req.rsc, req.cin = CREATED, dict(pc["m2m:cin"])
        _add(req, mappings, _find(mappings, str(req.to or "")), req.cin)
        if req.rejects:
            req.rsc = NOT_FOUND if "not mapped" in req.rejects[0].reasons[0].message \
                else BAD_REQUEST
        return req
    if req.op in (2, 3, 4, 6):
        return _fail(req, OPERATION_NOT_ALLOWED, f"operation {req.op} is not allowed on this "
                                                 "hub (it serves create of contentInstance and "
                                                 "notify)")
    return _fail(req, BAD_REQUEST, f"op {req.op} is not a oneM2M operation (1 to 6)")


def response_topic(topic: str) -> str | None:
    """``/oneM2M/resp/<originator>/<receiver>/json`` for a request topic (``reg_resp`` for a
    registration request on ``reg_req``), or None."""
    parts = topic.split("/")
    kind = "req" if "req" in parts else "reg_req" if "reg_req" in parts else None
    if len(parts) < 5 or kind is None:
        return None
    i = parts.index(kind)
    return "/".join(parts[:i] + [kind.replace("req", "resp")] + parts[i + 1:])


def created(req: Request, now: datetime | None = None) -> dict[str, Any]:
    """The contentInstance resource a 2001 carries: as received (``con`` untouched) with the
    resource id, creation time and type a CSE gives it."""
    ct = basic_time(now)
    cin = dict(req.cin or {})
    cin.setdefault("ri", "cin" + secrets.token_hex(6))
    cin.setdefault("ct", ct)
    cin.setdefault("lt", cin["ct"])
    cin["ty"] = 4
    return cin


def response(req: Request, rsc: int, detail: str | None = None) -> bytes:
    """The response primitive (``m2m:rsp`` when the request was wrapped in ``m2m:rqp``)."""
    rsp: dict[str, Any] = {"rsc": rsc, "rqi": req.rqi if req.rqi is not None else ""}
    rsp["rvi"] = req.rvi if req.rvi is not None else "3"
    if req.fr is not None:
        rsp["to"] = req.fr
    parts = req.message.topic.split("/")
    if len(parts) >= 3:  # the receiver of the request topic: the hub's own id
        rsp["fr"] = parts[-2]
    if rsc >= 4000:
        rsp["pc"] = {"m2m:dbg": detail or "bad request"}
    elif rsc == CREATED and req.cin is not None:
        rsp["pc"] = {"m2m:cin": created(req)}
    body = {"m2m:rsp": rsp} if req.wrapped else rsp
    return json.dumps(body, ensure_ascii=False, default=str).encode()
