"""hub.toml is checked before anything runs: the JSON Schema, `hubctl config check`, the lake
setting, and the starter template."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubctl.cli import cli
from hubctl.config_schema import MQTT, SCHEMA
from tests.helpers import row, write_openaq

TYPOS = """[lake]
paht = "elsewhere"

[sourcez.x]
adapter = "openaq"

[sources.eu-air]
adapter = "openaq"
inptus = ["data/long.csv"]
options = { stations = "data/stations.csv" }
"""


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> object:
    """``hubctl ARGS`` in ``tmp_path`` (CliRunner; HUBCTL_LAKE unset unless given)."""
    import os

    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(cli, list(args), env={"HUBCTL_LAKE": None, **(env or {})})
    finally:
        os.chdir(old)


def test_unknown_keys_stop_any_command_before_it_runs(tmp_path: Path) -> None:
    write_openaq(tmp_path / "data", [row("S1", 0, "no2", 10)])
    (tmp_path / "hub.toml").write_text(TYPOS, encoding="utf-8")
    result = run(tmp_path, "ingest", "--source", "eu-air")
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    out = result.output  # type: ignore[attr-defined]
    assert "hub.toml: 3 problems" in out
    assert 'hub.toml:2: lake.paht: unknown key (did you mean "path"?)' in out
    assert 'hub.toml:4: sourcez: unknown key (did you mean "sources"?)' in out
    assert 'hub.toml:9: sources.eu-air.inptus: unknown key (did you mean "inputs"?)' in out
    assert "Traceback" not in out and "internal error" not in out
    assert not (tmp_path / "lake").exists() and not (tmp_path / "elsewhere").exists()


def test_wrong_value_types_name_the_key_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        '[lake]\npath = 42\n\n[sources.a]\nadapter = "openaq"\ninputs = "x.csv"\n'
        'schedule = 5\n[sources.a.mqtt]\nport = "1883"\npassword = "secret"\n'
        'workers = 100\n', encoding="utf-8")
    result = run(tmp_path, "tables")
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, out  # type: ignore[attr-defined]
    assert "hub.toml:2: lake.path: must be text, not a whole number 42" in out
    assert 'write five cron fields as text, e.g. schedule = "*/10 * * * *"' in out
    assert "sources.a.mqtt.port: must be a whole number, not text '1883'" in out
    assert "sources.a.mqtt.password: must not be written here (set password_env" in out
    assert "sources.a.mqtt.workers: 100 is greater than the maximum of 32" in out
    assert "internal error" not in out


@pytest.mark.parametrize("setting", ["file", "file/lake"])
def test_hubctl_lake_pointing_at_a_file_is_a_configuration_error(
        tmp_path: Path, setting: str) -> None:
    (tmp_path / "file").write_text("not a lake", encoding="utf-8")
    result = run(tmp_path, "tables", env={"HUBCTL_LAKE": str(tmp_path / setting)})
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, out  # type: ignore[attr-defined]
    assert re.search(r"HUBCTL_LAKE = '.*file(/lake)?' is (a file|inside .*file, a file), "
                     "not a lake folder", out), out
    assert "unset HUBCTL_LAKE" in out and "internal error" not in out
    (tmp_path / "hub.toml").write_text('[lake]\npath = "file"\n', encoding="utf-8")
    result = run(tmp_path, "tables")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "hub.toml: [lake] path = " in result.output  # type: ignore[attr-defined]


def test_config_check_prints_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(TYPOS + """
[sources.typo]
adapter = "openaqq"
inputs = ["x.csv"]

[sources.opts]
adapter = "openaq"
inputs = ["x.csv"]
options = { statons = "s.csv" }
schedule = "61 * * * *"

[pipelines.patrol_point]
schedule = "@daily"

[pipelines.energy]
after = ["zz"]
params = { anomaly_z = "high", foo = 1 }

