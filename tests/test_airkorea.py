"""The airkorea adapter: AirKorea API responses plus a station list -> lake rows and rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hubctl.adapter import Batch, ReadContext
from hubctl.adapters.airkorea import ADAPTER, KST, parse_data_time
from hubctl.errors import InputError, UsageError
from hubctl.gate import gate_for
from hubctl.ingest import IngestRequest, ingest
from hubctl.lake import Lake
from hubctl.registry import get_type

JONGNO = "종로구"
JUNG = "중구"
JONGNO_AQO = "urn:ngsi-ld:AirQualityObserved:%EC%A2%85%EB%A1%9C%EA%B5%AC"
JONGNO_POI = "urn:ngsi-ld:PointOfInterest:%EC%A2%85%EB%A1%9C%EA%B5%AC"
JUNG_POI = "urn:ngsi-ld:PointOfInterest:%EC%A4%91%EA%B5%AC"
ARRIVAL = datetime(2024, 5, 2, 3, 4, 5, tzinfo=UTC)
KST_MIDNIGHT_IN_UTC = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)  # "2024-05-01 24:00" KST


def response(items: Any, code: str = "00", msg: str = "NORMAL_CODE") -> dict[str, Any]:
    """One AirKorea API response around ``items`` (a list, or {"item": [...]})."""
    n = len(items["item"]) if isinstance(items, dict) else len(items)
    return {"response": {"header": {"resultCode": code, "resultMsg": msg},
                         "body": {"items": items, "totalCount": n, "pageNo": 1,
                                  "numOfRows": 100}}}


def item(station: str = JONGNO, when: str = "2024-05-01 24:00", **values: Any) -> dict[str, Any]:
    """A measurement item as the API sends it: every value as text, '-' for none."""
    out: dict[str, Any] = {
        "stationName": station, "dataTime": when, "sidoName": "서울", "mangName": "도시대기",
        "pm10Value": "45", "pm25Value": "20", "no2Value": "0.025", "o3Value": "0.031",
        "coValue": "0.4", "so2Value": "0.003", "khaiValue": "72", "khaiGrade": "2",
        "pm10Grade": "2", "pm25Grade": "1", "so2Grade": "1", "pm10Flag": None,
        "pm25Flag": None, "coFlag": None,
    }
    out.update(values)
    return out


def station(name: str, dm_x: str, dm_y: str, addr: str = "") -> dict[str, Any]:
    """A getMsrstnList item."""
    return {"stationName": name, "addr": addr, "mangName": "도시대기", "dmX": dm_x, "dmY": dm_y,
            "year": "1995", "item": "SO2, CO, O3, NO2, PM10, PM2.5"}


def write(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False),
                    encoding="utf-8")
    return path


@pytest.fixture
def stations_json(tmp_path: Path) -> Path:
    """Station list API answer: 종로구 with dmX = lat, 중구 with dmX = lon (either order)."""
    return write(tmp_path / "stations.json", response([
        station(JONGNO, "37.572016", "127.005008", "서울 종로구 종로35가길 19"),
        station(JUNG, "126.9747", "37.5643", "서울 중구 덕수궁길 15"),
    ]))


def read(inputs: list[Path], stations: Path, warnings: list[str] | None = None,
         batch_rows: int = 1000, **options: Any) -> list[Batch]:
    ctx = ReadContext(batch_rows=batch_rows, arrival=ARRIVAL,
                      warn=(warnings if warnings is not None else []).append)
    return list(ADAPTER.read(inputs, {"stations": str(stations), **options}, ctx))


def of_type(batches: list[Batch], type_name: str) -> list[Batch]:
    return [b for b in batches if b.entity_type == type_name]


def rows_of(batch: Batch) -> list[dict[str, Any]]:
    return batch.rows.to_pylist() if batch.rows is not None else []


def assert_accounts(batch: Batch) -> None:
    """Every input record of a batch is a row or a reject."""
    n = batch.rows.num_rows if batch.rows is not None else 0
    assert batch.records == n + sum(r.records for r in batch.rejects)


# ---------------------------------------------------------------- the contract

def test_declares_the_adapter_contract() -> None:
    assert ADAPTER.name == "airkorea"
    assert ADAPTER.entity_types == ("AirQualityObserved", "PointOfInterest")
    assert ADAPTER.summary and "\n" not in ADAPTER.summary
    assert ADAPTER.example.startswith("hubctl ") and "--stations" in ADAPTER.example
    by_name = {p.name: p for p in ADAPTER.params}
    assert set(by_name) == {"stations", "station"}
    assert by_name["stations"].required


# ---------------------------------------------------------------- measurements

def test_one_item_becomes_one_converted_row(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "jongno.json", response([item(pm25Flag="통신장애")]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    (row,) = rows_of(aqo)
    assert row["id"] == JONGNO_AQO
    assert row["refPointOfInterest"] == JONGNO_POI
    assert row["observed_at"] == KST_MIDNIGHT_IN_UTC
    assert row["dateObserved"] == KST_MIDNIGHT_IN_UTC
    assert (row["lon"], row["lat"]) == (127.005008, 37.572016)
    assert row["pm10"] == 45.0 and row["pm25"] == 20.0
    assert row["no2"] == pytest.approx(0.025 * 46.0055 / 24.45 * 1000, rel=1e-12)
    assert row["o3"] == pytest.approx(0.031 * 47.9982 / 24.45 * 1000, rel=1e-12)
    assert row["so2"] == pytest.approx(0.003 * 64.066 / 24.45 * 1000, rel=1e-12)
    assert row["co"] == pytest.approx(0.4 * 28.010 / 24.45, rel=1e-12)  # mg/m³
    assert row["airQualityIndex"] == 72.0
    assert row["airQualityLevel"] == "moderate"
    # AirKorea's own CAI and grades are kept as reported attributes, not in _extra
    assert (row["reportedCai"], row["reportedCaiGrade"]) == (72.0, 2)
    assert (row["reportedPm10Grade"], row["reportedPm25Grade"], row["reportedSo2Grade"]) == (
        2, 1, 1)
    assert row["reportedO3Grade"] is None and row["reportedPm25Avg24h"] is None
    assert row["source"] == "AirKorea"
    assert row["_time_index"] == "dateObserved"
    assert row["_record"] == "items[0]"
    assert json.loads(row["_raw"])["stationName"] == JONGNO
    assert json.loads(row["_extra"]) == {
        "mangName": {"type": "Property", "value": "도시대기"},
        "sidoName": {"type": "Property", "value": "서울"},
        "pm25Flag": {"type": "Property", "value": "통신장애"},
    }
    assert "서울" in row["_extra"]  # ensure_ascii=False
    assert aqo.records == 1 and not aqo.rejects and not aqo.typed_bad


@pytest.mark.parametrize(("grade", "level"), [("1", "good"), ("2", "moderate"),
                                              ("3", "unhealthy"), ("4", "veryUnhealthy"),
                                              ("-", None)])
def test_khai_grade_maps_to_the_level(tmp_path: Path, stations_json: Path, grade: str,
                                      level: str | None) -> None:
    src = write(tmp_path / "m.json", response([item(khaiGrade=grade)]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    assert rows_of(aqo)[0]["airQualityLevel"] == level


def test_reported_24h_pm_and_an_impossible_grade(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([
        item(pm10Value24="44", pm25Value24="27", pm25Grade1h="1"),
        item(JUNG, o3Grade="7")]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    row = rows_of(aqo)[0]
    assert (row["reportedPm10Avg24h"], row["reportedPm25Avg24h"]) == (44.0, 27.0)
    assert row["reportedPm25Grade1h"] == 1
    assert aqo.rows is not None
    checked = gate_for(get_type("AirQualityObserved")).check(aqo.rows, aqo.typed_bad)
    assert 0 not in checked
    assert "reportedO3Grade" in [x.field for x in checked[1]]  # grades are 1..4


def test_missing_values_are_null_cells_not_rejects(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([
        item(pm10Value="-", pm25Value="", no2Value=None, khaiValue="-", khaiGrade=None)]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    (row,) = rows_of(aqo)
    assert row["pm10"] is None and row["pm25"] is None and row["no2"] is None
    assert row["airQualityIndex"] is None and row["airQualityLevel"] is None
    assert row["o3"] == pytest.approx(0.031 * 47.9982 / 24.45 * 1000, rel=1e-12)
    assert not aqo.rejects and not aqo.typed_bad


def test_a_non_number_is_a_type_error_the_gate_rejects(tmp_path: Path,
                                                       stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([
        item(when="2024-05-01 23:00"), item(pm10Value="abc")]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    assert aqo.rows is not None and aqo.rows.num_rows == 2
    assert list(aqo.typed_bad) == [1]
    (r,) = aqo.typed_bad[1]
    assert (r.code, r.field) == ("type-error", "pm10") and "'abc'" in r.message
    assert rows_of(aqo)[1]["pm10"] is None  # the bad text is a reason, not a cell
    checked = gate_for(get_type("AirQualityObserved")).check(aqo.rows, aqo.typed_bad)
    assert ("type-error", "pm10") in [(x.code, x.field) for x in checked[1]]
    assert_accounts(aqo)


def test_unknown_station_and_bad_time_are_rejects(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([
        item(), item("없는역"), item(when="2024-05-32 10:00"), item(when="01.05.2024 10"),
        item(when="-"), "not an object"]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    assert aqo.rows is not None and aqo.rows.num_rows == 1
    assert aqo.records == 6
    assert_accounts(aqo)
    by_record = {r.record: r for r in aqo.rejects}
    assert sorted(by_record) == ["items[1]", "items[2]", "items[3]", "items[4]", "items[5]"]
    unknown = by_record["items[1]"]
    assert unknown.codes == "unknown-station"
    assert "'없는역'" in unknown.reasons[0].message
    assert "add it to the --stations file" in unknown.reasons[0].message
    assert json.loads(unknown.raw)["stationName"] == "없는역"
    assert unknown.file == str(src) and unknown.entity_type == "AirQualityObserved"
    assert by_record["items[2]"].codes == "bad-timestamp"
    assert by_record["items[2]"].reasons[0].field == "dataTime"
    assert by_record["items[3]"].codes == "bad-timestamp"
    assert by_record["items[4]"].codes == "missing-required"
    assert by_record["items[5]"].codes == "malformed-record"


def test_an_item_without_station_name_says_how_to_fetch_it(tmp_path: Path,
                                                          stations_json: Path) -> None:
    nameless = item()
    del nameless["stationName"]
    src = write(tmp_path / "m.json", response([nameless]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    assert aqo.rows is None and aqo.records == 1
    (r,) = aqo.rejects[0].reasons
    assert (r.code, r.field) == ("missing-required", "stationName")
    assert "--station NAME" in r.message


def test_data_time_is_korea_time_with_24_00_as_next_midnight() -> None:
    assert parse_data_time("2024-05-01 24:00") == KST_MIDNIGHT_IN_UTC
    assert parse_data_time("2024-12-31 24:00") == datetime(2024, 12, 31, 15, tzinfo=UTC)
    assert parse_data_time("2024-05-01 01:00") == datetime(2024, 4, 30, 16, tzinfo=UTC)
    assert parse_data_time("2024-02-29 13:00") == datetime(2024, 2, 29, 4, tzinfo=UTC)
    assert parse_data_time("2024-05-01 10:00", UTC) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert KST.utcoffset(None) == timedelta(hours=9)
    for bad in ("2024-05-01 24:30", "2024-05-01 25:00", "2023-02-29 10:00", "", None, 20240501):
        assert parse_data_time(bad) is None


# ---------------------------------------------------------------- response layouts

def test_items_under_item_arrays_of_pages_and_json_lines(tmp_path: Path,
                                                         stations_json: Path) -> None:
    nested = write(tmp_path / "nested.json", response({"item": [item(), item(JUNG)]}))
    single = write(tmp_path / "single.json", response({"item": item(JUNG)}))
    pages = write(tmp_path / "pages.json", [response([item()]), response([item(JUNG)])])
    lines = write(tmp_path / "pages.jsonl", "\n".join(
        json.dumps(response([item(when=f"2024-05-01 0{h}:00")]), ensure_ascii=False)
        for h in (1, 2, 3)) + "\n")
    batches = of_type(read([nested, single, pages, lines], stations_json), "AirQualityObserved")
    assert [b.file for b in batches] == [str(p) for p in (nested, single, pages, lines)]
    assert [b.records for b in batches] == [2, 1, 2, 3]
    assert rows_of(batches[1])[0]["refPointOfInterest"] == JUNG_POI
    assert [r["_record"] for r in rows_of(batches[2])] == ["[0] items[0]", "[1] items[0]"]
    assert [r["_record"] for r in rows_of(batches[3])] == [
        "line 1 items[0]", "line 2 items[0]", "line 3 items[0]"]
    assert [r["observed_at"].hour for r in rows_of(batches[3])] == [16, 17, 18]


def test_an_empty_page_yields_no_measurements(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "empty.json", response([]))
    assert of_type(read([src], stations_json), "AirQualityObserved") == []


def test_error_result_code_names_file_code_and_message(tmp_path: Path,
                                                       stations_json: Path) -> None:
    src = write(tmp_path / "denied.json", {"response": {"header": {
        "resultCode": "30", "resultMsg": "SERVICE KEY IS NOT REGISTERED ERROR"}}})
    with pytest.raises(InputError, match=r"denied\.json.*resultCode 30.*SERVICE KEY IS NOT "
                                         r"REGISTERED ERROR") as err:
        read([src], stations_json)
    assert err.value.hint and "data.go.kr" in err.value.hint


def test_error_page_in_json_lines_names_the_line(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "p.jsonl", json.dumps(response([item()])) + "\n" + json.dumps(
        response([], code="22", msg="LIMITED NUMBER OF SERVICE REQUESTS EXCEEDS ERROR")))
    with pytest.raises(InputError, match=r"p\.jsonl, line 2: .*resultCode 22"):
        read([src], stations_json)


def test_xml_gateway_error_is_reported_with_its_code(tmp_path: Path,
                                                     stations_json: Path) -> None:
    src = write(tmp_path / "x.json", "<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE "
                "ERROR</errMsg><returnAuthMsg>SERVICE_KEY_IS_NOT_REGISTERED_ERROR</returnAuthMsg>"
                "<returnReasonCode>30</returnReasonCode></cmmMsgHeader></OpenAPI_ServiceResponse>")
    with pytest.raises(InputError, match=r"x\.json.*resultCode 30 \(SERVICE_KEY_IS_NOT_REG"):
        read([src], stations_json)


@pytest.mark.parametrize(("text", "message"), [
    ("this is not json", r"bad\.json: is not JSON"),
    ('{"response": {"header": {"resultCode": "00"}, "body": {"totalCount": 0}}}',
     r"bad\.json: has no response\.body\.items"),
    ('{"data": []}', r"bad\.json: has no response\.body\.items"),
    ("[1, 2]", r"bad\.json, \[0\]: is not an AirKorea API response"),
    ('{"response": {"body": {"items": []}}}\n{"response": ', r"bad\.json, line 2: is not JSON"),
    ("<html><body>Bad Gateway</body></html>", r"bad\.json: is XML, not JSON"),
    ('{"response": {"body": {"items": 7}}}', r"bad\.json: response\.body\.items is neither"),
])
def test_unusable_files_are_input_errors(tmp_path: Path, stations_json: Path, text: str,
                                         message: str) -> None:
    src = write(tmp_path / "bad.json", text)
    with pytest.raises(InputError, match=message):
        read([src], stations_json)


def test_batches_hold_at_most_batch_rows(tmp_path: Path, stations_json: Path) -> None:
    items = [item(when=f"2024-05-01 {h:02d}:00") for h in range(1, 6)] + [item("없는역")]
    src = write(tmp_path / "m.json", response(items))
    batches = of_type(read([src], stations_json, batch_rows=2), "AirQualityObserved")
    assert [b.rows.num_rows if b.rows is not None else 0 for b in batches] == [2, 2, 1]
    assert sum(b.records for b in batches) == 6
    for b in batches:
        assert_accounts(b)


# ---------------------------------------------------------------- stations

def test_station_list_becomes_points_of_interest(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([item()]))
    (poi,) = of_type(read([src], stations_json), "PointOfInterest")
    assert poi.file == str(stations_json) and poi.records == 2 and not poi.rejects
    jongno, jung = rows_of(poi)
    assert jongno["id"] == JONGNO_POI and jung["id"] == JUNG_POI
    assert (jongno["lon"], jongno["lat"]) == (127.005008, 37.572016)  # dmX was the latitude
    assert (jung["lon"], jung["lat"]) == (126.9747, 37.5643)  # dmX was the longitude
    assert jongno["name"] == JONGNO and jongno["category"] == ["airQualityStation"]
    assert json.loads(jongno["address"]) == "서울 종로구 종로35가길 19"
    assert jongno["alternateName"] == "도시대기"
    assert jongno["source"] == "AirKorea"
    assert jongno["observed_at"] == ARRIVAL and jongno["_time_index"] == "arrival"
    assert json.loads(jongno["_extra"])["year"] == {"type": "Property", "value": "1995"}
    assert jongno["_record"] == "items[0]"
    good, bad, _ = gate_for(get_type("PointOfInterest")).split(poi.rows, poi.typed_bad)
    assert (good.num_rows, bad.num_rows) == (2, 0)


def test_complete_rows_pass_the_quality_gate(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "m.json", response([item(), item(JUNG, khaiGrade="-", pm10Value="-")]))
    (aqo,) = of_type(read([src], stations_json), "AirQualityObserved")
    good, bad, reasons = gate_for(get_type("AirQualityObserved")).split(aqo.rows, aqo.typed_bad)
    assert reasons == {}
    assert (good.num_rows, bad.num_rows) == (2, 0)


@pytest.mark.parametrize("header", ["name,lat,lon", "stationName,lat,lon",
                                    "stationName,latitude,longitude"])
def test_station_csv(tmp_path: Path, header: str) -> None:
    csv_path = write(tmp_path / "stations.csv",
                     f"{header}\n{JONGNO},37.572016,127.005008\n{JUNG},37.5643,126.9747\n")
    src = write(tmp_path / "m.json", response([item(), item(JUNG)]))
    batches = read([src], csv_path)
    (poi,) = of_type(batches, "PointOfInterest")
    assert [(r["name"], r["lon"], r["lat"], r["_record"]) for r in rows_of(poi)] == [
        (JONGNO, 127.005008, 37.572016, "line 2"), (JUNG, 126.9747, 37.5643, "line 3")]
    (aqo,) = of_type(batches, "AirQualityObserved")
    assert [(r["lon"], r["lat"]) for r in rows_of(aqo)] == [(127.005008, 37.572016),
                                                          (126.9747, 37.5643)]


def test_station_csv_without_the_header_is_an_input_error(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "stations.csv", f"{JONGNO},37.572016,127.005008\n")
    src = write(tmp_path / "m.json", response([item()]))
    with pytest.raises(InputError, match=r"stations\.csv: the CSV header (?s:.*) name,lat,lon"):
        read([src], csv_path)


def test_a_station_listed_twice_keeps_the_first(tmp_path: Path) -> None:
    stations = write(tmp_path / "st.json", response([
        station(JONGNO, "37.572016", "127.005008"), station(JONGNO, "37.0", "127.0")]))
    src = write(tmp_path / "m.json", response([item()]))
    warnings: list[str] = []
    batches = read([src], stations, warnings)
    (poi,) = of_type(batches, "PointOfInterest")
    assert poi.records == 2 and poi.rows is not None and poi.rows.num_rows == 1
    assert_accounts(poi)
    (dup,) = poi.rejects
    assert dup.codes == "malformed-record" and dup.record == "items[1]"
    assert dup.reasons[0].message == f"station {JONGNO} listed again; the first listing is kept"
    assert len(warnings) == 1 and JONGNO in warnings[0] and "st.json" in warnings[0]
    (aqo,) = of_type(batches, "AirQualityObserved")
    assert (rows_of(aqo)[0]["lon"], rows_of(aqo)[0]["lat"]) == (127.005008, 37.572016)


def test_a_station_outside_korea_is_rejected_with_its_measurements(tmp_path: Path) -> None:
    stations = write(tmp_path / "st.json", response([
        station(JONGNO, "37.572016", "127.005008"), station("먼곳", "10.5", "20.5"),
        station(JUNG, "", "")]))
    src = write(tmp_path / "m.json", response([item("먼곳"), item(JUNG)]))
    batches = read([src], stations)
    (poi,) = of_type(batches, "PointOfInterest")
    assert poi.records == 3
    assert_accounts(poi)
    (far,) = poi.rejects
    assert far.codes == "malformed-record" and far.record == "items[1]"
    assert "먼곳" in far.reasons[0].message
    assert "not a position in South Korea" in far.reasons[0].message
    (aqo,) = of_type(batches, "AirQualityObserved")
    (far_item,) = aqo.rejects
    assert far_item.record == "items[0]"
    assert "fix it in the --stations file" in far_item.reasons[0].message
    (jung,) = rows_of(aqo)  # listed without coordinates: the gate reports the missing location
    assert jung["lon"] is None
    checked = gate_for(get_type("AirQualityObserved")).check(aqo.rows, aqo.typed_bad)
    assert ("missing-required", "location") in [(r.code, r.field) for r in checked[0]]


def test_stations_option_is_required(tmp_path: Path) -> None:
    src = write(tmp_path / "m.json", response([item()]))
    with pytest.raises(UsageError, match="--stations"):
        list(ADAPTER.read([src], {}, ReadContext()))


# ---------------------------------------------------------------- through the ingest engine

def ingest_once(tmp_path: Path, src: Path, stations: Path, force: bool = False) -> Any:
    req = IngestRequest(ADAPTER, [src], {"stations": str(stations)}, source="airkorea-test",
                        force=force)
    return ingest(Lake(tmp_path / "lake"), req)


def test_ingest_accounts_for_every_record(tmp_path: Path) -> None:
    stations = write(tmp_path / "st.json", response([
        station(JONGNO, "37.572016", "127.005008"), station(JONGNO, "37.0", "127.0")]))
    src = write(tmp_path / "m.json", response([
        item(), item(when="2024-05-01 23:00", pm10Value="abc"),
        item(when="2024-05-01 22:00", pm10Value="-5"), item("없는역")]))
    run = ingest_once(tmp_path, src, stations)
    # 2 station listings + 4 items: 1 station and 1 measurement written; the repeated listing,
    # the non-number, the negative value and the unknown station rejected
    assert (run.read, run.written, run.rejected) == (6, 2, 4)
    assert run.reconciles and run.status == "ok"
    again = ingest_once(tmp_path, src, stations, force=True)
    assert (again.read, again.written, again.duplicate, again.rejected) == (6, 0, 2, 4)


def test_overlapping_pages_do_not_duplicate_rows(tmp_path: Path, stations_json: Path) -> None:
    src = write(tmp_path / "pages.json", [response([item()]), response([item()])])
    run = ingest_once(tmp_path, src, stations_json)
    assert (run.read, run.written, run.duplicate, run.rejected) == (4, 3, 1, 0)


def test_nodata_result_code_is_an_empty_page(tmp_path: Path) -> None:
    from hubctl.adapter import ReadContext
    from hubctl.adapters.airkorea import ADAPTER

    src = tmp_path / "nodata.json"
    src.write_text(json.dumps({"response": {"header": {"resultCode": "03",
                                                       "resultMsg": "NODATA_ERROR"}}}),
                   encoding="utf-8")
    st = tmp_path / "st.csv"
    st.write_text("name,lat,lon\n종로구,37.57,126.99\n", encoding="utf-8")
    batches = list(ADAPTER.read([src], {"stations": str(st)}, ReadContext()))
    measured = [b for b in batches if b.entity_type == "AirQualityObserved"]
    assert sum(b.records for b in measured) == 0
    assert sum(b.records for b in batches if b.entity_type == "PointOfInterest") == 1


def test_a_saved_per_station_response_is_ingested_with_station(tmp_path: Path,
                                                                stations_json: Path) -> None:
    """getMsrstnAcctoRltmMesureDnsty (ver=1.3) items carry dataTime, mangName and the values,
    not the station: it was the request's stationName, so --station names it for a file."""
    from tests.helpers import hub, hub_json

    per_station = []
    for when in ("2024-05-01 23:00", "2024-05-01 24:00"):
        one = item(when=when)
        del one["stationName"], one["sidoName"]
        per_station.append(one)
    src = write(tmp_path / "jongno.json", response(per_station))
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "airkorea", str(src), "--stations", str(stations_json),
                   "--station", JONGNO)
    assert run["rejected"] == 0 and run["reconciles"] and run["read"] == 2 + 2
    rows = hub_json(lake, "sql", "SELECT id, count(*) AS n FROM AirQualityObserved GROUP BY id")
    assert rows == [{"id": JONGNO_AQO, "n": 2}]
    two = hub(lake, "ingest", "airkorea", str(src), "--stations", str(stations_json),
              "--station", JONGNO, "--station", JUNG)
    assert two.exit_code == 2 and "one --station NAME" in two.output
