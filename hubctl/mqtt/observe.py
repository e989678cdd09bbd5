"""Observations parsed from MQTT messages -> typed lake rows in Batches, one per entity type.

Both bindings (oneM2M, IoT-Agent JSON) turn a message into :class:`Observation` s (or a
:class:`~hubctl.rejects.Reject`); this module converts the published values to the schema's
column types and canonical units, column by column, and keeps each row's message (``_record``)
and raw payload (``_raw``) so that the gate's rejects point back at the message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Batch
from hubctl.gate import RowReasons
from hubctl.mqtt.settings import Mapping
from hubctl.ngsild import entity_id, parse_time
from hubctl.registry import Attribute, EntityType
from hubctl.rejects import Reason, Reject, reason
from hubctl.types import TIMESTAMP

__all__ = ["Message", "Observation", "to_batches", "unmapped"]


@dataclass
class Message:
    """One MQTT message as received: where it came from and what it carried."""

    seq: int  # number within the listen session; names the message in _rejects.record
    topic: str
    payload: bytes
    arrival: datetime
    mid: int = 0
    qos: int = 1
    reply: Any = None  # an HTTP notification's pending answer (hubctl.mqtt.http_notify.Reply)

    @property
    def record(self) -> str:
        """How rejects and rows name this message: its topic and session sequence number."""
        return f"{self.topic} #{self.seq}"

    def text(self) -> str:
        """The payload as text (undecodable bytes replaced), as kept in ``_rejects.raw``."""
        return self.payload.decode("utf-8", "replace")


@dataclass
class Observation:
    """One entity's values at one time, from one message."""

    message: Message
    mapping: Mapping
    local_id: str
    values: dict[str, Any]  # published name -> value
    time: Any = None  # published time value (None: arrival time)
    time_key: str = "arrival"
    raw: str | None = None  # the part of the payload this observation came from
    extra_static: dict[str, Any] = field(default_factory=dict)


def unmapped(message: Message, detail: str, entity_type: str = "") -> Reject:
    """A message that cannot be parsed or mapped, as a reject with its topic and payload."""
    return Reject(entity_type, message.text(), [reason("unmapped-message", detail=detail)],
                  file=message.topic, record=message.record)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _coerce(attr: Attribute, value: Any, factor: float) -> tuple[Any, bool]:
    """(cell value, fits) for one published value of ``attr``."""
    kind = attr.column.name
    if value is None:
        return None, True
    if kind in ("float64", "int64"):
        number = _number(value)
        if number is None:
            return None, False
        number *= factor
        if kind == "int64":
            return (int(number), True) if number.is_integer() else (None, False)
        return number, True
    if kind == "timestamp":
        ts = parse_time(value)
        return ts, ts is not None
    if kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", True
        return (value, True) if isinstance(value, bool) else (None, False)
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, sort_keys=True), True
    if kind == "geometry":
        return (json.dumps(value), True) if isinstance(value, dict) else (None, False)
    if kind == "string[]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (value, True) if ok else (None, False)
    if isinstance(value, int | float) and not isinstance(value, bool) and kind == "string":
        return str(value), True
    return (value, True) if isinstance(value, str) else (None, False)


def _point(value: Any) -> tuple[float, float] | None:
    coords = value.get("coordinates") if isinstance(value, dict) else value
    if isinstance(coords, str):
        coords = coords.split(",")
    if isinstance(coords, list) and len(coords) in (2, 3):
        lon, lat = _number(coords[0]), _number(coords[1])
        if lon is not None and lat is not None:
            return lon, lat
    return None


