"""``hubctl report`` on a small city ingested through the real adapters and analysed by the
real pipelines, opened in headless Debian Chromium with the network switched off.

The browser tests skip (and say why) where Chromium is not installed; ``make test`` installs
it where it can (scripts/ensure-chromium). Screenshots stay in tests/artifacts/report/
(git-ignored)."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hubctl.demo import write_demo
from tests.browser import Browser, chromium_path
from tests.helpers import hub, hub_json
from tests.test_osm import write_osm

ARTIFACTS = Path(__file__).parent / "artifacts" / "report"
SECTIONS = ["patrol_points", "air_quality", "lake", "city_kpis"]


def streets(path: Path) -> Path:
    """A street grid over the demo's Daegu districts (0.004 degree blocks)."""
    lons = [128.570 + 0.004 * j for j in range(18)]
    lats = [35.845 + 0.004 * i for i in range(12)]
    nodes = {1000 * i + j + 1: (lon, lat) for i, lat in enumerate(lats)
             for j, lon in enumerate(lons)}
    ways: list[Any] = [(10_000 + i, [1000 * i + j + 1 for j in range(len(lons))],
                        {"highway": "primary" if i % 4 == 0 else "residential"})
                       for i in range(len(lats))]
    ways += [(20_000 + j, [1000 * i + j + 1 for i in range(len(lats))],
              {"highway": "residential"}) for j in range(len(lons))]
    return write_osm(path, nodes, ways)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo city (24 hours) with 112 calls, patrol points and AirKorea data, its three
    analyses run; one report before the road network is ingested and one after."""
    folder = tmp_path_factory.mktemp("report")
    write_demo(folder, hours=24)
    data, lake = folder / "data", folder / "lake"
    hub_json(lake, "ingest", "calls", str(data / "daegu_112.csv"), "--profile", "korea-112")
    hub_json(lake, "ingest", "places", str(data / "daegu_patrol_points.csv"),
             "--kind", "patrol-point")
    hub_json(lake, "ingest", "airkorea", str(data / "airkorea_daegu.json"),
             "--stations", str(data / "airkorea_stations.json"))
    early = hub_json(lake, "report", "--out", str(folder / "early"), "--json")
    for args in (("patrol_points", "--param", "k=4", "--param", "timezone=Asia/Seoul"),
                 ("air_quality",), ("city_kpis",)):
        result = hub(lake, "run", *args)
        assert result.exit_code == 0, result.output
    bare = hub_json(lake, "report", "--out", str(folder / "bare"), "--json")
    hub_json(lake, "ingest", "osm", str(streets(folder / "streets.osm")))
    full = hub_json(lake, "report", "--out", str(folder / "out"), "--title", "Demo city",
                    "--json")
    runs = {r["pipeline"]: r for r in hub_json(
        lake, "sql", "SELECT pipeline, run_id, params FROM _pipeline_runs")}
    return {"lake": lake, "bare": bare, "full": full, "runs": runs, "folder": folder,
            "early": early}


def test_sections_name_their_run_and_parameters(city: dict[str, Any]) -> None:
    out = city["full"]
    assert [s["key"] for s in out["sections"]] == SECTIONS
    assert set(out["without_results"]) == {"dispatch_coverage", "bus_routes", "energy"}
    html = Path(out["path"]).read_text(encoding="utf-8")
    for s in out["sections"]:
        if s["key"] == "lake":
            assert s["run_id"] is None
            continue
        run = city["runs"][s["key"]]
        assert s["run_id"] == run["run_id"]
        assert f"data-run-id='{run['run_id']}'" in html
        assert s["charts"] >= 1
    assert "k=4" in html and "timezone=Asia/Seoul" in html
    assert "<title>Demo city</title>" in html


def test_air_quality_from_the_lake_before_the_pipeline_runs(city: dict[str, Any]) -> None:
    early = city["early"]
    assert [(s["key"], s["run_id"]) for s in early["sections"]] == [("air_quality", None),
                                                                     ("lake", None)]
    html = Path(early["path"]).read_text(encoding="utf-8")
    assert "Air quality (from the lake)" in html and "hubctl run air_quality" in html
    # pm25 and no2 AQG from aq_standards.WHO_2021, as plotly escapes them in its JSON
    assert "WHO 24-h guideline (15 \\u00b5g\\u002fm\\u00b3)" in html
    assert "WHO 24-h guideline (25 \\u00b5g\\u002fm\\u00b3)" in html
    full = Path(city["full"]["path"]).read_text(encoding="utf-8")
    assert "Air quality (from the lake)" not in full and "CAI grade" in full


def test_self_contained_small_and_fast(city: dict[str, Any]) -> None:
    out = city["full"]
    html = Path(out["path"]).read_text(encoding="utf-8")
    assert out["bytes"] < 10_000_000 and out["seconds"] < 10
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=", html, re.I)
    assert "cdn.plot.ly" not in html.split("</script>", 1)[1]  # plotly.js inlined, no loader
    assert html.count("<script") >= len(SECTIONS)


def test_maps_draw_the_roads_or_a_plain_frame(city: dict[str, Any]) -> None:
    full = Path(city["full"]["path"]).read_text(encoding="utf-8")
    bare = Path(city["bare"]["path"]).read_text(encoding="utf-8")
    assert '"name":"roads (RoadSegment)"' in full
    assert "plain projected frame" not in full
    assert '"name":"roads (RoadSegment)"' not in bare
    assert "no RoadSegment in the lake: plain projected frame" in bare
    for html in (full, bare):
        assert re.search(r'"text":"\d+(\.\d+)? (k?m)"', html)  # the scale bar


def test_latest_run_is_shown(city: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(city["lake"], lake)
    result = hub(lake, "run", "patrol_points", "--param", "k=3", "--param",
                 "timezone=Asia/Seoul", "--json")
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)["run_id"]
    out = hub_json(lake, "report", "--out", str(tmp_path / "r"), "--pipelines",
                   "patrol_points", "--json")
    assert [s["key"] for s in out["sections"]] == ["patrol_points"]
    assert out["sections"][0]["run_id"] == new
    html = Path(out["path"]).read_text(encoding="utf-8")
    assert "k=3" in html and city["runs"]["patrol_points"]["run_id"] not in html


def test_usage_errors(city: dict[str, Any], tmp_path: Path) -> None:
    result = hub(city["lake"], "report", "--out", str(tmp_path), "--pipelines", "nope")
    assert result.exit_code == 2
    assert "no report section for nope" in result.output
    (tmp_path / "empty").mkdir()
    result = hub(tmp_path / "empty", "report", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "nothing to report" in result.output


@pytest.fixture(scope="module")
def dispatch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dispatch_coverage test city (a street grid, calls and stations) and its report."""
    from tests.test_dispatch_coverage import BASE, entities, grid_osm

    folder = tmp_path_factory.mktemp("dispatch")
    lake = folder / "lake"
    hub_json(lake, "ingest", "osm", str(grid_osm(folder / "grid.osm")))
    entities(folder / "calls.jsonl")
    hub_json(lake, "ingest", "ngsi-ld", str(folder / "calls.jsonl"))
    result = hub(lake, "run", "dispatch_coverage", *[a for p in BASE for a in ("--param", p)])
    assert result.exit_code == 0, result.output
    report = hub_json(lake, "report", "--out", str(folder / "out"), "--json")
    return {"lake": lake, "report": report}


