"""Orchestration: run a declared source, every source, every pipeline.

The CLI (``hubctl ingest``, ``hubctl run``), the scheduler and ``hubctl demo`` call these
functions; they return run objects (:class:`SourceRun`, :class:`PipelineRun`) that say how each
run ended, with its counts and its exit code, whether it succeeded or not. Rendering them (a
table, JSON, log lines) is the caller's business.

Exit codes of several runs: the process exits with the most severe one, in the order of
:data:`SEVERITY`: 1 failed > 2 usage or configuration > 4 records rejected > 75 skipped
because locked > 0 done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from hubctl.errors import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_REJECT_RATE,
    EXIT_USAGE,
    ConfigError,
    HubError,
    LockHeld,
    Stopped,
    UsageError,
    translate,
)

if TYPE_CHECKING:
    from hubctl.adapter import Adapter
    from hubctl.config import Config, Source
    from hubctl.ingest import IngestRequest
    from hubctl.lake import Lake
    from hubctl.ledger import Run
    from hubctl.pipeline import Pipeline
    from hubctl.runner import Assertion, Outcome

__all__ = ["SEVERITY", "PipelineRun", "Progress", "SourceRun", "error_hint", "error_message",
           "exit_code", "ingest_request", "most_severe", "overall_exit", "route_all",
           "run_pipelines", "run_request", "run_sources", "source_names", "source_options",
           "source_request", "try_request"]

#: Exit codes from the most severe to the least: what a command that ran several sources or
#: pipelines exits with when they ended differently.
SEVERITY = (EXIT_FAILED, EXIT_USAGE, EXIT_REJECT_RATE, EXIT_LOCKED, EXIT_OK)

#: A progress display for one ingest: given the request, a context that yields the function
#: the engine calls with the input bytes it has committed.
Progress = Callable[["IngestRequest"], AbstractContextManager[Callable[[int], None]]]

_COUNTS = ("read", "written", "updated", "duplicate", "rejected")


def most_severe(codes: Iterable[int]) -> int:
    """The most severe of ``codes`` (see :data:`SEVERITY`); 0 when there are none."""
    rank = {c: i for i, c in enumerate(SEVERITY)}
    return min(codes, key=lambda c: rank.get(c, 0), default=EXIT_OK)


def exit_code(error: BaseException | None) -> int:
    """The exit code of a run that ended with ``error`` (0 for none; 1 for a bug)."""
    if error is None:
        return EXIT_OK
    known = _known(error)
    return known.exit_code if known is not None else EXIT_FAILED


def _known(error: BaseException) -> HubError | None:
    """The error as a HubError: itself, or the machine's problem it stands for (disk full,
    read-only lake, ...; :func:`hubctl.errors.translate`); None for a bug."""
    return error if isinstance(error, HubError) else translate(error)


def error_message(error: BaseException) -> str:
    """What went wrong, for a log line or --json (a bug as ``internal error: ...``)."""
    known = _known(error)
    if known is not None:
        return known.message
    return f"internal error: {type(error).__name__}: {error}"


def error_hint(error: BaseException) -> str | None:
    """What to do about ``error`` (for a bug: rerun with --debug and report it)."""
    known = _known(error)
    if known is not None:
        return known.hint
    return "rerun with --debug for the traceback and report it"


# ---------------------------------------------------------------- sources

@dataclass
class SourceRun:
    """How one ingest ended: its ledger run (counts so far when it failed) and its error."""

    source: str
    run: Run | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 done, 1 failed, 2 usage or configuration, 4 records rejected, 75 locked."""
        return exit_code(self.error)

    @property
    def status(self) -> str:
        """The run's status; ``locked`` when it did not start because another run held the
        source, ``failed`` when it failed before it started."""
        if isinstance(self.error, LockHeld) and self.run is None:
            return "locked"
        if self.run is not None:
            return self.run.status
        return "failed" if self.error is not None else "ok"

    def summary(self) -> dict[str, Any]:
        """The JSON object of this run, the same keys whether it succeeded or not."""
        out: dict[str, Any] = {"source": self.source, "status": self.status,
                               "exit_code": self.exit_code, "error": None, "hint": None,
                               **dict.fromkeys(_COUNTS, 0)}
        if self.run is not None:
            out |= self.run.summary()
            out["status"] = self.status
        if self.error is not None:
            out["error"], out["hint"] = error_message(self.error), error_hint(self.error)
        out["seconds"] = round(self.seconds, 3)
        return out


