"""The two quality-gate paths agree on every record.

Path A renders a lake row as a normalized NGSI-LD entity and runs ``jsonschema`` on it
(:func:`validate_entity`); path B builds the typed Arrow table and runs the vectorised checks
(:func:`build_table` then :meth:`Gate.check`). For a seeded corpus of good rows, every kind of
bad value and hand-picked edge cases, both must give the same ``(field, code)`` pairs per row.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hubctl.gate import coordinate_reason, gate_for, validate_entity
from hubctl.ngsild import entity_id, format_time, normalize, time_index
from hubctl.registry import EntityType, get_type
from hubctl.rows import build_table, entity_to_row
from tests.helpers import hub_json

AQO = get_type("AirQualityObserved")
POI = get_type("PointOfInterest")
T0 = datetime(2024, 3, 1, tzinfo=UTC)
Row = dict[str, Any]
Pairs = set[tuple[str, str]]


# ------------------------------------------------------------------ the two paths

def raw_entity(row: Row, et: EntityType) -> dict[str, Any]:
    """A lake row as a normalized entity, keeping raw values so that bad types survive.

    Like :func:`hubctl.rows.render` with ``context=False``, but a value of the wrong type
    (a string where a number belongs) is passed on as it is instead of being assumed typed.
    """
    entity: dict[str, Any] = {"type": et.name}
    if row.get("id") is not None:
        entity["id"] = row["id"]
    for name, attr in et.attributes.items():
        if attr.is_point:
            lon, lat = row.get("lon"), row.get("lat")
            if lon is None and lat is None:
                continue
            value: Any = {"type": "Point", "coordinates": [lon, lat]}
            entity[name] = {"type": "GeoProperty", "value": value}
            continue
        value = row.get(name)
        if value is None:
            continue
        if attr.kind == "Relationship":
            entity[name] = {"type": "Relationship", "object": value}
            continue
        if isinstance(value, datetime) and attr.column.name == "timestamp":
            value = format_time(value)
        entity[name] = {"type": attr.kind, "value": value}
        if attr.unit:
            entity[name]["unitCode"] = attr.unit
    return entity


def path_a(rows: list[Row], et: EntityType) -> list[Pairs]:
    """(field, code) pairs per row from jsonschema on the rendered entity."""
    return [{(r.field, r.code) for r in validate_entity(raw_entity(row, et), et)}
            for row in rows]


def path_b(rows: list[Row], et: EntityType) -> list[Pairs]:
    """(field, code) pairs per row from the typed table and the vectorised gate."""
    table, typed_bad = build_table(rows, et)
    found = gate_for(et).check(table, typed_bad)
    return [{(r.field, r.code) for r in found.get(i, [])} for i in range(len(rows))]


def assert_agree(rows: list[Row], et: EntityType) -> list[Pairs]:
    """Both paths give the same pairs for every row; returns them."""
    a, b = path_a(rows, et), path_b(rows, et)
    diffs = [f"row {i}: {rows[i]!r}\n  jsonschema only: {sorted(a[i] - b[i])}\n"
             f"  vectorised only: {sorted(b[i] - a[i])}"
             for i in range(len(rows)) if a[i] != b[i]]
    assert not diffs, f"{len(diffs)} of {len(rows)} rows disagree:\n" + "\n".join(diffs[:20])
    accepted_a = {i for i, pairs in enumerate(a) if not pairs}
    accepted_b = {i for i, pairs in enumerate(b) if not pairs}
    assert accepted_a == accepted_b
    return a


# ------------------------------------------------------------------ the corpus

NUMERIC = [n for n, a in AQO.attributes.items() if a.column.name == "float64"]
NAN, INF = float("nan"), float("inf")
BAD_NUMBERS: list[Any] = ["12.5", "abc", "", True, False, [1], {"v": 1}, NAN, INF, -INF,
                          10**400, -(10**400)]
BAD_IDS: list[Any] = [
    "urn:ngsi-ld:AirQualityObserved:\x00", "urn:ngsi-ld:AirQualityObserved:a\x01",
    "urn:ngsi-ld:AirQualityObserved:" + "é" * 994, "", "AirQualityObserved:1",
    "urn:ngsi-ld:AirQualityObserved:", "urn:ngsi-ld:PointOfInterest:x",
    "urn:ngsi-ld:AirQualityObserved:a b", "urn:ngsi-ld:AirQualityObserved:x\n",
    "urn:ngsi-ld:AirQualityObserved:\tx", "urn:ngsi-ld:airqualityobserved:x", 5, True, ["x"],
]
ODD_GOOD_IDS = [
    "urn:ngsi-ld:AirQualityObserved:" + "é" * 993,  # 1,024 characters: the limit
    entity_id("AirQualityObserved", "대구 수성구 (범어동)"), "urn:ngsi-ld:AirQualityObserved:a:b:c",
    "urn:ngsi-ld:AirQualityObserved:중구", "urn:ngsi-ld:AirQualityObserved:a\u00a0b",
]
BAD_TIMES: list[Any] = [
    "yesterday", "", " ", "2016-03-15", "2016-13-45T99:99", "2016-03-15T11:00:00 junk",
    "15/03/2016 11:00", "2016-03-15 11:00:00", "\u0662\u0660\u0661\u0666-03-15T11:00",
    1458039600, 1458039600.5, True, {"@value": "2016-03-15T11:00:00Z"}, ["2016-03-15T11:00Z"],
]
GOOD_TIME_TEXT = ["2016-03-15T11:00:00Z", "2016-03-15T11:00:00", "2016-03-15T11:00:00.250+09:00",
                  "2016-03-15T11:00"]
BAD_POINTS: list[tuple[Any, Any]] = [
    (200.0, 100.0), (181.0, 0.0), (0.0, 91.0), (-180.5, 0.0), (0.0, -90.5), (95.0, 95.0),
    (37.5, 127.0), (10.0, -95.0), (-33.9, 151.2), (None, 51.2), (4.4, None), ("4.4", 51.2),
    (4.4, "51.2"), (True, 51.2), (NAN, 51.2), (4.4, INF), ([4.4], 51.2), ({"x": 1}, 2.0),
    (10**400, 0.0), ("a", "b"),
]
GOOD_POINTS = [(4.4, 51.2), (180.0, 90.0), (-180.0, -90.0), (127.0, 37.5), (0, 0),
               (128.601445, 35.871435), (-3.712247222222222, 40.423852777777775)]
BAD_LEVELS: list[Any] = ["bad", "", "GOOD", "Moderate", 3, True, ["good"], {"value": "good"}]
BAD_URNS: list[Any] = [
    "not-a-urn", "urn:ngsi-ld:AirQualityObserved:x", "urn:ngsi-ld:PointOfInterest:",
    "urn:ngsi-ld:PointOfInterest:a b", "urn:ngsi-ld:PointOfInterest:x\n", 5, True,
    ["urn:ngsi-ld:PointOfInterest:x"],
]
BAD_ADDRESSES: list[Any] = ["Plaza de España", 5, [1, 2], True, 1.5]
BAD_STRINGS: list[Any] = [5, 1.5, True, {"a": 1}, ["x"]]


def good_aqo(rng: random.Random, n: int) -> Row:
    """A valid AirQualityObserved row with random values inside the schema's limits."""
    when = T0 + timedelta(hours=n, minutes=rng.choice([0, 30]))
    lon, lat = rng.choice(GOOD_POINTS) if rng.random() < 0.2 else (
        rng.uniform(-180, 180), rng.uniform(-90, 90))
    row: Row = {"id": entity_id("AirQualityObserved", f"station-{n % 17}"), "observed_at": when,
                "dateObserved": when, "lon": lon, "lat": lat}
    for name in NUMERIC:
        if rng.random() < 0.6:
            vs = AQO.attributes[name].value_schema
            lo, hi = vs.get("minimum", 0), vs.get("maximum", 1000)
            row[name] = rng.choice([lo, hi, rng.uniform(lo, hi), int(rng.uniform(lo, hi))])
    if rng.random() < 0.5:
        row["airQualityLevel"] = rng.choice(AQO.attributes["airQualityLevel"].value_schema["enum"])
    if rng.random() < 0.5:
        row["typeOfLocation"] = rng.choice(["indoor", "outdoor"])
    if rng.random() < 0.3:
        row["refPointOfInterest"] = entity_id("PointOfInterest", rng.choice(["중구", "a/b", "x"]))
    if rng.random() < 0.3:
        row["address"] = {"addressLocality": "Daegu", "streetAddress": "동대구로 1"}
    if rng.random() < 0.3:
        row["areaServed"] = rng.choice(["", "수성구", "Brooklands"])
    return row


