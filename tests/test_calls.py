"""The calls adapter: Berkeley conformance, the Korean 112 profile, --map, local times."""

from __future__ import annotations

import csv
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from hubctl.adapterkit import parse_times
from hubctl.adapters.calls import detect_profile
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

BERKELEY = SAMPLE_DATA / "calls" / "berkeley-pd-calls-for-service-2018.csv"
LA = ZoneInfo("America/Los_Angeles")
SEOUL = ZoneInfo("Asia/Seoul")

KOREAN_HEADER = ["접수번호", "접수일시", "사건종별", "긴급도", "위도", "경도", "출동일시",
                 "도착일시", "관할서", "발생지주소", "종결유형"]
KOREAN_ROWS = [
    ["2024031500001", "2024-03-15 23:58:10", "폭력", "C1", "35.8714", "128.6014",
     "2024-03-16 00:01:10", "2024-03-16 00:05:40", "대구중부경찰서", "대구 중구 동성로 1",
     "현장종결"],
    ["2024031500002", "2024-03-15 09:00:00", "절도", "C3", "", "", "", "", "대구중부경찰서",
     "", "종결"],
    ["2024031500003", "20240315101500", "교통사고", "코드2", "0", "0", "20240315101700",
     "20240315102500", "대구수성경찰서", "대구 수성구", "인계"],
    ["2024031500004", "2024-03-15 11:00:00", "분실물", "C4", "35.85", "128.63",
     "2024-03-15 11:10:00", "2024-03-15 10:50:00", "대구수성경찰서", "", "종결"],
    ["2024031500005", "어제 오후", "기타", "C3", "35.85", "128.63", "", "", "", "", ""],
]


