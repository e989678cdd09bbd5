"""Running a pipeline: parameters, inputs, the lock, derived tables, the ledger row, asserts.

Each run of pipeline ``p`` overwrites its derived tables ``<lake>/derived/p/<table>/`` (a new
Delta version, so earlier outputs stay readable by time travel until vacuumed), every row tagged
with the run id, and appends one row to ``_pipeline_runs``: parameters, input table versions,
row counts, the summary, the assert results and how the run ended.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import operator
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from hubctl.catalog import Catalog
from hubctl.errors import EXIT_FAILED, HubError, InputError, Stopped, UsageError
from hubctl.heap import retained
from hubctl.lake import DERIVED, Lake
from hubctl.ledger import new_run_id
from hubctl.locks import hold
from hubctl.pipeline import Pipeline, PipelineContext, metrics
from hubctl.types import TIMESTAMP

__all__ = ["PIPELINE_RUNS", "Assertion", "AssertionFailed", "Outcome", "interruptible",
           "missing_inputs", "parse_assert", "parse_params", "plain", "run_pipeline"]

PIPELINE_RUNS = "_pipeline_runs"

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("pipeline", pa.string()), ("params", pa.string()),
    ("inputs", pa.string()), ("started_at", TIMESTAMP), ("finished_at", TIMESTAMP),
    ("seconds", pa.float64()), ("status", pa.string()), ("error", pa.string()),
    ("tables", pa.string()), ("summary", pa.string()), ("notes", pa.string()),
    ("asserts", pa.string()), ("host", pa.string()), ("pid", pa.int64()),
])

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt, "=": operator.eq,
}
_ASSERT = re.compile(r"^\s*([^\s<>=!]+)\s*(<=|>=|==|!=|<|>|=)\s*(\S+)\s*$")


class AssertionFailed(HubError):
    """An ``--assert`` did not hold: the analysis ran, its result is not acceptable."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, outcome: Outcome, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.outcome = outcome


class EmptyAnalysis(AssertionFailed):
    """The analysis ran but its inputs yielded nothing usable: status ``empty``, exit 1."""


@dataclass(frozen=True)
class Assertion:
    """``METRIC OP VALUE`` from ``--assert``."""

    text: str
    metric: str
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        """True when ``actual OP value``."""
        return _OPS[self.op](actual, self.value)


def parse_assert(text: str) -> Assertion:
    """Parse ``"coverage.after >= 0.6"``; a UsageError shows the expected form."""
    m = _ASSERT.match(text)
    value: float | None = None
    if m:
        raw = m.group(3).lower()
        if raw in ("true", "false"):
            value = 1.0 if raw == "true" else 0.0
        else:
            try:
                value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
            except ValueError:
                value = None
    if not m or value is None or not math.isfinite(value):
        raise UsageError(f"--assert {text!r}: expected METRIC OP NUMBER",
                         hint='for example --assert "coverage.after >= 0.6" '
                              "(OP is one of < <= > >= == !=)")
    return Assertion(text.strip(), m.group(1), m.group(2), value)


def parse_params(pipeline: Pipeline, pairs: Sequence[str]) -> dict[str, Any]:
    """Every parameter of ``pipeline``: defaults, overridden by ``name=value`` pairs."""
    known = {p.name: p for p in pipeline.params}
    values = {p.name: p.default for p in pipeline.params}
    aliases = {alias: p.name for p in pipeline.params for alias in p.aliases}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        name = aliases.get(name, name)
        if not sep or not name:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE",
                             hint=f"`hubctl pipelines {pipeline.name}` lists the parameters")
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            raise UsageError(
                f"pipeline {pipeline.name} has no parameter {name!r}"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"its parameters: {', '.join(known) or 'none'}")
        values[name] = known[name].parse(text)
    return values