def _set_point(row: Row, point: tuple[Any, Any]) -> None:
    row["lon"], row["lat"] = point


Mutation = Callable[[Row], None]


def set_to(name: str, value: Any) -> Mutation:
    """A mutation that sets one field of a row."""
    def mutate(row: Row) -> None:
        row[name] = value
    return mutate


def drop(*names: str) -> Mutation:
    """A mutation that removes fields from a row."""
    def mutate(row: Row) -> None:
        for name in names:
            row.pop(name, None)
    return mutate


def point_to(point: tuple[Any, Any]) -> Mutation:
    """A mutation that sets lon and lat."""
    return lambda row: _set_point(row, point)


def aqo_mutations(rng: random.Random) -> list[Mutation]:
    """Every kind of bad value, as functions that spoil one field of a row."""
    muts: list[Mutation] = []
    for name in NUMERIC:
        vs = AQO.attributes[name].value_schema
        bad = [vs["minimum"] - 0.001, vs["minimum"] - 1] if "minimum" in vs else []
        bad += [vs["maximum"] + 0.001, vs["maximum"] * 10] if "maximum" in vs else []
        for value in bad + [rng.choice(BAD_NUMBERS)]:
            muts.append(set_to(name, value))
    muts += [set_to("no2", value) for value in BAD_NUMBERS]
    for name, pool in (("id", BAD_IDS), ("dateObserved", BAD_TIMES),
                       ("airQualityLevel", BAD_LEVELS), ("typeOfLocation", BAD_LEVELS),
                       ("refPointOfInterest", BAD_URNS), ("address", BAD_ADDRESSES),
                       ("areaServed", BAD_STRINGS), ("source", BAD_STRINGS)):
        muts += [set_to(name, value) for value in pool]
    muts += [drop(name) for name in ("id", "dateObserved", "lon", "lat")]
    muts.append(drop("lon", "lat"))
    muts += [point_to(point) for point in BAD_POINTS]
    return muts


