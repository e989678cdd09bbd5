"""The demo city: a small, seeded air-quality data set in real source formats.

``hubctl demo`` writes it with a hub.toml that declares one source per format, ingests them
through the real adapters and prints what is in the lake. The data is synthetic (seeded, so
every run is the same) but every file follows the layout its real publisher uses.
"""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["DEMO_PIPELINE", "HUB_TOML", "write_demo"]

# (name, lat, lon): real districts of Daegu and a few European stations.
KOREAN_STATIONS = [("수창동", 35.8741, 128.5927), ("대명동", 35.8505, 128.5753),
                   ("이현동", 35.8791, 128.5567), ("지산동", 35.8232, 128.6332),
                   ("신암동", 35.8843, 128.6240)]
EU_STATIONS = [("BETR801", 51.20966, 4.43182), ("FR04014", 48.83724, 2.3939),
               ("London Westminster", 51.49467, -0.13193)]
START = datetime(2024, 5, 1, tzinfo=UTC)


def _diurnal(hour: int, base: float, rng: random.Random) -> float:
    return max(0.0, base * (1 + 0.4 * math.sin((hour - 8) / 24 * 2 * math.pi))
               + rng.gauss(0, base * 0.15))


def _openaq(folder: Path, hours: int, rng: random.Random) -> None:
    with open(folder / "openaq_long.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["city", "country", "date.utc", "location", "parameter", "value", "unit"])
        for name, *_ in EU_STATIONS:
            for h in range(hours):
                ts = (START + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S+00:00")
                w.writerow(["Demo", "EU", ts, name, "no2", round(_diurnal(h % 24, 30, rng), 1),
                            "µg/m³"])
                if h % 3 == 0:
                    w.writerow(["Demo", "EU", ts, name, "pm25",
                                round(_diurnal(h % 24, 12, rng), 1), "µg/m³"])
        w.writerow(["Demo", "EU", "not a date", "BETR801", "no2", "12", "µg/m³"])
        w.writerow(["Demo", "EU", START.strftime("%Y-%m-%d %H:%M:%S+00:00"), "BETR801", "no2",
                    "-3", "µg/m³"])
    with open(folder / "openaq_stations.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["location", "coordinates.latitude", "coordinates.longitude"])
        w.writerows(EU_STATIONS)


def _airkorea(folder: Path, hours: int, rng: random.Random) -> None:
    items = []
    for name, *_ in KOREAN_STATIONS:
        for h in range(1, hours + 1):
            kst = START + timedelta(hours=9 + h - 1)
            hh = kst.hour or 24
            day = kst if kst.hour else kst - timedelta(days=1)
            pm10 = round(_diurnal(h % 24, 40, rng))
            items.append({
                "stationName": name, "mangName": "도시대기", "sidoName": "대구",
                "dataTime": f"{day:%Y-%m-%d} {hh:02d}:00",
                "pm10Value": str(pm10), "pm25Value": str(round(pm10 * 0.55)),
                "no2Value": f"{_diurnal(h % 24, 0.02, rng):.3f}",
                "o3Value": f"{_diurnal((h + 12) % 24, 0.03, rng):.3f}",
                "coValue": f"{_diurnal(h % 24, 0.4, rng):.1f}",
                "so2Value": "-" if h % 7 == 0 else f"{_diurnal(h % 24, 0.003, rng):.3f}",
                "khaiValue": str(50 + pm10 // 2), "khaiGrade": "2" if pm10 > 30 else "1",
                "pm10Grade": "2", "pm25Grade": "2", "pm10Flag": None, "so2Flag": None,
            })
    doc = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_CODE"},
                        "body": {"totalCount": len(items), "items": items, "pageNo": 1,
                                 "numOfRows": len(items)}}}
    (folder / "airkorea_daegu.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1),
                                                encoding="utf-8")
    stations = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_CODE"},
                             "body": {"items": [{"stationName": n, "addr": f"대구광역시 {n}",
                                                 "mangName": "도시대기", "dmX": str(lat),
                                                 "dmY": str(lon)}
                                                for n, lat, lon in KOREAN_STATIONS]}}}
    (folder / "airkorea_stations.json").write_text(json.dumps(stations, ensure_ascii=False),
                                                   encoding="utf-8")


