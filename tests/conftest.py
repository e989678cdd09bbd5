"""Shared test helpers: where the real sample data lives, and the marker that skips without it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The project checkout (tests/ is one level below it).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def sample_data_dir() -> Path:
    """``$HUBCTL_SAMPLE_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("HUBCTL_SAMPLE_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


SAMPLE_DATA = sample_data_dir()

#: Marks conformance tests on ``../shared/data``; they skip, with the reason, where it is absent.
needs_sample_data = pytest.mark.skipif(
    not SAMPLE_DATA.is_dir(),
    reason=f"sample data not found at {SAMPLE_DATA} (set HUBCTL_SAMPLE_DATA to the shared/data "
           "folder to run the conformance tests)",
)


#: moto's S3 server (the dev extra's moto[server]): the S3 tests skip without it.
MOTO = Path(sys.executable).parent / "moto_server"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto in server mode on a free loopback port, for the whole session."""
    if not MOTO.exists():
        pytest.skip("moto_server is not installed (pip install -e '.[dev]' brings moto[server])")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def aws_env(endpoint: str) -> dict[str, str]:
    """The AWS variables that point hubctl (and the Spark workers) at the moto server."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ALLOW_HTTP": "true", "HUBCTL_LEASE_SECONDS": "3"}


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<new bucket>/hub`` with the AWS variables set for this process."""
    import boto3

    for k, v in aws_env(s3_endpoint).items():
        monkeypatch.setenv(k, v)
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing"
                 ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/hub"


@pytest.fixture(scope="session")
def spark_master(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Spark standalone cluster on loopback (one master, two workers), shared by every test
    of the session that runs on Spark; its ``spark://127.0.0.1:PORT``. Where moto is
    installed, the workers start with the moto server's AWS variables, as a cluster's machines
    would have their object store's, so that their executors read and write an S3 lake."""
    from tests.spark import cluster

    extra = aws_env(request.getfixturevalue("s3_endpoint")) if MOTO.exists() else {}
    with cluster(workers=2, extra_env=extra) as url:
        yield url
