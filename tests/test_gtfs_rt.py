"""The gtfs-rt adapter: FeedMessages built here (protobuf and JSON), and the MBTA sample."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

MBTA = SAMPLE_DATA / "gtfs-rt" / "mbta-vehicle-positions-2014-07-11.pb"
HEADER_TS = 1_767_225_600  # 2026-01-01T00:00:00Z


def feed_message() -> rt.FeedMessage:
    """Two vehicles (one without its own timestamp), one trip update, one alert."""
    m = rt.FeedMessage()
    m.header.gtfs_realtime_version = "0.1"
    m.header.timestamp = HEADER_TS
    a = m.entity.add(id="e1")
    a.vehicle.vehicle.id = "bus-7"
    a.vehicle.vehicle.label = "7"
    a.vehicle.trip.trip_id = "T1"
    a.vehicle.trip.route_id = "R1"
    a.vehicle.trip.start_date = "20260101"
    a.vehicle.position.latitude = 35.87
    a.vehicle.position.longitude = 128.6
    a.vehicle.position.bearing = 90
    a.vehicle.position.speed = 10  # m/s
    a.vehicle.current_status = rt.VehiclePosition.STOPPED_AT
    a.vehicle.stop_id = "S1"
    a.vehicle.current_stop_sequence = 4
    a.vehicle.timestamp = HEADER_TS - 30
    b = m.entity.add(id="e2")
    b.vehicle.position.latitude = 35.9
    b.vehicle.position.longitude = 128.7
    u = m.entity.add(id="e3")
    u.trip_update.trip.trip_id = "T1"
    u.trip_update.trip.start_date = "20260101"
    u.trip_update.vehicle.id = "bus-7"
    u.trip_update.timestamp = HEADER_TS - 10
    s1 = u.trip_update.stop_time_update.add(stop_sequence=5, stop_id="S2")
    s1.arrival.delay = 120
    s1.departure.delay = 150
    s1.departure.time = HEADER_TS + 300
    s2 = u.trip_update.stop_time_update.add(stop_sequence=6)
    s2.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
    alert = m.entity.add(id="e4")
    alert.alert.header_text.translation.add(text="Detour")
    return m


def write(path: Path, message: rt.FeedMessage, as_json: bool = False) -> Path:
    if as_json:
        path.write_text(json_format.MessageToJson(message), encoding="utf-8")
    else:
        path.write_bytes(message.SerializeToString())
    return path


@pytest.mark.parametrize("as_json", [False, True])
def test_vehicles_and_delays_from_protobuf_and_json(tmp_path: Path, as_json: bool) -> None:
    lake = tmp_path / "lake"
    source = write(tmp_path / ("feed.json" if as_json else "feed.pb"), feed_message(), as_json)
    run = hub_json(lake, "ingest", "gtfs-rt", str(source), "--feed-id", "metro")
    assert run["read"] == 2 + 2 + 1 and run["written"] == 4 and run["rejected"] == 1
    assert run["reconciles"]
    assert any("'0.1' is not a published version" in w for w in run["warnings"])
    vehicles = {v["id"]: v for v in hub_json(lake, "sql", "SELECT * FROM Vehicle")}
    bus = vehicles["urn:ngsi-ld:Vehicle:metro:bus-7"]
    assert bus["observed_at"].startswith("2025-12-31T23:59:30")
    assert bus["_time_index"] == "vehicle.timestamp"
    assert (bus["lon"], bus["lat"], bus["bearing"]) == (128.6, 35.87, 90.0)
    assert bus["speed"] == pytest.approx(36.0)  # km/h
    assert bus["currentStatus"] == "STOPPED_AT" and bus["currentStopSequence"] == 4
    assert bus["hasTrip"] == "urn:ngsi-ld:GtfsTrip:metro:T1"
    assert bus["hasRoute"] == "urn:ngsi-ld:GtfsRoute:metro:R1"
    assert bus["hasStop"] == "urn:ngsi-ld:GtfsStop:metro:S1"
    assert bus["tripStartDate"] == "2026-01-01" and bus["name"] == "7"
    other = vehicles["urn:ngsi-ld:Vehicle:metro:e2"]  # no descriptor: the entity id
    assert other["_time_index"] == "header.timestamp"
    assert other["observed_at"].startswith("2026-01-01T00:00:00")
    delays = hub_json(lake, "sql", "SELECT * FROM GtfsDelayObserved ORDER BY stopSequence")
    assert [d["id"] for d in delays] == [
        "urn:ngsi-ld:GtfsDelayObserved:metro:T1:20260101:5",
        "urn:ngsi-ld:GtfsDelayObserved:metro:T1:20260101:6"]
    assert (delays[0]["arrivalDelay"], delays[0]["departureDelay"]) == (120, 150)
    assert delays[0]["departureTime"].startswith("2026-01-01T00:05:00")
    assert delays[0]["hasVehicle"] == "urn:ngsi-ld:Vehicle:metro:bus-7"
    assert delays[0]["hasStop"] == "urn:ngsi-ld:GtfsStop:metro:S2"
    assert delays[1]["scheduleRelationship"] == "SKIPPED" and delays[1]["arrivalDelay"] is None
    rejected = hub_json(lake, "rejects")
    assert [(r["entity_type"], r["record"], r["codes"]) for r in rejected] == [
        ("FeedEntity", "entity e4", "unmapped-message")]
    assert rejected[0]["reasons"][0]["message"].startswith("the entity holds alert: only")
    again = hub_json(lake, "ingest", "gtfs-rt", str(source), "--feed-id", "metro", "--force")
    assert again["written"] == 0 and again["duplicate"] == 4 and again["reconciles"]


def test_files_that_are_not_feeds_fail_clearly(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    html = tmp_path / "error.pb"
    html.write_text("<html><body>503 Service Unavailable</body></html>")
    other_json = tmp_path / "other.json"
    other_json.write_text('{"type": "FeatureCollection", "features": []}')
    cut = tmp_path / "cut.json"
    cut.write_text('{"header": {"gtfsRealtimeVersion": "2.0"}, "entity": [{"id": ')
    for path, message in ((html, "is not a GTFS-realtime FeedMessage (protobuf)"),
                          (other_json, "it has no header with a gtfs_realtime_version"),
                          (cut, "is JSON but not a GTFS-realtime FeedMessage")):
        result = hub(lake, "ingest", "gtfs-rt", str(path), "--feed-id", "x")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_default_feed_id_comes_from_the_file_name_with_a_warning(tmp_path: Path) -> None:
    source = write(tmp_path / "Daegu Vehicles.pb", feed_message())
    run = hub_json(tmp_path / "lake", "ingest", "gtfs-rt", str(source))
    assert any("'daegu-vehicles' taken from the file name" in w for w in run["warnings"])
    ids = hub_json(tmp_path / "lake", "sql", "SELECT DISTINCT feedId FROM Vehicle")
    assert ids == [{"feedId": "daegu-vehicles"}]


@needs_sample_data
def test_mbta_vehicle_positions_conform(tmp_path: Path) -> None:
    message = rt.FeedMessage()
    message.ParseFromString(MBTA.read_bytes())  # the independent decode
    expected = {}
    for e in message.entity:
        vid = e.vehicle.vehicle.id or e.vehicle.vehicle.label or e.id
        expected[f"urn:ngsi-ld:Vehicle:mbta:{vid}"] = (
            datetime.fromtimestamp(e.vehicle.timestamp, UTC), e.vehicle.position.latitude,
            e.vehicle.position.longitude)
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "gtfs-rt", str(MBTA), "--feed-id", "mbta")
    assert run["read"] == run["written"] == len(message.entity) == 756
    rows = hub_json(lake, "sql", "SELECT id, observed_at, lat, lon, _time_index FROM Vehicle")
    assert len(rows) == 756 and {r["id"] for r in rows} == set(expected)
    for r in rows:
        at, lat, lon = expected[r["id"]]
        assert datetime.fromisoformat(r["observed_at"]) == at
        assert r["_time_index"] == "vehicle.timestamp"
        assert 42.0 < r["lat"] < 42.8 and -71.5 < r["lon"] < -70.5  # Boston area
        assert r["lat"] == pytest.approx(lat, abs=1e-5)
        assert r["lon"] == pytest.approx(lon, abs=1e-5)
