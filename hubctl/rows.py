"""Lake rows <-> NGSI-LD entities.

A *row* is a dict keyed by lake column (``id``, ``observed_at``, attribute columns, ``lon`` and
``lat`` for the Point, ``_extra`` for attributes the schema does not know). :func:`build_table`
turns rows into a typed Arrow table (the bulk path's input) and reports cells whose value is not
of the column's type; :func:`render` turns rows back into NGSI-LD in any of the four forms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.gate import RowReasons, number_fits
from hubctl.ngsild import format_time, parse_time, with_context
from hubctl.registry import Attribute, EntityType
from hubctl.rejects import reason

__all__ = ["build_table", "entity_to_row", "extra_attributes", "render", "render_temporal"]


# Column types stored as JSON text in the lake (a GeoJSON geometry, any JSON value).
JSON_TEXT = ("json", "geometry")

def entity_to_row(entity: dict[str, Any], et: EntityType, observed_at: datetime,
                  time_source: str, unknown: Sequence[str] = ()) -> dict[str, Any]:
    """The lake row of one normalized entity; values are copied as they are (not coerced)."""
    row: dict[str, Any] = {"id": entity.get("id"), "observed_at": observed_at,
                           "_time_index": time_source}
    for name, attr in et.attributes.items():
        obj = entity.get(name)
        if not isinstance(obj, dict):
            continue
        if attr.kind == "Relationship":
            row[name] = obj.get("object")
        elif attr.is_point:
            row["lon"], row["lat"] = _lon_lat(obj.get("value"))
        else:  # timestamp text is parsed by build_table, which reports bad text
            row[name] = obj.get("value")
    extra = {k: entity[k] for k in unknown if k in entity}
    row["_extra"] = json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
    return row


def _lon_lat(geo: Any) -> tuple[Any, Any]:
    """lon, lat of a GeoJSON Point; anything else is passed on for the gate to report."""
    if geo is None:
        return None, None
    coords = geo.get("coordinates") if isinstance(geo, dict) else geo
    if not (isinstance(geo, dict) and geo.get("type") == "Point" and isinstance(coords, list)
            and len(coords) in (2, 3)):
        return coords if coords is not None else geo, None  # not a Point: a type error
    return coords[0], coords[1]


_JSON_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                               "null": type(None)}


def _json_fits(schema_type: Any, value: Any) -> bool:
    """Whether a value has one of the JSON Schema ``type`` names (any if none is declared)."""
    if schema_type is None:
        return True
    names = [schema_type] if isinstance(schema_type, str) else list(schema_type)
    for name in names:
        if name in ("number", "integer"):
            if isinstance(value, int | float) and not isinstance(value, bool) and (
                    name == "number" or float(value).is_integer()):
                return True
        elif isinstance(value, _JSON_TYPES.get(name, object)) and not (
                name != "boolean" and isinstance(value, bool)):
            return True
    return False


def _matching(rows: Sequence[dict[str, Any]], attr: Attribute) -> set[str] | None:
    """Texts of a timestamp column that match its schema pattern, in one RE2 call per column
    (the engine of the gate's pattern checks); None where the schema sets no pattern."""
    pattern = attr.value_schema.get("pattern")
    if not pattern:
        return None
    texts = list({v for r in rows if isinstance(v := r.get(attr.name), str)})
    mask = pc.match_substring_regex(pa.array(texts, pa.string()), pattern).to_pylist()
    return {t for t, ok in zip(texts, mask, strict=True) if ok}


def _date(value: Any) -> Any:
    """ISO 8601 date text (how NGSI-LD carries a date) as a date; anything else as it is."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _timestamp(value: Any, matching: set[str] | None) -> Any:
    """Timestamp text as a datetime where it matches the schema's pattern and parses."""
    if not isinstance(value, str) or (matching is not None and value not in matching):
        return value
    return parse_time(value) or value


def _fits(attr: Attribute, value: Any) -> bool:
    attr_col = attr.column.name
    if value is None:
        return True
    if attr_col in ("float64", "point", "int64"):
        return number_fits(attr_col, value)
    if attr_col in ("string", "urn"):
        return isinstance(value, str)
    if attr_col == "boolean":
        return isinstance(value, bool)
    if attr_col == "timestamp":
        return isinstance(value, datetime)
    if attr_col == "date":
        return isinstance(value, date)
    if attr_col == "string[]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return _json_fits(attr.value_schema.get("type"), value)  # json


def _cell(attr: Attribute | None, value: Any) -> Any:
    if attr is None or value is None:
        return value
    if attr.column.name in JSON_TEXT:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if attr.column.name in ("float64", "point"):
        return float(value)
    if attr.column.name == "int64":
        return int(value)
    return value


def build_table(rows: Sequence[dict[str, Any]], et: EntityType) -> tuple[pa.Table, RowReasons]:
    """A typed Arrow table in the lake schema, and the type errors found per row.

    A value of the wrong JSON type (a string where a number belongs) becomes null in the
    table and a ``type-error`` reason for its row, so the gate never sees it twice.
    """
    schema = et.arrow_schema()
    by_col: dict[str, Attribute] = {}
    for a in et.attributes.values():
        for col, _ in a.columns():
            by_col[col] = a
    bad: RowReasons = {}
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    matching = {a.name: _matching(rows, a) for a in et.attributes.values()
                if a.column.name == "timestamp"}
    for i, row in enumerate(rows):
        for f in schema:
            value = row.get(f.name)
            attr = by_col.get(f.name)
            if attr is not None and attr.column.name == "timestamp":
                value = _timestamp(value, matching[attr.name])
            elif attr is not None and attr.column.name == "date":
                value = _date(value)
            if (attr is not None and not _fits(attr, value)) or (
                    f.name == "id" and value is not None and not isinstance(value, str)):
                kind = attr.column.name if attr else "string"
                field = attr.name if attr else f.name
                code = "bad-timestamp" if kind == "timestamp" else "type-error"
                reasons = bad.setdefault(i, [])
                if all(r.field != field for r in reasons):
                    reasons.append(reason(code, field, value=value, expected=kind))
                value = None
            columns[f.name].append(_cell(attr, value))
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema), bad


