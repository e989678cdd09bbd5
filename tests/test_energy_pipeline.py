"""The energy pipeline end to end: ingest small fixtures, run it, check against sums computed
independently here."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json

START = datetime(2025, 3, 3)  # a Monday
DAYS = 28
SPIKE = datetime(2025, 3, 12).date()


def _m1(t: datetime) -> float:
    if t.date() == SPIKE:
        return 5.0
    return 1.0 if 8 <= t.hour < 22 else 0.5


def _lake(tmp_path: Path, with_ev: bool = True) -> Path:
    lake = tmp_path / "lake"
    lines = ["meter_id,timestamp,kwh"]
    for h in range(DAYS * 24):
        t = START + timedelta(hours=h)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"M1,{stamp},{_m1(t)}", f"M2,{stamp},2.0"]
    ami = tmp_path / "ami.csv"
    ami.write_text("\n".join(lines) + "\n", encoding="utf-8")
    meters = tmp_path / "meters.csv"
    meters.write_text("meter,lat,lon,site\nM1,35.8,128.6,Hall\nM2,35.9,128.5,Hall\n",
                      encoding="utf-8")
    assert hub_json(lake, "ingest", "meter-readings", str(ami), "--meters", str(meters))[
        "written"] == DAYS * 24 * 2
    if with_ev:
        ev = tmp_path / "ev.csv"
        ev.write_text("session,charge_point,start,end,energy,site\n"
                      "s1,CP1,2025-03-03T08:00:00Z,2025-03-03T10:00:00Z,10,Hall\n"
                      "s2,CP1,2025-03-04T09:30:00Z,2025-03-04T10:30:00Z,5,Hall\n"
                      "s3,CP1,2025-03-05T12:00:00Z,,,Hall\n", encoding="utf-8")
        assert hub_json(lake, "ingest", "ev-sessions", str(ev))["written"] == 3
    return lake


def _run(lake: Path, *params: str) -> dict:
    args = [a for p in params for a in ("--param", p)]
    result = hub(lake, "run", "energy", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    lake = _lake(tmp_path_factory.mktemp("energy"))
    return lake, _run(lake, "population=1000")


def test_daily_totals_and_peak_split(ran: tuple[Path, dict]) -> None:
    lake, _ = ran
    rows = hub_json(lake, "sql", "SELECT meter, CAST(day AS VARCHAR) AS day, kwh, peak_kwh, "
                    "offpeak_kwh, readings FROM derived.energy_meter_daily ORDER BY meter, day")
    assert len(rows) == 2 * DAYS
    expected: dict[tuple[str, str], float] = {}
    for h in range(DAYS * 24):
        t = START + timedelta(hours=h)
        for meter, v in (("M1", _m1(t)), ("M2", 2.0)):
            key = (meter, t.date().isoformat())
            expected[key] = expected.get(key, 0.0) + v
    assert {(r["meter"], r["day"]): r["kwh"] for r in rows} == pytest.approx(expected)
    monday = next(r for r in rows if r["meter"] == "M1" and r["day"] == "2025-03-03")
    sunday = next(r for r in rows if r["meter"] == "M1" and r["day"] == "2025-03-09")
    assert (monday["peak_kwh"], monday["offpeak_kwh"], monday["readings"]) == (14.0, 5.0, 24)
    assert sunday["peak_kwh"] is None and sunday["offpeak_kwh"] == 19.0


def test_load_factor_base_load_and_anomaly(ran: tuple[Path, dict]) -> None:
    lake, result = ran
    meters = {r["meter"]: r for r in hub_json(
        lake, "sql", "SELECT * FROM derived.energy_meters ORDER BY meter")}
    values = [_m1(START + timedelta(hours=h)) for h in range(DAYS * 24)]
    assert meters["M1"]["load_factor"] == pytest.approx((sum(values) / len(values)) / 5.0)
    assert meters["M2"]["load_factor"] == pytest.approx(1.0)
    assert meters["M2"]["base_load_kw"] == pytest.approx(2.0)
    assert meters["M1"]["site"] == "Hall"
    [anomaly] = hub_json(lake, "sql", "SELECT meter, CAST(day AS VARCHAR) AS day, direction, "
                         "excess_kwh FROM derived.energy_anomalies")
    assert anomaly == {"meter": "M1", "day": SPIKE.isoformat(), "direction": "high",
                       "excess_kwh": pytest.approx(120.0 - 19.0)}
    assert result["summary"]["meters"]["anomalous_days"] == 1
    site = hub_json(lake, "sql", "SELECT sum(kwh) AS kwh FROM derived.energy_site_daily "
                    "WHERE site = 'Hall'")
    assert site[0]["kwh"] == pytest.approx(sum(values) + 2.0 * DAYS * 24)


def test_ev_occupancy_utilisation_and_kpis(ran: tuple[Path, dict]) -> None:
    lake, result = ran
    ev = result["summary"]["ev"]
    assert (ev["sessions"], ev["open_sessions"], ev["energy_kwh"]) == (3, 1, 15.0)
    window_hours = 2 * 24 + (13 - 8)  # Monday 08:00 to Wednesday 13:00
    assert ev["utilisation"] == pytest.approx(3.0 / window_hours, abs=1e-6)
    slots = {(r["weekday"], r["hour"]): r for r in hub_json(
        lake, "sql", "SELECT * FROM derived.energy_ev_hourly WHERE level = 'charge_point'")}
    assert slots[(1, 8)]["occupied_hours"] == 1.0 and slots[(1, 8)]["energy_kwh"] == 5.0
    assert slots[(2, 9)]["occupied_hours"] == 0.5 and slots[(2, 10)]["energy_kwh"] == 2.5
    assert slots[(3, 12)]["sessions"] == 1 and slots[(3, 12)]["occupied_hours"] == 0.0
    assert slots[(1, 8)]["available_hours"] == 1.0 and len(slots) == window_hours
    kwh = sum(_m1(START + timedelta(hours=h)) for h in range(DAYS * 24)) + 2.0 * DAYS * 24
    per_year = kwh * 365.25 / DAYS
    kpis = result["summary"]["kpis"]
    assert kpis["electricity_kwh_per_capita_year"] == pytest.approx(per_year / 1000, rel=1e-6)
    assert kpis["ev_energy_ratio"] == pytest.approx(
        (15.0 * 365.25 * 24 / window_hours) / per_year, rel=1e-5)


def test_tariff_windows_timezone_and_asserts(tmp_path: Path) -> None:
    lake = _lake(tmp_path, with_ev=False)
    out = _run(lake, "timezone=Asia/Seoul", "peak_windows=22-02", "peak_weekends=true")
    assert out["tables"]["ev_hourly"]["rows"] == 0 and out["summary"]["kpis"] == {
        "electricity_kwh_per_year": pytest.approx(out["summary"]["meters"]["kwh_per_year"])}
    # 22:00-02:00 in Seoul is 13:00-17:00 UTC, every day of the week.
    hours = [START + timedelta(hours=h) for h in range(DAYS * 24)]
    peak = sum(_m1(t) + 2.0 for t in hours if 13 <= t.hour < 17)
    total = sum(_m1(t) + 2.0 for t in hours)
    assert out["summary"]["meters"]["peak_share"] == pytest.approx(peak / total, abs=1e-6)
    failed = hub(lake, "run", "energy", "--assert", "meters.anomalous_days == 0")
    assert failed.exit_code == 1 and "meters.anomalous_days" in failed.output
    bad = hub(lake, "run", "energy", "--param", "peak_windows=8am-noon")
    assert bad.exit_code == 2 and "08-22" in bad.output
    bad_tz = hub(lake, "run", "energy", "--param", "timezone=Mars/Olympus")
    assert bad_tz.exit_code == 2 and "time zone" in bad_tz.output


def test_ev_only_lake_and_population_from_the_lake(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ev = tmp_path / "ev.csv"
    ev.write_text("session,charge_point,start,end,energy\n"
                  "s1,CP1,2025-03-03T08:00:00Z,2025-03-03T10:00:00Z,10\n", encoding="utf-8")
    hub_json(lake, "ingest", "ev-sessions", str(ev))
    cells = tmp_path / "cells.csv"
    cells.write_text("lat,lon,population\n35.87,128.60,1500\n35.88,128.61,2500\n",
                     encoding="utf-8")
    hub_json(lake, "ingest", "population", str(cells), "--dataset", "census")
    out = _run(lake)
    assert out["tables"]["meter_daily"]["rows"] == 0 and "meters" not in out["summary"]
    assert out["summary"]["population"] == {"value": 4000.0, "source": "PopulationCell:census"}
    per_capita = out["summary"]["kpis"]["ev_charging_kwh_per_capita_year"]
    assert per_capita == pytest.approx(10.0 * 365.25 * 24 / 2 / 4000, rel=1e-5)
    assert any("MeterReadingObserved" in n for n in out["notes"])


@needs_sample_data
def test_summary_load_factor_is_average_over_peak_of_the_year(tmp_path: Path) -> None:
    """One real Green Button meter (a year of hourly readings): the summary's load factor is
    its annual average load over its annual peak, computed here from the file itself."""
    import xml.etree.ElementTree as ET

    path = SAMPLE_DATA / "energy" / "greenbutton" / "coastal-multi-family-2011-hourly.xml"
    lake = tmp_path / "lake"
    hub_json(lake, "ingest", "greenbutton", str(path))
    out = _run(lake, "population=1000")
    ns = {"espi": "http://naesb.org/espi"}
    root = ET.parse(path).getroot()
    power = int(root.find(".//espi:ReadingType/espi:powerOfTenMultiplier", ns).text or 0)
    kw, hours = [], 0.0
    for reading in root.iter("{http://naesb.org/espi}IntervalReading"):
        secs = int(reading.find("espi:timePeriod/espi:duration", ns).text)
        wh = int(reading.find("espi:value", ns).text) * 10.0 ** power
        kw.append(wh / 1000 / (secs / 3600))
        hours += secs / 3600
    expected = (sum(k * 1.0 for k in kw) / len(kw)) / max(kw)
    meters = out["summary"]["meters"]
    assert meters["meters"] == 1
    assert meters["load_factor"] == pytest.approx(expected, rel=1e-4)
    assert meters["monthly_load_factor_median"] > meters["load_factor"]
    row = hub_json(lake, "sql", "SELECT load_factor FROM derived.energy_meters")
    assert row[0]["load_factor"] == pytest.approx(expected, rel=1e-4)
