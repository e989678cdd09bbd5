"""Shared test helpers: where the real sample data lives, and the marker that skips without it."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def spark_master() -> Iterator[str]:
    """A Spark standalone cluster on loopback (one master, two workers), shared by every test
    of the session that runs on Spark; its ``spark://127.0.0.1:PORT``."""
    from tests.spark import cluster

    with cluster(workers=2) as url:
        yield url
