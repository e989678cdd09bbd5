"""``hubctl report``: one self-contained, offline HTML file of the city's analyses.

:func:`build_report` reads the latest run of each pipeline from ``_pipeline_runs``, that run's
rows of its derived tables and the lake itself (through the trusted :class:`~hubctl.catalog.
Catalog`), and writes a page with a section per analysis that has results. Charts and maps are
plotly figures with plotly.js inlined once in the page; maps are drawn as vectors on a local
projection over the city's own roads (``RoadSegment``) and GTFS shapes, with no tiles and no
request to any host. See docs/report.md.
"""

from __future__ import annotations

from hubctl.report.build import SECTIONS, ReportResult, build_report

__all__ = ["SECTIONS", "ReportResult", "build_report"]
