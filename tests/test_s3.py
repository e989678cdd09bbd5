"""The lake on object storage (issue 20 §1): moto's S3 server on loopback, started here.

Every command on an ``s3://`` lake gives what it gives on a local folder; two "machines"
(processes with their own temporary folders and lock state) ingesting at once write what one
would; a lease whose holder was killed is taken over once it expires, and not before.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hubctl.errors import LockHeld
from hubctl.locks import table_commit
from hubctl.s3 import parse_root
from tests.conftest import MOTO
from tests.conftest import aws_env as _aws
from tests.helpers import hub, hub_json, row, write_openaq
from tests.test_integrity import HUBCTL, SMALL_BATCHES, openaq_files

pytestmark = pytest.mark.skipif(not MOTO.exists(), reason="moto_server is not installed "
                                "(pip install -e '.[dev]' brings moto[server])")


def _rows(lake: str | Path, sql: str) -> list[dict[str, Any]]:
    return list(hub_json(lake, "sql", sql))  # type: ignore[arg-type]


AQ = ("SELECT id, observed_at, no2, pm25 FROM AirQualityObserved ORDER BY id, observed_at")


@pytest.mark.slow
def test_every_command_reads_and_writes_an_s3_lake_as_a_local_one(
        s3_lake: str, tmp_path: Path) -> None:
    rows = [row(s, h, p, 10 + h + i) for h in range(24) for i, s in enumerate(("S1", "S2"))
            for p in ("no2", "pm25")]
    data, st = write_openaq(tmp_path, [*rows[:48], row("S1", 3, "no2", "n/a")])
    later, _ = write_openaq(tmp_path, rows[48:], name="later.csv")  # a second file: compaction
    local = tmp_path / "local"
    for lake in (s3_lake, local):
        run = hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))  # type: ignore[arg-type]
        assert (run["status"], run["written"], run["rejected"]) == ("ok", 48 + 3, 1)
        hub_json(lake, "ingest", "openaq", str(later), "--stations", str(st))  # type: ignore[arg-type]
        result = hub(lake, "run", "air_quality", "--json")  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
    # the same rows, rejects and pipeline output as the local lake
    assert _rows(s3_lake, AQ) == _rows(local, AQ)
    means = "SELECT * EXCLUDE (_run_id) FROM derived.air_quality_means ORDER BY ALL"
    assert _rows(s3_lake, means) == _rows(local, means) != []
    (reject,) = hub_json(s3_lake, "rejects")  # type: ignore[arg-type]
    assert reject["record"] == "line 50" and "n/a" in reject["raw"]
    assert [r | {"run_id": ""} for r in hub_json(local, "rejects")] == [reject | {"run_id": ""}]
    tables = {t["table"]: t for t in hub_json(s3_lake, "tables")}  # type: ignore[arg-type]
    assert tables["AirQualityObserved"]["rows"] == 48 and tables["_runs"]["rows"] == 2
    # the ledger: a run row per ingest, ended and reconciled; no marker left behind
    ledger = _rows(s3_lake, "SELECT status, read, written, rejected FROM _runs ORDER BY read")
    assert ledger == [{"status": "ok", "read": 48 + 3, "written": 48, "rejected": 0},
                      {"status": "ok", "read": 48 + 4, "written": 48 + 3, "rejected": 1}]
    assert not any(parse_root(s3_lake).glob("_running"))
    # re-ingest: all duplicates
    again = hub_json(s3_lake, "ingest", "openaq", str(data), "--stations", str(st), "--force")  # type: ignore[arg-type]
    assert again["duplicate"] == 48 + 3 and again["written"] == 0
    # maintenance: check, compact, vacuum; the rows stay
    assert hub_json(s3_lake, "lake", "check")["status"] == "clean"  # type: ignore[arg-type]
    hub_json(s3_lake, "lake", "compact", "AirQualityObserved")  # type: ignore[arg-type]
    (vacuumed,) = hub_json(s3_lake, "lake", "vacuum", "AirQualityObserved",  # type: ignore[arg-type]
                           "--retention-hours", "0")
    assert vacuumed["files"] >= 1
    assert _rows(s3_lake, AQ) == _rows(local, AQ)


def test_sql_on_an_s3_lake_only_reads_the_named_tables(s3_lake: str, tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 5)])
    hub_json(s3_lake, "ingest", "openaq", str(data), "--stations", str(st))  # type: ignore[arg-type]
    bucket = parse_root(s3_lake).bucket
    for query in (f"COPY (SELECT 1) TO 's3://{bucket}/hub/AirQualityObserved/x.parquet'",
                  f"SELECT * FROM read_parquet('s3://{bucket}/elsewhere/x.parquet')",
                  "SELECT * FROM read_csv('/etc/passwd')"):
        result = hub(s3_lake, "sql", query)  # type: ignore[arg-type]
        assert result.exit_code != 0 and "refused" in result.output, (query, result.output)
    assert not (parse_root(s3_lake) / "AirQualityObserved" / "x.parquet").is_file()


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_machines_ingesting_the_same_sources_at_once_write_what_one_would(
        s3_endpoint: str, s3_lake: str, tmp_path: Path) -> None:
    stations, hours = 20, 40
    no2, pm25, st = openaq_files(tmp_path / "in", stations, hours)
    procs = []
    # machines 0 and 1 write the same keys (no2, pm25); machine 2 runs machine 0's source at
    # the same time: one of those two is skipped by the source's lease (75), unless the other
    # had finished (then it finds every record a duplicate)
    for machine, data in enumerate((no2, pm25, no2)):
        home = tmp_path / f"machine{machine}"
        home.mkdir()
        env = {**os.environ, **_aws(s3_endpoint), "HUBCTL_LAKE": s3_lake,
               "TMPDIR": str(home), "HOME": str(home)}
        procs.append(subprocess.Popen(
            [*SMALL_BATCHES, "150", "ingest", "openaq", str(data), "--stations", str(st),
             "--force", "--json"], env=env, cwd=home, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    runs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode in (0, 75), err
        runs.append(json.loads(out))
    codes = [p.returncode for p in procs]
    assert codes[1] == 0 and 0 in (codes[0], codes[2]), codes
    done = [r for r, code in zip(runs, codes, strict=True) if code == 0]
    twice = len(done) == 3
    local = tmp_path / "one-machine"
    for data in (no2, pm25):
        hub_json(local, "ingest", "openaq", str(data), "--stations", str(st))
    assert _rows(s3_lake, AQ) == _rows(local, AQ)
    keys = stations * hours
    # true counts across machines: every cell written once, the rest found duplicate
    assert sum(r["written"] for r in done) == 2 * keys + stations
    assert sum(r["duplicate"] for r in done) == (keys + 2 * stations if twice else stations)
    assert all(r["reconciles"] and r["status"] == "ok" for r in done)
    (ledger,) = _rows(s3_lake, "SELECT count(*) AS n, count(DISTINCT run_id) AS runs "
                               "FROM _runs WHERE status = 'ok'")
    assert ledger == {"n": len(done), "runs": len(done)}


HOLDER = """
import sys, time
from hubctl import running
from hubctl.locks import table_commit
from hubctl.s3 import parse_root
if sys.argv[2] != "this":  # a holder on another machine: its pid means nothing here
    running._me = lambda pid: (("host", sys.argv[2]), ("boot", ""), ("pid", pid),
                               ("pid_start", None))