def aqo_corpus(seed: int = 20240301, random_rows: int = 300) -> list[Row]:
    """Good rows, one row per kind of bad value, and random rows with 0 to 4 faults."""
    rng = random.Random(seed)
    muts = aqo_mutations(rng)
    rows = [good_aqo(rng, n) for n in range(40)]
    for n, value in enumerate(ODD_GOOD_IDS + GOOD_TIME_TEXT):
        row = good_aqo(rng, n)
        row["id" if str(value).startswith("urn:") else "dateObserved"] = value
        rows.append(row)
    for point in GOOD_POINTS:
        row = good_aqo(rng, 0)
        _set_point(row, point)
        rows.append(row)
    for n, mutate in enumerate(muts):
        row = good_aqo(rng, n)
        mutate(row)
        rows.append(row)
    for n in range(random_rows):
        row = good_aqo(rng, n)
        for mutate in rng.sample(muts, rng.choice([0, 0, 1, 2, 3, 4])):
            mutate(row)
        rows.append(row)
    return rows


def good_poi(rng: random.Random, n: int) -> Row:
    """A valid PointOfInterest row."""
    lon, lat = rng.choice(GOOD_POINTS)
    row: Row = {"id": entity_id("PointOfInterest", rng.choice(["중구", "수성구 범어동", f"s{n}"])),
                "observed_at": T0, "name": rng.choice(["중구", "Plaza de España", "x"]),
                "lon": lon, "lat": lat}
    if rng.random() < 0.5:
        row["category"] = rng.choice([["airQualityStation"], [], ["a", "b"]])
    if rng.random() < 0.5:
        row["address"] = rng.choice(["대구광역시 중구", {"addressLocality": "Daegu"}, {}])
    if rng.random() < 0.3:
        row["alternateName"] = "111123"
    return row


POI_BAD: list[tuple[str, Any]] = [
    ("name", ""), ("name", 5), ("name", None), ("name", ["중구"]), ("category", "station"),
    ("category", ["a", 1]), ("category", [None]), ("category", {"a": 1}), ("address", 5),
    ("address", ["a"]), ("address", True), ("description", 5), ("alternateName", {"x": 1}),
    ("id", "urn:ngsi-ld:AirQualityObserved:x"), ("id", None), ("id", 7),
]


def poi_corpus(seed: int = 7) -> list[Row]:
    """Good PointOfInterest rows, every bad value once, and random mixtures."""
    rng = random.Random(seed)
    rows = [good_poi(rng, n) for n in range(30)]
    muts = [set_to(name, value) for name, value in POI_BAD]
    muts += [point_to(point) for point in BAD_POINTS]
    for n, mutate in enumerate(muts):
        row = good_poi(rng, n)
        mutate(row)
        rows.append(row)
    for n in range(150):
        row = good_poi(rng, n)
        for mutate in rng.sample(muts, rng.choice([0, 1, 2, 3])):
            mutate(row)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ tests