def missing_inputs(pipeline: Pipeline, tables: Sequence[str]) -> list[str]:
    """The inputs of ``pipeline`` that the lake lacks (``"A|B"`` when neither is there)."""
    present = set(tables)
    return [spec for spec in pipeline.inputs
            if not any(alt in present for alt in spec.split("|"))]


@dataclass
class Outcome:
    """What one run produced, as ``hubctl run --json`` prints it."""

    pipeline: str
    run_id: str
    params: dict[str, Any]
    inputs: dict[str, int]
    tables: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"
    engine: str = "duckdb"  # where the heavy queries ran (``--engine``)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pipeline": self.pipeline, "run_id": self.run_id, "status": self.status,
            "seconds": round(self.seconds, 3), "engine": self.engine,
            "params": plain(self.params),
            "inputs": self.inputs,
            "tables": {t: {"rows": n, "sql": f"{DERIVED}.{self.pipeline}_{t}"}
                       for t, n in self.tables.items()},
            "summary": self.summary, "notes": self.notes, "asserts": self.checks,
        }


class _Interrupt:
    """The signal that interrupted the runs of this process (SIGINT, SIGTERM), whether the
    run in progress is writing its outputs (the signal then waits until they are written),
    whether KeyboardInterrupt was raised for it, and the run's DuckDB connection (interrupted
    from another thread: a query does not return to Python, so no handler runs, until it
    ends)."""

    signal: str | None = None
    writing: bool = False
    raised: bool = False
    con: Any = None


_INTERRUPT = _Interrupt()


@contextmanager
def interruptible() -> Iterator[None]:
    """While ``hubctl run`` runs pipelines, SIGINT (Ctrl-C) and SIGTERM interrupt the run in
    progress where it is: a DuckDB query is interrupted, a Spark job under way is cancelled and
    the session stopped, the run is recorded as ``interrupted`` (its derived tables are not
    written) and Stopped is raised (exit 1, a message, no traceback). A signal that comes while
    the run writes its derived tables and its ledger row waits until they are written: the
    run ends as it would have, then Stopped is raised. Outside the main thread nothing is
    installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        _INTERRUPT.signal = _INTERRUPT.signal or signal.Signals(signum).name
        spark = sys.modules.get("hubctl.spark")  # imported by the command; Spark only if used
        inside = spark is not None and spark.interrupt()  # a JVM call: it ends by itself
        # not while an exception is handled: the run is ending and records the signal then
        if not (_INTERRUPT.raised or _INTERRUPT.writing or inside or sys.exc_info()[0]):
            _INTERRUPT.raised = True
            raise KeyboardInterrupt(_INTERRUPT.signal)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    woken, watcher, wakeup = _watch_signals()
    try:
        yield
    except KeyboardInterrupt:  # before a run started (its lock, the catalog): nothing recorded
        raise Stopped(f"stopped by {_INTERRUPT.signal or 'SIGINT'} before the pipeline "
                      "started: nothing was written") from None
    finally:
        signal.set_wakeup_fd(wakeup)
        woken.close()  # the watcher's read ends
        watcher.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _INTERRUPT.signal, _INTERRUPT.writing, _INTERRUPT.raised = None, False, False
        if "hubctl.spark" in sys.modules:
            sys.modules["hubctl.spark"].CANCEL.clear()


def _watch_signals() -> tuple[socket.socket, threading.Thread, int]:
    """A thread told of each signal by the interpreter's wakeup file descriptor (written at
    once, even while the main thread is inside a DuckDB query): it interrupts the run's query
    (``DuckDBPyConnection.interrupt``). Returns the socket to close to end it, the thread and
    the wakeup descriptor it replaced."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        with reader, writer:
            while True:
                try:
                    data = reader.recv(16)
                except OSError:
                    return
                if not data:
                    return
                names = [signal.Signals(b).name for b in data
                         if b in (signal.SIGINT, signal.SIGTERM)]
                if not names:
                    continue
                _INTERRUPT.signal = _INTERRUPT.signal or names[0]
                con = _INTERRUPT.con
                if con is not None and not _INTERRUPT.writing:
                    with contextlib.suppress(Exception):
                        con.interrupt()

    thread = threading.Thread(target=watch, name="hubctl-signals", daemon=True)
    thread.start()
    return writer, thread, wakeup


