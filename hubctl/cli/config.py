"""``hubctl config check|schema``: hub.toml checked without running anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option
from hubctl.errors import EXIT_USAGE, ConfigError

__all__ = ["COMMANDS"]


@click.group("config")
def config_group() -> None:
    """hub.toml: check it, or print its JSON Schema.

    \b
    Examples:
      hubctl config check
      hubctl --config /srv/hub/hub.toml config check --json
      hubctl config schema > hub-config.schema.json
    """


@config_group.command("check")
@json_option
def check(as_json: bool) -> None:
    """Check hub.toml and print every problem at once; exit 0 when there are none, else 2.

    Checks every key and type against the schema (unknown keys with the closest valid one),
    the lake setting, each source's adapter, options and schedule, MQTT settings, and each
    pipeline's name, parameters, schedule and `after` sources. Nothing runs; no lake is made.

    \b
    Examples:
      hubctl config check
      hubctl --config /srv/hub/hub.toml config check --json | jq .problems
    """
    option = hub().config_option
    path = option or Path("hub.toml")
    if option is None and not path.is_file():
        raise ConfigError("no hub.toml here", hint="run `hubctl init`, or give --config FILE")
    from hubctl.config_check import check_file

    problems, counts = check_file(path, hub().lake_option)
    if as_json:
        emit_json({"config": str(path), "ok": not problems, **counts,
                   "problems": [p.as_json() for p in problems]})
    elif problems:
        for p in problems:
            click.secho(p.text(path), fg="red", err=True)
        click.echo(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}",
                   err=True)
    else:
        click.echo(f"{path}: ok ({counts['sources']} sources, {counts['pipelines']} "
                   f"pipelines, {counts['exports']} exports; lake {counts['lake']})")
    if problems:
        sys.exit(EXIT_USAGE)


@config_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of hub.toml (Draft 2020-12), for editors and other tools.

    \b
    Example:
      hubctl config schema > hub-config.schema.json
    """
    from hubctl.config_schema import SCHEMA

    click.echo(json.dumps(SCHEMA, indent=2, ensure_ascii=False))


COMMANDS = [config_group]
