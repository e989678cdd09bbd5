"""hub.toml: where the lake is, which sources and pipelines exist, checked before use.

Lake precedence: ``--lake PATH``, then env ``HUBCTL_LAKE``, then ``[lake] path`` in hub.toml,
then ``./lake``. Relative paths in hub.toml are relative to the hub.toml file.

hub.toml is validated against :data:`hubctl.config_schema.SCHEMA` when it is loaded: an
unknown key or a wrong type is a :class:`ConfigError` (exit 2) that lists every problem with
its line, its path and the closest valid key. ``hubctl config check`` adds the checks that need
the adapters and pipelines (:func:`check_deep`).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from hubctl.errors import ConfigError, HubError

__all__ = ["STARTER_TOML", "Config", "PipelineSpec", "Problem", "Source", "build_config",
           "check_config", "check_deep", "check_option_value", "load_config", "param_text",
           "pipeline_problems", "read_config"]


@dataclass(frozen=True)
class Source:
    """A source declared in hub.toml: an adapter, its inputs and options."""

    name: str
    adapter: str
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    base: Path = field(default_factory=Path.cwd)  # relative option paths resolve against it
    mqtt: dict[str, Any] | None = None  # [sources.NAME.mqtt]: a live source for `hubctl listen`


@dataclass(frozen=True)
class PipelineSpec:
    """A ``[pipelines.NAME]`` table: when to run the pipeline, and its parameters."""

    name: str
    schedule: str | None = None
    after: tuple[str, ...] = ()  # sources whose successful runs start it
    params: dict[str, Any] = field(default_factory=dict)

    def param_args(self) -> list[str]:
        """The parameters as ``hubctl run`` arguments: ``--param NAME=VALUE`` pairs."""
        return [a for key, value in self.params.items()
                for a in ("--param", f"{key}={param_text(value)}")]


def param_text(value: Any) -> str:
    """A TOML parameter value as ``--param`` writes it (booleans lower case, lists with
    commas)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Config:
    """The loaded configuration; ``data`` is the parsed hub.toml as it was read."""

    lake: Path
    path: Path | None
    sources: dict[str, Source]
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)  # [exports.NAME] tables
    publisher: dict[str, Any] = field(default_factory=dict)  # [publisher]: name, url, email...


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


