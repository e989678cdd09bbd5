"""``hubctl pipelines`` and ``hubctl run``: analyses over the lake, gated by ``--assert``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import UsageError

if TYPE_CHECKING:
    from hubctl.orchestrate import PipelineRun

__all__ = ["COMMANDS"]


def _registry() -> dict[str, Any]:
    from hubctl.pipelines import PIPELINES

    return dict(PIPELINES)


def _lake_tables() -> list[str] | None:
    lake = hub().lake
    return lake.table_names() if lake.root.is_dir() else None


def _describe(pipeline: Any, tables: list[str] | None) -> dict[str, Any]:
    from hubctl.runner import missing_inputs

    info: dict[str, Any] = {
        "name": pipeline.name, "summary": pipeline.summary,
        "inputs": list(pipeline.inputs), "optional_inputs": list(pipeline.optional_inputs),
        "derived_inputs": list(getattr(pipeline, "derived_inputs", ())),
        "params": [{"name": p.name, "type": p.type_name, "default": p.default, "help": p.help,
                    **({"choices": list(p.choices)} if p.choices else {})}
                   for p in pipeline.params],
        "example": pipeline.example,
    }
    if tables is not None:
        info["missing_inputs"] = missing_inputs(pipeline, tables)
        info["ready"] = not info["missing_inputs"]
    return info


@click.command()
@click.argument("name", required=False)
@json_option
def pipelines(name: str | None, as_json: bool) -> None:
    """List the pipelines with their inputs and parameters (or one pipeline in detail).

    An input written "A|B" is satisfied by either table. With a lake present, each pipeline
    says whether its inputs are there (what `hubctl run --all` would run). A pipeline that
    reads other pipelines' derived tables lists them; `hubctl run --all` runs those first.

    \b
    Examples:
      hubctl pipelines
      hubctl pipelines bus_routes --json
    """
    registry = _registry()
    if name is not None and name not in registry:
        raise UsageError(f"unknown pipeline {name!r}",
                         hint=f"known: {', '.join(sorted(registry)) or 'none'}")
    tables = _lake_tables()
    chosen = [registry[name]] if name else [registry[n] for n in sorted(registry)]
    infos = [_describe(p, tables) for p in chosen]
    if as_json:
        emit_json(infos if name is None else infos[0])
        return
    if not infos:
        click.echo("no pipelines are installed")
        return
    for info in infos:
        state = ""
        if "ready" in info:
            state = ("  [ready]" if info["ready"]
                     else f"  [missing: {', '.join(info['missing_inputs'])}]")
        click.secho(f"{info['name']}{state}", bold=True)
        click.echo(f"  {info['summary']}")
        click.echo(f"  inputs: {', '.join(info['inputs']) or '-'}"
                   + (f"   optional: {', '.join(info['optional_inputs'])}"
                      if info["optional_inputs"] else ""))
        if info["derived_inputs"]:
            click.echo(f"  reads: {', '.join(info['derived_inputs'])} (run --all runs their "
                       "pipelines first)")
        if name is not None or len(infos) == 1:
            print_rows(["param", "type", "default", "help"],
                       [[p["name"], p["type"], p["default"], p["help"]]
                        for p in info["params"]])
        else:
            click.echo(f"  params: {', '.join(p['name'] for p in info['params']) or '-'}")
        click.echo(f"  example: {info['example']}\n")


@click.command("run")
@click.argument("name", required=False)
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="A pipeline parameter (repeatable); with --all write PIPELINE.NAME=VALUE.")
@click.option("--assert", "asserts", multiple=True, metavar='"METRIC OP VALUE"',
              help="Fail (exit 1) unless the summary metric holds, e.g. "
                   '"coverage.after >= 0.6" (repeatable); with --all, PIPELINE.METRIC.')
@click.option("--all", "run_all", is_flag=True,
              help="Run every pipeline whose inputs are present in the lake, each after the "
                   "pipelines whose derived tables it reads.")
@click.option("--engine", default="duckdb", show_default=True, metavar="ENGINE",
              help="Where the heavy queries run: duckdb, local[N] (Spark in this process, N "
                   "threads) or spark://HOST:PORT (a Spark standalone cluster; its executors "
                   "must see the lake at the same path). Solvers run here either way.")
@json_option
def run(name: str | None, params: tuple[str, ...], asserts: tuple[str, ...], run_all: bool,
        engine: str, as_json: bool) -> None:
    """Run a pipeline on the lake and write its derived tables.

    Derived tables go to <lake>/derived/NAME/TABLE/ (each row tagged with the run id) and are
    queryable as derived.NAME_TABLE; each run is recorded in _pipeline_runs. The summary is
    printed as a table, or as JSON with --json (on failure too: status, error, exit_code).

    \b
    Examples:
      hubctl pipelines
      hubctl run bus_routes --param feed=caltrain --param catchment_m=500
      hubctl run energy --json --assert "kpis.ev_utilisation >= 0.2"
      hubctl run --all --assert "patrol_points.coverage.after >= 0.5"
      hubctl run energy --engine spark://10.0.0.5:7077

    \b
    Exit codes: 0 ok, 1 an --assert failed, an input is missing, the pipeline failed or
    SIGINT/SIGTERM stopped it (recorded as interrupted, its derived tables not written; a
    Spark job under way is cancelled), 2 bad parameters, 75 the same pipeline is running
    elsewhere (skipped). --all runs every
    pipeline whose inputs are present even when one fails, lists each with its own exit code
    and exits with the most severe: 1 > 2 > 75 > 0; with --debug a bug stops it with its
    traceback.
    """
    from hubctl.runner import interruptible
    from hubctl.spark import check_engine

    engine = check_engine(engine)
    registry = _registry()
    if run_all == (name is not None):
        raise UsageError("give one pipeline NAME or --all",
                         hint=f"pipelines: {', '.join(sorted(registry)) or 'none'}")
    lake = hub().lake
    with interruptible():  # SIGINT, SIGTERM: the run in progress is recorded as interrupted
        if name is None:
            _run_all(lake, registry, params, asserts, as_json, engine)
        else:
            _run_one(lake, registry, name, params, asserts, as_json, engine)


def _run_one(lake: Any, registry: dict[str, Any], name: str, params: tuple[str, ...],
             asserts: tuple[str, ...], as_json: bool, engine: str) -> None:
    from hubctl.orchestrate import PipelineRun
    from hubctl.runner import AssertionFailed, parse_assert, parse_params, run_pipeline

    checks = [parse_assert(a) for a in asserts]
    if name not in registry:
        raise UsageError(f"unknown pipeline {name!r}",
                         hint=f"known: {', '.join(sorted(registry)) or 'none'} "
                              "(`hubctl pipelines` describes them)")
    try:
        out = run_pipeline(lake, registry[name], parse_params(registry[name], params), checks,
                           warn=_warn, step=_stepper(name), engine=engine)
    except AssertionFailed as exc:
        show_pipeline(PipelineRun(name, exc.outcome, exc), as_json)  # it ran: show it, then fail
        raise
    except Exception as exc:
        if as_json:
            emit_json(PipelineRun(name, getattr(exc, "run", None), exc).as_json())
        raise
    show_pipeline(PipelineRun(name, out), as_json)


def _run_all(lake: Any, registry: dict[str, Any], params: tuple[str, ...],
             asserts: tuple[str, ...], as_json: bool, engine: str) -> None:
    from hubctl.orchestrate import overall_exit, route_all, run_pipelines
    from hubctl.runner import parse_assert

    checks = [parse_assert(a) for a in asserts]
    per_params, per_checks = route_all(registry, params, checks)
    results = run_pipelines(lake, registry, per_params, per_checks, debug=hub().debug,
                            warn=_warn, step=pipeline_steps(),
                            done=lambda r: None if as_json else show_pipeline(r, False),
                            engine=engine)
    if as_json:
        emit_json([r.as_json() for r in results])
    code = overall_exit(results)
    if code:
        failed = [r.pipeline for r in results if r.exit_code]
        for r in results:  # the JSON is on stdout: the reasons go to stderr too
            if as_json and r.error is not None:
                click.secho(f"{r.pipeline}: {r.status}: {r.as_json()['error']}", fg="red",
                            err=True)
        click.secho(f"error: {len(failed)} of {len(results)} pipeline(s) did not succeed: "
                    f"{', '.join(failed)}", fg="red", err=True)
        sys.exit(code)


def _warn(message: str) -> None:
    click.secho(f"note: {message}", fg="yellow", err=True)


def pipeline_steps() -> Callable[[str, str], None]:
    """``step(pipeline, message)`` for :func:`hubctl.orchestrate.run_pipelines`: timed lines
    on a terminal, one clock per pipeline."""
    steppers: dict[str, Any] = {}

    def step(pname: str, message: str) -> None:
        steppers.setdefault(pname, _stepper(pname))(message)
    return step


def _stepper(name: str) -> Any:
    start = time.perf_counter()
    show = sys.stderr.isatty()

    def step(message: str) -> None:
        if show:
            click.echo(f"[{name} {time.perf_counter() - start:6.1f}s] {message}", err=True)
    return step


def show_pipeline(result: PipelineRun, as_json: bool) -> None:
    """One pipeline's run: JSON, or its status, derived tables, metrics and asserts."""
    if as_json:
        emit_json(result.as_json())
        return
    out = result.outcome
    if out is None:
        if result.missing:
            click.echo(f"{result.pipeline}: skipped (no {', '.join(result.missing)} in the "
                       "lake)", err=True)
        elif result.error is not None:
            info = result.as_json()
            click.secho(f"{result.pipeline}: {info['status']}: {info['error']}", fg="red",
                        err=True)
        return
    click.secho(f"{out.pipeline}: {out.status} in {out.seconds:.1f} s (run {out.run_id})",
                bold=True)
    if out.tables:
        print_rows(["derived table", "rows"],
                   [[f"derived.{out.pipeline}_{t}", f"{n:,}"] for t, n in out.tables.items()])
    leaves = _leaves(out.summary)
    if leaves:
        print_rows(["metric", "value"], leaves, max_rows=60)
    for c in out.checks:
        click.echo(f"{'ok  ' if c['ok'] else 'FAIL'} {c['assert']} (value {c['value']:g})")


def _leaves(value: Any, prefix: str = "") -> list[list[str]]:
    """Every scalar of a summary by dotted path (numbers formatted, text as it is)."""
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in _leaves(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in _leaves(v, f"{prefix}{i}.")]
    if value is None:
        return []
    if isinstance(value, bool):
        return [[prefix[:-1], str(value).lower()]]
    if isinstance(value, int | float):
        return [[prefix[:-1], f"{value:,.6g}"]]
    return [[prefix[:-1], str(value)]]


COMMANDS: list[click.Command] = [pipelines, run]
