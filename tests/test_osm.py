"""The osm adapter: streaming parse, cutting ways at intersections, one-way handling, speed
limits, lengths against an independent haversine, bad input, and the West Oakland extract."""

from __future__ import annotations

import bz2
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hubctl.adapters import get_adapter
from hubctl.adapters.osm import oneway_code, parse_maxspeed
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

Way = tuple[int, Sequence[int], dict[str, str]]


def osm_xml(nodes: dict[int, tuple[float, float]], ways: Sequence[Way]) -> str:
    """A small OSM XML document: nodes {id: (lon, lat)}, ways (id, refs, tags)."""
    out = ["<?xml version='1.0' encoding='UTF-8'?>", '<osm version="0.6">',
           '  <bounds minlat="0" minlon="0" maxlat="1" maxlon="1"/>']
    out += [f'  <node id="{i}" lat="{lat}" lon="{lon}"/>' for i, (lon, lat) in nodes.items()]
    for wid, refs, tags in ways:
        out.append(f'  <way id="{wid}">')
        out += [f'    <nd ref="{r}"/>' for r in refs]
        out += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        out.append("  </way>")
    out.append('  <relation id="1"><member type="way" ref="10" role=""/></relation>')
    out.append("</osm>")
    return "\n".join(out) + "\n"


def write_osm(path: Path, nodes: dict[int, tuple[float, float]], ways: Sequence[Way]) -> Path:
    """Write :func:`osm_xml` to ``path`` (bz2-compressed when it ends in .bz2)."""
    text = osm_xml(nodes, ways).encode()
    path.write_bytes(bz2.compress(text) if path.name.endswith(".bz2") else text)
    return path


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Independent great-circle distance (metres, mean Earth radius 6,371,008.8 m)."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def line_length(geojson: str) -> float:
    coords = json.loads(geojson)["coordinates"]
    return sum(haversine(*a, *b) for a, b in zip(coords, coords[1:], strict=False))


# A plus-shaped crossing at node 5 plus a one-way street, a roundabout and non-roads:
#
#   1 - 2 - 5 - 3 - 4      way 10 (residential, maxspeed 30 mph), nodes 1..4 through 5
#           |
#           6              way 11 (primary, oneway=-1): 7 -> 6 -> 5 in node order
#           |
#           7 - 8          way 12 (service, 7 -> 8, then 99 missing, then 9)
NODES = {1: (0.000, 0.0), 2: (0.001, 0.0), 5: (0.002, 0.0), 3: (0.003, 0.0), 4: (0.004, 0.0),
         6: (0.002, -0.001), 7: (0.002, -0.002), 8: (0.003, -0.002), 9: (0.004, -0.002),
         20: (0.010, 0.010), 21: (0.011, 0.010), 22: (0.011, 0.011)}
WAYS: list[Way] = [
    (10, [1, 2, 5, 3, 4], {"highway": "residential", "name": "Main &amp; 1st",
                           "maxspeed": "30 mph", "lanes": "2"}),
    (11, [7, 6, 5], {"highway": "primary", "oneway": "-1", "maxspeed": "50"}),
    (12, [7, 8, 99, 9], {"highway": "service"}),
    (13, [20, 21, 22, 20], {"highway": "tertiary", "junction": "roundabout", "toll": "yes"}),
    (14, [1, 20], {"highway": "footway"}),
    (15, [3, 8, 9, 3], {"building": "yes"}),
    (16, [98, 97], {"highway": "residential", "name": "Ghost Street"}),
    (17, [2, 6], {"highway": "construction"}),
]


def segments(lake: Path) -> dict[str, dict[str, Any]]:
    rows = hub_json(lake, "sql", "SELECT * EXCLUDE (_extra, _source, _run_id, _ingested_at) "
                    "FROM RoadSegment ORDER BY id")
    return {r["id"].rsplit(":", 1)[1]: r for r in rows}


def test_adapter_declares_itself() -> None:
    adapter = get_adapter("osm")
    assert adapter.entity_types == ("RoadSegment",)
    assert adapter.example.startswith("hubctl ingest osm ")
    assert [p.name for p in adapter.params] == ["network"]


