"""The type registry: entity types, their attributes and lake columns, read from ``schemas/``.

Each schema is a JSON Schema (Draft 2020-12) of the NGSI-LD *normalized* form of one entity
type, annotated with the hub's own keywords:

- top level: ``x-hub-context`` (the JSON-LD @context), ``x-hub-time-series`` (partitioned by
  event date, keyed by id and observed_at) and ``x-hub-time-index`` (the attribute that dates it);
- per attribute: ``x-hub-kind`` (Property, GeoProperty, Relationship), ``x-hub-column`` (a name
  from :data:`hubctl.types.COLUMN_TYPES`), ``x-hub-unit`` (UN/CEFACT code of the canonical unit),
  ``x-hub-vocabulary`` (the hub's own terms for a text attribute, e.g. PointOfInterest's facility
  kinds, which adapters and pipelines offer as choices) and, for relationships,
  ``x-hub-object-type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa

from hubctl.errors import HubError
from hubctl.types import TIMESTAMP, ColumnType, column_type

__all__ = [
    "PROVENANCE",
    "Attribute",
    "EntityType",
    "get_type",
    "registry",
    "vocabulary",
]

KINDS = ("Property", "GeoProperty", "Relationship")
# Columns every table carries besides its attributes.
PROVENANCE = ("_source", "_run_id", "_ingested_at")


@dataclass(frozen=True, eq=False)
class Attribute:
    """One NGSI-LD attribute of an entity type, as the schema declares it."""

    name: str
    kind: str
    column: ColumnType
    value_schema: dict[str, Any]
    unit: str | None = None
    object_type: str | None = None
    description: str = ""
    vocabulary: tuple[str, ...] = ()

    @property
    def is_point(self) -> bool:
        """True where the attribute is a GeoJSON Point stored as lon/lat columns."""
        return self.column.name == "point"

    def columns(self) -> list[tuple[str, pa.DataType]]:
        """The lake columns that hold this attribute."""
        if self.is_point:
            return [("lon", pa.float64()), ("lat", pa.float64())]
        return [(self.name, self.column.arrow)]


@dataclass(frozen=True, eq=False)
class EntityType:
    """An entity type: its schema, attributes and the shape of its lake table."""

    name: str
    description: str
    context: list[str]
    time_series: bool
    time_index: str | None
    required: tuple[str, ...]
    attributes: dict[str, Attribute]
    schema: dict[str, Any] = field(repr=False)

    @property
    def key(self) -> tuple[str, ...]:
        """Key columns of a row: (id, observed_at) for time series, id for static entities."""
        return ("id", "observed_at") if self.time_series else ("id",)

    @property
    def point(self) -> Attribute | None:
        """The Point attribute stored as lon/lat (at most one per type), if any."""
        return next((a for a in self.attributes.values() if a.is_point), None)

    def attribute_columns(self) -> list[str]:
        """Lake columns that hold attribute values (lon/lat for the Point)."""
        return [c for a in self.attributes.values() for c, _ in a.columns()]

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of this type's lake table."""
        fields = [pa.field("id", pa.string(), nullable=False), pa.field("observed_at", TIMESTAMP)]
        for attr in self.attributes.values():
            fields += [pa.field(name, typ) for name, typ in attr.columns()]
        fields += [
            pa.field("_extra", pa.string()),
            pa.field("_time_index", pa.string()),
            pa.field("_source", pa.string()),
            pa.field("_run_id", pa.string()),
            pa.field("_ingested_at", TIMESTAMP),
        ]
        if self.time_series:
            fields.append(pa.field("date", pa.date32()))
        return pa.schema(fields)

    @property
    def partition_by(self) -> list[str]:
        """Partition columns of the lake table."""
        return ["date"] if self.time_series else []


def _attribute(type_name: str, name: str, spec: dict[str, Any]) -> Attribute:
    kind = spec.get("x-hub-kind")
    if kind not in KINDS:
        raise HubError(f"schemas/{type_name}.json: attribute {name!r} has x-hub-kind {kind!r}; "
                       f"use one of {', '.join(KINDS)}")
    try:
        col = column_type(spec.get("x-hub-column", ""))
    except KeyError as exc:
        raise HubError(f"schemas/{type_name}.json: attribute {name!r}: {exc.args[0]}") from None
    props = spec.get("properties", {})
    value_schema = props.get("object" if kind == "Relationship" else "value", {})
    return Attribute(
        name=name, kind=kind, column=col, value_schema=value_schema,
        unit=spec.get("x-hub-unit"), object_type=spec.get("x-hub-object-type"),
        description=spec.get("description", ""),
        vocabulary=tuple(spec.get("x-hub-vocabulary", ())),
    )


def parse_schema(schema: dict[str, Any]) -> EntityType:
    """Build an :class:`EntityType` from one annotated JSON Schema."""
    name = schema["title"]
    attrs = {
        k: _attribute(name, k, v)
        for k, v in schema.get("properties", {}).items()
        if k not in ("id", "type", "@context")
    }
    points = [a.name for a in attrs.values() if a.is_point]
    if len(points) > 1:
        raise HubError(f"schemas/{name}.json: only one Point attribute may be stored as lon/lat, "
                       f"found {points}; declare the others as 'geometry'")
    return EntityType(
        name=name,
        description=schema.get("description", ""),
        context=list(schema.get("x-hub-context", [])),
        time_series=bool(schema.get("x-hub-time-series", False)),
        time_index=schema.get("x-hub-time-index"),
        required=tuple(r for r in schema.get("required", []) if r not in ("id", "type")),
        attributes=attrs,
        schema=schema,
    )


@cache
def registry() -> dict[str, EntityType]:
    """Every entity type in ``schemas/``, by name. A duplicate title fails at load."""
    types: dict[str, EntityType] = {}
    for entry in sorted(resources.files("hubctl.schemas").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        et = parse_schema(json.loads(entry.read_text(encoding="utf-8")))
        if et.name in types:
            raise HubError(f"schemas/{entry.name}: entity type {et.name!r} is defined twice")
        types[et.name] = et
    return types


def vocabulary(type_name: str, attribute: str) -> tuple[str, ...]:
    """The terms schemas/<type_name>.json declares for ``attribute`` (``x-hub-vocabulary``):
    ``vocabulary("PointOfInterest", "category")`` gives the facility kinds."""
    return get_type(type_name).attributes[attribute].vocabulary


def get_type(name: str) -> EntityType:
    """The entity type called ``name``, or a HubError that lists the known ones."""
    types = registry()
    if name not in types:
        raise HubError(f"unknown entity type {name!r}",
                       hint=f"known types: {', '.join(sorted(types))}")
    return types[name]
