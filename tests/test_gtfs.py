"""The gtfs adapter: small feeds written here, real feeds in ../shared/data/gtfs, broken feeds."""

from __future__ import annotations

import csv
import json
import math
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from hubctl.adapter import ReadContext
from hubctl.adapterkit import feed_slug
from hubctl.adapters.gtfs import ADAPTER
from hubctl.adapters.gtfs_parse import parse_clock, parse_date, parse_float, parse_int
from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json, write_zip

GTFS = SAMPLE_DATA / "gtfs"

FEED = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
                  "A1,Metro,https://metro.example,Asia/Seoul\n",
    "stops.txt": "stop_id,stop_name,stop_lat,stop_lon,parent_station,location_type\n"
                 "S1,First,35.87,128.60,ST,\n"
                 "S2,Second,35.88,128.61,,0\n"
                 "S3,Third,35.89,128.62,,\n"
                 "ST,Station,35.87,128.60,,1\n",
    "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\n"
                  "R1,A1,101,Line 101,3\n"
                  "R2,,102,Line 102,3\n",
    "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
                    "start_date,end_date\n"
                    "WK,1,1,1,1,1,0,0,20260101,20261231\n",
    "calendar_dates.txt": "service_id,date,exception_type\n"
                          "WK,20260505,2\n"
                          "HOL,20260505,1\n",
    "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"
                  "SH1,35.87,128.60,1\n"
                  "SH1,35.89,128.62,3\n"
                  "SH1,35.88,128.61,2\n",
    "trips.txt": "route_id,service_id,trip_id,trip_headsign,direction_id,shape_id\n"
                 "R1,WK,T1,North,0,SH1\n"
                 "R1,WK,T2,North,,SH1\n"
                 "R2,SAT,T3,South,1,\n",
    "frequencies.txt": "trip_id,start_time,end_time,headway_secs,exact_times\n"
                       "T2,24:00:00,25:30:00,900,1\n",
    "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                      "T1,08:00:00,08:00:00,S1,1\n"
                      "T1,8:05:00,08:06:00,S2,2\n"
                      "T1,,,S3,3\n"
                      "T2,24:50:00,24:50:00,S1,1\n"
                      "T2,25:10:00,25:10:00,S3,2\n"
                      "T3,06:00:00,06:00:00,S3,1\n",
}
RECORDS = sum(text.count("\n") - 1 for name, text in FEED.items() if name != "shapes.txt") + 3