def _json(value: Any) -> str:
    """JSON text of one value; scalars without the encoder's per-call set-up."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


def _extra_text(extra: dict[str, Any]) -> str:
    """``_extra``: the unmapped attributes as NGSI-LD Properties, as JSON text."""
    return "{" + ", ".join(f'{encode_basestring(k)}: {{"type": "Property", "value": '
                           f'{_json(v["value"])}}}' for k, v in extra.items()) + "}"


class _Builder:
    """Rows of one entity type, gathered column by column; numbers and times are converted
    by Arrow for the whole column, Python only touches values Arrow cannot take."""

    def __init__(self, et: EntityType) -> None:
        self.et = et
        self.ids: list[str] = []
        self.times: list[Any] = []  # published time values (None: arrival)
        self.arrivals: list[datetime] = []
        self.time_keys: list[str] = []
        self.raw: list[str] = []
        self.records: list[str] = []
        self.rows: list[dict[str, Any]] = []  # attribute -> published value, per row
        self.names: set[str] = set()
        self.factors: dict[int, dict[str, float]] = {}  # row -> attribute -> unit factor
        self.extra: dict[int, dict[str, Any]] = {}
        self.bad: RowReasons = {}
        self.n = 0
        self._urn: dict[str, str] = {}

    def add(self, obs: Observation) -> None:
        i = self.n
        self.n += 1
        urn = self._urn.get(obs.local_id)
        if urn is None:
            urn = self._urn[obs.local_id] = entity_id(self.et.name, obs.local_id)
        self.ids.append(urn)
        self.times.append(obs.time)
        self.arrivals.append(obs.message.arrival)
        self.time_keys.append(obs.time_key)
        self.raw.append(obs.raw if obs.raw is not None else obs.message.text())
        self.records.append(obs.message.record)
        mapping = obs.mapping
        values = dict(mapping.static)
        if obs.extra_static:
            values.update(obs.extra_static)
        for name, value in obs.values.items():
            attr = mapping.attribute(name)
            if attr is None:
                self.extra.setdefault(i, {})[name] = {"type": "Property", "value": value}
                continue
            values[attr] = value
            factor = mapping.factors.get(name)
            if factor is not None:
                self.factors.setdefault(i, {})[attr] = factor
        self.rows.append(values)
        self.names.update(values)

    def _reason(self, i: int, r: Reason) -> None:
        found = self.bad.setdefault(i, [])
        if all(x.field != r.field for x in found):
            found.append(r)

    def _observed(self) -> pa.Array:
        """observed_at: the published time where there is one, else the arrival time."""
        out: list[datetime] = list(self.arrivals)
        numbers = all(isinstance(t, int | float) and not isinstance(t, bool) or t is None
                      for t in self.times)
        if numbers:  # epoch seconds, the whole column at once
            given = pa.array(self.times, pa.float64())
            micros = pc.cast(pc.round(pc.multiply(given, 1e6)), pa.int64())
            stamps = pc.cast(micros, TIMESTAMP)
            arrival = pa.array(out, TIMESTAMP)
            return pc.if_else(pc.is_null(given), arrival, stamps)
        for i, t in enumerate(self.times):
            if t is None:
                continue
            parsed = parse_time(t)
            if parsed is None:
                self._reason(i, reason("bad-timestamp", self.time_keys[i], value=t))
            else:
                out[i] = parsed
        return pa.array(out, TIMESTAMP)

    def _column(self, attr: Attribute, values: list[Any]) -> pa.Array:
        factors = None
        if any(attr.name in f for f in self.factors.values()):
            factors = [self.factors.get(i, {}).get(attr.name, 1.0) for i in range(self.n)]
        if attr.column.name == "float64" and not any(type(v) in (bool, str) for v in values):
            try:
                arr = pa.array(values, pa.float64())
                return pc.multiply(arr, pa.array(factors, pa.float64())) if factors else arr
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                pass
        cells = []
        for i, value in enumerate(values):
            cell, fits = _coerce(attr, value, factors[i] if factors else 1.0)
            if not fits:
                code = "bad-timestamp" if attr.column.name == "timestamp" else "type-error"
                self._reason(i, reason(code, attr.name, value=value, expected=attr.column.name))
            cells.append(cell)
        return pa.array(cells, attr.column.arrow)

    def _points(self, attr: Attribute, values: list[Any]) -> tuple[pa.Array, pa.Array]:
        lon: list[float | None] = []
        lat: list[float | None] = []
        cache: dict[str, tuple[float, float] | None] = {}
        for i, value in enumerate(values):
            key = repr(value)
            point = cache[key] if key in cache else cache.setdefault(key, _point(value))
            if value is not None and point is None:
                self._reason(i, reason("type-error", attr.name, value=value,
                                       expected="[longitude, latitude]"))
            lon.append(point[0] if point else None)
            lat.append(point[1] if point else None)
        return pa.array(lon, pa.float64()), pa.array(lat, pa.float64())

    def table(self) -> pa.Table:
        schema = self.et.arrow_schema()
        observed = self._observed()
        columns: dict[str, Any] = {"id": pa.array(self.ids, pa.string()),
                                   "observed_at": observed,
                                   "_time_index": pa.array(self.time_keys, pa.string())}
        if self.et.time_index in self.et.attributes and self.et.time_index not in self.names:
            columns[self.et.time_index] = observed
        for name in sorted(self.names):
            values = [row.get(name) for row in self.rows]
            attr = self.et.attributes[name]
            if attr.is_point:
                columns["lon"], columns["lat"] = self._points(attr, values)
            else:
                columns[name] = self._column(attr, values)
        if self.extra:
            extra = self.extra
            columns["_extra"] = pa.array([_extra_text(extra[i]) if i in extra else None
                                          for i in range(self.n)], pa.string())
        arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(self.n, f.type)
                  for f in schema]
        table = pa.Table.from_arrays(arrays, schema=schema)
        return (table.append_column("_raw", pa.array(self.raw, pa.string()))
                     .append_column("_record", pa.array(self.records, pa.string())))


def to_batches(observations: Sequence[Observation], rejects: Sequence[Reject],
               file: str) -> list[Batch]:
    """Batches for the engine: one per entity type, the parse rejects in the first one."""
    builders: dict[str, _Builder] = {}
    for obs in observations:
        et = obs.mapping.entity_type
        builder = builders.get(et.name) or builders.setdefault(et.name, _Builder(et))
        builder.add(obs)
    tables = {name: b.table() for name, b in builders.items()}
    batches = [Batch(name, tables[name], file, b.n, typed_bad=b.bad)
               for name, b in builders.items()]
    if rejects:
        if not batches:
            batches.append(Batch(rejects[0].entity_type or "", None, file, 0))
        batches[0].rejects = list(rejects)
        batches[0].records += sum(r.records for r in rejects)
    return batches