def _params(adapter: Adapter) -> list[click.Parameter]:
    """The adapter's options, and its pull options if it can pull from an API."""
    return [*adapter.params, *adapter.pull_params]


def source_options(src: Source) -> dict[str, Any]:
    """The adapter options of a hub.toml source, checked against the adapter's own options;
    paths are taken relative to hub.toml."""
    from hubctl.adapters import get_adapter
    from hubctl.config_check import check_option_value  # difflib: for hub.toml only

    try:
        adapter = get_adapter(src.adapter)
    except KeyError as exc:
        raise ConfigError(f"source {src.name}: {exc.args[0]}") from None
    known = {p.name: p for p in _params(adapter)}
    known |= {o.lstrip("-").replace("-", "_"): p for p in _params(adapter) for o in p.opts
              if p.name is not None and o.startswith("--")}  # `type` for --type too
    out: dict[str, Any] = {}
    for key, value in src.options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"source {src.name}: adapter {adapter.name} has no option {key!r}",
                              hint=f"its options: {', '.join(sorted(known)) or 'none'}")
        param = known[name]
        check_option_value(src.name, key, param, value, adapter.name)  # type, range
        if isinstance(param.type, click.Path) and isinstance(value, str):
            value = str(src.base / value)
        out[param.name or name] = value
    return out


def ingest_request(adapter_name: str, inputs: Sequence[str], options: dict[str, Any], *,
                   source: str | None = None, force: bool = False,
                   max_reject_rate: float | None = None,
                   engine: str | None = None) -> IngestRequest:
    """What to run for an adapter and its arguments: an API pull when the adapter says the
    options ask for one (no input files; resumes from the source's cursor), else its files.
    The source is named ``source``, else after the adapter and the input paths. ``engine``:
    a Spark master that reads the files (:mod:`hubctl.spark_ingest`), None for this
    process."""
    from hubctl.adapters import get_adapter
    from hubctl.ingest import IngestRequest, expand_inputs
    from hubctl.ledger import Cursor

    adapter = get_adapter(adapter_name)
    if engine is not None:
        engine = _spark_master(engine)
    if adapter.is_pull(options):
        from hubctl.pull import Pulling  # HTTP client code: loaded for API pulls only

        if engine is not None:
            raise UsageError(f"--engine {engine}: an API pull runs in this process",
                             hint="drop --engine")
        if inputs:
            raise UsageError(f"{adapter.name}: an API pull reads no files ({inputs[0]} given)",
                             hint="drop the file arguments, or drop --api to read files")
        cursor = Cursor()
        return IngestRequest(adapter=Pulling(adapter, cursor), inputs=[], options=options,
                             source=source or adapter.pull_source(options),
                             max_reject_rate=max_reject_rate, cursor=cursor)
    pull_only = {p.name for p in adapter.pull_params}
    options = {k: v for k, v in options.items() if k not in pull_only}  # files: as before
    paths = expand_inputs(inputs, folders=adapter.accepts_folders)
    if not paths:
        raise UsageError(f"{adapter_name}: give at least one input file")
    name = source or f"{adapter_name}:" + ",".join(str(p.resolve()) for p in paths)
    return IngestRequest(adapter=adapter, inputs=paths, options=options, source=name,
                         force=force, max_reject_rate=max_reject_rate, engine=engine)


def _spark_master(engine: str) -> str:
    """``engine`` checked as a Spark master (ingest has no DuckDB engine)."""
    from hubctl.spark import check_engine

    engine = check_engine(engine)
    if engine == "duckdb":
        raise UsageError("--engine duckdb: ingest has no DuckDB engine",
                         hint="leave --engine out to ingest in this process, or give a Spark "
                              "master: local[N] or spark://HOST:PORT")
    return engine


