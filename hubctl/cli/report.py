"""``hubctl report``: an offline HTML report of the city (see docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option

__all__ = ["COMMANDS"]


@click.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("report"), show_default=True,
              help="Folder to write report.html into.")
@click.option("--pipelines", "pipelines", multiple=True, metavar="NAME",
              help="Only these sections (repeat or comma-separate): patrol_points, "
                   "dispatch_coverage, bus_routes, energy, air_quality, lake, city_kpis.")
@click.option("--title", default=None, help="The page's title.")
@json_option
def report(out: Path, pipelines: tuple[str, ...], title: str | None, as_json: bool) -> None:
    """Write one self-contained HTML file (maps and charts, no network needed to open it)
    from the latest run of each pipeline and from the lake.

    Each section names the run id and parameters it shows; maps are drawn over the city's
    own roads (RoadSegment) and GTFS shapes.

    \b
    Example:
      hubctl run --all && hubctl report --out report --title "Daegu, May 2024"
      hubctl report --pipelines patrol_points --pipelines lake --json
    """
    from hubctl.report import build_report

    result = build_report(hub().lake, out, pipelines, title)
    if as_json:
        emit_json(result.as_json())
        return
    for s in result.sections:
        run = f" (run {s['run_id']})" if s["run_id"] else ""
        click.echo(f"  {s['title']}{run}: {s['charts']} chart(s)")
    if result.skipped:
        click.echo(f"  without results: {', '.join(result.skipped)}")
    click.echo(f"report written to {result.path} ({result.bytes / 1e6:.1f} MB, "
               f"{result.seconds:.1f} s)")


COMMANDS = [report]
