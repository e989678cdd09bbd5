"""Source adapters: one module per source format, registered in ``MODULES``.

The registry is an explicit table of adapter name → module; a module is imported only when its
adapter is used, so `hubctl sql` or `hubctl ingest openaq` do not pay for the protobuf, XML or
geometry code of the others. ``ADAPTERS`` (every adapter, by name) imports them all.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from hubctl.adapter import Adapter

__all__ = ["ADAPTERS", "MODULES", "all_adapters", "get_adapter"]

# Adapter name (the `hubctl ingest` subcommand) → module of this package.
MODULES: dict[str, str] = {
    "openaq": "openaq",
    "airkorea": "airkorea",
    "ngsi-ld": "ngsi_ld",
    "ngsi-ld-broker": "ngsi_ld_broker",
    "gtfs": "gtfs",
    "gtfs-rt": "gtfs_rt",
    "boardings": "boardings",
    "population": "population",
    "calls": "calls",
    "places": "places",
    "osm": "osm",
    "greenbutton": "greenbutton",
    "meter-readings": "meter_readings",
    "ev-sessions": "ev_sessions",
}


@cache
def get_adapter(name: str) -> Adapter:
    """The adapter called ``name`` (its module imported on first use); KeyError lists the
    known ones."""
    if name not in MODULES:
        raise KeyError(f"unknown adapter {name!r} (known: {', '.join(sorted(MODULES))})")
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    adapter: Adapter = module.ADAPTER
    if adapter.name != name:
        raise RuntimeError(f"adapters/{MODULES[name]}.py defines {adapter.name!r}, "
                           f"registered as {name!r}")
    return adapter


def all_adapters() -> dict[str, Adapter]:
    """Every adapter by name (imports every adapter module)."""
    return {name: get_adapter(name) for name in MODULES}


def __getattr__(name: str) -> Any:
    if name == "ADAPTERS":
        return all_adapters()
    raise AttributeError(name)