def _ngsi_ld(folder: Path, hours: int, rng: random.Random) -> None:
    ctx = ["https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
           "context.jsonld"]
    with open(folder / "broker_export.jsonl", "w", encoding="utf-8") as f:
        for h in range(0, hours, 6):
            ts = (START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
            entity = {"id": "urn:ngsi-ld:AirQualityObserved:DaeguSensor-7", "type":
                      "AirQualityObserved", "dateObserved": ts,
                      "location": {"type": "Point", "coordinates": [128.6014, 35.8714]},
                      "pm10": round(_diurnal(h % 24, 35, rng), 1),
                      "temperature": round(18 + 6 * math.sin(h / 24 * 2 * math.pi), 1),
                      "@context": ctx}
            f.write(json.dumps(entity) + "\n")


# Daegu police boxes (지구대) and where 112 calls cluster: (lon, lat, share of calls).
_PATROL = [("중부지구대", 128.5960, 35.8690), ("동인지구대", 128.6080, 35.8640),
           ("수성지구대", 128.6300, 35.8580), ("신암지구대", 128.6210, 35.8830)]
_HOTSPOTS = [(128.5935, 35.8685, 0.35), (128.6015, 35.8755, 0.25), (128.6255, 35.8555, 0.2),
             (128.5800, 35.8600, 0.2)]
_KINDS = ["폭력", "절도", "교통사고", "소음", "주취자", "분실물"]


def _calls(folder: Path, hours: int, rng: random.Random) -> None:
    """A 112 call log with Korean headers (the korea-112 profile), and the patrol points."""
    with open(folder / "daegu_112.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["접수번호", "접수일시", "사건종별", "위도", "경도", "출동일시", "도착일시"])
        for i in range(hours * 25):
            lon, lat, _ = rng.choices(_HOTSPOTS, weights=[h[2] for h in _HOTSPOTS])[0]
            at = datetime(2024, 5, 1) + timedelta(minutes=rng.randrange(hours * 60))
            sent = at + timedelta(seconds=rng.randrange(30, 180))
            came = sent + timedelta(seconds=rng.randrange(120, 900))
            w.writerow([f"D{i:06d}", f"{at:%Y-%m-%d %H:%M:%S}", rng.choice(_KINDS),
                        round(lat + rng.gauss(0, 0.002), 6), round(lon + rng.gauss(0, 0.002), 6),
                        f"{sent:%Y-%m-%d %H:%M:%S}", f"{came:%Y-%m-%d %H:%M:%S}"])
    with open(folder / "daegu_patrol_points.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "lat", "lon"])
        w.writerows([name, lat, lon] for name, lon, lat in _PATROL)


HUB_TOML = """# The demo city (written by `hubctl demo`). Paths are relative to this file.
[lake]
path = "lake"

[sources.eu-air]
adapter = "openaq"
inputs = ["data/openaq_long.csv"]
options = { stations = "data/openaq_stations.csv" }

[sources.daegu-air]
adapter = "airkorea"
inputs = ["data/airkorea_daegu.json"]
options = { stations = "data/airkorea_stations.json" }

[sources.broker]
adapter = "ngsi-ld"
inputs = ["data/broker_export.jsonl"]

[sources.daegu-112]
adapter = "calls"
inputs = ["data/daegu_112.csv"]
options = { profile = "korea-112" }

[sources.daegu-patrol]
adapter = "places"
inputs = ["data/daegu_patrol_points.csv"]
options = { kind = "patrol-point" }

# Who publishes the open data, and the bundle `hubctl export city` writes (docs/export.md).
[publisher]
name = "Demo City data team"
url = "https://example.org/demo-city"
email = "opendata@example.org"
licence = "CC-BY-4.0"

[exports.city]
title = "Demo City open data"
description = "Air quality, 112 calls per grid cell and day, and the patrol-point analysis."
tables = ["AirQualityObserved", "Alert", "PointOfInterest", "derived.patrol_points_hotspots",
          "derived.patrol_points_points", "derived.patrol_points_coverage"]
to = "open-data/city"
keywords = ["air quality", "public safety", "Daegu"]
frequency = "DAILY"
privacy = { Alert = { bucket = "day" } }
"""


#: The analysis `hubctl demo` runs on the demo lake, with its parameters.
DEMO_PIPELINE = ("patrol_points", ("k=4", "timezone=Asia/Seoul"))


def write_demo(folder: Path, hours: int = 72, seed: int = 7) -> Path:
    """Write the demo data and its hub.toml under ``folder``; returns the hub.toml path."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    _openaq(data, hours, rng)
    _airkorea(data, hours, rng)
    _ngsi_ld(data, hours, rng)
    _calls(data, hours, rng)
    config = folder / "hub.toml"
    config.write_text(HUB_TOML, encoding="utf-8")
    return config