@pytest.mark.parametrize(("text", "kmh"), [
    ("50", 50.0), ("50 km/h", 50.0), ("50kmh", 50.0), ("30 mph", 48.28), ("25mph", 40.234),
    ("10 knots", 18.52), ("50;30", 50.0), ("60.5", 60.5), ("none", None), ("walk", None),
    ("signals", None), ("DE:urban", None), ("", None), (None, None), ("0", None)])
def test_maxspeed_is_parsed_to_kmh(text: str | None, kmh: float | None) -> None:
    got = parse_maxspeed(text)
    assert got == (pytest.approx(kmh, abs=1e-3) if kmh is not None else None)


@pytest.mark.parametrize(("tags", "code"), [
    ({"oneway": "yes"}, 1), ({"oneway": "true"}, 1), ({"oneway": "1"}, 1),
    ({"oneway": "-1"}, -1), ({"oneway": "reverse"}, -1), ({"oneway": "no"}, 0), ({}, 0),
    ({"junction": "roundabout"}, 1), ({"junction": "circular"}, 1),
    ({"junction": "roundabout", "oneway": "no"}, 0), ({"highway": "motorway"}, 1),
    ({"highway": "motorway", "oneway": "no"}, 0), ({"oneway": "reversible"}, 0)])
def test_oneway_tags(tags: dict[str, str], code: int) -> None:
    assert oneway_code(tags) == code


@pytest.mark.parametrize("name", ["city.osm", "city.osm.bz2"])
def test_ways_are_cut_at_intersections_into_segments(tmp_path: Path, name: str) -> None:
    path = write_osm(tmp_path / name, NODES, WAYS)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "osm", str(path))
    # way 10: 1-2-5 | 5-3-4 (cut at 5, where way 11 joins); 11: one piece; 12: 7-8 (cut by the
    # missing node 99; 9 alone is dropped); 13: the closed roundabout is one piece; 16 has no
    # node in the extract: rejected. Footway, building and construction are not roads.
    assert run["read"] == 5 + 1 and run["written"] == 5 and run["rejected"] == 1
    assert run["reconciles"]
    assert "3 ways that are not roads" in run["warnings"][0]
    assert "3 way node refs not in the extract" in run["warnings"][0]
    seg = segments(lake)
    assert sorted(seg) == ["osm-10-0", "osm-10-2", "osm-11-0", "osm-12-0", "osm-13-0"]
    a, b = seg["osm-10-0"], seg["osm-10-2"]
    assert (a["startNode"], a["endNode"], b["startNode"], b["endNode"]) == (1, 5, 5, 4)
    assert json.loads(a["location"])["coordinates"] == [[0.0, 0.0], [0.001, 0.0], [0.002, 0.0]]
    assert a["maximumAllowedSpeed"] == pytest.approx(48.28, abs=1e-3)
    assert a["name"] == "Main & 1st" and a["totalLaneNumber"] == 2 and a["category"] == []
    assert a["highway"] == "residential" and a["wayId"] == 10
    assert a["roadClass"] == "MINOR_CITY_ROAD" and a["refRoad"] == "urn:ngsi-ld:Road:osm-10"
    for s in seg.values():
        assert s["length"] == pytest.approx(line_length(s["location"]), abs=1e-3)
        start = json.loads(s["startPoint"])["coordinates"]
        end = json.loads(s["endPoint"])["coordinates"]
        coords = json.loads(s["location"])["coordinates"]
        assert coords[0] == start and coords[-1] == end


