"""The places adapter: CSV with English or Korean headers, GeoJSON, --map, bad positions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import hub, hub_json


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
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
    assert rows[0]["address"] == '"대구 중구 동성로"' and rows[0]["areaServed"] == "중부서"
    assert rows[1]["name"] == "patrol-point P-02"  # no name: kind and id
    rejects = hub_json(lake, "rejects")
    assert rejects[0]["codes"] == "missing-required"


def test_geojson_stations_and_position_ids(tmp_path: Path) -> None:
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
    assert rows[0]["id"] == "urn:ngsi-ld:PointOfInterest:fire-station:-122.27,37.87"
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
