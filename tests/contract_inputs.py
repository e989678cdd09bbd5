"""One small input per registered adapter, for the contract test (tests/test_contract.py).

Each input has more records than the contract's small batch size, and most hold a record the
adapter must reject, so that bounded batches and a reconciling ledger are both exercised. A
new adapter adds its entry to ``INPUTS``; the contract test fails for an adapter without one,
and every check then comes for free.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import row, write_openaq


@dataclass
class Input:
    """Files (or none, for an API pull), the options, and the records an independent count
    finds in them (what the ledger's ``read`` must be)."""

    files: list[Path]
    args: list[str]
    records: int
    serve: Callable[[], contextlib.AbstractContextManager[str]] | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _csv(path: Path, header: str, good: list[str], bad: str) -> Path:
    """A CSV of ``good`` lines and one ``bad`` line the adapter must reject."""
    path.write_text("\n".join([header, *good, bad]) + "\n", encoding="utf-8")
    return path


def openaq(tmp: Path) -> Input:
    rows = [row("S1", h, "no2", 20 + h) for h in range(4)] + [
        row("S2", h, "pm25", 10 + h) for h in range(3)] + [row("S1", 5, "no2", "n/a")]
    data, stations = write_openaq(tmp / "openaq", rows)
    # 8 measurements and the 3 stations listed (stations are records too)
    return Input([data], ["--stations", str(stations)], 8 + 3)


def airkorea(tmp: Path) -> Input:
    fixtures = Path(__file__).resolve().parent / "fixtures" / "airkorea"
    # 10 + 1 hourly items and 2 stations
    return Input([fixtures / "bokjeong-2020-10-28.json", fixtures / "jeongneung-2025-11-26.json"],
                 ["--stations", str(fixtures / "stations.csv")], 11 + 2)


def _aqo(n: int) -> dict[str, object]:
    return {"id": f"urn:ngsi-ld:AirQualityObserved:S{n}", "type": "AirQualityObserved",
            "dateObserved": {"type": "Property", "value": f"2024-05-01T{n:02d}:00:00Z"},
            "no2": {"type": "Property", "value": 20.0 + n, "unitCode": "GQ"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [128.0, 35.87]}}}


def ngsi_ld(tmp: Path) -> Input:
    entities = [_aqo(n) for n in range(5)] + [{"id": "urn:ngsi-ld:Nothing:1", "type": "Nothing"}]
    path = tmp / "entities.jsonld"
    path.write_text(json.dumps(entities), encoding="utf-8")
    return Input([path], [], 6)


def ngsi_ld_broker(tmp: Path) -> Input:
    from tests.test_pull_airkorea import Answer, Replay, Seen

    entities = [_aqo(n) for n in range(5)]

    def route(seen: Seen) -> Answer:
        limit, offset = int(seen.query["limit"]), int(seen.query["offset"])
        return Answer(entities[offset:offset + limit],
                      headers={"NGSILD-Results-Count": str(len(entities))})

    @contextlib.contextmanager
    def serve() -> Iterator[str]:
        with Replay(route) as server:
            yield server.url

    return Input([], ["--type", "AirQualityObserved", "--limit", "2", "--rate", "0",
                      "--timeout", "5"], 5, serve=serve)


def gtfs(tmp: Path) -> Input:
    from tests.test_gtfs import RECORDS, write_feed

    return Input([write_feed(tmp / "feed")], ["--feed-id", "metro"], RECORDS)


def gtfs_rt(tmp: Path) -> Input:
    from tests.test_gtfs_rt import feed_message, write

    # two vehicles, a trip update of two stop times, an alert (not ingested: a reject)
    return Input([write(tmp / "feed.pb", feed_message())], ["--feed-id", "metro"], 2 + 2 + 1)