def test_oneway_reverse_runs_against_the_node_order(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(write_osm(tmp_path / "c.osm", NODES, WAYS)))
    seg = segments(lake)
    rev = seg["osm-11-0"]  # nodes 7, 6, 5 with oneway=-1: traffic goes 5 -> 6 -> 7
    assert (rev["startNode"], rev["endNode"]) == (5, 7)
    assert json.loads(rev["location"])["coordinates"] == [[0.002, 0.0], [0.002, -0.001],
                                                          [0.002, -0.002]]
    assert rev["category"] == ["oneway"] and rev["maximumAllowedSpeed"] == 50.0
    ring = seg["osm-13-0"]
    assert ring["category"] == ["oneway", "toll"]
    assert ring["startNode"] == ring["endNode"] == 20
    assert seg["osm-12-0"]["category"] == [] and seg["osm-12-0"]["maximumAllowedSpeed"] is None


def test_rejected_way_keeps_its_reason_and_reingest_is_idempotent(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    path = write_osm(tmp_path / "c.osm", NODES, WAYS)
    hub_json(lake, "ingest", "osm", str(path))
    rej = hub_json(lake, "rejects")
    assert len(rej) == 1 and rej[0]["codes"] == "unknown-reference"
    assert rej[0]["record"] == "way 16" and "2 not in the extract" in rej[0]["raw"]
    again = hub_json(lake, "ingest", "osm", str(path), "--force")
    assert again["duplicate"] == 5 and again["written"] == 0 and again["reconciles"]


def test_network_all_keeps_footways(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "osm", str(write_osm(tmp_path / "c.osm", NODES, WAYS)),
                   "--network", "all")
    assert run["written"] == 6
    assert segments(lake)["osm-14-0"]["highway"] == "footway"


@pytest.mark.parametrize(("text", "message"), [
    ("<osm><node id='1' lat='0' lon='0'>", "is not well-formed XML"),
    ("<gpx><trk/></gpx>", "is not OpenStreetMap XML"),
    ("<osm><node id='x' lat='0' lon='0'/></osm>", "bad id or coordinate"),
])
def test_bad_files_give_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.osm"
    path.write_text(text)
    result = hub(tmp_path / "lake", "ingest", "osm", str(path))
    assert result.exit_code == 1
    assert message in result.output and "bad.osm" in result.output
    assert "Traceback" not in result.output


def test_a_file_without_roads_warns(tmp_path: Path) -> None:
    path = write_osm(tmp_path / "b.osm", NODES, [WAYS[5]])
    run = hub_json(tmp_path / "lake", "ingest", "osm", str(path))
    assert run["read"] == 0 and any("no road segments" in w for w in run["warnings"])


@needs_sample_data
def test_west_oakland_segments_match_the_file(tmp_path: Path) -> None:
    """Every segment joins OSM nodes of the file, with the file's coordinates, and its length
    is the haversine sum along its geometry (computed here independently)."""
    src = SAMPLE_DATA / "osm" / "west-oakland.osm"
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "osm", str(src))
    assert run["reconciles"] and run["rejected"] == 0
    root = ET.parse(src).getroot()
    coords = {int(n.get("id")): (float(n.get("lon")), float(n.get("lat")))
              for n in root.iter("node")}
    drive = [w for w in root.iter("way")
             if any(t.get("k") == "highway" and t.get("v") in
                    ("residential", "secondary", "service", "unclassified") for t in w)]
    seg = segments(lake)
    assert run["written"] == len(seg) >= len(drive) == 23
    assert {s["wayId"] for s in seg.values()} == {int(w.get("id")) for w in drive}
    for s in seg.values():
        line = json.loads(s["location"])["coordinates"]
        assert tuple(line[0]) == coords[s["startNode"]]
        assert tuple(line[-1]) == coords[s["endNode"]]
        assert s["length"] == pytest.approx(line_length(s["location"]), abs=1e-3)
        assert s["length"] > 0


