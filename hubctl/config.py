"""hub.toml: where the lake is and which sources exist.

Lake precedence: ``--lake PATH``, then env ``HUBCTL_LAKE``, then ``[lake] path`` in hub.toml,
then ``./lake``. Relative paths in hub.toml are relative to the hub.toml file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubctl.errors import ConfigError

__all__ = ["Config", "Source", "load_config", "STARTER_TOML"]


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
class Config:
    """The loaded configuration."""

    lake: Path
    path: Path | None
    sources: dict[str, Source]


def _source(name: str, spec: Any, base: Path, where: Path) -> Source:
    if isinstance(spec, dict) and isinstance(spec.get("mqtt"), dict):  # checked by `listen`
        return Source(name=name, adapter=str(spec.get("adapter", "mqtt")), inputs=[],
                      schedule=spec.get("schedule"), base=base, mqtt=dict(spec["mqtt"]))
    if not isinstance(spec, dict) or "adapter" not in spec:
        raise ConfigError(f"{where}: [sources.{name}] needs adapter = \"...\"",
                          hint="see `hubctl init` for a commented example")
    inputs = spec.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise ConfigError(f"{where}: [sources.{name}] inputs must be a list of paths")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: [sources.{name}] options must be a table")
    return Source(
        name=name, adapter=str(spec["adapter"]),
        inputs=[str(base / i) if not os.path.isabs(i) else i for i in inputs],
        options=dict(options), schedule=spec.get("schedule"), base=base,
    )


def load_config(config: Path | None = None, lake: Path | None = None) -> Config:
    """Read hub.toml (``config`` or ./hub.toml if present) and resolve the lake path."""
    path = config or (Path("hub.toml") if Path("hub.toml").is_file() else None)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file", hint="run `hubctl init` to write one") \
                from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = Path(path).resolve().parent if path else Path.cwd()
    env = os.environ.get("HUBCTL_LAKE")
    configured = (data.get("lake") or {}).get("path")
    if lake is not None:
        root = Path(lake)
    elif env:
        root = Path(env)
    elif configured:
        root = base / configured
    else:
        root = Path("lake")
    sources = {n: _source(n, s, base, Path(path or "hub.toml"))
               for n, s in (data.get("sources") or {}).items()}
    return Config(lake=root.resolve(), path=Path(path).resolve() if path else None,
                  sources=sources)


STARTER_TOML = '''# hub.toml: the lake, and the sources that `hubctl ingest --source NAME` runs.
# Relative paths are relative to this file.

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
'''
