"""``hubctl ingest ngsi-ld-broker`` against a real HTTP server on loopback replaying recorded
Orion-LD answers: entity paging with limit/offset, the Link header, the temporal API window,
retries, timeouts, empty pages, and the cursor with its look-back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hubctl.adapters.ngsi_ld_broker import explode
from hubctl.lake import Lake
from hubctl.ledger import last_cursor, source_runs
from tests.helpers import hub
from tests.test_pull_airkorea import Answer, Replay, Seen

AQO = "AirQualityObserved"
CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/" \
          "context.jsonld"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def urn(station: str) -> str:
    return f"urn:ngsi-ld:AirQualityObserved:{station}"


def location(i: int) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point",
                                             "coordinates": [128.59 + i / 100, 35.87]}}


def current(i: int, t: datetime) -> dict[str, Any]:
    """An entity as Orion-LD answers GET /ngsi-ld/v1/entities (Accept: application/json)."""
    return {"id": urn(f"daegu-{i}"), "type": AQO, "location": location(i),
            "dateObserved": {"type": "Property", "value": iso(t), "observedAt": iso(t)},
            "no2": {"type": "Property", "value": 20.0 + i, "unitCode": "GQ",
                    "observedAt": iso(t)},
            "pm10": {"type": "Property", "value": 31.0 + i, "unitCode": "GQ",
                     "observedAt": iso(t)}}


def temporal(i: int, times: list[datetime], no2: dict[datetime, float] | None = None) -> \
        dict[str, Any]:
    """A temporal entity: no2 as instances (normalized), pm10 in the temporalValues form."""
    no2 = no2 or {}
    return {
        "id": urn(f"daegu-{i}"), "type": AQO, "location": location(i),
        "no2": [{"type": "Property", "value": no2.get(t, 20.0 + i), "unitCode": "GQ",
                 "observedAt": iso(t), "instanceId": f"urn:ngsi-ld:attribute:instance:{i}-{n}"}
                for n, t in enumerate(times)],
        "pm10": {"type": "Property", "unitCode": "GQ",
                 "values": [[31.0 + i, iso(t)] for t in times]},
        "dateObserved": [{"type": "Property", "value": iso(t), "observedAt": iso(t)}
                         for t in times],
    }


def paged(entities: list[dict[str, Any]]) -> Any:
    """A route that serves ``entities`` by limit/offset with NGSILD-Results-Count."""
    def route(seen: Seen) -> Answer:
        limit, offset = int(seen.query["limit"]), int(seen.query["offset"])
        return Answer(entities[offset:offset + limit],
                      headers={"NGSILD-Results-Count": str(len(entities))})
    return route


def pull(lake: Path, server: Replay, *extra: str) -> Any:
    return hub(lake, "ingest", "ngsi-ld-broker", "--url", server.url, "--type", AQO,
               "--limit", "2", "--rate", "0", "--backoff", "0.01", "--timeout", "1",
               "--source-name", "broker", "--json", *extra)


def no2_at(lake: Path, station: str, t: datetime) -> Any:
    out = hub(lake, "sql", f"SELECT no2 FROM AirQualityObserved WHERE id = '{urn(station)}' "
                           f"AND observed_at = TIMESTAMPTZ '{t.isoformat()}'", "--json")
    assert out.exit_code == 0, out.output
    return [r["no2"] for r in json.loads(out.stdout)]


def test_explode_makes_one_entity_per_observation_time() -> None:
    times = [T0, T0 + timedelta(hours=1)]
    out = explode(temporal(1, times))
    assert len(out) == 2
    assert [e["no2"]["observedAt"] for e in out] == [iso(t) for t in times]
    assert [e["pm10"] for e in out] == [
        {"type": "Property", "value": 32.0, "observedAt": iso(t), "unitCode": "GQ"}
        for t in times]
    assert all(e["location"] == location(1) for e in out)  # static attributes ride along
    # "Z" and "+00:00" are the same instant: one entity, not two
    same = {"id": "x", "type": AQO,
            "no2": [{"type": "Property", "value": 1, "observedAt": "2024-05-01T09:00:00Z"}],
            "pm10": [{"type": "Property", "value": 2, "observedAt": "2024-05-01T09:00:00+00:00"}]}
    assert len(explode(same)) == 1
    assert explode({"id": "y", "type": AQO, "name": {"type": "Property", "value": "n"}}) == [
        {"id": "y", "type": AQO, "name": {"type": "Property", "value": "n"}}]


def test_entities_are_paged_with_limit_offset_and_the_link_header(tmp_path: Path) -> None:
    entities = [current(i, T0 + timedelta(minutes=i)) for i in range(5)]
    with Replay(paged(entities)) as server:
        result = pull(tmp_path / "lake", server, "--tenant", "daegu")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert (run["read"], run["written"], run["rejected"]) == (5, 5, 0)
    assert [(s.query["offset"], s.query["limit"]) for s in server.seen] == \
        [("0", "2"), ("2", "2"), ("4", "2")]
    first = server.seen[0]
    assert first.path == "/ngsi-ld/v1/entities" and first.query["type"] == AQO
    assert first.headers["link"] == (f'<{CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
                                     'type="application/ld+json"')
    assert first.headers["ngsild-tenant"] == "daegu"
    assert first.headers["accept"] == "application/json"
    assert last_cursor(Lake(tmp_path / "lake"), "broker") == iso(T0 + timedelta(minutes=4))


def test_temporal_pulls_a_window_from_the_cursor_minus_lookback(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    hours = [T0 + timedelta(hours=h) for h in range(3)]
    with Replay(paged([temporal(i, hours) for i in range(3)])) as server:
        first = pull(lake, server, "--temporal", "--since", iso(T0 - timedelta(hours=1)))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["written"] == 9  # 3 stations x 3 hours, one row each
    query = server.seen[0].query
    assert server.seen[0].path == "/ngsi-ld/v1/temporal/entities"
    assert (query["timerel"], query["timeAt"], query["timeproperty"]) == \
        ("between", iso(T0 - timedelta(hours=1)), "observedAt")
    assert datetime.fromisoformat(query["endTimeAt"]) > T0
    assert last_cursor(Lake(lake), "broker") == iso(hours[-1])

    # next run: from cursor - 30 min; the broker returns the last hour again (one value revised
    # late) and a new hour
    later = [hours[-1], hours[-1] + timedelta(hours=1)]
    revised = {hours[-1]: 99.0}
    with Replay(paged([temporal(0, later, revised), temporal(1, later)])) as server:
        second = pull(lake, server, "--temporal", "--lookback", "30")
    assert second.exit_code == 0, second.output
    assert server.seen[0].query["timeAt"] == iso(hours[-1] - timedelta(minutes=30))
    run = json.loads(second.stdout)
    assert (run["written"], run["updated"], run["duplicate"]) == (2, 1, 1)
    assert last_cursor(Lake(lake), "broker") == iso(later[-1])
    assert no2_at(lake, "daegu-0", hours[-1]) == [99.0]
    assert no2_at(lake, "daegu-1", later[-1]) == [21.0]
    with Replay(paged([])) as server:  # no look-back at all: from the cursor itself
        assert pull(lake, server, "--temporal", "--lookback", "0").exit_code == 0
    assert server.seen[0].query["timeAt"] == iso(later[-1])
    bad = pull(lake, server, "--temporal", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since 'yesterday' is not a time" in bad.output


def test_retries_and_timeouts_lose_nothing_and_failure_keeps_the_cursor(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    entities = [temporal(i, [T0]) for i in range(4)]
    calls: dict[str, int] = {}

    def flaky(seen: Seen) -> Answer:
        offset = seen.query["offset"]
        calls[offset] = calls.get(offset, 0) + 1
        if offset == "2" and calls[offset] == 1:
            return Answer({"type": "https://uri.etsi.org/ngsi-ld/errors/InternalError"}, 500)
        if offset == "2" and calls[offset] == 2:
            return Answer([], delay=1.6)  # past the 1 s timeout
        return paged(entities)(seen)

    with Replay(flaky) as server:
        result = pull(lake, server, "--temporal", "--since", iso(T0))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 4 and calls["2"] == 3
    assert last_cursor(Lake(lake), "broker") == iso(T0)

    def down(seen: Seen) -> Answer:
        return Answer([temporal(9, [T0 + timedelta(hours=5)])], delay=1.6)

    with Replay(down) as server:
        failed = pull(lake, server, "--temporal", "--retries", "1")
    assert failed.exit_code == 1 and "timeout" in failed.output and len(server.seen) == 2
    assert server.seen[0].query["timeAt"] == iso(T0 - timedelta(minutes=10))  # default look-back
    runs = source_runs(Lake(lake), "broker")
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[-1]["cursor_before"] == iso(T0) and runs[-1]["cursor_after"] is None
    assert last_cursor(Lake(lake), "broker") == iso(T0)


def test_permanent_errors_fail_at_once_and_empty_answers_keep_the_cursor(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with Replay(lambda s: Answer({"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                                  "title": "Invalid timeAt"}, 400)) as server:
        bad = pull(lake, server, "--temporal")
    assert bad.exit_code == 1 and "HTTP 400" in bad.output and "Invalid timeAt" in bad.output
    assert len(server.seen) == 1
    with Replay(paged([current(0, T0)])) as server:
        assert pull(lake, server).exit_code == 0
    with Replay(lambda s: Answer([], headers={"NGSILD-Results-Count": "0"})) as server:
        empty = pull(lake, server)
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["read"] == 0 and len(server.seen) == 1
    assert last_cursor(Lake(lake), "broker") == iso(T0)
    assert [r["cursor_after"] for r in source_runs(Lake(lake), "broker")] == [None, iso(T0),
                                                                              iso(T0)]


def test_unknown_types_from_the_broker_are_rejected_with_their_raw_entity(
        tmp_path: Path) -> None:
    odd = {"id": "urn:ngsi-ld:Parking:1", "type": "ParkingSpot",
           "status": {"type": "Property", "value": "free", "observedAt": iso(T0)}}
    with Replay(paged([current(0, T0), odd])) as server:
        result = pull(tmp_path / "lake", server)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert (run["read"], run["written"], run["rejected"]) == (2, 1, 1) and run["reconciles"]


def test_a_hub_toml_source_names_options_as_the_command_line_does(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    with Replay(paged([temporal(i, [T0]) for i in range(3)])) as server:
        config.write_text(
            '[sources.orion]\nadapter = "ngsi-ld-broker"\nschedule = "*/10 * * * *"\n'
            f'options = {{ url = "{server.url}", type = "{AQO}", temporal = true, '
            f'since = "{iso(T0)}", limit = 2, rate = 0 }}\n', encoding="utf-8")
        result = hub(tmp_path / "lake", "--config", str(config), "ingest", "--source", "orion",
                     "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 3
    assert server.seen[0].query["type"] == AQO and server.seen[0].query["timeAt"] == iso(T0)
    assert last_cursor(Lake(tmp_path / "lake"), "orion") == iso(T0)


@pytest.mark.subprocess
def test_sigterm_ends_a_pull_as_a_stopped_run_without_advancing_the_cursor(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    entities = [temporal(i, [T0 + timedelta(hours=i)]) for i in range(40)]

    def slow(seen: Seen) -> Answer:
        answer = paged(entities)(seen)
        answer.delay = 0.3
        return answer

    with Replay(slow) as server:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "hubctl"), "--lake", str(lake), "ingest",
             "ngsi-ld-broker", "--url", server.url, "--type", AQO, "--temporal", "--since",
             iso(T0), "--limit", "2", "--rate", "0", "--source-name", "broker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(server.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert time.monotonic() - stopped_at < 5  # not after all 20 pages
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert len(server.seen) < 20
    (run,) = source_runs(Lake(lake), "broker")
    assert run["status"] == "stopped" and "stopped by SIGTERM" in run["error"]
    assert run["read"] == run["written"] + run["updated"] + run["duplicate"] + run["rejected"] \
        + run["unreached"]
    assert run["cursor_after"] is None and last_cursor(Lake(lake), "broker") is None
