"""``hubctl export``: open-data bundles (see docs/export.md)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import ConfigError, UsageError

__all__ = ["COMMANDS"]

_KEYS = {"tables", "to", "since", "until", "bbox", "where", "licence", "title", "description",
         "keywords", "themes", "spatial", "temporal", "frequency", "contact", "privacy",
         "shapes", "base_url", "formats", "publisher", "schedule"}


def _time(value: Any, label: str) -> datetime | None:
    from hubctl.ngsild import parse_time

    if value in (None, ""):
        return None
    ts = parse_time(value if isinstance(value, str) else value.isoformat())
    if ts is None:
        raise UsageError(f"{label} {value!r} is not an ISO 8601 time",
                         hint="e.g. 2024-05-01T00:00:00Z")
    return ts


def _bbox(value: Any, label: str) -> tuple[float, float, float, float] | None:
    if value in (None, ""):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        w, s, e, n = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"{label} {value!r} must be four numbers W,S,E,N (WGS 84)",
                         hint="e.g. --bbox 128.55,35.82,128.66,35.90") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise UsageError(f"{label} {value!r} is not a box west,south,east,north in degrees")
    return (w, s, e, n)


def _as_of(values: tuple[str, ...]) -> dict[str, int | datetime]:
    out: dict[str, int | datetime] = {}
    for value in values:
        table, _, when = value.rpartition("=") if "=" in value else ("", "", value)
        if when.isdigit():
            out[table] = int(when)
        else:
            ts = _time(when, "--as-of")
            assert ts is not None
            out[table] = ts
    return out


def _request(name: str, tables: tuple[str, ...], opts: dict[str, Any]) -> Any:
    """hub.toml's [exports.NAME] and [publisher], overridden by the command line."""
    from hubctl.export.bundle import ExportRequest
    from hubctl.export.metadata import BundleMeta
    from hubctl.export.tables import Filters
    from hubctl.export.writers import FORMATS

    cfg = hub().config
    spec = dict(cfg.exports.get(name, {}))
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(f"[exports.{name}] has unknown key(s) {', '.join(unknown)}",
                          hint=f"known keys: {', '.join(sorted(_KEYS))}")
    base = cfg.path.parent if cfg.path else Path.cwd()
    publisher = {**cfg.publisher, **spec.get("publisher", {})}
    if opts["publisher"]:
        publisher["name"] = opts["publisher"]
    if not publisher.get("name"):
        raise UsageError("no publisher for the bundle", hint="pass --publisher NAME or set "
                         "name in [publisher] of hub.toml")
    to = opts["to"] or (base / spec["to"] if spec.get("to") else None)
    if to is None:
        raise UsageError("where should the bundle go?", hint="pass --to DIR (or set to = "
                         f"\"...\" in [exports.{name}])")
    formats = tuple(opts["formats"]) or tuple(spec.get("formats", FORMATS))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"unknown format(s) {', '.join(bad)}", hint=f"one of {FORMATS}")
    temporal = spec.get("temporal") or [None, None]
    meta = BundleMeta(
        name=name, title=opts["title"] or spec.get("title") or f"{name}: open data",
        description=opts["description"] or spec.get("description")
        or f"Open data exported by hubctl from the lake (bundle {name}).",
        licence=opts["licence"] or spec.get("licence") or publisher.get("licence") or "",
        publisher={k: str(v) for k, v in publisher.items()},
        keywords=list(opts["keywords"]) or list(spec.get("keywords", [])),
        themes=list(opts["themes"]) or list(spec.get("themes", [])),
        frequency=(opts["frequency"] or spec.get("frequency") or "").upper() or None,
        contact=opts["contact"] or spec.get("contact"),
        spatial=_bbox(spec.get("spatial"), f"[exports.{name}] spatial"),
        temporal=(_time(temporal[0], "temporal"), _time(temporal[1], "temporal")),
        base_url=str(spec.get("base_url", "")))
    from hubctl.export.metadata import FREQUENCIES, licence_of

    licence_of(meta.licence)  # a usage error before any work when there is none
    if meta.frequency and meta.frequency not in FREQUENCIES:
        raise UsageError(f"frequency {meta.frequency!r} is not one of {', '.join(FREQUENCIES)}")
    shapes = opts["shapes"] or (base / spec["shapes"] if spec.get("shapes") else None)
    filters = Filters(
        since=_time(opts["since"] or spec.get("since"), "--since"),
        until=_time(opts["until"] or spec.get("until"), "--until"),
        bbox=_bbox(opts["bbox"] or spec.get("bbox"), "--bbox"),
        where=opts["where"] or spec.get("where"))
    as_of = _as_of(opts["as_of"])
    chosen = list(tables) or list(spec.get("tables", []))
    if opts["all_tables"]:
        from hubctl.export.bundle import all_tables

        chosen = all_tables(hub().lake)
    return ExportRequest(name=name, tables=chosen, to=Path(to), meta=meta, filters=filters,
                         as_of=as_of, since_last=opts["since_last"], zip=opts["zip"],
                         privacy=dict(spec.get("privacy", {})), shapes=shapes, formats=formats)


