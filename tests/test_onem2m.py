"""oneM2M TS-0010 binding without a broker: request primitives with and without the m2m:rqp
wrapper, contentInstance creation and notification, ct timestamps, and the responses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hubctl.mqtt import onem2m
from hubctl.mqtt.observe import Message, to_batches
from hubctl.mqtt.settings import parse_settings

ARRIVAL = datetime(2026, 1, 2, tzinfo=UTC)
MAPPINGS = parse_settings("m2m", {"protocol": "onem2m", "containers": {
    "/Mobius/daegu/air01/data": {"type": "AirQualityObserved", "id": "daegu-air01",
                                 "attributes": {"PM10": "pm10", "NO2": "no2"},
                                 "units": {"NO2": "ppb"}, "time": "measured",
                                 "static": {"location": [128.59, 35.87]}}}},
    Path(".")).mappings
TOPIC = "/oneM2M/req/SAE-air01/hubctl/json"


def parse(doc: object, topic: str = TOPIC) -> onem2m.Request:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return onem2m.parse(Message(7, topic, text.encode(), ARRIVAL), MAPPINGS)


def create(con: object, **extra: object) -> dict[str, object]:
    return {"op": 1, "to": "/Mobius/daegu/air01/data", "fr": "SAE-air01", "rqi": "req-1",
            "ty": 4, "pc": {"m2m:cin": {"con": con}}, **extra}


def row(req: onem2m.Request) -> dict[str, object]:
    batch = to_batches(req.observations, [], "mqtt://x")[0]
    assert batch.rows is not None and not batch.typed_bad
    return batch.rows.to_pylist()[0]


def test_wrapped_create_with_json_text_con_and_its_created_response() -> None:
    req = parse({"m2m:rqp": create('{"PM10": 41, "NO2": 20, "measured": "20240501T090000"}')})
    assert (req.wrapped, req.rqi, req.rsc, req.reject) == (True, "req-1", onem2m.CREATED, None)
    r = row(req)
    assert r["id"] == "urn:ngsi-ld:AirQualityObserved:daegu-air01"
    assert r["observed_at"] == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert r["pm10"] == 41.0 and round(r["no2"], 2) == round(20 * 46.0055 / 24.45, 2)
    rsp = json.loads(onem2m.response(req, onem2m.CREATED))
    assert rsp["m2m:rsp"]["rsc"] == 2001 and rsp["m2m:rsp"]["rqi"] == "req-1"
    assert rsp["m2m:rsp"]["to"] == "SAE-air01" and rsp["m2m:rsp"]["fr"] == "hubctl"
    assert onem2m.response_topic(TOPIC) == "/oneM2M/resp/SAE-air01/hubctl/json"


def test_plain_create_with_object_con_uses_ot_then_arrival() -> None:
    r = row(parse(create({"PM10": 5}, ot="20240501T100000")))
    assert r["observed_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC) and r["_time_index"] == "ot"
    r = row(parse(create({"PM10": 5})))
    assert r["observed_at"] == ARRIVAL and r["_time_index"] == "arrival"


def test_notification_maps_the_subscribed_container_and_uses_ct() -> None:
    req = parse({"op": 5, "to": "hubctl", "fr": "/Mobius", "rqi": "n-9", "pc": {"m2m:sgn": {
        "sur": "/Mobius/daegu/air01/data/sub-hub", "nev": {"net": 3, "rep": {"m2m:cin": {
            "con": {"PM10": 17}, "ct": "20240501T083000", "ri": "4-1"}}}}}})
    assert req.rsc == onem2m.OK and not req.wrapped
    r = row(req)
    assert r["pm10"] == 17.0 and r["observed_at"] == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert r["_time_index"] == "ct"
    assert json.loads(onem2m.response(req, req.rsc)) == {
        "rsc": 2000, "rqi": "n-9", "rvi": "3", "to": "/Mobius", "fr": "hubctl"}


def test_verification_request_is_answered_without_data() -> None:
    req = parse({"op": 5, "fr": "/Mobius", "rqi": "v1", "pc": {"m2m:sgn": {
        "vrq": True, "sur": "Mobius/daegu/air01/data/sub"}}})
    assert req.rsc == onem2m.OK and not req.observations and req.reject is None


def test_bad_requests_get_the_status_a_cse_would_give_with_a_reason_and_a_reject() -> None:
    cases = {
        "not json": (onem2m.BAD_REQUEST, "not JSON"),
        json.dumps({"op": 2, "rqi": "r", "to": "x"}): (onem2m.OPERATION_NOT_ALLOWED,
                                                       "operation 2"),
        json.dumps({"op": 4, "rqi": "r", "to": "x"}): (onem2m.OPERATION_NOT_ALLOWED,
                                                       "operation 4"),
        json.dumps({"op": 9, "rqi": "r", "to": "x"}): (onem2m.BAD_REQUEST, "op 9"),
        json.dumps(create(1, ty=3)): (onem2m.NOT_IMPLEMENTED, "only contentInstance"),
        json.dumps(create(1, ty=2)): (onem2m.NOT_IMPLEMENTED, "only contentInstance"),
        json.dumps({**create(1), "to": "/Mobius/elsewhere"}): (onem2m.NOT_FOUND, "not mapped"),
        json.dumps({"op": 1, "ty": 4}): (onem2m.BAD_REQUEST, "no rqi"),
        json.dumps(create({})): (onem2m.BAD_REQUEST, "con has no values"),
        json.dumps(create({"measured": "20240501T090000"})): (onem2m.BAD_REQUEST,
                                                             "con has no values"),
        json.dumps(create("nothing maps this text", ty=4)): (onem2m.BAD_REQUEST,
                                                            "maps to no attribute"),
        json.dumps(create({"foo": 1, "bar": 2})): (onem2m.BAD_REQUEST, "keys: bar, foo"),
    }
    for text, (rsc, words) in cases.items():
        req = parse(text)
        assert req.rsc == rsc and req.reject is not None, text
        assert words in req.reject.reasons[0].message and req.reject.raw == text
        assert req.reject.file == TOPIC and req.reject.codes == "unmapped-message"
    req = parse(json.dumps({**create(1), "to": "/Mobius/elsewhere"}))
    body = json.loads(onem2m.response(req, req.rsc, req.reject.reasons[0].message))  # type: ignore[union-attr]
    assert body["rsc"] == 4004 and "not mapped" in body["pc"]["m2m:dbg"]


def test_scalar_con_maps_through_the_con_key() -> None:
    mappings = parse_settings("m", {"protocol": "onem2m", "containers": {"cse/pm": {
        "type": "AirQualityObserved", "id": "x", "attributes": {"con": "pm10"},
        "static": {"location": [1, 2]}}}}, Path(".")).mappings
    req = onem2m.parse(Message(1, TOPIC, json.dumps(
        {"op": 1, "to": "/in-cse/cse/pm", "rqi": "1", "ty": 4,
         "pc": {"m2m:cin": {"con": "23.5"}}}).encode(), ARRIVAL), mappings)
    assert row(req)["pm10"] == 23.5  # "/in-cse/cse/pm" ends with the mapped "cse/pm"


def test_a_missing_rqi_is_answered_4000_with_an_empty_rqi_and_rvi_is_echoed() -> None:
    req = parse({"op": 1, "ty": 4, "rvi": "4", "fr": "C1"})
    body = json.loads(onem2m.response(req, req.rsc, "no rqi"))
    assert body["rsc"] == 4000 and body["rqi"] == "" and body["rvi"] == "4"
    req = parse(create({"PM10": 5}, rvi="2a"))
    assert json.loads(onem2m.response(req, req.rsc))["rvi"] == "2a"


def test_2001_carries_the_created_resource_with_ri_ct_and_con_as_received() -> None:
    con = {"PM10": 41, "measured": "20240501T090000"}
    req = parse(create(con))
    assert row(req)["observed_at"] == datetime(2024, 5, 1, 9, tzinfo=UTC)
    cin = json.loads(onem2m.response(req, req.rsc))["pc"]["m2m:cin"]
    assert cin["con"] == con  # the time key is not dropped from an object con
    assert cin["ty"] == 4 and cin["ri"].startswith("cin") and len(cin["ct"]) >= 15
    assert onem2m.basic_time(datetime(2024, 5, 1, 9, 0, 1, 5, tzinfo=UTC)) == \
        "20240501T090001,000005"


def sgn(sur: str, con: object, ct: str, pi: str = "cntX") -> dict[str, object]:
    return {"sur": sur, "nev": {"net": 3, "rep": {"m2m:cin": {"con": con, "ct": ct, "pi": pi,
                                                              "ri": "cin" + ct}}}}


def test_unstructured_sur_and_pi_resolve_through_the_resource_ids_acme_gives() -> None:
    ids = {"subOvqfR2Cr62": "Mobius/daegu/air01/data", "cnt9VvsJCQDL8": "Mobius/daegu/air01/data"}
    doc = {"op": 5, "fr": "/id-in", "to": "Chubctl", "rqi": "n1", "rvi": "3", "pc": {
        "m2m:sgn": sgn("/id-in/subOvqfR2Cr62", '{"PM10": 3}', "20240501T083000,120000",
                       "cnt9VvsJCQDL8")}}
    message = Message(1, "/oneM2M/req/id-in/Chubctl/json", json.dumps(doc).encode(), ARRIVAL)
    without = onem2m.parse(message, MAPPINGS)
    assert without.rsc == onem2m.NOT_FOUND and not without.observations  # the seed's bug
    req = onem2m.parse(message, MAPPINGS, ids)
    assert req.rsc == onem2m.OK and row(req)["pm10"] == 3.0
    assert req.cins == {"Mobius/daegu/air01/data": ["20240501T083000,120000"]}
    doc["pc"]["m2m:sgn"]["sur"] = "/id-in/subUnknown"  # type: ignore[index]
    req = onem2m.parse(Message(2, message.topic, json.dumps(doc).encode(), ARRIVAL), MAPPINGS,
                       ids)
    assert row(req)["pm10"] == 3.0  # by the cin's parent id


def test_an_aggregated_notification_is_ingested_instance_by_instance() -> None:
    ids = {"sub1": "Mobius/daegu/air01/data"}
    items = [sgn("/id-in/sub1", {"PM10": i}, f"20240501T08300{i}") for i in range(3)]
    items.append(sgn("/id-in/sub1", {}, "20240501T083009"))  # maps nothing: its own reject
    for pc in ({"m2m:agn": {"m2m:sgn": items}}, {"m2m:agn": [{"m2m:sgn": i} for i in items]}):
        req = onem2m.parse(Message(1, TOPIC, json.dumps(
            {"op": 5, "rqi": "a", "pc": pc}).encode(), ARRIVAL), MAPPINGS, ids)
        assert req.rsc == onem2m.OK and len(req.observations) == 3 and len(req.rejects) == 1
        batch = to_batches(req.observations, req.rejects, "x")[0]
        assert batch.rows is not None
        assert batch.rows.column("pm10").to_pylist() == [0.0, 1.0, 2.0]
        assert "con has no values" in req.rejects[0].reasons[0].message


def test_ae_settings_are_checked_and_default_topics_are_only_the_hubs() -> None:
    import pytest

    from hubctl.errors import ConfigError

    base = {"protocol": "onem2m", "containers": {"cse-in/a/b": {
        "type": "AirQualityObserved", "id": "b"}}}
    s = parse_settings("m", {**base, "register": True, "cse_id": "/id-in", "cse_name": "cse-in",
                             "ae_id": "Chubctl", "host": "10.0.0.5"}, Path("."))
    assert s.topics == ("/oneM2M/req/+/Chubctl/json", "/oneM2M/resp/Chubctl/+/json",
                        "/oneM2M/reg_req/+/Chubctl/json", "/oneM2M/reg_resp/Chubctl/+/json")
    assert (s.cse_id, s.poa, s.reconcile) == ("id-in", ("mqtt://10.0.0.5:1883",), 60.0)
    s = parse_settings("m", {**base, "notify_http": "0.0.0.0:9090"}, Path("."))
    assert s.poa == ("http://0.0.0.0:9090",) and "/oneM2M/req/+/hubctl/json" in s.topics
    for bad, words in (({"register": True, "ae_id": "C1"}, "needs cse_id, cse_name"),
                       ({"register": True, "cse_id": "i", "cse_name": "c", "ae_id": "C1",
                         "workers": 2}, "one worker"),
                       ({"notify_http": "9090"}, "host:port"),
                       ({"reconcile": -1}, "reconcile must be seconds"),
                       ({"cse_url": "ftp://x"}, "http:// or https://"),
                       ({"ae_id": "a/b"}, "without '/'")):
        with pytest.raises(ConfigError, match=words):
            parse_settings("m", {**base, **bad}, Path("."))


def test_the_catch_up_cursor_moves_only_with_what_a_catch_up_retrieved() -> None:
    from hubctl.mqtt.client import _advance

    key = "Mobius/daegu/air01/data"
    note = onem2m.parse(Message(1, TOPIC, json.dumps({"op": 5, "rqi": "n", "pc": {
        "m2m:sgn": sgn("/x/s", {"PM10": 1}, "20240501T090000")}}).encode(), ARRIVAL),
        MAPPINGS, {"s": key})
    caught = [onem2m.parse(Message(i, onem2m.CATCH_UP + key, json.dumps(
        {"con": {"PM10": i}, "ct": ct, "pi": "c"}).encode(), ARRIVAL), MAPPINGS)
        for i, ct in enumerate(["20240501T080000,5", "20240501T080100", "20240501T075900"])]
    assert note.observations and all(c.observations for c in caught)
    assert _advance({}, [note]) == {}  # a notification: a lost older one must still be read
    assert _advance({key: "20240501T070000"}, [note, *caught]) == {key: "20240501T080100"}


def test_a_device_registering_with_the_hub_gets_5001_on_its_registration_response_topic() -> None:
    topic = "/oneM2M/reg_req/Cdev/hubctl/json"
    req = onem2m.parse(Message(1, topic, json.dumps(
        {"op": 1, "ty": 2, "to": "hubctl", "fr": "Cdev", "rqi": "reg1", "rvi": "3",
         "pc": {"m2m:ae": {"rn": "dev", "api": "Nx", "rr": False}}}).encode(), ARRIVAL),
        MAPPINGS)
    assert req.rsc == onem2m.NOT_IMPLEMENTED and req.reject is not None
    assert onem2m.response_topic(topic) == "/oneM2M/reg_resp/Cdev/hubctl/json"
    body = json.loads(onem2m.response(req, req.rsc, "register with the CSE"))
    assert (body["rsc"], body["rqi"], body["to"]) == (5001, "reg1", "Cdev")
