"""NGSI-LD views of the lake: ``hubctl entities`` and ``hubctl validate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import UsageError

__all__ = ["COMMANDS"]


@click.command()
@click.argument("entity_type")
@click.option("--id", "entity_id", default=None, help="Only this entity id (URN).")
@click.option("--since", default=None, help="observed_at >= this ISO 8601 time.")
@click.option("--until", default=None, help="observed_at < this ISO 8601 time.")
@click.option("--format", "form", default="normalized", show_default=True,
              type=click.Choice(["normalized", "concise", "keyValues", "temporal"],
                                case_sensitive=False),
              help="NGSI-LD representation (any case: keyvalues = keyValues).")
@click.option("--latest", is_flag=True,
              help="The current state of each entity, as NGSI-LD brokers give it: the last "
                   "value of each attribute (from whichever row last gave it).")
@click.option("--latest-row", is_flag=True,
              help="Only the newest row of each entity (attributes it lacks stay empty).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=0),
              help="At most this many rows (0 = all); what is left out is said on stderr.")
def entities(entity_type: str, entity_id: str | None, since: str | None, until: str | None,
             form: str, latest: bool, latest_row: bool, limit: int) -> None:
    """Print entities of one type as NGSI-LD JSON (with their @context).

    \b
    Examples:
      hubctl entities AirQualityObserved --format normalized --latest
      hubctl entities GtfsTrip --format keyValues --limit 0 > trips.json
      hubctl entities AirQualityObserved --id urn:ngsi-ld:AirQualityObserved:BETR801 \\
          --since 2019-06-01T00:00:00Z --format temporal
    """
    from hubctl.catalog import Catalog
    from hubctl.ngsild import parse_time
    from hubctl.registry import get_type
    from hubctl.rows import render, render_temporal

    et = get_type(entity_type)
    where: list[str] = []
    params: list[object] = []
    for value, op, label in ((since, ">=", "--since"), (until, "<", "--until")):
        if value is not None:
            ts = parse_time(value)
            if ts is None:
                raise UsageError(f"{label} {value!r} is not an ISO 8601 time",
                                 hint="e.g. 2019-06-01T00:00:00Z")
            where.append(f"observed_at {op} ?")
            params.append(ts)
    if entity_id:
        where.append("id = ?")
        params.append(entity_id)
    if latest and latest_row:
        raise UsageError("give --latest or --latest-row, not both")
    lake = hub().lake
    lake.require_root()
    cat = Catalog(lake)
    try:
        view = f"{et.name}_latest" if latest_row else et.name
        cat.require(view)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        source = f'SELECT * FROM "{view}" {clause}'
        if latest:
            source = _current_state(cat, view, clause, params)
        cap = f"LIMIT {int(limit) + 1}" if limit else ""
        rows = cat.query(f"SELECT * FROM ({source}) ORDER BY id, observed_at {cap}",
                         params).to_pylist()
        if limit and len(rows) > limit:
            rows = rows[:limit]
            total = cat.query(f"SELECT count(*) AS n FROM ({source})",
                              params).to_pylist()[0]["n"]
            click.echo(f"{total - limit:,} of {total:,} rows left out (--limit {limit:,}): "
                       "give --limit 0 for all, or narrow with --id, --since, --until",
                       err=True)
    finally:
        cat.close()
    if form == "temporal":
        emit_json(render_temporal(rows, et))
    else:
        emit_json([render(r, et, form) for r in rows])


def _current_state(cat: Any, view: str, clause: str, params: list[object]) -> str:
    """SQL of one row per entity holding the last non-null value of every attribute (the
    NGSI-LD current state), its observed_at the newest row's."""
    columns = cat.query(f'SELECT * FROM "{view}" LIMIT 0', []).column_names
    picks = []
    for c in columns:
        q = '"' + c.replace('"', '""') + '"'
        if c == "id":
            continue
        if c == "observed_at":
            picks.append(f"max({q}) AS {q}")
        elif c.startswith("_"):
            picks.append(f"arg_max({q}, observed_at) AS {q}")
        else:
            picks.append(f"arg_max({q}, observed_at) FILTER (WHERE {q} IS NOT NULL) AS {q}")
    return f'SELECT id, {", ".join(picks)} FROM "{view}" {clause} GROUP BY id'


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@json_option
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check NGSI-LD documents against the schemas; list every problem with its JSON path.

    Accepts a single entity, an array or JSON Lines, in normalized, concise or keyValues form.
    Exits 1 when any entity has a problem.

    \b
    Example:
      hubctl validate AirQualityObserved.example-normalized.jsonld
    """
    from hubctl.ingest import expand_inputs

    problems: list[dict[str, Any]] = []
    checked = 0
    for path in expand_inputs(list(files)):
        n, found = _validate_file(path)
        checked += n
        problems += found
    if as_json:
        emit_json({"entities": checked, "problems": problems})
    elif problems:
        print_rows(["file", "entity", "path", "severity", "code", "message"],
                   [[Path(p["file"]).name, p["entity"], p["path"], p["severity"], p["code"],
                     p["message"]] for p in problems])
    errors = [p for p in problems if p["severity"] == "error"]
    if not as_json:
        click.echo(f"{checked} entities, {len(errors)} errors, "
                   f"{len(problems) - len(errors)} warnings", err=True)
    if errors:
        sys.exit(1)


def _validate_file(path: Path) -> tuple[int, list[dict[str, Any]]]:
    from hubctl.gate import validate_entity
    from hubctl.jsonstream import iter_records, read_chunks
    from hubctl.ngsild import normalize, resolve_type
    from hubctl.registry import get_type

    out: list[dict[str, Any]] = []
    count = 0
    for pointer, obj, _ in iter_records(read_chunks(path)):  # bounded memory, any file size
        count += 1

        def add(entity: str, where: str, code: str, message: str, ptr: str = pointer,
                severity: str = "error") -> None:
            out.append({"file": str(path), "entity": entity, "path": where, "code": code,
                        "message": message, "record": ptr, "severity": severity})

        if isinstance(obj, Exception):
            add("", pointer, "malformed-record", str(obj))
            continue
        if not isinstance(obj, dict):
            add("", pointer, "malformed-record", "an entity must be a JSON object")
            continue
        ident = obj.get("id", "")
        name, problem = resolve_type(obj, None)
        if problem is not None:
            add(ident, f"{pointer.rstrip('/')}/type", problem.code, problem.message)
            continue
        et = get_type(name)
        found: dict[tuple[str, str], str] = {}
        base = pointer.rstrip("/")
        for only, where, one in _instances(obj, base):
            parsed = normalize(one, et)
            for r in parsed.reasons + validate_entity(parsed.entity, et):
                if only is None:
                    found.setdefault((f"{base}/{r.field}".replace(".", "/"), r.code), r.message)
                elif (r.field or "").split(".")[0] == only:
                    found.setdefault((where, r.code), r.message)
            for name in parsed.unknown:
                found.setdefault((f"{pointer.rstrip('/')}/{name}", "unknown-attribute"),
                                 f"{name} is not in the {et.name} schema (kept in _extra on "
                                 "ingest)")
        for (where, code), message in found.items():
            add(ident, where, code, message,
                severity="warning" if code == "unknown-attribute" else "error")
    return count, out


def _instances(obj: dict[str, Any], pointer: str
               ) -> list[tuple[str | None, str, dict[str, Any]]]:
    """The entity as it is, or, in the temporal form (``"values": [[value, time], ...]`` per
    attribute, as ``entities --format temporal`` writes it), its current state and each
    earlier attribute instance set into it: (the attribute an entity is there to check, or
    None for all; the JSON pointer of that instance; the entity in normalized form)."""
    temporal = {k: v for k, v in obj.items()
                if isinstance(v, dict) and isinstance(v.get("values"), list)}
    if not temporal:
        return [(None, pointer, obj)]

    def instance(attr: dict[str, Any], pair: Any) -> dict[str, Any]:
        value, when = (pair + [None, None])[:2] if isinstance(pair, list) else (pair, None)
        kind = attr.get("type", "Property")
        out = {"type": kind, "object" if kind == "Relationship" else "value": value}
        return out | ({"observedAt": when} if when else {})

    current = dict(obj)
    for name, attr in temporal.items():
        if attr["values"]:
            current[name] = instance(attr, attr["values"][-1])
        else:
            current.pop(name)
    out: list[tuple[str | None, str, dict[str, Any]]] = [(None, pointer, current)]
    for name, attr in temporal.items():
        for i, pair in enumerate(attr["values"][:-1]):
            out.append((name, f"{pointer}/{name}/values/{i}",
                        current | {name: instance(attr, pair)}))
    return out


COMMANDS = [entities, validate]