def read_config(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed hub.toml and its text (ConfigError if missing or not TOML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="run `hubctl init` to write one") \
            from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a hub.toml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _source(name: str, spec: dict[str, Any], base: Path) -> Source:
    """A checked ``[sources.NAME]`` table as a Source (paths resolved against ``base``)."""
    if isinstance(spec.get("mqtt"), dict):  # its settings are checked by `listen`
        return Source(name=name, adapter=str(spec.get("adapter", "mqtt")), inputs=[],
                      schedule=spec.get("schedule"), base=base, mqtt=dict(spec["mqtt"]))
    inputs = spec.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    return Source(
        name=name, adapter=str(spec["adapter"]),
        inputs=[str(base / i) if not os.path.isabs(i) else i for i in inputs],
        options=dict(spec.get("options", {})), schedule=spec.get("schedule"), base=base,
    )


def _pipeline(name: str, spec: dict[str, Any]) -> PipelineSpec:
    return PipelineSpec(name=name, schedule=spec.get("schedule"),
                        after=tuple(spec.get("after", ())), params=dict(spec.get("params", {})))


def _lake_root(lake: Path | None, configured: str | None, base: Path,
               path: Path | None) -> Path:
    """The lake folder and a ConfigError if the setting that chose it names a file."""
    env = os.environ.get("HUBCTL_LAKE")
    if lake is not None:
        root, origin = Path(lake), "--lake"
    elif env:
        root, origin = Path(env), "HUBCTL_LAKE"
    elif configured:
        root, origin = base / configured, f"{path}: [lake] path"
    else:
        root, origin = Path("lake"), "the default lake ./lake"
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == root else f"is inside {existing}, a file"
        raise ConfigError(f"{origin} = {str(root)!r} {what}, not a lake folder",
                          hint="point it at a folder (created if missing)"
                               + (", or unset HUBCTL_LAKE" if origin == "HUBCTL_LAKE" else ""))
    return root


def load_config(config: Path | None = None, lake: Path | None = None) -> Config:
    """Read hub.toml (``config`` or ./hub.toml if present), check it against the schema, and
    resolve the lake path (ConfigError listing every problem if it is wrong)."""
    path = config or (Path("hub.toml") if Path("hub.toml").is_file() else None)
    data: dict[str, Any] = {}
    if path is not None:
        data, text = read_config(path)
        problems = check_config(data, text)
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            raise ConfigError(f"{path}: {count}:\n" + "\n".join(
                "  " + p.text(path) for p in problems),
                hint="fix them; `hubctl config check` lists them without running anything")
    return build_config(data, path, lake)


def build_config(data: dict[str, Any], path: Path | None, lake: Path | None = None) -> Config:
    """The Config of a parsed hub.toml that passed :func:`check_config` (``path``: where it
    was read, for relative paths; ``lake``: the ``--lake`` option)."""
    base = Path(path).resolve().parent if path else Path.cwd()
    root = _lake_root(lake, (data.get("lake") or {}).get("path"), base, path)
    return Config(
        lake=root.resolve(), path=Path(path).resolve() if path else None,
        sources={n: _source(n, s, base) for n, s in (data.get("sources") or {}).items()},
        pipelines={n: _pipeline(n, s) for n, s in (data.get("pipelines") or {}).items()},
        data=data, exports=dict(data.get("exports") or {}),
        publisher=dict(data.get("publisher") or {}))


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
            parse_settings(src.name, src.mqtt, src.base)
        except HubError as exc:
            problems.append(Problem((*where, "mqtt"), exc.message, exc.hint))
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


STARTER_TOML = '''# hub.toml: the lake, the sources, and the pipelines and exports the hub runs.
# Relative paths are relative to this file. `hubctl config check` checks it (every key, every
# type, adapters, options, schedules) and `hubctl config schema` prints its JSON Schema.

[lake]
path = "lake"        # overridden by --lake PATH or the HUBCTL_LAKE environment variable

# One table per source. `adapter` is a subcommand of `hubctl ingest` (see `hubctl ingest --help`);
# `options` are that subcommand's options, without the leading dashes.
#
# [sources.eu-air]
# adapter = "openaq"
# inputs = ["data/air_quality_long.csv"]
# options = { stations = "data/air_quality_stations.csv" }
#
# [sources.seoul-air]
# adapter = "airkorea"
# inputs = ["data/airkorea-*.json"]
# options = { stations = "data/airkorea-stations.json" }
#
# [sources.brokers]
# adapter = "ngsi-ld"
# inputs = ["data/entities.jsonl"]
#
# API pulls keep a cursor in the run ledger; `schedule` (cron, local time) is used by
# `hubctl schedule run|emit` and `hubctl ingest --all --due`. Keys come from the environment.
#
# [sources.daegu-live]
# adapter = "airkorea"
# schedule = "5 * * * *"
# [sources.daegu-live.options]
# api = true
# sido = "대구"
# stations = "data/airkorea-stations.json"
# service-key-env = "AIRKOREA_SERVICE_KEY"
#
# [sources.orion-history]
# adapter = "ngsi-ld-broker"
# schedule = "*/10 * * * *"
# options = { url = "http://localhost:1026", type = "AirQualityObserved", temporal = true }
#
# [sources.daegu-112]
# adapter = "calls"
# inputs = ["data/112-*.csv"]
# options = { profile = "korea-112" }
#
# Live MQTT sources run all the time under `hubctl listen NAME` (`hubctl schedule emit
# --systemd` writes a service for each). oneM2M: one mapping per container path.
#
# [sources.daegu-air]
# [sources.daegu-air.mqtt]
# protocol = "onem2m"
# host = "localhost"
# password_env = "DAEGU_MQTT_PASSWORD"   # never the password itself
# cse_id = "id-in"                       # the CSE the hub belongs to, as an AE
# cse_name = "cse-in"
# ae_id = "Chubctl"
# register = true                        # register the AE and its subscriptions at start
# reconcile = 60                         # seconds between catch-ups of what QoS 0 lost
# cse_url = "http://localhost:8080"      # optional: ask the CSE over HTTP, not MQTT
# notify_http = "127.0.0.1:9090"         # optional: notifications over HTTP too
# [sources.daegu-air.mqtt.containers."cse-in/CairSensor/air"]
# type = "AirQualityObserved"
# id = "daegu-air01"
# attributes = { PM10 = "pm10", "PM2.5" = "pm25", NO2 = "no2" }
# units = { NO2 = "ppm" }
# static = { location = [128.5912, 35.8714] }
#
# FIWARE IoT-Agent JSON: one mapping per apikey (topics /json/<apikey>/<device>/attrs and the
# older /<apikey>/<device>/attrs, both subscribed).
#
# [sources.daegu-iot]
# [sources.daegu-iot.mqtt]
# protocol = "iotagent-json"
# host = "localhost"
# [sources.daegu-iot.mqtt.groups.airapikey]
# type = "AirQualityObserved"
# attributes = { p = "pm10" }
# devices = { sensor01 = { static = { location = [128.59, 35.87] } } }

# Pipelines that run by themselves: on a `schedule`, or `after` each successful run of the
# listed sources (`hubctl schedule emit` writes the cron lines or systemd units).
#
# [pipelines.patrol_points]
# after = ["daegu-112"]
# params = { radius_m = 400, bands = ["00-06", "06-12", "12-18", "18-24"] }
#
# [pipelines.energy]
# schedule = "30 6 * * *"

# Open-data bundles (`hubctl export NAME`) and who publishes them.
#
# [publisher]
# name = "Demo City Data Office"
# url = "https://data.example.org"
# email = "opendata@example.org"
# licence = "CC-BY-4.0"
#
# [exports.air]
# tables = ["AirQualityObserved"]
# title = "Air quality, hourly"
# keywords = ["air quality", "NO2"]
# frequency = "daily"
'''
