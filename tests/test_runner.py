"""The pipeline runner: parameters, derived tables, the ledger, --assert and --all.

A small real pipeline (daily means of a pollutant per station) runs on a real lake; it is
registered for the test only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from hubctl.errors import UsageError
from hubctl.lake import Lake
from hubctl.locks import hold
from hubctl.pipeline import Param, PipelineContext, PipelineResult, metrics
from hubctl.pipelines import PIPELINES
from hubctl.runner import parse_assert, parse_params
from tests.helpers import hub, hub_json, row, write_openaq


class DailyMeans:
    """Daily mean of one pollutant per station."""

    name = "aq_daily"
    summary = "Daily mean of a pollutant per station."
    inputs = ("AirQualityObserved",)
    optional_inputs = ("PointOfInterest",)
    params = (
        Param("attribute", "no2", "pollutant column", choices=("no2", "pm25")),
        Param("min_hours", 1, "hours a day needs to count", minimum=1, maximum=24),
        Param("since", date(2000, 1, 1), "first day"),
    )
    example = "hubctl run aq_daily --param attribute=pm25"

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Group by station and day in DuckDB."""
        col = ctx.params["attribute"]
        ctx.step("grouping")
        means = ctx.sql(
            f"SELECT id, CAST(observed_at AS DATE) AS day, avg({col}) AS mean, "
            f"count({col}) AS hours FROM AirQualityObserved WHERE {col} IS NOT NULL "
            "AND CAST(observed_at AS DATE) >= ? GROUP BY ALL HAVING count(*) >= ? "
            "ORDER BY id, day", [ctx.params["since"], ctx.params["min_hours"]])
        top = max(means["mean"].to_pylist(), default=0.0)
        return PipelineResult(
            tables={"means": means, "empty": pa.table({"nothing": pa.nulls(0)})},
            summary={"stations": len(set(means["id"].to_pylist())),
                     "days": {"count": means.num_rows}, "max_mean": top,
                     "ok": True},
            notes=[f"{col} only"])


class Broken(DailyMeans):
    """A pipeline with a bug."""

    name = "broken"

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Fails."""
        raise ZeroDivisionError("bug in the analysis")


class Terminated(DailyMeans):
    """A pipeline whose process gets SIGTERM in the middle of its analysis (``kill``)."""

    name = "aa_terminated"  # first in --all's order

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Computes, is sent SIGTERM, would compute more."""
        super().run(ctx)
        os.kill(os.getpid(), signal.SIGTERM)
        ctx.sql("SELECT count(*) FROM range(1000)")
        raise AssertionError("the signal did not stop the analysis")


class _SignalOnWrite(dict[str, pa.Table]):
    """Derived tables that send SIGTERM to the process when the runner starts writing them."""

    def items(self):  # type: ignore[no-untyped-def, override]
        os.kill(os.getpid(), signal.SIGTERM)
        return super().items()


class TerminatedWhileWriting(DailyMeans):
    """A pipeline whose process gets SIGTERM while the runner writes its derived tables."""

    name = "terminated_writing"

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """DailyMeans's result, its tables in a :class:`_SignalOnWrite`."""
        result = super().run(ctx)
        result.tables = _SignalOnWrite(result.tables)
        return result


class NeedsGtfs(DailyMeans):
    """A pipeline whose inputs are absent."""

    name = "needs_gtfs"
    inputs = ("GtfsStopTime|GtfsTrip",)


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for p in (DailyMeans(), Broken(), NeedsGtfs()):
        monkeypatch.setitem(PIPELINES, p.name, p)
    rows = [row("S1", h, "no2", 10 + h) for h in range(4)] + [row("S2", 1, "no2", 40),
                                                             row("S2", 2, "pm25", 7)]
    data, stations = write_openaq(tmp_path / "in", rows)
    root = tmp_path / "lake"
    result = hub(root, "ingest", "openaq", str(data), "--stations", str(stations))
    assert result.exit_code == 0, result.output
    return root


