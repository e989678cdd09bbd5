"""Analyses over the catalog, registered in ``PIPELINES`` (none yet: the transit, safety and
energy issues add the first ones)."""

from __future__ import annotations

__all__ = ["PIPELINES"]

PIPELINES: dict[str, object] = {}
