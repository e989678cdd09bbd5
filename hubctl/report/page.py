"""The HTML page: one file, plotly.js inlined once, a section per analysis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from hubctl.report.style import Section

__all__ = ["render"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#111;
background:#fff}
header{padding:1rem 2rem;border-bottom:1px solid #ccc}
nav a{margin-right:1rem}
main{padding:0 2rem 2rem}
section{border-bottom:1px solid #ddd;padding:1rem 0}
.run{font-size:.9rem;color:#333}
.run code{background:#f2f2f2;padding:0 .2rem}
.note{color:#7a3b00}
.chart{min-height:200px;margin:1rem 0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.15rem .4rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.null{color:#888}
"""

_CONFIG = {"displaylogo": False, "responsive": True,
           "modeBarButtonsToRemove": ["sendDataToCloud"], "toImageButtonOptions": {}}


def render(title: str, lake: str, generated: datetime, sections: Sequence[Section],
           plotly_js: str) -> str:
    """The whole page as text."""
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>{escape(title)}</title><style>{_CSS}</style>"
             f"<script>{plotly_js}</script></head><body>",
             f"<header><h1>{escape(title)}</h1><p>Lake <code>{escape(lake)}</code>; "
             f"generated {generated:%Y-%m-%d %H:%M} UTC by <code>hubctl report</code>. "
             "Times are UTC unless an axis names another zone.</p><nav>"
             + "".join(f"<a href='#{s.key}'>{escape(s.title)}</a>" for s in sections)
             + "</nav></header><main>"]
    for section in sections:
        parts.append(_section(section))
    parts.append("</main></body></html>")
    return "".join(parts)


def _section(section: Section) -> str:
    out = [f"<section id='{section.key}' data-section='{section.key}'>"
           f"<h2>{escape(section.title)}</h2>"]
    run = section.run
    if run is not None:
        params = ", ".join(f"{k}={_param(v)}" for k, v in sorted(run.params.items()))
        started = run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") \
            if isinstance(run.started_at, datetime) else str(run.started_at)
        out.append(f"<p class=run data-run-id='{escape(run.run_id)}'>Pipeline "
                   f"<code>{escape(run.pipeline)}</code>, run <code>{escape(run.run_id)}</code> "
                   f"({escape(run.status)}, started {started}, {run.seconds:.1f} s). "
                   f"Parameters: <code>{escape(params) or 'defaults'}</code></p>")
        if run.later_failure:
            out.append(f"<p class=note>A newer run did not finish: "
                       f"{escape(run.later_failure)}. Shown: the last run that did.</p>")
    if section.intro:
        out.append(f"<p>{section.intro}</p>")
    for note in section.notes:
        out.append(f"<p class=note>{escape(note)}</p>")
    for i, block in enumerate(section.blocks):
        if block.figure is not None:
            div = f"{section.key}-{i}"
            html = block.figure.to_html(full_html=False, include_plotlyjs=False, div_id=div,
                                        config=_CONFIG, default_width="100%")
            out.append(f"<div class=chart data-chart='{escape(block.name)}'>{html}</div>")
        else:
            out.append(f"<div class=table data-table='{escape(block.name)}'>{block.html}</div>")
    out.append("</section>")
    return "".join(out)


def _param(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
