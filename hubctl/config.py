"""hub.toml: where the lake is, which sources and pipelines exist, checked before use.

Lake precedence: ``--lake PATH``, then env ``HUBCTL_LAKE``, then ``[lake] path`` in hub.toml,
then ``./lake``. Relative paths in hub.toml are relative to the hub.toml file. Any of them may be
``s3://BUCKET/PREFIX``: a lake on object storage (:mod:`hubctl.s3`), whose endpoint and
credentials come from the AWS environment variables, never from hub.toml.

hub.toml is validated against :data:`hubctl.config_schema.SCHEMA` when it is loaded: an
unknown key or a wrong type is a :class:`ConfigError` (exit 2) that lists every problem with
its line, its path and the closest valid key. ``hubctl config check`` adds the checks that need
the adapters and pipelines (:func:`hubctl.config_check.check_deep`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubctl.errors import ConfigError
from hubctl.s3 import S3Root, is_uri, parse_root

__all__ = ["STARTER_TOML", "Config", "PipelineSpec", "Source", "build_config", "load_config",
           "param_text", "read_config"]


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

    lake: Path | S3Root  # a folder, or an s3:// location (hubctl.s3)
    path: Path | None
    sources: dict[str, Source]
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)  # [exports.NAME] tables
    publisher: dict[str, Any] = field(default_factory=dict)  # [publisher]: name, url, email...


def read_config(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed hub.toml and its text (ConfigError if missing or not TOML)."""
    import tomllib  # only where there is a hub.toml: `hubctl sql` starts faster without

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


def _lake_root(lake: str | Path | None, configured: str | None, base: Path,
               path: Path | None) -> Path | S3Root:
    """The lake folder (or ``s3://`` location) and a ConfigError if the setting that chose it
    names a file."""
    env = os.environ.get("HUBCTL_LAKE")
    chosen = ((str(lake), "--lake") if lake is not None else (env, "HUBCTL_LAKE") if env
              else (configured, f"{path}: [lake] path") if configured else (None, ""))
    if is_uri(chosen[0]):
        return parse_root(str(chosen[0]), chosen[1])
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


def load_config(config: Path | None = None, lake: str | Path | None = None) -> Config:
    """Read hub.toml (``config`` or ./hub.toml if present), check it against the schema, and
    resolve the lake path (ConfigError listing every problem if it is wrong)."""
    path = config or (Path("hub.toml") if Path("hub.toml").is_file() else None)
    data: dict[str, Any] = {}
    if path is not None:
        from hubctl.config_check import check_config

        data, text = read_config(path)
        problems = check_config(data, text)
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            raise ConfigError(f"{path}: {count}:\n" + "\n".join(
                "  " + p.text(path) for p in problems),
                hint="fix them; `hubctl config check` lists them without running anything")
    return build_config(data, path, lake)


def build_config(data: dict[str, Any], path: Path | None, lake: str | Path | None = None
                 ) -> Config:
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