def _write(path: Path, header: list[str], rows: list[list[str]],
           encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _expected_berkeley() -> dict[str, tuple[datetime, float | None, float | None]]:
    """An independent reading of the sample: csv module, regex and zoneinfo."""
    out = {}
    with open(BERKELEY, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            month, day, year = rec["EVENTDT"].split()[0].split("/")
            hh, mm = rec["EVENTTM"].split(":")
            local = datetime(int(year), int(month), int(day), int(hh), int(mm), tzinfo=LA)
            m = re.search(r"\(([-\d.]+), ([-\d.]+)\)", rec["Block_Location"])
            lat, lon = (float(m.group(1)), float(m.group(2))) if m else (None, None)
            out[rec["CASENO"]] = (local.astimezone(UTC), lon, lat)
    return out


@needs_sample_data
def test_berkeley_sample_one_alert_per_row_with_coordinates_and_local_times(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "calls", str(BERKELEY))
    assert run["status"] == "ok" and run["reconciles"]
    assert run["read"] == 3788 and run["written"] == 3788 and run["rejected"] == 0
    assert any("profile berkeley (detected" in w for w in run["warnings"])
    assert any("159 calls without usable coordinates" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT id, strftime(dateIssued AT TIME ZONE 'UTC', "
                    "'%Y-%m-%dT%H:%M') AS t, lon, lat, category, callType, subCategory, "
                    "address, alertSource FROM Alert")
    expected = _expected_berkeley()
    assert len(rows) == len(expected) == 3788
    for r in rows:
        case = r["id"].removeprefix("urn:ngsi-ld:Alert:berkeley-pd:")
        when, lon, lat = expected[case]
        assert r["t"] == when.strftime("%Y-%m-%dT%H:%M"), case
        assert (r["lon"], r["lat"]) == (lon, lat), case
        assert r["category"] == "security" and r["alertSource"] == "Berkeley PD"
    assert sum(r["lon"] is None for r in rows) == 159
    # HTML entities decoded, the address SDM's object
    corner = [r for r in rows if r["id"].endswith(":18022300")][0]
    assert json.loads(corner["address"]) == {"streetAddress": "OREGON STREET & MCGEE AVE"}
    assert not any("&amp;" in (r["address"] or "") + (r["callType"] or "") for r in rows)
    # the call type as published; SDM's subCategory from the keyword table, or empty
    subs = {(r["callType"], r["subCategory"]) for r in rows}
    assert {("ROBBERY", "robbery"), ("ASSAULT/BATTERY FEL.", "assault"),
            ("SEXUAL ASSAULT MISD.", "assault"), ("DOMESTIC VIOLENCE", "assault"),
            ("DISTURBANCE", "civilDisorder"), ("DISTURBANCE - NOISE", "civilDisorder"),
            ("BURGLARY AUTO", None), ("THEFT MISD. (UNDER $950)", None)} <= subs
    mapped = sum(r["subCategory"] is not None for r in rows)
    [warning] = [w for w in run["warnings"] if "no Smart Data Models subCategory" in w]
    assert warning.startswith(f"berkeley-pd-calls-for-service-2018.csv: {3788 - mapped} calls")
    assert "'BURGLARY AUTO' 658" in warning


@needs_sample_data
def test_berkeley_times_cross_dst_correctly() -> None:
    # 2018-03-11 is the spring-forward day: 01:xx is PST (UTC-8), 03:xx PDT (UTC-7)
    text = pa.array(["03/11/2018 01:30", "03/11/2018 03:30", "03/10/2018 22:17",
                     "08/19/2018 22:25"])
    values, bad = parse_times(text, LA, need_time=True)
    assert not any(bad.to_pylist())
    assert [v.strftime("%m-%d %H:%M") for v in values.to_pylist()] == [
        "03-11 09:30", "03-11 10:30", "03-11 06:17", "08-20 05:25"]


def test_local_time_forms_and_edge_cases() -> None:
    text = pa.array(["2024-03-15 23:58:10", "20240315101500", "2024.3.5 9:05 PM",
                     "2024-03-15T12:00:00+00:00", "2024-03-15 24:00", "2024-02-30 10:00",
                     "2024-03-15", "", None, "2024년 3월 15일 14시 30분",
                     "03/10/2024 02:30", "11/03/2024 01:30"])
    values, bad = parse_times(text, SEOUL, need_time=True)
    got = values.to_pylist()
    assert got[0] == datetime(2024, 3, 15, 14, 58, 10, tzinfo=UTC)
    assert got[1] == datetime(2024, 3, 15, 1, 15, tzinfo=UTC)
    assert got[2] == datetime(2024, 3, 5, 12, 5, tzinfo=UTC)
    assert got[3] == datetime(2024, 3, 15, 12, 0, tzinfo=UTC)  # the offset wins
    assert got[4] == datetime(2024, 3, 15, 15, 0, tzinfo=UTC)  # 24:00 = next midnight
    assert got[9] == datetime(2024, 3, 15, 5, 30, tzinfo=UTC)
    assert bad.to_pylist()[5:9] == [True, True, False, False]  # Feb 30, date only; blanks
    chicago, _ = parse_times(text, ZoneInfo("America/Chicago"), need_time=True)
    # DST gap (02:30 does not exist): the offset before the change; repeated hour: the first
    assert chicago.to_pylist()[10] == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)
    assert chicago.to_pylist()[11] == datetime(2024, 11, 3, 6, 30, tzinfo=UTC)


def test_korean_112_profile_detected_with_response_times_and_rejects(tmp_path: Path) -> None:
    data = _write(tmp_path / "112.csv", KOREAN_HEADER, KOREAN_ROWS)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "calls", str(data))
    assert run["reconciles"] and run["read"] == 5
    assert run["written"] == 3 and run["rejected"] == 2
    assert any("profile korea-112 (detected" in w for w in run["warnings"])
    assert any("2 calls without usable coordinates" in w and "1 without any" in w
               for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT id, dateIssued AT TIME ZONE 'UTC' AS t, callType, "
                    "subCategory, severity, priority, lon, lat, responseTime, areaServed, "
                    "address, _extra FROM Alert ORDER BY id")
    first = rows[0]
    assert first["id"] == "urn:ngsi-ld:Alert:112:2024031500001"
    assert first["t"].startswith("2024-03-15T14:58:10") or first["t"].startswith(
        "2024-03-15 14:58:10")
    assert first["callType"] == "폭력" and first["severity"] == "high"
    assert [r["subCategory"] for r in rows] == ["assault", None, "carAccident"]  # 절도: none
    assert first["responseTime"] == 450.0  # 23:58:10 -> 00:05:40
    assert (first["lon"], first["lat"]) == (128.6014, 35.8714)
    assert json.loads(first["address"]) == {"streetAddress": "대구 중구 동성로 1"}
    assert "현장종결" in first["_extra"]
    no_place, zero = rows[1], rows[2]
    assert no_place["lon"] is None and no_place["responseTime"] is None
    assert zero["lon"] is None and zero["severity"] == "medium"
    assert '"위도":"0"' in zero["_extra"]  # the unusable position is kept aside
    assert zero["responseTime"] == 600.0
    rejects = hub_json(lake, "rejects")
    codes = sorted(r["codes"] for r in rejects)
    assert codes == ["bad-timestamp", "end-before-start"]


def test_a_file_of_a_header_only_is_empty_not_ok(tmp_path: Path) -> None:
    """Nothing useful written: the run says ``empty`` (exit 0, a day without calls can be
    real) with a warning naming the file; the same file again is ``unchanged``."""
    data = _write(tmp_path / "112.csv", KOREAN_HEADER, [])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "calls", str(data))
    assert run["status"] == "empty" and run["exit_code"] == 0 and run["read"] == 0
    assert any(f"no records in {data}" in w for w in run["warnings"]), run["warnings"]
    assert hub_json(lake, "ingest", "calls", str(data))["status"] == "unchanged"
    ledger = hub_json(lake, "sql", "SELECT status FROM _runs ORDER BY started_at")
    assert [r["status"] for r in ledger] == ["empty", "unchanged"]


