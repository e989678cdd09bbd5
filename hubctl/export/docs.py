"""The human side of a bundle: ``README.md`` and a static ``index.html`` (no scripts)."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from hubctl.export.metadata import BundleFile, BundleMeta, licence_of
from hubctl.export.tables import Published
from hubctl.report.style import CATEGORY

__all__ = ["index_html", "readme", "rows_chart"]

_BINS = ((400, 1, "day"), (2800, 7, "week"))  # up to N days: bars of so many days


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def readme(meta: BundleMeta, pubs: list[Published], files: list[BundleFile],
           provenance: dict[str, str], shacl: dict[str, Any]) -> str:
    """README.md: what is in the bundle, how it was made, how to read it, its metadata checks."""
    lic_name, lic_url = licence_of(meta.licence)
    out = [f"# {meta.title}", "", meta.description, "",
           f"- Bundle: `{meta.name}`; publisher: {meta.publisher.get('name', '-')}; "
           f"licence: [{lic_name}]({lic_url})",
           f"- Data as of: {_ts(meta.issued)} (newest commit of the exported table versions)",
           "", "## What is in it", "",
           "| table | rows | how published | files |", "|---|---:|---|---|"]
    for p in pubs:
        mine = ", ".join(f"[{f.fmt}]({f.path})" for f in files if f.table == p.label)
        out.append(f"| `{p.label}` | {p.rows:,} | {p.mode} | {mine} |")
    out += ["", "## How it was made", ""]
    for p in pubs:
        out.append(f"### `{p.label}`")
        out.append("")
        out.append(f"- Lake table version {p.snapshot.version}, committed "
                   f"{_ts(p.snapshot.committed_at)}")
        out.append(f"- Sources: {provenance.get(p.label, '-')}")
        out += [f"- Privacy: {r}" for r in p.rules]
        if p.suppression:
            out.append("- Suppressed: " + ", ".join(f"{k.replace('_', ' ')} {v:,}"
                                                     for k, v in sorted(p.suppression.items())))
        out += [f"- Filter: {f}" for f in p.filters] or ["- Filters: none"]
        out.append("")
    first_csv = next((f.path for f in files if f.fmt == "csv"), "data/TABLE.csv")
    first_pq = next((f.path for f in files if f.fmt == "parquet"), "data/TABLE.parquet")
    out += ["## How to read it", "",
            "```sql",
            f"-- DuckDB: SELECT * FROM '{first_pq}';  or  SELECT * FROM read_csv('{first_csv}');",
            "```", "", "```python",
            "import pandas as pd",
            f"df = pd.read_parquet('{first_pq}')",
            "```", "",
            "```sh",
            "frictionless validate datapackage.json   # schemas, types, checksums",
            "sha256sum -c SHA256SUMS",
            "```", "",
            "Timestamps are UTC (ISO 8601 with `Z` in CSV). NGSI-LD files hold one normalized "
            "entity per line with its `@context`; `hubctl ingest ngsi-ld FILE` reads them back.",
            "", "Rows of tables published row by row are in the lake's storage order (the same "
            "for the same table version), not sorted: `ORDER BY` the primary key of "
            "`datapackage.json` where order matters. Aggregates are sorted by their key.",
            "", "## Metadata", "",
            "- `datapackage.json`: Frictionless Data Package v2, one resource per file.",
            "- `dcat.ttl`, `dcat.jsonld`: DCAT-AP 3.0 (Catalogue, a Dataset per table, a "
            "Distribution per file); URLs are relative to this folder.",
            ]
    if shacl.get("checked"):
        out.append(f"- SHACL (DCAT-AP 3.0.0 shapes and ranges, pyshacl, no inference): "
                   f"{'conforms' if shacl['conforms'] else 'DOES NOT CONFORM'}.")
        warnings = shacl.get("recommended", [])
        out.append(f"- Recommended properties missing ({len(warnings)} warnings from "
                   "shapes-recommended.ttl):")
        out += [f"  - {w}" for w in warnings] or ["  - none"]
    else:
        out.append("- SHACL: not checked at export (no DCAT-AP shapes folder configured: "
                   "--shapes DIR or `shapes` in [exports])")
    out += ["", "Checksums of every file are in `SHA256SUMS`.", ""]
    return "\n".join(out)


def _day(n: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=n)).strftime("%Y-%m-%d")


def rows_chart(per_day: list[tuple[int, int]], label: str) -> str:
    """A static SVG bar chart of rows per UTC day (per week past 400 days, per 30 days past
    2,800): no script, no font or file to fetch, so it works from ``file://``; each bar has
    a ``<title>`` (its dates and rows) and the chart a text caption. '' for no rows."""
    if not per_day:
        return ""
    first, last = per_day[0][0], per_day[-1][0]
    step, unit = next(((n, u) for limit, n, u in _BINS if last - first < limit), (30, "30 days"))
    bins: dict[int, int] = {}
    for day, rows in per_day:
        bins[(day - first) // step] = bins.get((day - first) // step, 0) + rows
    count = (last - first) // step + 1
    top = max(bins.values())
    width, height, left, bottom = 640.0, 140.0, 56.0, 18.0
    bar = (width - left) / count
    e = html.escape
    title = f"Rows per {unit} (UTC) of {label}"
    out = [f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" '
           f'height="{height + bottom:g}" viewBox="0 0 {width:g} {height + bottom:g}" '
           f'role="img" aria-label="{e(title)}" font-family="sans-serif" font-size="11">',
           f"<title>{e(title)}</title>",
           f'<line x1="{left:g}" y1="{height:g}" x2="{width:g}" y2="{height:g}" '
           'stroke="#555"/>',
           f'<text x="{left - 4:g}" y="11" text-anchor="end">{top:,}</text>',
           f'<text x="{left - 4:g}" y="{height:g}" text-anchor="end">0</text>']
    for i, rows in sorted(bins.items()):
        h = (height - 4) * rows / top
        start = first + i * step
        span = _day(start) if step == 1 else f"{_day(start)} to {_day(start + step - 1)}"
        out.append(f'<rect x="{left + i * bar:.2f}" y="{height - h:.2f}" '
                   f'width="{max(bar - (1 if bar > 3 else 0), 0.5):.2f}" height="{h:.2f}" '
                   f'fill="{CATEGORY[0]}"><title>{span}: {rows:,} rows</title></rect>')
    out += [f'<text x="{left:g}" y="{height + 14:g}">{_day(first)}</text>',
            f'<text x="{width:g}" y="{height + 14:g}" text-anchor="end">{_day(last)}</text>',
            "</svg>",
            f"<figcaption>{e(title)}: {_day(first)} to {_day(last)}; the fullest {unit} holds "
            f"{top:,} rows.</figcaption></figure>"]
    return "\n".join(out)


def index_html(meta: BundleMeta, pubs: list[Published], files: list[BundleFile]) -> str:
    """A plain static page: datasets, descriptions, schemas, row counts, licence, links."""
    e = html.escape
    lic_name, lic_url = licence_of(meta.licence)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(meta.title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
             "text-align:left}</style></head><body>",
             f"<h1>{e(meta.title)}</h1>", f"<p>{e(meta.description)}</p>",
             f'<p>Licence: <a href="{e(lic_url)}">{e(lic_name)}</a>. Publisher: '
             f"{e(meta.publisher.get('name', ''))}. Data as of {e(_ts(meta.issued))}.</p>",
             '<p>Metadata: <a href="datapackage.json">datapackage.json</a>, '
             '<a href="dcat.ttl">dcat.ttl</a>, <a href="dcat.jsonld">dcat.jsonld</a>, '
             '<a href="README.md">README.md</a>, <a href="SHA256SUMS">SHA256SUMS</a></p>']
    for p in pubs:
        links = " ".join(f'<a href="{e(f.path)}">{e(f.fmt)}</a> ({f.bytes:,} bytes)'
                         for f in files if f.table == p.label)
        parts += [f'<h2 id="{e(p.label)}">{e(meta.titles.get(p.label, p.label))}</h2>',
                  f"<p>{e(meta.descriptions.get(p.label, ''))}</p>",
                  f"<p>{p.rows:,} rows. Download: {links}</p>"]
        chart = rows_chart(p.per_day, p.label)
        if chart:
            parts.append(chart)
        parts += [f"<p><em>{e(r)}</em></p>" for r in p.rules]
        parts.append("<table><tr><th>column</th><th>type</th><th>unit</th>"
                     "<th>description</th></tr>")
        for c in p.columns:
            parts.append(f"<tr><td>{e(c.name)}</td><td>{e(c.duck)}</td>"
                         f"<td>{e(c.unit or '')}</td><td>{e(c.description)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