with table_commit(parse_root(sys.argv[1]), "AirQualityObserved"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("machine", ["another", "this"])
def test_a_killed_lease_holder_is_taken_over_after_its_lease_expires(
        s3_endpoint: str, s3_lake: str, machine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On another machine, a killed holder is taken over within one lease time of its last
    renewal (3 s here); on this machine, at once (its pid is gone), as flock would be, even
    with a lease of 60 s."""
    seconds = "3" if machine == "another" else "60"
    monkeypatch.setenv("HUBCTL_LEASE_SECONDS", seconds)
    root = parse_root(s3_lake)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, s3_lake, "machine-b" if machine == "another" else "this"],
        text=True, env={**os.environ, **_aws(s3_endpoint), "HUBCTL_LEASE_SECONDS": seconds},
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        time.sleep(4)  # longer than a 3 s lease: the live holder renews it
        with pytest.raises(LockHeld, match="locked for commits by pid"), \
                table_commit(root, "AirQualityObserved", timeout=1):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        with table_commit(root, "AirQualityObserved", timeout=120):
            waited = time.monotonic() - killed
        if machine == "another":  # renewed at most 1 s before the kill: expires 2-3 s after
            assert 1.5 <= waited <= 3 + 2, waited
        else:
            assert waited <= 10, waited
        with table_commit(root, "AirQualityObserved", timeout=1):  # released: free at once
            pass
    finally:
        holder.kill()
        holder.wait()


# The real CLI with small batches, which freezes itself (SIGSTOP) at its first commit to
# AirQualityObserved: "before" it (its rows classified, its leases checked, the commit about to
# be sent: a GC pause or a frozen VM at the worst moment) or "after" it (between two commits).
STALLS = """
import os, signal, sys
import hubctl.lake
where, commit, stalled = sys.argv.pop(1), hubctl.lake.write_deltalake, []
def write_deltalake(table, *args, **kwargs):
    first = not stalled and "AirQualityObserved" in getattr(table, "table_uri", "")
    if first:
        stalled.append(True)
    if first and where == "before":
        os.kill(os.getpid(), signal.SIGSTOP)
    commit(table, *args, **kwargs)
    if first and where == "after":
        os.kill(os.getpid(), signal.SIGSTOP)
if where != "no":
    hubctl.lake.write_deltalake = write_deltalake
""" + SMALL_BATCHES[2]


@contextlib.contextmanager
def _machines(s3_endpoint: str, s3_lake: str, tmp_path: Path
              ) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """A way to start "machines" (processes with their own temporary folders) ingesting the
    same 4,000 OpenAQ readings (commits of about 1,200) as source ``shared``, with STALLS;
    every one started is killed when the block ends."""
    no2, _, st = openaq_files(tmp_path / "in", 20, 200)
    started: list[subprocess.Popen[str]] = []

    def machine(name: str, stall: str, lease: str = "2") -> subprocess.Popen[str]:
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        env = {**os.environ, **_aws(s3_endpoint), "HUBCTL_LAKE": s3_lake,
               "HUBCTL_LEASE_SECONDS": lease, "TMPDIR": str(home), "HOME": str(home)}
        started.append(subprocess.Popen(
            [sys.executable, "-c", STALLS, stall, "100", "ingest", "openaq", str(no2),
             "--stations", str(st), "--source-name", "shared", "--json"],
            env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return started[-1]

    try:
        yield machine
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def _frozen(proc: subprocess.Popen[str]) -> bool:
    """Wait until ``proc`` stops itself (True) or exits (False, its exit code set)."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    if os.WIFSTOPPED(status):
        return True
    proc.returncode = os.waitstatus_to_exitcode(status)
    return False


def _woken(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGCONT to a frozen ``proc``; its output once it ends."""
    os.kill(proc.pid, signal.SIGCONT)
    return proc.communicate(timeout=120)


def _taking_over(machine: Callable[..., subprocess.Popen[str]], *args: str
                 ) -> subprocess.Popen[str]:
    """``machine(*args)`` started again while it exits 75 (a frozen machine's source lease
    is current), until it runs: within 30 s."""
    deadline = time.monotonic() + 30
    time.sleep(1)
    while True:
        proc = machine(*args)
        if args[1] == "no":
            proc.wait(timeout=120)
            if proc.returncode != 75:
                return proc
        elif _frozen(proc) or proc.returncode != 75:
            return proc
        assert time.monotonic() < deadline, proc.communicate()


@pytest.mark.subprocess
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_holder_stalled_past_its_lease_commits_nothing_after_a_takeover(
        s3_endpoint: str, s3_lake: str, tmp_path: Path, where: str) -> None:
    """Machine A freezes (SIGSTOP) just before or just after its first commit of readings, past
    its 2 s leases; machine B takes them over and ingests the same file; then A wakes up. A
    commits nothing more: its leases are checked before each classification and commit, and a
    commit already on its way is made at the version A read with A's lease tokens, so it loses
    to B's. A's run is recorded as failed and says why; the lake holds what one machine would
    have written."""
    with _machines(s3_endpoint, s3_lake, tmp_path) as machine:
        a = machine("a", where)
        assert _frozen(a), a.communicate()
        frozen = time.monotonic()
        b = _taking_over(machine, "b", "no")
        out, err = b.communicate(timeout=120)
        assert b.returncode == 0, err
        assert "took over the lease" in err and time.monotonic() - frozen >= 2
        run_b = json.loads(out)
        out, err = _woken(a)
    assert a.returncode == 1, err
    assert "refused to commit to AirQualityObserved: another machine took over the lease of" \
        in err, err
    # the lake: every reading once, as one machine would have written it
    (counts,) = _rows(s3_lake, "SELECT count(*) AS n, count(DISTINCT (id, observed_at)) AS k, "
                               "count(no2) AS no2 FROM AirQualityObserved")
    assert counts == {"n": 4000, "k": 4000, "no2": 4000}
    # the ledger: A failed (what it committed stays, the rest is unreached), B found what A
    # had committed already there; together they wrote each reading and station once
    runs = _rows(s3_lake, "SELECT status, error, read, written, duplicate, unreached "
                          "FROM _runs WHERE source = 'shared' ORDER BY started_at")
    assert [r["status"] for r in runs] == ["failed", "ok"], runs
    run_a = runs[0]
    assert "another machine took over the lease" in run_a["error"]
    assert run_a["read"] == run_a["written"] + run_a["unreached"] and run_a["duplicate"] == 0
    if where == "before":  # the stations only
        assert run_a["written"] == 20
    else:  # and the readings of its first commit
        assert 20 < run_a["written"] < 4000 and run_a["unreached"] > 0
    assert run_b["written"] + run_a["written"] == 4000 + 20
    assert run_b["duplicate"] == run_a["written"] and runs[1]["written"] == run_b["written"]


@pytest.mark.subprocess
def test_a_holder_stalled_past_its_lease_that_nobody_took_over_goes_on(
        s3_endpoint: str, s3_lake: str, tmp_path: Path) -> None:
    """Frozen for 3 s after its first commit, past its 2 s leases, with no other machine
    wanting them: the holder renews them when it wakes up (before its next commit) and
    finishes as if nothing had happened."""
    with _machines(s3_endpoint, s3_lake, tmp_path) as machine:
        a = machine("a", "after")
        assert _frozen(a), a.communicate()
        time.sleep(3)
        out, err = _woken(a)
    assert a.returncode == 0, err
    run = json.loads(out)
    assert (run["status"], run["written"], run["duplicate"]) == ("ok", 4020, 0)
    (counts,) = _rows(s3_lake, "SELECT count(*) AS n, count(DISTINCT (id, observed_at)) AS k "
                               "FROM AirQualityObserved")
    assert counts == {"n": 4000, "k": 4000}


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_stalled_holders_commit_landing_after_a_takeover_is_never_duplicated(
        s3_endpoint: str, s3_lake: str, tmp_path: Path) -> None:
    """The window the fence leaves open (hubctl/lease.py): A freezes just before its first
    commit of readings, its leases checked; B takes them over (a 10 s lease) and freezes just
    before its own first commit, its rows classified; A wakes up and its commit lands (nobody
    had committed since A read the table), then A fails at its next check; B wakes up, and its
    commit, classified before A's landed, is refused rather than duplicating A's readings. A
    third run writes the rest: the lake holds each reading once."""
    with _machines(s3_endpoint, s3_lake, tmp_path) as machine:
        a = machine("a", "before")
        assert _frozen(a), a.communicate()
        b = _taking_over(machine, "b", "before", "10")
        assert b.returncode is None, b.communicate()
        _, err_a = _woken(a)
        _, err_b = _woken(b)
        c = machine("c", "no")
        out, err = c.communicate(timeout=120)
    assert a.returncode == 1 and "another machine took over the lease of" in err_a, err_a
    assert b.returncode == 1, err_b
    assert "which held the lock 'source:shared' before this process took its lease over, " \
           "committed version 1 after this process had read version 0" in err_b, err_b
    assert c.returncode == 0, err
    (counts,) = _rows(s3_lake, "SELECT count(*) AS n, count(DISTINCT (id, observed_at)) AS k "
                               "FROM AirQualityObserved")
    assert counts == {"n": 4000, "k": 4000}
    runs = _rows(s3_lake, "SELECT status, written, duplicate FROM _runs WHERE source = "
                          "'shared' ORDER BY started_at")
    assert [r["status"] for r in runs] == ["failed", "failed", "ok"], runs
    run_a, run_b, run_c = runs
    assert 20 < run_a["written"] < 4020 and run_b["written"] == 0
    assert run_c["written"] + run_a["written"] == 4020 and run_c["duplicate"] == run_a["written"]


DIES_RUNNING = """
import os, sys
from hubctl import running
from hubctl.s3 import parse_root
if sys.argv[2] != "this":  # a run on another machine
    running._me = lambda pid: (("host", sys.argv[2]), ("boot", ""), ("pid", pid),
                               ("pid_start", None))
running.write(parse_root(sys.argv[1]), "run-1", {"counts": {"written": 7}})
os._exit(9)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("machine", ["this", "another"])
def test_a_dead_runs_marker_on_s3_is_claimed_once(s3_endpoint: str, s3_lake: str,
                                                  machine: str) -> None:
    """A dead run of this machine is found at once (its pid is gone); one of another machine
    once its marker has not been renewed for a lease time (3 s here)."""
    from hubctl import running

    root = parse_root(s3_lake)
    subprocess.run([sys.executable, "-c", DIES_RUNNING, s3_lake,
                    "machine-b" if machine == "another" else "this"], check=False,
                   env={**os.environ, **_aws(s3_endpoint)}, timeout=60)
    assert running.any_markers(root)
    if machine == "another":
        assert list(running.dead_markers(root)) == []  # it may live: only its age tells
        time.sleep(4)
    (marker,) = running.dead_markers(root)
    assert marker.run_id == "run-1" and marker.content is not None
    assert marker.content["counts"] == {"written": 7}
    assert list(running.dead_markers(root)) == []  # claimed: nobody records it twice
    marker.done()
    assert not running.any_markers(root)


def test_an_s3_lake_is_chosen_like_a_folder_and_its_endpoint_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hubctl.config import build_config
    from hubctl.errors import ConfigError
    from hubctl.s3 import S3Root

    monkeypatch.delenv("HUBCTL_LAKE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://objects.example")
    toml = tmp_path / "hub.toml"
    assert build_config({"lake": {"path": "s3://city/hub/"}}, toml).lake == S3Root("city", "hub")
    monkeypatch.setenv("HUBCTL_LAKE", "s3://other")
    assert build_config({"lake": {"path": "lake"}}, toml).lake == S3Root("other", "")
    assert str(build_config({}, toml, "s3://city/a/b").lake) == "s3://city/a/b"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    with pytest.raises(ConfigError, match="AWS_ALLOW_HTTP=true"):
        build_config({}, toml, "s3://city/hub")
    with pytest.raises(ConfigError, match="not an S3 location"):
        build_config({}, toml, "s3:///no-bucket")


def test_the_store_refuses_stale_conditional_writes(s3_lake: str) -> None:
    """What leases rest on: create once, replace and delete only the version one holds."""
    obj = parse_root(s3_lake) / "_locks" / "probe.lease"
    first = obj.create(b"a")
    assert first is not None and obj.create(b"b") is None
    second = obj.replace_if(b"c", first)
    assert second is not None and obj.replace_if(b"d", first) is None
    assert not obj.delete_if(first) and obj.read_bytes() == b"c"
    assert obj.delete_if(second) and not obj.is_file()


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_run_killed_mid_ingest_on_s3_is_recorded_and_its_source_freed_at_once(
        s3_endpoint: str, s3_lake: str, tmp_path: Path) -> None:
    """kill -9 mid-ingest: the next run of the source on this machine takes the dead run's
    source lease over at once (a 60 s lease), records it as interrupted, and writes the rest
    without duplicates."""
    no2, _, st = openaq_files(tmp_path / "in", 40, 250)  # 10,000 lines: several 64 KiB blocks
    env = {**os.environ, **_aws(s3_endpoint), "HUBCTL_LAKE": s3_lake,
           "HUBCTL_LEASE_SECONDS": "60"}
    argv = [*SMALL_BATCHES, "150", "ingest", "openaq", str(no2), "--stations", str(st),
            "--source-name", "slow", "--json"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    markers, deadline = parse_root(s3_lake) / "_running", time.monotonic() + 120
    while not any(json.loads(m.read_text())["counts"]["written"] >= 1000
                  for m in markers.iterdir() if m.suffix == ".json"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    again = subprocess.run([HUBCTL, *argv[argv.index("ingest"):]], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    runs = _rows(s3_lake, "SELECT status, written FROM _runs WHERE source = 'slow' "
                          "ORDER BY started_at")
    assert [r["status"] for r in runs] == ["interrupted", "ok"] and runs[0]["written"] >= 1000
    (counts,) = _rows(s3_lake, "SELECT count(*) AS n, count(DISTINCT (id, observed_at)) AS k "
                               "FROM AirQualityObserved")
    assert counts == {"n": 10000, "k": 10000}


# ------------------------------------------ the commands only run by hand before (issue 20 §1)
META = ["--licence", "CC-BY-4.0", "--publisher", "Test City", "--contact", "data@example.org"]


def _twin_lakes(s3_lake: str, tmp_path: Path) -> Path:
    """The same small OpenAQ file ingested and ``air_quality`` run on the S3 lake and on a
    local one; returns the local lake."""
    data, st = write_openaq(tmp_path / "in", [row(s, h, p, 10 + h + i) for h in range(6)
                                              for i, s in enumerate(("S1", "S2"))
                                              for p in ("no2", "pm25")])
    local = tmp_path / "local"
    for lake in (s3_lake, local):
        run = hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))  # type: ignore[arg-type]
        assert (run["written"], run["rejected"]) == (24 + 3, 0)  # cells and stations
        result = hub(lake, "run", "air_quality")  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
    return local


def _parquet_rows(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every Parquet file of an export bundle: its rows, sorted, by path in the bundle."""
    import pyarrow.parquet as pq

    return {str(p.relative_to(folder)): sorted(tuple(r.values()) for r in
                                               pq.read_table(p).to_pylist())
            for p in sorted(folder.rglob("*.parquet"))}


@pytest.mark.slow
def test_entities_export_catalog_report_and_schedule_on_s3_give_what_they_give_locally(
        s3_lake: str, tmp_path: Path) -> None:
    import duckdb

    from hubctl.duck import use_filesystem
    from hubctl.s3 import duckdb_filesystem

    local = _twin_lakes(s3_lake, tmp_path)
    # entities: the same NGSI-LD documents
    for args in (("AirQualityObserved", "--limit", "0"),
                 ("AirQualityObserved", "--latest", "--format", "keyValues")):
        on_s3, here = hub(s3_lake, "entities", *args), hub(local, "entities", *args)  # type: ignore[arg-type]
        assert on_s3.exit_code == 0 and here.exit_code == 0, on_s3.output + here.output
        assert json.loads(on_s3.stdout) == json.loads(here.stdout) != []
    # export: a local bundle with the same tables, rows and files
    bundles = {}
    for name, lake in (("s3", s3_lake), ("local", local)):
        out = hub_json(lake, "export", "air", "AirQualityObserved",  # type: ignore[arg-type]
                       "--to", str(tmp_path / f"bundle-{name}"), *META)
        bundles[name] = [(t["table"], t["rows"]) for t in out["tables"]]
    assert bundles["s3"] == bundles["local"] == [("AirQualityObserved", 12)]
    from_s3, from_here = tmp_path / "bundle-s3", tmp_path / "bundle-local"
    assert sorted(p.relative_to(from_s3) for p in from_s3.rglob("*")) == \
        sorted(p.relative_to(from_here) for p in from_here.rglob("*"))
    assert _parquet_rows(from_s3) == _parquet_rows(from_here) != {}
    # catalog: a DuckDB file whose views read the snapshot's s3:// files, as the local one's
    # read its folder
    use_filesystem(duckdb_filesystem())  # what a client's httpfs would do, without a download
    answers = {}
    for name, lake, extra in (("s3", s3_lake, ()), ("local", local, ("--absolute",))):
        db = tmp_path / f"{name}.duckdb"
        result = hub(lake, "catalog", str(db), *extra)  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
        # the S3 lake's file is not rewritten by later commits: the user is told so
        assert ("not rewritten by later commits" in result.stderr) == (name == "s3")
        con = duckdb.connect(str(db), read_only=True)
        con.register_filesystem(duckdb_filesystem())
        try:
            answers[name] = [con.execute(AQ).fetchall(), con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
        finally:
            con.close()
    assert answers["s3"] == answers["local"] and len(answers["s3"][0]) == 6 * 2
    # report: the HTML page, with the air-quality section from the pipeline's run
    reports = {name: hub_json(lake, "report", "--out", str(tmp_path / f"report-{name}"))  # type: ignore[arg-type]
               for name, lake in (("s3", s3_lake), ("local", local))}
    page = Path(reports["s3"]["path"]).read_text(encoding="utf-8")
    (run_id,) = [r["run_id"] for r in _rows(s3_lake, "SELECT run_id FROM _pipeline_runs")]
    assert page.startswith("<!DOCTYPE html>") and run_id in page
    assert [(s["title"], s["charts"]) for s in reports["s3"]["sections"]] == \
        [(s["title"], s["charts"]) for s in reports["local"]["sections"]]
    assert any(s["run_id"] == run_id for s in reports["s3"]["sections"])
    # schedule emit: the S3 lake on every line, no local folder for systemd to open
    toml = tmp_path / "hub.toml"
    toml.write_text(f'[lake]\npath = "{s3_lake}"\n[sources.air]\nadapter = "openaq"\n'
                    f'inputs = ["{tmp_path}/in/long.csv"]\nschedule = "*/10 * * * *"\n'
                    f'options = {{ stations = "{tmp_path}/in/stations.csv" }}\n')
    cron = hub(s3_lake, "--config", str(toml), "schedule", "emit", "--cron")  # type: ignore[arg-type]
    assert cron.exit_code == 0, cron.output
    (line,) = [ln for ln in cron.stdout.splitlines() if "--source air" in ln]
    assert f"--lake {s3_lake} ingest --source air" in line
    units = hub(s3_lake, "--config", str(toml), "schedule", "emit", "--systemd")  # type: ignore[arg-type]
    assert units.exit_code == 0, units.output
    assert f"--lake {s3_lake}" in units.stdout and "ReadWritePaths" not in units.stdout


def test_lake_check_repair_and_history_on_s3_give_what_they_give_locally(s3_lake: str,
                                                              tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from deltalake import write_deltalake

    from hubctl.lake import Lake
    from hubctl.registry import get_type
    from hubctl.s3 import delta_options
    from tests.test_integrity import lake_rows

    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", h) for h in range(4)])
    local = tmp_path / "local"
    then = datetime.now(UTC) + timedelta(hours=1)  # written after the ingest: these win
    for lake in (s3_lake, local):
        hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))  # type: ignore[arg-type]
        where = Lake(parse_root(lake) if isinstance(lake, str) else lake).path(
            "AirQualityObserved")
        for value, run, at in ((1.0, "a", then), (2.0, "b", then + timedelta(hours=1))):
            # what another tool could leave: keys the lake already has, appended again
            write_deltalake(str(where), lake_rows("AirQualityObserved", [("S1", 1), ("S1", 2)],
                                                  value, run, at).drop_columns(["_records"]),
                            mode="append",
                            partition_by=get_type("AirQualityObserved").partition_by or None,
                            storage_options=delta_options(where))
        found = hub(lake, "lake", "check", "--json")  # type: ignore[arg-type]
        assert found.exit_code == 1 and json.loads(found.stdout)["duplicate_keys"] == 2
        fixed = hub(lake, "lake", "check", "--repair", "--json")  # type: ignore[arg-type]
        assert fixed.exit_code == 0 and json.loads(fixed.stdout)["status"] == "repaired", \
            fixed.output
        assert hub_json(lake, "lake", "check")["status"] == "clean"  # type: ignore[arg-type]
    kept = ("SELECT id, observed_at, no2, if(_run_id IN ('a', 'b'), _run_id, 'ingest') AS run "
            "FROM AirQualityObserved ORDER BY ALL")
    assert _rows(s3_lake, kept) == _rows(local, kept)
    assert [(r["no2"], r["run"]) for r in _rows(s3_lake, kept)] == [
        (0.0, "ingest"), (2.0, "b"), (2.0, "b"), (3.0, "ingest")]
    repairs = ("SELECT read, written, updated, duplicate, rejected, status FROM _runs "
               "WHERE source = 'lake-check'")
    assert _rows(s3_lake, repairs) == _rows(local, repairs) != []
    # lake history: the same commits (ingest, two appends by the other tool, the repair)
    on_s3, here = (hub_json(lake, "lake", "history", "AirQualityObserved")  # type: ignore[arg-type]
                   for lake in (s3_lake, local))
    assert [(c["version"], c["operation"]) for c in on_s3] == \
        [(c["version"], c["operation"]) for c in here] and len(on_s3) >= 4


@pytest.mark.subprocess
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_listen_commits_every_message_to_an_s3_lake_once(s3_lake: str, tmp_path: Path,
                                                         workers: int) -> None:
    """One listener in this process; two worker processes sharing the subscription (their
    commit lock a flock of this machine, the key check against the S3 lake)."""
    from tests.test_mqtt import MOSQUITTO, Broker, InProcess, Listener, measures, publish, write_hub

    if MOSQUITTO is None:
        pytest.skip("the mosquitto broker is not installed (scripts/ensure-mosquitto adds it)")
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        config = write_hub(tmp_path, broker)
        config.write_text(config.read_text().replace('path = "lake"', f'path = "{s3_lake}"'))
        listener = InProcess(config) if workers == 1 else \
            Listener(config, "--workers", "2", subscribed=2)
        publish(broker, "/json/k1/d1/attrs", measures(0, 200))
        publish(broker, "/json/k1/d1/attrs", measures(150, 50), "pub-again")  # 50 repeats
        count, deadline = 0, time.monotonic() + 60
        while count < 200 and time.monotonic() < deadline:
            result = hub(s3_lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved",  # type: ignore[arg-type]
                         "--json")
            count = json.loads(result.stdout)[0]["n"] if result.exit_code == 0 else 0
            time.sleep(0.3)
        totals = listener.terminate()
    finally:
        broker.stop()
    assert count == 200 and totals["messages"] == 250
    (ledger,) = _rows(s3_lake, "SELECT sum(read) AS read, sum(written) AS written, "
                               "sum(duplicate) AS duplicate, sum(rejected) AS rejected, "
                               "bool_and(status = 'ok') AS ok FROM _runs")
    assert ledger == {"read": 250, "written": 200, "duplicate": 50, "rejected": 0, "ok": True}
    assert _rows(s3_lake, "SELECT count(DISTINCT observed_at) AS n FROM AirQualityObserved") \
        == [{"n": 200}]
