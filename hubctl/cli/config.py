"""``hubctl config check|schema``: hub.toml checked without running anything."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def _problems(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """Every problem of the hub.toml at ``path`` (schema, lake, then the deep checks)."""
    from hubctl.config import build_config, read_config
    from hubctl.config_check import Problem, check_config, check_deep

    data, text = read_config(path)
    problems = check_config(data, text)
    counts: dict[str, Any] = {}
    valid = _valid_part(data, problems)
    try:
        config = replace(build_config(valid, path, hub().lake_option), data=data)
    except ConfigError as exc:  # the lake setting names a file
        return [*problems, Problem(("lake",), exc.message, exc.hint)], counts
    problems = sorted([*problems, *check_deep(config, text)], key=lambda p: p.line or 0)
    counts = {"lake": str(config.lake), "sources": len(data.get("sources") or {}),
              "pipelines": len(data.get("pipelines") or {}),
              "exports": len(data.get("exports") or {})}
    return problems, counts


def _valid_part(data: dict[str, Any], problems: list[Any]) -> dict[str, Any]:
    """``data`` without the tables that have problems (a source's or pipeline's own table,
    else the whole top-level table), so the deep checks see only what the schema passed."""
    broken = {tuple(str(k) for k in p.path[:2]) for p in problems}
    valid: dict[str, Any] = {}
    for key, value in data.items():
        if (key,) in broken:
            continue
        if key in ("sources", "pipelines"):
            value = {n: s for n, s in value.items() if (key, n) not in broken}
        elif any(b[0] == key for b in broken):
            continue
        valid[key] = value
    return valid


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
    problems, counts = _problems(path)
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
