"""Analyses over the catalog: one module per pipeline, registered in ``PIPELINES``.

The registry is a plain dict built from an explicit import list; a duplicate name fails at
import time. :mod:`hubctl.pipeline` says what a pipeline module provides.
"""

from __future__ import annotations

from hubctl.pipeline import Pipeline, run_order
from hubctl.pipelines import (
    air_quality,
    bus_routes,
    city_kpis,
    dispatch_coverage,
    energy,
    patrol_points,
)

__all__ = ["PIPELINES", "get_pipeline"]


def _build(*modules: object) -> dict[str, Pipeline]:
    out: dict[str, Pipeline] = {}
    for module in modules:
        pipeline: Pipeline = module.PIPELINE  # type: ignore[attr-defined]
        if pipeline.name in out:
            raise RuntimeError(f"two pipelines are called {pipeline.name!r}")
        out[pipeline.name] = pipeline
    run_order(out)  # two pipelines reading each other's derived tables fail here, at import
    return out


PIPELINES: dict[str, Pipeline] = _build(dispatch_coverage, bus_routes, patrol_points, energy,
                                         air_quality, city_kpis)


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name``; KeyError lists the known ones."""
    if name not in PIPELINES:
        known = ", ".join(sorted(PIPELINES)) or "none"
        raise KeyError(f"unknown pipeline {name!r} (known: {known})")
    return PIPELINES[name]
