"""hubctl's CAI against the CAI AirKorea itself published, on real AirKorea responses
(tests/fixtures/airkorea, sources in their ``_source`` fields and README).

AirKorea's real-time CAI takes PM10 and PM2.5 as its "24-hour predicted moving average"
(pm10Value24, pm25Value24), not the hour's value; with ``cai_pm=reported`` hubctl uses those
published PM inputs and computes every sub-index, the bonus and the grade itself. Every
station-hour whose inputs are complete must be within one index point of ``khaiValue`` and
have the same grade as ``khaiGrade``, and each sub-index the grade AirKorea gave that pollutant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import hub, hub_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "airkorea"
FILES = ("bokjeong-2020-10-28.json", "jeongneung-2025-11-26.json")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("airkorea") / "lake"
    run = hub_json(lake, "ingest", "airkorea", *[str(FIXTURES / f) for f in FILES],
                   "--stations", str(FIXTURES / "stations.csv"))
    assert run["written"] == 2 + 11 and run["rejected"] == 0  # 2 stations, 11 station-hours
    return lake


def _run(lake: Path, *params: str) -> dict[str, Any]:
    args = [a for p in params for a in ("--param", p)]
    result = hub(lake, "run", "air_quality", "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _published(lake: Path) -> list[dict[str, Any]]:
    return list(hub_json(lake, "sql", """
        SELECT i.id, CAST(i.observed_at AS VARCHAR) AS t, i.cai, i.cai_grade, i.cai_pollutant,
               i.cai_pm25, i.cai_pm10, i.cai_o3, i.cai_no2, i.cai_co, i.cai_so2,
               o.reportedCai, o.reportedCaiGrade, o.reportedPm25Grade, o.reportedPm10Grade,
               o.reportedO3Grade, o.reportedNo2Grade, o.reportedCoGrade, o.reportedSo2Grade
        FROM derived.air_quality_indices i JOIN AirQualityObserved o
             ON o.id = i.id AND o.observed_at = i.observed_at
        ORDER BY i.id, i.observed_at"""))


def _grade(sub: int | None) -> int | None:
    return None if sub is None else 1 if sub <= 50 else 2 if sub <= 100 else 3 if sub <= 250 \
        else 4


def test_cai_within_one_point_and_same_grade_as_airkorea(lake: Path) -> None:
    out = _run(lake, "cai_pm=reported", "timezone=Asia/Seoul")
    rows = _published(lake)
    assert len(rows) == 11
    for r in rows:
        assert r["cai"] is not None, r  # every input of these hours is complete
        assert abs(r["cai"] - r["reportedCai"]) <= 1, r
        assert r["cai_grade"] == r["reportedCaiGrade"], r
        for p in ("pm25", "pm10", "o3", "no2", "co", "so2"):
            reported = r[f"reported{p.capitalize()}Grade"]
            assert _grade(r[f"cai_{p}"]) == reported, (p, r)
    assert out["summary"]["reported"] == {"hours_with_both": 11, "cai_within_1": 11,
                                          "same_grade": 11}


def test_two_unhealthy_pollutants_add_50(lake: Path) -> None:
    _run(lake, "cai_pm=reported")
    (r,) = [r for r in _published(lake) if r["t"].startswith("2020-10-28 01:00")]  # 10:00 KST
    # published: PM2.5 24-h 40 µg/m³ and NO2 0.061 ppm both 'unhealthy' (나쁨), khaiValue 166
    assert (r["cai_pm25"], r["cai_no2"]) == (116, 101)
    assert r["cai"] == 116 + 50 == r["reportedCai"]


def test_own_predicted_moving_average_needs_its_hours(lake: Path) -> None:
    """With hubctl's own C24E the first hours of the series lack the 9 of 12 hours it needs:
    the CAI is null with the reason, never a guess."""
    _run(lake, "cai_pm=c24e")
    rows = list(hub_json(lake, "sql", """
        SELECT cai, cai_reason, CAST(observed_at AS VARCHAR) AS t FROM
        derived.air_quality_indices ORDER BY id, observed_at"""))
    first = rows[0]
    assert first["cai"] is None
    assert first["cai_reason"].startswith("pm25: 24-hour predicted moving average needs 9 of "
                                          "the last 12 hours and 3 of the last 4, has 1 of 12")
    assert [r["cai"] is None for r in rows[:10]] == [True] * 8 + [False] * 2
