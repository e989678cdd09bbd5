"""``hubctl ingest airkorea --api`` against a real HTTP server on loopback that replays recorded
AirKorea answers: paging, 500s, timeouts, resultCode errors, empty pages, cursors and look-back.

``Replay`` (the server) is shared with the NGSI-LD broker and schedule tests.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hubctl.lake import Lake
from hubctl.ledger import last_cursor, source_runs
from tests.helpers import hub

# ---------------------------------------------------------------- the replay server


@dataclass
class Answer:
    """One recorded answer: status, JSON (or raw text) body, headers, and a delay before it."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes | str):
            return self.body.encode() if isinstance(self.body, str) else self.body
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass
class Seen:
    """A request the server received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case


Route = Callable[[Seen], Answer]


class Replay:
    """A ThreadingHTTPServer on 127.0.0.1 answering from ``route``; records every request."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.seen: list[Seen] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urllib.parse.urlsplit(self.path)
                seen = Seen(url.path, dict(urllib.parse.parse_qsl(url.query)),
                            {k.lower(): v for k, v in self.headers.items()})
                replay.seen.append(seen)
                answer = replay.route(seen)
                time.sleep(answer.delay)
                body = answer.encoded()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Script:
    """Answers per key, in order; the last answer of a key repeats."""

    def __init__(self, answers: dict[Any, list[Answer]]) -> None:
        self.answers = answers

    def take(self, key: Any) -> Answer:
        queue = self.answers.get(key)
        if not queue:
            return Answer({"error": f"nothing recorded for {key!r}"}, status=404)
        return queue.pop(0) if len(queue) > 1 else queue[0]


# ---------------------------------------------------------------- recorded AirKorea answers

KEY = "abc+/123=="  # data.go.kr keys hold + / =, which must be URL-encoded on the wire
BASE = datetime(2024, 5, 1, 15, 0)  # KST wall clock of the newest hour


def measurement(station: str, hour: datetime, pm10: str = "30") -> dict[str, Any]:
    """An item as getCtprvnRltmMesureDnsty (ver=1.0) sends it, field order as recorded."""
    return {"so2Grade": "1", "coFlag": None, "khaiValue": "54", "so2Value": "0.003",
            "coValue": "0.3", "pm25Flag": None, "pm10Flag": None, "o3Grade": "2",
            "pm10Value": pm10, "khaiGrade": "2", "pm25Value": "14", "sidoName": "서울",
            "no2Flag": None, "no2Grade": "1", "o3Flag": None, "pm25Grade": "1",
            "so2Flag": None, "dataTime": hour.strftime("%Y-%m-%d %H:%M"), "coGrade": "1",
            "no2Value": "0.018", "stationName": station, "pm10Grade": "1", "o3Value": "0.046"}


def page(items: list[dict[str, Any]], total: int, page_no: int, rows: int,
         code: str = "00", msg: str = "NORMAL_CODE") -> dict[str, Any]:
    return {"response": {"body": {"totalCount": total, "items": items, "pageNo": page_no,
                                  "numOfRows": rows},
                         "header": {"resultMsg": msg, "resultCode": code}}}


def pages(items: list[dict[str, Any]], rows: int) -> dict[int, dict[str, Any]]:
    """The recorded answer of every page of a query."""
    chunks = [items[i:i + rows] for i in range(0, len(items), rows)] or [[]]
    return {n: page(c, len(items), n, rows) for n, c in enumerate(chunks, 1)}


STATIONS = ["중구", "종로구", "용산구"]


@pytest.fixture
def stations(tmp_path: Path) -> Path:
    path = tmp_path / "stations.csv"
    path.write_text("name,lat,lon\n중구,37.5643,126.9747\n종로구,37.572,127.005\n"
                    "용산구,37.5400,127.0049\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def service_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRKOREA_SERVICE_KEY", KEY)


def sido_route(script: Script) -> Route:
    def route(seen: Seen) -> Answer:
        assert seen.path.endswith("/getCtprvnRltmMesureDnsty"), seen.path
        return script.take(int(seen.query["pageNo"]))
    return route


