"""The greenbutton adapter: ESPI Atom XML streamed into MeterReadingObserved (kWh)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

GB = SAMPLE_DATA / "energy" / "greenbutton"
ESPI = "http://naesb.org/espi"
BASE = "https://utility.example/DataCustodian/espi/1_1/resource"


def _entry(href: str, up: str, body: str, related: str = "") -> str:
    rel = f'<link rel="related" href="{related}"/>' if related else ""
    return (f'<entry><id>urn:uuid:{abs(hash(href))}</id><link rel="self" href="{href}"/>'
            f'<link rel="up" href="{up}"/>{rel}<content>{body}</content></entry>')


def _reading_type(n: int, mult: int = 0, flow: int = 1, uom: int = 72) -> str:
    return _entry(f"{BASE}/ReadingType/{n}", f"{BASE}/ReadingType",
                  f'<ReadingType xmlns="{ESPI}"><currency>840</currency>'
                  f"<flowDirection>{flow}</flowDirection><intervalLength>3600</intervalLength>"
                  f"<powerOfTenMultiplier>{mult}</powerOfTenMultiplier><uom>{uom}</uom>"
                  "</ReadingType>")


def _block(point: int, mr: int, start: int, values: list[str], cost: bool = True) -> str:
    readings = "".join(
        f"<IntervalReading>{f'<cost>{i * 100}</cost>' if cost else ''}<timePeriod>"
        f"<duration>3600</duration><start>{start + 3600 * i}</start></timePeriod>"
        f"<value>{v}</value></IntervalReading>" for i, v in enumerate(values))
    up = f"{BASE}/RetailCustomer/1/UsagePoint/{point}/MeterReading/{mr}/IntervalBlock"
    return _entry(f"{up}/{start}", up,
                  f'<IntervalBlock xmlns="{ESPI}"><interval><duration>{3600 * len(values)}'
                  f"</duration><start>{start}</start></interval>{readings}</IntervalBlock>")


def _meter_reading(point: int, mr: int, rt: int) -> str:
    up = f"{BASE}/RetailCustomer/1/UsagePoint/{point}/MeterReading"
    return _entry(f"{up}/{mr}", up, f'<MeterReading xmlns="{ESPI}"/>',
                  related=f"{BASE}/ReadingType/{rt}")


def _usage_point(point: int) -> str:
    up = f"{BASE}/RetailCustomer/1/UsagePoint"
    return _entry(f"{up}/{point}", up, f'<UsagePoint xmlns="{ESPI}"><ServiceCategory><kind>0'
                  "</kind></ServiceCategory></UsagePoint>")


def _feed(path: Path, *entries: str) -> Path:
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>'
                    '<feed xmlns="http://www.w3.org/2005/Atom">' + "".join(entries) + "</feed>",
                    encoding="utf-8")
    return path


T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def test_multiplier_unit_flows_and_cost(tmp_path: Path) -> None:
    feed = _feed(tmp_path / "gb.xml",
                 _usage_point(1), _meter_reading(1, 1, 1), _reading_type(1, mult=-3),
                 _block(1, 1, T0, ["1500", "2500"]),
                 _meter_reading(1, 2, 2), _reading_type(2, mult=0, flow=19),
                 _block(1, 2, T0, ["40", "60"], cost=False),
                 _usage_point(2), _meter_reading(2, 1, 3), _reading_type(3, mult=3),
                 _block(2, 1, T0, ["2"]))
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "greenbutton", str(feed))
    assert run["read"] == 5 and run["written"] == 5 and run["reconciles"]
    rows = hub_json(lake, "sql", "SELECT id, epoch(observed_at) AS s, intervalLength AS len, "
                    "activeEnergyImport AS imp, activeEnergyExport AS exp, cost, currency "
                    "FROM MeterReadingObserved ORDER BY id, s")
    point1 = "urn:ngsi-ld:MeterReadingObserved:utility.example:RetailCustomer:1:UsagePoint:1"
    assert [r["id"] for r in rows] == [point1, point1, point1.replace("Point:1", "Point:2")]
    first, second, other = rows
    assert first["s"] == T0 and first["len"] == 3600
    assert first["imp"] == pytest.approx(1500e-3 / 1000)  # 1.5 Wh = 0.0015 kWh
    assert first["exp"] == pytest.approx(0.040)  # reverse flow: export, same row
    assert second["imp"] == pytest.approx(0.0025) and second["exp"] == pytest.approx(0.060)
    assert first["cost"] == 0 and second["cost"] == pytest.approx(100 / 100_000)
    assert second["currency"] == "USD"
    assert other["imp"] == pytest.approx(2.0)  # 2 x 10^3 Wh


def test_blocks_before_their_reading_type_wait_for_it(tmp_path: Path) -> None:
    feed = _feed(tmp_path / "late.xml", _block(1, 1, T0, ["100"]), _usage_point(1),
                 _meter_reading(1, 1, 1), _reading_type(1, mult=1))
    lake = tmp_path / "lake"
    assert hub_json(lake, "ingest", "greenbutton", str(feed))["written"] == 1
    [row] = hub_json(lake, "sql", "SELECT activeEnergyImport AS v FROM MeterReadingObserved")
    assert row["v"] == pytest.approx(1.0)


def test_non_energy_units_and_bad_values_are_rejected(tmp_path: Path) -> None:
    feed = _feed(tmp_path / "bad.xml",
                 _meter_reading(1, 1, 1), _reading_type(1, uom=38), _block(1, 1, T0, ["5"]),
                 _meter_reading(2, 1, 2), _reading_type(2), _block(2, 1, T0, ["x", "", "7"]),
                 _block(3, 1, T0, ["9"]), _reading_type(4), _reading_type(5))
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "greenbutton", str(feed))
    assert run["read"] == 5 and run["written"] == 1 and run["rejected"] == 4
    assert run["reconciles"]
    codes = sorted(r["codes"] for r in hub_json(lake, "rejects"))
    assert codes == ["malformed-record", "missing-required", "type-error", "unknown-unit"]
    messages = " ".join(r["reasons"][0]["message"] for r in hub_json(lake, "rejects"))
    assert "uom 38 (W)" in messages and "no ReadingType" in messages


def test_not_xml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.xml"
    bad.write_text("<feed><entry>", encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "greenbutton", str(bad))
    assert result.exit_code == 1 and "not well-formed XML" in result.output
    other = tmp_path / "y.xml"
    other.write_text("<html/>", encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "greenbutton", str(other))
    assert result.exit_code == 1 and "not a Green Button" in result.output


def _independent(path: Path) -> tuple[int, dict[str, float]]:
    """IntervalReadings and Wh per UTC day, straight from the XML (full parse, no adapter)."""
    ns = {"a": "http://www.w3.org/2005/Atom", "e": ESPI}
    root = ET.parse(path).getroot()
    rt = root.find(".//e:ReadingType", ns)
    assert rt is not None
    mult = int(rt.findtext("e:powerOfTenMultiplier", "0", ns))
    assert rt.findtext("e:uom", "", ns) == "72"
    days: dict[str, float] = defaultdict(float)
    count = 0
    for reading in root.iterfind(".//e:IntervalReading", ns):
        start = int(reading.findtext("e:timePeriod/e:start", "", ns))
        day = datetime.fromtimestamp(start, UTC).date().isoformat()
        days[day] += int(reading.findtext("e:value", "", ns)) * 10 ** mult
        count += 1
    return count, days


@needs_sample_data
@pytest.mark.parametrize("name", ["coastal-multi-family-2011-hourly.xml",
                                  "nine-days-hourly-binned-daily.xml"])
def test_green_button_samples_ingest_every_reading(tmp_path: Path, name: str) -> None:
    path = GB / name
    count, days = _independent(path)
    assert count == len(re.findall(r"<IntervalReading>", path.read_text(encoding="utf-8")))
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "greenbutton", str(path))
    assert run["read"] == count and run["written"] == count and run["rejected"] == 0
    got = hub_json(lake, "sql", "SELECT CAST(date AS VARCHAR) AS day, "
                   "sum(activeEnergyImport) * 1000 AS wh, count(*) AS n "
                   "FROM MeterReadingObserved GROUP BY date ORDER BY date")
    assert sum(r["n"] for r in got) == count
    assert {r["day"]: r["wh"] for r in got} == pytest.approx(dict(days))


@needs_sample_data
def test_both_samples_together_and_again(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    files = sorted(str(p) for p in GB.glob("*.xml"))
    first = hub_json(lake, "ingest", "greenbutton", *files)
    again = hub_json(lake, "ingest", "greenbutton", *files, "--force")
    assert first["written"] == 8760 + 216
    assert again["duplicate"] == first["written"] and again["written"] == 0
    meters = hub_json(lake, "sql", "SELECT count(DISTINCT id) AS n FROM MeterReadingObserved")
    assert meters == [{"n": 2}]
