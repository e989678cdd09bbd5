"""The adapter toolkit (hubctl.adapterkit): one helper per idea, checked against the scalar
definitions it vectorises."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hubctl.adapterkit import local_ids, urns
from hubctl.ngsild import entity_id

_LOCALS = ["S1", "중구 파출소", " padded ", "a/b%c", "", None, "urn:ngsi-ld:GtfsStop:x:1",
           "S1", "x y"]


@pytest.mark.parametrize("namespace", ["", "daegu", "fire-station", "a b"])
def test_urns_are_entity_id_of_every_value(namespace: str) -> None:
    got = urns("GtfsStop", pa.array(_LOCALS, pa.string()), namespace).to_pylist()
    want = [None if v is None else
            entity_id("GtfsStop", f"{namespace}:{v}" if namespace else v) for v in _LOCALS]
    assert got == want


def test_urns_of_plain_ids_take_the_fast_path_and_agree() -> None:
    local = pa.chunked_array([["1", "2"], ["3"]])
    assert urns("Alert", local, "112").to_pylist() == [
        "urn:ngsi-ld:Alert:112:1", "urn:ngsi-ld:Alert:112:2", "urn:ngsi-ld:Alert:112:3"]


def test_local_ids_are_the_local_part_of_urns() -> None:
    values = pa.array(["T1", "트립 1", None])
    full = urns("GtfsTrip", values, "feed")
    parts = local_ids("feed", values).to_pylist()
    assert [None if part is None else "urn:ngsi-ld:GtfsTrip:" + part
            for part in parts] == full.to_pylist()