def pull(lake: Path, server: Replay, stations: Path, *extra: str) -> Any:
    return hub(lake, "ingest", "airkorea", "--api", "--sido", "서울", "--stations",
               str(stations), "--endpoint", server.url + "/B552584/ArpltnInforInqireSvc",
               "--num-rows", "2", "--rate", "0", "--backoff", "0.01", "--timeout", "1",
               "--json", *extra)


def utc(kst: datetime) -> str:
    return (kst - timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ")


SOURCE = "airkorea:api:sido=서울"

# ---------------------------------------------------------------- tests


def test_pulls_every_page_and_commits_the_cursor(tmp_path: Path, stations: Path) -> None:
    items = [measurement(s, BASE - timedelta(hours=h)) for h in range(2) for s in STATIONS[:2]]
    items.append(measurement("용산구", BASE - timedelta(hours=1)))
    script = Script({n: [Answer(p)] for n, p in pages(items, 2).items()})
    with Replay(sido_route(script)) as server:
        result = pull(tmp_path / "lake", server, stations)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert (run["read"], run["written"], run["rejected"]) == (3 + 5, 3 + 5, 0)
    assert [s.query["pageNo"] for s in server.seen] == ["1", "2", "3"]
    first = server.seen[0].query
    assert first["serviceKey"] == KEY and first["returnType"] == "json"
    assert first["sidoName"] == "서울" and first["numOfRows"] == "2" and first["ver"] == "1.0"
    lake = Lake(tmp_path / "lake")
    assert last_cursor(lake, SOURCE) == utc(BASE)
    (ledger,) = source_runs(lake, SOURCE)
    assert ledger["cursor_before"] is None and ledger["cursor_after"] == utc(BASE)
    assert KEY not in json.dumps(ledger, default=str)  # the key never reaches the ledger


def test_retries_500s_and_timeouts_and_loses_nothing(tmp_path: Path, stations: Path) -> None:
    items = [measurement(s, BASE - timedelta(hours=h)) for h in range(2) for s in STATIONS[:2]]
    recorded = pages(items, 2)
    script = Script({1: [Answer(recorded[1])],
                     2: [Answer({"error": "upstream"}, status=500),
                         Answer(recorded[2], delay=1.6),  # past the client's 1 s timeout
                         Answer("Service Unavailable", status=503, headers={"Retry-After": "0"}),
                         Answer(recorded[2])]})
    with Replay(sido_route(script)) as server:
        result = pull(tmp_path / "lake", server, stations)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["written"] == 3 + 4 and run["reconciles"]
    assert [s.query["pageNo"] for s in server.seen] == ["1", "2", "2", "2", "2"]
    assert any("3 request(s) retried" in w for w in run["warnings"])


def test_a_failed_pull_does_not_advance_the_cursor(tmp_path: Path, stations: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = Lake(lake_dir)
    old = [measurement(s, BASE - timedelta(hours=1)) for s in STATIONS[:2]]
    with Replay(sido_route(Script({1: [Answer(page(old, 2, 1, 2))]}))) as server:
        assert pull(lake_dir, server, stations).exit_code == 0
    assert last_cursor(lake, SOURCE) == utc(BASE - timedelta(hours=1))

    new = [measurement(s, BASE) for s in STATIONS]  # page 2 keeps failing
    failing = Script({1: [Answer(page(new[:2], 3, 1, 2))], 2: [Answer("boom", status=500)]})
    with Replay(sido_route(failing)) as server:
        result = pull(lake_dir, server, stations, "--retries", "2")
    assert result.exit_code == 1
    assert "HTTP 500 after 3 attempt(s)" in result.output and "serviceKey=%2A%2A%2A" in \
        result.output and KEY not in result.output
    runs = source_runs(lake, SOURCE)
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[1]["cursor_before"] == utc(BASE - timedelta(hours=1))
    assert runs[1]["cursor_after"] is None
    assert last_cursor(lake, SOURCE) == utc(BASE - timedelta(hours=1))

    healed = Script({n: [Answer(p)] for n, p in pages(new, 2).items()})
    with Replay(sido_route(healed)) as server:
        result = pull(lake_dir, server, stations)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    # the failed run held page 1 in its batch and committed none of it: all three are new now
    assert (run["written"], run["duplicate"]) == (3, 3)
    assert last_cursor(lake, SOURCE) == utc(BASE)
    count = hub(lake_dir, "sql", "SELECT count(*) AS n FROM AirQualityObserved", "--json")
    assert json.loads(count.stdout)[0]["n"] == 2 + 3


@pytest.mark.parametrize("answer, message, hint", [
    (page([], 0, 1, 2, code="30", msg="SERVICE_KEY_IS_NOT_REGISTERED_ERROR"),
     "resultCode 30 (SERVICE_KEY_IS_NOT_REGISTERED_ERROR)", "register the service key"),
    (page([], 0, 1, 2, code="22", msg="LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR"),
     "resultCode 22", "daily request limit"),
    ("<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg><returnAuthMsg>"
     "SERVICE_KEY_IS_NOT_REGISTERED_ERROR</returnAuthMsg><returnReasonCode>30</returnReasonCode>"
     "</cmmMsgHeader></OpenAPI_ServiceResponse>", "resultCode 30", "register the service key"),
])
def test_result_code_errors_are_clear_messages(tmp_path: Path, stations: Path, answer: Any,
                                               message: str, hint: str) -> None:
    with Replay(sido_route(Script({1: [Answer(answer)]}))) as server:
        result = pull(tmp_path / "lake", server, stations)
    assert result.exit_code == 1
    assert message in result.output and hint in result.output
    assert "Traceback" not in result.output and len(server.seen) == 1  # permanent: no retry


def test_transient_result_codes_are_retried(tmp_path: Path, stations: Path) -> None:
    items = [measurement("중구", BASE)]
    script = Script({1: [Answer(page([], 0, 1, 2, code="05", msg="SERVICETIME_OUT")),
                         Answer(page(items, 1, 1, 2))]})
    with Replay(sido_route(script)) as server:
        result = pull(tmp_path / "lake", server, stations)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 3 + 1 and len(server.seen) == 2


def test_empty_pages_keep_the_cursor(tmp_path: Path, stations: Path) -> None:
    lake_dir = tmp_path / "lake"
    with Replay(sido_route(Script({1: [Answer(page([measurement("중구", BASE)], 1, 1, 2))]}))) \
            as server:
        assert pull(lake_dir, server, stations).exit_code == 0
    for empty in (page([], 0, 1, 2), page([], 0, 1, 2, code="03", msg="NODATA_ERROR")):
        with Replay(sido_route(Script({1: [Answer(empty)]}))) as server:
            result = pull(lake_dir, server, stations)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["read"] == 3  # the station list only
    runs = source_runs(Lake(lake_dir), SOURCE)
    assert [r["cursor_after"] for r in runs] == [utc(BASE)] * 3


def test_station_pulls_reach_back_by_the_lookback_only(tmp_path: Path, stations: Path) -> None:
    """Per-station answers list the newest hour first; once a page is older than the cursor
    minus the look-back, paging stops. Late revisions inside the look-back are updates."""
    lake_dir = tmp_path / "lake"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    latest = now + timedelta(hours=9)  # the API publishes recent hours, in Korea time
    hours = [latest - timedelta(hours=h) for h in range(6)]

    def station_route(values: dict[datetime, str]) -> Route:
        items = [{k: v for k, v in measurement("중구", h, values.get(h, "30")).items()
                  if k not in ("stationName", "sidoName")} for h in hours]  # as recorded
        recorded = pages(items, 2)

        def route(seen: Seen) -> Answer:
            assert seen.path.endswith("/getMsrstnAcctoRltmMesureDnsty")
            assert seen.query["stationName"] == "중구" and seen.query["dataTerm"] == "DAILY"
            return Answer(recorded[int(seen.query["pageNo"])])
        return route

    def run(server: Replay) -> Any:
        return hub(lake_dir, "ingest", "airkorea", "--api", "--station", "중구", "--stations",
                   str(stations), "--endpoint", server.url, "--num-rows", "2", "--rate", "0",
                   "--lookback", "1", "--backoff", "0.01", "--json")

    with Replay(station_route({})) as server:
        first = run(server)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["written"] == 3 + 6 and len(server.seen) == 3
    with Replay(station_route({latest - timedelta(hours=1): "99"})) as server:  # revised
        second = run(server)
    assert second.exit_code == 0, second.output
    run2 = json.loads(second.stdout)
    assert len(server.seen) == 2  # page 2 (hours -2, -3) is older than cursor - 1 h: stop
    assert (run2["updated"], run2["duplicate"]) == (1, 3 + 3)
    assert last_cursor(Lake(lake_dir), "airkorea:api:station=중구") == utc(latest)


def test_missing_key_and_missing_query_are_usage_errors(
        tmp_path: Path, stations: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRKOREA_SERVICE_KEY")
    result = hub(tmp_path / "lake", "ingest", "airkorea", "--api", "--sido", "서울",
                 "--stations", str(stations))
    assert result.exit_code == 2 and "$AIRKOREA_SERVICE_KEY is not set" in result.output
    monkeypatch.setenv("MY_KEY", KEY)
    result = hub(tmp_path / "lake", "ingest", "airkorea", "--api", "--service-key-env",
                 "MY_KEY", "--stations", str(stations))
    assert result.exit_code == 2 and "--sido NAME or --station NAME" in result.output
    result = hub(tmp_path / "lake", "ingest", "airkorea", "--stations", str(stations))
    assert result.exit_code == 2 and "at least one input file" in result.output


def test_a_hub_toml_source_pulls_with_its_own_cursor(tmp_path: Path, stations: Path) -> None:
    items = [measurement(s, BASE) for s in STATIONS]
    script = Script({n: [Answer(p)] for n, p in pages(items, 2).items()})
    with Replay(sido_route(script)) as server:
        config = tmp_path / "hub.toml"
        config.write_text(
            '[lake]\npath = "lake"\n\n[sources.seoul-live]\nadapter = "airkorea"\n'
            'schedule = "0 * * * *"\n'
            f'options = {{ api = true, sido = "서울", stations = "{stations.name}", '
            f'endpoint = "{server.url}", num-rows = 2, rate = 0 }}\n', encoding="utf-8")
        result = hub(tmp_path / "lake", "--config", str(config), "ingest", "--source",
                     "seoul-live", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == "seoul-live"
    assert last_cursor(Lake(tmp_path / "lake"), "seoul-live") == utc(BASE)



# ---------------------------------------------------------------- the HTTP client itself


def test_client_backs_off_exponentially_and_honours_retry_after() -> None:
    from hubctl.pull import HttpClient, PullError, PullSettings

    script = Script({"/": [Answer("busy", 503, headers={"Retry-After": "7"}),
                           Answer("down", 500), Answer("down", 502), Answer("down", 500)]})
    waits: list[float] = []
    with Replay(lambda seen: script.take(seen.path)) as server:
        client = HttpClient(PullSettings(retries=3, backoff=0.5, rate=0), sleep=waits.append)
        with pytest.raises(PullError, match=r"HTTP 500 after 4 attempt\(s\)"):
            client.get(server.url + "/")
    assert waits == [7.0, 1.0, 2.0]  # Retry-After first, then 0.5 * 2**n
    assert (client.requests, client.retried) == (4, 3)


def test_client_keeps_to_its_rate_limit() -> None:
    from hubctl.pull import HttpClient, PullSettings

    with Replay(lambda seen: Answer([])) as server:
        client = HttpClient(PullSettings(rate=20))
        began = time.monotonic()
        for _ in range(6):
            assert client.get(server.url + "/x").json() == []
        elapsed = time.monotonic() - began
    assert elapsed >= 5 / 20  # six requests at 20/s take at least five gaps of 50 ms


def test_client_fails_at_once_on_a_permanent_status_and_hides_secrets() -> None:
    from hubctl.pull import HttpClient, PullError, PullSettings

    with Replay(lambda seen: Answer({"error": "no such API"}, 404)) as server:
        client = HttpClient(PullSettings(rate=0), secrets=frozenset({"serviceKey"}))
        with pytest.raises(PullError) as caught:
            client.get(server.url + "/api", {"serviceKey": "s3cret", "page": 1})
    assert len(server.seen) == 1 and server.seen[0].query["serviceKey"] == "s3cret"
    assert "HTTP 404" in str(caught.value) and "s3cret" not in str(caught.value)
    assert "serviceKey=%2A%2A%2A&page=1" in str(caught.value)
