"""``hubctl entities``, ``hubctl validate``, ``hubctl demo`` and the maintenance lock."""

from __future__ import annotations

import json
from pathlib import Path

from hubctl.locks import MAINTENANCE, hold
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json, row, write_openaq

NGSI = SAMPLE_DATA / "ngsi-ld"


def _entities(lake: Path, *args: str) -> list[dict]:
    result = hub(lake, "entities", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@needs_sample_data
def test_sdm_example_re_renders_with_the_same_values_units_and_coordinates(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    src = NGSI / "AirQualityObserved.example-normalized.jsonld"
    assert hub(lake, "ingest", "ngsi-ld", str(src)).exit_code == 0
    original = json.loads(src.read_text(encoding="utf-8"))
    [entity] = _entities(lake, "AirQualityObserved", "--format", "normalized")
    assert entity["id"] == original["id"]
    assert entity["location"]["value"] == original["location"]["value"]
    for name in ("co", "no2", "no", "nox", "so2"):  # every attribute that carries a unit
        assert entity[name]["value"] == original[name]["value"], name
        assert entity[name]["unitCode"] == original[name]["unitCode"], name
    for name, attr in original.items():  # known and unknown attributes keep their values
        if isinstance(attr, dict) and "value" in attr and name != "dateObserved":
            assert entity[name]["value"] == attr["value"], name
    assert entity["refPointOfInterest"]["object"] == original["refPointOfInterest"]["object"]
    assert entity["dateObserved"]["value"] == "2016-03-15T11:00:00Z"
    assert entity["@context"][0] == original["@context"][0]


def test_entities_filters_and_forms(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", 10 + h) for h in range(4)]
                            + [row("S2", 0, "no2", 1)])
    lake = tmp_path / "lake"
    assert hub(lake, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0
    s1 = "urn:ngsi-ld:AirQualityObserved:S1"
    window = _entities(lake, "AirQualityObserved", "--id", s1, "--since",
                       "2024-05-01T01:00:00Z", "--until", "2024-05-01T03:00:00Z",
                       "--format", "keyValues")
    assert [e["no2"] for e in window] == [11.0, 12.0]
    assert window[0]["location"] == {"type": "Point", "coordinates": [4.4, 51.2]}
    [temporal] = _entities(lake, "AirQualityObserved", "--id", s1, "--format", "temporal")
    assert temporal["no2"]["values"][0] == [10.0, "2024-05-01T00:00:00Z"]
    assert len(temporal["no2"]["values"]) == 4
    concise = _entities(lake, "AirQualityObserved", "--latest", "--format", "concise")
    assert {e["id"]: e["no2"]["value"] for e in concise} == {
        s1: 13.0, "urn:ngsi-ld:AirQualityObserved:S2": 1.0}
    assert hub(lake, "entities", "AirQualityObserved", "--since", "soon").exit_code == 2
    assert hub(lake, "entities", "Nope").exit_code == 1


def test_validate_lists_problems_with_json_paths(tmp_path: Path) -> None:
    good = {"id": "urn:ngsi-ld:AirQualityObserved:A", "type": "AirQualityObserved",
            "dateObserved": "2024-05-01T00:00:00Z",
            "location": {"type": "Point", "coordinates": [127.0, 37.5]}, "no2": 5}
    bad = dict(good, no2=-1, location={"type": "Point", "coordinates": [37.5, 127.0]})
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n{oops\n", encoding="utf-8")
    result = hub(tmp_path / "lake", "validate", str(path), "--json")
    assert result.exit_code == 1
    found = {(p["path"], p["code"]) for p in json.loads(result.stdout)["problems"]}
    assert found == {("line 2/no2", "below-minimum"),
                     ("line 2/location", "swapped-coordinates"),
                     ("line 3", "malformed-record")}
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps([good]), encoding="utf-8")
    assert hub(tmp_path / "lake", "validate", str(ok)).exit_code == 0


def test_maintenance_is_refused_with_75_while_its_lock_is_held(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 1)])
    lake = tmp_path / "lake"
    assert hub(lake, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0
    with hold(lake, MAINTENANCE):
        assert hub(lake, "lake", "compact").exit_code == 75
        assert hub(lake, "lake", "vacuum").exit_code == 75
    assert hub(lake, "lake", "compact").exit_code == 0


def test_demo_ingests_every_format_into_one_lake(tmp_path: Path) -> None:
    result = hub(tmp_path / "lake", "demo", "--dir", str(tmp_path / "city"), "--hours", "6")
    assert result.exit_code == 0, result.output
    runs = hub_json(tmp_path / "lake", "sql", "SELECT source, status, read, written, rejected "
                    "FROM _runs ORDER BY source")
    assert [(r["source"], r["status"]) for r in runs] == [
        ("broker", "ok"), ("daegu-112", "ok"), ("daegu-air", "ok"), ("daegu-patrol", "ok"),
        ("eu-air", "ok")]
    assert all(r["written"] > 0 for r in runs)
    assert next(r for r in runs if r["source"] == "eu-air")["rejected"] == 2
    assert next(r for r in runs if r["source"] == "daegu-112")["written"] == 6 * 25
    [analysis] = hub_json(tmp_path / "lake", "sql", "SELECT pipeline, status FROM _pipeline_runs")
    assert analysis == {"pipeline": "patrol_points", "status": "ok"}


def test_geometry_attributes_round_trip_as_geojson(tmp_path: Path) -> None:
    """A LineString (GtfsShape.location) goes in as GeoJSON and comes out as GeoJSON."""
    line = {"type": "LineString", "coordinates": [[145.77, -16.92], [145.78, -16.93]]}
    shape = {"id": "urn:ngsi-ld:GtfsShape:demo:s1", "type": "GtfsShape",
             "feedId": {"type": "Property", "value": "demo"},
             "location": {"type": "GeoProperty", "value": line},
             "length": {"type": "Property", "value": 1520.5},
             "points": {"type": "Property", "value": 2}}
    src = tmp_path / "shape.jsonld"
    src.write_text(json.dumps(shape), encoding="utf-8")
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "ngsi-ld", str(src))
    assert result.exit_code == 0, result.output
    stored = hub_json(lake, "sql", "SELECT location FROM GtfsShape")
    assert json.loads(stored[0]["location"]) == line
    [entity] = _entities(lake, "GtfsShape", "--format", "normalized")
    assert entity["location"] == {"type": "GeoProperty", "value": line}


def test_entities_never_truncates_silently_and_latest_is_the_current_state(
        tmp_path: Path) -> None:
    # S1: no2 at 00:00 and 01:00, pm25 only at 02:00 (the newest row has no no2)
    data, st = write_openaq(tmp_path, [row("S1", 0, "no2", 10), row("S1", 1, "no2", 11),
                                       row("S1", 2, "pm25", 7), row("S2", 0, "no2", 1)])
    lake = tmp_path / "lake"
    assert hub(lake, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0
    cut = hub(lake, "entities", "AirQualityObserved", "--limit", "2", "--format", "KEYVALUES")
    assert cut.exit_code == 0 and len(json.loads(cut.stdout)) == 2
    assert "2 of 4 rows left out (--limit 2)" in cut.stderr and "--limit 0" in cut.stderr
    every = hub(lake, "entities", "AirQualityObserved", "--limit", "0", "--format", "keyvalues")
    assert len(json.loads(every.stdout)) == 4 and "left out" not in every.stderr
    s1 = "urn:ngsi-ld:AirQualityObserved:S1"
    current = {e["id"]: e for e in _entities(lake, "AirQualityObserved", "--latest",
                                             "--format", "keyValues")}
    assert (current[s1]["pm25"], current[s1]["no2"]) == (7.0, 11.0)
    newest = {e["id"]: e for e in _entities(lake, "AirQualityObserved", "--latest-row",
                                            "--format", "keyValues")}
    assert newest[s1]["pm25"] == 7.0 and "no2" not in newest[s1]
    temporal = tmp_path / "temporal.json"
    temporal.write_text(hub(lake, "entities", "AirQualityObserved", "--format",
                            "Temporal").stdout, encoding="utf-8")
    checked = hub(lake, "validate", str(temporal), "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout) == {"entities": 2, "problems": []}
    doc = json.loads(temporal.read_text(encoding="utf-8"))
    doc[0]["no2"]["values"][0][0] = -5
    temporal.write_text(json.dumps(doc), encoding="utf-8")
    checked = hub(lake, "validate", str(temporal), "--json")
    assert checked.exit_code == 1
    assert [(p["path"], p["code"]) for p in json.loads(checked.stdout)["problems"]] == [
        ("/0/no2/values/0", "below-minimum")]