def run_pipeline(lake: Lake, pipeline: Pipeline, params: dict[str, Any],
                 asserts: Sequence[Assertion] = (), *,
                 warn: Callable[[str], None] = lambda m: None,
                 step: Callable[[str], None] = lambda m: None,
                 engine: str | None = None) -> Outcome:
    """Run ``pipeline`` on the lake's current snapshots and record it.

    ``engine`` is a Spark master (``local[N]``, ``spark://HOST:PORT``) for the pipeline's
    heavy queries (:class:`hubctl.spark.SparkEngine`); None or ``duckdb`` runs them in DuckDB.

    Raises InputError when an input table is missing, LockHeld when the same pipeline runs
    elsewhere, UsageError when an assert names no metric of the summary, AssertionFailed
    (after writing everything) when an assert does not hold, and Stopped when a signal
    interrupted it (:func:`interruptible`; a KeyboardInterrupt without it).
    """
    lake.require_root()
    tables = lake.table_names()
    missing = missing_inputs(pipeline, tables)
    if missing:
        raise InputError(
            f"pipeline {pipeline.name} needs table(s) {', '.join(missing)}, which the lake "
            f"{lake.root} does not have",
            hint="ingest them first (`hubctl ingest --help` lists the adapters, "
                 "`hubctl tables` what the lake holds)")
    with hold(lake.root, f"pipeline:{pipeline.name}"):
        _INTERRUPT.writing = False
        used = [t for spec in (*pipeline.inputs, *pipeline.optional_inputs)
                for t in spec.split("|") if t in tables]
        out = Outcome(pipeline.name, new_run_id(), params,
                      {t: lake.open(t).version() for t in used}, engine=engine or "duckdb")
        started = datetime.now(UTC)
        clock = time.perf_counter()
        catalog = Catalog(lake)
        _INTERRUPT.con = catalog.con
        spark = None
        try:
            if engine not in (None, "duckdb"):
                from hubctl.spark import SparkEngine

                spark = SparkEngine(str(engine), lake)
            ctx = PipelineContext(con=catalog.con, params=dict(params), run_id=out.run_id,
                                  tables=frozenset(tables), warn=warn, step=step,
                                  engine=spark)
            with retained():  # big numpy temporaries reuse freed memory, not fresh pages
                result = pipeline.run(ctx)
                out.summary = plain(result.summary)
                out.notes = list(result.notes)
                _INTERRUPT.writing = True  # from here on a signal waits for the outputs
                for note in out.notes:
                    warn(note)
                for name, table in sorted(result.tables.items()):
                    step(f"writing {DERIVED}.{pipeline.name}_{name} ({table.num_rows:,} rows)")
                    lake.replace(f"{DERIVED}/{pipeline.name}/{name}", _tagged(table, out.run_id))
                    out.tables[name] = table.num_rows
            out.checks = _check(out.summary, asserts)
            out.status = "ok" if all(c["ok"] for c in out.checks) else "assert-failed"
            if result.empty:
                out.status = "empty"
        except BaseException as exc:
            # a signal before the outputs: DuckDB reports it as its own error, Spark's gateway
            # as a broken call; KeyboardInterrupt is Ctrl-C without interruptible()
            stopped = isinstance(exc, KeyboardInterrupt) or (
                _INTERRUPT.signal is not None and not _INTERRUPT.writing)
            out.status = "interrupted" if stopped else "failed"
            out.seconds = time.perf_counter() - clock
            why = f"stopped by {_INTERRUPT.signal or 'SIGINT'}"
            if stopped and spark is not None:
                spark.abandon()
            _INTERRUPT.writing = True  # the ledger row, then the message
            _record(lake, out, started, error=why if stopped else _describe(exc))
            if stopped:
                raise Stopped(f"{why}: run {out.run_id} of {pipeline.name} is recorded as "
                              "interrupted; its derived tables were not written",
                              hint="run it again; the lake holds the previous run's tables"
                              ) from None
            raise
        finally:
            _INTERRUPT.con = None
            catalog.close()
            if spark is not None:
                spark.close()
        out.seconds = time.perf_counter() - clock
        _record(lake, out, started)
        _INTERRUPT.writing = False
    if _INTERRUPT.signal is not None:
        raise Stopped(f"stopped by {_INTERRUPT.signal} while run {out.run_id} of "
                      f"{pipeline.name} wrote its derived tables: it finished first and is "
                      f"recorded as {out.status}", run=out)
    if out.status == "empty":
        raise EmptyAnalysis(
            f"pipeline {pipeline.name} analysed nothing: {result.empty}", out,
            hint=f"run {out.run_id} is recorded in _pipeline_runs with status empty; check "
                 "its inputs and parameters (`hubctl pipelines " + pipeline.name + "`)")
    failed = [c for c in out.checks if not c["ok"]]
    if failed:
        raise AssertionFailed(
            "assertion failed: " + "; ".join(
                f"{c['metric']} = {c['value']:g}, expected {c['op']} {c['expected']:g}"
                for c in failed), out,
            hint=f"run {out.run_id} is recorded in _pipeline_runs with status assert-failed")
    return out


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HubError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _tagged(table: pa.Table, run_id: str) -> pa.Table:
    """The table with its ``_run_id``; all-null columns typed as text (Delta has no null type)."""
    if "_run_id" in table.column_names:
        table = table.drop_columns(["_run_id"])
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, pa.field(f.name, pa.string()),
                                     table.column(i).cast(pa.string()))
    return table.append_column("_run_id", pa.repeat(pa.scalar(run_id, pa.string()), table.num_rows))


