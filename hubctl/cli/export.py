"""``hubctl export``: open-data bundles (see docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows

__all__ = ["COMMANDS"]


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
    from hubctl.export.request import export_request

    ctx = hub()
    result = export_bundle(ctx.lake, export_request(ctx.config, ctx.lake, name, tables, opts))
    if as_json:
        emit_json(result)
        return
    print_rows(["table", "version", "rows", "published as", "files"],
               [[t["table"], t["version"], t["rows"], t["published_as"], len(t["files"])]
                for t in result["tables"]], title=f"bundle {name}")
    click.echo(f"bundle: {result['bundle']}")


COMMANDS = [export]