def test_run_writes_derived_tables_and_ledger(lake: Path) -> None:
    out = hub_json(lake, "run", "aq_daily")
    assert out["status"] == "ok"
    assert out["tables"]["means"] == {"rows": 2, "sql": "derived.aq_daily_means"}
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM derived.aq_daily_empty") == [
        {"n": 0}]
    assert out["summary"]["stations"] == 2 and out["summary"]["max_mean"] == 40.0
    assert out["inputs"]["AirQualityObserved"] >= 1 and "PointOfInterest" in out["inputs"]
    rows = hub_json(lake, "sql", "SELECT id, mean, hours, _run_id FROM derived.aq_daily_means "
                                 "ORDER BY id")
    assert [(r["mean"], r["hours"]) for r in rows] == [(11.5, 4), (40.0, 1)]
    assert {r["_run_id"] for r in rows} == {out["run_id"]}
    runs = hub_json(lake, "sql", "SELECT * FROM _pipeline_runs")
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    assert json.loads(runs[0]["params"]) == {"attribute": "no2", "min_hours": 1,
                                             "since": "2000-01-01"}
    assert json.loads(runs[0]["tables"]) == {"empty": 0, "means": 2}


def test_params_reach_the_pipeline(lake: Path) -> None:
    out = hub_json(lake, "run", "aq_daily", "--param", "attribute=pm25", "-p", "min_hours=1")
    assert out["summary"]["max_mean"] == 7.0 and out["params"]["attribute"] == "pm25"


def test_same_lake_same_params_same_output(lake: Path) -> None:
    first = hub_json(lake, "run", "aq_daily")
    a = hub_json(lake, "sql", "SELECT * EXCLUDE (_run_id) FROM derived.aq_daily_means")
    second = hub_json(lake, "run", "aq_daily")
    b = hub_json(lake, "sql", "SELECT * EXCLUDE (_run_id) FROM derived.aq_daily_means")
    assert a == b and first["summary"] == second["summary"]
    assert first["run_id"] != second["run_id"]


def test_assert_pass_and_fail(lake: Path) -> None:
    ok = hub(lake, "run", "aq_daily", "--assert", "stations >= 2", "--assert", "ok == true",
             "--json")
    assert ok.exit_code == 0, ok.output
    assert [c["ok"] for c in json.loads(ok.stdout)["asserts"]] == [True, True]
    bad = hub(lake, "run", "aq_daily", "--assert", "days.count > 5", "--json")
    assert bad.exit_code == 1
    assert "days.count = 2, expected > 5" in bad.stderr
    assert json.loads(bad.stdout)["status"] == "assert-failed"  # the outcome is still printed
    runs = hub_json(lake, "sql", "SELECT status FROM _pipeline_runs ORDER BY started_at")
    assert [r["status"] for r in runs] == ["ok", "assert-failed"]


