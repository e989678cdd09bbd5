"""``--engine`` on a lake on object storage (issue 20 §1 with §2 and §3): moto's S3 server on
loopback, Spark in this process (``local[2]``) and on the loopback standalone cluster, whose
workers start with the moto server's AWS variables (``spark_master`` in conftest).

The pyspark wheel has no S3 connector (hadoop-aws), and nothing is downloaded: the executors
read the snapshot's Parquet files and write their staged batches through pyarrow's S3
filesystem, configured from their own AWS variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubctl import spark
from hubctl.s3 import S3Root, parse_root
from tests.conftest import MOTO
from tests.helpers import hub, hub_json, write_meter_days
from tests.spark import needs_spark
from tests.test_spark import _compare
from tests.test_spark_ingest import COUNTS, _tables

pytestmark = [needs_spark, pytest.mark.slow,
              pytest.mark.skipif(not MOTO.exists(), reason="moto_server is not installed "
                                 "(pip install -e '.[dev]' brings moto[server])")]


@pytest.fixture
def local2(s3_lake: str) -> Iterator[str]:
    """``local[2]``, its driver JVM (and so its Python workers) started after the AWS
    variables of ``s3_lake`` are set: a session an earlier test started is stopped first."""
    spark.stop()
    yield "local[2]"
    spark.stop()


def _engine(request: pytest.FixtureRequest, name: str) -> str:
    return str(request.getfixturevalue(name))


def _ingest_both(s3_lake: str, master: str, *args: str) -> dict[str, Any]:
    """``hubctl ingest ARGS`` into a second prefix of the bucket in this process and into
    ``s3_lake`` with ``--engine``: the same counts, warnings and tables; no staged object
    left. Returns the in-process run."""
    here = f"{s3_lake}-local"
    local = hub_json(here, "ingest", *args)  # type: ignore[arg-type]
    spark_run = hub_json(s3_lake, "ingest", *args, "--engine", master)  # type: ignore[arg-type]
    assert {k: spark_run.get(k) for k in COUNTS} == {k: local.get(k) for k in COUNTS}
    assert spark_run["warnings"] == local["warnings"]
    assert _tables(parse_root(s3_lake)) == _tables(parse_root(here))  # type: ignore[arg-type]
    # staging cleaned up: pyarrow keeps the emptied parent as a folder marker, as a local lake
    # keeps its empty _staging folder
    staging = parse_root(s3_lake) / "_staging"
    assert set(_objects(staging)) <= {f"{staging.key}/"}
    return local


def _objects(where: S3Root) -> list[str]:
    """The keys of the objects under ``where``."""
    import boto3

    page = boto3.client("s3").list_objects_v2(Bucket=where.bucket, Prefix=f"{where.key}/")
    return [o["Key"] for o in page.get("Contents", [])]


@pytest.mark.parametrize("engine", ["spark_master"])  # workers with their own AWS variables
def test_energy_on_spark_on_an_s3_lake_equals_duckdb(s3_lake: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest,
                                                     engine: str) -> None:
    from tests.test_energy_pipeline import _lake

    _lake(tmp_path)  # the local lake's inputs, ingested again into the S3 lake
    meters = str(tmp_path / "meters.csv")
    assert hub_json(s3_lake, "ingest", "meter-readings", str(tmp_path / "ami.csv"),  # type: ignore[arg-type]
                    "--meters", meters)["written"] > 0
    assert hub_json(s3_lake, "ingest", "ev-sessions", str(tmp_path / "ev.csv"))["written"] == 3  # type: ignore[arg-type]
    _compare(s3_lake, "energy", _engine(request, engine), "population=1000",
             "timezone=Europe/London")


@pytest.mark.parametrize("engine", ["local2"])  # the cluster's S3 reads: the energy test
def test_ingest_on_spark_into_an_s3_lake_equals_the_local_path(
        s3_lake: str, tmp_path: Path, request: pytest.FixtureRequest, engine: str) -> None:
    master = _engine(request, engine)
    days = write_meter_days(tmp_path)
    first = _ingest_both(s3_lake, master, "meter-readings", *map(str, days))
    assert (first["written"], first["rejected"]) == (12, 2)
    again = _ingest_both(s3_lake, master, "meter-readings", *map(str, days), "--force")
    assert (again["written"], again["duplicate"]) == (0, 12)
    days[1].write_text(days[1].read_text(encoding="utf-8").replace(",1.1\n", ",1.15\n"),
                       encoding="utf-8")
    changed = _ingest_both(s3_lake, master, "meter-readings", str(days[1]))
    assert (changed["updated"], changed["duplicate"]) == (1, 5)
    ledger = hub_json(s3_lake, "sql", "SELECT count(*) AS n FROM _runs")  # type: ignore[arg-type]
    assert ledger == [{"n": 3}]


def test_executors_that_cannot_reach_the_store_fail_the_run_in_one_line(
        s3_lake: str, tmp_path: Path, local2: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the executors' Python workers get an endpoint nothing listens on; the driver keeps moto
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.executorEnv.AWS_ENDPOINT_URL="
                       "http://127.0.0.1:9 pyspark-shell")
    readings = tmp_path / "ami.csv"
    readings.write_text("meter_id,timestamp,kwh\nM1,2025-03-01T00:00:00Z,1.5\n"
                        "M1,2025-03-01T01:00:00Z,2.5\n", encoding="utf-8")
    staged = hub(s3_lake, "ingest", "meter-readings", str(readings), "--engine", local2)  # type: ignore[arg-type]
    assert staged.exit_code == 1 and "Traceback" not in staged.output
    assert "the Spark job failed: OSError" in staged.output and "_staging/" in staged.output
    assert "AWS_* variables" in staged.output  # the hint
    assert hub_json(s3_lake, "ingest", "meter-readings", str(readings))["written"] == 2  # type: ignore[arg-type]
    run = hub(s3_lake, "run", "energy", "--engine", local2)  # type: ignore[arg-type]
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "Spark could not run a pipeline query: OSError: a Spark executor could not read" \
        in run.output and "AWS_ENDPOINT_URL" in run.output
