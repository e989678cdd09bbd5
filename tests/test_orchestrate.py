"""An honest exit status: runs that wrote nothing say so, every --json failure is JSON, --all
lists every source and pipeline with its own exit code and exits with the most severe, and
the output says what was really written (issue 12, section 4).

Real lakes, real adapters and pipelines, through the CLI (CliRunner) and, where only a process
shows it, the console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hubctl.adapter import Adapter
from hubctl.adapters import all_adapters
from hubctl.config import load_config
from hubctl.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_REJECT_RATE, EXIT_USAGE
from hubctl.lake import Lake
from hubctl.ledger import source_runs
from hubctl.locks import hold
from hubctl.orchestrate import most_severe, run_request, source_request
from hubctl.pipeline import PipelineContext, PipelineResult, run_order, upstream
from hubctl.pipelines import PIPELINES
from tests.helpers import held_by_another_process, hub, hub_json, row, write_openaq
from tests.test_runner import Broken, DailyMeans


def _all_rejected(folder: Path, n: int = 6) -> tuple[Path, Path]:
    """An OpenAQ file whose every record is rejected (negative concentrations), with a stations
    file whose one station is rejected too (latitude out of range): the run writes nothing."""
    return write_openaq(folder, [row("S1", h, "no2", -5) for h in range(n)],
                        stations=[("S1", 999.0, 4.4)], name="bad.csv")


def _hub_toml(folder: Path, **sources: str) -> Path:
    """A hub.toml with one openaq source per ``name=csv file`` (stations.csv beside it)."""
    text = "".join(f'[sources.{name}]\nadapter = "openaq"\ninputs = ["{csv}"]\n'
                   f'options = {{ stations = "{Path(csv).parent / "stations.csv"}" }}\n\n'
                   for name, csv in sources.items())
    path = folder / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- a run that wrote nothing

def test_a_run_whose_every_record_is_rejected_exits_4_with_its_json(tmp_path: Path) -> None:
    data, st = _all_rejected(tmp_path)
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "openaq", str(data), "--stations", str(st), "--json")
    assert result.exit_code == EXIT_REJECT_RATE, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "rejected" and out["exit_code"] == 4
    assert out["read"] == out["rejected"] == 6 + 1 and out["written"] == 0
    assert "rejected all 7 records" in out["error"] and "rejected all 7" in result.stderr
    ledger = source_runs(Lake(lake), out["source"])
    assert [r["status"] for r in ledger] == ["rejected"]
    # the same input again is recognised (and still not "ok")
    again = hub(lake, "ingest", "openaq", str(data), "--stations", str(st), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "unchanged"


def test_a_run_whose_data_is_all_rejected_is_not_ok_though_its_stations_were_written(
        tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", h, "no2", -5) for h in range(4)])
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--stations", str(st),
                 "--json")
    assert result.exit_code == EXIT_REJECT_RATE, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "rejected" and out["rejected"] == 4
    assert out["written"] == 3 and out["rows_added"] == {"PointOfInterest": 3}
    assert "rejected all 4 records of its input files" in out["error"]


def test_a_partly_rejected_run_is_ok_unless_over_max_reject_rate(tmp_path: Path) -> None:
    rows = [row("S1", h, "no2", -5 if h < 2 else h) for h in range(8)]
    data, st = write_openaq(tmp_path, rows)
    lake = tmp_path / "lake"
    ok = hub(lake, "ingest", "openaq", str(data), "--stations", str(st), "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["status"] == "ok"
    over = hub(lake, "ingest", "openaq", str(data), "--stations", str(st), "--force",
               "--max-reject-rate", "0.1", "--json")
    assert over.exit_code == EXIT_REJECT_RATE
    out = json.loads(over.stdout)  # stdout is no longer empty: the counts are there
    assert out["status"] == "over-reject-rate" and out["rejected"] == 2
    assert out["read"] == 8 + 3 and out["exit_code"] == 4
    assert "over --max-reject-rate 10.0%" in out["error"]


@pytest.mark.subprocess
def test_an_all_rejected_real_process_exits_4_with_json_on_stdout(tmp_path: Path) -> None:
    data, st = _all_rejected(tmp_path)
    env = {**os.environ, "HUBCTL_LAKE": str(tmp_path / "lake")}
    proc = subprocess.run([str(Path(sys.executable).parent / "hubctl"), "ingest", "openaq",
                           str(data), "--stations", str(st), "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert json.loads(proc.stdout)["status"] == "rejected"
    assert "Traceback" not in proc.stderr


@pytest.mark.subprocess
def test_a_real_ingest_all_lists_a_locked_and_a_rejected_source_and_exits_4(
        three_sources: Path) -> None:
    lake = three_sources.parent / "lake"
    with held_by_another_process(lake, "source:good"):
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "hubctl"), "--config", str(three_sources),
             "--lake", str(lake), "ingest", "--source", "good", "--source", "bad", "--json"],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_REJECT_RATE, proc.stderr  # a lock never hides a rejection
    out = json.loads(proc.stdout)
    assert [(r["source"], r["status"], r["exit_code"]) for r in out] == [
        ("good", "locked", 75), ("bad", "rejected", 4)]
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- --json on failure

def test_a_failing_ingest_prints_its_json_object(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = hub(lake, "ingest", "openaq", str(tmp_path / "missing.csv"), "--stations",
                 str(write_openaq(tmp_path, [row("S1", 1, "no2", 1)])[1]), "--json")
    assert result.exit_code == EXIT_FAILED
    out = json.loads(result.stdout)
    assert out["status"] == "failed" and out["exit_code"] == 1
    assert "no such file" in out["error"] and out["read"] == 0


def test_every_json_command_prints_json_when_it_fails(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 1)])
    assert hub(lake, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0
    for args, code in [(["sql", "SELECT * FROM nope", "--json"], 1),
                       (["rejects", "--json", "--limit", "x"], 2),
                       (["rejects", "--limit", "x", "--json"], 2),
                       (["lake", "history", "Nope", "--json"], 1),
                       (["run", "nope", "--json"], 2)]:
        result = hub(lake, *args)
        assert result.exit_code == code, (args, result.output)
        out = json.loads(result.stdout)
        assert out["status"] == "failed" and out["exit_code"] == code and out["error"], args


# ---------------------------------------------------------------- ingest --all

@pytest.fixture
def three_sources(tmp_path: Path) -> Path:
    """A hub.toml with a good source, an all-rejected one and one whose input is missing."""
    write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(4)], name="good.csv")
    _all_rejected(tmp_path / "b")
    return _hub_toml(tmp_path, good="good.csv", bad="b/bad.csv", gone="gone.csv")


def _all(config: Path, *args: str) -> tuple[int, Any]:
    result = hub(config.parent / "lake", "--config", str(config), "ingest", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_ingest_all_json_lists_every_source_with_its_exit_code(three_sources: Path) -> None:
    code, out = _all(three_sources, "--all")
    by = {r["source"]: r for r in out}
    assert [r["source"] for r in out] == ["good", "bad", "gone"]
    assert (by["good"]["status"], by["good"]["exit_code"]) == ("ok", EXIT_OK)
    assert (by["bad"]["status"], by["bad"]["exit_code"]) == ("rejected", EXIT_REJECT_RATE)
    assert (by["gone"]["status"], by["gone"]["exit_code"]) == ("failed", EXIT_FAILED)
    assert "no such file" in str(by["gone"]["error"])
    assert code == EXIT_FAILED  # failed outranks rejected
    with hold(three_sources.parent / "lake", "source:good"):
        code, out = _all(three_sources, "--source", "good", "--source", "bad", "--force")
    assert [(r["status"], r["exit_code"]) for r in out] == [("locked", 75), ("rejected", 4)]
    assert code == EXIT_REJECT_RATE  # rejected outranks locked
    with hold(three_sources.parent / "lake", "source:good"):
        code, out = _all(three_sources, "--source", "good", "--source", "good")
    assert code == EXIT_LOCKED and out["status"] == "locked"  # one source: one object


def test_ingest_all_text_lists_every_source_and_exits_with_the_worst(
        three_sources: Path) -> None:
    result = hub(three_sources.parent / "lake", "--config", str(three_sources), "ingest",
                 "--all")
    assert result.exit_code == EXIT_FAILED
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["source", "status", "exit"]
    assert [ln.split("\t")[:3] for ln in lines[1:]] == [
        ["good", "ok", "0"], ["bad", "rejected", "4"], ["gone", "failed", "1"]]
    assert "error: source gone:" in result.stderr and "error: source bad:" in result.stderr


def test_a_failed_source_logged_as_json_keeps_stderr_json_lines(three_sources: Path) -> None:
    result = hub(three_sources.parent / "lake", "--config", str(three_sources), "ingest",
                 "--source", "gone", "--log-format", "json")
    assert result.exit_code == EXIT_FAILED
    [event] = [json.loads(ln) for ln in result.stderr.splitlines()]  # nothing but JSON
    assert event["event"] == "run-failed" and "no such file" in event["error"]


def test_a_bug_in_one_source_is_listed_and_raised_with_debug(
        three_sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hubctl.adapters import get_adapter

    openaq = type(get_adapter("openaq"))
    read = openaq.read

    def buggy(self: Any, inputs: Any, options: Any, ctx: Any) -> Any:
        if "good" in str(inputs[0]):
            raise ZeroDivisionError("a bug")
        return read(self, inputs, options, ctx)

    monkeypatch.setattr(openaq, "read", buggy)
    code, out = _all(three_sources, "--all")
    assert code == EXIT_FAILED and [r["status"] for r in out] == ["failed", "rejected", "failed"]
    assert "internal error: ZeroDivisionError: a bug" in out[0]["error"]
    assert out[0]["run_id"]  # it had started: its ledger run is there
    debug = hub(three_sources.parent / "lake", "--debug", "--config", str(three_sources),
                "ingest", "--all")
    assert isinstance(debug.exception, ZeroDivisionError)


def test_severity_order_is_documented_in_help() -> None:
    assert most_severe([0, 75, 4, 2, 1]) == 1 and most_severe([75, 4]) == 4
    assert most_severe([0, 75]) == 75 and most_severe([2, 4, 75]) == 2 and most_severe([]) == 0
    result = hub(Path("lake"), "ingest", "--help")
    assert "1 > 2 > 4 > 75 > 0" in " ".join(result.stdout.split())


def test_a_declared_source_runs_through_the_engine_function(three_sources: Path) -> None:
    config = load_config(three_sources, None)
    lake = Lake(three_sources.parent / "lake")
    run = run_request(lake, source_request(config, "good"))
    assert run.status == "ok" and run.source == "good"
    assert run.rows == {"AirQualityObserved": 4, "PointOfInterest": 3}


# ---------------------------------------------------------------- run --all

@pytest.fixture
def pipelines_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(PIPELINES):  # only the two test pipelines: fast, and each known
        monkeypatch.delitem(PIPELINES, name)
    for p in (DailyMeans(), Broken()):
        monkeypatch.setitem(PIPELINES, p.name, p)
    data, st = write_openaq(tmp_path / "in", [row("S1", h, "no2", h) for h in range(4)])
    root = tmp_path / "lake"
    assert hub(root, "ingest", "openaq", str(data), "--stations", str(st)).exit_code == 0
    return root


def test_run_all_keeps_a_lock_as_75(pipelines_lake: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(PIPELINES, "broken")
    with hold(pipelines_lake, "pipeline:aq_daily"):
        result = hub(pipelines_lake, "run", "--all", "--json")
    assert result.exit_code == EXIT_LOCKED, result.output
    out = {r["pipeline"]: r for r in json.loads(result.stdout)}
    assert (out["aq_daily"]["status"], out["aq_daily"]["exit_code"]) == ("locked", 75)


def test_run_all_lists_exit_codes_and_reraises_a_bug_with_debug(pipelines_lake: Path) -> None:
    result = hub(pipelines_lake, "run", "--all", "--json")
    out = {r["pipeline"]: r for r in json.loads(result.stdout)}
    assert out["broken"]["exit_code"] == 1 and out["aq_daily"]["exit_code"] == 0
    assert result.exit_code == 1
    debug = hub(pipelines_lake, "--debug", "run", "--all")
    assert isinstance(debug.exception, ZeroDivisionError)  # the traceback is there


class ReadsDailyMeans(DailyMeans):
    """Reads aq_daily's derived table (its name sorts before aq_daily's)."""

    name = "a_reader"
    derived_inputs = ("derived.aq_daily_means",)

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """The run id of the means it read."""
        read = ctx.scalar("SELECT min(_run_id) FROM derived.aq_daily_means")
        return PipelineResult(tables={}, summary={"read_run": read})


def test_run_all_runs_a_pipeline_after_the_pipelines_whose_tables_it_reads(
        pipelines_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(PIPELINES, "broken")
    monkeypatch.setitem(PIPELINES, "a_reader", ReadsDailyMeans())
    assert run_order(PIPELINES) == ["aq_daily", "a_reader"]  # not name order
    for _ in range(2):  # the first time the table does not exist yet; then it is this run's
        result = hub(pipelines_lake, "run", "--all", "--json")
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert [r["pipeline"] for r in out] == ["aq_daily", "a_reader"]
        assert out[1]["summary"]["read_run"] == out[0]["run_id"]
    listed = hub(pipelines_lake, "pipelines", "a_reader")
    assert "reads: derived.aq_daily_means (run --all runs their pipelines first)" in listed.stdout


def test_city_kpis_runs_after_air_quality_and_energy_and_a_cycle_fails() -> None:
    order = run_order(PIPELINES)
    assert order.index("city_kpis") > max(order.index("air_quality"), order.index("energy"))
    assert upstream(PIPELINES["city_kpis"], PIPELINES) == ["air_quality", "energy"]
    first, second = ReadsDailyMeans(), ReadsDailyMeans()
    first.name, second.name = "aq_daily", "a_reader"
    first.derived_inputs = ("derived.a_reader_x",)
    with pytest.raises(RuntimeError, match="read each other's derived tables: a_reader after "
                                           "aq_daily, aq_daily after a_reader"):
        run_order({"aq_daily": first, "a_reader": second})


def test_a_failing_single_run_prints_json(pipelines_lake: Path) -> None:
    result = hub(pipelines_lake, "run", "broken", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["pipeline"] == "broken" and out["status"] == "failed"
    assert "ZeroDivisionError" in out["error"]
    with hold(pipelines_lake, "pipeline:aq_daily"):
        locked = hub(pipelines_lake, "run", "aq_daily", "--json")
    assert locked.exit_code == 75 and json.loads(locked.stdout)["status"] == "locked"


# ---------------------------------------------------------------- output that tells the truth

def test_the_summary_names_tables_and_the_rows_each_gained(tmp_path: Path) -> None:
    # two pollutants per station and hour: 2 records pivot into one row
    rows = [row(s, h, p, h + 1) for s in ("S1", "S2") for h in range(5) for p in ("no2", "pm25")]
    data, st = write_openaq(tmp_path, rows)
    lake = tmp_path / "lake"
    out = hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st), "--force")
    assert out["written"] == 20 + 3
    assert out["rows_added"] == {"AirQualityObserved": 10, "PointOfInterest": 3}
    text = hub(lake, "ingest", "openaq", str(data), "--stations", str(st), "--force")
    assert "AirQualityObserved +0, PointOfInterest +0" in text.stdout  # a re-read adds none
    fresh = hub(tmp_path / "lake2", "ingest", "openaq", str(data), "--stations", str(st))
    assert "AirQualityObserved +10, PointOfInterest +3" in fresh.stdout


def test_progress_advances_only_after_a_commit_and_never_past_the_input(tmp_path: Path) -> None:
    from hubctl.cli.ingest import capped
    from hubctl.orchestrate import ingest_request

    data, st = write_openaq(tmp_path, [row("S1", h % 24, "no2", h) for h in range(48)])
    lake = Lake(tmp_path / "lake")
    seen: list[tuple[int, bool]] = []

    from contextlib import contextmanager

    @contextmanager
    def progress(req):  # type: ignore[no-untyped-def]
        yield lambda n: seen.append((n, lake.exists("AirQualityObserved")))

    req = ingest_request("openaq", [str(data)], {"stations": str(st)})
    run_request(lake, req, progress)
    assert seen and all(committed for _, committed in seen)  # after the first commit
    assert sum(n for n, _ in seen) == data.stat().st_size  # file bytes, not decoded Arrow bytes
    shown: list[int] = []
    bar = capped(data.stat().st_size + st.stat().st_size, shown.append)
    for n, _ in seen:  # what the engine reported, through the bar's cap
        bar(n)
    assert sum(shown) <= data.stat().st_size + st.stat().st_size
    bar(10**9)
    assert sum(shown) == data.stat().st_size + st.stat().st_size


@pytest.mark.parametrize("alongside", [False, True])
def test_an_input_is_hashed_before_anything_commits_and_skipped_when_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alongside: bool) -> None:
    """A small input is hashed before it is read; a large one (here: every input) on a
    thread while the read begins, when it cannot be unchanged (its source has no finished
    run, or --force). Either way the ledger and the tables end the same: the fingerprint of
    the whole input, nothing committed (nor read) by a run of an unchanged input, and --force
    reading it again."""
    from hubctl import ingest

    alongside_runs = []
    on_thread = ingest._on_thread
    monkeypatch.setattr(ingest, "_on_thread",
                        lambda call: alongside_runs.append(1) or on_thread(call))

    data, st = write_openaq(tmp_path, [row("S1", h, "no2", h) for h in range(24)])
    args = ["ingest", "openaq", str(data), "--stations", str(st)]
    monkeypatch.setattr(ingest, "HASH_ALONGSIDE_BYTES", 1 << 40)
    hashed_first = hub_json(tmp_path / "reference", *args)["fingerprint"]
    monkeypatch.setattr(ingest, "HASH_ALONGSIDE_BYTES", 0 if alongside else 1 << 40)
    lake = tmp_path / "lake"
    first = hub_json(lake, *args)
    assert first["status"] == "ok" and first["written"] == 24 + 3
    assert first["fingerprint"] == hashed_first and hashed_first.startswith("sha256:")
    versions = {t: Lake(lake).open(t).version() for t in ("AirQualityObserved", "PointOfInterest")}
    again = hub_json(lake, *args)
    assert again["status"] == "unchanged" and again["read"] == 0
    assert again["fingerprint"] == first["fingerprint"]
    assert again["warnings"] == [f"input already ingested by run {first['run_id']}; use --force "
                                 "to read it again"]
    assert {t: Lake(lake).open(t).version() for t in versions} == versions
    forced = hub_json(lake, *args, "--force")
    assert forced["status"] == "ok" and forced["duplicate"] == 24 + 3
    assert len(alongside_runs) == (2 if alongside else 0)  # the first run and --force's
    ledger = source_runs(Lake(lake), first["source"])
    assert [(r["status"], r["fingerprint"]) for r in ledger] == [
        (s, first["fingerprint"]) for s in ("ok", "unchanged", "ok")]


def test_ledger_lookups_open_only_the_files_that_may_hold_the_run(tmp_path: Path) -> None:
    """Each run leaves a ledger file of its own until the ledger is compacted: a lookup by
    source, fingerprint or run id opens only the files whose bounds in the Delta log admit
    the value, and finds what reading every file finds."""
    from hubctl.ledger import (
        Run,
        _files_that_may_match,
        find_ingested,
        new_run_id,
        start_run,
        write_run,
    )

    lake = Lake(tmp_path / "lake")
    ids = []
    for i in range(6):
        run = Run(run_id=new_run_id(), source=f"s{i % 2}", adapter="openaq",
                  fingerprint=f"sha256:{i}", inputs=[], options={})
        start_run(lake, run)
        run.status = "ok"
        write_run(lake, run)
        ids.append(run.run_id)
    assert len(lake.files("_runs")) == 6
    assert len(_files_that_may_match(lake, "_runs", {"fingerprint": "sha256:4"})) == 1
    assert len(_files_that_may_match(lake, "_runs", {"source": "s1"})) == 3
    assert find_ingested(lake, "s0", "sha256:4") == ids[4]
    assert find_ingested(lake, "s1", "sha256:4") is None
    assert [r["run_id"] for r in source_runs(lake, "s1")] == ids[1::2]
    assert [r["fingerprint"] for r in source_runs(lake, None, run_id=ids[2])] == ["sha256:2"]


def test_rejects_sort_by_line_number_as_a_number(tmp_path: Path) -> None:
    rows = [row("S1", h, "no2", -1) for h in range(12)]
    data, st = write_openaq(tmp_path, rows)
    lake = tmp_path / "lake"
    hub(lake, "ingest", "openaq", str(data), "--stations", str(st))
    records = [r["record"] for r in hub_json(lake, "rejects")]
    numbers = [int("".join(c for c in r if c.isdigit())) for r in records]
    assert numbers == sorted(numbers) and len(numbers) == 12, records


def test_tables_are_tsv_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    data, st = write_openaq(tmp_path, [row("S1", 1, "no2", 1), row("S1", 2, "no2", -1)])
    lake = tmp_path / "lake"
    hub(lake, "ingest", "openaq", str(data), "--stations", str(st))
    for args in (["tables"], ["rejects"], ["sql", "SELECT 1 AS a, 'x y' AS b"]):
        lines = hub(lake, *args).stdout.splitlines()
        assert lines and all("│" not in ln and "━" not in ln for ln in lines), args
        widths = {len(ln.split("\t")) for ln in lines}
        assert len(widths) == 1 and widths.pop() > 1, (args, lines)
    assert hub(lake, "sql", "SELECT 1 AS a, 'x y' AS b").stdout == "a\tb\n1\tx y\n"


# ---------------------------------------------------------------- the adapter contract

def test_every_adapter_declares_the_protocol_and_its_optional_members() -> None:
    for name, adapter in all_adapters().items():
        assert Adapter in type(adapter).__mro__, name  # mypy checks the members it sets
        assert isinstance(adapter.accepts_folders, bool) and adapter.batch_rows > 0
        if adapter.pull_params:
            assert adapter.pull_source({}) and isinstance(adapter.is_pull({}), bool)
    assert all_adapters()["gtfs"].accepts_folders
    assert not all_adapters()["openaq"].is_pull({}) and not all_adapters()["openaq"].pull_params


def test_severity_constants() -> None:
    assert most_severe([EXIT_USAGE, EXIT_OK]) == EXIT_USAGE
