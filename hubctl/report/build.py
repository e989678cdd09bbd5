"""Assemble the report: choose the sections, read their data, write one HTML file."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import UsageError

if TYPE_CHECKING:
    from hubctl.lake import Lake
    from hubctl.report.maps import Basemap
    from hubctl.report.source import Source
    from hubctl.report.style import Section

__all__ = ["FILENAME", "SECTIONS", "ReportResult", "build_report"]

FILENAME = "report.html"
#: Section keys in page order; all but ``lake`` are pipeline names (``--pipelines``).
SECTIONS = ("patrol_points", "dispatch_coverage", "bus_routes", "energy", "air_quality",
            "lake", "city_kpis")


@dataclass
class ReportResult:
    """What ``hubctl report`` wrote."""

    path: Path
    bytes: int
    seconds: float
    sections: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (``hubctl report --json``)."""
        return {"status": "ok", "path": str(self.path), "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "sections": self.sections,
                "without_results": self.skipped}


def _builders() -> dict[str, Callable[[Source, Basemap], Section | None]]:
    from hubctl.report import city, dispatch, energy, safety, transit

    out: dict[str, Callable[[Source, Basemap], Section | None]] = {
        "patrol_points": safety.patrol_points, "air_quality": city.air_quality,
        "lake": city.lake_overview, "city_kpis": city.city_kpis,
        "dispatch_coverage": dispatch.dispatch_coverage, "bus_routes": transit.bus_routes,
        "energy": energy.energy}
    return out


def chosen_sections(pipelines: Sequence[str]) -> list[str]:
    """The section keys for ``--pipelines`` (all when empty); UsageError for an unknown name."""
    names = [n.strip() for item in pipelines for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise UsageError(f"--pipelines: no report section for {', '.join(unknown)}",
                         hint=f"choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if not names or s in names]


def build_report(lake: Lake, out: Path, pipelines: Sequence[str] = (),
                 title: str | None = None) -> ReportResult:
    """Write ``out/report.html`` from the lake's latest pipeline runs and tables."""
    import plotly.offline

    from hubctl.catalog import Catalog
    from hubctl.report.maps import Basemap
    from hubctl.report.page import render
    from hubctl.report.source import Source

    clock = time.perf_counter()
    keys = chosen_sections(pipelines)
    lake.require_root()
    catalog = Catalog(lake)
    try:
        source = Source(catalog)
        basemap = Basemap(source)
        builders = _builders()
        sections, skipped = [], []
        for key in keys:
            section = builders[key](source, basemap) if key in builders else None
            if section is None:
                skipped.append(key)
            else:
                sections.append(section)
    finally:
        catalog.close()
    if not sections:
        raise UsageError(f"nothing to report: the lake {lake.root} has no results for "
                         f"{', '.join(keys)}",
                         hint="ingest data (`hubctl ingest`) and run pipelines (`hubctl run "
                              "--all`) first")
    page = render(title or "City data report", str(lake.root.resolve()),
                  datetime.now(UTC), sections, plotly.offline.get_plotlyjs())
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILENAME
    tmp = path.with_name(f".{FILENAME}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return ReportResult(
        path=path, bytes=path.stat().st_size, seconds=time.perf_counter() - clock,
        sections=[{"key": s.key, "title": s.title,
                   "run_id": s.run.run_id if s.run is not None else None,
                   "charts": sum(1 for b in s.blocks if b.figure is not None)}
                  for s in sections],
        skipped=skipped)