[pipelines.bus_routes]
params = { catchment_m = 300 }
""", encoding="utf-8")
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    expected = [
        'hub.toml:2: lake.paht: unknown key (did you mean "path"?)',
        'hub.toml:4: sourcez: unknown key (did you mean "sources"?)',
        'hub.toml:9: sources.eu-air.inptus: unknown key (did you mean "inputs"?)',
        'hub.toml:13: sources.typo.adapter: no adapter \'openaqq\' (did you mean "openaq"?)',
        "hub.toml:19: sources.opts.options.statons: adapter openaq has no option 'statons'",
        "hub.toml:20: sources.opts.schedule: minute: 61 is outside 0-59",
        'hub.toml:22: pipelines.patrol_point: no pipeline \'patrol_point\' (did you mean '
        '"patrol_points"?)',
        "hub.toml:26: pipelines.energy.after: no source 'zz'",
        "hub.toml:27: pipelines.energy.params.anomaly_z: --param anomaly_z=high: not a valid "
        "float",
        "hub.toml:27: pipelines.energy.params.foo: unknown parameter",
        "hub.toml:29: pipelines.bus_routes: nothing starts this pipeline",
    ]
    for want, got in zip(expected, lines, strict=False):
        assert got.startswith(want), (want, lines)
    assert len(lines) == len(expected) + 1 and lines[-1] == "hub.toml: 11 problems"
    as_json = run(tmp_path, "config", "check", "--json")
    assert as_json.exit_code == 2  # type: ignore[attr-defined]
    report = json.loads(as_json.stdout)  # type: ignore[attr-defined]
    assert report["ok"] is False and len(report["problems"]) == 11
    assert report["problems"][0] == {"key": "lake.paht", "line": 2, "message": "unknown key",
                                     "hint": 'did you mean "path"?'}


def test_config_check_exits_0_on_a_good_config(tmp_path: Path) -> None:
    write_openaq(tmp_path / "data", [row("S1", 0, "no2", 10)])
    (tmp_path / "hub.toml").write_text(
        '[lake]\npath = "lake"\n[sources.eu-air]\nadapter = "openaq"\ninputs = "data/long.csv"\n'
        'options = { stations = "data/stations.csv" }\nschedule = "*/10 * * * *"\n'
        '[pipelines.patrol_points]\nafter = ["eu-air"]\nparams = { radius_m = 400 }\n',
        encoding="utf-8")
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert result.stdout.startswith("hub.toml: ok (1 sources, 1 pipelines")  # type: ignore
    report = json.loads(run(tmp_path, "config", "check", "--json").stdout)  # type: ignore
    assert report["ok"] is True and report["problems"] == []
    assert report["lake"] == str((tmp_path / "lake").resolve())
    assert not (tmp_path / "lake").exists()  # nothing ran, nothing was made


def test_no_hub_toml_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 2 and "no hub.toml here" in result.output  # type: ignore


def _uncommented(template: str) -> str:
    """The starter template with every commented example line switched on."""
    out = []
    for line in template.splitlines():
        body = line[2:] if line.startswith("# ") else line
        if line.startswith("# ") and re.match(r"^(\[|[\w\"-]+ *=)", body):
            out.append(body)
        elif not line.startswith("#"):
            out.append(line)
    return "\n".join(out) + "\n"


def test_every_example_of_the_starter_template_passes_the_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hubctl.config import STARTER_TOML

    assert run(tmp_path, "init").exit_code == 0  # type: ignore[attr-defined]
    assert run(tmp_path, "config", "check").exit_code == 0  # type: ignore[attr-defined]
    text = _uncommented(STARTER_TOML)
    assert text.count("[sources.") >= 8 and "[pipelines." in text and "[exports." in text
    assert 'protocol = "onem2m"' in text and 'protocol = "iotagent-json"' in text
    (tmp_path / "hub.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("DAEGU_MQTT_PASSWORD", "x")
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


def test_the_demo_config_passes_the_check(tmp_path: Path) -> None:
    from hubctl.demo import HUB_TOML

    (tmp_path / "hub.toml").write_text(HUB_TOML, encoding="utf-8")
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


def test_onem2m_export_and_publisher_keys_are_known(tmp_path: Path) -> None:
    """The keys issues 14 (the hub as an AE) and 16 (open-data exports) document."""
    (tmp_path / "hub.toml").write_text("""
[sources.acme.mqtt]
protocol = "onem2m"
cse_id = "id-in"
cse_name = "cse-in"
ae_id = "Chubctl"
cse_url = "http://127.0.0.1:8080"
register = true
reconcile = 60
notify_http = "127.0.0.1:9090"
[sources.acme.mqtt.containers."cse-in/CairSensor/air"]
type = "AirQualityObserved"
id = "air01"
attributes = { PM10 = "pm10" }

[publisher]
name = "Demo City"
url = "https://data.example.org"
email = "opendata@example.org"
licence = "CC-BY-4.0"

