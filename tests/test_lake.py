"""The lake's notion of a table."""

from __future__ import annotations

from pathlib import Path

from hubctl.lake import Lake
from tests.helpers import hub, hub_json, row, write_openaq


def test_a_table_folder_without_a_commit_is_not_a_table(tmp_path: Path) -> None:
    """A process killed between creating a table's folder and its first commit."""
    root = tmp_path / "lake"
    (root / "AirQualityObserved" / "_delta_log").mkdir(parents=True)
    (root / "derived" / "p" / "t" / "_delta_log").mkdir(parents=True)
    lake = Lake(root)
    assert not lake.exists("AirQualityObserved")
    assert lake.table_names() == [] and lake.derived_names() == []
    data, stations = write_openaq(tmp_path / "in", [row("S1", 1, "no2", 5)])
    result = hub(root, "ingest", "openaq", str(data), "--stations", str(stations))
    assert result.exit_code == 0, result.output
    assert hub_json(root, "sql", "SELECT count(*) AS n FROM AirQualityObserved") == [{"n": 1}]
