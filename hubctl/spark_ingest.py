"""Ingest on Spark: ``hubctl ingest ADAPTER FILES... --engine spark://HOST:PORT`` or ``local[N]``.

What is distributed: reading and converting the input files, and the quality gate. Each input
file is one Spark task (``mapInArrow`` over a frame of one row per task) when the adapter
reads its files apart (``Adapter.reads_files_apart``: meter readings, calls, Green Button);
any other adapter reads all its files in one task (OpenAQ pivots a station-hour split across
files into one row; a GTFS feed's files refer to each other), so that its counts stay those
of the local path. A task's executor runs the adapter's own ``read`` on its files, with the run's
options and arrival time, gates each batch (:func:`hubctl.ingest.gate_batch`) and writes the
rows that passed as an Arrow IPC file, and the batch's rejects, counts and warnings as JSON,
into ``<lake>/_staging/<token>/``.

What is not: the driver reads those staged batches back in the order the local path reads
them (input by input, batch by batch) and hands them to the same engine as without
``--engine``: the within-batch collapse, :meth:`hubctl.lake.Lake.upsert` (classification as
new, updated, filled or duplicate under the table's commit lock, then the Delta commit), the
rejects table and the one ledger row. So the rows, rejects and counts are those of the local
path; the driver's share is the classification and the commits.

A side file named in an option (OpenAQ's ``--stations``) is read by every task (each needs
it) but its batches are kept from the first task only, so it is counted once. An input is
split by file, not by byte range: the CSV adapters number rejects by their line in the file
and fold rows across a file's lines (OpenAQ's pivot), which a byte range would cut.

The executors must see the input files and the lake at the same paths as the driver (one
machine, or a shared filesystem), and run hubctl's Python (``PYSPARK_PYTHON``, by default the
driver's own interpreter).
"""

from __future__ import annotations

import json
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from hubctl import errors
from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.errors import HubError, UsageError
from hubctl.lake import Lake
from hubctl.rejects import Reason, Reject

__all__ = ["spark_reader"]

Reader = Callable[[Sequence[Path], dict[str, Any], ReadContext], Iterator[Batch]]
_TASKS = "task int, paths string"  # the files of a task, as a JSON list
_STAGED = pa.ipc.IpcWriteOptions(compression="lz4")  # cheap to write and read back
_ITEMS_DDL = "task int, seq int, kind string"  # mapInArrow's output: one row per item
_ITEMS = pa.schema([("task", pa.int32()), ("seq", pa.int32()), ("kind", pa.string())])


@dataclass(frozen=True)
class _Plan:
    """What every executor needs to read its file as the driver would."""

    adapter: str
    options: dict[str, Any]
    batch_rows: int
    arrival: datetime
    staging: str


