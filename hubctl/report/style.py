"""Colours and small figure helpers shared by the report's sections.

Sequential values use plotly's *Cividis* scale (readable by people with colour-vision
deficiency and monotone in lightness, so it also reads in grey). Categories use the
Okabe-Ito palette together with a distinct marker symbol or dash per category, so that a
category never depends on hue alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["CATEGORY", "DASHES", "SEQUENTIAL", "SYMBOLS", "Block", "Section", "html_table",
           "style_chart"]

SEQUENTIAL = "Cividis"
#: Okabe & Ito (2008), colour-blind safe; paired with :data:`SYMBOLS` / :data:`DASHES`.
CATEGORY = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
            "#000000")
SYMBOLS = ("circle", "square", "diamond", "x", "triangle-up", "cross", "star", "hexagon")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


@dataclass
class Block:
    """One thing in a section: a plotly figure (``figure``) or an HTML fragment (``html``)."""

    name: str
    figure: Any = None
    html: str = ""


@dataclass
class Section:
    """One analysis on the page: its title, the run it shows and its blocks."""

    key: str
    title: str
    run: Any = None  # hubctl.report.source.Run, or None for sections read from the lake
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def chart(self, name: str, figure: Any) -> None:
        """Add a figure."""
        self.blocks.append(Block(name, figure=style_chart(figure)))

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Add an HTML table."""
        self.blocks.append(Block(name, html=html_table(columns, rows)))


def style_chart(fig: Any) -> Any:
    """The common look: white template, system fonts (nothing to download)."""
    fig.update_layout(font={"family": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                      hoverlabel={"namelength": -1})
    if not fig.layout.template or fig.layout.template.layout.paper_bgcolor is None:
        fig.update_layout(template="simple_white")
    return fig


def html_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A plain HTML table (values escaped; floats shown with up to 4 significant digits)."""
    def cell(v: Any) -> str:
        if v is None:
            return "<td class=null>–</td>"
        if isinstance(v, float):
            return f"<td class=num>{v:,.4g}</td>"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"<td class=num>{v:,}</td>"
        return f"<td>{escape(str(v))}</td>"

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
