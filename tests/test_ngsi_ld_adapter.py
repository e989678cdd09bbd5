"""The ``ngsi-ld`` adapter: small fixtures written here, then the official examples."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest

from hubctl.adapter import Batch, ReadContext
from hubctl.adapters import get_adapter
from hubctl.adapters.ngsi_ld import ADAPTER
from hubctl.errors import InputError, UsageError
from hubctl.gate import gate_for
from hubctl.ingest import IngestRequest, ingest
from hubctl.lake import Lake
from hubctl.registry import get_type, registry
from tests.conftest import SAMPLE_DATA, needs_sample_data

ARRIVAL = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AQO_IRI = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"


def aqo(n: int, **attrs: Any) -> dict[str, Any]:
    """A small valid AirQualityObserved entity in normalized form."""
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:AirQualityObserved:S{n}-2024-05-01T10:00",
        "type": "AirQualityObserved",
        "dateObserved": {"type": "Property", "value": "2024-05-01T10:00:00Z"},
        "no2": {"type": "Property", "value": 20.0 + n, "unitCode": "GQ",
                "observedAt": "2024-05-01T10:00:00Z"},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [128.0 + n, 35.87]}},
    }
    entity.update(attrs)
    return entity


def read(paths: Sequence[Path], options: dict[str, Any] | None = None,
         batch_rows: int = 1000) -> tuple[list[Batch], list[str]]:
    """All batches and warnings of one read; checks the record invariant of every batch."""
    warnings: list[str] = []
    ctx = ReadContext(batch_rows=batch_rows, arrival=ARRIVAL, warn=warnings.append)
    batches = list(ADAPTER.read(list(paths), options or {}, ctx))
    for b in batches:
        rows = b.rows.num_rows if b.rows is not None else 0
        assert b.records == rows + sum(r.records for r in b.rejects)
        assert rows + len(b.rejects) <= batch_rows
    return batches, warnings


def rows_of(batches: Sequence[Batch]) -> list[dict[str, Any]]:
    """Every row of every batch, as dicts."""
    return [r for b in batches if b.rows is not None for r in b.rows.to_pylist()]


def write(path: Path, doc: Any) -> Path:
    """A JSON file."""
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


# ------------------------------------------------------------------ contract

def test_adapter_declares_itself() -> None:
    assert ADAPTER.name == "ngsi-ld"
    assert ADAPTER.entity_types == tuple(registry())
    assert ADAPTER.summary and ADAPTER.example.startswith("hubctl ingest ngsi-ld ")
    assert all(isinstance(p, click.Option) for p in ADAPTER.params)
    assert [p.name for p in ADAPTER.params] == ["type"]
    assert get_adapter("ngsi-ld") is ADAPTER


def test_ingest_accounts_for_every_record(tmp_path: Path) -> None:
    """Through the engine: rows in = written + updated + duplicate + rejected."""
    path = tmp_path / "feed.jsonl"
    docs = [aqo(1), aqo(2), aqo(1), aqo(3, no2={"type": "Property", "value": -1}),
            {"id": "urn:ngsi-ld:Alert:1", "type": "Alert"}]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n{oops\n", encoding="utf-8")
    run = ingest(Lake(tmp_path / "lake"), IngestRequest(ADAPTER, [path], {}, "feed"))
    assert (run.read, run.written, run.duplicate, run.rejected) == (6, 2, 1, 3)
    assert run.reconciles and run.status == "ok"


# ------------------------------------------------------------------ shapes of input

def test_array_of_entities(tmp_path: Path) -> None:
    docs = [aqo(1), aqo(2), aqo(3, no2={"type": "Property", "value": -4, "unitCode": "GQ"})]
    batches, _ = read([write(tmp_path / "a.json", docs)])
    [batch] = batches
    assert (batch.entity_type, batch.records, batch.file) == (
        "AirQualityObserved", 3, str(tmp_path / "a.json"))
    rows = rows_of(batches)
    assert [r["_record"] for r in rows] == ["/0", "/1", "/2"]
    assert json.loads(rows[1]["_raw"]) == docs[1]
    assert rows[0]["no2"] == 21.0 and (rows[0]["lon"], rows[0]["lat"]) == (129.0, 35.87)
    assert rows[0]["observed_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert rows[0]["_time_index"] == "observedAt"
    found = gate_for(get_type("AirQualityObserved")).check(batch.rows, batch.typed_bad)
    assert {i: [r.code for r in rs] for i, rs in found.items()} == {2: ["below-minimum"]}


def test_single_entity_jsonld(tmp_path: Path) -> None:
    batches, warnings = read([write(tmp_path / "one.jsonld", aqo(1))])
    [row] = rows_of(batches)
    assert row["_record"] == "/" and row["_extra"] is None
    assert warnings == []  # observedAt, a time zone and only known attributes: nothing to say


def test_json_lines_with_a_broken_line(tmp_path: Path) -> None:
    lines = [json.dumps(aqo(1)), '{"id": "urn:ngsi-ld:AirQualityObserved:x", "type": ', "",
             json.dumps(aqo(2))]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batches, _ = read([path])
    assert sum(b.records for b in batches) == 3
    assert [r["_record"] for r in rows_of(batches)] == ["line 1", "line 4"]
    assert rows_of(batches)[1]["_raw"] == lines[3]
    [reject] = [r for b in batches for r in b.rejects]
    assert (reject.codes, reject.record, reject.raw) == ("malformed-record", "line 2", lines[1])
    assert reject.file == str(path)


def test_not_json_at_all(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("station,no2\nS1,20\n", encoding="utf-8")
    batches, _ = read([path])
    [reject] = [r for b in batches for r in b.rejects]
    assert reject.codes == "malformed-record" and reject.record == "line 1"
    assert sum(b.records for b in batches) == 1


def test_unknown_type_and_type_forms(tmp_path: Path) -> None:
    docs = [aqo(1, type=AQO_IRI), aqo(2, type="sdm:AirQualityObserved"),
            {"id": "urn:ngsi-ld:OffStreetParking:1", "type": "OffStreetParking"},
            aqo(3, type=["Thing", "AirQualityObserved"]), [1, 2], 7]
    batches, _ = read([write(tmp_path / "mixed.json", docs)])
    assert [r["_record"] for r in rows_of(batches)] == ["/0", "/1", "/3"]
    rejects = {r.record: r for b in batches for r in b.rejects}
    assert rejects["/2"].codes == "unknown-type"
    assert rejects["/2"].entity_type == "OffStreetParking"
    assert "'OffStreetParking'" in rejects["/2"].reasons[0].message
    assert rejects["/4"].codes == rejects["/5"].codes == "malformed-record"
    assert sum(b.records for b in batches) == 6


def test_key_values_and_concise(tmp_path: Path) -> None:
    kv = {"id": "urn:ngsi-ld:AirQualityObserved:kv", "type": "AirQualityObserved",
          "dateObserved": "2024-05-01T10:00:00+09:00", "no2": 0.05, "co": {"value": 400,
          "unitCode": "GQ"}, "airQualityLevel": "good", "refPointOfInterest":
          "urn:ngsi-ld:PointOfInterest:%EC%A4%91%EA%B5%AC",
          "location": {"type": "Point", "coordinates": [128.6, 35.87]}}
    [row] = rows_of(read([write(tmp_path / "kv.json", [kv])])[0])
    assert row["observed_at"] == datetime(2024, 5, 1, 1, tzinfo=UTC)
    assert row["_time_index"] == "dateObserved"
    assert (row["no2"], row["co"], row["airQualityLevel"]) == (0.05, 0.4, "good")
    assert row["refPointOfInterest"].endswith("%EC%A4%91%EA%B5%AC")


def test_missing_type_needs_the_type_option(tmp_path: Path) -> None:
    doc = aqo(1)
    del doc["type"]
    path = write(tmp_path / "untyped.json", [doc])
    batches, _ = read([path])
    [reject] = batches[0].rejects
    assert (reject.codes, reject.reasons[0].field) == ("missing-required", "type")
    [row] = rows_of(read([path], {"type": "AirQualityObserved"})[0])
    assert row["id"] == doc["id"]
    [row] = rows_of(read([path], {"type": AQO_IRI})[0])
    with pytest.raises(UsageError, match="not a known entity type"):
        read([path], {"type": "Weather"})


def test_unknown_unit_is_a_reject(tmp_path: Path) -> None:
    doc = aqo(1, no2={"type": "Property", "value": 3, "unitCode": "furlongs"})
    [batch] = read([write(tmp_path / "u.json", [doc, aqo(2)])])[0]
    assert batch.rows is not None and batch.rows.num_rows == 1
    [reject] = batch.rejects
    assert reject.codes == "unknown-unit" and reject.record == "/0"
    assert json.loads(reject.raw) == doc


def test_types_are_batched_apart_and_chunked(tmp_path: Path) -> None:
    poi = {"id": "urn:ngsi-ld:PointOfInterest:S1", "type": "PointOfInterest", "name": "중구",
           "location": {"type": "Point", "coordinates": [128.6, 35.87]}}
    docs = [aqo(n) for n in range(5)] + [poi] + [{"type": "Nope"}]
    batches, _ = read([write(tmp_path / "m.json", docs)], batch_rows=2)
    shape = [(b.entity_type, b.rows.num_rows if b.rows is not None else 0, len(b.rejects))
             for b in batches]
    assert shape == [("AirQualityObserved", 2, 0), ("AirQualityObserved", 2, 0),
                     ("AirQualityObserved", 1, 0), ("PointOfInterest", 1, 0), ("Nope", 0, 1)]
    assert sum(b.records for b in batches) == len(docs)


def test_undecodable_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cp949.json"
    path.write_bytes(json.dumps({"name": "중구"}, ensure_ascii=False).encode("cp949"))
    with pytest.raises(InputError, match="not UTF-8") as info:
        read([path])
    assert info.value.path == str(path) and info.value.hint and "iconv" in info.value.hint


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        read([tmp_path / "missing.json"])


# ------------------------------------------------------------------ defects reported

def test_defects_are_warned_once_per_file(tmp_path: Path) -> None:
    naive = {"type": "Property", "value": "2024-05-01T10:00:00"}
    plain_no2 = {"type": "Property", "value": 20.0}
    docs = [aqo(n, dateObserved=naive, no2=plain_no2, typeofLocation="outdoor",
                coLevel={"type": "Property", "value": "moderate"}) for n in range(3)]
    batches, warnings = read([write(tmp_path / "sdm.json", docs)])
    assert len(rows_of(batches)) == 3
    assert warnings == [
        "sdm.json: AirQualityObserved: dateObserved has no time zone in 3 entities "
        "(e.g. '2024-05-01T10:00:00'); read as UTC",
        "sdm.json: AirQualityObserved: 3 entities without observedAt; time index taken from "
        "dateObserved",
        "sdm.json: AirQualityObserved: 2 attributes not in the schema kept in _extra: "
        "typeofLocation, coLevel",
        "sdm.json: AirQualityObserved: 'typeofLocation' is not in the schema (kept in _extra); "
        "did you mean 'typeOfLocation'?",
    ]
    extra = json.loads(rows_of(batches)[0]["_extra"])
    assert extra["typeofLocation"] == {"type": "Property", "value": "outdoor"}
    assert rows_of(batches)[0]["typeOfLocation"] is None


def test_no_time_at_all_uses_arrival(tmp_path: Path) -> None:
    doc = aqo(1, no2={"type": "Property", "value": 20.0})
    del doc["dateObserved"]
    batches, warnings = read([write(tmp_path / "t.json", [doc])])
    [row] = rows_of(batches)
    assert row["observed_at"] == ARRIVAL and row["_time_index"] == "arrival"
    assert warnings == ["t.json: AirQualityObserved: 1 entity without observedAt; time index "
                        "taken from the arrival time"]


# ------------------------------------------------------------------ official examples

NGSI = SAMPLE_DATA / "ngsi-ld"
SCHEMA_COLUMNS = get_type("AirQualityObserved").attribute_columns()


@pytest.fixture(scope="module")
def official() -> dict[str, tuple[dict[str, Any], list[str]]]:
    """The normalized and keyValues AirQualityObserved examples: their row and warnings."""
    out = {}
    for form in ("normalized", "keyvalues"):
        batches, warnings = read([NGSI / f"AirQualityObserved.example-{form}.jsonld"])
        [row] = rows_of(batches)
        out[form] = (row, warnings)
    return out


@pytest.mark.conformance
@needs_sample_data
def test_official_examples_give_the_same_row(official: dict[str, Any]) -> None:
    normalized, _ = official["normalized"]
    key_values, _ = official["keyvalues"]
    for row in (normalized, key_values):
        assert row["co"] == 500  # GP, as published
        assert row["no2"] == 69  # GQ
        assert [row["lon"], row["lat"]] == [-3.712247222222222, 40.423852777777775]
        assert row["observed_at"] == datetime(2016, 3, 15, 11, tzinfo=UTC)
        assert row["refPointOfInterest"] == "urn:ngsi-ld:PointOfInterest:28079004-Pza.deEspanya"
        assert json.loads(row["address"])["streetAddress"] == "Plaza de España"
    differ = {c for c in SCHEMA_COLUMNS + ["id"] if normalized[c] != key_values[c]}
    # The two official files themselves disagree on windDirection (186 vs 180).
    assert differ == {"windDirection"}


@pytest.mark.conformance
@needs_sample_data
def test_official_examples_keep_unknown_attributes(official: dict[str, Any]) -> None:
    normalized, _ = official["normalized"]
    key_values, _ = official["keyvalues"]
    assert set(json.loads(normalized["_extra"])) == {"coLevel", "pm4", "tpc", "tsp", "pressure",
                                                      "charge"}
    assert json.loads(key_values["_extra"]) == {"coLevel": {"type": "Property",
                                                            "value": "moderate"}}


@pytest.mark.conformance
@needs_sample_data
def test_official_examples_defects_are_reported(official: dict[str, Any]) -> None:
    _, warnings = official["normalized"]
    name = "AirQualityObserved.example-normalized.jsonld"
    assert warnings == [
        f"{name}: AirQualityObserved: dateObserved has no time zone in 1 entity "
        "(e.g. '2016-03-15T11:00:00'); read as UTC",
        f"{name}: AirQualityObserved: 1 entity without observedAt; time index taken from "
        "dateObserved",
        f"{name}: AirQualityObserved: 6 attributes not in the schema kept in _extra: "
        "coLevel, pm4, tpc, tsp, pressure, charge",
    ]
    assert any("coLevel" in w for w in official["keyvalues"][1])


@pytest.mark.conformance
@needs_sample_data
def test_official_examples_pass_the_gate() -> None:
    et = get_type("AirQualityObserved")
    batches, _ = read(sorted(NGSI.glob("AirQualityObserved.*.jsonld")))
    for batch in batches:
        assert batch.rows is not None
        assert gate_for(et).check(batch.rows, batch.typed_bad) == {}


@pytest.mark.conformance
@needs_sample_data
def test_every_official_example_reads_as_its_type() -> None:
    batches, _ = read(sorted(NGSI.glob("*.jsonld")))
    assert sum(b.records for b in batches) == len(list(NGSI.glob("*.jsonld")))
    assert [r for b in batches for r in b.rejects] == []
    assert sorted({b.entity_type for b in batches}) == ["AirQualityObserved", "Alert",
                                                        "GtfsStop"]