def spark_reader(lake: Lake, adapter: Adapter, master: str) -> Reader:
    """A reader with the signature of ``Adapter.read`` whose files are read and gated on the
    Spark master ``master``; it yields the staged batches (``Batch.gated``) in input order."""
    from hubctl.spark import check_engine

    master = check_engine(master)
    if "://" in str(lake.root):
        raise UsageError(f"--engine {master}: the lake {lake.root} is on object storage, which "
                         "the Spark executors do not write to yet",
                         hint="ingest without --engine")

    def read(inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        return _read(lake, adapter, master, inputs, options, ctx)

    return read


def _read(lake: Lake, adapter: Adapter, master: str, inputs: Sequence[Path],
          options: dict[str, Any], ctx: ReadContext) -> Iterator[Batch]:
    from hubctl.running import STOP
    from hubctl.spark import _first_line, _session, cancelled_on, java_missing

    why = java_missing()
    if why is not None:
        raise UsageError(f"--engine {master}: Spark cannot start: {why}")
    given = {str(Path(p).resolve()): str(p) for p in inputs}
    absolute = {k: _absolute(v) for k, v in options.items()}
    given |= {str(absolute[k]): str(v) for k, v in options.items() if absolute[k] != v}
    staging = Path(str(lake.root)) / "_staging" / uuid.uuid4().hex  # a local lake
    staging.mkdir(parents=True)
    plan = _Plan(adapter.name, absolute, ctx.batch_rows, ctx.arrival, str(staging))
    try:
        spark = _session(master)
        files = [str(Path(p).resolve()) for p in inputs]
        groups = [[f] for f in files] if adapter.reads_files_apart else [files]
        tasks = [(i, json.dumps(group)) for i, group in enumerate(groups)]
        frame = spark.sparkContext.parallelize(tasks, max(1, len(tasks))).toDF(_TASKS)
        try:
            with cancelled_on(STOP):  # SIGTERM or Ctrl-C: the job is cancelled, not awaited
                items = frame.mapInArrow(lambda it: _execute(plan, it), _ITEMS_DDL).collect()
        except Exception as exc:  # a lost executor, a Python worker that failed to start
            if STOP.is_set():
                raise HubError("the Spark job was cancelled: the run was asked to stop"
                               ) from None
            raise HubError(f"--engine {master}: the Spark job failed: {_first_line(exc)}",
                           hint="the executors must see the input files and the lake at the "
                                "same paths as this machine, and run hubctl's Python "
                                "(PYSPARK_PYTHON)") from None
        for task, seq, kind in sorted((r.task, r.seq, r.kind) for r in items):
            yield from _replay(staging, task, seq, kind, given, ctx)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _absolute(value: Any) -> Any:
    """An option naming a file, as an absolute path (the executors' working folder is not
    the driver's); other values as they are."""
    if isinstance(value, str) and value and Path(value).is_file():
        return str(Path(value).resolve())
    return value


def _replay(staging: Path, task: int, seq: int, kind: str, given: dict[str, str],
            ctx: ReadContext) -> Iterator[Batch]:
    """One staged item as the local path would have met it: its warnings, the bytes read
    before it, then its batch (or its error)."""
    stem = staging / f"{task}-{seq}"
    meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    for warning in meta["warnings"]:
        ctx.warn(_named(warning, given))
    ctx.advance(meta["advanced"])
    if kind == "error":
        raise _error(meta, given)
    if kind != "batch":
        return
    rows = None
    if meta["rows"]:
        with pa.memory_map(str(stem.with_suffix(".arrow"))) as source:
            rows = pa.ipc.open_file(source).read_all()
    batch = _batch(meta, rows, given)
    stem.with_suffix(".arrow").unlink(missing_ok=True)
    yield batch


def _named(text: str, given: dict[str, str]) -> str:
    """``text`` with the executors' absolute paths as the user gave them."""
    for absolute, name in given.items():
        if absolute != name:
            text = text.replace(absolute, name)
    return text


def _batch(meta: dict[str, Any], rows: pa.Table | None, given: dict[str, str]) -> Batch:
    rejects = [Reject(r["entity_type"], r["raw"], [Reason(**x) for x in r["reasons"]],
                      file=_named(r["file"], given), record=r["record"],
                      records=r["records"], extra=r["extra"]) for r in meta["rejects"]]
    typed_bad = {int(i): [Reason(**x) for x in rs] for i, rs in meta["typed_bad"].items()}
    return Batch(meta["entity_type"], rows, _named(meta["file"], given), meta["records"],
                 typed_bad=typed_bad, rejects=rejects, duplicate=meta["duplicate"],
                 updated=meta["updated"], cell_columns=tuple(meta["cell_columns"]),
                 unique_keys=meta["unique_keys"],
                 replaces=tuple(meta["replaces"]) if meta["replaces"] else None,  # type: ignore[arg-type]
                 distinct_keys=meta["distinct_keys"], gated=meta["gated"],
                 continues=meta["continues"])


def _error(meta: dict[str, Any], given: dict[str, str]) -> HubError:
    """The error an executor met, as the same kind of HubError."""
    cls = getattr(errors, meta["error"], None)
    message = _named(meta["message"], given)
    hint = _named(meta["hint"], given) if meta["hint"] else None
    if isinstance(cls, type) and issubclass(cls, HubError):
        try:
            exc = cls.__new__(cls)
            HubError.__init__(exc, message, hint=hint)
            return exc
        except Exception:  # an error class that needs more than a message
            pass
    return HubError(message, hint=hint)


# ---------------------------------------------------------------- on the executors
def _execute(plan: _Plan, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function: read each task's file, stage its batches, one item row each."""
    for rb in tasks:
        for task, paths in zip(rb.column("task").to_pylist(), rb.column("paths").to_pylist(),
                               strict=True):
            files = [Path(p) for p in json.loads(paths)]
            for seq, kind in enumerate(_stage_files(plan, task, files)):
                yield pa.RecordBatch.from_pydict(
                    {"task": [task], "seq": [seq], "kind": [kind]}, schema=_ITEMS)


def _stage_files(plan: _Plan, task: int, paths: list[Path]) -> Iterator[str]:
    """Read ``paths`` with the plan's adapter and gate each batch; write each as
    ``<task>-<seq>.arrow`` and ``.json`` in the staging folder; yield each one's kind
    (``batch``, then ``end``, or ``error`` where reading failed)."""
    from hubctl.adapters import get_adapter
    from hubctl.ingest import _from_inputs, gate_batch
    from hubctl.registry import get_type

    warnings: list[str] = []
    advanced = [0]

    def advance(nbytes: int) -> None:
        advanced[0] += nbytes

    def write(kind: str, meta: dict[str, Any], rows: pa.Table | None = None) -> str:
        stem = Path(plan.staging) / f"{task}-{seq}"
        if rows is not None:
            with pa.OSFile(str(stem.with_suffix(".arrow")), "wb") as sink, \
                    pa.ipc.new_file(sink, rows.schema, options=_STAGED) as writer:
                writer.write_table(rows)
        meta |= {"warnings": list(warnings), "advanced": advanced[0],
                 "rows": rows is not None}
        stem.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False,
                                                        default=str), encoding="utf-8")
        warnings.clear()
        advanced[0] = 0
        return kind

    ctx = ReadContext(batch_rows=plan.batch_rows, arrival=plan.arrival, warn=warnings.append,
                      advance=advance)
    seq = 0
    try:
        adapter = get_adapter(plan.adapter)
        for batch in adapter.read(paths, plan.options, ctx):
            if task != 0 and not _from_inputs(batch.file, paths):
                warnings.clear()  # a side file's batch: the first task keeps it
                continue
            rows = batch.rows
            if rows is not None and rows.num_rows and batch.replaces is None:
                rows, rejects = gate_batch(get_type(batch.entity_type), batch)
                batch.rejects = list(batch.rejects) + rejects
                batch.typed_bad, batch.gated = {}, True
            yield write("batch", _meta(batch), rows)
            seq += 1
        yield write("end", {})
    except HubError as exc:
        yield write("error", {"error": type(exc).__name__, "message": exc.message,
                              "hint": exc.hint})
    except Exception as exc:  # a bug or the machine: named, with where it happened
        yield write("error", {"error": "HubError",
                              "message": f"reading {', '.join(map(str, paths))} on a "
                                         "Spark executor failed: "
                                         f"{type(exc).__name__}: {exc}",
                              "hint": "".join(traceback.format_exc(limit=-3))})


def _meta(batch: Batch) -> dict[str, Any]:
    """A staged batch's fields but its rows, as JSON."""
    return {
        "entity_type": batch.entity_type, "file": batch.file, "records": batch.records,
        "rejects": [{"entity_type": r.entity_type, "raw": r.raw, "file": r.file,
                     "record": r.record, "records": r.records, "extra": r.extra,
                     "reasons": [r_.as_dict() for r_ in r.reasons]} for r in batch.rejects],
        "typed_bad": {str(i): [r.as_dict() for r in rs] for i, rs in batch.typed_bad.items()},
        "duplicate": batch.duplicate, "updated": batch.updated,
        "cell_columns": list(batch.cell_columns), "unique_keys": batch.unique_keys,
        "replaces": list(batch.replaces) if batch.replaces else None,
        "distinct_keys": batch.distinct_keys, "gated": batch.gated,
        "continues": batch.continues,
    }
