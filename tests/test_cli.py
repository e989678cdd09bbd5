"""CLI commands over a small lake: sql formats, tables, rejects, catalog, lake maintenance,
init and hub.toml sources."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hubctl.cli import cli
from tests.helpers import hub, hub_json, row, write_openaq


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", 10 + h) for h in range(6)]
                            + [row("S2", 1, "pm25", 3), row("S2", 2, "pm25", -1)])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--stations", str(st))
    assert result.exit_code == 0, result.output
    return tmp_path / "lake"


def test_sql_formats(lake: Path, tmp_path: Path) -> None:
    q = "SELECT id, no2 FROM AirQualityObserved WHERE no2 IS NOT NULL ORDER BY observed_at"
    assert len(hub_json(lake, "sql", q)) == 6
    lines = hub(lake, "sql", q, "--format", "jsonl").stdout.splitlines()
    assert json.loads(lines[0])["no2"] == 10.0 and len(lines) == 6
    csv_out = hub(lake, "sql", q, "--format", "csv").stdout.splitlines()
    assert csv_out[0] == 'id,no2' and len(csv_out) == 7
    table = hub(lake, "sql", q).stdout
    assert "urn:ngsi-ld:AirQualityObserved:S1" in table
    out = tmp_path / "x.parquet"
    assert hub(lake, "sql", q, "--format", "parquet", "--output", str(out)).exit_code == 0
    assert pq.read_table(out).num_rows == 6
    assert hub(lake, "sql", q, "--format", "parquet").exit_code == 2


def test_sql_errors_are_translated(lake: Path) -> None:
    result = hub(lake, "sql", "SELECT * FROM Nope")
    assert result.exit_code == 1 and "unknown table" in result.output
    assert "hubctl tables" in result.output
    assert "syntax" in hub(lake, "sql", "SELEC 1").output


def test_latest_view_keeps_the_newest_row_per_id(lake: Path) -> None:
    rows = hub_json(lake, "sql", "SELECT id, hour(observed_at) AS h FROM AirQualityObserved_latest"
                    " ORDER BY id")
    assert rows == [{"id": "urn:ngsi-ld:AirQualityObserved:S1", "h": 5},
                    {"id": "urn:ngsi-ld:AirQualityObserved:S2", "h": 1}]


def test_tables_lists_rows_time_span_and_last_run(lake: Path) -> None:
    stats = {t["table"]: t for t in hub_json(lake, "tables")}
    aq = stats["AirQualityObserved"]
    assert aq["rows"] == 7 and aq["ids"] == 2 and "pm25" in aq["attributes"]
    assert aq["from"].startswith("2024-05-01T00:00") and aq["last_run"]
    assert stats["_runs"]["rows"] == 1 and stats["_rejects"]["rows"] == 1
    assert 0 < aq["bytes"] <= aq["disk_bytes"] and aq["files"] >= 1
    assert "on disk" in hub(lake, "tables").stderr


def test_rejects_lists_reasons_and_raw(lake: Path) -> None:
    rej = hub_json(lake, "rejects", "AirQualityObserved")
    assert len(rej) == 1 and rej[0]["codes"] == "below-minimum"
    assert '"value": "-1"' in rej[0]["raw"]
    assert hub_json(lake, "rejects", "PointOfInterest") == []


def test_catalog_file_is_queryable_by_plain_duckdb(lake: Path, tmp_path: Path) -> None:
    db = tmp_path / "city.duckdb"
    result = hub(lake, "catalog", str(db), "--absolute")  # from any working directory
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True,
                         config={"autoinstall_known_extensions": False})
    assert con.execute("SELECT count(*) FROM AirQualityObserved").fetchone() == (7,)
    assert con.execute("SELECT count(*) FROM AirQualityObserved_latest").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM _runs").fetchone() == (1,)
    con.close()


def test_lake_compact_vacuum_history(lake: Path, tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path / "more", [row("S1", 7, "no2", 1)])
    hub(lake, "ingest", "openaq", str(data), "--stations", str(st))
    before = hub_json(lake, "sql", "SELECT count(*) AS n, sum(no2) AS s FROM AirQualityObserved")
    hist = hub_json(lake, "lake", "history", "AirQualityObserved")
    assert hist[0]["version"] == 2 and hist[0]["operation"] == "WRITE"  # new keys: appended
    assert hub(lake, "lake", "compact", "AirQualityObserved").exit_code == 0
    vac = hub_json(lake, "lake", "vacuum", "AirQualityObserved", "--retention-hours", "0")
    assert vac[0]["files"] >= 1
    after = hub_json(lake, "sql", "SELECT count(*) AS n, sum(no2) AS s FROM AirQualityObserved")
    assert after == before
    assert hub(lake, "lake", "history", "Nope").exit_code == 1


def test_init_and_sources_from_hub_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUBCTL_LAKE", raising=False)
    from click.testing import CliRunner

    from hubctl.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    assert "[sources.eu-air]" in (tmp_path / "hub.toml").read_text()
    assert runner.invoke(cli, ["init"]).exit_code == 2  # exists
    write_openaq(tmp_path / "data", [row("S1", 1, "no2", 5)])
    (tmp_path / "hub.toml").write_text(
        '[sources.eu-air]\nadapter = "openaq"\ninputs = ["data/long.csv"]\n'
        'options = { stations = "data/stations.csv" }\n', encoding="utf-8")
    result = runner.invoke(cli, ["ingest", "--source", "eu-air", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 4
    assert (tmp_path / "lake" / "AirQualityObserved" / "_delta_log").is_dir()
    result = runner.invoke(cli, ["ingest", "--all", "--json"])
    assert json.loads(result.stdout)[0]["status"] == "unchanged"
    bad = runner.invoke(cli, ["ingest", "--source", "nope"])
    assert bad.exit_code == 2 and "unknown source" in bad.output


def test_help_has_examples() -> None:
    from click.testing import CliRunner

    from hubctl.cli import cli

    for args in (["--help"], ["ingest", "--help"], ["ingest", "openaq", "--help"],
                 ["sql", "--help"], ["lake", "vacuum", "--help"], ["entities", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Example" in result.output, args


def test_ingest_of_an_mqtt_source_points_to_listen(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[lake]\npath = "lake"\n[sources.live.mqtt]\nhost = "127.0.0.1"\n'
                      'protocol = "iotagent-json"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", "--source", "live"])
    assert result.exit_code == 2
    assert "MQTT source" in result.stderr and "hubctl listen live" in result.stderr


def test_a_one_line_csv_says_it_has_no_records(tmp_path: Path) -> None:
    data = tmp_path / "long.csv"
    data.write_text("city,country,date.utc,location,parameter,value,unit", encoding="utf-8")
    _, stations = write_openaq(tmp_path / "st", [])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--stations", str(stations))
    assert result.exit_code == 1
    assert "long.csv, line 1: has no records" in result.stderr


def test_lazy_command_table_matches_the_modules() -> None:
    """COMMAND_MODULES (which module to import for a command) names every command of every
    CLI module and no other, so lazy loading never hides or misplaces one."""
    import importlib
    import pkgutil

    import hubctl.cli as package
    from hubctl.cli import COMMAND_MODULES

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"hubctl.cli.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            found[command.name] = info.name
    assert found == COMMAND_MODULES
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert all(f"  {name} " in result.output for name in COMMAND_MODULES)


def test_sql_loads_neither_ingest_nor_export_code(lake: Path) -> None:
    """`hubctl sql` imports only its own command module (and never deltalake when the
    snapshot cache is warm): the start-up that issue 13 section 5 measures."""
    import subprocess
    import sys

    code = ("import sys; from hubctl.cli import main; sys.argv = ['hubctl', '--lake', sys.argv[1],"
            " 'sql', 'SELECT count(*) AS n FROM AirQualityObserved']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('hubctl.cli.', 'deltalake'))))")
    for _ in range(2):  # the first call fills the snapshot cache
        done = subprocess.run([sys.executable, "-c", code, str(lake)], capture_output=True,
                              text=True, check=True)
    loaded = eval(done.stdout.strip().splitlines()[-1])
    assert "hubctl.cli.query" in loaded
    assert not {"hubctl.cli.ingest", "hubctl.cli.export", "hubctl.cli.report"} & set(loaded)
    assert not [m for m in loaded if m.startswith("deltalake")], loaded
