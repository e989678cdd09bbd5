"""The catalog: the read-only connection of `hubctl sql`, and catalog files that follow the lake."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from hubctl import catalog as catalog_module
from hubctl import lake as lake_module
from hubctl.duck import connect, lock, restrict
from tests.helpers import hub, hub_json, row, write_openaq

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    """A lake with AirQualityObserved (date-partitioned), PointOfInterest (a list column)
    and the run ledger."""
    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", 10 + h) for h in range(6)]
                            + [row("S2", 1, "pm25", 3)])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--stations", str(st))
    assert result.exit_code == 0, result.output
    return tmp_path / "lake"


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its content (but hubctl's snapshot
    cache, ``_cache/``, which holds no table data: see hubctl/snapshot.py)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != "_cache"}


def _counts(lake: Path) -> dict[str, int]:
    return {t["table"]: t["rows"] for t in hub_json(lake, "tables")}


def test_sql_cannot_change_the_lake_or_the_machine(lake: Path, tmp_path: Path) -> None:
    """Each hole of issue 13 is refused, and the lake's rows and files are unchanged."""
    parquet = next((lake / "AirQualityObserved").rglob("*.parquet"))
    log = lake / "_runs" / "_delta_log" / "00000000000000000099.json"
    outside = tmp_path / "outside"
    holes = {
        f"COPY (SELECT 1 junk) TO '{parquet}' (FORMAT parquet)": "COPY",
        f"COPY (SELECT 1) TO '{log}'": "COPY",
        f"COPY (SELECT 1) TO '{outside}.csv'": "COPY",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{parquet}' (FORMAT parquet)": "EXPLAIN",
        f"ATTACH '{outside}.duckdb'": "ATTACH",
        f"ATTACH '{lake / 'AirQualityObserved' / 'x.duckdb'}'": "ATTACH",
        "SELECT * FROM read_csv('/etc/passwd')": "Cannot access file",
        f"SELECT * FROM read_parquet('{lake}/*/*.parquet')": "Cannot access file",
        "SET autoinstall_known_extensions = true": "SET",
        "INSTALL httpfs": "INSTALL",
        "LOAD httpfs": "LOAD",
        f"EXPORT DATABASE '{outside}'": "EXPORT",
        f"EXPORT DATABASE '{lake / 'AirQualityObserved'}'": "EXPORT",
        "CREATE TABLE t AS SELECT 1": "CREATE",
        "SELECT 1; SET enable_external_access = true": "SET",
    }
    counts, files = _counts(lake), _fingerprint(lake)
    for sql, why in holes.items():
        result = hub(lake, "sql", sql)
        assert result.exit_code == 1, (sql, result.output)
        assert why in result.output and "Traceback" not in result.output, (sql, result.output)
    assert _fingerprint(lake) == files
    assert _counts(lake) == counts
    assert not any(tmp_path.glob("outside*"))
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved") == [{"n": 7}]


def test_sql_pivot_without_in_is_refused_with_a_way_out(lake: Path) -> None:
    """DuckDB runs a PIVOT without IN (...) as several statements, of which one creates a
    type: refused like any change, with a hint that names the form that runs."""
    result = hub(lake, "sql", "PIVOT AirQualityObserved ON areaServed USING count(*)")
    assert result.exit_code == 1 and "MULTI statements are refused" in result.output
    assert "PIVOT without IN (...)" in result.output, result.output
    rows = hub_json(lake, "sql", "PIVOT (SELECT id, NO2 FROM AirQualityObserved) "
                    "ON id IN ('urn:ngsi-ld:AirQualityObserved:S1') USING count(NO2)")
    assert rows == [{"urn:ngsi-ld:AirQualityObserved:S1": 6}]