def write_feed(folder: Path, changes: Mapping[str, str | None] | None = None,
               encoding: str = "utf-8") -> Path:
    """The small feed above in ``folder`` (a file set to None is left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**FEED, **(changes or {})}.items():
        if text is not None:
            (folder / name).write_text(text, encoding=encoding)
    return folder


def ingest(lake: Path, *args: str) -> dict:
    return hub_json(lake, "ingest", "gtfs", *args)


def sql(lake: Path, query: str) -> list[dict]:
    return hub_json(lake, "sql", query)


def test_a_feed_becomes_every_type_with_ids_namespaced_by_the_feed(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "metro")
    lake = tmp_path / "lake"
    run = ingest(lake, str(feed / "*.txt"))
    assert run["status"] == "ok" and run["reconciles"] and run["rejected"] == 0
    assert run["read"] == run["written"] == RECORDS
    stop = sql(lake, "SELECT * FROM GtfsStop WHERE id LIKE '%:S1'")[0]
    assert stop["id"] == "urn:ngsi-ld:GtfsStop:metro:S1" and stop["feedId"] == "metro"
    assert (stop["lon"], stop["lat"], stop["locationType"]) == (128.60, 35.87, 0)
    assert stop["hasParentStation"] == "urn:ngsi-ld:GtfsStop:metro:ST"
    routes = {r["id"]: r for r in sql(lake, "SELECT * FROM GtfsRoute")}
    assert {r["operatedBy"] for r in routes.values()} == {"urn:ngsi-ld:GtfsAgency:metro:A1"}
    times = sql(lake, "SELECT id, hasTrip, hasStop, stopSequence, arrivalTime, arrivalSeconds, "
                      "departureSeconds FROM GtfsStopTime ORDER BY id")
    by_id = {t["id"].removeprefix("urn:ngsi-ld:GtfsStopTime:metro:"): t for t in times}
    assert by_id["T2:2"]["arrivalTime"] == "25:10:00" and by_id["T2:2"]["arrivalSeconds"] == 90600
    assert by_id["T1:2"]["arrivalSeconds"] == 8 * 3600 + 300
    assert by_id["T1:2"]["departureSeconds"] == 8 * 3600 + 360
    assert by_id["T1:3"]["arrivalSeconds"] is None and by_id["T1:3"]["arrivalTime"] is None
    assert by_id["T1:1"]["hasTrip"] == "urn:ngsi-ld:GtfsTrip:metro:T1"
    assert by_id["T1:1"]["hasStop"] == "urn:ngsi-ld:GtfsStop:metro:S1"
    trips = {t["id"].rsplit(":", 1)[1]: t for t in sql(lake, "SELECT * FROM GtfsTrip")}
    assert trips["T2"]["direction"] is None and trips["T1"]["direction"] == 0
    assert trips["T1"]["hasShape"] == "urn:ngsi-ld:GtfsShape:metro:SH1"
    assert trips["T3"]["hasService"] == "urn:ngsi-ld:GtfsService:metro:SAT"
    freq = sql(lake, "SELECT * FROM GtfsFrequency")[0]
    assert freq["id"] == "urn:ngsi-ld:GtfsFrequency:metro:T2:86400"
    assert (freq["startSeconds"], freq["endSeconds"], freq["headwaySeconds"]) == (
        86400, 91800, 900)
    assert freq["exactTimes"] is True and freq["hasTrip"] == "urn:ngsi-ld:GtfsTrip:metro:T2"
    services = [r["name"] for r in sql(lake, "SELECT name FROM GtfsService ORDER BY name")]
    assert services == ["HOL", "SAT", "WK"]  # from calendar, calendar_dates and trips
    rule = sql(lake, "SELECT * FROM GtfsCalendarRule")[0]
    assert rule["monday"] is True and rule["saturday"] is False
    assert (rule["startDate"], rule["endDate"]) == ("2026-01-01", "2026-12-31")
    dates = sql(lake, "SELECT id, appliesOn, exceptionType FROM GtfsCalendarDateRule ORDER BY id")
    assert dates[0] == {"id": "urn:ngsi-ld:GtfsCalendarDateRule:metro:HOL:20260505",
                        "appliesOn": "2026-05-05", "exceptionType": "1"}
    shape = sql(lake, "SELECT * FROM GtfsShape")[0]
    line = json.loads(shape["location"])
    assert line == {"type": "LineString",
                    "coordinates": [[128.6, 35.87], [128.61, 35.88], [128.62, 35.89]]}
    assert shape["points"] == 3 and shape["length"] == pytest.approx(_haversine(line), rel=1e-9)
    assert any("SAT" in w and "run on no day" in w for w in run["warnings"])


def _haversine(line: dict) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(line["coordinates"], line["coordinates"][1:], strict=False):
        p1, p2 = math.radians(y1), math.radians(y2)
        a = (math.sin((p2 - p1) / 2) ** 2
             + math.cos(p1) * math.cos(p2) * math.sin(math.radians(x2 - x1) / 2) ** 2)
        total += 2 * 6_371_008.8 * math.asin(math.sqrt(a))
    return total


def test_zip_with_a_folder_inside_and_the_default_feed_id(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "src")
    archive = tmp_path / "Daegu Bus 2026.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in feed.iterdir():
            z.write(p, f"gtfs/{p.name}")
        z.writestr("__MACOSX/gtfs/._stops.txt", "junk")
    run = ingest(tmp_path / "lake", str(archive))
    assert run["written"] == RECORDS
    assert sql(tmp_path / "lake", "SELECT DISTINCT feedId FROM GtfsTrip") == [
        {"feedId": "daegu-bus-2026"}]
    generic = tmp_path / "seoul" / "gtfs.zip"
    generic.parent.mkdir()
    assert feed_slug(generic) == "seoul-gtfs" and feed_slug(tmp_path / "caltrain") == "caltrain"


def test_real_world_formatting_is_read(tmp_path: Path) -> None:
    """BOM, CRLF, quoted fields, blanks around names and ids, short rows, extra columns."""
    changes = {
        "stops.txt": "\ufeffstop_id , stop_name,stop_lat,stop_lon,platform_code\r\n"
                     '"S1","First, the one",35.87,128.60,A\r\n'
                     "S2,Second,35.88,128.61\r\n"
                     " S3 ,Third,35.89,128.62,\r\n"
                     "ST,Station,35.87,128.60,\r\n",
        "fare_rules.txt": "fare_id,route_id\nF,R1\n",
        "notes.txt": "not,gtfs\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence,timepoint,"
                          "note\nT1,08:00:00,08:00:00,S1,1,1,\"say \"\"hi\"\"\"\n"
                          "T1,08:05:00,08:05:00,S2,2,0\nT1,08:09:00,08:09:00,S3,3,,\n",
    }
    lake = tmp_path / "lake"
    run = ingest(lake, str(write_feed(tmp_path / "f", changes)))
    assert run["rejected"] == 0 and run["reconciles"]
    stops = {r["id"].rsplit(":", 1)[1]: r for r in sql(lake, "SELECT * FROM GtfsStop")}
    assert stops["S1"]["name"] == "First, the one"
    assert json.loads(stops["S1"]["_extra"]) == {"platform_code": "A"}
    assert stops["S2"]["_extra"] is None and "S3" in stops  # short row padded, id trimmed
    extras = [r["_extra"] for r in sql(lake, "SELECT _extra FROM GtfsStopTime ORDER BY id")]
    assert [json.loads(e) if e else None for e in extras] == [
        {"timepoint": "1", "note": 'say "hi"'}, {"timepoint": "0"}, None]  # empty cells left out
    assert any("fare_rules.txt" in w and "not ingested" in w for w in run["warnings"])
    assert any("notes.txt" in w and "not part of GTFS" in w for w in run["warnings"])


def test_bad_rows_are_rejected_with_reasons_and_the_rest_is_written(tmp_path: Path) -> None:
    changes = {
        "stops.txt": FEED["stops.txt"] + "S4,Nowhere,north,128.6,,\nS5,Null\x00name,35.9,128.6,,\n"
                     "S6,Far,128.6,35.9,,\n",
        "calendar.txt": FEED["calendar.txt"] + "SU,0,0,0,0,0,0,1,2026.01.01,20261231\n"
                        "X,1,1,1,1,1,1,1,20261231,20260101\n",
        "trips.txt": FEED["trips.txt"] + "R9,WK,T9,Ghost,0,\n",
        "frequencies.txt": FEED["frequencies.txt"] + "NOPE,07:00:00,06:00:00,600,\n",
        "stop_times.txt": FEED["stop_times.txt"] + "T3,06:10:00,06:09:00,S2,2\n"
                          "T3,06:20:00,06:20:00,S4,3\nT3,6:3:00,06:30:00,S2,4\n"
                          "T3,06:40:00,06:40:00,S1,1\nT9,07:00:00,07:00:00,S1,1\n"
                          "T3,07:00:00,07:00:00,S1,9,extra,fields\n"
                          "NOPE,07:00:00,07:00:00,S1,1\n",
    }
    lake = tmp_path / "lake"
    run = ingest(lake, str(write_feed(tmp_path / "f", changes) / "*.txt"))
    assert run["status"] == "ok" and run["reconciles"]
    rejects = hub_json(lake, "rejects")
    found = {(r["entity_type"], r["record"]): r["codes"] for r in rejects}
    messages = " | ".join(m["message"] for r in rejects for m in r["reasons"])
    assert found == {
        ("GtfsStop", "stop_id=S4"): "type-error",
        ("GtfsStop", "stop_id=S5"): "malformed-record",
        ("GtfsStop", "stop_id=S6"): "swapped-coordinates",
        ("GtfsCalendarRule", "service_id=SU"): "type-error",
        ("GtfsCalendarRule", "service_id=X"): "end-before-start",
        ("GtfsTrip", "trip_id=T9"): "unknown-reference",
        ("GtfsFrequency", "trip_id=NOPE, start_time=07:00:00"):
            "unknown-reference,end-before-start",
        ("GtfsStopTime", "trip_id=T3, stop_sequence=2"): "end-before-start",
        ("GtfsStopTime", "trip_id=T3, stop_sequence=3"): "unknown-reference",
        ("GtfsStopTime", "trip_id=T3, stop_sequence=4"): "type-error",
        ("GtfsStopTime", "trip_id=T3, stop_sequence=1"): "duplicate-key",
        ("GtfsStopTime", "trip_id=T9, stop_sequence=1"): "unknown-reference",
        ("GtfsStopTime", "trip_id=NOPE, stop_sequence=1"): "unknown-reference",
        ("GtfsStopTime", "line 13"): "malformed-record",
    }
    assert "'S4' refers to no GtfsStop in stops.txt (rejected there)" in messages
    assert "'NOPE' refers to no GtfsTrip in trips.txt" in messages
    assert "'2026.01.01' is not a date YYYYMMDD" in messages
    assert run["rejected"] == len(found) and run["written"] == RECORDS
    services = {r["name"] for r in sql(lake, "SELECT name FROM GtfsService")}
    assert services == {"WK", "HOL", "SAT", "SU", "X"}  # a bad calendar row still names one
    assert sql(lake, "SELECT count(*) AS n FROM GtfsStopTime")[0]["n"] == 6


@pytest.mark.parametrize(("changes", "message"), [
    ({"stop_times.txt": None}, "required file(s) stop_times.txt missing"),
    ({"calendar.txt": None, "calendar_dates.txt": None}, "calendar.txt or calendar_dates.txt"),
    ({"stop_times.txt": "trip_id,arrival_time,stop_id\nT1,08:00:00,S1\n"},
     "stop_times.txt, line 1: lacks the required column(s) stop_sequence"),
    ({"agency.txt": ""}, "agency.txt: is empty"),
])
def test_a_missing_file_or_column_fails_naming_it(tmp_path: Path, changes: dict,
                                                  message: str) -> None:
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "gtfs", str(write_feed(tmp_path / "f", changes) / "*.txt"))
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (lake / "GtfsStop").exists()  # checked before anything is written


def test_not_a_feed_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    junk = tmp_path / "photos.zip"
    with zipfile.ZipFile(junk, "w") as z:
        z.writestr("cat.jpg", "meow")
    result = hub(lake, "ingest", "gtfs", str(junk))
    assert result.exit_code == 1 and "is not a GTFS feed" in result.output
    text = tmp_path / "readme.md"
    text.write_text("hello")
    assert "is not a GTFS feed" in hub(lake, "ingest", "gtfs", str(text)).output
    feed = write_feed(tmp_path / "f")
    bad_id = hub(lake, "ingest", "gtfs", str(feed / "*.txt"), "--feed-id", "a:b")
    assert bad_id.exit_code == 2 and "--feed-id 'a:b'" in bad_id.output
    two = hub(lake, "ingest", "gtfs", str(feed / "*.txt"), str(junk), "--feed-id", "x")
    assert two.exit_code == 2 and "names one feed" in two.output


def test_two_feeds_share_a_lake_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "f")
    lake = tmp_path / "lake"
    ingest(lake, str(feed / "*.txt"), "--feed-id", "north")
    ingest(lake, str(feed / "*.txt"), "--feed-id", "south")
    again = ingest(lake, str(feed / "*.txt"), "--feed-id", "south", "--force")
    assert again["written"] == 0 and again["duplicate"] == RECORDS and again["reconciles"]
    rows = sql(lake, "SELECT feedId, count(*) AS n, count(DISTINCT id) AS ids "
                     "FROM GtfsStopTime GROUP BY feedId ORDER BY feedId")
    assert rows == [{"feedId": "north", "n": 6, "ids": 6}, {"feedId": "south", "n": 6, "ids": 6}]
    linked = sql(lake, "SELECT count(*) AS n FROM GtfsStopTime st JOIN GtfsTrip t "
                       "ON st.hasTrip = t.id WHERE st.feedId <> t.feedId")
    assert linked == [{"n": 0}]


def test_stop_times_in_many_blocks_find_repeats_across_blocks(tmp_path: Path) -> None:
    rows = "".join(f"T1,08:{k:02d}:00,08:{k:02d}:00,S{1 + k % 3},{k}\n" for k in range(1, 11))
    rows += "T1,09:00:00,09:00:00,S1,4\n"  # repeats sequence 4 of an earlier block
    feed = write_feed(tmp_path / "f", {
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n" + rows})
    warnings: list[str] = []
    ctx = ReadContext(batch_rows=3, arrival=datetime(2026, 1, 1, tzinfo=UTC),
                      warn=warnings.append)
    batches = [b for b in ADAPTER.read(sorted(feed.glob("*.txt")), {"feed_id": "m"}, ctx)
               if b.entity_type == "GtfsStopTime"]
    assert all(b.rows is None or b.rows.num_rows <= 3 for b in batches)
    assert sum(b.records for b in batches) == 11
    rejects = [r for b in batches for r in b.rejects]
    assert [(r.record, r.codes) for r in rejects] == [("trip_id=T1, stop_sequence=4",
                                                       "duplicate-key")]


def test_a_folder_path_reads_like_its_files(tmp_path: Path) -> None:
    """A folder, or any .txt file in it, is the feed in that folder."""
    feed = write_feed(tmp_path / "metro")
    ctx = ReadContext(arrival=datetime(2026, 1, 1, tzinfo=UTC))
    by_folder = list(ADAPTER.read([feed], {}, ctx))
    by_files = list(ADAPTER.read([feed / "stops.txt", feed / "trips.txt"], {}, ctx))
    assert sum(b.records for b in by_folder) == sum(b.records for b in by_files) == RECORDS
    first = by_folder[0].rows
    assert first is not None and first.column("feedId")[0].as_py() == "metro"


def test_numbers_and_dates_parse_leniently_and_flag_the_rest() -> None:
    values, bad = parse_int(pa.array(["1", " 5 ", "+4", "3.0", "007", "x", "1" * 20, None]))
    assert values.to_pylist() == [1, 5, 4, 3, 7, None, None, None]
    assert bad.tolist() == [False] * 5 + [True, True, False]
    floats, bad = parse_float(pa.array(["1.5", "+.5", "1e999", "nan", "north", None]))
    assert floats.to_pylist() == [1.5, 0.5, None, None, None, None]
    assert bad.tolist() == [False, False, True, True, True, False]
    dates, bad = parse_date(pa.array(["20260229", "20240229", "2024-02-29", None]))
    assert [str(d) if d else None for d in dates.to_pylist()] == [None, "2024-02-29", None, None]
    assert bad.tolist() == [True, False, True, False]


def test_clock_times_parse_like_a_reference() -> None:
    rng = np.random.default_rng(7)
    seconds = rng.integers(0, 48 * 3600, 5000)
    texts = [f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if i % 3 else
             f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for i, s in enumerate(seconds)]
    odd = ["", " 7:00:00 ", "100:00:00", "7:60:00", "7:5:00", "x", "07:00", "-1:00:00"]
    values, bad = parse_clock(pa.array(texts + odd).slice(0))
    assert values.to_pylist()[:5000] == seconds.tolist() and not bad[:5000].any()
    assert values.to_pylist()[5000:] == [None, 25200, 360000, None, None, None, None, None]
    assert bad[5000:].tolist() == [False, False, False, True, True, True, True, True]


# ---------------------------------------------------------------- real feeds

def _count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return sum(1 for _ in csv.reader(f)) - 1


@needs_sample_data
def test_caltrain_folder_conforms(tmp_path: Path) -> None:
    folder = GTFS / "caltrain-2017-07-24"
    lake = tmp_path / "lake"
    run = ingest(lake, str(folder))
    assert run["status"] == "ok" and run["rejected"] == 0 and run["reconciles"]
    counts = sql(lake, "SELECT (SELECT count(*) FROM GtfsStopTime) AS st, "
                       "(SELECT count(*) FROM GtfsTrip) AS trips, "
                       "(SELECT count(*) FROM GtfsStop) AS stops, "
                       "(SELECT count(*) FROM GtfsCalendarDateRule) AS dates, "
                       "(SELECT sum(points) FROM GtfsShape) AS points, "
                       "(SELECT max(departureSeconds) FROM GtfsStopTime) AS last")[0]
    assert counts["st"] == _count_rows(folder / "stop_times.txt")
    assert counts["trips"] == _count_rows(folder / "trips.txt")
    assert counts["stops"] == _count_rows(folder / "stops.txt")
    assert counts["dates"] == _count_rows(folder / "calendar_dates.txt")
    assert counts["points"] == _count_rows(folder / "shapes.txt")
    assert counts["last"] > 24 * 3600  # trips past midnight
    assert any("realtime_trips.txt" in w and "not part of GTFS" in w for w in run["warnings"])
    again = ingest(lake, str(folder / "*.txt"), "--source-name", "caltrain", "--force")
    assert again["duplicate"] == run["read"] and again["written"] == 0  # same feed id


@needs_sample_data
def test_cairns_zip_conforms(tmp_path: Path) -> None:
    archive = GTFS / "cairns-2014.zip"
    lake = tmp_path / "lake"
    run = ingest(lake, str(archive))
    assert run["status"] == "ok" and run["rejected"] == 0 and run["reconciles"]
    with zipfile.ZipFile(archive) as z:
        lines = {n: z.read(n).decode("utf-8-sig").count("\n") for n in z.namelist()}
    stats = sql(lake, "SELECT count(*) AS n, count(DISTINCT hasTrip) AS trips, "
                      "min(arrivalSeconds) AS first FROM GtfsStopTime")[0]
    assert stats["n"] == lines["stop_times.txt"] - 1
    stops = sql(lake, "SELECT min(lat) AS south, max(lat) AS north, min(lon) AS west "
                      "FROM GtfsStop")[0]
    assert -17.5 < stops["south"] < stops["north"] < -16.0 and 145 < stops["west"] < 146.5
    shapes = sql(lake, "SELECT count(*) AS n, sum(points) AS points, min(length) AS shortest "
                       "FROM GtfsShape")[0]
    assert shapes["points"] == lines["shapes.txt"] - 1 and shapes["shortest"] > 100


@needs_sample_data
def test_google_sample_feed_conforms(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run = ingest(lake, str(GTFS / "google-sample-feed.zip"))
    assert run["status"] == "ok" and run["rejected"] == 0 and run["written"] == run["read"]
    names = {r["name"] for r in sql(lake, "SELECT name FROM GtfsService")}
    assert names == {"FULLW", "WE"}
    frequencies = sql(lake, "SELECT count(*) AS n, min(headwaySeconds) AS h FROM GtfsFrequency")
    assert frequencies == [{"n": 11, "h": 600}]


BROKEN = {  # feed -> (exit code, what must appear in the output or the rejects)
    "bad_date_format": (0, {("GtfsCalendarRule", "type-error"),
                            ("GtfsCalendarDateRule", "type-error")}),
    "contains_null": (0, {("GtfsStop", "malformed-record"),
                          ("GtfsStopTime", "unknown-reference")}),
    "duplicate_stop_sequence": (0, {("GtfsStopTime", "duplicate-key")}),
    "missing_column": (1, "agency.txt, line 1: lacks the required column(s) agency_name"),
    "utf8bom": (0, set()),
}


@needs_sample_data
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_feeds_fail_clearly_or_reject_the_bad_rows(tmp_path: Path, name: str) -> None:
    folder = GTFS / "broken" / name
    assert sorted(p.name for p in (GTFS / "broken").iterdir()) == sorted(BROKEN)
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "gtfs", str(folder / "*.txt"), "--json")
    code, expected = BROKEN[name]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code:
        assert isinstance(expected, str) and expected in result.output
        return
    run = json.loads(result.stdout)
    assert run["reconciles"] and run["read"] == run["written"] + run["rejected"]
    rejects = hub_json(lake, "rejects") if run["rejected"] else []
    assert {(r["entity_type"], r["codes"]) for r in rejects} == expected
    assert all(r["reasons"] and r["raw"] for r in rejects)
    lines = sum(_count_rows(p) for p in folder.glob("*.txt") if p.name in (
        "agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt",
        "calendar.txt", "calendar_dates.txt", "frequencies.txt"))
    assert run["read"] == lines  # every row of every ingested file is accounted for


def test_header_only_optional_files_without_a_final_newline(tmp_path: Path) -> None:
    """Exporters often end a header-only optional file without its line break (shapes.txt =
    the header line alone): that is a file of no records, not a broken feed."""
    feed = write_feed(tmp_path / "feed", {
        "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence",
        "frequencies.txt": "trip_id,start_time,end_time,headway_secs\r\n".rstrip("\n"),
        "trips.txt": FEED["trips.txt"].replace(",SH1\n", ",\n")})
    archive = tmp_path / "feed.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for member in sorted(feed.iterdir()):
            z.write(member, member.name)
    run = ingest(tmp_path / "lake", str(archive), "--feed-id", "f")
    expected = RECORDS - 3 - 1  # no shape points, no frequency
    assert run["status"] == "ok" and run["reconciles"]
    assert run["read"] == expected and run["written"] == expected and run["rejected"] == 0
    assert "GtfsShape" not in run["rows_added"]


def test_a_new_feed_version_replaces_what_the_old_one_had(tmp_path: Path) -> None:
    """Version 2 of feed t drops route C (its trips, stop times and stops S7..S9) and
    calendar_dates.txt: after its ingest the lake holds exactly version 2 under feed t, says
    what it removed, and leaves another feed alone."""
    import zipfile as zf

    from tests.test_bus_routes import write_feed

    lake = tmp_path / "lake"
    v1 = write_feed(tmp_path / "v1.zip")
    hub_json(lake, "ingest", "gtfs", str(v1), "--feed-id", "t")
    hub_json(lake, "ingest", "gtfs", str(v1), "--feed-id", "other")
    with zf.ZipFile(v1) as z:
        files = {n: z.read(n).decode() for n in z.namelist()}
    keep = lambda text, bad: "".join(  # noqa: E731
        line for line in text.splitlines(keepends=True) if not bad(line))
    files["trips.txt"] = keep(files["trips.txt"], lambda ln: ln.startswith("C,"))
    files["stop_times.txt"] = keep(files["stop_times.txt"], lambda ln: ln.startswith("C-"))
    files["stops.txt"] = keep(files["stops.txt"], lambda ln: ln[:2] in ("S7", "S8", "S9"))
    files["routes.txt"] = keep(files["routes.txt"], lambda ln: ln.startswith("C,"))
    del files["calendar_dates.txt"]
    v2 = write_zip(tmp_path / "v2.zip", files)
    run = hub_json(lake, "ingest", "gtfs", str(v2), "--feed-id", "t")
    stop_times = len(files["stop_times.txt"].splitlines()) - 1
    assert run["rows_removed"] == {"GtfsStop": 3, "GtfsRoute": 1, "GtfsTrip": 5,
                                   "GtfsStopTime": 20, "GtfsCalendarDateRule": 2}
    assert any("removed 20 row(s) of feedId t" in w for w in run["warnings"])
    counts = hub_json(lake, "sql", """
        SELECT (SELECT count(*) FROM GtfsStop WHERE feedId = 't') AS stops,
               (SELECT count(*) FROM GtfsStopTime WHERE feedId = 't') AS stop_times,
               (SELECT count(*) FROM GtfsCalendarDateRule WHERE feedId = 't') AS exceptions,
               (SELECT count(*) FROM GtfsStopTime WHERE feedId = 'other') AS other""")[0]
    assert counts == {"stops": 6, "stop_times": stop_times, "exceptions": 0,
                      "other": stop_times + 20}
    again = hub_json(lake, "ingest", "gtfs", str(v2), "--feed-id", "t", "--force")
    assert again["rows_removed"] == {} and again["written"] == 0


def test_untimed_trip_ends_and_half_timed_stops_are_said(tmp_path: Path) -> None:
    """GTFS reference, stop_times.txt: arrival_time and departure_time are required for the
    first and last stop of a trip. The small feed's trip T1 ends at an untimed stop; a stop
    with an arrival and no departure is said too."""
    feed = write_feed(tmp_path / "feed", {"stop_times.txt": FEED["stop_times.txt"].replace(
        "T1,8:05:00,08:06:00,S2,2", "T1,8:05:00,,S2,2")})
    run = ingest(tmp_path / "lake", str(feed), "--feed-id", "f")
    assert run["status"] == "ok" and run["rejected"] == 0
    assert any("1 trips lack an arrival or departure time at their first or last stop" in w
               and "trip 'T1', last stop, stop_sequence 3" in w for w in run["warnings"])
    assert any("1 stop times give an arrival_time without a departure_time" in w
               and "trip 'T1' stop_sequence 2" in w for w in run["warnings"])
    timed = write_feed(tmp_path / "timed", {"stop_times.txt": FEED["stop_times.txt"].replace(
        "T1,,,S3,3", "T1,08:10:00,08:10:00,S3,3")})
    run = ingest(tmp_path / "lake2", str(timed), "--feed-id", "f")
    assert not [w for w in run["warnings"] if "stop_times.txt" in w]


def test_a_feed_of_header_only_files_is_not_ok(tmp_path: Path) -> None:
    empty = {name: text.split("\n", 1)[0] + "\n" for name, text in FEED.items()}
    feed = write_feed(tmp_path / "feed", empty)
    result = hub(tmp_path / "lake", "ingest", "gtfs", str(feed))
    assert result.exit_code == 1
    assert "has no agencies, stops, routes or trips" in result.output


@needs_sample_data
def test_key_values_times_validate_against_the_official_sdm_schemas(tmp_path: Path) -> None:
    """The Google sample feed writes 6:00:00; GTFS and SDM's GtfsFrequency/GtfsStopTime
    schemas want HH:MM:SS: what `hubctl entities --format keyValues` writes is zero-padded,
    and GtfsFrequency, GtfsStop and GtfsTrip validate entirely."""
    from tests.sdm import sdm_errors

    lake = tmp_path / "lake"
    ingest(lake, str(GTFS / "google-sample-feed.zip"))
    for type_name in ("GtfsAgency", "GtfsFrequency", "GtfsStop", "GtfsTrip",
                      "GtfsCalendarRule"):
        result = hub(lake, "entities", type_name, "--format", "keyValues", "--limit", "0")
        entities = json.loads(result.stdout)
        assert entities
        assert [e for ent in entities for e in sdm_errors(type_name, ent)] == []
    stop_times = json.loads(hub(lake, "entities", "GtfsStopTime", "--format", "keyValues",
                                "--limit", "0").stdout)
    times = [e for ent in stop_times for e in sdm_errors("GtfsStopTime", ent)
             if e.split(":")[0] in ("arrivalTime", "departureTime")]
    assert times == [] and {s["arrivalTime"] for s in stop_times} >= {"06:00:00"}


def test_the_official_sdm_gtfs_agency_example_ingests(tmp_path: Path) -> None:
    """smart-data-models/dataModel.UrbanMobility GtfsAgency/examples/example.jsonld (key-values:
    agencyName, not name; source): no rejects, and it reads back as it came."""
    example = {"id": "urn:ngsi-ld:GtfsAgency:Malaga_EMT", "type": "GtfsAgency",
               "agencyName": "Empresa Malagueña de Transportes", "language": "ES",
               "page": "http://www.emtmalaga.es/",
               "source": "http://datosabiertos.malaga.eu/dataset/lineas-y-horarios-bus-"
                         "google-transit/resource/24e86888-b91e-45bf-a48c-09855832fd52",
               "timezone": "Europe/Madrid",
               "@context": ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]}
    path = tmp_path / "example.jsonld"
    path.write_text(json.dumps(example, ensure_ascii=False), encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ngsi-ld", str(path))
    assert (run["written"], run["rejected"]) == (1, 0)
    [back] = json.loads(hub(lake, "entities", "GtfsAgency", "--format", "keyValues").stdout)
    assert {k: back[k] for k in ("agencyName", "page", "timezone", "source")} == {
        k: example[k] for k in ("agencyName", "page", "timezone", "source")}


def test_a_service_is_operated_by_the_agency_of_its_routes(tmp_path: Path) -> None:
    """SDM's GtfsService requires operatedBy: the one agency of the routes its trips run on
    (WK: A1 only), none where its trips run for two agencies (SAT), the feed's only agency
    for a service no trip uses (HOL) in a one-agency feed."""
    two = write_feed(tmp_path / "two", {
        "agency.txt": FEED["agency.txt"] + "A2,Bus,https://bus.example,Asia/Seoul\n",
        "routes.txt": FEED["routes.txt"].replace("R2,,102", "R2,A2,102"),
        "trips.txt": FEED["trips.txt"] + "R1,SAT,T4,North,0,\n"})
    ingest(tmp_path / "lake", str(two), "--feed-id", "f")
    got = {r["id"].rsplit(":", 1)[1]: r["operatedBy"] for r in sql(
        tmp_path / "lake", "SELECT id, operatedBy FROM GtfsService")}
    assert got == {"WK": "urn:ngsi-ld:GtfsAgency:f:A1", "SAT": None, "HOL": None}
    ingest(tmp_path / "lake1", str(write_feed(tmp_path / "one")), "--feed-id", "f")
    got = {r["id"].rsplit(":", 1)[1]: r["operatedBy"] for r in sql(
        tmp_path / "lake1", "SELECT id, operatedBy FROM GtfsService")}
    assert set(got.values()) == {"urn:ngsi-ld:GtfsAgency:f:A1"} and len(got) == 3
