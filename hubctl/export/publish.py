"""What of a table may be published, and how: the ``x-hub-publish`` rules of its schema.

Each entity type's schema declares one of:

- ``{"rows": true}``: row by row; optional ``"drop"`` (attributes never published),
  ``"round_timestamps": "hour"`` (every timestamp floored to the hour) and
  ``"opaque_id": true`` (the entity id replaced by ``urn:ngsi-ld:<Type>:<hour>-<n>``, so the
  source's session or card number never leaves the lake);
- ``{"aggregate": "grid", "cell_m": 250, "bucket": "hour_of_week"|"day", "k": 10}``: counts
  per grid cell of the safety pipelines (:mod:`hubctl.pipelines.geo`) and time bucket, cells
  under ``k`` suppressed and reported;
- ``{"aggregate": "15/15", "bucket": "day"|"month", "min_customers": 15, "max_share": 0.15}``:
  energy totals per time bucket, published only for groups of at least ``min_customers``
  entities none of which holds more than ``max_share`` of the group's total.

``hub.toml`` may make a rule stricter (``k`` and ``min_customers`` up, ``max_share`` down,
another bucket), never looser. Derived tables are published as the pipeline wrote them (their
own small-cell suppression applies), without the provenance columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from hubctl.errors import ConfigError, HubError
from hubctl.registry import EntityType

__all__ = ["Rules", "rules_for"]

BUCKETS = {"hour_of_week": "(isodow(observed_at) - 1) * 24 + hour(observed_at)",
           "day": "CAST(date_trunc('day', observed_at) AS DATE)",
           "month": "CAST(date_trunc('month', observed_at) AS DATE)"}


@dataclass(frozen=True)
class Rules:
    """The publication rules of one entity type, after hub.toml's tightening."""

    mode: str  # rows | grid | 15/15
    drop: tuple[str, ...] = ()
    round_hour: bool = False
    opaque_id: bool = False
    cell_m: float = 250.0
    bucket: str = "hour_of_week"
    k: int = 10
    min_customers: int = 15
    max_share: float = 0.15
    notes: list[str] = field(default_factory=list)

    def describe(self, et: EntityType) -> list[str]:
        """The rules in words, for the bundle's README and metadata."""
        if self.mode == "grid":
            return [f"{et.name}: never row by row; calls counted per {self.cell_m:g} m grid cell "
                    f"(the safety pipelines' grid) and {self.bucket.replace('_', ' ')} (UTC); "
                    f"cells with fewer than k={self.k} calls suppressed; no case number, exact "
                    "position or free text published"]
        if self.mode == "15/15":
            return [f"{et.name}: only totals per {self.bucket} over at least "
                    f"{self.min_customers} meters, none holding more than "
                    f"{self.max_share:.0%} of a total (the 15/15 rule); no meter or customer id"]
        out = []
        if self.drop:
            out.append(f"{et.name}: not published: {', '.join(self.drop)}")
        if self.opaque_id:
            out.append(f"{et.name}: source ids replaced by opaque ids (hour and sequence)")
        if self.round_hour:
            out.append(f"{et.name}: timestamps rounded down to the hour")
        return out


def _tighter(name: str, key: str, base: Any, wanted: Any, larger: bool) -> Any:
    if wanted is None:
        return base
    if not isinstance(wanted, int | float) or isinstance(wanted, bool):
        raise ConfigError(f"hub.toml [exports] privacy.{name}.{key} must be a number")
    if (wanted < base) if larger else (wanted > base):
        way = "raised above" if larger else "lowered below"
        raise ConfigError(f"hub.toml: {name} {key} = {wanted} would loosen the schema's privacy "
                          f"rule ({key} = {base})",
                          hint=f"{key} may only be {way} the schema's value, never loosened")
    return wanted