def test_assert_on_unknown_metric_suggests(lake: Path) -> None:
    result = hub(lake, "run", "aq_daily", "--assert", "station >= 1")
    assert result.exit_code == 2
    assert "no metric 'station'" in result.stderr and "stations" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "attribute=co"], "choose one of no2, pm25"),
    (["--param", "min_hours=x"], "not a valid int"),
    (["--param", "min_hours=30"], "at most 24"),
    (["--param", "min_hour=2"], "did you mean 'min_hours'"),
    (["--param", "since"], "expected NAME=VALUE"),
    (["--assert", "stations is big"], "expected METRIC OP NUMBER"),
])
def test_bad_command_lines_exit_2(lake: Path, args: list[str], message: str) -> None:
    result = hub(lake, "run", "aq_daily", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_unknown_pipeline_and_missing_inputs(lake: Path) -> None:
    result = hub(lake, "run", "nope")
    assert result.exit_code == 2 and "aq_daily" in result.stderr
    missing = hub(lake, "run", "needs_gtfs")
    assert missing.exit_code == 1
    assert "needs table(s) GtfsStopTime|GtfsTrip" in missing.stderr


def test_failing_pipeline_is_recorded(lake: Path) -> None:
    result = hub(lake, "run", "broken")
    assert result.exit_code == 1 and "ZeroDivisionError" in result.stderr
    runs = hub_json(lake, "sql", "SELECT status, error FROM _pipeline_runs")
    assert runs == [{"status": "failed", "error": "ZeroDivisionError: bug in the analysis"}]


def test_sigterm_interrupts_the_analysis_and_writes_nothing(
        lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PIPELINES, "aa_terminated", Terminated())
    result = hub(lake, "run", "aa_terminated")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: stopped by SIGTERM: run " in result.stderr
    assert "recorded as interrupted; its derived tables were not written" in result.stderr
    assert not (lake / "derived" / "aa_terminated").exists()
    runs = hub_json(lake, "sql", "SELECT pipeline, status, error FROM _pipeline_runs")
    assert runs == [{"pipeline": "aa_terminated", "status": "interrupted",
                     "error": "stopped by SIGTERM"}]
    # --all starts nothing after the interrupted run (aa_terminated runs first)
    every = hub(lake, "run", "--all", "--json")
    assert every.exit_code == 1
    assert [(r["pipeline"], r["status"]) for r in json.loads(every.stdout)] == [
        ("aa_terminated", "interrupted")]
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM _pipeline_runs") == [{"n": 2}]


# A pipeline whose query runs for minutes, registered in a real hubctl process: a query does
# not come back to Python, so only the signal watcher's DuckDB interrupt stops it.
_SLOW_QUERY = """
import sys
from hubctl.pipeline import PipelineResult
from hubctl.pipelines import PIPELINES
from tests.test_runner import DailyMeans

class SlowQuery(DailyMeans):
    name = "slow_query"

    def run(self, ctx):
        ctx.sql("SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3")
        raise AssertionError("the query was not interrupted")

PIPELINES["slow_query"] = SlowQuery()
from hubctl.cli import main
sys.argv = ["hubctl", "run", "slow_query"]
main()
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_interrupts_a_duckdb_query_in_a_real_process(lake: Path,
                                                               sig: signal.Signals) -> None:
    env = {**os.environ, "HUBCTL_LAKE": str(lake)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_QUERY], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not (lake / "_locks").exists() or not any(
                "pipeline" in f.name for f in (lake / "_locks").iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(3.0)  # inside the query (it runs for minutes)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert f"error: stopped by {sig.name}: run " in err and "recorded as interrupted" in err
    assert hub_json(lake, "sql", "SELECT status, error FROM _pipeline_runs") == [
        {"status": "interrupted", "error": f"stopped by {sig.name}"}]


def test_sigterm_while_writing_waits_for_the_outputs(
        lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PIPELINES, "terminated_writing", TerminatedWhileWriting())
    result = hub(lake, "run", "terminated_writing", "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "stopped by SIGTERM while run" in result.stderr and "finished first" in result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "ok" and out["tables"]["means"]["rows"] == 2
    assert hub_json(lake, "sql", "SELECT count(*) AS n FROM derived.terminated_writing_means"
                    ) == [{"n": 2}]
    assert hub_json(lake, "sql", "SELECT status FROM _pipeline_runs") == [{"status": "ok"}]


def test_locked_pipeline_exits_75(lake: Path) -> None:
    with hold(lake, "pipeline:aq_daily"):
        result = hub(lake, "run", "aq_daily")
    assert result.exit_code == 75


def test_run_all_runs_what_is_ready(lake: Path) -> None:
    result = hub(lake, "run", "--all", "--json", "--param", "aq_daily.attribute=pm25")
    assert result.exit_code == 1  # broken fails, the others still run
    out = {r["pipeline"]: r for r in json.loads(result.stdout)}
    assert out["broken"]["status"] == "failed" and "ZeroDivisionError" in result.stderr
    assert out["needs_gtfs"]["status"] == "skipped" and out["aq_daily"]["status"] == "ok"
    lake_runs = hub_json(lake, "sql", "SELECT pipeline, status FROM _pipeline_runs WHERE "
                                      "pipeline IN ('aq_daily', 'broken') ORDER BY pipeline")
    assert out["air_quality"]["status"] == "ok"  # the real one runs on the same lake
    assert lake_runs == [{"pipeline": "aq_daily", "status": "ok"},
                         {"pipeline": "broken", "status": "failed"}]


def test_run_all_json_and_asserts(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(PIPELINES, "broken")
    result = hub(lake, "run", "--all", "--json", "--assert", "aq_daily.stations == 2")
    assert result.exit_code == 0, result.output
    out = {r["pipeline"]: r for r in json.loads(result.stdout)}
    assert out["needs_gtfs"]["status"] == "skipped"
    assert out["aq_daily"]["asserts"][0]["ok"] is True
    bad = hub(lake, "run", "--all", "--assert", "stations == 2")
    assert bad.exit_code == 2 and "PIPELINE.METRIC" in bad.stderr


def test_pipelines_lists_inputs_and_params(lake: Path) -> None:
    infos = {p["name"]: p for p in hub_json(lake, "pipelines")}
    assert infos["aq_daily"]["ready"] is True
    assert infos["needs_gtfs"]["missing_inputs"] == ["GtfsStopTime|GtfsTrip"]
    assert [p["name"] for p in infos["aq_daily"]["params"]] == ["attribute", "min_hours",
                                                                "since"]
    one = hub(lake, "pipelines", "aq_daily")
    assert one.exit_code == 0 and "min_hours" in one.stdout
    assert hub(lake, "pipelines", "nope").exit_code == 2


def test_catalog_file_has_derived_views(lake: Path, tmp_path: Path) -> None:
    hub_json(lake, "run", "aq_daily")
    db = tmp_path / "hub.duckdb"
    assert hub(lake, "catalog", str(db), "--absolute").exit_code == 0  # opened from any folder
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM derived.aq_daily_means").fetchall() == [(2,)]
    assert Lake(lake).derived_names() == [("aq_daily", "empty"), ("aq_daily", "means")]
    tables = {t["table"]: t for t in hub_json(lake, "tables")}
    assert tables["derived.aq_daily_means"]["rows"] == 2
    assert tables["_pipeline_runs"]["rows"] == 1


def test_param_parsing_and_metrics() -> None:
    p = DailyMeans()
    assert parse_params(p, ["since=2024-05-01"])["since"] == date(2024, 5, 1)
    assert Param("x", [], "list", kind="list").parse("a, b,") == ["a", "b"]
    assert Param("x", False, "flag").parse("yes") is True
    with pytest.raises(UsageError):
        Param("x", 1.0, "number").parse("nan")
    assert metrics({"a": {"b": 1, "c": [2, {"d": True}]}, "s": "text", "n": None}) == {
        "a.b": 1.0, "a.c.0": 2.0, "a.c.1.d": 1.0}
    a = parse_assert("coverage.after>=60%")
    assert (a.metric, a.op, a.value) == ("coverage.after", ">=", 0.6)
    assert a.holds(0.61) and not a.holds(0.5)



def test_older_parameter_names_are_aliases() -> None:
    """One idea, one name across pipelines: grid cells are cell_m (cell_size_m and grid_m
    still work); a parameter's canonical name is what the run records."""
    from hubctl.pipelines.bus_routes import PIPELINE as BUS
    from hubctl.pipelines.dispatch_coverage import PIPELINE as DISPATCH
    from hubctl.runner import parse_params

    assert parse_params(DISPATCH, ["cell_size_m=250"])["cell_m"] == 250.0
    assert parse_params(BUS, ["grid_m=300"])["cell_m"] == 300.0
    assert "grid_m" not in parse_params(BUS, ["grid_m=300"])
