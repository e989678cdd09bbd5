"""Pipelines' heavy SQL on Spark: ``hubctl run NAME --engine spark://HOST:PORT`` or ``local[N]``.

A pipeline writes its SQL once, in DuckDB's dialect. The scans and aggregations over the big
lake tables (calls, stop times, boardings, meter readings) go through
:meth:`hubctl.pipeline.PipelineContext.aggregate` (and :meth:`~PipelineContext.stage` for an
intermediate table those queries share, :meth:`~PipelineContext.share` for a small table built
in Python that they join). Without ``--engine`` DuckDB runs them; with it,
:class:`SparkEngine` transpiles each query to Spark SQL (sqlglot), runs it on the cluster over
the same Delta snapshots and brings the small result back to the driver as Arrow, cast to the
exact schema DuckDB gives the same query. Everything after that (the solvers, the small SQL
over results) runs in the driver as without ``--engine``.

Spark reads each lake table as the Parquet files of its current Delta snapshot
(``DeltaTable.file_uris()``), with the Delta schema, so no Delta jar is needed on the cluster
and nothing is downloaded at run time. A local lake is read by Spark's own Parquet reader: the
executors must see it at the same path (one machine, or a shared filesystem). A lake on S3 is
read by pyarrow, as the pyspark wheel has no S3 connector (hadoop-aws): ``mapInArrow`` over a
frame of the snapshot's file names, one task per group of files, each executor reading its
files through pyarrow's S3 filesystem configured from its own ``AWS_*`` variables
(:func:`hubctl.s3.arrow_filesystem`; with ``local[N]`` this process's, on a cluster the
workers' environment, e.g. their ``spark-env.sh``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hubctl.errors import HubError, UsageError

if TYPE_CHECKING:
    import duckdb

    from hubctl.lake import Lake

__all__ = ["CANCEL", "JAVA_OPTIONS_ENV", "JVM_OPTIONS", "LOCAL", "SparkEngine", "cancel_jobs",
           "cancelled_on", "check_engine", "interrupt", "java_missing", "stop", "to_spark_sql"]

LOCAL = re.compile(r"^local(\[(\d+|\*)\])?$")
_MASTER = re.compile(r"^spark://[^\s/:]+:\d+$")


def check_engine(engine: str) -> str:
    """``engine`` when it names a Spark master (``spark://HOST:PORT``, ``local[N]``) or DuckDB
    (``duckdb``); a UsageError saying what fits otherwise."""
    text = engine.strip()
    if text == "duckdb" or LOCAL.match(text) or _MASTER.match(text):
        return text
    raise UsageError(f"--engine {engine}: not an engine",
                     hint="use duckdb (the default), local[N] (Spark in this process with N "
                          "threads) or spark://HOST:PORT (a Spark standalone master)")


def java_missing() -> str | None:
    """Why Spark cannot start here (no Java runtime, no pyspark), or None."""
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return ("no Java runtime: Spark needs Java 17 or later (Debian: apt-get install "
                "openjdk-17-jre-headless)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: pip install 'hubctl[spark]'"
    return None


def to_spark_sql(query: str, params: Sequence[Any] | None = None) -> str:
    """DuckDB SQL as Spark SQL: ``?`` (or ``$n``) parameters inlined as literals, decimal
    literals read as doubles (DuckDB divides decimals in floating point, Spark in decimal),
    then sqlglot's transpilation with the rewrites of :func:`_spark_function`."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Literal) and node.is_number and _DECIMAL.match(node.this):
            return exp.cast(node, exp.DataType.build("DOUBLE"))
        return _spark_function(node)

    return str(_parse(query, params).transform(rewrite).sql(dialect="spark"))


def _parse(query: str, params: Sequence[Any] | None) -> Any:
    """DuckDB ``query`` as a sqlglot tree, its ``?`` or ``$n`` parameters inlined as
    literals."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise HubError(f"the query cannot be read for Spark: {exc}") from None
    values = list(params or [])
    if any(isinstance(n, exp.Placeholder) and n.this for n in tree.walk()):
        return tree.transform(lambda node: _numbered(node, values))

    def inline(node: Any) -> Any:
        if isinstance(node, exp.Placeholder):
            if not values:
                raise HubError("the query has more ? parameters than values")
            return exp.convert(values.pop(0))
        return node

    tree = tree.transform(inline)
    if values:
        raise HubError("the query has fewer ? parameters than values")
    return tree


def _numbered(node: Any, values: list[Any]) -> Any:
    """A ``$n`` parameter as the literal of ``values[n - 1]`` (each may appear many times)."""
    from sqlglot import exp

    if not isinstance(node, exp.Placeholder):
        return node
    if not node.this or not str(node.this).isdigit():
        raise HubError("the query mixes ? and $n parameters (or names one): use one kind")
    k = int(str(node.this))
    if not 1 <= k <= len(values):
        raise HubError(f"the query's ${k} has no value ({len(values)} given)")
    return exp.convert(values[k - 1])


def _spark_function(node: Any) -> Any:
    """DuckDB functions sqlglot leaves as they are (or maps wrongly) as their Spark twins."""
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        name, args = node.name.lower(), node.expressions
        if name == "timezone" and len(args) == 2:  # local wall-clock time of an instant
            return exp.Anonymous(this="from_utc_timestamp", expressions=[args[1], args[0]])
        if name == "epoch_us" and len(args) == 1:
            return exp.Anonymous(this="unix_micros", expressions=args)
    if isinstance(node, exp.DayOfWeekIso):  # sqlglot writes it for a 0-based DAYOFWEEK
        return exp.Extract(this=exp.var("DAYOFWEEK_ISO"), expression=node.this)
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
    if isinstance(node, exp.TimeToUnix):  # DuckDB's epoch(): seconds with their fraction
        return exp.Div(this=exp.Anonymous(this="unix_micros", expressions=[node.this]),
                       expression=exp.Literal.number("1000000D"))
    return node


_DECIMAL = re.compile(r"^\d*\.\d*(e[+-]?\d+)?$|^\d+e[+-]?\d+$", re.IGNORECASE)


class SparkEngine:
    """A Spark session over the lake's current snapshots, for one pipeline run."""

    def __init__(self, master: str, lake: Lake) -> None:
        why = java_missing()
        if why is not None:
            raise UsageError(f"--engine {master}: Spark cannot start: {why}")
        self.master = master
        self.lake = lake
        self._spark: Any = None
        self._views: set[str] = set()
        self._staged: set[str] = set()

    @property
    def spark(self) -> Any:
        """The session (started on first use)."""
        if self._spark is None:
            with _calling():
                self._spark = _session(self.master)
        return self._spark

    def query(self, con: duckdb.DuckDBPyConnection, query: str,
              params: Sequence[Any] | None = None) -> pa.Table:
        """Run DuckDB ``query`` on Spark; its result as Arrow with DuckDB's schema for it
        (bound, not run, on ``con``)."""
        expected = _schema(con, query, params)
        try:
            with _calling():
                result = self._frame(query, params).toArrow()
        except HubError:
            raise
        except Exception as exc:  # a failed task: an executor's error, in one line
            raise HubError(f"Spark could not run a pipeline query: {_first_line(exc)}") from None
        return _conform(result, expected)

    def stage(self, con: duckdb.DuckDBPyConnection, name: str, query: str,
              params: Sequence[Any] | None = None) -> None:
        """``name`` as a Spark temporary view of ``query``'s result (cached on the cluster),
        for later queries; DuckDB gets an empty table of the same schema so that those
        queries still bind there."""
        from hubctl.duck import quote_ident

        with _calling():
            frame = self._frame(query, params).cache()
            frame.createOrReplaceTempView(name)
        self._staged.add(name.lower())
        select = _inline(query, params)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS "
                    f"SELECT * FROM ({select}) LIMIT 0").fetchall()

    def share(self, name: str, table: pa.Table) -> None:
        """``name`` as a Spark temporary view of the driver's Arrow ``table`` (small: it is
        sent to the cluster with the query plan), for later queries."""
        from pyspark.sql.pandas.types import from_arrow_schema

        with _calling():
            frame = self.spark.createDataFrame(table) if table.num_rows else \
                self.spark.createDataFrame([], from_arrow_schema(table.schema))
            frame.createOrReplaceTempView(name)
        self._views.add(name.lower())

    def abandon(self) -> None:
        """The run was interrupted: cancel its jobs and stop the session (and its driver JVM;
        on a cluster the application and its executors end with it)."""
        if self._spark is not None:
            cancel_jobs()
            stop()
        self._spark = None
        self._views.clear()
        self._staged.clear()

    def close(self) -> None:
        """Drop this run's views and cached tables. The session stays up for the next run in
        this process (``run --all``, tests); :func:`stop` ends it."""
        if self._spark is None:
            return
        for name in self._staged:
            self._spark.catalog.uncacheTable(name)
        for name in self._views | self._staged:
            self._spark.catalog.dropTempView(name)
        self._views.clear()
        self._staged.clear()
        self._spark = None

    def _frame(self, query: str, params: Sequence[Any] | None) -> Any:
        text = to_spark_sql(query, params)
        self._register(_table_names(query))
        try:
            return self.spark.sql(text)
        except Exception as exc:  # AnalysisException and friends: name the query
            raise HubError(f"Spark could not run a pipeline query: {_first_line(exc)}",
                           hint=f"the query as Spark SQL:\n{text}") from None

    def _register(self, names: Iterable[str]) -> None:
        tables = {n.lower(): n for n in self.lake.table_names()}
        for name in names:
            low = name.lower()
            if low in self._views or low in self._staged:
                continue
            base = low.removesuffix("_latest")
            real = tables.get(low) or tables.get(base)
            if real is None:
                continue  # a CTE or a name Spark reports itself
            self._view(real)
            if low != real.lower():
                self._latest(real)

    def _view(self, table: str) -> None:
        if table.lower() in self._views:
            return
        from pyspark.sql.pandas.types import from_arrow_schema

        from hubctl.s3 import is_uri

        dt = self.lake.open(table)
        delta = pa.schema(dt.schema())
        schema = from_arrow_schema(delta)
        files = dt.file_uris()
        if not files:
            frame = self.spark.createDataFrame([], schema)
        elif is_uri(files[0]):  # no S3 connector in pyspark's wheel: pyarrow reads them
            frame = _s3_frame(self.spark, files, delta,
                              tuple(dt.metadata().partition_columns))
        else:
            frame = (self.spark.read.schema(schema)
                     .option("basePath", _uri(self.lake.path(table))).parquet(*files))
        frame.createOrReplaceTempView(table)
        self._views.add(table.lower())

    def _latest(self, table: str) -> None:
        """``<table>_latest``: the newest row per id, as the catalog's view defines it."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        name = f"{table}_latest"
        if name.lower() in self._views:
            return
        frame = self.spark.table(table)
        order = [F.col("observed_at").desc()]
        if "_ingested_at" in frame.columns:
            order.append(F.col("_ingested_at").desc())
        window = Window.partitionBy("id").orderBy(*order)
        latest = (frame.withColumn("__rn", F.row_number().over(window))
                  .where(F.col("__rn") == 1).drop("__rn"))
        latest.createOrReplaceTempView(name)
        self._views.add(name.lower())


# Short-lived JVMs on tiny data (the tests): the client compiler only and the serial collector
# start faster and use less CPU on a small machine. Not the default: on real data they make
# the driver and executors slower. HUBCTL_SPARK_JAVA_OPTIONS sets the driver's and executors'
# JVM options (a cluster's own spark-defaults.conf applies otherwise).
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
JAVA_OPTIONS_ENV = "HUBCTL_SPARK_JAVA_OPTIONS"
LOG_CONFIG = Path(__file__).resolve().parent / "spark-log4j2.properties"  # errors only
_ACTIVE: dict[str, Any] = {}  # the process's one Spark session and its master


def stop() -> None:
    """Stop the process's Spark session, if one runs, and its driver JVM (waited for, so that
    its CPU time counts as this process's children's, as a benchmark reads it)."""
    session = _ACTIVE.pop("session", None)
    _ACTIVE.pop("master", None)
    if session is None:
        return
    session.stop()
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    with contextlib.suppress(Exception):
        gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()  # the JVM ends when its stdin closes
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: Set when a signal asked the process to stop (:func:`interrupt`); cleared by the caller
#: that handles the signals (``hubctl run``: :func:`hubctl.runner.interruptible`).
CANCEL = threading.Event()
_CALLS = [0]  # JVM calls of the main thread under way (:func:`_calling`)


def interrupt() -> bool:
    """A signal handler's part (SIGINT, SIGTERM): mark the process as stopping and cancel the
    Spark jobs under way, from another thread (py4j gives each thread its own connection, and
    the main thread's may be waiting for an answer). True when the main thread is inside a
    call into the JVM: the handler must not raise there (py4j would log the exception with
    its traceback and drop the connection mid-answer); the call ends with the cancelled job
    and :func:`_calling` raises KeyboardInterrupt right after it."""
    CANCEL.set()
    if _ACTIVE.get("session") is not None:
        def cancel() -> None:
            while True:
                cancel_jobs()
                if not _CALLS[0] or _ACTIVE.get("session") is None:
                    return
                time.sleep(0.2)  # a job the call submits later is cancelled too

        threading.Thread(target=cancel, name="hubctl-spark-cancel", daemon=True).start()
    return _CALLS[0] > 0


@contextlib.contextmanager
def _calling() -> Iterator[None]:
    """A call into the JVM (session start, a query, a view): not entered once the process is
    stopping, and KeyboardInterrupt when a signal came while it ran (:func:`interrupt`)."""
    if CANCEL.is_set():
        raise KeyboardInterrupt("stopping")
    _CALLS[0] += 1
    try:
        yield
    except Exception:
        if CANCEL.is_set():  # the job was cancelled: that is why the call failed
            raise KeyboardInterrupt("stopping") from None
        raise
    finally:
        _CALLS[0] -= 1
    if CANCEL.is_set():
        raise KeyboardInterrupt("stopping")


def cancel_jobs() -> None:
    """Cancel every Spark job under way in the process's session, if one runs (from a thread
    other than the one waiting for the job)."""
    session = _ACTIVE.get("session")
    if session is not None:
        with contextlib.suppress(Exception):  # the session is stopping already
            session.sparkContext.cancelAllJobs()


@contextlib.contextmanager
def cancelled_on(event: threading.Event, every: float = 0.2) -> Iterator[None]:
    """While the body runs, cancel the session's jobs once ``event`` is set (the stop token
    of SIGTERM and Ctrl-C) and keep cancelling (``every`` seconds) until the body ends: for a
    job submitted from a thread other than the main one, which no signal interrupts."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            if event.is_set():
                cancel_jobs()

    watcher = threading.Thread(target=watch, name="hubctl-spark-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _session(master: str) -> Any:
    """The process's Spark session on ``master`` (Spark allows one per process: a session on
    another master is stopped first)."""
    if _ACTIVE.get("master") == master:
        return _ACTIVE["session"]
    stop()
    # pyspark warns about pandas 3 on each Arrow use; hubctl hands Spark Arrow, not pandas
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName("hubctl")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", str(_partitions(master)))
               .config("spark.driver.host", os.environ.get("HUBCTL_SPARK_DRIVER_HOST",
                                                           "127.0.0.1"))
               .config("spark.driver.bindAddress", "0.0.0.0"))
    java = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()} " \
        + os.environ.get(JAVA_OPTIONS_ENV, "").strip()
    builder = (builder.config("spark.driver.extraJavaOptions", java.strip())
               .config("spark.executor.extraJavaOptions", java.strip()))
    # Python on the executors (ingest's mapInArrow): hubctl's own interpreter, unless the
    # user names another (the SparkContext reads it from the environment)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # pyspark's SparkContext replaces the Ctrl-C handler with its own (it cancels the jobs,
    # then raises KeyboardInterrupt); keep the caller's, which does both and records the run
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    except Exception as exc:
        raise HubError(f"--engine {master}: Spark did not start: {_first_line(exc)}",
                       hint="check that the master runs (spark://HOST:PORT) and that Java 17 "
                            "is installed") from None
    finally:
        if main and handler is not None:
            signal.signal(signal.SIGINT, handler)
    if not _ACTIVE.get("atexit"):
        atexit.register(stop)
    _ACTIVE.update(session=session, master=master, atexit=True)
    return session


