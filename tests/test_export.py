"""hubctl export: bundles checked by other people's validators, privacy, reproducibility."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import SAMPLE_DATA, needs_sample_data
from tests.helpers import hub, hub_json, row, write_openaq

SHAPES = SAMPLE_DATA / "opendata"
BIN = Path(sys.executable).parent
META = ["--licence", "CC-BY-4.0", "--publisher", "Test City", "--contact", "data@example.org"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _export(lake: Path, to: Path, *args: str) -> dict[str, Any]:
    """``hubctl ARGS --to TO`` with a licence, publisher and contact; its --json output."""
    out: dict[str, Any] = hub_json(lake, *args, "--to", str(to), *META)
    return out


# ---------------------------------------------------------------- a lake from ../shared/data
@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not SAMPLE_DATA.is_dir():
        pytest.skip(f"sample data not found at {SAMPLE_DATA}")
    root = tmp_path_factory.mktemp("shared")
    lake = root / "lake"
    energy = SAMPLE_DATA / "energy"
    for args in (("calls", str(SAMPLE_DATA / "calls" / "berkeley-pd-calls-for-service-2018.csv")),
                 ("ev-sessions", str(energy / "dundee-ev-charging-sessions-2018-03-05.csv"),
                  "--profile", "dundee"),
                 ("greenbutton", *map(str, sorted((energy / "greenbutton").glob("*.xml")))),
                 ("openaq", str(SAMPLE_DATA / "air" / "openaq-2019" / "air_quality_long.csv"),
                  "--stations", str(SAMPLE_DATA / "air" / "openaq-2019" /
                                    "air_quality_stations.csv")),
                 ("gtfs", str(SAMPLE_DATA / "gtfs" / "google-sample-feed.zip"))):
        run = hub_json(lake, "ingest", *args)
        assert run["reconciles"], run
    bundle = root / "bundle"
    toml = root / "hub.toml"  # Berkeley has ~20 calls a day: 500 m cells and months
    toml.write_text(f'[lake]\npath = "{lake}"\n[exports.everything]\n'
                    'privacy = { Alert = { cell_m = 500, bucket = "month" } }\n')
    _export(lake, bundle, "--config", str(toml), "export", "everything", "--all", "--shapes",
            str(SHAPES))
    return {"lake": lake, "bundle": bundle, "root": root}


def _secrets(lake: Path) -> dict[str, set[str]]:
    """Case numbers, exact call coordinates, meter ids and session ids stored in the lake."""
    def col(sql: str) -> list[Any]:
        return [next(iter(r.values())) for r in hub_json(lake, "sql", sql)]

    cases = {u.rsplit(":", 1)[1] for u in col("SELECT DISTINCT id FROM Alert")}
    coords = {repr(v) for v in col("SELECT lon FROM Alert WHERE lon IS NOT NULL UNION "
                                   "SELECT lat FROM Alert WHERE lat IS NOT NULL")}
    meters = {u.split(":", 3)[3] for u in col("SELECT DISTINCT id FROM MeterReadingObserved")}
    sessions = {u.split(":", 3)[3] for u in col("SELECT DISTINCT id FROM EVChargingSession")}
    return {"case": cases, "coordinate": coords, "meter": meters, "session": sessions}


def _texts(bundle: Path) -> dict[str, str]:
    """Every file of the bundle as text; Parquet files as the text of every cell."""
    out = {}
    for path in sorted(bundle.rglob("*")):
        if path.suffix == ".parquet":
            con = duckdb.connect()
            rows = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
            out[str(path)] = "\n".join("|".join(map(str, r)) for r in rows) + \
                path.read_bytes().decode("latin-1")
        elif path.is_file():
            out[str(path)] = path.read_text(encoding="utf-8")
    return out


@needs_sample_data
def test_privacy_scan_finds_no_case_number_coordinate_meter_or_session(
        shared: dict[str, Path]) -> None:
    secrets = _secrets(shared["lake"])
    assert all(secrets.values()), {k: len(v) for k, v in secrets.items()}
    texts = _texts(shared["bundle"])
    assert any(p.endswith("Alert.csv") for p in texts)
    hits = []
    for path, text in texts.items():
        tokens = set(re.findall(r"[-\w.]+", text))
        tokens |= {t.strip(".-") for t in tokens}
        hits += [(kind, path, v) for kind, values in secrets.items() for v in values & tokens]
    assert hits == []


@needs_sample_data
def test_privacy_rules_are_applied_and_reported(shared: dict[str, Path]) -> None:
    bundle = shared["bundle"]
    con = duckdb.connect()
    alert = con.execute(f"SELECT min(calls), count(*) FROM '{bundle}/data/Alert.parquet'"
                        ).fetchall()[0]
    assert alert[1] > 0 and alert[0] >= 10  # only cells with at least k = 10 calls
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{bundle}/data/Alert.csv'")
            .fetchall()]
    assert cols == ["cell", "lon", "lat", "month", "calls", "geometry"]
    ev = con.execute("SELECT count(*) FILTER (WHERE minute(startDateTime) <> 0 OR "
                     "second(startDateTime) <> 0), count(*) FROM "
                     f"'{bundle}/data/EVChargingSession.parquet'").fetchall()[0]
    assert ev[0] == 0 and ev[1] > 15000
    meters = con.execute(f"SELECT count(*) FROM '{bundle}/data/MeterReadingObserved.parquet'"
                         ).fetchall()[0][0]
    assert meters == 0  # two sample meters: no group meets the 15/15 rule
    readme = (bundle / "README.md").read_text(encoding="utf-8")
    assert "500 m grid cell" in readme and "fewer than k=10 calls suppressed" in readme
    assert "cells suppressed" in readme and "groups suppressed" in readme
    assert "Recommended properties missing" in readme


@needs_sample_data
def test_frictionless_validate_passes_with_data(shared: dict[str, Path]) -> None:
    out = subprocess.run([str(BIN / "frictionless"), "validate", "--json", "datapackage.json"],
                         cwd=shared["bundle"], capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    errors = [(t["name"], e["message"]) for t in report["tasks"] for e in t["errors"]]
    assert errors == [] and report["valid"], report.get("errors")
    assert len(report["tasks"]) == len(json.loads(
        (shared["bundle"] / "datapackage.json").read_text())["resources"])


@needs_sample_data
def test_dcat_conforms_to_dcat_ap_3_shapes(shared: dict[str, Path]) -> None:
    from pyshacl import validate
    from rdflib import Graph

    shapes = Graph().parse(SHAPES / "dcat-ap-3.0.0-shapes.ttl").parse(
        SHAPES / "dcat-ap-3.0.0-range.ttl")
    for name, fmt in (("dcat.ttl", "turtle"), ("dcat.jsonld", "json-ld")):
        data = Graph().parse(shared["bundle"] / name, format=fmt)
        conforms, _, text = validate(data, shacl_graph=shapes, inference="none")
        assert conforms, text
        assert len(data) > 100
    ttl = (shared["bundle"] / "dcat.ttl").read_text()
    assert "spdx:checksumAlgorithm_sha256" in ttl and "dcat:downloadURL <data/Alert.csv>" in ttl


@needs_sample_data
def test_a_bundle_exported_without_shapes_conforms_to_dcat_ap_3_too(tmp_path: Path) -> None:
    """The shapes only make export check itself: the DCAT written without --shapes conforms."""
    from pyshacl import validate
    from rdflib import Graph

    lake = _air_lake(tmp_path, range(0, 3))
    _export(lake, tmp_path / "plain", "export", "air", "AirQualityObserved")
    shapes = Graph().parse(SHAPES / "dcat-ap-3.0.0-shapes.ttl").parse(
        SHAPES / "dcat-ap-3.0.0-range.ttl")
    data = Graph().parse(tmp_path / "plain" / "dcat.ttl", format="turtle")
    conforms, _, text = validate(data, shacl_graph=shapes, inference="none")
    assert conforms, text
    assert "SHACL: not checked at export" in (tmp_path / "plain" / "README.md").read_text()
    # recommended: the catalogue's spatial coverage (the union of its datasets') and centroids
    ttl = (tmp_path / "plain" / "dcat.ttl").read_text()
    assert "dct:spatial <#spatial>" in ttl and ttl.count("dcat:centroid") == 2


@needs_sample_data
def test_duckdb_reads_parquet_and_csv_with_the_declared_types(shared: dict[str, Path]) -> None:
    bundle = shared["bundle"]
    package = json.loads((bundle / "datapackage.json").read_text())
    to_duck = {"string": "VARCHAR", "number": "DOUBLE", "integer": "BIGINT", "boolean":
               "BOOLEAN", "datetime": "TIMESTAMPTZ", "date": "DATE", "array": "VARCHAR",
               "geojson": "VARCHAR"}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    checked = 0
    for res in package["resources"]:
        if res["format"] != "csv":
            continue
        types = {f["name"]: to_duck[f["type"]] for f in res["schema"]["fields"]}
        spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in types.items()) + "}"
        csv = con.execute(f"SELECT * FROM read_csv('{bundle / res['path']}', header=true, "
                          f"columns={spec}) ").fetchall()
        pq = con.execute(f"SELECT * FROM '{bundle / res['path'].replace('.csv', '.parquet')}'"
                         ).fetchall()
        assert len(csv) == len(pq)
        described = con.execute(f"DESCRIBE SELECT * FROM "
                                f"'{bundle / res['path'].replace('.csv', '.parquet')}'").fetchall()
        for (name, duck, *_), (fname, want) in zip(described, types.items(), strict=True):
            assert name == fname
            assert duck.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") == want or (
                want == "DOUBLE" and duck in ("FLOAT", "DOUBLE")), (res["name"], name, duck)
        assert [tuple(r) for r in csv] == [tuple(r) for r in pq], res["name"]
        checked += 1
    assert checked >= 8


def _ring_area(ring: list[list[float]]) -> float:
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:], strict=False)) / 2


@needs_sample_data
def test_geojson_is_valid_rfc7946(shared: dict[str, Path]) -> None:
    files = sorted((shared["bundle"] / "data").glob("*.geojson"))
    assert {f.name for f in files} >= {"Alert.geojson", "EVChargingSession.geojson",
                                       "AirQualityObserved.geojson", "GtfsStop.geojson"}
    polygons = 0
    for f in files:
        doc = json.loads(f.read_text())
        assert doc["type"] == "FeatureCollection" and "crs" not in doc
        for feat in doc["features"]:
            assert feat["type"] == "Feature" and isinstance(feat["properties"], dict)
            geom = feat["geometry"]
            if geom is None:
                continue
            if geom["type"] == "Point":
                lon, lat = geom["coordinates"]
                assert -180 <= lon <= 180 and -90 <= lat <= 90
            elif geom["type"] == "Polygon":
                for i, ring in enumerate(geom["coordinates"]):
                    assert ring[0] == ring[-1] and len(ring) >= 4
                    area = _ring_area(ring)
                    assert (area > 0) if i == 0 else (area < 0)  # right-hand rule
                polygons += 1
            else:
                assert geom["type"] in ("LineString", "MultiLineString", "MultiPolygon")
    assert polygons > 0


@needs_sample_data
def test_ngsi_ld_files_reingest_into_an_empty_lake_without_rejects(
        shared: dict[str, Path]) -> None:
    files = sorted((shared["bundle"] / "data").glob("*.ngsi-ld.jsonl"))
    assert "EVChargingSession.ngsi-ld.jsonl" in {f.name for f in files}
    assert "Alert.ngsi-ld.jsonl" not in {f.name for f in files}  # never row by row
    lake = shared["root"] / "reingest"
    for f in files:
        lines = sum(1 for line in f.read_text().splitlines() if line.strip())
        if not lines:
            continue
        run = hub_json(lake, "ingest", "ngsi-ld", str(f))
        assert run["rejected"] == 0 and run["read"] == lines and run["reconciles"], f.name
        assert run["written"] == lines, f.name


# ---------------------------------------------------------------- small lakes
def _air_lake(tmp_path: Path, hours: range) -> Path:
    lake = tmp_path / "lake"
    data, stations = write_openaq(tmp_path / f"in{hours.start}", [
        row(s, h, "no2", 10 + h) for s in ("S1", "S2") for h in hours])
    assert hub_json(lake, "ingest", "openaq", str(data), "--stations", str(stations))["written"]
    return lake


def test_same_versions_same_bytes_and_as_of_rebuilds_an_old_bundle(tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 6))
    first = _export(lake, tmp_path / "a", "export", "air", "AirQualityObserved")
    _export(lake, tmp_path / "b", "export", "air", "AirQualityObserved")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    version = first["tables"][0]["version"]
    _air_lake(tmp_path, range(6, 9))
    newer = _export(lake, tmp_path / "c", "export", "air", "AirQualityObserved")
    assert newer["tables"][0]["rows"] > first["tables"][0]["rows"]
    assert _files(tmp_path / "c") != _files(tmp_path / "a")
    _export(lake, tmp_path / "d", "export", "air", "AirQualityObserved", "--as-of",
            f"AirQualityObserved={version}")
    assert _files(tmp_path / "d") == _files(tmp_path / "a")
    z1 = _export(lake, tmp_path / "z1", "export", "air", "AirQualityObserved", "--zip")["bundle"]
    z2 = _export(lake, tmp_path / "z2", "export", "air", "AirQualityObserved", "--zip")["bundle"]
    assert Path(z1).read_bytes() == Path(z2).read_bytes()
    assert "datapackage.json" in zipfile.ZipFile(z1).namelist()


def test_since_last_exports_only_new_rows_as_a_series_and_the_ledger_records_it(
        tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 4))
    full = _export(lake, tmp_path / "one", "export", "air", "AirQualityObserved", "--since-last")
    assert full["tables"][0]["rows"] == 8
    _air_lake(tmp_path, range(4, 7))
    inc = _export(lake, tmp_path / "two", "export", "air", "AirQualityObserved", "--since-last")
    assert inc["tables"][0]["rows"] == 6 and inc["previous_export"] == full["export_id"]
    con = duckdb.connect()
    hours = con.execute(f"SELECT DISTINCT hour(observed_at) FROM "
                        f"'{tmp_path}/two/data/AirQualityObserved.parquet' ORDER BY 1").fetchall()
    assert [h[0] for h in hours] == [4, 5, 6]
    assert "dcat:inSeries <urn:hubctl:export:air:AirQualityObserved>" in \
        (tmp_path / "two" / "dcat.ttl").read_text()
    ledger = hub_json(lake, "sql", "SELECT name, versions, checksums FROM _exports "
                                   "ORDER BY finished_at")
    assert [r["name"] for r in ledger] == ["air", "air"]
    assert "data/AirQualityObserved.csv" in json.loads(ledger[1]["checksums"])


def test_where_accepts_conditions_and_refuses_anything_else(tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 4))
    out = _export(lake, tmp_path / "w", "export", "air", "AirQualityObserved", "--where",
                  "no2 >= 12 AND id LIKE '%S1%'")
    assert out["tables"][0]["rows"] == 2
    secret = tmp_path / "secret.csv"
    secret.write_text("x\nTOPSECRET\n")
    for bad, says in ((f"id IN (SELECT x FROM read_csv('{secret}'))", "subquery"),
                      (f"read_text('{secret}') IS NOT NULL", "read_text"),
                      ("no2 > 1; COPY (SELECT 1) TO 'x.csv'", "not a SQL condition"),
                      ("no2 > 1) UNION SELECT * FROM x WHERE (true", "one condition"),
                      ("nope > 1", "not a column"),
                      ("getenv('HOME') = ''", "getenv")):
        result = hub(lake, "export", "air", "AirQualityObserved", "--to",
                     str(tmp_path / "bad"), "--where", bad, *META)
        assert result.exit_code == 2 and says in result.output, (bad, result.output)
    assert not (tmp_path / "bad").exists()


def test_licence_is_required_and_privacy_can_only_be_tightened(tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 2))
    result = hub(lake, "export", "air", "AirQualityObserved", "--to", str(tmp_path / "x"),
                 "--publisher", "P")
    assert result.exit_code == 2 and "no licence" in result.output
    calls = tmp_path / "calls.csv"
    lines = ["CASENO,OFFENSE,EVENTDT,EVENTTM,CVLEGEND,CVDOW,InDbDate,Block_Location,BLKADDR,"
             "City,State"]
    for i in range(14):  # 12 calls in one cell, 2 in another, same hour of the week
        lat, lon = (37.8700, -122.2700) if i < 12 else (37.8900, -122.3000)
        lines.append(f'C{i:05d},THEFT,04/02/2018 12:00:00 AM,10:0{i % 10},LARCENY,1,'
                     f'04/03/2018 12:00:00 AM,"X ST\nBerkeley, CA\n({lat + i * 1e-5}, '
                     f'{lon})",X ST,Berkeley,CA')
    calls.write_text("\n".join(lines) + "\n")
    assert hub_json(lake, "ingest", "calls", str(calls))["written"] == 14
    toml = tmp_path / "hub.toml"
    toml.write_text(f'[lake]\npath = "{lake}"\n[publisher]\nname = "P"\nlicence = "CC0-1.0"\n'
                    '[exports.safety]\ntables = ["Alert"]\nprivacy = { Alert = { k = 5 } }\n')
    result = hub(lake, "--config", str(toml), "export", "safety", "--to", str(tmp_path / "s"))
    assert result.exit_code == 2 and "loosen" in result.output
    out = hub_json(lake, "export", "safety", "Alert", "--to", str(tmp_path / "s"), *META)
    alert = out["tables"][0]
    assert alert["rows"] == 1 and alert["suppressed"]["calls_suppressed"] == 2
    toml.write_text(toml.read_text().replace("k = 5", "k = 13"))
    out = hub_json(lake, "--config", str(toml), "export", "safety", "--to", str(tmp_path / "s"))
    assert out["tables"][0]["rows"] == 0 and out["tables"][0]["suppressed"][
        "calls_suppressed"] == 14


def _key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """An NGSI-LD normalized entity in key-values form."""
    out: dict[str, Any] = {}
    for k, v in entity.items():
        if k == "@context":
            continue
        out[k] = (v.get("object", v.get("value")) if isinstance(v, dict) and "type" in v
                  and k not in ("id", "type") else v)
    return out


#: What the Dundee file never gives (socket types, how many vehicles charge at once, which
#: vehicles may) is missing, not wrong; every other departure from SDM is the test_sdm.KEPT list.
SOURCE_LACKS = {("EVChargingStation", f": '{name}' is a required property")
                for name in ("socketType", "capacity", "allowedVehicleType")}


@needs_sample_data
def test_ngsi_ld_files_validate_against_the_official_sdm_schemas(
        shared: dict[str, Path]) -> None:
    """Every NGSI-LD file of the bundle whose type SDM defines, GTFS types included."""
    from tests.sdm import SDM, sdm_errors
    from tests.test_sdm import KEPT

    checked: dict[str, int] = {}
    found: set[str] = set()
    for f in sorted((shared["bundle"] / "data").glob("*.ngsi-ld.jsonl")):
        type_name = f.name.split(".")[0]
        if not (SDM / f"{type_name}.schema.json").is_file():
            continue
        for line in f.read_text().splitlines()[:200]:
            errors = sdm_errors(type_name, _key_values(json.loads(line)))
            found.update(f"{type_name}: {e}" for e in errors
                         if (type_name, e) not in KEPT | SOURCE_LACKS)
            checked[type_name] = checked.get(type_name, 0) + 1
    assert found == set()
    assert {"AirQualityObserved", "EVChargingStation", "GtfsAgency", "GtfsCalendarDateRule",
            "GtfsCalendarRule", "GtfsFrequency", "GtfsRoute", "GtfsService",
            "GtfsStop", "GtfsStopTime", "GtfsTrip"} <= set(checked)


def test_meter_readings_are_published_only_as_15_15_aggregates(tmp_path: Path) -> None:
    lines = ["meter_id,timestamp,kwh"]
    for m in range(16):  # day 1: 16 equal meters; day 2: one holds 10/25 of the total
        lines += [f"M{m:03d},2025-03-01T{h:02d}:00:00Z,0.5" for h in (0, 1)]
        lines += [f"M{m:03d},2025-03-02T{h:02d}:00:00Z,{5.0 if m == 0 else 0.5}" for h in (0, 1)]
    for m in range(5):  # day 3: five meters only
        lines += [f"M{m:03d},2025-03-03T{h:02d}:00:00Z,0.5" for h in (0, 1)]
    data = tmp_path / "ami.csv"
    data.write_text("\n".join(lines) + "\n")
    lake = tmp_path / "lake"
    assert hub_json(lake, "ingest", "meter-readings", str(data))["rejected"] == 0
    out = _export(lake, tmp_path / "m", "export", "energy", "MeterReadingObserved")
    table = out["tables"][0]
    assert table["rows"] == 1 and table["suppressed"] == {"groups_published": 1,
                                                          "groups_suppressed": 2}
    rows = duckdb.connect().execute(
        f"SELECT CAST(day AS VARCHAR), meters, readings, activeEnergyImport FROM "
        f"'{tmp_path}/m/data/MeterReadingObserved.csv'").fetchall()
    assert rows == [("2025-03-01", 16, 32, 16.0)]
    text = "".join(p.read_text() for p in (tmp_path / "m").rglob("*") if p.suffix != ".parquet"
                   and p.is_file())
    assert "M000" not in text and "M015" not in text


def test_since_until_and_bbox_filter_rows_and_say_so(tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 6))
    out = _export(lake, tmp_path / "f", "export", "air", "AirQualityObserved",
                  "--since", "2024-05-01T02:00:00Z", "--until", "2024-05-01T04:00:00Z",
                  "--bbox", "4.0,51.0,5.0,52.0")
    table = out["tables"][0]
    assert table["rows"] == 2  # S1 (51.2 N, 4.4 E) at 02:00 and 03:00; S2 is in Paris
    assert any(f.startswith("--bbox") for f in table["filters"])
    readme = (tmp_path / "f" / "README.md").read_text()
    assert "Filter: --since 2024-05-01T02:00:00+00:00" in readme


@needs_sample_data
def test_datapackage_declares_keys_and_gtfs_foreign_keys(shared: dict[str, Path]) -> None:
    package = json.loads((shared["bundle"] / "datapackage.json").read_text())
    by_name = {r["name"]: r for r in package["resources"]}
    stop_times = by_name["gtfsstoptime-csv"]["schema"]
    refs = {tuple(fk["fields"]): fk["reference"]["resource"] for fk in stop_times["foreignKeys"]}
    assert refs[("hasTrip",)] == "gtfstrip-csv" and refs[("hasStop",)] == "gtfsstop-csv"
    assert stop_times["primaryKey"] == ["id"]
    assert by_name["airqualityobserved-csv"]["schema"]["primaryKey"] == ["id", "observed_at"]
    no2 = next(f for f in by_name["airqualityobserved-csv"]["schema"]["fields"]
               if f["name"] == "no2")
    assert no2["type"] == "number" and no2["unitCode"] == "GQ"
    assert package["licenses"][0]["name"] == "CC-BY-4.0"


def test_an_export_with_a_schedule_gets_a_cron_line_and_a_systemd_timer(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[lake]\npath = "lake"\n[publisher]\nname = "P"\nlicence = "CC0-1.0"\n'
                    '[exports.air]\ntables = ["AirQualityObserved"]\nto = "out/air"\n'
                    'schedule = "15 3 * * *"\n')
    lake = tmp_path / "lake"
    cron = hub(lake, "--config", str(toml), "schedule", "emit", "--cron")
    assert cron.exit_code == 0, cron.output
    line = next(ln for ln in cron.stdout.splitlines() if ln.startswith("15 3 * * *"))
    assert "export air --json >> " in line
    units = tmp_path / "units"
    result = hub(lake, "--config", str(toml), "schedule", "emit", "--systemd",
                 "--output-dir", str(units))
    assert result.exit_code == 0, result.output
    assert "OnCalendar=*-*-* 03:15:00" in (units / "hubctl-export-air.timer").read_text()
    assert "export air --json" in (units / "hubctl-export-air.service").read_text()


@needs_sample_data
def test_dcat_says_which_smart_data_models_schema_a_type_conforms_to(
        shared: dict[str, Path]) -> None:
    ttl = (shared["bundle"] / "dcat.ttl").read_text()
    assert "<https://smart-data-models.github.io/dataModel.Environment/AirQualityObserved/" \
           "schema.json> a dct:Standard" in ttl
    assert "dataModel.Alert/Alert/schema.json" not in ttl  # calls are published as counts


def test_since_last_after_an_update_exports_the_changed_row_only(tmp_path: Path) -> None:
    lake = _air_lake(tmp_path, range(0, 4))
    _export(lake, tmp_path / "one", "export", "air", "AirQualityObserved", "--since-last")
    data, stations = write_openaq(tmp_path / "fix", [row("S1", 2, "no2", 99)])
    run = hub_json(lake, "ingest", "openaq", str(data), "--stations", str(stations))
    assert run["updated"] == 1
    out = _export(lake, tmp_path / "two", "export", "air", "AirQualityObserved", "--since-last")
    assert out["tables"][0]["rows"] == 1
    got = duckdb.connect().execute(f"SELECT id, no2 FROM "
                                   f"'{tmp_path}/two/data/AirQualityObserved.parquet'").fetchall()
    assert got == [("urn:ngsi-ld:AirQualityObserved:S1", 99.0)]


def _bars(svg: str) -> list[tuple[str, int]]:
    """(dates, rows) of every bar of a rows chart, read from the SVG as XML."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    root = ET.fromstring(svg)
    out = []
    for rect in root.iter(f"{ns}rect"):
        title = rect.find(f"{ns}title")
        assert title is not None and title.text is not None
        dates, _, rows = title.text.rpartition(": ")
        out.append((dates, int(rows.split()[0].replace(",", ""))))
    return out


def test_index_html_charts_rows_per_day_as_static_svg(tmp_path: Path) -> None:
    from hubctl.export.docs import rows_chart

    lake = _air_lake(tmp_path, range(0, 6))
    out = _export(lake, tmp_path / "i", "export", "air", "AirQualityObserved")
    page = (tmp_path / "i" / "index.html").read_text()
    assert "<script" not in page.lower() and page.count("<svg") == 1
    svg = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    assert _bars(svg) == [("2024-05-01", out["tables"][0]["rows"])]
    # 500 days with a gap: bars of a week, every row in one bar, gaps as missing bars
    days = [(19_000 + d, d + 1) for d in range(500) if not 100 <= d < 200]
    bars = _bars(rows_chart(days, "X").split("<figcaption>")[0].removeprefix("<figure>"))
    assert sum(r for _, r in bars) == sum(r for _, r in days)
    # weeks 0-14 (days 0-99) and 28-71 (days 200-499)
    assert len(bars) == 15 + 44 and bars[0][0] == "2022-01-08 to 2022-01-14"
