"""The places adapter: CSV with English or Korean headers, GeoJSON, --map, bad positions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import hub, hub_json


def _csv(path: Path, header: list[str], rows: list[list[str]],
         encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_korean_patrol_points_csv(tmp_path: Path) -> None:
    data = _csv(tmp_path / "patrol.csv", ["관리번호", "시설명", "위도", "경도", "주소", "관할"], [
        ["P-01", "동성로 거점", "35.8690", "128.5960", "대구 중구 동성로", "중부서"],
        ["P-02", "", "35.8600", "128.6100", "", "중부서"],
        ["P-03", "좌표 없음", "", "", "", ""],
    ])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(data), "--kind", "patrol-point")
    assert run["reconciles"] and run["read"] == 3 and run["written"] == 2
    assert run["rejected"] == 1
    rows = hub_json(lake, "sql", "SELECT id, name, category, lon, lat, address, areaServed "
                    "FROM PointOfInterest ORDER BY id")
    assert rows[0]["id"] == "urn:ngsi-ld:PointOfInterest:patrol-point:P-01"
    assert rows[0]["name"] == "동성로 거점" and rows[0]["category"] == ["patrol-point"]
    assert (rows[0]["lon"], rows[0]["lat"]) == (128.596, 35.869)
    assert json.loads(rows[0]["address"]) == {"streetAddress": "대구 중구 동성로"}
    assert rows[0]["areaServed"] == "중부서"
    assert rows[1]["name"] == "patrol-point P-02"  # no name: kind and id
    rejects = hub_json(lake, "rejects")
    assert rejects[0]["codes"] == "missing-required"


def test_geojson_stations_and_name_ids(tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-122.27, 37.87]},
         "properties": {"name": "Station 2", "capacity": "3", "district": "North"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-122.29, 37.85]},
         "properties": {"name": "Station 5", "capacity": None}},
    ]}
    path = tmp_path / "fire.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(path), "--kind", "fire-station")
    assert run["written"] == 2
    rows = hub_json(lake, "sql", "SELECT id, name, capacity, areaServed, lon FROM "
                    "PointOfInterest ORDER BY name")
    assert rows[0]["id"] == "urn:ngsi-ld:PointOfInterest:fire-station:Station%202"
    assert rows[0]["capacity"] == 3.0 and rows[0]["areaServed"] == "North"
    assert rows[1]["capacity"] is None
    again = hub_json(lake, "ingest", "places", str(path), "--kind", "fire-station", "--force")
    assert again["duplicate"] == 2 and again["written"] == 0


def test_map_names_other_columns_and_extra_is_kept(tmp_path: Path) -> None:
    data = _csv(tmp_path / "cctv.csv", ["cam", "where", "Y", "X", "vendor"], [
        ["C1", "Gate", "37.5", "127.0", "Acme"]])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(data), "--kind", "cctv", "--map", "cam=id",
                   "--map", "where=name")
    assert run["written"] == 1
    r = hub_json(lake, "sql", "SELECT id, name, lon, lat, _extra FROM PointOfInterest")[0]
    assert r["id"].endswith("cctv:C1") and r["name"] == "Gate"
    assert (r["lon"], r["lat"]) == (127.0, 37.5) and json.loads(r["_extra"]) == {
        "vendor": "Acme"}


def test_missing_coordinates_and_bad_kind_are_clear_errors(tmp_path: Path) -> None:
    data = _csv(tmp_path / "p.csv", ["name", "addr"], [["A", "somewhere"]])
    result = hub(tmp_path / "lake", "ingest", "places", str(data), "--kind", "cctv")
    assert result.exit_code != 0 and "no coordinate columns" in result.output
    assert "the file has 'addr' or 'name' but no position: join it with a list that " \
        "has them, --coordinates FILE" in result.output
    result = hub(tmp_path / "lake", "ingest", "places", str(data), "--kind", "castle")
    assert result.exit_code != 0 and "castle" in result.output
    bad = tmp_path / "x.geojson"
    bad.write_text('{"type": "Feature"}', encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "places", str(bad), "--kind", "cctv")
    assert result.exit_code != 0 and "FeatureCollection" in result.output
    result = hub(tmp_path / "lake", "ingest", "places", str(data), "--kind", "cctv",
                 "--map", "addr=where")
    assert result.exit_code == 2 and "'where' is not a place field" in result.output


def test_cp949_police_station_list(tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    path.write_bytes("관서명,위도,경도\n대구중부경찰서,35.8692,128.5934\n".encode("cp949"))
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(path), "--kind", "police-station")
    assert run["written"] == 1
    r = hub_json(lake, "sql", "SELECT name, category FROM PointOfInterest")[0]
    assert r == {"name": "대구중부경찰서", "category": ["police-station"]}


def test_without_an_id_column_a_moved_station_keeps_its_entity(tmp_path: Path) -> None:
    """A national police-box list (경찰청 지구대·파출소 현황 layout: 관서명, 주소, 위도, 경도, no
    code): ids come from the name; a name given twice is told apart by its position."""
    header = ["관서명", "주소", "위도", "경도"]
    first = _csv(tmp_path / "boxes.csv", header, [
        ["종로지구대", "서울 종로구 종로 1", "37.570100", "126.982100"],
        ["역전파출소", "대구 북구 1", "35.880000", "128.600000"],
        ["역전파출소", "부산 동구 2", "35.115000", "129.040000"]])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(first), "--kind", "police-station")
    assert run["written"] == 3
    moved = _csv(tmp_path / "boxes2.csv", header, [
        ["종로지구대", "서울 종로구 종로 1", "37.570109", "126.982100"]])  # 1 m north
    run = hub_json(lake, "ingest", "places", str(moved), "--kind", "police-station")
    assert (run["updated"], run["written"]) == (1, 0)
    ids = [r["id"].rsplit(":", 1)[1] for r in hub_json(
        lake, "sql", "SELECT id FROM PointOfInterest_latest ORDER BY id")]
    assert len(ids) == 3 and ids[2] == "%EC%A2%85%EB%A1%9C%EC%A7%80%EA%B5%AC%EB%8C%80"
    assert ids[0].endswith("@128.6,35.88") or ids[1].endswith("@128.6,35.88")


def test_geojson_in_a_projected_crs_is_refused(tmp_path: Path) -> None:
    """EPSG:5179 (Korea 2000 / Unified CS), as Korean open-data GeoJSON often is: metres
    read as degrees would be nonsense; named by the crs member or seen in the numbers."""
    feature = {"type": "Feature", "properties": {"name": "중부서"},
               "geometry": {"type": "Point", "coordinates": [958284.5, 1953165.2]}}
    named = tmp_path / "named.geojson"
    named.write_text(json.dumps({"type": "FeatureCollection", "crs": {
        "type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5179"}},
        "features": [feature]}), encoding="utf-8")
    bare = tmp_path / "bare.geojson"
    bare.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}),
                    encoding="utf-8")
    for path, system in ((named, "EPSG:5179"), (bare, "a projected system")):
        result = hub(tmp_path / "lake", "ingest", "places", str(path), "--kind", "police-station")
        assert result.exit_code == 1, result.output
        assert f"coordinates are in {system}" in result.output and "ogr2ogr" in result.output


def test_police_box_list_without_coordinates_joins_a_coordinates_file(tmp_path: Path) -> None:
    """The national police-box list (경찰청 전국 지구대·파출소: 연번,시도청,경찰서,관서명,구분,주소,
    CP949) has addresses but no position: --coordinates joins a geocoded list on the address
    (spacing and punctuation aside), else on a name the list does not repeat."""
    boxes = _csv(tmp_path / "boxes.csv", ["연번", "시도청", "경찰서", "관서명", "구분", "주소"], [
        ["1", "서울청", "중부", "을지", "지구대", "서울특별시 중구 퇴계로49길 13"],
        ["2", "서울청", "중부", "중앙", "지구대", "서울특별시 중구 다산로 10"],
        ["3", "부산청", "중부", "중앙", "파출소", "부산광역시 중구 중앙대로 1"],
        ["4", "서울청", "남대문", "태평로", "파출소", "서울특별시 중구 세종대로 100"],
        ["5", "서울청", "중부", "명동", "지구대", "서울특별시 중구 명동길 1"]],
        encoding="cp949")
    geo = _csv(tmp_path / "geo.csv", ["name", "address", "lat", "lon"], [
        ["을지", "서울특별시  중구 퇴계로49길 13", "37.5637", "126.9981"],
        ["중앙", "서울특별시 중구, 다산로 10", "37.5610", "127.0110"],
        ["중앙", "", "35.1000", "129.0300"],  # a name only: the list repeats it, not used
        ["태평로", "", "37.5680", "126.9770"],
        ["명동", "", "", ""]])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(boxes), "--kind", "patrol-point",
                   "--coordinates", str(geo))
    assert (run["read"], run["written"], run["rejected"]) == (5, 3, 2) and run["reconciles"]
    assert any("3 of 5 places without a position took it from geo.csv (by address 2, by name 1)"
               "; 2 found none and are rejected" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT name, lat, lon FROM PointOfInterest ORDER BY lat")
    assert [(r["name"], r["lat"], r["lon"]) for r in rows] == [
        ("중앙", 37.561, 127.011), ("을지", 37.5637, 126.9981), ("태평로", 37.568, 126.977)]
    # a coordinates file without anything to join on is refused, naming it
    bare = _csv(tmp_path / "bare.csv", ["lat", "lon"], [["37.5", "127.0"]])
    result = hub(lake, "ingest", "places", str(boxes), "--kind", "patrol-point",
                 "--coordinates", str(bare))
    assert result.exit_code == 1 and "bare.csv" in result.output and "join on" in result.output


def test_headers_are_matched_as_every_adapter_matches_them(tmp_path: Path) -> None:
    """Case, spaces, dots and underscores aside (adapterkit.fold), as the energy adapters
    match theirs: 'Station ID' is station_id, 'LATITUDE' and 'Longitude ' need no --map."""
    data = _csv(tmp_path / "stations.csv", ["Station ID", "Name", "LATITUDE", "Longitude "],
                [["F1", "Jung fire station", "35.87", "128.60"]])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "places", str(data), "--kind", "fire-station")
    assert run["written"] == 1 and run["reconciles"]
    [row] = hub_json(lake, "sql", "SELECT id, name, lon, lat FROM PointOfInterest")
    assert row == {"id": "urn:ngsi-ld:PointOfInterest:fire-station:F1",
                   "name": "Jung fire station", "lon": 128.6, "lat": 35.87}