def _attr_object(attr: Attribute, row: dict[str, Any]) -> dict[str, Any] | None:
    if attr.kind == "Relationship":
        obj = row.get(attr.name)
        return None if obj is None else {"type": "Relationship", "object": obj}
    if attr.is_point:
        if row.get("lon") is None or row.get("lat") is None:
            return None
        return {"type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}}
    value = row.get(attr.name)
    if value is None:
        return None
    if attr.column.name in JSON_TEXT and isinstance(value, str):
        value = json.loads(value)
    elif attr.column.name == "string" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a lake written before the column became SDM's text code
    elif isinstance(value, datetime):
        value = format_time(value)
    out: dict[str, Any] = {"type": attr.kind, "value": value}
    if attr.unit:
        out["unitCode"] = attr.unit
    return out


_ATTRIBUTE_KINDS = ("Property", "GeoProperty", "Relationship", "LanguageProperty",
                    "JsonProperty")


def extra_attributes(extra: dict[str, Any]) -> dict[str, Any]:
    """The ``_extra`` attributes of a row in normalized form.

    NGSI-LD input keeps its attributes as they came (already ``{"type": "Property", ...}``);
    the columns of a CSV or GTFS file that the schema does not map are kept as bare values
    (``{"route_sort_order": "1"}``), which become Properties here (a GeoJSON geometry a
    GeoProperty), so that normalized output never carries a bare value.
    """
    out: dict[str, Any] = {}
    for name, value in extra.items():
        if isinstance(value, dict) and value.get("type") in _ATTRIBUTE_KINDS:
            out[name] = value
        elif isinstance(value, dict) and value.get("type") in _GEOMETRIES:
            out[name] = {"type": "GeoProperty", "value": value}
        else:
            out[name] = {"type": "Property", "value": value}
    return out


_GEOMETRIES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString",
               "MultiPolygon")


def _concise(obj: dict[str, Any], key_values: bool) -> Any:
    if obj.get("type") == "Relationship":
        return obj["object"] if key_values else {"object": obj["object"]}
    if key_values or obj.get("type") == "GeoProperty":
        return obj.get("value")
    rest = {k: v for k, v in obj.items() if k != "type"}
    return rest["value"] if list(rest) == ["value"] else rest


def render(row: dict[str, Any], et: EntityType, form: str = "normalized",
           context: bool = True) -> dict[str, Any]:
    """One lake row as an NGSI-LD entity in ``normalized``, ``concise`` or ``keyValues`` form."""
    entity: dict[str, Any] = {"id": row["id"], "type": et.name}
    observed = format_time(row.get("observed_at")) if et.time_series else None
    for name, attr in et.attributes.items():
        obj = _attr_object(attr, row)
        if obj is None:
            continue
        if observed and attr.kind == "Property" and name != et.time_index:
            obj["observedAt"] = observed
        entity[name] = obj
    if row.get("_extra"):
        entity.update(extra_attributes(json.loads(row["_extra"])))
    if form != "normalized":
        entity = {k: v if k in ("id", "type") else _concise(v, form == "keyValues")
                  for k, v in entity.items()}
    return with_context(entity, et) if context else entity


def render_temporal(rows: Iterable[dict[str, Any]], et: EntityType) -> list[dict[str, Any]]:
    """Rows grouped by id in the NGSI-LD ``temporalValues`` representation."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["id"], r["observed_at"])):
        ent = by_id.setdefault(row["id"], {"id": row["id"], "type": et.name})
        when = format_time(row["observed_at"])
        for name, attr in et.attributes.items():
            obj = _attr_object(attr, row)
            if obj is None:
                continue
            slot = ent.setdefault(name, {"type": obj["type"], "values": []})
            value = obj.get("object", obj.get("value"))
            slot["values"].append([value, when])
    return [with_context(e, et) for e in by_id.values()]