def test_dispatch_map_draws_what_the_run_counted(dispatch: dict[str, Any]) -> None:
    from hubctl.catalog import Catalog
    from hubctl.lake import Lake
    from hubctl.report.dispatch import reached_per_band
    from hubctl.report.source import Source

    assert [s["key"] for s in dispatch["report"]["sections"]] == ["dispatch_coverage", "lake"]
    catalog = Catalog(Lake(dispatch["lake"]))
    try:
        source = Source(catalog)
        run = source.latest_run("dispatch_coverage")
        assert run is not None and run.run_id == dispatch["report"]["sections"][0]["run_id"]
        bands = source.rows("SELECT * FROM derived.dispatch_coverage_bands ORDER BY start_hour")
        stations = source.rows("SELECT road_node FROM derived.dispatch_coverage_stations")
        added = source.rows("SELECT road_node FROM derived.dispatch_coverage_whatif "
                            "WHERE action = 'add'")
        graph, names, before, after = reached_per_band(
            source, run, [r["road_node"] for r in stations], [r["road_node"] for r in added])
    finally:
        catalog.close()
    assert added and names == [b["band"] for b in bands]
    for b, row in enumerate(bands):
        assert int(before[b].sum()) == row["nodes_covered"]
        assert before[b].sum() / graph.n_nodes == pytest.approx(row["node_coverage"], abs=1e-4)
        assert after[b].sum() / graph.n_nodes == pytest.approx(row["node_coverage_after"],
                                                                abs=1e-4)
    html = Path(dispatch["report"]["path"]).read_text(encoding="utf-8")
    assert "reached only with the what-if stations" in html