def test_cp949_file_is_read(tmp_path: Path) -> None:
    data = _write(tmp_path / "112_cp949.csv", KOREAN_HEADER, KOREAN_ROWS[:1], encoding="cp949")
    run = hub_json(tmp_path / "lake", "ingest", "calls", str(data), "--profile", "korea-112")
    assert run["written"] == 1
    r = hub_json(tmp_path / "lake", "sql", "SELECT callType, subCategory FROM Alert")[0]
    assert (r["callType"], r["subCategory"]) == ("폭력", "assault")


def test_other_layouts_through_map_with_a_timezone(tmp_path: Path) -> None:
    data = _write(tmp_path / "cad.csv", ["Incident", "Received", "Type", "Where", "Beat"], [
        ["A-1", "2024-07-04 21:15:00", "Noise", "POINT (-87.6298 41.8781)", "12"],
        ["A-2", "2024-07-04 22:00:00", "Theft", "", "13"],
        ["A-3", "2024-07-04 22:30:00", "robbery", "", "13"],
    ])
    lake = tmp_path / "lake"
    args = ["ingest", "calls", str(data), "--map", "Incident=id", "--map", "Received=dateIssued",
            "--map", "Type=subCategory", "--map", "Where=location", "--map", "Beat=areaServed",
            "--timezone", "America/Chicago", "--agency", "chicago"]
    run = hub_json(lake, *args)
    assert run["written"] == 3 and run["reconciles"]
    assert any("2 calls of 2 call types have no Smart Data Models subCategory" in w
               for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT id, hour(dateIssued AT TIME ZONE 'UTC') AS h, lon, lat, "
                    "areaServed, alertSource, callType, subCategory FROM Alert ORDER BY id")
    # --map X=subCategory is the older name of --map X=callType: the call type as published
    assert [(r["callType"], r["subCategory"]) for r in rows] == [
        ("Noise", None), ("Theft", None), ("robbery", "robbery")]
    assert rows[0]["id"] == "urn:ngsi-ld:Alert:chicago:A-1" and rows[0]["h"] == 2
    assert (rows[0]["lon"], rows[0]["lat"]) == (-87.6298, 41.8781)
    assert rows[1]["lon"] is None and rows[0]["areaServed"] == "12"
    assert rows[0]["alertSource"] == "chicago"


def test_rows_without_a_case_number_get_a_stable_digest_id(tmp_path: Path) -> None:
    data = _write(tmp_path / "x.csv", ["when", "what"], [["2024-01-01 10:00", "a"],
                                                        ["2024-01-01 11:00", "b"]])
    lake = tmp_path / "lake"
    first = hub_json(lake, "ingest", "calls", str(data), "--map", "when=dateIssued")
    again = hub_json(lake, "ingest", "calls", str(data), "--map", "when=dateIssued", "--force")
    assert first["written"] == 2 and again["duplicate"] == 2 and again["written"] == 0


def test_unknown_layout_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    data = _write(tmp_path / "odd.csv", ["a", "b"], [["1", "2"]])
    result = hub(tmp_path / "lake", "ingest", "calls", str(data))
    assert result.exit_code != 0
    assert "matches no call profile" in result.output and "--map" in result.output
    result = hub(tmp_path / "lake", "ingest", "calls", str(data), "--map", "a=when")
    assert result.exit_code != 0 and "'when' is not a call field" in result.output
    result = hub(tmp_path / "lake", "ingest", "calls", str(data), "--map", "zz=dateIssued")
    assert result.exit_code != 0 and "no column 'zz'" in result.output
    result = hub(tmp_path / "lake", "ingest", "calls", str(data), "--map", "a=dateIssued",
                 "--timezone", "Mars/Olympus")
    assert result.exit_code != 0 and "not a known time zone" in result.output


def test_profile_detection_from_headers() -> None:
    assert detect_profile(["CASENO", "OFFENSE", "EVENTDT", "EVENTTM", "Block_Location"]
                          ).name == "berkeley"  # type: ignore[union-attr]
    assert detect_profile(KOREAN_HEADER).name == "korea-112"  # type: ignore[union-attr]
    assert detect_profile(["a", "b"]) is None


