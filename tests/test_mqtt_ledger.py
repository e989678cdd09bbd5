"""The engine entry for live micro-batches (``ingest_batches``) and the ledger rows that
``listen`` rebuilds for a micro-batch cut off between its data commit and its ledger row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hubctl.ingest import _account, _Commit, ingest_batches
from hubctl.lake import Lake
from hubctl.ledger import Run
from hubctl.mqtt import iotagent
from hubctl.mqtt.observe import Message, Observation, to_batches
from hubctl.mqtt.recover import recover_orphans
from hubctl.mqtt.settings import parse_settings
from hubctl.rejects import Reject
from tests.helpers import hub_json

SETTINGS = parse_settings("live", {"protocol": "iotagent-json", "groups": {"k": {
    "type": "AirQualityObserved", "attributes": {"p": "pm10"},
    "static": {"location": [128.6, 35.87]}}}}, Path("."))


def batches(first: int, count: int, bad: int = 0) -> list:  # type: ignore[type-arg]
    now = datetime.now(UTC)
    observations: list[Observation] = []
    rejects: list[Reject] = []
    for i in range(first, first + count):
        value = -1 if i < first + bad else i
        m = Message(i, "/json/k/d1/attrs", json.dumps(
            {"p": value, "TimeInstant": f"2024-05-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}
        ).encode(), now, i)
        parsed = iotagent.parse(m, SETTINGS.mappings)
        assert not isinstance(parsed, Reject)
        observations += parsed
    rejects.append(iotagent.parse(Message(0, "/json/nokey/d/attrs", b"{}", now),
                                  SETTINGS.mappings))  # type: ignore[arg-type]
    return to_batches(observations, rejects, "mqtt://test")


def test_ingest_batches_reconciles_and_returns_rejects_that_name_their_message(
        tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    run, rejects = ingest_batches(lake, "live", "mqtt-iotagent-json", batches(0, 20, bad=2),
                                  fingerprint="mqtt:test:1")
    assert (run.status, run.read, run.written, run.rejected) == ("ok", 21, 18, 3)
    assert sorted(r.record for r in rejects)[:2] == ["/json/k/d1/attrs #0",
                                                     "/json/k/d1/attrs #1"]
    again, _ = ingest_batches(lake, "live", "mqtt-iotagent-json", batches(10, 20),
                              fingerprint="mqtt:test:2")  # 10 redelivered, 10 new
    assert (again.written, again.duplicate, again.rejected) == (10, 10, 1)


def test_a_batch_without_its_ledger_row_gets_a_recovered_one(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    ingest_batches(lake, "live", "mqtt-iotagent-json", batches(0, 5), fingerprint="a")
    cut = Run(run_id="20240101T000000000000Z-dead01", source="live",
              adapter="mqtt-iotagent-json", fingerprint="b", inputs=[], options={})
    for batch in batches(5, 7):  # committed rows and rejects, then "killed": no write_run
        _account(lake, batch, cut, _Commit())
    recovered = recover_orphans(lake, "live", "mqtt-iotagent-json", ["AirQualityObserved"])
    assert [(r.run_id, r.status, r.read, r.written, r.rejected) for r in recovered] == [
        (cut.run_id, "recovered", 8, 7, 1)]
    assert recover_orphans(lake, "live", "mqtt-iotagent-json", ["AirQualityObserved"]) == []
    rows = hub_json(lake.root, "sql", "SELECT sum(written) AS w, count(*) AS runs FROM _runs")
    assert rows == [{"w": 12, "runs": 2}]
    assert hub_json(lake.root, "sql", "SELECT count(*) AS n FROM AirQualityObserved") == [
        {"n": 12}]
