"""What a pipeline is: an analysis over the catalog that returns derived tables and a summary.

A pipeline module in ``pipelines/`` defines ``PIPELINE``, an object with:

- ``name``: what ``hubctl run NAME`` calls it;
- ``summary``: one line for ``hubctl pipelines``;
- ``inputs``: the lake tables it needs, each ``"Type"`` or ``"TypeA|TypeB"`` (any one of them);
  ``hubctl run --all`` runs the pipelines whose inputs are all present;
- ``optional_inputs``: tables it uses when they are present;
- ``derived_inputs`` (optional): the derived tables of other pipelines it reads, by their SQL
  names (``"derived.energy_kpis"``); ``hubctl run --all`` runs those pipelines first
  (:func:`run_order`);
- ``params``: its :class:`Param` list (``--param name=value``);
- ``example``: a command line for ``--help``;
- ``run(ctx)``: the analysis, returning a :class:`PipelineResult`.

The runner (:mod:`hubctl.runner`) does the rest: catalog, parameters, the lock, writing the
derived tables under ``<lake>/derived/<NAME>/<table>/`` tagged with the run id, the run's
ledger row, the printed summary and the ``--assert`` checks.

A pipeline must be deterministic: the same lake and parameters give the same tables and summary
(order rows explicitly; break ties by a key; seed anything random).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from hubctl.errors import UsageError

__all__ = ["EVERY", "Param", "Pipeline", "PipelineContext", "PipelineResult", "every_category",
           "metrics", "run_order",
           "upstream"]

_KINDS = ("int", "float", "str", "bool", "date", "list")


#: The value of a category parameter that means every category.
EVERY = "any"


def every_category(value: str) -> bool:
    """True when a category parameter means every category: ``any``, or ``''`` (its older
    spelling, kept as an alias)."""
    return str(value).strip() in ("", EVERY)


@dataclass(frozen=True)
class Param:
    """One ``--param name=value`` of a pipeline, with its default and help text.

    ``kind`` is one of int, float, str, bool, date (YYYY-MM-DD), list (comma-separated
    strings); empty means "the type of the default". ``choices`` restricts str values;
    ``minimum``/``maximum`` bound numbers. ``aliases`` are older names still accepted (one
    idea has one name across pipelines: ``cell_m`` for a grid cell, ``any`` for every
    category).
    """

    name: str
    default: Any
    help: str
    kind: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        """The kind of value this parameter takes."""
        if self.kind:
            return self.kind
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        if isinstance(self.default, date):
            return "date"
        if isinstance(self.default, list | tuple):
            return "list"
        return "str"

    def parse(self, text: str) -> Any:
        """The value of ``text`` for this parameter, or a UsageError that says what fits."""
        kind = self.type_name
        raw = text.strip()
        try:
            value: Any
            if kind == "int":
                value = int(raw)
            elif kind == "float":
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError(raw)
            elif kind == "bool":
                low = raw.lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value = low in ("1", "true", "yes", "on")
            elif kind == "date":
                value = date.fromisoformat(raw)
            elif kind == "list":
                value = [p.strip() for p in raw.split(",") if p.strip()]
            else:
                value = raw
        except ValueError:
            raise UsageError(f"--param {self.name}={text}: not a valid {kind}",
                             hint=f"{self.name}: {self.help} (default {self.default!r})") from None
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Raise UsageError when ``value`` is outside the choices or bounds."""
        if self.choices and value not in self.choices:
            raise UsageError(f"--param {self.name}={value}: choose one of "
                             f"{', '.join(self.choices)}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise UsageError(f"--param {self.name}={value}: must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise UsageError(f"--param {self.name}={value}: must be at most {self.maximum}")


@dataclass
class PipelineContext:
    """What the runner gives a pipeline.

    ``con`` is a DuckDB connection with the catalog's views: every lake table by its name
    (``"GtfsStopTime"``), ``<Type>_latest`` (newest row per id), ``_runs``, ``_rejects``, and
    earlier derived tables as ``derived.<pipeline>_<table>``. ``params`` holds every parameter
    of the pipeline, parsed, defaults filled in.

    ``engine`` is None (DuckDB runs everything) or, with ``hubctl run --engine``, the
    :class:`hubctl.spark.SparkEngine` that runs the queries a pipeline sends through
    :meth:`aggregate` and :meth:`stage`: its heavy scans over the big lake tables, which may
    join small tables built in Python and handed over with :meth:`share`. Everything else
    (:meth:`sql`, :meth:`scalar`, ``con``) runs in DuckDB on the driver.
    """

    con: duckdb.DuckDBPyConnection
    params: dict[str, Any]
    run_id: str
    tables: frozenset[str] = frozenset()
    warn: Callable[[str], None] = lambda msg: None
    step: Callable[[str], None] = lambda msg: None
    engine: Any = None

    def has(self, table: str) -> bool:
        """True if the lake has table ``table`` (it may still be empty)."""
        return table in self.tables

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run SQL on the catalog and return the result as an Arrow table."""
        return self.con.sql(query, params=list(params) if params else None).to_arrow_table()

    def aggregate(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a heavy query over lake tables (and :meth:`stage` tables) whose result is
        small, on the run's engine: DuckDB, or Spark with ``--engine``. The SQL is DuckDB's;
        the result has the schema DuckDB gives it, on either engine."""
        if self.engine is None:
            return self.sql(query, params)
        return self.engine.query(self.con, query, params)  # type: ignore[no-any-return]

    def stage(self, name: str, query: str, params: Sequence[Any] | None = None) -> None:
        """Keep ``query``'s result as table ``name`` on the run's engine, for later
        :meth:`aggregate` queries (a DuckDB temp table; with ``--engine`` a cached Spark view,
        which only :meth:`aggregate` queries see: DuckDB keeps an empty table of its schema)."""
        if self.engine is None:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}",
                             list(params) if params else []).fetchall()
        else:
            self.engine.stage(self.con, name, query, params)

    def share(self, name: str, table: pa.Table) -> None:
        """Make ``table``, a small Arrow table built on the driver (a lookup, a mapping of
        ids), visible as table ``name`` to later :meth:`aggregate` and :meth:`stage` queries,
        and to :meth:`sql`: a DuckDB temp table, and with ``--engine`` a Spark temporary view
        of the same rows too, so that heavy queries may join it on either engine."""
        from hubctl.duck import quote_ident

        source = f"__share_{name}"
        self.con.register(source, table)
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS "
                             f"SELECT * FROM {quote_ident(source)}").fetchall()
        finally:
            self.con.unregister(source)
        if self.engine is not None:
            self.engine.share(name, table)

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The first column of the first row of a query (None when there is no row)."""
        rows = self.con.execute(query, list(params) if params else []).fetchall()
        return rows[0][0] if rows else None

    def timezone(self, name: str) -> str:
        """``name`` checked as a time zone DuckDB knows (for local days and hours in SQL), or
        a UsageError naming the parameter; quotes are dropped so it can be inlined."""
        try:
            self.con.execute("SELECT timezone(?, TIMESTAMPTZ '2024-01-01 00:00:00+00')",
                             [name]).fetchall()
        except duckdb.Error:
            raise UsageError(f"--param timezone={name}: not a time zone DuckDB knows",
                             hint="use an IANA name such as Europe/London or Asia/Seoul"
                             ) from None
        return name.replace("'", "")


@dataclass
class PipelineResult:
    """Derived tables by short name, and the JSON summary.

    Table ``x`` of pipeline ``p`` is written to ``<lake>/derived/p/x/`` and queried as
    ``derived.p_x``. Numbers anywhere in ``summary`` are metrics for ``--assert``, named by
    their dotted path (``coverage.after``, ``routes.0.trips``). ``notes`` are sentences for
    people (for example how many records an analysis had to leave out, and why).
    """

    tables: dict[str, pa.Table]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # Why the inputs yielded nothing usable (no call on the network, no station, ...): the
    # run is recorded with status ``empty`` and exits 1 instead of saying ``ok``.
    empty: str | None = None


class Pipeline(Protocol):
    """The contract every module in ``pipelines/`` fulfils (as its ``PIPELINE``)."""

    name: str
    summary: str
    inputs: tuple[str, ...]
    optional_inputs: tuple[str, ...]
    params: tuple[Param, ...]
    example: str

    def run(self, ctx: PipelineContext) -> PipelineResult:
        """Run the analysis."""
        ...


def metrics(summary: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a summary by dotted path (booleans count as 0/1)."""
    out: dict[str, float] = {}
    if isinstance(summary, dict):
        for key, value in summary.items():
            out.update(metrics(value, f"{prefix}{key}."))
    elif isinstance(summary, list | tuple):
        for i, value in enumerate(summary):
            out.update(metrics(value, f"{prefix}{i}."))
    elif isinstance(summary, int | float) and math.isfinite(summary):  # bool is an int too
        out[prefix[:-1]] = float(summary)
    return out


