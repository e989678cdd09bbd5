"""A real Spark standalone cluster on loopback for the ``--engine`` tests and benchmarks: one
master and two workers started with the ``spark-class`` script of the pyspark wheel (PyPI),
each worker with one core. Without Java (``make test`` runs scripts/ensure-java, which
installs Debian's openjdk-17-jre-headless) or pyspark the tests that need it skip and say why.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hubctl.spark import JAVA_OPTIONS_ENV, JVM_OPTIONS, java_missing
from tests.acme import free_port

__all__ = ["SKIP_REASON", "cluster", "needs_spark"]

SKIP_REASON = java_missing()
# Tiny inputs: JVMs that start fast matter more than their peak speed (hubctl.spark says why
# this is not the default).
os.environ.setdefault(JAVA_OPTIONS_ENV, JVM_OPTIONS)
needs_spark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _wait(log: Path, pattern: str, proc: subprocess.Popen[bytes], what: str,
          timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if re.search(pattern, text):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark {what} exited ({proc.returncode}):\n{text[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the Spark {what} did not start in {timeout:.0f} s:\n"
                       f"{log.read_text(errors='replace')[-2000:]}")


@contextmanager
def cluster(workers: int = 2, cores: int = 1, memory: str = "1g", timeout: float = 240.0,
            with_pids: bool = False, extra_env: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Start a master and ``workers`` workers on 127.0.0.1; yields the master's
    ``spark://127.0.0.1:PORT`` (with ``with_pids``, a pair of it and the JVMs' process ids);
    stops them (by their process ids) at the end. ``extra_env`` adds to the environment the JVMs,
    and so the executors and their Python workers, start with (an S3 lake's AWS variables)."""
    home = _spark_home()
    script = str(home / "bin" / "spark-class")
    env = dict(os.environ, **(extra_env or {}), SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_NO_DAEMONIZE="1", SPARK_DAEMON_JAVA_OPTS=JVM_OPTIONS,
               SPARK_DAEMON_MEMORY="256m")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="hubctl-spark-") as tmp:
        env["SPARK_WORKER_DIR"] = str(Path(tmp) / "work")
        port = free_port()
        url = f"spark://127.0.0.1:{port}"
        try:
            log = Path(tmp) / "master.log"
            with log.open("wb") as out:  # the child keeps its own descriptor
                master = subprocess.Popen(
                    [script, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(port), "--webui-port", str(free_port())],
                    env=env, stdout=out, stderr=subprocess.STDOUT)
            procs.append(master)
            _wait(log, r"I have been elected leader", master, "master", timeout)
            logs = []
            for i in range(workers):
                wlog = Path(tmp) / f"worker{i}.log"
                with wlog.open("wb") as out:
                    worker = subprocess.Popen(
                        [script, "org.apache.spark.deploy.worker.Worker", url, "--host",
                         "127.0.0.1", "--cores", str(cores), "--memory", memory,
                         "--webui-port", str(free_port()), "--work-dir",
                         str(Path(tmp) / f"work{i}")],
                        env=env, stdout=out, stderr=subprocess.STDOUT)
                procs.append(worker)
                logs.append((wlog, worker))
            for i, (wlog, worker) in enumerate(logs):
                _wait(wlog, r"Successfully registered with master", worker, f"worker {i}",
                      timeout)
            yield (url, [p.pid for p in procs]) if with_pids else url
        finally:
            from hubctl import spark

            spark.stop()
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