def test_html_entities_in_types_are_decoded(tmp_path: Path) -> None:
    data = _write(tmp_path / "b.csv", ["CASENO", "OFFENSE", "EVENTDT", "EVENTTM", "CVLEGEND",
                                        "Block_Location", "BLKADDR"], [
        ["1", "THEFT &amp; FRAUD", "07/01/2018 12:00:00 AM", "10:05", "LARCENY",
         "A ST &amp; B AVE\nBerkeley, CA\n(37.87, -122.27)", "A ST & B AVE"],
    ])
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "calls", str(data))
    r = hub_json(lake, "sql", "SELECT callType, lon, lat FROM Alert")[0]
    assert r["callType"] == html.unescape("THEFT &amp; FRAUD")
    assert (r["lon"], r["lat"]) == (-122.27, 37.87)
    assert np.isclose(r["lat"], 37.87)


def test_fast_iso_path_agrees_with_the_general_parser() -> None:
    texts = ["2018-03-11 01:59:59", "2018-03-11 02:30:00", "2018-03-11 03:00:00",
             "2018-11-04 01:30:00", "2018-11-04T02:30:00", "", "2018-07-01 12:00:00"]
    fast, fast_bad = parse_times(pa.array(texts), LA)  # every text ISO: Arrow's cast
    general, _ = parse_times(pa.array([*texts, "07/01/2018 12:00"]), LA)
    assert fast.to_pylist() == general.to_pylist()[:-1]
    assert not any(fast_bad.to_pylist()) and fast.to_pylist()[5] is None
    # the general pattern reads the ISO texts the same way (the US date forces it)
    us = [f"{t[5:7]}/{t[8:10]}/{t[:4]} {t[11:]}" if t else "" for t in texts]
    assert parse_times(pa.array(us), LA)[0].to_pylist() == fast.to_pylist()
    _, bad = parse_times(pa.array(["2018-02-30 10:00:00", "2018-03-01 10:00:00"]), LA)
    assert bad.to_pylist() == [True, False]


@needs_sample_data
def test_the_smart_data_models_alert_example_fits_the_schema(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ngsi-ld", str(SAMPLE_DATA / "ngsi-ld" /
                                                  "Alert.example-normalized.jsonld"))
    assert run["written"] == 1 and run["rejected"] == 0
    r = hub_json(lake, "sql", "SELECT category, subCategory, severity, validTo, _extra "
                 "FROM Alert")[0]
    assert (r["category"], r["subCategory"], r["severity"]) == ("traffic", "trafficJam", "high")
    assert r["validTo"] is not None and r["_extra"] is None


def test_one_rule_for_local_times_in_the_dst_gap_and_the_repeated_hour() -> None:
    """A call and a meter reading at the same local time land on the same instant: 02:30 on
    2024-03-10 in Los Angeles does not exist (read with the offset before the change, RFC 5545:
    10:30Z); 01:30 on 2024-11-03 happens twice (the first: 08:30Z). Before, the energy
    adapters gave 09:59:59.999999Z for the first."""
    import pyarrow as pa

    from hubctl.localtime import zone

    texts = pa.array(["2024-03-10 02:30:00", "2024-11-03 01:30:00", "2024-07-01 12:00:00"])
    want = ["2024-03-10T10:30:00+00:00", "2024-11-03T08:30:00+00:00",
            "2024-07-01T19:00:00+00:00"]
    calls, _ = parse_times(texts, zone("America/Los_Angeles"), need_time=True)
    energy, _ = parse_times(texts, "America/Los_Angeles")
    energy_fmt, _ = parse_times(texts, "America/Los_Angeles", "%Y-%m-%d %H:%M:%S")
    us = pa.array(["03/10/2024 02:30 AM", "11/03/2024 01:30 AM", "07/01/2024 12:00 PM"])
    general, _ = parse_times(us, "America/Los_Angeles")
    for got in (calls, energy, energy_fmt, general):
        assert [v.isoformat() for v in got.to_pylist()] == want


def test_sdm_subcategory_from_the_call_type() -> None:
    """The keyword table, case-insensitive; SDM's own values pass as themselves; the first row
    of the table that matches wins; unmapped call types are counted."""
    from hubctl.adapters.calls import sdm_subcategory

    types = pa.array(["Armed Robbery", "CARACCIDENT", "assault w/ weapon", "Hit & Run",
                      "Suspicious Person", "가정폭력", "절도", None, "절도", "ROBBERY - ASSAULT"])
    unmapped: dict[str, int] = {}
    assert sdm_subcategory(types, unmapped).to_pylist() == [
        "robbery", "carAccident", "assault", "carAccident", "suspiciousAction", "assault", None,
        None, None, "robbery"]
    assert unmapped == {"절도": 2}
