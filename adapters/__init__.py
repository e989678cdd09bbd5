"""Source adapters: one module per source format, registered in ``ADAPTERS``.

The registry is a plain dict built from an explicit import list; a duplicate name fails at
import time.
"""

from __future__ import annotations

from hubctl.adapter import Adapter
from hubctl.adapters import (
    airkorea,
    boardings,
    calls,
    ev_sessions,
    greenbutton,
    gtfs,
    gtfs_rt,
    meter_readings,
    ngsi_ld,
    ngsi_ld_broker,
    openaq,
    osm,
    places,
    population,
)

__all__ = ["ADAPTERS", "get_adapter"]


def _build(*modules: object) -> dict[str, Adapter]:
    out: dict[str, Adapter] = {}
    for module in modules:
        adapter: Adapter = module.ADAPTER  # type: ignore[attr-defined]
        if adapter.name in out:
            raise RuntimeError(f"two adapters are called {adapter.name!r}")
        out[adapter.name] = adapter
    return out


ADAPTERS: dict[str, Adapter] = _build(openaq, airkorea, ngsi_ld, osm, boardings, population,
                                       ngsi_ld_broker, gtfs, gtfs_rt, calls, places,
                                       greenbutton, meter_readings, ev_sessions)


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; KeyError lists the known ones."""
    if name not in ADAPTERS:
        raise KeyError(f"unknown adapter {name!r} (known: {', '.join(sorted(ADAPTERS))})")
    return ADAPTERS[name]