def _partitions(master: str) -> int:
    """Shuffle partitions: a few per core (Spark's default of 200 is for big clusters)."""
    m = LOCAL.match(master)
    if m and m.group(2) and m.group(2).isdigit():
        return max(2, 2 * int(m.group(2)))
    return 8


def _s3_frame(spark: Any, files: list[str], schema: pa.Schema,
              partition_by: tuple[str, ...]) -> Any:
    """A snapshot's ``s3://`` Parquet files as a Spark frame of the Delta ``schema``, read on
    the executors through pyarrow's S3 filesystem (:func:`hubctl.s3.arrow_dataset`, configured
    from each executor's own AWS variables): ``mapInArrow`` over a frame of one row per group
    of files, one task per group, a few groups per core."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    spark_schema = from_arrow_schema(schema)
    count = min(len(files), 4 * max(1, spark.sparkContext.defaultParallelism))
    groups = [json.dumps(files[i::count]) for i in range(count)]
    tasks = spark.sparkContext.parallelize([(g,) for g in groups], count).toDF("files string")
    target = to_arrow_schema(spark_schema, timezone="UTC")  # the session's time zone
    read = functools.partial(_read_s3_files, schema, target, partition_by)
    return tasks.mapInArrow(read, spark_schema)


def _read_s3_files(schema: pa.Schema, target: pa.Schema, partition_by: tuple[str, ...],
                   tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """On an executor: the rows of each task's files, as batches of the types Spark expects
    (``target``); a failed read names the file and the variables the executor reads S3 with."""
    from hubctl.s3 import arrow_dataset

    for rb in tasks:
        for group in rb.column("files").to_pylist():
            files = json.loads(group)
            try:
                for batch in arrow_dataset(files, schema, partition_by).to_batches():
                    yield batch.cast(target)
            except OSError as exc:
                raise OSError(f"a Spark executor could not read the lake's files on S3: {exc} "
                              "(each executor reads them with its own AWS_ENDPOINT_URL, "
                              "AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                              ) from None


def _uri(folder: Any) -> str:
    """A table folder as a URI Spark reads (``file:///...``)."""
    return Path(str(folder)).resolve().as_uri()


def _table_names(query: str) -> set[str]:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(query, read="duckdb")
    return {t.name for t in tree.find_all(exp.Table) if t.name}


def _inline(query: str, params: Sequence[Any] | None) -> str:
    """``query`` with its ``?`` or ``$n`` parameters inlined as DuckDB literals."""
    return query if not params else str(_parse(query, params).sql(dialect="duckdb"))


def _schema(con: duckdb.DuckDBPyConnection, query: str,
            params: Sequence[Any] | None) -> pa.Schema:
    """The Arrow schema DuckDB gives ``query`` (bound on the catalog, nothing scanned)."""
    rel = con.sql(f"SELECT * FROM ({query}) LIMIT 0", params=list(params) if params else None)
    return rel.to_arrow_table().schema


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Spark's result under DuckDB's column names and types (timestamps Spark returns in UTC
    become the naive local times DuckDB returns, as wall clock)."""
    if table.num_columns != len(schema):
        raise HubError(f"Spark returned {table.num_columns} columns where DuckDB has "
                       f"{len(schema)}: {', '.join(schema.names)}")
    table = table.rename_columns(schema.names)
    columns = []
    for column, field in zip(table.columns, schema, strict=True):
        if pa.types.is_timestamp(column.type) and pa.types.is_timestamp(field.type) \
                and column.type.tz and not field.type.tz:
            column = column.cast(pa.timestamp(column.type.unit))
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _first_line(exc: BaseException) -> str:
    """What went wrong, in one line: the error a Python worker raised (the last exception line
    of the traceback Spark's message carries, e.g. an executor that cannot reach S3), else the
    message's first line."""
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        raised = [line for line in text.splitlines() if _RAISED.match(line)]
        if raised:
            return raised[-1]
    return text.splitlines()[0] if text else type(exc).__name__


_RAISED = re.compile(r"^[A-Za-z_][\w.]*: \S")  # "OSError: ..." as a traceback ends
