"""Ingest on Spark: ``hubctl ingest ADAPTER FILES... --engine spark://HOST:PORT`` or ``local[N]``.

What is distributed: reading and converting the input files, and the quality gate, in Spark
tasks (``mapInArrow`` over a frame of one row per task):

- by byte range, when the adapter reads a CSV's records apart (``Adapter.reads_byte_ranges``:
  meter readings, calls): a plain CSV file larger than the range size
  (``HUBCTL_INGEST_RANGE_BYTES``, default 64 MiB) is cut by
  :func:`hubctl.csvread.split_csv` on the driver where the local path's reader ends a block
  (after a record's line break, never inside a quoted field), with the line number each
  range starts on, and each range is one task, which reads the file's header and then only
  its range (``ReadContext.span``) in the same blocks as the whole file's reading, its
  rejects numbered by their line in the file. What the adapter infers from a file's first
  rows (meter readings' interval) is settled once on the driver (``Adapter.file_options``),
  and its closing warnings are counted per range and summed by the driver
  (``Adapter.file_warnings``), so the warnings are those of the whole file. A compressed file
  (gzip, zip, ...) is one task: it cannot be entered in the middle;
- by byte range into parts, when the adapter's read is a map and a fold and its options let
  each range be mapped on its own (``Adapter.parts_apart``: OpenAQ with ``--stations``):
  each range's task runs ``Adapter.read_parts`` (OpenAQ: each block parsed and checked into
  its rejects and its good readings, compact numeric columns) and the driver runs
  ``Adapter.fold`` over the staged parts in input order (OpenAQ's pivot of the whole input,
  once), so a station-hour split across ranges or files is one row, as without ``--engine``;
- by file, when the adapter reads its files apart (``Adapter.reads_files_apart``: also Green
  Button): one task per file;
- else all the files of the run in one task (OpenAQ without ``--stations`` learns each
  station from the first row anywhere in the input that gives its coordinates; a GTFS feed's
  files refer to each other), so that its counts stay those of the local path.

A task's executor runs the adapter's own ``read`` on its files or range, with the run's
options and arrival time, gates each batch (:func:`hubctl.ingest.gate_batch`) and writes the
rows that passed as an Arrow IPC file, and the batch's rejects, counts and warnings as JSON,
into ``<lake>/_staging/<token>/`` in the lake's own storage (on S3, objects under that prefix,
written through pyarrow's S3 filesystem with the executor's own ``AWS_*`` variables).

What is not: the driver reads those staged batches back in the order the local path reads
them (input by input, range by range, batch by batch) and hands them to the same engine as
without ``--engine``: the within-batch collapse, :meth:`hubctl.lake.Lake.upsert`
(classification as new, updated, filled or duplicate under the table's commit lock, then the
Delta commit), the rejects table and the one ledger row. So the rows, rejects and counts are
those of the local path, commit for commit (meter readings' instant at the end of a range
joins the next range's first batch: ``docs/scale.md`` says the one case where its commits,
hence its counts, can differ); the driver's share is the cut points, the classification and
the commits.

A side file named in an option (OpenAQ's ``--stations``, ``--meters``) is read by every task
(each needs it) but its batches are kept from the first task only, so it is counted once
(OpenAQ's fold reads the station list again on the driver, for the pivot's station table).

The executors must see the input files at the same paths as the driver (one machine, or a
shared filesystem), and the lake too: a local one at the same path, one on S3 with their own
``AWS_*`` variables (the environment of ``local[N]``'s process, or of a cluster's workers). They
run hubctl's Python (``PYSPARK_PYTHON``, by default the driver's own interpreter). The driver
reads the staged batches back, commits them, and deletes the staging folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from hubctl import errors
from hubctl.adapter import Adapter, Batch, ReadContext, Span
from hubctl.errors import HubError, UsageError
from hubctl.lake import Lake
from hubctl.rejects import Reason, Reject

__all__ = ["OWNER", "RANGE_BYTES_ENV", "STAGING", "range_bytes", "spark_reader", "stale_staging"]

Reader = Callable[[Sequence[Path], dict[str, Any], ReadContext], Iterator[Batch]]
RANGE_BYTES_ENV = "HUBCTL_INGEST_RANGE_BYTES"
_RANGE_BYTES = 64 << 20  # big enough that a task's start-up is a small share of its work
_TASKS = "task int, spec string"  # what a task reads (_Task), as JSON
_STAGED = pa.ipc.IpcWriteOptions(compression="lz4")  # cheap to write and read back
_ITEMS_DDL = "task int, seq int, kind string"  # mapInArrow's output: one row per item
STAGING = "_staging"  # under the lake root
OWNER = "owner.json"  # in a staging folder: the driver process that made it (running.me())
_ITEMS = pa.schema([("task", pa.int32()), ("seq", pa.int32()), ("kind", pa.string())])


@dataclass(frozen=True)
class _Task:
    """What one task reads: files, or one byte range of one file, with the options settled
    for that file on the driver (``Adapter.file_options``)."""

    paths: list[str]
    span: Span | None = None
    options: dict[str, Any] = field(default_factory=dict)
    parts: bool = False  # Adapter.read_parts, for the driver's Adapter.fold

    def spec(self) -> str:
        """The task as JSON, for its row of the Spark frame."""
        span = self.span
        return json.dumps({"paths": self.paths, "options": self.options, "parts": self.parts,
                           "span": None if span is None else [
                               span.start, span.end, span.first_line, span.index,
                               span.count]}, default=str)

    @classmethod
    def of(cls, spec: str) -> _Task:
        """The task of a JSON ``spec``."""
        d = json.loads(spec)
        return cls(d["paths"], Span(*d["span"]) if d["span"] else None, d["options"],
                   d["parts"])


def range_bytes() -> int:
    """The size of the byte ranges a large CSV input is split into (``HUBCTL_INGEST_RANGE_BYTES``,
    default 64 MiB)."""
    text = os.environ.get(RANGE_BYTES_ENV, "").strip()
    if not text:
        return _RANGE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{RANGE_BYTES_ENV}={text!r} is not a number of bytes",
                         hint=f"set it to a whole number such as {_RANGE_BYTES} (64 MiB), "
                              "or unset it")
    return value


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
    range_bytes()  # a bad HUBCTL_INGEST_RANGE_BYTES fails before anything starts

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
    staging = _staging(lake)
    plan = _Plan(adapter.name, absolute, ctx.batch_rows, ctx.arrival, staging)
    try:
        files = [str(Path(p).resolve()) for p in inputs]
        tasks = _tasks(adapter, files, absolute, ctx)
        spark = _session(master)
        rows = [(i, task.spec()) for i, task in enumerate(tasks)]
        frame = spark.sparkContext.parallelize(rows, max(1, len(rows))).toDF(_TASKS)
        try:
            with cancelled_on(STOP):  # SIGTERM or Ctrl-C: the job is cancelled, not awaited
                items = frame.mapInArrow(lambda it: _execute(plan, it), _ITEMS_DDL).collect()
        except Exception as exc:  # a lost executor, a Python worker that failed to start
            if STOP.is_set():
                raise HubError("the Spark job was cancelled: the run was asked to stop"
                               ) from None
            raise HubError(f"--engine {master}: the Spark job failed: {_first_line(exc)}",
                           hint="the executors must see the input files and the lake at the "
                                "same paths as this machine (a lake on S3: with their own "
                                "AWS_* variables), and run hubctl's Python (PYSPARK_PYTHON)"
                           ) from None
        order = sorted((r.task, r.seq, r.kind) for r in items)
        staged = _staged(staging, order, tasks, adapter, given, ctx)
        if any(task.parts for task in tasks):  # the adapter's fold (OpenAQ's pivot) here
            yield from adapter.fold(staged, absolute, ctx)
        else:
            yield from staged
    finally:
        _remove(staging)


def _staged(staging: str, order: list[tuple[int, int, str]], tasks: list[_Task],
            adapter: Adapter, given: dict[str, str], ctx: ReadContext) -> Iterator[Batch]:
    """The staged items in input order, and after a file's last range its closing warnings
    of the counts of all its ranges."""
    counts: dict[str, int] = {}
    replayed = replace(ctx, tally=lambda more: _add(counts, more))
    for task, seq, kind in order:
        yield from _replay(staging, task, seq, kind, given, replayed)
        span = tasks[task].span
        if kind == "end" and span is not None and span.index == span.count - 1:
            path = Path(given.get(tasks[task].paths[0], tasks[task].paths[0]))
            for warning in adapter.file_warnings(path, counts):
                ctx.warn(warning)
            counts.clear()


def _tasks(adapter: Adapter, files: list[str], options: dict[str, Any],
           ctx: ReadContext) -> list[_Task]:
    """The tasks of a run: the byte ranges of each large CSV file (``reads_byte_ranges``, or
    ``parts_apart``: then the adapter's parts), else one per file (``reads_files_apart``), else
    one for all the files."""
    parts = adapter.parts_apart(options)
    if not adapter.reads_files_apart and not parts:
        return [_Task(files)]
    from hubctl.csvread import csv_limits, split_csv

    size = range_bytes()
    out: list[_Task] = []
    for f in files:
        spans = split_csv(f, size, limits=csv_limits(options), batch_rows=ctx.batch_rows) \
            if adapter.reads_byte_ranges or parts else []
        settled: dict[str, Any] = {}
        if len(spans) > 1:
            try:
                settled = adapter.file_options(Path(f), options, ctx)
            except HubError:  # read whole: it fails there as it does without --engine
                spans = []
        if len(spans) > 1:
            extra = {k: v for k, v in settled.items() if k not in options or options[k] != v}
            out += [_Task([f], span, extra, parts) for span in spans]
        else:
            out.append(_Task([f], parts=parts))
    return out


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        counts[key] = counts.get(key, 0) + n


def _absolute(value: Any) -> Any:
    """An option naming a file, as an absolute path (the executors' working folder is not
    the driver's); other values as they are."""
    if isinstance(value, str) and value and Path(value).is_file():
        return str(Path(value).resolve())
    return value


def _replay(staging: str, task: int, seq: int, kind: str, given: dict[str, str],
            ctx: ReadContext) -> Iterator[Batch]:
    """One staged item as the local path would have met it: its warnings, the bytes read
    before it, then its batch (or its error)."""
    stem = f"{task}-{seq}"
    meta = json.loads(_get(staging, f"{stem}.json").to_pybytes().decode("utf-8"))
    for warning in meta["warnings"]:
        ctx.warn(_named(warning, given))
    if meta.get("tally"):  # a byte range's counts for its file's closing warnings
        ctx.tally(meta["tally"])
    ctx.advance(meta["advanced"])
    if kind == "error":
        raise _error(meta, given)
    if kind != "batch":
        return
    rows = None
    if meta["rows"]:
        rows = pa.ipc.open_file(_get(staging, f"{stem}.arrow")).read_all()
    batch = _batch(meta, rows, given)
    _drop(staging, f"{stem}.arrow")  # a long run frees each staged batch once read
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
                 continues=meta["continues"], part=meta.get("part", False))


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
    """mapInArrow's function: read each task's files or range, stage its batches, one item
    row each."""
    for rb in tasks:
        for task, spec in zip(rb.column("task").to_pylist(), rb.column("spec").to_pylist(),
                              strict=True):
            for seq, kind in enumerate(_stage_files(plan, task, _Task.of(spec))):
                yield pa.RecordBatch.from_pydict(
                    {"task": [task], "seq": [seq], "kind": [kind]}, schema=_ITEMS)


def _stage_files(plan: _Plan, task: int, todo: _Task) -> Iterator[str]:
    """Read a task's files (or range) with the plan's adapter and gate each batch; write each
    as ``<task>-<seq>.arrow`` and ``.json`` in the staging folder; yield each one's kind
    (``batch``, then ``end`` with the range's counts, or ``error`` where reading failed)."""
    from hubctl.adapters import get_adapter
    from hubctl.ingest import _from_inputs, gate_batch
    from hubctl.registry import get_type

    paths = [Path(p) for p in todo.paths]
    warnings: list[str] = []
    advanced = [0]
    counts: dict[str, int] = {}

    def advance(nbytes: int) -> None:
        advanced[0] += nbytes

    def write(kind: str, meta: dict[str, Any], rows: pa.Table | None = None) -> str:
        stem = f"{task}-{seq}"
        if rows is not None:
            with _put(plan.staging, f"{stem}.arrow") as sink, \
                    pa.ipc.new_file(sink, rows.schema, options=_STAGED) as writer:
                writer.write_table(rows)
        meta |= {"warnings": list(warnings), "advanced": advanced[0],
                 "rows": rows is not None}
        with _put(plan.staging, f"{stem}.json") as sink:
            sink.write(json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8"))
        warnings.clear()
        advanced[0] = 0
        return kind

    ctx = ReadContext(batch_rows=plan.batch_rows, arrival=plan.arrival, warn=warnings.append,
                      advance=advance, span=todo.span, tally=lambda more: _add(counts, more))
    seq = 0
    try:
        adapter = get_adapter(plan.adapter)
        read = adapter.read_parts if todo.parts else adapter.read
        for batch in read(paths, plan.options | todo.options, ctx):
            if task != 0 and not _from_inputs(batch.file, paths):
                warnings.clear()  # a side file's batch: the first task keeps it
                continue
            rows = batch.rows
            if rows is not None and rows.num_rows and batch.replaces is None and \
                    not batch.part:
                rows, rejects = gate_batch(get_type(batch.entity_type), batch)
                batch.rejects = list(batch.rejects) + rejects
                batch.typed_bad, batch.gated = {}, True
            yield write("batch", _meta(batch), rows)
            seq += 1
        yield write("end", {"tally": counts})
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
        "continues": batch.continues, "part": batch.part,
    }


# ---------------------------------------------------------------- staging I/O
def _staging(lake: Lake) -> str:
    """A new staging folder for one run, ``<lake>/_staging/<token>``, in the lake's own
    storage: a local folder, or an ``s3://`` prefix (nothing to create there)."""
    from hubctl.running import me

    where = lake.root.resolve() / STAGING / uuid.uuid4().hex
    where.mkdir(parents=True)
    (where / OWNER).write_text(json.dumps({"owner": me()}))
    return str(where)


def stale_staging(root: Any, dry_run: bool = False) -> list[str]:
    """Remove (or, with ``dry_run``, list) the staging folders under ``<lake>/_staging/`` that
    no run in progress owns: those of an ``ingest --engine`` run killed before it could delete
    its own (``kill -9``, a lost driver). A folder is kept while a marker in ``_running/``
    names its owner process (the run has not ended, or its end is not recorded yet), and a
    folder without an owner file (being created, or from an older hubctl) while it is younger
    than an hour. ``root`` is the lake's root (a local path or an ``s3://`` root)."""
    import time

    from hubctl.running import RUNNING

    folder = root / STAGING
    try:
        folders = [f for f in folder.iterdir() if not f.name.startswith(".")]
    except OSError:  # no staging folder
        return []
    live = set()
    with contextlib.suppress(OSError):
        for marker in (root / RUNNING).iterdir():
            if marker.name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError):
                    live.add(_process(json.loads(marker.read_text()).get("owner", {})))
    stale = []
    for staging in folders:
        try:
            owner = json.loads((staging / OWNER).read_text()).get("owner", {})
        except (OSError, ValueError):
            if isinstance(staging, Path) and staging.stat().st_mtime > time.time() - 3600:
                continue
            if not isinstance(staging, Path):
                continue  # no age to judge by on object storage: left for a later vacuum
        else:
            if _process(owner) in live:
                continue
        stale.append(str(staging))
        if not dry_run:
            _remove(str(staging))
    return stale


