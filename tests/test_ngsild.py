"""The NGSI-LD model: ids, time parsing, the three input forms, units, time index, rendering."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hubctl.ngsild import (
    entity_id,
    format_time,
    iter_documents,
    local_id,
    normalize,
    parse_time,
    time_index,
    type_name,
)
from hubctl.registry import get_type
from hubctl.rows import build_table, entity_to_row, render, render_temporal
from hubctl.units import MOLAR_MASS, MOLAR_VOLUME_L

AQO = get_type("AirQualityObserved")
POI = get_type("PointOfInterest")
ARRIVAL = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AQO_ID = "urn:ngsi-ld:AirQualityObserved:Daegu-111123-2024-05-01T10:00"
POI_ID = "urn:ngsi-ld:PointOfInterest:111123"


# ------------------------------------------------------------------ ids

@pytest.mark.parametrize("local", [
    "중구", "대구 수성구 (범어동)", "수창동/대구", "a:b:c", "100%", "a#b?c=d&e", "tab\there",
    "quote'\"", "emoji 🌫️", "München", "x" * 300, "%EC%A4%91",
])
def test_entity_id_round_trips_any_local_id(local: str) -> None:
    urn = entity_id("PointOfInterest", local)
    assert urn.startswith("urn:ngsi-ld:PointOfInterest:")
    assert not any(c.isspace() for c in urn), "a URN holds no whitespace"
    assert local_id(urn) == local


def test_entity_id_examples() -> None:
    assert entity_id("PointOfInterest", "중구") == "urn:ngsi-ld:PointOfInterest:%EC%A4%91%EA%B5%AC"
    assert entity_id("PointOfInterest", " 111123 ") == "urn:ngsi-ld:PointOfInterest:111123"
    assert entity_id("PointOfInterest", POI_ID) == POI_ID  # already a URN: kept
    assert local_id("not-a-urn") == "not-a-urn"


@pytest.mark.parametrize(("value", "expected"), [
    ("AirQualityObserved", "AirQualityObserved"),
    ("https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", "AirQualityObserved"),
    ("https://uri.fiware.org/ns/data-models#AirQualityObserved", "AirQualityObserved"),
    ("sdm:AirQualityObserved", "AirQualityObserved"),
    (None, ""),
    (5, ""),
])
def test_type_name_takes_the_last_segment(value: Any, expected: str) -> None:
    assert type_name(value) == expected


# ------------------------------------------------------------------ time

@pytest.mark.parametrize(("text", "expected"), [
    ("2016-03-15T11:00:00Z", datetime(2016, 3, 15, 11, tzinfo=UTC)),
    ("2016-03-15T11:00:00z", datetime(2016, 3, 15, 11, tzinfo=UTC)),
    ("2016-03-15T11:00:00", datetime(2016, 3, 15, 11, tzinfo=UTC)),  # naive: UTC
    ("2016-03-15T20:00:00+09:00", datetime(2016, 3, 15, 11, tzinfo=UTC)),
    ("2016-03-15T06:30:00-04:30", datetime(2016, 3, 15, 11, tzinfo=UTC)),
    ("2016-03-15T11:00:00.250Z", datetime(2016, 3, 15, 11, 0, 0, 250000, tzinfo=UTC)),
    ("  2016-03-15T11:00Z ", datetime(2016, 3, 15, 11, tzinfo=UTC)),
    ("2016-03-15", datetime(2016, 3, 15, tzinfo=UTC)),
    (1458039600, datetime(2016, 3, 15, 11, tzinfo=UTC)),
    (1458039600.5, datetime(2016, 3, 15, 11, 0, 0, 500000, tzinfo=UTC)),
])
def test_parse_time_variants(text: Any, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", [None, True, False, "", "  ", "yesterday", "15/03/2016",
                                 "2016-02-30T10:00", float("nan"), float("inf"), [], {}])
def test_parse_time_rejects_what_is_not_a_time(bad: Any) -> None:
    assert parse_time(bad) is None


def test_format_time_is_utc_with_z() -> None:
    kst = timezone(timedelta(hours=9))
    assert format_time(datetime(2024, 5, 1, 19, 0, tzinfo=kst)) == "2024-05-01T10:00:00Z"
    assert format_time(datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=UTC)) == \
        "2024-05-01T10:00:00.000005Z"
    assert format_time(None) is None


# ------------------------------------------------------------------ normalize

NORMALIZED: dict[str, Any] = {
    "id": AQO_ID, "type": "AirQualityObserved",
    "dateObserved": {"type": "Property", "value": "2024-05-01T10:00:00Z"},
    "no2": {"type": "Property", "value": 31.5, "unitCode": "GQ"},
    "co": {"type": "Property", "value": 0.4, "unitCode": "GP"},
    "relativeHumidity": {"type": "Property", "value": 0.61},
    "airQualityLevel": {"type": "Property", "value": "good"},
    "address": {"type": "Property", "value": {"addressLocality": "Daegu", "type": "PostalAddress"}},
    "location": {"type": "GeoProperty",
                 "value": {"type": "Point", "coordinates": [128.601445, 35.871435]}},
    "refPointOfInterest": {"type": "Relationship", "object": POI_ID},
    "stationCode": {"type": "Property", "value": "111123"},
}
CONCISE: dict[str, Any] = {
    "id": AQO_ID, "type": "AirQualityObserved",
    "dateObserved": "2024-05-01T10:00:00Z",
    "no2": {"value": 31.5, "unitCode": "GQ"},
    "co": {"value": 0.4, "unitCode": "GP"},
    "relativeHumidity": 0.61,
    "airQualityLevel": "good",
    "address": {"addressLocality": "Daegu", "type": "PostalAddress"},
    "location": {"type": "Point", "coordinates": [128.601445, 35.871435]},
    "refPointOfInterest": {"object": POI_ID},
    "stationCode": "111123",
}
KEY_VALUES: dict[str, Any] = {
    "id": AQO_ID, "type": "AirQualityObserved",
    "dateObserved": "2024-05-01T10:00:00Z",
    "no2": 31.5,
    "co": 0.4,
    "relativeHumidity": 0.61,
    "airQualityLevel": "good",
    "address": {"addressLocality": "Daegu", "type": "PostalAddress"},
    "location": {"type": "Point", "coordinates": [128.601445, 35.871435]},
    "refPointOfInterest": POI_ID,
    "stationCode": "111123",
}


def test_three_forms_normalize_to_the_same_entity() -> None:
    results = [normalize(copy.deepcopy(doc), AQO) for doc in (NORMALIZED, CONCISE, KEY_VALUES)]
    for parsed in results:
        assert parsed.reasons == []
        assert parsed.unknown == ["stationCode"]
        assert parsed.entity == NORMALIZED


def test_normalize_does_not_change_its_input() -> None:
    doc = copy.deepcopy(CONCISE)
    normalize(doc, AQO)
    assert doc == CONCISE


def test_render_forms_normalize_back_to_the_same_entity() -> None:
    parsed = normalize(copy.deepcopy(KEY_VALUES), AQO)
    when, source = time_index(parsed.entity, AQO, ARRIVAL)
    row = entity_to_row(parsed.entity, AQO, when, source, parsed.unknown)
    [typed] = build_table([row], AQO)[0].to_pylist()
    entities = [normalize(render(typed, AQO, form, context=False), AQO).entity
                for form in ("normalized", "concise", "keyValues")]
    for entity in entities:  # keyValues has no observedAt: compare without it
        for value in entity.values():
            if isinstance(value, dict):
                value.pop("observedAt", None)
    assert entities[0] == entities[1] == entities[2]
    assert entities[0]["no2"] == {"type": "Property", "value": 31.5, "unitCode": "GQ"}
    assert entities[0]["stationCode"] == {"type": "Property", "value": "111123"}


def test_normalize_rejects_what_is_not_an_object() -> None:
    parsed = normalize(["not", "an", "entity"], AQO)
    assert [r.code for r in parsed.reasons] == ["malformed-record"]


def test_normalize_unwraps_json_ld_date_time_values() -> None:
    doc = {"id": AQO_ID, "type": "AirQualityObserved",
           "dateObserved": {"type": "Property",
                            "value": {"@type": "DateTime", "@value": "2024-05-01T10:00:00Z"}}}
    assert normalize(doc, AQO).entity["dateObserved"]["value"] == "2024-05-01T10:00:00Z"


def _gq_per_ppm(gas: str) -> float:
    return 1000 * MOLAR_MASS[gas] / MOLAR_VOLUME_L


@pytest.mark.parametrize(("attr", "given", "unit", "expected"), [
    ("no2", 0.05, "59", 0.05 * _gq_per_ppm("no2")),  # ppm -> µg/m³
    ("no2", 50, "ppb", 50 * _gq_per_ppm("no2") / 1000),
    ("o3", 0.031, "ppm", 0.031 * _gq_per_ppm("o3")),
    ("co", 500, "GQ", 0.5),  # µg/m³ -> mg/m³
    ("co", 0.4, "ppm", 0.4 * _gq_per_ppm("co") / 1000),
    ("pm10", 0.042, "mg/m³", 42.0),
    ("pm25", 12, "μg/m³", 12),  # Greek mu
    ("no2", 31.5, "GQ", 31.5),
])
def test_normalize_converts_units(attr: str, given: float, unit: str, expected: float) -> None:
    doc = {"id": AQO_ID, "type": "AirQualityObserved",
           attr: {"type": "Property", "value": given, "unitCode": unit}}
    parsed = normalize(doc, AQO)
    assert parsed.reasons == []
    out = parsed.entity[attr]
    assert out["unitCode"] == AQO.attributes[attr].unit
    assert math.isclose(out["value"], expected, rel_tol=1e-12)


def test_concise_units_convert_too() -> None:
    parsed = normalize({"id": AQO_ID, "type": "AirQualityObserved",
                        "no2": {"value": 0.05, "unitCode": "59"}}, AQO)
    assert math.isclose(parsed.entity["no2"]["value"], 0.05 * _gq_per_ppm("no2"))
    assert parsed.entity["no2"]["unitCode"] == "GQ"


@pytest.mark.parametrize(("attr", "unit"), [("no2", "furlongs"), ("pm10", "ppm"),
                                            ("temperature", "GQ")])
def test_unconvertible_units_are_reasons(attr: str, unit: str) -> None:
    parsed = normalize({"id": AQO_ID, "type": "AirQualityObserved",
                        attr: {"type": "Property", "value": 1.0, "unitCode": unit}}, AQO)
    assert [(r.code, r.field) for r in parsed.reasons] == [("unknown-unit", attr)]


# ------------------------------------------------------------------ time index

def _entity(**attrs: Any) -> dict[str, Any]:
    return {"id": AQO_ID, "type": "AirQualityObserved", **attrs}


OBSERVED = {"type": "Property", "value": 1.0, "observedAt": "2024-05-01T10:00:00Z"}
LATER = {"type": "Property", "value": 2.0, "observedAt": "2024-05-01T11:00:00+09:00"}
DATE = {"type": "Property", "value": "2024-04-30T00:00:00Z"}
INSTANT = {"type": "Property", "value": "2024-04-29T00:00:00Z"}


@pytest.mark.parametrize(("entity", "expected", "source"), [
    (_entity(no2=OBSERVED, dateObserved=DATE, TimeInstant=INSTANT),
     datetime(2024, 5, 1, 10, tzinfo=UTC), "observedAt"),
    (_entity(no2=OBSERVED, o3=LATER), datetime(2024, 5, 1, 10, tzinfo=UTC), "observedAt"),
    (_entity(no2={**OBSERVED, "observedAt": "2024-05-01T12:00:00Z"}, o3=LATER),
     datetime(2024, 5, 1, 12, tzinfo=UTC), "observedAt"),  # the newest
    (_entity(no2={**OBSERVED, "observedAt": "garbage"}, dateObserved=DATE),
     datetime(2024, 4, 30, tzinfo=UTC), "dateObserved"),
    (_entity(dateObserved=DATE, TimeInstant=INSTANT), datetime(2024, 4, 30, tzinfo=UTC),
     "dateObserved"),
    (_entity(dateObserved={"type": "Property", "value": "soon"}, TimeInstant=INSTANT),
     datetime(2024, 4, 29, tzinfo=UTC), "TimeInstant"),
    (_entity(timestamp=INSTANT), datetime(2024, 4, 29, tzinfo=UTC), "timestamp"),
    (_entity(no2={"type": "Property", "value": 1.0}), ARRIVAL, "arrival"),
])
def test_time_index_precedence(entity: dict[str, Any], expected: datetime, source: str) -> None:
    assert time_index(entity, AQO, ARRIVAL) == (expected, source)


# ------------------------------------------------------------------ rendering

def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": AQO_ID, "observed_at": datetime(2024, 5, 1, 10, tzinfo=UTC),
        "dateObserved": datetime(2024, 5, 1, 10, tzinfo=UTC), "no2": 31.5,
        "airQualityLevel": "good", "lon": 128.601445, "lat": 35.871435,
        "refPointOfInterest": POI_ID, "address": '{"addressLocality": "Daegu"}',
        "_extra": '{"stationCode": {"type": "Property", "value": "111123"}}',
    }
    row.update(changes)
    return row


def test_render_normalized() -> None:
    entity = render(_row(), AQO, "normalized")
    assert list(entity)[:2] == ["id", "type"] and list(entity)[-1] == "@context"
    assert entity["@context"] == AQO.context
    assert entity["no2"] == {"type": "Property", "value": 31.5, "unitCode": "GQ",
                             "observedAt": "2024-05-01T10:00:00Z"}
    assert entity["dateObserved"] == {"type": "Property", "value": "2024-05-01T10:00:00Z"}
    assert entity["location"] == {"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [128.601445, 35.871435]}}
    assert entity["refPointOfInterest"] == {"type": "Relationship", "object": POI_ID}
    assert entity["address"]["value"] == {"addressLocality": "Daegu"}
    assert entity["stationCode"] == {"type": "Property", "value": "111123"}
    assert "pm10" not in entity  # nulls are left out


def test_render_concise() -> None:
    entity = render(_row(), AQO, "concise", context=False)
    assert "@context" not in entity
    assert entity["no2"] == {"value": 31.5, "unitCode": "GQ", "observedAt": "2024-05-01T10:00:00Z"}
    assert entity["dateObserved"] == "2024-05-01T10:00:00Z"
    assert entity["location"] == {"type": "Point", "coordinates": [128.601445, 35.871435]}
    assert entity["refPointOfInterest"] == {"object": POI_ID}
    assert entity["stationCode"] == "111123"


def test_render_key_values() -> None:
    entity = render(_row(), AQO, "keyValues", context=False)
    assert entity == {
        "id": AQO_ID, "type": "AirQualityObserved", "dateObserved": "2024-05-01T10:00:00Z",
        "location": {"type": "Point", "coordinates": [128.601445, 35.871435]},
        "no2": 31.5, "airQualityLevel": "good", "refPointOfInterest": POI_ID,
        "address": {"addressLocality": "Daegu"}, "stationCode": "111123"}


def test_render_static_entity_has_no_observed_at() -> None:
    row = {"id": POI_ID, "observed_at": ARRIVAL, "name": "중구", "lon": 128.6, "lat": 35.87,
           "category": ["airQualityStation"]}
    entity = render(row, POI, "normalized", context=False)
    assert entity["name"] == {"type": "Property", "value": "중구"}
    assert entity["category"] == {"type": "Property", "value": ["airQualityStation"]}
    assert "observedAt" not in str(entity)


def test_render_temporal_groups_by_id_in_time_order() -> None:
    t0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
    other = "urn:ngsi-ld:AirQualityObserved:other"
    rows = [_row(observed_at=t0 + timedelta(hours=1), no2=40.0),
            _row(id=other, observed_at=t0, no2=5.0),
            _row(observed_at=t0, no2=31.5, lon=None, lat=None)]
    out = render_temporal(rows, AQO)
    assert [e["id"] for e in out] == [AQO_ID, other]
    first = out[0]
    assert first["@context"] == AQO.context
    assert first["no2"] == {"type": "Property", "values": [
        [31.5, "2024-05-01T10:00:00Z"], [40.0, "2024-05-01T11:00:00Z"]]}
    assert first["location"]["values"] == [
        [{"type": "Point", "coordinates": [128.601445, 35.871435]}, "2024-05-01T11:00:00Z"]]
    assert first["refPointOfInterest"]["type"] == "Relationship"
    assert first["refPointOfInterest"]["values"][0] == [POI_ID, "2024-05-01T10:00:00Z"]


# ------------------------------------------------------------------ documents

def test_iter_documents_shapes() -> None:
    assert list(iter_documents('{"id": "a"}', "x")) == [("/", {"id": "a"})]
    assert list(iter_documents('\ufeff[{"id": "a"}, {"id": "b"}]', "x")) == [
        ("/0", {"id": "a"}), ("/1", {"id": "b"})]
    assert list(iter_documents("  \n", "x")) == []


def test_iter_documents_json_lines_keep_file_line_numbers() -> None:
    text = '\n{"id": "a"}\n\n{"id": "b", "name": "a\u2028b"}\n{broken\n{"id": "c"}\n'
    out = list(iter_documents(text, "x"))
    assert [p for p, _ in out] == ["line 2", "line 4", "line 5", "line 6"]
    assert out[1][1]["name"] == "a\u2028b"
    assert isinstance(out[2][1], ValueError)


def test_iter_documents_broken_pretty_json_is_one_record() -> None:
    text = '[\n  {\n    "id": "a",\n    "no2": 5,\n  }\n]\n'
    [(pointer, error)] = list(iter_documents(text, "x"))
    assert pointer == "line 5" and isinstance(error, ValueError)
    assert "line 5" in str(error)


@pytest.mark.parametrize(("type_name", "attr", "given", "unit", "expected"), [
    ("Vehicle", "speed", 10.0, "MTS", 36.0),            # m/s -> km/h
    ("Vehicle", "speed", 36.0, "km/h", 36.0),
    ("GtfsShape", "length", 1.5, "KMT", 1500.0),        # km -> m
    ("Alert", "responseTime", 2.0, "MIN", 120.0),       # minutes -> seconds
])
def test_linear_units_convert(type_name: str, attr: str, given: float, unit: str,
                              expected: float) -> None:
    et = get_type(type_name)
    doc = {"id": f"urn:ngsi-ld:{type_name}:x", "type": type_name,
           attr: {"type": "Property", "value": given, "unitCode": unit}}
    parsed = normalize(doc, et)
    assert [r for r in parsed.reasons if r.field == attr] == []
    assert math.isclose(parsed.entity[attr]["value"], expected, rel_tol=1e-12)
    assert parsed.entity[attr]["unitCode"] == et.attributes[attr].unit