def source_names(config: Config, names: Sequence[str] | None = None) -> list[str]:
    """The hub.toml sources to run: ``names``, or (None) every source ``hubctl ingest`` runs
    (MQTT sources belong to ``hubctl listen``). ConfigError for an unknown name, UsageError
    for an MQTT source."""
    if not config.sources:
        raise ConfigError(f"no sources declared in {config.path or 'hub.toml (none found)'}",
                          hint="run `hubctl init` and add a [sources.NAME] table")
    if names is None:
        return [n for n, s in config.sources.items() if not s.mqtt]
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise ConfigError(f"unknown source(s): {', '.join(unknown)}",
                          hint=f"declared in {config.path}: {', '.join(config.sources)}")
    live = [n for n in names if config.sources[n].mqtt]
    if live:
        raise UsageError(f"source(s) {', '.join(live)} are MQTT sources: they are received, "
                         "not ingested", hint=f"run `hubctl listen {' '.join(live)}`")
    return list(names)


def source_request(config: Config, name: str, *, force: bool = False,
                   max_reject_rate: float | None = None) -> IngestRequest:
    """The ingest of hub.toml source ``name``."""
    src = config.sources[source_names(config, [name])[0]]
    return ingest_request(src.adapter, src.inputs, source_options(src), source=name,
                          force=force, max_reject_rate=max_reject_rate)


def run_request(lake: Lake, req: IngestRequest, progress: Progress | None = None) -> Run:
    """Run one ingest (under its source's lock); returns its ledger run or raises."""
    from hubctl.ingest import ingest

    with progress(req) if progress is not None and req.inputs else nullcontext(None) as bar:
        return ingest(lake, req, progress=bar)


def try_request(label: str, build: Callable[[], IngestRequest], lake: Lake,
                progress: Progress | None = None) -> SourceRun:
    """Build and run one ingest; every error is kept in the SourceRun, never raised (a caller
    re-raises ``error`` to keep its traceback)."""
    began = time.monotonic()
    out = SourceRun(label)
    req = None
    try:
        req = build()
        out.source = req.source
        out.run = run_request(lake, req, progress)
    except Exception as exc:  # kept, with the counts so far; the caller decides
        out.error = exc
        if req is not None:
            out.run = req.run
    out.seconds = time.monotonic() - began
    return out


def run_sources(lake: Lake, config: Config, names: Sequence[str], *, force: bool = False,
                max_reject_rate: float | None = None, progress: Progress | None = None,
                debug: bool = False,
                done: Callable[[SourceRun], None] = lambda r: None) -> list[SourceRun]:
    """Run hub.toml sources one after the other: one failing does not stop the others.

    ``done`` is called as each ends. A bug (not a HubError) is kept as that source's failure,
    unless ``debug``: then it is raised at once, with its traceback.
    """
    from hubctl.running import STOP

    out = []
    for name in names:
        if STOP.is_set():  # the process was asked to stop: start nothing more
            out.append(SourceRun(name, error=HubError(
                "not started: the process was asked to stop",
                hint="run it again, e.g. `hubctl ingest --source " + name + "`")))
            done(out[-1])
            continue
        result = try_request(name, partial(source_request, config, name, force=force,
                                           max_reject_rate=max_reject_rate), lake, progress)
        if debug and result.error is not None and not isinstance(result.error, HubError):
            raise result.error
        out.append(result)
        done(result)
    return out


# ---------------------------------------------------------------- pipelines