def _check(summary: dict[str, Any], asserts: Sequence[Assertion]) -> list[dict[str, Any]]:
    values = metrics(summary)
    checks = []
    for a in asserts:
        if a.metric not in values:
            close = difflib.get_close_matches(a.metric, list(values), n=3)
            raise UsageError(
                f"--assert {a.text!r}: the summary has no metric {a.metric!r}",
                hint=(f"did you mean {', '.join(close)}? " if close else "")
                + "`hubctl run NAME --json` shows the summary; metrics are dotted paths")
        actual = values[a.metric]
        checks.append({"assert": a.text, "metric": a.metric, "op": a.op, "expected": a.value,
                       "value": actual, "ok": a.holds(actual)})
    return checks


def _record(lake: Lake, out: Outcome, started: datetime, error: str | None = None) -> None:
    row = {
        "run_id": out.run_id, "pipeline": out.pipeline,
        "params": json.dumps(plain(out.params), sort_keys=True),
        "inputs": json.dumps(out.inputs, sort_keys=True), "started_at": started,
        "finished_at": datetime.now(UTC), "seconds": out.seconds, "status": out.status,
        "error": error, "tables": json.dumps(out.tables, sort_keys=True),
        "summary": json.dumps(out.summary, ensure_ascii=False),
        "notes": json.dumps(out.notes, ensure_ascii=False),
        "asserts": json.dumps(out.checks), "host": socket.gethostname(), "pid": os.getpid(),
    }
    lake.append(PIPELINE_RUNS, pa.Table.from_pylist([row], schema=RUNS_SCHEMA))


def plain(value: Any) -> Any:
    """A summary as plain JSON values: numpy scalars unwrapped, dates as ISO text, NaN as null."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy
        return plain(value.tolist())
    if hasattr(value, "as_py"):  # an Arrow scalar
        return plain(value.as_py())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
