"""The population adapter: gridded and zoned input, zone centroids, kinds and hours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubctl.adapters.population import polygon_centroid
from tests.helpers import hub, hub_json


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_polygon_centroid_of_an_l_shape_and_a_square_with_a_hole() -> None:
    # L-shape: a 2x1 rectangle plus a 1x1 square on top of its left half
    x, y, area = polygon_centroid([[[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2], [0, 0]]])
    assert area == pytest.approx(3.0)
    assert (x, y) == pytest.approx((5 / 6, 5 / 6))
    # a 4x4 square with a 2x2 hole in its right half: mass shifts left
    x, y, area = polygon_centroid([[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]],
                                   [[2, 1], [4, 1], [4, 3], [2, 3], [2, 1]]])
    assert area == pytest.approx(12.0)
    assert (x, y) == pytest.approx(((16 * 2 - 4 * 3) / 12, 2.0))


def test_gridded_cells_with_kinds_and_hours(tmp_path: Path) -> None:
    data = _write(tmp_path / "grid.csv", "latitude,longitude,people,hour,kind\n"
                  "37.5,127.0,100,,\n37.501,127.002,50,8,Floating\n37.501,127.002,70,9,floating\n"
                  "37.5,127.0,100,,resident\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "population", str(data), "--dataset", "seoul",
                   "--map", "people=population")
    assert run["read"] == 4 and run["written"] == 3 and run["duplicate"] == 1
    rows = hub_json(lake, "sql", "SELECT id, population, kind, hour, lon, lat, dataset "
                    "FROM PopulationCell ORDER BY id")
    assert [r["id"] for r in rows] == [
        "urn:ngsi-ld:PopulationCell:seoul:37.5,127:residents:all",
        "urn:ngsi-ld:PopulationCell:seoul:37.501,127.002:floating:8",
        "urn:ngsi-ld:PopulationCell:seoul:37.501,127.002:floating:9"]
    assert rows[1]["population"] == 50 and rows[1]["hour"] == 8 and rows[1]["lat"] == 37.501
    rendered = hub(lake, "entities", "PopulationCell")
    (tmp_path / "entities.json").write_text(rendered.stdout)
    checked = hub(lake, "validate", str(tmp_path / "entities.json"))
    assert checked.exit_code == 0 and "3 entities, 0 errors" in checked.output


def test_zones_from_geojson_polygons_and_points(tmp_path: Path) -> None:
    zones = tmp_path / "zones.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "Z1"}, "geometry": {
            "type": "Polygon",
            "coordinates": [[[127, 37], [127.02, 37], [127.02, 37.02], [127, 37.02],
                             [127, 37]]]}},
        {"type": "Feature", "id": "Z2", "properties": {}, "geometry": {
            "type": "Point", "coordinates": [127.1, 37.1]}}]}))
    data = _write(tmp_path / "zoned.csv", "zone_id,population\nZ1,1000\nZ2,500\nZ9,3\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "population", str(data), "--zones", str(zones),
                   "--zone-field", "code", "--kind", "floating")
    assert run["written"] == 2 and run["rejected"] == 1 and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT zoneId, lon, lat, kind FROM PopulationCell "
                    "ORDER BY zoneId")
    assert rows[0]["zoneId"] == "Z1" and rows[0]["kind"] == "floating"
    assert (rows[0]["lon"], rows[0]["lat"]) == pytest.approx((127.01, 37.01), abs=1e-12)
    assert (rows[1]["lon"], rows[1]["lat"]) == (127.1, 37.1)
    rejected = hub_json(lake, "rejects")
    assert rejected[0]["codes"] == "unknown-reference" and "Z9" in rejected[0]["raw"]


def test_zones_from_csv_and_bad_rows(tmp_path: Path) -> None:
    zones = _write(tmp_path / "zones.csv", "zone,lat,lng\nA,35.87,128.6\nB,35.88,128.61\n")
    data = _write(tmp_path / "z.csv", "zone_id,population\nA,10\nB,-1\nB,lots\n,5\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "population", str(data), "--zones", str(zones))
    assert run["written"] == 1 and run["rejected"] == 3 and run["reconciles"]
    codes = sorted(r["codes"] for r in hub_json(lake, "rejects"))
    assert codes == ["missing-required", "negative-value", "type-error"]


def test_zoned_input_needs_zones_and_bad_zone_files_are_named(tmp_path: Path) -> None:
    data = _write(tmp_path / "z.csv", "zone_id,population\nA,10\n")
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "population", str(data))
    assert result.exit_code == 2 and "needs --zones FILE" in result.output
    zones = _write(tmp_path / "zones.geojson", json.dumps({"type": "FeatureCollection",
                   "features": [{"type": "Feature", "properties": {"zone_id": "A"},
                                 "geometry": {"type": "LineString",
                                              "coordinates": [[0, 0], [1, 1]]}}]}))
    result = hub(lake, "ingest", "population", str(data), "--zones", str(zones))
    assert result.exit_code == 1
    assert "features[0]" in result.output and "LineString" in result.output