def test_corpus_is_big_and_varied() -> None:
    rows = aqo_corpus()
    assert len(rows) >= 200
    pairs = path_b(rows, AQO)
    codes = {code for found in pairs for _, code in found}
    assert codes >= {"type-error", "missing-required", "below-minimum", "above-maximum",
                     "enum-error", "pattern-error", "coordinates-out-of-range",
                     "swapped-coordinates", "bad-timestamp"}
    good = sum(1 for found in pairs if not found)
    assert 40 <= good <= len(rows) - 100  # plenty of both


@pytest.mark.parametrize("seed", [20240301, 1, 2])
def test_paths_agree_on_air_quality(seed: int) -> None:
    assert_agree(aqo_corpus(seed), AQO)


@pytest.mark.parametrize("seed", [7, 8])
def test_paths_agree_on_point_of_interest(seed: int) -> None:
    assert_agree(poi_corpus(seed), POI)


def _aqo_with(**changes: Any) -> Row:
    row = good_aqo(random.Random(0), 0)
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key, None)
        else:
            row[key] = value
    return row


_DROP = object()
CODE_CASES: list[tuple[str, Row, tuple[str, str]]] = [
    ("negative", _aqo_with(no2=-1), ("no2", "below-minimum")),
    ("above max", _aqo_with(co=1000.5), ("co", "above-maximum")),
    ("string number", _aqo_with(pm10="12"), ("pm10", "type-error")),
    ("bool number", _aqo_with(pm25=True), ("pm25", "type-error")),
    ("nan", _aqo_with(o3=NAN), ("o3", "type-error")),
    ("enum", _aqo_with(airQualityLevel="terrible"), ("airQualityLevel", "enum-error")),
    ("enum type", _aqo_with(airQualityLevel=2), ("airQualityLevel", "type-error")),
    ("id pattern", _aqo_with(id="urn:other:1"), ("id", "pattern-error")),
    ("id type", _aqo_with(id=12), ("id", "type-error")),
    ("id with NUL", _aqo_with(id="urn:ngsi-ld:AirQualityObserved:a\x00b"), ("id", "bad-id")),
    ("id with DEL", _aqo_with(id="urn:ngsi-ld:AirQualityObserved:a\x7fb"), ("id", "bad-id")),
    ("id too long", _aqo_with(id="urn:ngsi-ld:AirQualityObserved:" + "x" * 1000),
     ("id", "bad-id")),
    ("no id", _aqo_with(id=_DROP), ("id", "missing-required")),
    ("no date", _aqo_with(dateObserved=_DROP), ("dateObserved", "missing-required")),
    ("no location", _aqo_with(lon=_DROP, lat=_DROP), ("location", "missing-required")),
    ("bad date", _aqo_with(dateObserved="15/03/2016"), ("dateObserved", "bad-timestamp")),
    ("impossible date", _aqo_with(dateObserved="2016-02-30T10:00"),
     ("dateObserved", "bad-timestamp")),
    ("out of range", _aqo_with(lon=200.0, lat=100.0), ("location", "coordinates-out-of-range")),
    ("lat out", _aqo_with(lon=4.4, lat=91.0), ("location", "swapped-coordinates")),
    ("swapped", _aqo_with(lon=37.5, lat=127.0), ("location", "swapped-coordinates")),
    ("half a point", _aqo_with(lon=None, lat=51.2), ("location", "type-error")),
    ("urn pattern", _aqo_with(refPointOfInterest="urn:ngsi-ld:Thing:1"),
     ("refPointOfInterest", "pattern-error")),
    ("address type", _aqo_with(address="Plaza de España"), ("address", "type-error")),
]


@pytest.mark.parametrize(("label", "row", "expected"), CODE_CASES, ids=[c[0] for c in CODE_CASES])
def test_each_code_fires_on_both_paths(label: str, row: Row, expected: tuple[str, str]) -> None:
    [a] = path_a([row], AQO)
    [b] = path_b([row], AQO)
    assert a == b == {expected}, label


def test_constraint_error_fires_for_empty_name() -> None:
    row = good_poi(random.Random(0), 0)
    row["name"] = ""
    [a] = path_a([row], POI)
    [b] = path_b([row], POI)
    assert a == b == {("name", "constraint-error")}


def test_lat_lon_fine_but_swapped_is_caught() -> None:
    ok = _aqo_with(lon=51.2, lat=4.4)  # a point in the Indian Ocean: valid, if odd
    swapped = _aqo_with(lon=37.5, lat=127.0)
    assert path_b([ok, swapped], AQO) == [set(), {("location", "swapped-coordinates")}]
    reason = coordinate_reason("location", 37.5, 127.0)
    assert reason is not None and "swapped" in reason.message