def rules_for(et: EntityType, overrides: dict[str, Any] | None = None) -> Rules:
    """The rules of ``et`` (from its schema's ``x-hub-publish``), tightened by hub.toml."""
    spec = et.schema.get("x-hub-publish")
    if not isinstance(spec, dict):
        raise HubError(f"schemas/{et.name}.json declares no x-hub-publish rule, so it cannot "
                       "be exported", hint='add "x-hub-publish": {"rows": true} if every row '
                                           "may be published (see docs/export.md)")
    over = dict(overrides or {})
    mode = str(spec.get("aggregate", "rows"))
    if mode not in ("rows", "grid", "15/15"):
        raise HubError(f"schemas/{et.name}.json: x-hub-publish aggregate {mode!r} is unknown")
    bucket = str(over.get("bucket", spec.get("bucket", "hour_of_week" if mode == "grid"
                                                  else "day")))
    if bucket not in BUCKETS:
        raise ConfigError(f"hub.toml: {et.name} bucket {bucket!r} is not one of "
                          f"{', '.join(BUCKETS)}")
    return Rules(
        mode=mode, drop=tuple(spec.get("drop", ())), round_hour=spec.get("round_timestamps")
        == "hour", opaque_id=bool(spec.get("opaque_id")), bucket=bucket,
        cell_m=float(_tighter(et.name, "cell_m", float(spec.get("cell_m", 250.0)),
                              over.get("cell_m"), True)),
        k=int(_tighter(et.name, "k", int(spec.get("k", 10)), over.get("k"), True)),
        min_customers=int(_tighter(et.name, "min_customers", int(spec.get("min_customers", 15)),
                                   over.get("min_customers"), True)),
        max_share=float(_tighter(et.name, "max_share", float(spec.get("max_share", 0.15)),
                                 over.get("max_share"), False)),
    )


def grid_cells(counts: pa.Table, lon0: float, lat0: float, cell_m: float, k: int,
               bucket: str) -> tuple[pa.Table, dict[str, int]]:
    """Counts per (ix, iy, bucket) as published rows: cell label, centre, GeoJSON polygon
    (counter-clockwise, RFC 7946), bucket and calls; cells under ``k`` suppressed."""
    from hubctl.pipelines.geo import LocalProjection, cell_centres, cell_labels

    calls = counts.column("calls").to_numpy()
    keep = calls >= k
    report = {"cells_suppressed": int((~keep).sum()), "calls_suppressed": int(calls[~keep].sum()),
              "cells_published": int(keep.sum()), "calls_published": int(calls[keep].sum())}
    kept = counts.filter(pa.array(keep))
    ix = kept.column("ix").to_numpy()
    iy = kept.column("iy").to_numpy()
    proj = LocalProjection(lon0, lat0)
    cx, cy = cell_centres(ix, iy, cell_m)
    lon, lat = proj.to_lonlat(cx, cy)
    corners = []
    for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)):  # counter-clockwise
        a, b = proj.to_lonlat((ix + dx) * cell_m, (iy + dy) * cell_m)
        corners.append((a.tolist(), b.tolist()))
    rings = [
        '{"type":"Polygon","coordinates":[[' + ",".join(
            f"[{c[0][i]!r},{c[1][i]!r}]" for c in corners) + "]]}"
        for i in range(len(ix))]
    table = pa.table({
        "cell": pa.array(cell_labels(ix, iy, cell_m), pa.string()),
        # Not rounded: a rounded corner can equal a call's published coordinate exactly.
        "lon": pa.array(lon, pa.float64()),
        "lat": pa.array(lat, pa.float64()),
        bucket: kept.column("bucket"),
        "calls": kept.column("calls").cast(pa.int64()),
        "geometry": pa.array(rings, pa.string()),
    })
    return table, report


def snap_days(since: datetime | None, until: datetime | None
              ) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until`` widened to whole UTC days, for aggregates (so two exports that
    differ by a few minutes cannot be subtracted to single out a record)."""
    def floor(ts: datetime) -> datetime:
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)

    from datetime import timedelta
    up = None
    if until is not None:
        up = floor(until) if until == floor(until) else floor(until) + timedelta(days=1)
    return (floor(since) if since is not None else None), up