def test_the_settings_refuse_on_their_own(lake: Path, tmp_path: Path) -> None:
    """Behind the statement check, DuckDB itself refuses reads outside the allowed folders,
    ATTACH, extensions and setting changes once the connection is restricted and locked."""
    con = connect()
    restrict(con, [str(lake / "AirQualityObserved")])
    lock(con)
    files = list((lake / "AirQualityObserved").rglob("*.parquet"))
    assert con.execute(f"SELECT count(*) FROM read_parquet('{files[0]}')").fetchone()
    for sql in [f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'",
                "SELECT * FROM read_csv('/etc/passwd')",
                f"SELECT * FROM read_parquet('{lake}/PointOfInterest/*.parquet')",
                f"ATTACH '{tmp_path / 'x.duckdb'}'", "INSTALL httpfs", "LOAD httpfs",
                "SET autoinstall_known_extensions = true", "SET enable_external_access = true",
                "RESET lock_configuration", "PRAGMA threads = 1"]:
        with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
            con.execute(sql)
    assert not list(tmp_path.glob("x.*"))


def test_sql_cannot_read_duckdbs_default_spill_folder(lake: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB allows its spill folder, by default `.tmp` in the working directory: a user's
    SQL must not read what is kept there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text("secret")
    result = hub(lake, "sql", "SELECT content FROM read_text('.tmp/secret.txt')")
    assert result.exit_code == 1 and "Cannot access file" in result.output, result.output
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved") == [{"n": 7}]


def test_sql_opens_only_the_tables_it_names(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = catalog_module.Catalog._add

    def spy(self: catalog_module.Catalog, table: catalog_module._Table) -> None:
        opened.append(table.view)
        real(self, table)

    monkeypatch.setattr(catalog_module.Catalog, "_add", spy)
    rows = hub_json(lake, "sql", "SELECT count(*) AS n FROM airqualityobserved_latest")
    assert rows == [{"n": 2}] and opened == ["AirQualityObserved"]
    opened.clear()
    rows = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved a JOIN "
                    "PointOfInterest p USING (id) WHERE a.id IN (SELECT id FROM _runs)")
    assert rows == [{"n": 0}] and sorted(opened) == ["AirQualityObserved", "PointOfInterest",
                                                     "_runs"]
    opened.clear()
    names = {r["name"] for r in hub_json(lake, "sql", "SHOW TABLES")}
    assert {"AirQualityObserved", "PointOfInterest_latest", "_runs"} <= names
    assert len(opened) == 3


def test_sql_output_files_and_csv_lists(lake: Path, tmp_path: Path) -> None:
    q = "SELECT id, category, {'a': 1, 'b': [2, 3]} AS s FROM PointOfInterest ORDER BY id"
    out = hub(lake, "sql", q, "--format", "csv")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert json.loads(rows[0]["category"]) == ["airQualityStation"]
    assert json.loads(rows[0]["s"]) == {"a": 1, "b": [2, 3]}
    for fmt in ("csv", "json", "parquet"):
        target = tmp_path / f"out.{fmt}"
        assert hub(lake, "sql", q, "--format", fmt, "--output", str(target)).exit_code == 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == len(rows) == 3
    assert len(json.loads((tmp_path / "out.json").read_text())) == 3
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "id,category,s"


def _query_file(db: Path, sql: str, cwd: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    old = Path.cwd()
    try:
        os.chdir(cwd)
        return con.execute(sql).fetchall()
    finally:
        os.chdir(old)
        con.close()


def test_catalog_file_survives_ingest_compact_vacuum_and_a_move(lake: Path, tmp_path: Path
                                                                 ) -> None:
    db = lake / "city.duckdb"
    assert hub(lake, "catalog", str(db)).exit_code == 0
    count = "SELECT count(*), count(DISTINCT date) FROM AirQualityObserved"
    assert _query_file(db, count, lake) == [(7, 1)]
    more, st = write_openaq(tmp_path / "more", [
        ["X", "XX", f"2024-05-0{d} 0{h}:00:00+00:00", "S1", "no2", 1, "µg/m³"]
        for d in (2, 3) for h in range(3)])
    for _ in range(2):  # several small files per partition to compact
        assert hub(lake, "ingest", "openaq", str(more), "--stations", str(st),
                   "--force").exit_code == 0
    assert _query_file(db, count, lake) == [(13, 3)]
    assert hub(lake, "lake", "compact").exit_code == 0
    assert hub(lake, "lake", "vacuum", "--retention-hours", "0").exit_code == 0
    assert _query_file(db, count, lake) == [(13, 3)]
    runs = _query_file(db, "SELECT count(*) FROM _runs", lake)[0][0]
    assert isinstance(runs, int) and runs >= 3
    moved = tmp_path / "elsewhere" / "lake"
    moved.parent.mkdir()
    shutil.move(str(lake), moved)
    assert _query_file(moved / "city.duckdb", count, moved) == [(13, 3)]


def test_absolute_catalog_follows_a_moved_lake_at_the_next_command(lake: Path, tmp_path: Path
                                                                   ) -> None:
    db = lake / "abs.duckdb"
    assert hub(lake, "catalog", str(db), "--absolute").exit_code == 0
    moved = tmp_path / "moved"
    shutil.move(str(lake), moved)
    with pytest.raises(duckdb.IOException, match="No files found"):
        _query_file(moved / "abs.duckdb", "SELECT count(*) FROM AirQualityObserved", tmp_path)
    assert hub(moved, "tables").exit_code == 0  # any command on the moved lake rewrites it
    assert _query_file(moved / "abs.duckdb", "SELECT count(*) FROM AirQualityObserved",
                       tmp_path) == [(7,)]


def test_catalog_follows_runs_of_the_engine_without_the_cli(lake: Path, tmp_path: Path) -> None:
    """A long-running process (`hubctl schedule run`, `listen`) runs sources in-process: the
    catalog follows each run's ledger row, not only the end of a command."""
    from hubctl.lake import Lake
    from hubctl.orchestrate import ingest_request, run_request

    db = lake / "city.duckdb"
    assert hub(lake, "catalog", str(db)).exit_code == 0
    data, st = write_openaq(tmp_path / "api", [row("S2", 9, "no2", 4)])
    run_request(Lake(lake), ingest_request("openaq", [str(data)], {"stations": st}))
    assert _query_file(db, "SELECT count(*) FROM AirQualityObserved", lake) == [(8,)]


def test_catalog_file_is_forgotten_when_deleted(lake: Path, tmp_path: Path) -> None:
    db = tmp_path / "gone.duckdb"
    assert hub(lake, "catalog", str(db), "--absolute").exit_code == 0
    assert _query_file(db, "SELECT count(*) FROM PointOfInterest", tmp_path) == [(3,)]
    db.unlink()
    assert hub(lake, "lake", "compact").exit_code == 0
    assert json.loads((lake / catalog_module.REGISTRY).read_text()) == {"catalogs": []}
    assert not db.exists()


def test_derived_name_is_the_lakes() -> None:
    assert catalog_module.DERIVED == lake_module.DERIVED


def _previous_duckdb() -> Path | None:
    env = os.environ.get("HUBCTL_DUCKDB_PREVIOUS_PYTHON")
    path = Path(env) if env else ROOT / ".venv-duckdb-previous" / "bin" / "python"
    return path if path.exists() else None


@pytest.mark.skipif(_previous_duckdb() is None,
                    reason="no .venv-duckdb-previous (`make test` creates it with the previous "
                           "DuckDB minor release from PyPI)")
def test_previous_duckdb_release_opens_the_catalog(lake: Path) -> None:
    db = lake / "city.duckdb"
    assert hub(lake, "catalog", str(db)).exit_code == 0
    python = _previous_duckdb()
    assert python is not None
    probe = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
             "print(duckdb.__version__, con.execute('SELECT count(*) FROM "
             "AirQualityObserved_latest').fetchone()[0])")
    done = subprocess.run([str(python), "-c", probe, str(db)], cwd=lake, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    version, latest = done.stdout.split()
    release = catalog_module.STORAGE_COMPATIBILITY.lstrip("v").split(".")[:2]
    assert version.split(".")[:2] == release, (version, catalog_module.STORAGE_COMPATIBILITY)
    assert latest == "2"