@click.command("export")
@click.argument("name")
@click.argument("tables", nargs=-1)
@click.option("--to", type=click.Path(path_type=Path), default=None,
              help="Bundle folder to write (replaced if it holds an older bundle).")
@click.option("--all", "all_tables", is_flag=True, help="Export every table of the lake.")
@click.option("--since", default=None, help="Rows with event time (observed_at) >= this.")
@click.option("--until", default=None, help="Rows with event time < this.")
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Rows located inside this box.")
@click.option("--where", default=None, metavar="SQL",
              help="Condition on the table's published columns, e.g. \"no2 > 40\".")
@click.option("--as-of", "as_of", multiple=True, metavar="[TABLE=]VERSION|TIME",
              help="Tables as they were at a version or time (Delta time travel).")
@click.option("--since-last", is_flag=True,
              help="Only what is new since the last export of NAME (a dataset series).")
@click.option("--zip", is_flag=True, help="Write one .zip file instead of a folder.")
@click.option("--publisher", default=None, help="Publisher name (else [publisher] name).")
@click.option("--licence", default=None, help="SPDX id or URL, e.g. CC-BY-4.0 (required).")
@click.option("--title", default=None, help="Catalogue title.")
@click.option("--description", default=None, help="Catalogue description.")
@click.option("--keyword", "keywords", multiple=True, help="A keyword (repeatable).")
@click.option("--theme", "themes", multiple=True, help="EU data theme code, e.g. ENVI.")
@click.option("--frequency", default=None, help="Update frequency, e.g. DAILY.")
@click.option("--contact", default=None, help="Contact e-mail address.")
@click.option("--format", "formats", multiple=True,
              type=click.Choice(["parquet", "csv", "geojson", "ngsi-ld"]),
              help="Only these data formats (default: all that apply).")
@click.option("--shapes", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with the DCAT-AP 3.0.0 SHACL shapes to check dcat.ttl against.")
@json_option
def export(name: str, tables: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    """Write a privacy-safe, reproducible open-data bundle NAME of the given TABLEs.

    Data as Parquet, CSV, GeoJSON and NGSI-LD; datapackage.json (Frictionless), dcat.ttl and
    dcat.jsonld (DCAT-AP 3.0), README.md, index.html and SHA256SUMS. Each type's schema
    decides what may be published (x-hub-publish): calls only as grid counts with small
    cells suppressed, meter readings only as 15/15 aggregates, EV sessions without ids.
    Every export is recorded in the _exports table.

    \b
    Examples:
      hubctl export air AirQualityObserved --to out/air --licence CC-BY-4.0 --publisher "City"
      hubctl export safety Alert derived.patrol_points_hotspots --to out/safety --zip
      hubctl export air --since-last          # tables and metadata from [exports.air]
    """
    from hubctl.export.bundle import export_bundle

    result = export_bundle(hub().lake, _request(name, tables, {"tables": tables, **opts}))
    if as_json:
        emit_json(result)
        return
    print_rows(["table", "version", "rows", "published as", "files"],
               [[t["table"], t["version"], t["rows"], t["published_as"], len(t["files"])]
                for t in result["tables"]], title=f"bundle {name}")
    click.echo(f"bundle: {result['bundle']}")


COMMANDS = [export]
