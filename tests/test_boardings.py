"""The boardings adapter through the CLI: mapping, time zones, links to stops, bad rows."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import hub, hub_json


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_mapped_headers_local_hours_and_stop_links(tmp_path: Path) -> None:
    data = _write(tmp_path / "card.csv", "정류소,일자,시간,승차,하차\n"
                  "70011,2017-07-24,7,120,30\n70011,20170724,8,95,40\n70012,2017/7/24,23,4,\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--feed-id", "ct",
                   "--timezone", "America/Los_Angeles", "--map", "정류소=stop_id",
                   "--map", "일자=date", "--map", "시간=hour", "--map", "승차=boardings",
                   "--map", "하차=alightings")
    assert run["read"] == 3 and run["written"] == 3 and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT id, strftime(observed_at, '%Y-%m-%d %H:%M') AS t, "
                    "serviceDate, hour, boardings, alightings, refStop, stopId, feedId "
                    "FROM StopBoardings ORDER BY t")
    assert rows[0] == {"id": "urn:ngsi-ld:StopBoardings:ct:70011", "t": "2017-07-24 14:00",
                       "serviceDate": "2017-07-24", "hour": 7, "boardings": 120.0,
                       "alightings": 30.0, "refStop": "urn:ngsi-ld:GtfsStop:ct:70011",
                       "stopId": "70011", "feedId": "ct"}
    # 23:00 in Los Angeles (PDT, UTC-7) is 06:00 UTC the next day; the local date stays
    assert (rows[2]["t"], rows[2]["serviceDate"], rows[2]["hour"]) == (
        "2017-07-25 06:00", "2017-07-24", 23)
    assert rows[2]["alightings"] is None
    # the rows render as NGSI-LD entities that the schema's jsonschema path accepts
    rendered = hub(lake, "entities", "StopBoardings")
    assert rendered.exit_code == 0
    (tmp_path / "entities.json").write_text(rendered.stdout)
    checked = hub(lake, "validate", str(tmp_path / "entities.json"))
    assert checked.exit_code == 0 and "3 entities, 0 errors" in checked.output


def test_datetimes_are_floored_to_their_hour_in_the_local_zone(tmp_path: Path) -> None:
    data = _write(tmp_path / "taps.csv", "stop_id,datetime,boardings\n"
                  "A,2024-05-01 07:23,5\nA,2024-05-01T08:59:59+09:00,6\nB,2024-05-01T00:30Z,1\n")
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    rows = hub_json(lake, "sql", "SELECT stopId, strftime(observed_at, '%Y-%m-%d %H:%M') AS t, "
                    "serviceDate, hour, refStop FROM StopBoardings ORDER BY stopId, t")
    assert [(r["stopId"], r["t"], r["serviceDate"], r["hour"]) for r in rows] == [
        ("A", "2024-04-30 22:00", "2024-05-01", 7),
        ("A", "2024-04-30 23:00", "2024-05-01", 8),
        ("B", "2024-05-01 00:00", "2024-05-01", 9)]
    assert rows[0]["refStop"] is None  # no --feed-id: no link


def test_daily_totals_without_hour(tmp_path: Path) -> None:
    data = _write(tmp_path / "daily.csv", "stop_id,date,boardings,alightings\nS1,2024-05-08,"
                  "1200,1100\n")
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    hourly = _write(tmp_path / "hourly.csv", "stop_id,date,hour,boardings\nS1,2024-05-08,0,7\n")
    hub_json(lake, "ingest", "boardings", str(hourly), "--timezone", "Asia/Seoul")
    rows = hub_json(lake, "sql", "SELECT id, hour, serviceDate, boardings FROM StopBoardings "
                                 "ORDER BY id")
    assert rows == [  # the day total and the 00:00 hour start at the same instant: two series
        {"id": "urn:ngsi-ld:StopBoardings:S1", "hour": 0, "serviceDate": "2024-05-08",
         "boardings": 7.0},
        {"id": "urn:ngsi-ld:StopBoardings:S1:daily", "hour": None,
         "serviceDate": "2024-05-08", "boardings": 1200.0}]


def test_bad_rows_are_rejected_with_reasons_and_the_rest_written(tmp_path: Path) -> None:
    data = _write(tmp_path / "bad.csv", "stop_id,date,hour,boardings,alightings\n"
                  "S1,2024-05-08,7,10,5\n"       # good
                  "S1,2024-05-08,8,-3,5\n"       # negative
                  "S1,2024-05-08,25,1,1\n"       # not an hour
                  ",2024-05-08,7,1,1\n"          # no stop
                  "S2,2024-02-30,7,1,1\n"        # no such date
                  "S2,2024-05-08,7,many,1\n"     # not a number
                  "S3,2024-05-08,7,,\n"          # no count at all
                  "S3,2024-05-08,7,1\n")         # a field short
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data))
    assert run["read"] == 8 and run["written"] == 1 and run["rejected"] == 7
    assert run["reconciles"]
    codes = sorted(r["codes"] for r in hub_json(lake, "rejects"))
    assert codes == sorted(["negative-value", "constraint-error", "missing-required",
                            "type-error", "type-error", "missing-required",
                            "malformed-record"])


def test_reingest_is_idempotent_and_a_changed_count_updates(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = _write(tmp_path / "a.csv", "stop_id,date,hour,boardings\nS1,2024-05-08,7,10\n"
                   "S1,2024-05-08,8,12\n")
    hub_json(lake, "ingest", "boardings", str(first))
    again = hub_json(lake, "ingest", "boardings", str(first), "--force")
    assert again["duplicate"] == 2 and again["written"] == 0
    changed = _write(tmp_path / "b.csv", "stop_id,date,hour,boardings\nS1,2024-05-08,7,11\n")
    assert hub_json(lake, "ingest", "boardings", str(changed))["updated"] == 1
    n = hub_json(lake, "sql", "SELECT count(*) AS n, sum(boardings) AS b FROM StopBoardings")
    assert n == [{"n": 2, "b": 23.0}]


def test_missing_columns_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    data = _write(tmp_path / "x.csv", "stop,when,count\nS1,2024-05-08,3\n")
    result = hub(lake, "ingest", "boardings", str(data))
    assert result.exit_code == 1
    assert ("missing column(s) stop_id, date or datetime (or month), boardings or alightings"
            in result.output)
    assert "--map" in result.output
    result = hub(lake, "ingest", "boardings", str(data), "--map", "stop=stop_ident")
    assert result.exit_code == 2 and "'stop_ident' is not a field" in result.output
    result = hub(lake, "ingest", "boardings", str(data), "--timezone", "Mars/Olympus")
    assert result.exit_code == 2 and "is not a known time zone" in result.output


def test_sum_repeats_adds_up_rows_split_by_route(tmp_path: Path) -> None:
    data = _write(tmp_path / "by-route.csv", "stop_id,date,hour,route,boardings,alightings\n"
                  "S1,2024-05-08,7,101,10,1\nS1,2024-05-08,7,102,5,\nS1,2024-05-08,8,101,3,2\n"
                  "S2,2024-05-08,7,101,-1,2\nS2,2024-05-08,7,102,4,4\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--sum-repeats")
    assert (run["read"], run["written"], run["rejected"]) == (5, 4, 1) and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT stopId, hour, boardings, alightings "
                                 "FROM StopBoardings ORDER BY stopId, hour")
    assert [tuple(r.values()) for r in rows] == [("S1", 7, 15.0, 1.0), ("S1", 8, 3.0, 2.0),
                                                 ("S2", 7, 4.0, 4.0)]
    again = hub_json(lake, "ingest", "boardings", str(data), "--sum-repeats", "--force")
    assert again["duplicate"] == 4 and again["written"] == 0 and again["reconciles"]
    # without the flag the later row of a stop and hour replaces the earlier one
    last = hub_json(tmp_path / "lake2", "ingest", "boardings", str(data))
    assert last["updated"] == 1 and last["written"] == 3


def _independent(path: Path, stop_column: str) -> dict[str, list[float]]:
    """Boardings and alightings per stop summed with the csv module (the independent count)."""
    import csv

    out: dict[str, list[float]] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        for rec in csv.DictReader(f):
            got = out.setdefault(rec[stop_column], [0.0, 0.0])
            got[0] += float(rec["승차총승객수"])
            got[1] += float(rec["하차총승객수"])
    return out


def test_seoul_subway_card_export_reads_without_map_and_keeps_each_line(
        tmp_path: Path) -> None:
    """The layout of Seoul's 'subway boardings per line and station' (CARD_SUBWAY_MONTH_*.csv,
    data.seoul.go.kr OA-12914): UTF-8 with BOM, every field quoted, one extra empty field at the
    end of every data row; transfer stations appear once per line for the same day, and each
    line stays its own series (never summed away or replaced)."""
    data = tmp_path / "CARD_SUBWAY_MONTH_202405.csv"
    data.write_text(
        '\ufeff"사용일자","노선명","역명","승차총승객수","하차총승객수","등록일자"\n'
        '"20240501","1호선","서울역","51035","49283","20240504",\n'
        '"20240501","2호선","시청","20135","21001","20240504",\n'
        '"20240501","4호선","서울역","10231","11872","20240504",\n'
        '"20240502","1호선","서울역","50012","48820","20240505",\n', encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    assert (run["status"], run["read"], run["written"], run["updated"], run["rejected"]) == (
        "ok", 4, 4, 0, 0)
    assert run["reconciles"] and run["rows_added"] == {"StopBoardings": 4}
    assert any("1 stops appear on more than one line (e.g. 서울역: 1호선, 4호선)" in w
               and "not summed" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT stopId, sum(boardings) AS b, sum(alightings) AS a "
                    "FROM StopBoardings GROUP BY stopId ORDER BY stopId")
    assert {r["stopId"]: [r["b"], r["a"]] for r in rows} == _independent(data, "역명")
    lines = hub_json(lake, "sql", "SELECT id, line, period FROM StopBoardings "
                     "WHERE stopId = '서울역' AND serviceDate = '2024-05-01' ORDER BY line")
    assert [(r["line"], r["period"]) for r in lines] == [("1호선", "day"), ("4호선", "day")]
    assert lines[0]["id"].endswith(":line:1%ED%98%B8%EC%84%A0:daily")


def test_seoul_bus_card_export_takes_the_standard_stop_id(tmp_path: Path) -> None:
    """The layout of Seoul's 'bus boardings per route and stop' (CARD_BUS_DAILY_*.csv,
    data.seoul.go.kr OA-12912): the stop has a standard id, an ARS number and a name; one stop
    serves several routes on a day."""
    data = tmp_path / "CARD_BUS_DAILY_202405.csv"
    data.write_text(
        '\ufeff"사용일자","노선번호","노선명","표준버스정류장ID","버스정류장ARS번호","역명",'
        '"승차총승객수","하차총승객수","등록일자"\n'
        '"20240501","100","100번(하계동~용산구청)","100000001","01001","종로2가사거리","120",'
        '"98","20240504",\n'
        '"20240501","101","101번(우이동~서소문)","100000001","01001","종로2가사거리","80",'
        '"77","20240504",\n'
        '"20240501","100","100번(하계동~용산구청)","100000002","01002","창경궁.서울대학교병원",'
        '"31","40","20240504",\n', encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    assert (run["read"], run["written"], run["rejected"]) == (3, 3, 0) and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT stopId, sum(boardings) AS b, sum(alightings) AS a "
                    "FROM StopBoardings GROUP BY stopId ORDER BY stopId")
    assert {r["stopId"]: [r["b"], r["a"]] for r in rows} == _independent(
        data, "표준버스정류장ID")
    # the route number is the line, the long route name its name
    named = hub_json(lake, "sql", "SELECT DISTINCT line, lineName FROM StopBoardings ORDER BY 1")
    assert named == [{"line": "100", "lineName": "100번(하계동~용산구청)"},
                     {"line": "101", "lineName": "101번(우이동~서소문)"}]


def test_repeats_of_a_stop_and_time_in_one_file_are_never_silent(tmp_path: Path) -> None:
    data = _write(tmp_path / "twice.csv", "stop_id,date,boardings\nS1,2024-05-08,10\n"
                  "S2,2024-05-08,3\nS1,2024-05-08,7\n")
    run = hub_json(tmp_path / "lake", "ingest", "boardings", str(data))
    assert run["updated"] == 1
    assert any("1 of 3 rows repeat a stop and time" in w and "--sum-repeats" in w
               for w in run["warnings"])


def _subway_hourly_header() -> list[str]:
    """OA-12252 (서울시 지하철 호선별 역별 시간대별 승하차 인원): the day starts at 04시."""
    slots = [(h % 24, (h + 1) % 24 or 24) for h in range(4, 28)]
    cols = [f"{a:02d}시-{b:02d}시 {kind}인원" for a, b in slots for kind in ("승차", "하차")]
    return ["사용월", "호선명", "지하철역", *cols, "작업일자"]


def _bus_hourly_header() -> list[str]:
    """OA-12913 (서울시 버스노선별 정류장별 시간대별 승하차 인원): 00시, then 1시 .. 23시."""
    cols = [f"{'00' if h == 0 else h}시{kind}총승객수" for h in range(24)
            for kind in ("승차", "하차")]
    return ["사용년월", "노선번호", "노선명", "표준버스정류장ID", "버스정류장ARS번호", "역명",
            *cols, "교통수단타입코드", "교통수단타입명", "등록일자"]


def _wide_rows(path: Path, header: list[str], keys: list[list[str]], tail: list[str],
               encoding: str = "utf-8") -> Path:
    """Rows of ``keys`` + 48 hourly counts (a fixed pattern) + ``tail``, every field quoted."""
    lines = [",".join(f'"{h}"' for h in header)]
    for r, key in enumerate(keys):
        counts = [str((r * 37 + i * 11) % 90) for i in range(48)]
        lines.append(",".join(f'"{v}"' for v in [*key, *counts, *tail]))
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def _independent_hourly(path: Path, stop: str, line: str,
                        encoding: str = "utf-8") -> dict[tuple[str, str, int], list[float]]:
    """(stop, line, hour) -> [boardings, alightings] with the csv module and a regex of our own."""
    import csv
    import re

    out: dict[tuple[str, str, int], list[float]] = {}
    with open(path, encoding=encoding, newline="") as f:
        for rec in csv.DictReader(f):
            for col, value in rec.items():
                m = re.match(r"(\d+)시(?:-\d+시)? ?(승차|하차)", col)
                if m:
                    got = out.setdefault((rec[stop], rec[line], int(m.group(1))), [0.0, 0.0])
                    got[0 if m.group(2) == "승차" else 1] += float(value)
    return out


def test_seoul_subway_hourly_wide_layout_reads_per_hour_of_the_month(tmp_path: Path) -> None:
    data = _wide_rows(tmp_path / "subway-hourly-202405.csv", _subway_hourly_header(),
                      [["202405", "1호선", "서울역"], ["202405", "4호선", "서울역"],
                       ["202405", "2호선", "시청"]], ["20240603"], encoding="cp949")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    # each row holds 24 hourly records (a boarding and an alighting count each)
    assert (run["status"], run["read"], run["written"], run["rejected"]) == (
        "ok", 72, 72, 0) and run["reconciles"]
    assert any("a wide hourly layout (24 hour columns): its 72 records are one per row and "
               "hour" in w for w in run["warnings"])
    rows = hub_json(lake, "sql", "SELECT stopId, line, hour, boardings, alightings, period, "
                    "serviceDate, strftime(observed_at, '%Y-%m-%d %H:%M') AS t "
                    "FROM StopBoardings ORDER BY stopId, line, hour")
    got = {(r["stopId"], r["line"], r["hour"]): [r["boardings"], r["alightings"]] for r in rows}
    assert got == _independent_hourly(data, "지하철역", "호선명", encoding="cp949")
    assert {(r["period"], r["serviceDate"]) for r in rows} == {("month", "2024-05-01")}
    # hour 7 of May in Seoul starts at 22:00 UTC on April 30
    seven = next(r for r in rows if r["hour"] == 7)
    assert seven["t"] == "2024-04-30 22:00"
    ids = hub_json(lake, "sql", "SELECT DISTINCT id FROM StopBoardings ORDER BY id")
    assert len(ids) == 3 and all(r["id"].endswith(":monthly-hours") for r in ids)


def test_seoul_bus_hourly_wide_layout_takes_the_route_number_as_line(tmp_path: Path) -> None:
    data = _wide_rows(tmp_path / "bus-hourly-202405.csv", _bus_hourly_header(),
                      [["202405", "100", "100번(하계동~용산구청)", "100000001", "01001",
                        "종로2가사거리(12)"],
                       ["202405", "101", "101번(우이동~서소문)", "100000001", "01001",
                        "종로2가사거리(7)"]], ["11", "간선", "20240603"])
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--feed-id", "seoul")
    assert (run["read"], run["written"], run["rejected"]) == (48, 48, 0) and run["reconciles"]
    # Korean card data without --timezone: Seoul's local hours, and a note says so
    assert any("Korean card data: local dates and hours read in Asia/Seoul" in w
               for w in run["warnings"])
    seven = hub_json(lake, "sql", "SELECT DISTINCT strftime(observed_at, '%Y-%m-%d %H:%M') AS t "
                     "FROM StopBoardings WHERE hour = 7")
    assert seven == [{"t": "2024-04-30 22:00"}]
    plain = _write(tmp_path / "plain.csv", "stop_id,date,hour,boardings\nS1,2024-05-01,7,3\n")
    other = tmp_path / "other"
    hub_json(other, "ingest", "boardings", str(plain))
    assert hub_json(other, "sql", "SELECT strftime(observed_at, '%H:%M') AS t "
                    "FROM StopBoardings") == [{"t": "07:00"}]  # anything else: UTC
    rows = hub_json(lake, "sql", "SELECT stopId, line, hour, boardings, alightings, refStop "
                    "FROM StopBoardings ORDER BY line, hour")
    got = {(r["stopId"], r["line"], r["hour"]): [r["boardings"], r["alightings"]] for r in rows}
    assert got == _independent_hourly(data, "표준버스정류장ID", "노선번호")
    assert rows[0]["refStop"] == "urn:ngsi-ld:GtfsStop:seoul:100000001"


def test_daily_wide_hours_and_a_bad_cell_rejects_only_its_hour(tmp_path: Path) -> None:
    header = ["사용일자", "역명"] + [f"{h:02d}시{k}인원" for h in range(24)
                                  for k in ("승차", "하차")]
    cells = ["12"] * 48
    cells[14] = "many"  # 07시승차인원
    data = _write(tmp_path / "day-hours.csv", ",".join(header) + "\n"
                  + ",".join(["20240501", "강남"] + cells) + "\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    assert (run["read"], run["written"], run["rejected"]) == (24, 23, 1) and run["reconciles"]
    reject = hub_json(lake, "rejects")[0]
    assert reject["codes"] == "type-error" and '"hour": "7"' in reject["raw"]
    rows = hub_json(lake, "sql", "SELECT id, period, hour, serviceDate, "
                    "strftime(observed_at, '%Y-%m-%d %H:%M') AS t FROM StopBoardings "
                    "WHERE hour = 0")
    assert rows == [{"id": "urn:ngsi-ld:StopBoardings:%EA%B0%95%EB%82%A8", "period": "day",
                     "hour": 0, "serviceDate": "2024-05-01", "t": "2024-04-30 15:00"}]


def test_wide_rows_melt_into_batches_of_at_most_batch_rows(tmp_path: Path) -> None:
    from hubctl.adapter import ReadContext
    from hubctl.adapters.boardings import ADAPTER

    header = ["사용일자", "역명"] + [f"{h:02d}시{k}인원" for h in range(24)
                                  for k in ("승차", "하차")]
    rows = [["20240501", f"역{i}"] + ["3"] * 48 for i in range(5)]
    rows[2][5] = "-1"  # 01시하차인원 of the third row
    data = _write(tmp_path / "wide.csv", "\n".join(",".join(r) for r in [header, *rows]) + "\n")
    warnings: list[str] = []
    batches = list(ADAPTER.read([data], {"timezone": "Asia/Seoul"},
                                ReadContext(batch_rows=7, warn=warnings.append)))
    assert max(b.rows.num_rows for b in batches if b.rows is not None) <= 7
    assert sum(b.records for b in batches) == 5 * 24
    assert sum(b.rows.num_rows for b in batches if b.rows is not None) == 5 * 24 - 1
    assert [r.record for b in batches for r in b.rejects] == ["line 4"]


def test_a_month_column_holding_a_whole_date_counts_that_day(tmp_path: Path) -> None:
    data = _write(tmp_path / "mixed.csv", "사용년월,역명,07시승차총승객수,07시하차총승객수\n"
                  "202405,강남,310,300\n20240507,강남,12,10\n2024-13,강남,1,1\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data), "--timezone", "Asia/Seoul")
    assert (run["read"], run["written"], run["rejected"]) == (3, 2, 1) and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT period, serviceDate, hour, boardings FROM StopBoardings "
                    "ORDER BY serviceDate")
    assert rows == [{"period": "month", "serviceDate": "2024-05-01", "hour": 7,
                     "boardings": 310.0},
                    {"period": "day", "serviceDate": "2024-05-07", "hour": 7, "boardings": 12.0}]
    assert hub_json(lake, "rejects")[0]["codes"] == "type-error"
