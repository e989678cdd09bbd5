"""IoT-Agent JSON binding and MQTT source settings, without a broker: topics, payloads, config
groups, units, static attributes, timestamps, and the rows and rejects they become."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hubctl.errors import ConfigError
from hubctl.mqtt import iotagent
from hubctl.mqtt.observe import Message, to_batches
from hubctl.mqtt.settings import MqttSettings, parse_settings
from hubctl.rejects import Reject

ARRIVAL = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def settings(**extra: object) -> MqttSettings:
    group = {"type": "AirQualityObserved", "attributes": {"p10": "pm10", "n": "no2"},
             "units": {"n": "ppm"}, "static": {"location": [128.6, 35.87]},
             "devices": {"s1": {"id": "daegu-s1", "static": {"location": [128.5, 35.8]}}}}
    group.update(extra)
    return parse_settings("iot", {"protocol": "iotagent-json", "groups": {"k1": group}},
                          Path("."))


def msg(topic: str, payload: str, seq: int = 1) -> Message:
    return Message(seq, topic, payload.encode(), ARRIVAL, mid=seq)


def rows(messages: list[Message], s: MqttSettings) -> tuple[list[dict[str, object]], list[Reject],
                                                             dict[int, list[str]]]:
    observations, rejects = [], []
    for m in messages:
        parsed = iotagent.parse(m, s.mappings)
        if isinstance(parsed, Reject):
            rejects.append(parsed)
        else:
            observations += parsed
    batches = to_batches(observations, rejects, "mqtt://test")
    table = next((b.rows for b in batches if b.rows is not None), None)
    bad = {i: [r.code for r in rs] for b in batches for i, rs in b.typed_bad.items()}
    return (table.to_pylist() if table is not None else []), \
        [r for b in batches for r in b.rejects], bad


def test_object_payload_maps_names_converts_units_and_adds_static_location() -> None:
    out, rejects, bad = rows([msg("/json/k1/s1/attrs", '{"p10": 12, "n": 0.02, '
                                  '"TimeInstant": "2024-05-01T09:00:00+09:00", "rssi": -70}')],
                             settings())
    assert not rejects and not bad
    row = out[0]
    assert row["id"] == "urn:ngsi-ld:AirQualityObserved:daegu-s1"
    assert row["observed_at"] == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert row["dateObserved"] == row["observed_at"] and row["_time_index"] == "TimeInstant"
    assert row["pm10"] == 12.0
    assert row["no2"] == pytest.approx(0.02 * 1000 * 46.0055 / 24.45)  # ppm -> µg/m³
    assert (row["lon"], row["lat"]) == (128.5, 35.8)  # the device's own location wins
    assert row["_extra"] == '{"rssi": {"type": "Property", "value": -70}}'
    assert row["_record"] == "/json/k1/s1/attrs #1"


def test_array_payload_single_measure_topic_and_arrival_time() -> None:
    out, rejects, _ = rows([
        msg("json/k1/s2/attrs", '[{"p10": 1, "TimeInstant": "2024-05-01T00:00:00Z"}, '
                                '{"p10": 2, "TimeInstant": "2024-05-01T01:00:00Z"}]', 1),
        msg("/json/k1/s2/attrs/p10", "3.5", 2),
        msg("/json/k1/s2/attrs/pm25", '"4"', 3)], settings())
    assert not rejects
    assert [(r["pm10"], r["pm25"]) for r in out] == [(1.0, None), (2.0, None), (3.5, None),
                                                     (None, 4.0)]
    assert out[2]["observed_at"] == ARRIVAL and out[2]["_time_index"] == "arrival"
    assert (out[0]["lon"], out[0]["lat"]) == (128.6, 35.87)  # the group's static location
    assert out[0]["_raw"] == '{"p10": 1, "TimeInstant": "2024-05-01T00:00:00Z"}'


def test_configured_time_attribute_and_bad_values_are_reasons() -> None:
    out, _, bad = rows([msg("/json/k1/s1/attrs", '{"p10": "high", "ts": 1714521600}'),
                        msg("/json/k1/s1/attrs", '{"p10": 5, "ts": "yesterday"}', 2)],
                       settings(time="ts"))
    assert out[0]["observed_at"] == datetime(2024, 5, 1, tzinfo=UTC)
    assert bad == {0: ["type-error"], 1: ["bad-timestamp"]}


def test_unparseable_and_unmapped_messages_are_rejected_with_topic_and_payload() -> None:
    _, rejects, _ = rows([msg("/json/nokey/d/attrs", "{}", 1),
                          msg("/json/k1/d/attrs", "{broken", 2),
                          msg("/json/k1/d/attrs", "[1, 2]", 3),
                          msg("/other/topic", "{}", 4)], settings())
    assert [r.codes for r in rejects] == ["unmapped-message"] * 4
    assert rejects[0].file == "/json/nokey/d/attrs" and rejects[1].raw == "{broken"
    assert "apikey 'nokey'" in rejects[0].reasons[0].message
    assert "not JSON" in rejects[1].reasons[0].message


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "Nope"}, "unknown entity type"),
    ({"attributes": {"x": "nope"}}, "is not an attribute of AirQualityObserved"),
    ({"units": {"p10": "furlongs"}}, "cannot be converted"),
    ({"static": {"location": "here"}}, "must be \\[longitude, latitude\\]"),
    ({"colour": "red"}, "unknown key"),
])
def test_config_group_mistakes_fail_at_start(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**change)


def test_password_comes_from_the_environment_never_from_the_file(
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"protocol": "iotagent-json", "groups": {"k": {"type": "AirQualityObserved"}}}
    with pytest.raises(ConfigError, match="must not be written"):
        parse_settings("s", {**base, "password": "secret"}, Path("."))
    with pytest.raises(ConfigError, match="HUB_PW, which is not set"):
        parse_settings("s", {**base, "password_env": "HUB_PW"}, Path("."))
    monkeypatch.setenv("HUB_PW", "s3cret")
    s = parse_settings("s", {**base, "password_env": "HUB_PW", "username": "hub",
                             "version": "5", "tls": {"ca": "ca.pem"}}, Path("/etc/hub"))
    assert (s.password, s.port, s.version) == ("s3cret", 8883, "5")
    assert s.tls == {"ca": "/etc/hub/ca.pem"}
    assert s.topics == ("/json/+/+/attrs", "/json/+/+/attrs/+", "/+/+/attrs", "/+/+/attrs/+")
    assert s.batch_size == 10_000


def test_listen_names_unknown_and_non_mqtt_sources_and_bad_config(tmp_path: Path) -> None:
    from tests.helpers import hub

    config = tmp_path / "hub.toml"
    config.write_text('[sources.files]\nadapter = "openaq"\ninputs = ["x.csv"]\n')
    lake = tmp_path / "lake"
    res = hub(lake, "--config", str(config), "listen", "nope")
    assert res.exit_code == 2 and "unknown source 'nope'" in res.output
    res = hub(lake, "--config", str(config), "listen", "files")
    assert res.exit_code == 2 and "not an MQTT source" in res.output
    config.write_text('[sources.live.mqtt]\nprotocol = "sparkplug"\n')  # the schema: at load
    res = hub(lake, "--config", str(config), "listen", "live")
    assert res.exit_code == 2 and "sources.live.mqtt.protocol: must be one of \"onem2m\", " \
        "\"iotagent-json\", not text 'sparkplug'" in res.output
    assert "hubctl listen daegu-air" in hub(lake, "listen", "--help").output


def test_topics_without_the_json_prefix_are_read_the_same_way() -> None:
    new, _, _ = rows([msg("/json/k1/s1/attrs", '{"p10": 12}'), msg("/json/k1/s2/attrs/p10", "3")],
                     settings())
    old, rejects, _ = rows([msg("/k1/s1/attrs", '{"p10": 12}'), msg("/k1/s2/attrs/p10", "3")],
                           settings())
    assert not rejects
    assert [(r["id"], r["pm10"]) for r in old] == [(r["id"], r["pm10"]) for r in new] == [
        ("urn:ngsi-ld:AirQualityObserved:daegu-s1", 12.0),
        ("urn:ngsi-ld:AirQualityObserved:s2", 3.0)]
