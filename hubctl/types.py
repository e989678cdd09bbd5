"""The one type-mapping table: schema column type -> Arrow type -> DuckDB type -> JSON type.

Every column of every lake table gets its type from here (like QuantumLeap's NGSI_TO_SQL).
A column type that is not in this table is an error in the schema, never a silent text column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["COLUMN_TYPES", "TIMESTAMP", "ColumnType", "column_type"]

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class ColumnType:
    """How one schema column type is stored and checked."""

    name: str
    arrow: pa.DataType
    duckdb: str
    json_types: tuple[str, ...]  # JSON Schema "type" names a value of this column may have


COLUMN_TYPES: dict[str, ColumnType] = {
    t.name: t
    for t in (
        ColumnType("float64", pa.float64(), "DOUBLE", ("number",)),
        ColumnType("int64", pa.int64(), "BIGINT", ("integer",)),
        ColumnType("string", pa.string(), "VARCHAR", ("string",)),
        ColumnType("boolean", pa.bool_(), "BOOLEAN", ("boolean",)),
        ColumnType("timestamp", TIMESTAMP, "TIMESTAMPTZ", ("string",)),
        ColumnType("date", pa.date32(), "DATE", ("string",)),
        ColumnType("json", pa.string(), "JSON", ("object", "array", "string", "number")),
        ColumnType("string[]", pa.list_(pa.string()), "VARCHAR[]", ("array",)),
        # A GeoJSON Point is stored as two columns, lon and lat; other geometries as GeoJSON text.
        ColumnType("point", pa.float64(), "DOUBLE", ("object",)),
        ColumnType("geometry", pa.string(), "VARCHAR", ("object",)),
        ColumnType("urn", pa.string(), "VARCHAR", ("string",)),
    )
}


def column_type(name: str) -> ColumnType:
    """Return the column type called ``name``; raise KeyError naming the known ones."""
    try:
        return COLUMN_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(COLUMN_TYPES))
        raise KeyError(f"unknown column type {name!r} (known: {known})") from None
