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


def test_every_file_the_hub_writes_is_zstd(tmp_path: Path) -> None:
    """Appends, merges, the ledger, rejects, compaction and derived tables all write ZSTD."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "lake"
    data, stations = write_openaq(tmp_path / "in", [row("S1", 1, "no2", 5), row("S2", 1, "no2", 6),
                                                    row("S1", 2, "no2", "oops")])
    assert hub(root, "ingest", "openaq", str(data), "--stations", str(stations)).exit_code in (0, 4)
    changed, _ = write_openaq(tmp_path / "in2", [row("S1", 1, "no2", 7)])
    assert hub(root, "ingest", "openaq", str(changed), "--stations", str(stations)).exit_code == 0
    assert hub(root, "lake", "compact").exit_code == 0
    Lake(root).replace("derived/p/t", pa.table({"x": [1.5, 2.5]}))
    files = sorted(root.rglob("*.parquet"))
    tables = {f.relative_to(root).parts[0] for f in files}
    assert {"AirQualityObserved", "_runs", "_rejects", "derived"} <= tables
    for f in files:
        if "_delta_log" in f.parts:
            continue
        meta = pq.ParquetFile(f).metadata
        codecs = {meta.row_group(g).column(c).compression
                  for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
        assert codecs == {"ZSTD"}, (f, codecs)