@pytest.fixture(scope="module")
def transit_energy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The energy test lake (meter readings, EV sessions) plus the bus_routes test feed and
    population, both analyses run, and its report."""
    from tests.test_bus_routes import PARAMS, write_feed, write_population
    from tests.test_energy_pipeline import _lake

    folder = tmp_path_factory.mktemp("transit_energy")
    lake = _lake(folder)
    hub_json(lake, "ingest", "gtfs", str(write_feed(folder / "t.zip")), "--feed-id", "t")
    hub_json(lake, "ingest", "population", str(write_population(folder / "pop.csv")),
             "--dataset", "test")
    for args in (("bus_routes", *PARAMS), ("energy",)):
        result = hub(lake, "run", *args)
        assert result.exit_code == 0, result.output
    report = hub_json(lake, "report", "--out", str(folder / "out"), "--json")
    return {"lake": lake, "report": report}


def test_bus_routes_and_energy_sections(transit_energy: dict[str, Any]) -> None:
    lake, report = transit_energy["lake"], transit_energy["report"]
    keys = [s["key"] for s in report["sections"]]
    assert keys == ["bus_routes", "energy", "lake"]
    html = Path(report["path"]).read_text(encoding="utf-8")
    changes = {r["change"] for r in hub_json(
        lake, "sql", "SELECT change FROM derived.bus_routes_reallocation")}
    for change in ("more frequent", "less frequent"):
        assert (f"route: reallocate: {change}" in html) == (change in changes)
    assert "new-service candidate" in html and "uncovered populated cell" in html
    energy = next(s for s in report["sections"] if s["key"] == "energy")
    assert energy["charts"] == 3
    for title in ("Daily load curve", "Consumption calendar", "EV charging occupancy"):
        assert title in html


# ------------------------------------------------------------------ in the browser
def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB(A) non-interlaced PNG (what Chromium writes) to an array."""
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f, line = raw[y * (stride + 1)], np.frombuffer(
            raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if f == 1:
            line = line.copy()
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            line = (line + prev) & 255
        elif f == 3:
            line = line.copy()
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + (left + prev[x]) // 2) & 255
        elif f == 4:
            line = line.copy()
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y] = line
        prev = line
    return out.reshape(height, width, bpp)[:, :, :3]


@pytest.fixture(scope="module")
def browser() -> Any:
    exe = chromium_path()
    if exe is None:
        pytest.skip("Debian chromium is not installed (scripts/ensure-chromium installs it "
                    "as root with apt-get): the report is not checked in a browser")
    b = Browser(exe)
    yield b
    b.close()


