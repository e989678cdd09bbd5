"""Checking hub.toml: the schema (:data:`hubctl.config_schema.SCHEMA`) with every problem's
line, key path and closest valid key, and the deep checks of ``hubctl config check`` that need
the adapters and pipelines (:func:`check_deep`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import ConfigError, HubError

if TYPE_CHECKING:
    from hubctl.config import Config, PipelineSpec, Source

__all__ = ["Problem", "check_config", "check_deep", "check_file", "check_option_value",
           "dotted", "pipeline_problems"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in hub.toml: the key's path, its line (if found), what and what to do."""

    path: tuple[str | int, ...]
    message: str
    hint: str | None = None
    line: int | None = None

    @property
    def key(self) -> str:
        """The path as TOML writes it: ``sources.eu-air.options``, quoting where needed."""
        return dotted(self.path)

    def text(self, file: Path | str | None = None) -> str:
        """``hub.toml:LINE: KEY: message (hint)`` for people."""
        where = f"{file or 'hub.toml'}{f':{self.line}' if self.line else ''}"
        key = f"{self.key}: " if self.path else ""
        return f"{where}: {key}{self.message}" + (f" ({self.hint})" if self.hint else "")

    def as_json(self) -> dict[str, Any]:
        """The problem as a JSON object."""
        return {"key": self.key, "line": self.line, "message": self.message, "hint": self.hint}


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: tuple[str | int, ...]) -> str:
    """A key path as TOML writes it (``a.b."c/d"``, ``inputs[0]`` for array items)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE.match(part) else '"' + part.replace('"', '\\"') + '"'
            out += ("." if out else "") + text
    return out


def _plain(value: Any) -> Any:
    """TOML values as JSON sees them: dates and times become ISO 8601 text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_TOML_TYPES = {"string": "text", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "array": "a list [...]", "object": "a table",
               "null": "nothing"}


