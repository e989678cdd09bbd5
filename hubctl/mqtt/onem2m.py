"""The oneM2M MQTT binding (TS-0010), as Mobius and ACME speak it, for a hub acting as an IPE.

Request primitives arrive on ``/oneM2M/req/<originator>/<receiver>/json``, with or without an
``m2m:rqp`` wrapper. Two of them carry data:

- create of a contentInstance (``op`` 1, ``ty`` 4) under a container: ``pc.m2m:cin.con``,
  a JSON object, a JSON text of one, or a single value;
- notification (``op`` 5) of a subscription on a container: ``pc.m2m:sgn.nev.rep.m2m:cin``
  (the container is the subscription path ``sur`` without its last segment).

The container path selects a mapping (``[sources.NAME.mqtt.containers."<path>"]``). The
observation time is a ``con`` field named in the mapping's ``time`` (or ``TimeInstant``), else
the cin's ``ct`` (``20240501T090000``, UTC), else the request's ``ot``, else the arrival time.
Each request is answered on ``/oneM2M/resp/<originator>/<receiver>/json`` with the same ``rqi``
(see :func:`response`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hubctl.mqtt.observe import Message, Observation, unmapped
from hubctl.mqtt.settings import Mapping
from hubctl.rejects import Reject

__all__ = ["CREATED", "BAD_REQUEST", "NOT_FOUND", "OK", "Request", "parse", "response"]

OK, CREATED, BAD_REQUEST, NOT_FOUND = 2000, 2001, 4000, 4004


@dataclass
class Request:
    """What the hub needs to answer one request, and what it parsed from it."""

    message: Message
    wrapped: bool = False
    rqi: str | None = None
    fr: str | None = None
    to: str | None = None
    op: int | None = None
    ot: Any = None  # originating timestamp
    observations: list[Observation] = field(default_factory=list)
    reject: Reject | None = None
    rsc: int = OK  # the answer if nothing goes wrong in the lake
    cin: dict[str, Any] | None = None


def _find(mappings: dict[str, Mapping], path: str) -> Mapping | None:
    """The mapping of a container path: exact, else the longest configured path it ends with
    (``/cse-id/Mobius/x`` matches ``Mobius/x``)."""
    path = path.strip("/")
    if path in mappings:
        return mappings[path]
    ends = [k for k in mappings if path.endswith("/" + k)]
    return mappings[max(ends, key=len)] if ends else None


def _con(con: Any) -> dict[str, Any]:
    if isinstance(con, str):
        try:
            con = json.loads(con)
        except json.JSONDecodeError:
            return {"con": con}
    return con if isinstance(con, dict) else {"con": con}


def _observation(req: Request, mapping: Mapping, cin: dict[str, Any]) -> Observation:
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
    return Observation(req.message, mapping, mapping.entity_id or "", values, time, time_key)


def _fail(req: Request, rsc: int, detail: str, et: str = "") -> Request:
    req.rsc = rsc
    req.reject = unmapped(req.message, detail, et)
    return req


def parse(message: Message, mappings: dict[str, Mapping]) -> Request:
    """Parse one request primitive; its observations, or the reject and the error to answer."""
    req = Request(message)
    try:
        doc = json.loads(message.text())
    except json.JSONDecodeError as exc:
        return _fail(req, BAD_REQUEST, f"request is not JSON ({exc.msg} at column {exc.colno})")
    if isinstance(doc, dict) and isinstance(doc.get("m2m:rqp"), dict):
        doc, req.wrapped = doc["m2m:rqp"], True
    if not isinstance(doc, dict):
        return _fail(req, BAD_REQUEST, "request primitive must be a JSON object")
    req.rqi, req.fr, req.to = doc.get("rqi"), doc.get("fr"), doc.get("to")
    req.ot = doc.get("ot")
    try:
        req.op = int(doc.get("op"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _fail(req, BAD_REQUEST, f"op {doc.get('op')!r} is not an operation number")
    if req.rqi is None:
        return _fail(req, BAD_REQUEST, "request has no rqi (request identifier)")
    pc_value = doc.get("pc")
    pc: dict[str, Any] = pc_value if isinstance(pc_value, dict) else {}
    if req.op == 1:
        if str(doc.get("ty")) != "4" or not isinstance(pc.get("m2m:cin"), dict):
            return _fail(req, BAD_REQUEST, "only contentInstance creation (ty 4, pc.m2m:cin) "
                                           "is accepted by this hub")
        path, cin, req.rsc = str(req.to or ""), pc["m2m:cin"], CREATED
    elif req.op == 5:
        sgn = pc.get("m2m:sgn")
        if not isinstance(sgn, dict):
            return _fail(req, BAD_REQUEST, "notification without pc.m2m:sgn")
        if sgn.get("vrq") or sgn.get("sud"):  # subscription verification or deletion: no data
            return req
        cin = ((sgn.get("nev") or {}).get("rep") or {}).get("m2m:cin")
        if not isinstance(cin, dict):
            return _fail(req, BAD_REQUEST, "notification without nev.rep.m2m:cin")
        path = str(sgn.get("sur") or "").strip("/").rsplit("/", 1)[0]
    else:
        return _fail(req, BAD_REQUEST, f"operation {req.op} is not supported by this hub "
                                       "(only create of contentInstance and notify)")
    mapping = _find(mappings, path)
    if mapping is None:
        return _fail(req, NOT_FOUND, f"container {path!r} is not mapped in hub.toml")
    req.observations = [_observation(req, mapping, cin)]
    req.cin = dict(cin)
    return req


def response_topic(topic: str) -> str | None:
    """``/oneM2M/resp/<originator>/<receiver>/json`` for a request topic, or None."""
    parts = topic.split("/")
    if len(parts) < 5 or "req" not in parts:
        return None
    i = parts.index("req")
    return "/".join(parts[:i] + ["resp"] + parts[i + 1:])


def response(req: Request, rsc: int, detail: str | None = None) -> bytes:
    """The response primitive (``m2m:rsp`` when the request was wrapped in ``m2m:rqp``)."""
    rsp: dict[str, Any] = {"rsc": rsc, "rqi": req.rqi, "rvi": "3"}
    if req.fr is not None:
        rsp["to"] = req.fr
    parts = req.message.topic.split("/")
    if len(parts) >= 3:  # the receiver of the request topic: the hub's own id
        rsp["fr"] = parts[-2]
    if rsc >= 4000:
        rsp["pc"] = {"m2m:dbg": detail or "bad request"}
    elif rsc == CREATED and req.cin is not None:
        rsp["pc"] = {"m2m:cin": {**req.cin, "ty": 4}}
    body = {"m2m:rsp": rsp} if req.wrapped else rsp
    return json.dumps(body, ensure_ascii=False, default=str).encode()