def _process(owner: dict[str, Any]) -> tuple[Any, ...]:
    """Which process an owner record names (host, pid and the pid's start)."""
    return owner.get("host"), owner.get("pid"), owner.get("pid_start")


def _storage(staging: str) -> tuple[Any, str]:
    """The pyarrow filesystem of a staging folder and its path on it: pyarrow's S3 filesystem
    configured from this process's AWS variables (:func:`hubctl.s3.arrow_filesystem`; on an
    executor, the executor's own), or the local one."""
    from pyarrow import fs

    from hubctl.s3 import SCHEME, arrow_filesystem, is_uri

    if is_uri(staging):
        return arrow_filesystem(), staging.removeprefix(SCHEME)
    return fs.LocalFileSystem(use_mmap=True), staging


def _put(staging: str, name: str) -> Any:
    """A stream writing the staged file ``name`` (on S3, one object once it is closed)."""
    filesystem, folder = _storage(staging)
    return filesystem.open_output_stream(f"{folder}/{name}")


def _get(staging: str, name: str) -> pa.Buffer:
    """The staged file ``name`` (memory-mapped when local)."""
    filesystem, folder = _storage(staging)
    with filesystem.open_input_file(f"{folder}/{name}") as source:
        return source.read_buffer()


def _drop(staging: str, name: str) -> None:
    """Delete the staged file ``name``, if there is one."""
    filesystem, folder = _storage(staging)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(f"{folder}/{name}")


def _remove(staging: str) -> None:
    """Delete the staging folder and everything in it (a failure leaves it for later)."""
    filesystem, folder = _storage(staging)
    with contextlib.suppress(OSError):
        filesystem.delete_dir(folder)
