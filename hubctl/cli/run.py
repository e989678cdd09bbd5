"""``hubctl pipelines`` and ``hubctl run``: analyses over the lake, gated by ``--assert``."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import HubError, UsageError

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
    says whether its inputs are there (what `hubctl run --all` would run).

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
              help="Run every pipeline whose inputs are present in the lake.")
@json_option
def run(name: str | None, params: tuple[str, ...], asserts: tuple[str, ...], run_all: bool,
        as_json: bool) -> None:
    """Run a pipeline on the lake and write its derived tables.

    Derived tables go to <lake>/derived/NAME/TABLE/ (each row tagged with the run id) and are
    queryable as derived.NAME_TABLE; each run is recorded in _pipeline_runs. The summary is
    printed as a table, or as JSON with --json. Exit codes: 0 ok, 1 an --assert failed or an
    input is missing, 2 bad parameters, 75 the same pipeline is running elsewhere.

    \b
    Examples:
      hubctl pipelines
      hubctl run bus_routes --param feed=caltrain --param catchment_m=500
      hubctl run energy --json --assert "kpis.ev_utilisation >= 0.2"
      hubctl run --all --assert "patrol_points.coverage.after >= 0.5"
    """
    from hubctl.runner import AssertionFailed, parse_assert, parse_params, run_pipeline

    registry = _registry()
    if run_all == (name is not None):
        raise UsageError("give one pipeline NAME or --all",
                         hint=f"pipelines: {', '.join(sorted(registry)) or 'none'}")
    lake = hub().lake
    checks = [parse_assert(a) for a in asserts]
    if name is not None:
        if name not in registry:
            raise UsageError(f"unknown pipeline {name!r}",
                             hint=f"known: {', '.join(sorted(registry)) or 'none'} "
                                  "(`hubctl pipelines` describes them)")
        pipeline = registry[name]
        values = parse_params(pipeline, params)
        try:
            out = run_pipeline(lake, pipeline, values, checks, warn=_warn,
                               step=_stepper(name))
        except AssertionFailed as exc:
            _show(exc.outcome, as_json)  # the analysis ran: show it, then fail
            raise
        _show(out, as_json)
        return
    _run_all(lake, registry, params, checks, as_json)


def _run_all(lake: Any, registry: dict[str, Any], params: tuple[str, ...],
             checks: list[Any], as_json: bool) -> None:
    from hubctl.runner import AssertionFailed, missing_inputs, parse_params, run_pipeline

    lake.require_root()
    tables = lake.table_names()
    per: dict[str, list[str]] = {}
    for pair in params:
        target, dot, rest = pair.partition(".")
        if not dot or target not in registry:
            raise UsageError(f"--param {pair!r}: with --all write PIPELINE.NAME=VALUE",
                             hint=f"pipelines: {', '.join(sorted(registry))}")
        per.setdefault(target, []).append(rest)
    by_pipeline: dict[str, list[Any]] = {}
    for a in checks:
        target, dot, metric = a.metric.partition(".")
        if not dot or target not in registry:
            raise UsageError(f"--assert {a.text!r}: with --all write PIPELINE.METRIC OP VALUE")
        by_pipeline.setdefault(target, []).append(replace(a, metric=metric))
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for pname in sorted(registry):
        pipeline = registry[pname]
        missing = missing_inputs(pipeline, tables)
        if missing:
            results.append({"pipeline": pname, "status": "skipped",
                            "missing_inputs": missing})
            if not as_json:
                click.echo(f"{pname}: skipped (no {', '.join(missing)} in the lake)", err=True)
            continue
        values = parse_params(pipeline, per.get(pname, []))
        try:
            out = run_pipeline(lake, pipeline, values, by_pipeline.get(pname, []),
                               warn=_warn, step=_stepper(pname))
        except AssertionFailed as exc:
            failures.append(f"{pname}: {exc.message}")
            results.append(exc.outcome.as_json())
            if not as_json:
                _show(exc.outcome, False)
            continue
        except Exception as exc:  # one pipeline failing does not stop the others
            error = exc.message if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
            failures.append(f"{pname}: {error}")
            results.append({"pipeline": pname, "status": "failed", "error": error})
            if not as_json:
                click.secho(f"{pname}: failed: {error}", fg="red", err=True)
            continue
        results.append(out.as_json())
        if not as_json:
            _show(out, False)
    if as_json:
        emit_json(results)
    if failures:
        raise HubError("; ".join(failures))


def _warn(message: str) -> None:
    click.secho(f"note: {message}", fg="yellow", err=True)


def _stepper(name: str) -> Any:
    start = time.perf_counter()
    show = sys.stderr.isatty()

    def step(message: str) -> None:
        if show:
            click.echo(f"[{name} {time.perf_counter() - start:6.1f}s] {message}", err=True)
    return step


def _show(out: Any, as_json: bool) -> None:
    if as_json:
        emit_json(out.as_json())
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