def test_type_error_hides_other_checks_of_the_field() -> None:
    row = _aqo_with(airQualityLevel=["nope"], id=None, dateObserved=7)
    [a] = path_a([row], AQO)
    assert a == {("airQualityLevel", "type-error"), ("id", "missing-required"),
                 ("dateObserved", "bad-timestamp")}
    assert path_b([row], AQO) == [a]


def test_split_keeps_good_rows_and_indexes_bad_ones() -> None:
    rows = [_aqo_with(), _aqo_with(no2=-5), _aqo_with(), _aqo_with(lon=37.5, lat=127.0)]
    table, typed_bad = build_table(rows, AQO)
    good, bad, reasons = gate_for(AQO).split(table, typed_bad)
    assert (good.num_rows, bad.num_rows) == (2, 2)
    assert [r.code for r in reasons[0]] == ["below-minimum"]
    assert [r.code for r in reasons[1]] == ["swapped-coordinates"]


ENTITIES: list[dict[str, Any]] = [
    {"id": "urn:ngsi-ld:AirQualityObserved:1", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00:00", "no2": 69,
     "location": {"type": "Point", "coordinates": [-3.7, 40.4]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:2", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15", "location": {"type": "Point", "coordinates": [-3.7, 40.4]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:3", "type": "AirQualityObserved",
     "dateObserved": {"@type": "DateTime", "@value": "2016-03-15T11:00:00Z"},
     "location": {"type": "Point", "coordinates": [-3.7, 40.4, 650]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:4", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00Z", "location": "40.4,-3.7", "no2": "69"},
    {"id": "urn:ngsi-ld:AirQualityObserved:5", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00Z",
     "location": {"type": "Point", "coordinates": [-3.7, 40.4, 1, 2]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:6", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00Z",
     "location": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:7", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00Z", "location": {"type": "Point", "coordinates": [40.4]}},
    {"id": "urn:ngsi-ld:AirQualityObserved:8", "type": "AirQualityObserved",
     "dateObserved": "2016-03-15T11:00Z", "location": {"type": "Point", "coordinates": [1, 2]},
     "refPointOfInterest": ["urn:ngsi-ld:PointOfInterest:a"], "coLevel": "moderate"},
]


@pytest.mark.parametrize("doc", ENTITIES, ids=[d["id"][-1] for d in ENTITIES])
def test_paths_agree_on_whole_entities(doc: dict[str, Any]) -> None:
    """The adapter's way (normalize, entity_to_row, table, gate) agrees with jsonschema."""
    parsed = normalize(doc, AQO)
    assert not parsed.reasons
    observed_at, source = time_index(parsed.entity, AQO, T0)
    row = entity_to_row(parsed.entity, AQO, observed_at, source, parsed.unknown)
    a = {(r.field, r.code) for r in validate_entity(parsed.entity, AQO)}
    [b] = path_b([row], AQO)
    assert a == b


def test_nan_and_infinity_are_not_numbers() -> None:
    assert not math.isfinite(INF)
    rows = [_aqo_with(no2=NAN), _aqo_with(no2=INF), _aqo_with(lon=NAN)]
    assert path_b(rows, AQO) == path_a(rows, AQO) == [
        {("no2", "type-error")}, {("no2", "type-error")}, {("location", "type-error")}]


def test_ids_with_nul_or_too_long_are_rejected_as_data(tmp_path: Path) -> None:
    def doc(i: str) -> dict[str, Any]:
        return {"id": i, "type": "AirQualityObserved", "dateObserved": "2024-05-01T00:00:00Z",
                "no2": 5, "location": {"type": "Point", "coordinates": [128.6, 35.9]}}

    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps(doc(i)) for i in (
        "urn:ngsi-ld:AirQualityObserved:ok", "urn:ngsi-ld:AirQualityObserved:a\x00b",
        "urn:ngsi-ld:AirQualityObserved:" + "x" * 5000)) + "\n", encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ngsi-ld", str(path))
    assert run["written"] == 1 and run["rejected"] == 2 and run["reconciles"]
    rejects = {r["record"]: r["reasons"][0]["message"] for r in hub_json(lake, "rejects")}
    assert rejects == {
        "line 2": "id: holds the control character U+0000 at position 33",
        "line 3": "id: is 5,031 characters long, more than the limit of 1,024"}
