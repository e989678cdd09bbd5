"""Data files of a bundle, written by DuckDB straight from the published view (streamed: the
table is never held in memory): Parquet (zstd), CSV (RFC 4180, ISO 8601 UTC timestamps),
GeoJSON (RFC 7946) and NGSI-LD (normalized JSON-LD entities, one per line)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from hubctl.duck import quote_ident
from hubctl.export.tables import Column, Published

__all__ = ["FORMATS", "write_csv", "write_geojson", "write_ngsi_ld", "write_parquet"]

FORMATS = ("parquet", "csv", "geojson", "ngsi-ld")
_BATCH = 50_000


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def iso(expr: str, duck: str = "TIMESTAMP WITH TIME ZONE") -> str:
    """SQL giving ISO 8601 UTC text (``2024-05-01T10:00:00Z``; a fraction of a second only if
    any, without trailing zeros) of a timestamp of DuckDB type ``duck``.

    DuckDB's own text of a timestamp with time zone, on the export's UTC connection
    (``2024-05-01 10:00:00+00``), with ``T`` and ``Z``: a third of the CPU time of
    ``strftime`` or of a cast to a plain timestamp (which goes through ICU)."""
    text = f"replace(CAST({expr} AS VARCHAR), ' ', 'T')"
    if "TIME ZONE" in duck.upper() or duck.upper() == "TIMESTAMPTZ":
        return f"replace({text}, '+00', 'Z')"
    return f"{text} || 'Z'"


def _flat(col: Column, as_text: bool) -> str:
    """A column as written to a flat file (lists as JSON text; timestamps as ISO text)."""
    q = quote_ident(col.name)
    if col.role == "list":
        return f"CAST(to_json({q}) AS VARCHAR) AS {q}"
    if as_text and col.duck.startswith("TIMESTAMP"):
        return f"{iso(q, col.duck)} AS {q}"
    return q


def _copy(con: duckdb.DuckDBPyConnection, pub: Published, path: Path, as_text: bool,
          options: str) -> None:
    cols = ", ".join(_flat(c, as_text) for c in pub.columns)
    con.execute(f"COPY (SELECT {cols} FROM {quote_ident(pub.view)}) TO {_literal(str(path))} "
                f"({options})").fetchall()


def write_parquet(con: duckdb.DuckDBPyConnection, pub: Published, path: Path) -> None:
    """Parquet, zstd, row order of the view (its key)."""
    _copy(con, pub, path, False, "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880")


def write_csv(con: duckdb.DuckDBPyConnection, pub: Published, path: Path) -> None:
    """CSV: UTF-8, comma, header, RFC 4180 quoting, CRLF-free; timestamps ISO 8601 UTC."""
    _copy(con, pub, path, True, "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', "
                                "ESCAPE '\"', NULLSTR ''")


def _json_value(col: Column) -> str:
    """SQL for a column's value inside a JSON document."""
    q = quote_ident(col.name)
    if col.duck.startswith("TIMESTAMP"):
        return iso(q, col.duck)
    if col.role in ("json", "geometry"):
        return f"json({q})"
    return q


def _stream(con: duckdb.DuckDBPyConnection, sql: str, path: Path, head: str, sep: str,
            tail: str) -> None:
    """Write the one text column of ``sql`` joined by ``sep`` between ``head`` and ``tail``."""
    reader = con.sql(sql).to_arrow_reader(_BATCH)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(head)
        first = True
        for batch in reader:
            lines = batch.column(0).to_pylist()
            if not lines:
                continue
            f.write(("" if first else sep) + sep.join(lines))
            first = False
        f.write(tail)


def write_geojson(con: duckdb.DuckDBPyConnection, pub: Published, path: Path) -> None:
    """A GeoJSON FeatureCollection (WGS 84 lon/lat; polygons counter-clockwise)."""
    geo = pub.geo
    if geo == "point":
        geometry = ("CASE WHEN lon IS NULL OR lat IS NULL THEN 'null' ELSE "
                    "'{\"type\":\"Point\",\"coordinates\":[' || CAST(to_json(lon) AS VARCHAR) "
                    "|| ',' || CAST(to_json(lat) AS VARCHAR) || ']}' END")
        skip = {"lon", "lat"}
    else:
        assert geo is not None
        geometry = f"coalesce(CAST(json({quote_ident(geo)}) AS VARCHAR), 'null')"
        skip = {geo}
    props = [c for c in pub.columns if c.name not in skip]
    obj = "json_object(" + ", ".join(f"{_literal(c.name)}, {_json_value(c)}" for c in props) \
        + ")" if props else "'{}'"
    fid = "'\"id\":' || CAST(to_json(id) AS VARCHAR) || ','" \
        if any(c.name == "id" for c in pub.columns) else "''"
    sql = (f"SELECT '{{\"type\":\"Feature\",' || {fid} || '\"geometry\":' || {geometry} || "
           f"',\"properties\":' || CAST({obj} AS VARCHAR) || '}}' FROM {quote_ident(pub.view)}")
    _stream(con, sql, path, '{"type":"FeatureCollection","features":[\n', ",\n", "\n]}\n")


def write_ngsi_ld(con: duckdb.DuckDBPyConnection, pub: Published, path: Path) -> None:
    """NGSI-LD normalized entities with their @context, one JSON document per line."""
    et = pub.entity
    assert et is not None
    names = {c.name for c in pub.columns}
    observed = iso("observed_at") if et.time_series else None
    parts = ["'{\"id\":' || CAST(to_json(id) AS VARCHAR)",
             f"',\"type\":' || {_literal(json.dumps(et.name))}"]
    for name, attr in et.attributes.items():
        if attr.is_point:
            if not {"lon", "lat"} <= names:
                continue
            parts.append(
                "CASE WHEN lon IS NULL OR lat IS NULL THEN '' ELSE ',' || "
                f"{_literal(json.dumps(name))} || ':{{\"type\":\"GeoProperty\",\"value\":"
                "{\"type\":\"Point\",\"coordinates\":[' || CAST(to_json(lon) AS VARCHAR) || ',' "
                "|| CAST(to_json(lat) AS VARCHAR) || ']}}' END")
            continue
        if name not in names:
            continue
        col = next(c for c in pub.columns if c.name == name)
        q = quote_ident(name)
        if attr.kind == "Relationship":
            body = f"json_object('type', 'Relationship', 'object', {q})"
        else:
            fields = [f"'type', {_literal(attr.kind)}", f"'value', {_json_value(col)}"]
            if attr.unit:
                fields.append(f"'unitCode', {_literal(attr.unit)}")
            if observed and attr.kind == "Property" and name != et.time_index:
                fields.append(f"'observedAt', {observed}")
            body = "json_object(" + ", ".join(fields) + ")"
        parts.append(f"CASE WHEN {q} IS NULL THEN '' ELSE ',' || "
                     f"{_literal(json.dumps(name))} || ':' || CAST({body} AS VARCHAR) END")
    parts.append(_literal(',"@context":' + json.dumps(et.context) + "}"))
    sql = f"SELECT {' || '.join(parts)} FROM {quote_ident(pub.view)}"
    _stream(con, sql, path, "", "\n", "\n")