[exports.air]
tables = ["AirQualityObserved", "derived.patrol_points_hotspots"]
to = "bundles"
formats = ["parquet", "csv"]
since = 2024-01-01
until = 2024-12-31T00:00:00Z
bbox = "4.3,48.8,4.5,51.3"
where = "no2 IS NOT NULL"
licence = "CC0-1.0"
title = "Air"
description = "Hourly air quality"
keywords = ["air"]
themes = ["ENVI"]
spatial = [4.3, 48.8, 4.5, 51.3]
temporal = [2024-01-01, 2024-12-31]
frequency = "DAILY"
contact = "opendata@example.org"
shapes = "shapes.txt"
base_url = "https://data.example.org/air/"
schedule = "0 4 * * *"
publisher = { name = "Air office" }
privacy = { Alert = { k = 20, cell_m = 500, bucket = "day" } }
""", encoding="utf-8")
    result = run(tmp_path, "config", "check")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


def test_the_schema_knows_every_mqtt_setting() -> None:
    from hubctl.mqtt.settings import MqttSettings

    read = {f.name for f in fields(MqttSettings)} - {"source", "mappings"}
    assert read <= set(MQTT["properties"]), read - set(MQTT["properties"])


def test_config_schema_prints_a_valid_json_schema(tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    result = run(tmp_path, "config", "schema")
    assert result.exit_code == 0  # type: ignore[attr-defined]
    printed = json.loads(result.stdout)  # type: ignore[attr-defined]
    Draft202012Validator.check_schema(printed)
    assert printed == json.loads(json.dumps(SCHEMA))


def test_the_hub_toml_examples_in_the_docs_pass_the_schema() -> None:
    import tomllib

    from hubctl.config_check import check_config
    from tests.conftest import PROJECT_ROOT

    blocks = [(doc.name, m.group(1)) for doc in [PROJECT_ROOT / "README.md",
                                                   *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
              for m in re.finditer(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)]
    assert len(blocks) >= 2
    for name, text in blocks:
        assert check_config(tomllib.loads(text), text) == [], (name, text)


def test_source_option_values_of_the_wrong_type_are_configuration_errors(
        tmp_path: Path) -> None:
    write_openaq(tmp_path / "data", [row("S1", 0, "no2", 10)])
    (tmp_path / "hub.toml").write_text(
        '[sources.eu-air]\nadapter = "openaq"\ninputs = "data/long.csv"\n'
        'options = { stations = 3 }\n'
        '[sources.pull]\nadapter = "airkorea"\noptions = { api = "yes", rate = "fast" }\n',
        encoding="utf-8")
    result = run(tmp_path, "ingest", "--source", "eu-air")
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, out  # type: ignore[attr-defined]
    assert "source eu-air: options.stations must be text, not a whole number 3" in out
    assert "internal error" not in out
    check = run(tmp_path, "config", "check")
    assert check.exit_code == 2  # type: ignore[attr-defined]
    lines = check.stderr.splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("hub.toml:4: sources.eu-air.options.stations: must be text, "
                               "not a whole number 3"), lines
    assert any("sources.pull.options.api: must be true or false, not text 'yes'" in ln
               for ln in lines), lines
    assert any("sources.pull.options.rate: must be a number, not text 'fast'" in ln
               for ln in lines), lines


def test_config_check_reports_a_container_or_group_that_maps_nothing(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        '[sources.air.mqtt]\nprotocol = "onem2m"\n'
        '[sources.air.mqtt.containers."cse-in/a/air"]\ntype = "AirQualityObserved"\nid = "a"\n'
        '[sources.air.mqtt.containers."cse-in/a/ok"]\ntype = "AirQualityObserved"\nid = "b"\n'
        'attributes = { PM10 = "pm10" }\n'
        '[sources.iot.mqtt]\nprotocol = "iotagent-json"\n'
        '[sources.iot.mqtt.groups.k1]\ntype = "AirQualityObserved"\n', encoding="utf-8")
    result = run(tmp_path, "config", "check", "--json")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    problems = json.loads(result.stdout)["problems"]  # type: ignore[attr-defined]
    assert [p["key"] for p in problems] == [
        'sources.air.mqtt.containers."cse-in/a/air".attributes',
        "sources.iot.mqtt.groups.k1.attributes"]
    assert all(p["message"].startswith("maps nothing") for p in problems)