def boardings(tmp: Path) -> Input:
    data = _csv(tmp / "card.csv", "stop_id,date,hour,boardings,alightings",
                [f"S{i % 3},2024-05-01,{8 + i},{10 * i},{i}" for i in range(6)],
                "S9,2024-05-01,8,many,1")
    return Input([data], ["--timezone", "Asia/Seoul"], 7)


def population(tmp: Path) -> Input:
    data = _csv(tmp / "grid.csv", "lat,lon,population",
                [f"37.5{i},127.0{i},{100 + i}" for i in range(6)], "37.6,127.1,-5")
    return Input([data], ["--dataset", "seoul"], 7)


def calls(tmp: Path) -> Input:
    data = _csv(tmp / "cad.csv", "case,received,type,y,x",
                [f"C{i},2024-03-10 0{i}:30:00,noise,37.5{i},127.0{i}" for i in range(6)],
                "C9,not a time,noise,37.5,127.0")
    return Input([data], ["--map", "case=id", "--map", "received=dateIssued",
                          "--map", "type=subCategory", "--map", "y=lat", "--map", "x=lon",
                          "--timezone", "America/Los_Angeles"], 7)


def places(tmp: Path) -> Input:
    data = _csv(tmp / "boxes.csv", "id,name,lat,lon",
                [f"P{i},Box {i},37.5{i},127.0{i}" for i in range(6)], "P9,Nowhere,,")
    return Input([data], ["--kind", "patrol-point"], 7)


def osm(tmp: Path) -> Input:
    from tests.test_osm import write_osm

    nodes = {i: (128.60 + 0.001 * i, 35.87) for i in range(1, 8)}
    ways = [(10, [1, 2, 3], {"highway": "residential"}), (11, [3, 4, 5], {"highway": "primary"}),
            (12, [5, 6, 7], {"highway": "tertiary", "oneway": "yes"}),
            (13, [7, 99], {"highway": "residential"})]  # 99: a node the extract lacks
    return Input([write_osm(tmp / "city.osm", nodes, ways)], ["--network", "drive"], 4)


def greenbutton(tmp: Path) -> Input:
    from tests.test_greenbutton import (
        T0,
        _block,
        _feed,
        _meter_reading,
        _reading_type,
        _usage_point,
    )

    feed = _feed(tmp / "gb.xml", _usage_point(1), _meter_reading(1, 1, 1),
                 _reading_type(1, mult=-3), _block(1, 1, T0, ["1500", "2500", "x", "4000",
                                                            "500", "600"]))
    return Input([feed], [], 6)


def meter_readings(tmp: Path) -> Input:
    data = _csv(tmp / "ami.csv", "meter_id,timestamp,kwh",
                [f"M{i % 2},2025-03-01T{i // 2:02d}:00:00Z,{0.5 + i}" for i in range(6)],
                "M1,2025-03-01T09:00:00Z,lots")
    return Input([data], ["--interval", "3600"], 7)


def ev_sessions(tmp: Path) -> Input:
    header = ("Charging event,CP ID,Connector,Start Date,Start Time,End Date,End Time,"
              "Total kWh,Cost,Site,Group,Model")
    data = _csv(tmp / "council.csv", header,
                [f"{i},50{i % 2},1,05/06/2018,1{i}:00,05/06/2018,1{i}:30,{2 + i},0,Site,G,M"
                 for i in range(6)], "9,501,1,05/06/2018,10:00,05/06/2018,09:00,3,0,Site,G,M")
    return Input([data], [], 7)


#: Adapter name -> its small input, built in a fresh folder.
INPUTS: dict[str, Callable[[Path], Input]] = {
    "openaq": openaq, "airkorea": airkorea, "ngsi-ld": ngsi_ld,
    "ngsi-ld-broker": ngsi_ld_broker, "gtfs": gtfs, "gtfs-rt": gtfs_rt,
    "boardings": boardings, "population": population, "calls": calls, "places": places,
    "osm": osm, "greenbutton": greenbutton, "meter-readings": meter_readings,
    "ev-sessions": ev_sessions,
}
