"""The NGSI-LD model: ids, time index, and the normalized / concise / keyValues forms.

Internally an entity is held in the *normalized* form (every attribute an object with a
``type`` of Property, GeoProperty or Relationship), because that is what the schemas in
``schemas/`` describe. Concise and keyValues input is expanded with the help of the schema.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from hubctl.errors import InputError
from hubctl.registry import EntityType, registry
from hubctl.rejects import Reason, reason
from hubctl.units import conversion_factor, unit_code

__all__ = [
    "FORMS",
    "Parsed",
    "entity_id",
    "format_time",
    "local_id",
    "normalize",
    "parse_time",
    "time_index",
]

URN_PREFIX = "urn:ngsi-ld:"
FORMS = ("normalized", "concise", "keyValues", "temporal")
_SAFE = "-._~!$&'()*+,;=:@"
_ATTR_TYPES = ("Property", "GeoProperty", "Relationship", "LanguageProperty", "JsonProperty")


def entity_id(type_name: str, local: str) -> str:
    """``urn:ngsi-ld:<Type>:<local>``, percent-encoding what a URN may not hold.

    Any local id works, Korean station names included: ``entity_id("PointOfInterest", "중구")``
    gives ``urn:ngsi-ld:PointOfInterest:%EC%A4%91%EA%B5%AC``; :func:`local_id` reverses it.
    """
    local = str(local).strip()
    if local.startswith(URN_PREFIX):
        return local
    return f"{URN_PREFIX}{type_name}:{quote(local, safe=_SAFE)}"


def local_id(urn: str) -> str:
    """The local part of an NGSI-LD URN, decoded."""
    parts = urn.split(":", 3)
    return unquote(parts[3]) if len(parts) == 4 and urn.startswith(URN_PREFIX) else urn


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO 8601 text (``Z``, offset or naive = UTC) or epoch seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def format_time(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, seconds precision unless there are fractions."""
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    text = ts.isoformat(timespec="microseconds" if ts.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass
class Parsed:
    """One entity after parsing: its normalized form and what parsing found."""

    entity: dict[str, Any]
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # attributes not in the schema


def _expand(name: str, value: Any, et: EntityType) -> dict[str, Any]:
    """One attribute in normalized form, from normalized, concise or keyValues input."""
    attr = et.attributes.get(name)
    if isinstance(value, dict) and value.get("type") in _ATTR_TYPES:
        return dict(value)  # normalized
    if isinstance(value, dict) and ("value" in value or "object" in value):
        out = dict(value)  # concise: the type is implied
        out["type"] = "Relationship" if "object" in value else (
            attr.kind if attr and attr.kind != "Relationship" else "Property")
        return out
    kind = attr.kind if attr else ("GeoProperty" if _is_geojson(value) else "Property")
    if kind == "Relationship":
        return {"type": "Relationship", "object": value}
    return {"type": kind, "value": value}


def _unwrap(attr_obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON-LD value object (``{"@type": "DateTime", "@value": ...}``) as its plain value."""
    value = attr_obj.get("value")
    if isinstance(value, dict) and "@value" in value:
        attr_obj["value"] = value["@value"]
    return attr_obj


def _is_geojson(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in (
        "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")


def _convert_unit(name: str, attr_obj: dict[str, Any], canonical: str) -> Reason | None:
    published = attr_obj.get("unitCode")
    if published is None or published == canonical:
        if published is None and isinstance(attr_obj.get("value"), int | float):
            attr_obj["unitCode"] = canonical  # no unit given: the canonical one is assumed
        return None
    code = unit_code(str(published))
    factor = conversion_factor(name, code, canonical) if code else None
    if factor is None:
        return reason("unknown-unit", name, unit=published, canonical=canonical)
    value = attr_obj.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        attr_obj["value"] = value * factor
    attr_obj["unitCode"] = canonical
    return None


def normalize(obj: Any, et: EntityType) -> Parsed:
    """Turn one entity document (any of the three forms) into the normalized form.

    Units are converted to the schema's canonical unit; attributes the schema does not know
    are kept and listed in :attr:`Parsed.unknown`.
    """
    if not isinstance(obj, dict):
        return Parsed({}, [reason("malformed-record", detail="an entity must be a JSON object")])
    out: dict[str, Any] = {}
    parsed = Parsed(out)
    for key, value in obj.items():
        if key in ("id", "type", "@context"):
            out[key] = value
            continue
        attr_obj = _unwrap(_expand(key, value, et))
        attr = et.attributes.get(key)
        if attr is None:
            parsed.unknown.append(key)
        elif attr.unit:
            bad = _convert_unit(key, attr_obj, attr.unit)
            if bad:
                parsed.reasons.append(bad)
        out[key] = attr_obj
    return parsed


def time_index(entity: dict[str, Any], et: EntityType,
               arrival: datetime) -> tuple[datetime, str]:
    """The time of an entity and where it came from.

    Precedence: the newest ``observedAt`` of its attributes, then ``dateObserved`` (or the
    type's declared time index), then ``observationDateTime`` (what Smart Data Models' Vehicle
    and EVChargingStation examples carry), ``TimeInstant`` / ``timestamp``, else arrival time.
    """
    observed = [parse_time(v.get("observedAt")) for k, v in entity.items()
                if isinstance(v, dict) and k not in ("@context",)]
    observed_ok = [t for t in observed if t is not None]
    if observed_ok:
        return max(observed_ok), "observedAt"
    for name in dict.fromkeys([et.time_index or "dateObserved", "dateObserved",
                               "observationDateTime", "TimeInstant", "timestamp"]):
        attr = entity.get(name)
        if isinstance(attr, dict):
            ts = parse_time(attr.get("value"))
            if ts is not None:
                return ts, name
    return arrival, "arrival"


def iter_documents(text: str, source: str) -> Iterator[tuple[str, Any]]:
    """Entities in a document: one object, an array, or JSON Lines. Yields (pointer, obj).

    A line of JSON Lines that does not parse yields (pointer, ValueError); line numbers are
    those of the file. A document that is not JSON and has no line holding a JSON object
    (a broken pretty-printed document, say) yields one ValueError where parsing stopped.
    Files are read in bounded memory with :func:`hubctl.jsonstream.iter_records`.
    """
    from hubctl.jsonstream import iter_records

    for pointer, obj, _ in iter_records([text]):
        yield pointer, obj


def with_context(entity: dict[str, Any], et: EntityType) -> dict[str, Any]:
    """The entity with the type's @context last, as NGSI-LD JSON-LD documents carry it."""
    out = {k: v for k, v in entity.items() if k != "@context"}
    out["@context"] = list(et.context)
    return out


def type_name(value: Any) -> str:
    """The short type name from ``AirQualityObserved`` or an expanded IRI such as
    ``https://smartdatamodels.org/dataModel.Environment/AirQualityObserved``."""
    if not isinstance(value, str):
        return ""
    for sep in ("#", "/", ":"):
        value = value.rsplit(sep, 1)[-1]
    return value


def read_document(path: Path) -> tuple[str, int]:
    """The text of a file and its size in bytes; InputError if unreadable or not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", path=str(path),
                         hint="check that the file exists and that you may read it") from None
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            path=str(path),
            hint="JSON must be UTF-8; convert the file first, e.g. "
                 "`iconv -f CP949 -t UTF-8 in.json > out.json`") from None


def resolve_type(obj: dict[str, Any], assumed: str | None) -> tuple[str, Reason | None]:
    """The registered type of an entity, or the type to file it under and why it is rejected."""
    declared = obj.get("type")
    if declared in (None, "", []):
        return (assumed, None) if assumed else ("", reason("missing-required", "type"))
    names = [type_name(t) for t in (declared if isinstance(declared, list) else [declared])]
    known = next((n for n in names if n in registry()), None)
    if known:
        return known, None
    return names[0] if names else "", reason("unknown-type", "type", value=declared)