def _kind(value: Any) -> str:
    """What a TOML value is, in the user's words."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a table" if isinstance(value, dict) else type(value).__name__


def _wanted(schema: dict[str, Any]) -> str:
    """What a schema accepts, in the user's words."""
    if "anyOf" in schema:
        return " or ".join(_wanted(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f'"{v}"' if isinstance(v, str) else str(v)
                                     for v in schema["enum"])
    kinds = schema.get("type", [])
    if kinds == "array" and schema.get("items", {}).get("type") == "string":
        return "a list of texts"
    return " or ".join(_TOML_TYPES.get(k, k) for k in ([kinds] if isinstance(kinds, str)
                                                        else kinds)) or "something else"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _problems_of(error: Any) -> list[Problem]:
    """The problems of one jsonschema error, in hub.toml's words."""
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-hint")
    if error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        out = []
        for key in sorted(set(error.instance) - set(known)):
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            out.append(Problem((*path, key), "unknown key",
                               f'did you mean "{close[0]}"?' if close else
                               f"valid keys here: {', '.join(known)}"))
        return out
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [Problem(path, f"missing key {k}", hint or f'add {k} = "..."') for k in missing]
    if error.validator in ("type", "anyOf", "enum"):
        return [Problem(path, f"must be {_wanted(schema)}, not {_kind(error.instance)} "
                              f"{_short(error.instance)}", hint)]
    if error.validator == "not":
        return [Problem(path, "must not be written here", hint)]
    return [Problem(path, error.message, hint)]


def check_option_value(source: str, key: str, param: Any, value: Any,
                       adapter: str = "") -> None:
    """ConfigError unless ``value`` (from ``[sources.NAME] options``) has the type of the
    adapter's click option ``param`` that it sets: text for paths, choices and text, true or
    false for flags, numbers within range for numbers; a list for a repeatable option."""
    import click

    multiple = bool(getattr(param, "multiple", False))
    for item in (value if multiple and isinstance(value, list) else [value]):
        kind = param.type
        if getattr(param, "is_flag", False) or isinstance(kind, click.types.BoolParamType):
            want, ok = "true or false", isinstance(item, bool)
        elif isinstance(kind, click.types.IntParamType):
            want, ok = "a whole number", isinstance(item, int) and not isinstance(item, bool)
        elif isinstance(kind, click.types.FloatParamType):
            want, ok = "a number", isinstance(item, int | float) and not isinstance(item, bool)
        else:
            want, ok = "text", isinstance(item, str)
        problem = None if ok else f"must be {want}, not {_kind(item)} {_short(item)}"
        if ok and not isinstance(kind, click.types.StringParamType | click.Path):
            try:
                kind.convert(item, param, None)  # choices and ranges
            except click.BadParameter as exc:
                problem = exc.message
        if problem:
            raise ConfigError(f"source {source}: options.{key} {problem}",
                              hint=f"`hubctl ingest {adapter or 'ADAPTER'} --help` describes "
                                   f"--{key.replace('_', '-')}")


def check_config(data: dict[str, Any], text: str | None = None) -> list[Problem]:
    """Every problem of a parsed hub.toml against the schema, with lines if ``text`` is given."""
    if not data:
        return []  # an empty hub.toml is valid: skip importing jsonschema
    from jsonschema import Draft202012Validator

    from hubctl.config_schema import SCHEMA

    validator = Draft202012Validator(SCHEMA)
    problems = [p for e in validator.iter_errors(_plain(data)) for p in _problems_of(e)]
    lines = _key_lines(text) if text else {}
    return sorted({_at_line(p, lines) for p in problems},
                  key=lambda p: (p.line or 0, p.key, p.message))


def _at_line(problem: Problem, lines: dict[tuple[str, ...], int]) -> Problem:
    """The problem with the line of its key, else of the nearest enclosing table."""
    path = tuple(str(p) for p in problem.path if not isinstance(p, int))
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return replace(problem, line=lines[path[:n]])
    return problem


_HEADER = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
                  r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"((?:[^"\\]|\\.)*)"|'([^']*)'""")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(m.group(1) if m.group(1) is not None else
                 m.group(2) if m.group(2) is not None else m.group(0)
                 for m in _PART.finditer(text))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line numbers of tables and keys written one per line (inline tables: their key's)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            for n in range(1, len(table) + 1):
                lines.setdefault(table[:n], number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_split_key(key.group(1))), number)
    return lines


def check_deep(config: Config, text: str | None = None) -> list[Problem]:
    """What the schema cannot see: adapters and their options, pipelines and their parameters,
    schedules, MQTT settings and ``after`` lists (of the sources and pipelines in ``config``;
    ``config.data`` may declare more, which are then not reported missing)."""
    from hubctl.cron import CronError, parse_cron

    problems: list[Problem] = []
    for src in config.sources.values():
        problems += _source_problems(src)
    for spec in config.pipelines.values():
        problems += pipeline_problems(spec, config)
    for table, items in (("sources", config.sources), ("pipelines", config.pipelines)):
        for name, item in items.items():
            if item.schedule is not None:
                try:
                    parse_cron(item.schedule)
                except CronError as exc:
                    problems.append(Problem((table, name, "schedule"), str(exc),
                                            'e.g. schedule = "*/10 * * * *"'))
    lines = _key_lines(text) if text else {}
    return [_at_line(p, lines) for p in problems]