def _renders(browser: Browser, path: str, sections: list[str], prefix: str) -> None:
    """The page loads offline without errors; every chart has marks and is not blank."""
    browser.events.clear()
    browser.open(Path(path).resolve().as_uri())
    browser.evaluate("new Promise(r => setTimeout(r, 500))")
    assert browser.problems() == []
    charts = browser.evaluate("""JSON.stringify([...document.querySelectorAll('section')].map(
        s => ({key: s.dataset.section, charts: [...s.querySelectorAll('.chart')].map(c => {
            const r = c.getBoundingClientRect();
            return {name: c.dataset.chart, svg: c.querySelectorAll('.main-svg').length,
                    marks: c.querySelectorAll('.trace, .hm, image').length,
                    x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}})})))""")
    found = json.loads(charts)
    assert [s["key"] for s in found] == sections
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for s in found:
        assert s["charts"], s
        for c in s["charts"]:
            assert c["svg"] >= 1 and c["marks"] >= 1 and c["w"] > 100 and c["h"] > 100, c
            png = browser.screenshot(ARTIFACTS / f"{prefix}{s['key']}-{c['name']}.png",
                                     {"x": c["x"], "y": c["y"], "width": c["w"],
                                      "height": c["h"]})
            pixels = _png_pixels(png)
            ink = (pixels.min(axis=2) < 200).mean()  # share of pixels that are not near white
            colours = len(np.unique(pixels.reshape(-1, 3) // 16, axis=0))
            assert ink > 0.01 and colours >= 4, (s["key"], c["name"], ink, colours)
    browser.screenshot(ARTIFACTS / f"{prefix}page.png")


def test_report_renders_offline_in_chromium(city: dict[str, Any], browser: Browser) -> None:
    _renders(browser, city["full"]["path"], SECTIONS, "")
    _renders(browser, city["early"]["path"], ["air_quality", "lake"], "early-")


def test_dispatch_report_renders_offline_in_chromium(dispatch: dict[str, Any],
                                                     browser: Browser) -> None:
    _renders(browser, dispatch["report"]["path"], ["dispatch_coverage", "lake"], "dispatch-")


def test_transit_and_energy_render_offline_in_chromium(transit_energy: dict[str, Any],
                                                       browser: Browser) -> None:
    _renders(browser, transit_energy["report"]["path"], ["bus_routes", "energy", "lake"],
             "transit-energy-")


def test_hovering_a_map_cell_shows_its_value(city: dict[str, Any], browser: Browser) -> None:
    browser.open(Path(city["full"]["path"]).resolve().as_uri())
    spot = json.loads(browser.evaluate("""(() => {
        const gd = document.querySelector('[data-section=patrol_points] .js-plotly-plot');
        gd.scrollIntoView();
        const t = gd._fullData.find(t => t.type === 'heatmap' && t.visible === true);
        const fl = gd._fullLayout, box = gd.getBoundingClientRect();
        const marks = gd._fullData.filter(d => d.type === 'scatter' && d.visible === true
            && d.mode.includes('markers'))
            .flatMap(d => Array.from(d.x).map((x, k) => [x, d.y[k]]));
        let best = null;
        Array.from(t.z).forEach((row, r) => Array.from(row).forEach((v, c) => {
            const x = t.x0 + c * t.dx, y = t.y0 + r * t.dy;
            const free = marks.every(([mx, my]) => Math.hypot(mx - x, my - y) > 1.5 * t.dx);
            if (free && v !== null && !Number.isNaN(v) && (best === null || v > best.v))
                best = {r, c, v};
        }));
        const x = t.x0 + best.c * t.dx, y = t.y0 + best.r * t.dy;
        return JSON.stringify({px: box.left + fl._size.l + fl.xaxis.l2p(x),
                               py: box.top + fl._size.t + fl.yaxis.l2p(y), z: best.v,
                               calls: t.customdata[best.r][best.c]});
    })()"""))
    browser.mouse_move(spot["px"], spot["py"])
    text = browser.evaluate("new Promise(r => setTimeout(() => r([...document.querySelectorAll("
                            "'.hoverlayer .hovertext')].map(e => e.textContent).join('|')), 400))")
    assert "Gi* z-score" in text and "calls" in text, text
    shown = float(re.search(r"Gi\* z-score: (-?[\d.]+)", text).group(1))  # type: ignore[union-attr]
    assert shown == pytest.approx(spot["z"], rel=0.01)
    assert f"calls: {int(spot['calls'])}" in text
    browser.screenshot(ARTIFACTS / "hover.png")