@dataclass
class PipelineRun:
    """How one pipeline of ``run --all`` ended."""

    pipeline: str
    outcome: Outcome | None = None
    error: BaseException | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 done or skipped, 1 failed or an assert did not hold, 2 usage, 75 locked."""
        return exit_code(self.error)

    @property
    def status(self) -> str:
        """``ok``, ``assert-failed``, ``failed``, ``locked``, ``interrupted`` (SIGINT or
        SIGTERM) or ``skipped`` (inputs missing)."""
        if self.missing:
            return "skipped"
        if isinstance(self.error, LockHeld):
            return "locked"
        if self.outcome is not None:
            return self.outcome.status
        if isinstance(self.error, Stopped):
            return "interrupted"
        return "failed" if self.error is not None else "ok"

    def as_json(self) -> dict[str, Any]:
        """The JSON object of this pipeline's run, the same keys whether it ran or not."""
        out: dict[str, Any] = {"pipeline": self.pipeline}
        if self.outcome is not None:
            out |= self.outcome.as_json()
        out |= {"status": self.status, "exit_code": self.exit_code,
                "error": error_message(self.error) if self.error is not None else None,
                "hint": error_hint(self.error) if self.error is not None else None}
        if self.missing:
            out["missing_inputs"] = self.missing
        return out


def route_all(registry: dict[str, Pipeline], params: Sequence[str],
              asserts: Sequence[Assertion]) -> tuple[dict[str, list[str]],
                                                     dict[str, list[Assertion]]]:
    """``run --all`` arguments by pipeline: ``PIPELINE.NAME=VALUE`` and
    ``PIPELINE.METRIC OP VALUE``; a UsageError for any other form."""
    per: dict[str, list[str]] = {}
    for pair in params:
        target, dot, rest = pair.partition(".")
        if not dot or target not in registry:
            raise UsageError(f"--param {pair!r}: with --all write PIPELINE.NAME=VALUE",
                             hint=f"pipelines: {', '.join(sorted(registry))}")
        per.setdefault(target, []).append(rest)
    checks: dict[str, list[Assertion]] = {}
    for a in asserts:
        target, dot, metric = a.metric.partition(".")
        if not dot or target not in registry:
            raise UsageError(f"--assert {a.text!r}: with --all write PIPELINE.METRIC OP VALUE")
        checks.setdefault(target, []).append(replace(a, metric=metric))
    return per, checks


def run_pipelines(lake: Lake, registry: dict[str, Pipeline],
                  params: dict[str, list[str]], asserts: dict[str, list[Assertion]], *,
                  debug: bool = False, warn: Callable[[str], None] = lambda m: None,
                  step: Callable[[str, str], None] = lambda name, m: None,
                  done: Callable[[PipelineRun], None] = lambda r: None,
                  engine: str | None = None) -> list[PipelineRun]:
    """Run every pipeline of ``registry`` whose inputs the lake has, each after the pipelines
    whose derived tables it reads, otherwise in name order (:func:`hubctl.pipeline.run_order`);
    the others are skipped. One failing does not stop the others; with ``debug`` a bug is
    raised at once. ``params`` and ``asserts`` are by pipeline (see :func:`route_all`);
    ``engine`` is :func:`~hubctl.runner.run_pipeline`'s."""
    from hubctl.pipeline import run_order
    from hubctl.runner import AssertionFailed, missing_inputs, parse_params, run_pipeline

    lake.require_root()
    tables = lake.table_names()
    out = []
    for name in run_order(registry):
        pipeline = registry[name]
        result = PipelineRun(name, missing=missing_inputs(pipeline, tables))
        if not result.missing:
            try:
                values = parse_params(pipeline, params.get(name, []))
                result.outcome = run_pipeline(
                    lake, pipeline, values, asserts.get(name, []), warn=warn,
                    step=partial(step, name), engine=engine)
            except AssertionFailed as exc:  # it ran: its outcome is kept
                result.outcome, result.error = exc.outcome, exc
            except Stopped as exc:  # SIGINT or SIGTERM: no further pipeline starts
                result.outcome, result.error = exc.run, exc  # type: ignore[assignment]
                out.append(result)
                done(result)
                break
            except Exception as exc:
                if debug and not isinstance(exc, HubError):
                    raise
                result.error = exc
        out.append(result)
        done(result)
    return out


def overall_exit(results: Iterable[SourceRun | PipelineRun]) -> int:
    """The exit code of several runs: the most severe of theirs."""
    return most_severe(r.exit_code for r in results)