def _source_problems(src: Source) -> list[Problem]:
    where: tuple[str, ...] = ("sources", src.name)
    if src.mqtt is not None:
        from hubctl.mqtt.settings import parse_settings

        problems = []
        if src.schedule is not None:
            problems.append(Problem((*where, "schedule"), "an MQTT source is never scheduled",
                                    f"`hubctl listen {src.name}` runs all the time; remove it"))
        try:
            settings = parse_settings(src.name, src.mqtt, src.base)
        except HubError as exc:
            problems.append(Problem((*where, "mqtt"), exc.message, exc.hint))
            return problems
        group = "containers" if settings.protocol == "onem2m" else "groups"
        for key, mapping in settings.mappings.items():
            if not mapping.attributes:  # only names spelled like an attribute would be stored
                et = mapping.entity_type
                problems.append(Problem(
                    (*where, "mqtt", group, key, "attributes"),
                    "maps nothing: no attributes = {...}, so only published names spelled "
                    f"exactly like an attribute of {et.name} are stored and a message with "
                    "any other name is rejected",
                    'e.g. attributes = { PM10 = "pm10" } (published name = attribute name)'))
        return problems
    from hubctl.adapters import ADAPTERS
    from hubctl.orchestrate import source_options

    if src.adapter not in ADAPTERS:
        close = difflib.get_close_matches(src.adapter, list(ADAPTERS), n=1)
        return [Problem((*where, "adapter"), f"no adapter {src.adapter!r}",
                        f'did you mean "{close[0]}"?' if close else
                        f"adapters: {', '.join(sorted(ADAPTERS))}")]
    problems = []
    for key, value in src.options.items():
        try:
            source_options(replace(src, options={key: value}))
        except HubError as exc:
            message = exc.message.removeprefix(f"source {src.name}: ")
            problems.append(Problem((*where, "options", key),
                                    message.removeprefix(f"options.{key} "), exc.hint))
    return problems


def pipeline_problems(spec: PipelineSpec, config: Config) -> list[Problem]:
    """What is wrong with a ``[pipelines.NAME]`` table: the name, what starts it, its
    ``after`` sources and its parameters."""
    from hubctl.config import param_text
    from hubctl.pipelines import PIPELINES

    where: tuple[str, ...] = ("pipelines", spec.name)
    if spec.name not in PIPELINES:
        close = difflib.get_close_matches(spec.name, list(PIPELINES), n=1)
        return [Problem(where, f"no pipeline {spec.name!r}",
                        f'did you mean "{close[0]}"?' if close else
                        f"pipelines: {', '.join(sorted(PIPELINES))}")]
    problems = []
    if spec.schedule is None and not spec.after:
        problems.append(Problem(where, "nothing starts this pipeline",
                                'add schedule = "CRON" or after = ["SOURCE", ...]'))
    for source in spec.after:
        src = config.sources.get(source)
        if src is None and source in (config.data.get("sources") or {}):
            continue  # declared, with problems of its own
        if src is None:
            problems.append(Problem((*where, "after"), f"no source {source!r}",
                                    f"sources: {', '.join(config.sources) or 'none'}"))
        elif src.mqtt is not None:
            problems.append(Problem((*where, "after"), f"{source} is an MQTT source, which "
                                    "never finishes a run", "give the pipeline a schedule"))
    params = {p.name: p for p in PIPELINES[spec.name].params}
    for key, value in spec.params.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            problems.append(Problem((*where, "params", key), "unknown parameter",
                                    f'did you mean "{close[0]}"?' if close else
                                    f"parameters: {', '.join(params) or 'none'}"))
            continue
        try:
            params[key].parse(param_text(value))
        except HubError as exc:
            problems.append(Problem((*where, "params", key), exc.message, exc.hint))
    return problems


def check_file(path: Path, lake: str | Path | None = None) -> tuple[list[Problem], dict[str, Any]]:
    """Every problem of the hub.toml at ``path``, by line: the schema's, the lake setting's
    (``lake``: the ``--lake`` option), then the deep checks of the tables the schema passed;
    and what it declares (lake, numbers of sources, pipelines and exports)."""
    from hubctl.config import build_config, read_config

    data, text = read_config(path)
    problems = check_config(data, text)
    counts: dict[str, Any] = {}
    valid = _valid_part(data, problems)
    try:
        config = replace(build_config(valid, path, lake), data=data)
    except ConfigError as exc:  # the lake setting names a file
        return [*problems, Problem(("lake",), exc.message, exc.hint)], counts
    problems = sorted([*problems, *check_deep(config, text)], key=lambda p: p.line or 0)
    counts = {"lake": str(config.lake), "sources": len(data.get("sources") or {}),
              "pipelines": len(data.get("pipelines") or {}),
              "exports": len(data.get("exports") or {})}
    return problems, counts


def _valid_part(data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
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