def upstream(pipeline: Pipeline, names: Iterable[str]) -> list[str]:
    """The pipelines among ``names`` whose derived tables ``pipeline`` reads (its
    ``derived_inputs``, ``derived.<pipeline>_<table>``; the longest matching name wins, so
    ``derived.air_quality_means`` is air_quality's even beside a pipeline called ``air``)."""
    known = sorted(names, key=len, reverse=True)
    out: list[str] = []
    for table in getattr(pipeline, "derived_inputs", ()):
        short = table.removeprefix("derived.")
        owner = next((n for n in known if short.startswith(f"{n}_")), None)
        if owner is not None and owner != pipeline.name and owner not in out:
            out.append(owner)
    return out


def run_order(registry: Mapping[str, Pipeline]) -> list[str]:
    """The pipelines' names in the order ``hubctl run --all`` runs them: each after the
    pipelines whose derived tables it reads (``derived_inputs``), otherwise by name.
    RuntimeError when two pipelines read each other's tables (a cycle)."""
    before = {name: upstream(p, registry) for name, p in registry.items()}
    done: list[str] = []
    pending = sorted(registry)
    while pending:
        ready = [n for n in pending if all(u in done for u in before[n])]
        if not ready:
            raise RuntimeError("pipelines read each other's derived tables: "
                               + ", ".join(f"{n} after {', '.join(before[n])}" for n in pending))
        done.append(ready[0])
        pending.remove(ready[0])
    return done