def test_segments_round_trip_as_ngsi_ld(tmp_path: Path) -> None:
    """Rendered as NGSI-LD the segments validate against the schema and ingest again through
    the ngsi-ld adapter into the same graph columns."""
    lake, other = tmp_path / "lake", tmp_path / "other"
    hub_json(lake, "ingest", "osm", str(write_osm(tmp_path / "c.osm", NODES, WAYS)))
    result = hub(lake, "entities", "RoadSegment", "--format", "normalized")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc[0]["location"]["value"]["type"] == "LineString"
    assert doc[0]["length"]["unitCode"] == "MTR"
    path = tmp_path / "segments.jsonld"
    path.write_text(result.stdout)
    checked = hub(lake, "validate", str(path))
    assert checked.exit_code == 0 and "0 errors" in checked.output
    assert hub_json(other, "ingest", "ngsi-ld", str(path))["written"] == 5
    query = ("SELECT id, startNode, endNode, length, category, "
             "json_extract(location, '$.coordinates') AS line FROM RoadSegment ORDER BY id")
    assert hub_json(other, "sql", query) == hub_json(lake, "sql", query)


def test_small_chunks_give_the_same_extract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The numpy chunking of node and ref buffers (a million values in real use)."""
    from hubctl.adapters import osm

    path = write_osm(tmp_path / "c.osm", NODES, WAYS)
    whole = osm.read_osm(path)
    monkeypatch.setattr(osm, "_CHUNK", 2)
    chunked = osm.read_osm(path)
    for name in ("node_id", "node_lon", "node_lat", "way_id", "way_start", "refs"):
        assert getattr(chunked, name).tolist() == getattr(whole, name).tolist()
    assert len(whole.node_id) == len(NODES) and whole.tags == chunked.tags


@needs_sample_data
def test_an_osm_pbf_extract_gives_the_same_segments_as_its_xml(tmp_path: Path) -> None:
    """Geofabrik and BBBike hand out .osm.pbf by default: the shared XML extract written as PBF
    by libosmium (pyosmium's writer) ingests to exactly the segments of the XML."""
    import osmium

    xml = SAMPLE_DATA / "osm" / "west-oakland.osm"
    pbf = tmp_path / "west-oakland.osm.pbf"
    writer = osmium.SimpleWriter(str(pbf))
    for obj in osmium.FileProcessor(str(xml)):
        if obj.is_node():
            writer.add_node(obj)
        elif obj.is_way():
            writer.add_way(obj)
    writer.close()
    query = ("SELECT * EXCLUDE (observed_at, _run_id, _ingested_at, _source) "
             "FROM RoadSegment ORDER BY id")
    from_xml = hub_json(tmp_path / "a", "ingest", "osm", str(xml))
    from_pbf = hub_json(tmp_path / "b", "ingest", "osm", str(pbf))
    assert from_pbf["read"] == from_xml["read"] > 0 and from_pbf["reconciles"]
    assert hub_json(tmp_path / "b", "sql", query) == hub_json(tmp_path / "a", "sql", query)
    damaged = tmp_path / "cut.osm.pbf"
    damaged.write_bytes(pbf.read_bytes()[:len(pbf.read_bytes()) // 2])
    result = hub(tmp_path / "c", "ingest", "osm", str(damaged))
    assert result.exit_code == 1 and "cannot be read as OSM PBF" in result.output


def test_a_table_written_before_highway_existed_takes_it_on_reingest(tmp_path: Path) -> None:
    """RoadSegment tables of earlier versions held OSM's class in roadClass and had no
    highway, refRoad or allowedVehicleType: `ingest osm --force` fills them in every segment and
    the new columns join the table (a MERGE used to fail on the target's missing columns)."""
    from deltalake import DeltaTable, write_deltalake

    path = write_osm(tmp_path / "city.osm", NODES, WAYS)
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "osm", str(path))
    folder = lake / "RoadSegment"
    old = DeltaTable(str(folder)).to_pyarrow_table().drop_columns(
        ["highway", "refRoad", "allowedVehicleType"])
    write_deltalake(str(folder), old, mode="overwrite", schema_mode="overwrite")
    run = hub_json(lake, "ingest", "osm", str(path), "--force")
    assert (run["written"], run["duplicate"], run["rejected"]) == (5, 0, 1)  # gaps filled
    a = segments(lake)["osm-10-0"]
    assert (a["highway"], a["roadClass"], a["allowedVehicleType"]) == (
        "residential", "MINOR_CITY_ROAD", ["anyVehicle"])
