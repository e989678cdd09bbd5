"""What one export is: hub.toml's ``[exports.NAME]`` and ``[publisher]`` merged with the
command line's options into an :class:`~hubctl.export.bundle.ExportRequest` (used by
``hubctl export`` and by the scheduler)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hubctl.config import Config
from hubctl.errors import ConfigError, UsageError
from hubctl.export.bundle import ExportRequest, all_tables
from hubctl.export.metadata import FREQUENCIES, BundleMeta, licence_of
from hubctl.export.tables import Filters
from hubctl.export.writers import FORMATS
from hubctl.lake import Lake

__all__ = ["OPTIONS", "export_request"]

_KEYS = {"tables", "to", "since", "until", "bbox", "where", "licence", "title", "description",
         "keywords", "themes", "spatial", "temporal", "frequency", "contact", "privacy",
         "shapes", "base_url", "formats", "publisher", "schedule"}


def _time(value: Any, label: str) -> datetime | None:
    from hubctl.ngsild import parse_time

    if value in (None, ""):
        return None
    ts = parse_time(value if isinstance(value, str) else value.isoformat())
    if ts is None:
        raise UsageError(f"{label} {value!r} is not an ISO 8601 time",
                         hint="e.g. 2024-05-01T00:00:00Z")
    return ts


def _bbox(value: Any, label: str) -> tuple[float, float, float, float] | None:
    if value in (None, ""):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        w, s, e, n = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"{label} {value!r} must be four numbers W,S,E,N (WGS 84)",
                         hint="e.g. --bbox 128.55,35.82,128.66,35.90") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise UsageError(f"{label} {value!r} is not a box west,south,east,north in degrees")
    return (w, s, e, n)


def _as_of(values: tuple[str, ...]) -> dict[str, int | datetime]:
    out: dict[str, int | datetime] = {}
    for value in values:
        table, _, when = value.rpartition("=") if "=" in value else ("", "", value)
        if when.isdigit():
            out[table] = int(when)
        else:
            ts = _time(when, "--as-of")
            assert ts is not None
            out[table] = ts
    return out


#: The command-line options of ``hubctl export`` (None or empty: take hub.toml's).
OPTIONS: dict[str, Any] = {
    "to": None, "all_tables": False, "since": None, "until": None, "bbox": None, "where": None,
    "as_of": (), "since_last": False, "zip": False, "publisher": None, "licence": None,
    "title": None, "description": None, "keywords": (), "themes": (), "frequency": None,
    "contact": None, "formats": (), "shapes": None}


def export_request(cfg: Config, lake: Lake, name: str, tables: Sequence[str] = (),
                   options: dict[str, Any] | None = None) -> ExportRequest:
    """The export ``hubctl export NAME [TABLE ...]`` runs: hub.toml's ``[exports.NAME]`` and
    ``[publisher]``, overridden by the command line's ``options`` (see :data:`OPTIONS`); the
    scheduler runs a declared export with no options. A UsageError or ConfigError for what is
    missing or wrong (no publisher, no licence, no destination, a bad filter)."""
    opts = {**OPTIONS, **(options or {})}
    spec = dict(cfg.exports.get(name, {}))
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(f"[exports.{name}] has unknown key(s) {', '.join(unknown)}",
                          hint=f"known keys: {', '.join(sorted(_KEYS))}")
    base = cfg.path.parent if cfg.path else Path.cwd()
    publisher = {**cfg.publisher, **spec.get("publisher", {})}
    if opts["publisher"]:
        publisher["name"] = opts["publisher"]
    if not publisher.get("name"):
        raise UsageError("no publisher for the bundle", hint="pass --publisher NAME or set "
                         "name in [publisher] of hub.toml")
    to = opts["to"] or (base / spec["to"] if spec.get("to") else None)
    if to is None:
        raise UsageError("where should the bundle go?", hint="pass --to DIR (or set to = "
                         f"\"...\" in [exports.{name}])")
    formats = tuple(opts["formats"]) or tuple(spec.get("formats", FORMATS))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"unknown format(s) {', '.join(bad)}", hint=f"one of {FORMATS}")
    temporal = spec.get("temporal") or [None, None]
    meta = BundleMeta(
        name=name, title=opts["title"] or spec.get("title") or f"{name}: open data",
        description=opts["description"] or spec.get("description")
        or f"Open data exported by hubctl from the lake (bundle {name}).",
        licence=opts["licence"] or spec.get("licence") or publisher.get("licence") or "",
        publisher={k: str(v) for k, v in publisher.items()},
        keywords=list(opts["keywords"]) or list(spec.get("keywords", [])),
        themes=list(opts["themes"]) or list(spec.get("themes", [])),
        frequency=(opts["frequency"] or spec.get("frequency") or "").upper() or None,
        contact=opts["contact"] or spec.get("contact"),
        spatial=_bbox(spec.get("spatial"), f"[exports.{name}] spatial"),
        temporal=(_time(temporal[0], "temporal"), _time(temporal[1], "temporal")),
        base_url=str(spec.get("base_url", "")))
    licence_of(meta.licence)  # a usage error before any work when there is none
    if meta.frequency and meta.frequency not in FREQUENCIES:
        raise UsageError(f"frequency {meta.frequency!r} is not one of {', '.join(FREQUENCIES)}")
    shapes = opts["shapes"] or (base / spec["shapes"] if spec.get("shapes") else None)
    filters = Filters(
        since=_time(opts["since"] or spec.get("since"), "--since"),
        until=_time(opts["until"] or spec.get("until"), "--until"),
        bbox=_bbox(opts["bbox"] or spec.get("bbox"), "--bbox"),
        where=opts["where"] or spec.get("where"))
    as_of = _as_of(opts["as_of"])
    chosen = list(tables) or list(spec.get("tables", []))
    if opts["all_tables"]:
        chosen = all_tables(lake)
    return ExportRequest(name=name, tables=chosen, to=Path(to), meta=meta, filters=filters,
                         as_of=as_of, since_last=opts["since_last"], zip=opts["zip"],
                         privacy=dict(spec.get("privacy", {})), shapes=shapes, formats=formats)
