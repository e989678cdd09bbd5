"""The ingest engine: adapter batches -> quality gate -> lake upsert -> rejects -> ledger.

Every record an adapter reads ends up written, updated, duplicate or rejected, and the ledger
row of the run proves it (``read = written + updated + duplicate + rejected``); a run that
stops (SIGTERM) or fails part-way counts what it read and did not commit as ``unreached``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.duck import quote_ident, scratch
from hubctl.errors import HubError, InputError, LockHeld, RejectRateExceeded, Stopped
from hubctl.gate import gate_for
from hubctl.lake import Lake, conform
from hubctl.ledger import (
    Cursor,
    Run,
    checkpoint,
    find_ingested,
    ingested_before,
    last_cursor,
    mark_interrupted,
    new_run_id,
    start_run,
    write_rejects,
    write_run,
)
from hubctl.locks import file_key, hold
from hubctl.prefetch import prefetch
from hubctl.registry import EntityType, get_type
from hubctl.rejects import Reason, Reject
from hubctl.running import STOP, stop_reason
from hubctl.types import TIMESTAMP

__all__ = ["IngestRequest", "expand_inputs", "fingerprint", "gate_batch", "ingest",
           "ingest_batches", "judge"]

_BOOKKEEPING = ("_records", "_raw", "_record")
T = TypeVar("T")


@dataclass
class IngestRequest:
    """One ingest: which adapter reads which inputs, and how the run behaves."""

    adapter: Adapter
    inputs: list[Path]
    options: dict[str, Any]
    source: str
    force: bool = False
    max_reject_rate: float | None = None
    cursor: Cursor | None = None  # a pull: resumes from the source's last committed cursor
    # A Spark master (``local[N]``, ``spark://HOST:PORT``): the adapter and the quality gate
    # run on its executors, file by file (:mod:`hubctl.spark_ingest`); None: in this process.
    engine: str | None = None
    # The run, set by the engine as soon as it starts: a caller reports the counts so far of a
    # run that failed from it.
    run: Run | None = None


def expand_inputs(patterns: Sequence[str], folders: bool = False) -> list[Path]:
    """Paths from arguments, expanding globs; a missing input is an InputError. ``folders``:
    the adapter reads a folder as one input (an unzipped GTFS feed)."""
    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise InputError("no file matches this pattern", path=pattern)
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise InputError("no such file", path=m, hint="check the path and try again")
            if p.is_dir() and not folders:
                raise InputError("is a folder; this adapter reads files", path=m,
                                 hint=f"give the files inside, e.g. {Path(m) / '*'}")
            if not os.access(p, os.R_OK):
                raise InputError("not readable", path=m, hint="check its permissions")
            out.append(p)
    return out


def fingerprint(adapter: str, inputs: Sequence[Path], options: dict[str, Any]) -> str:
    """Content hash of the inputs (and the files named in options) with the adapter options."""
    h = hashlib.sha256()
    h.update(adapter.encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    for member, name in _hashed_files(inputs, options):
        h.update(name.encode())
        with open(member, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def _hashed_files(inputs: Sequence[Path], options: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """The files a fingerprint covers, each with the name it is hashed under: the inputs (a
    folder input: every file in it, by relative name) and the files named in options."""
    files = list(inputs) + [Path(v) for v in options.values()
                            if isinstance(v, str | Path) and Path(v).is_file()]
    for path in files:
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for member in members:
            yield member, str(member.relative_to(path.parent))


def _file_states(req: IngestRequest) -> dict[Path, tuple[int, int, int] | None]:
    """(size, modification time in ns, inode) of each file the run's fingerprint covers (None:
    it cannot be read): compared before and after the read by :func:`_same_inputs`."""
    states: dict[Path, tuple[int, int, int] | None] = {}
    for member, _ in _hashed_files(req.inputs, req.options):
        try:
            st = member.stat()
            states[member] = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            states[member] = None
    return states


def _same_inputs(lake: Lake, run: Run, req: IngestRequest,
                 before: dict[Path, tuple[int, int, int] | None]) -> None:
    """Fail ``run`` (what it committed stays) when a file its fingerprint covers changed
    while it was read (rewritten, cut short, still being written): its fingerprint is not
    of what it read, so it must not mark that input as ingested, else the complete file
    given again would be found unchanged and its other records never written."""
    try:
        after = _file_states(req)
    except OSError:  # a folder input that is gone
        after = {}
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if not changed:
        return
    was, now = before.get(changed[0]), after.get(changed[0])
    how = (f"{was[0]:,} bytes when the run began, {now[0]:,} when its read ended" if was and now
           else "it was removed or added")
    error = InputError(f"changed while it was read ({how}): it may not have been read whole, "
                       "so this run does not count as having ingested it", path=str(changed[0]),
                       hint="what was read is committed; run the same command again once the "
                            "file is complete (a re-run writes no duplicates)")
    _fail(lake, run, error.message)
    raise error


#: Inputs of at least this many bytes are hashed on a thread while the adapter starts reading
#: them (hashlib and file reads release the GIL): hashing 1.2 GB takes 1.2 s of CPU and up to
#: 2 s of wall time that the read no longer waits for. Only when the input cannot have been
#: ingested before (its source has no finished run, or --force): a read begun alongside the
#: hash of an unchanged input would be wasted (5 M rows: 1.1 s of CPU). A smaller input is
#: hashed first, so that an input already ingested (cron's common case) is never read.
HASH_ALONGSIDE_BYTES = 64 << 20


def ingest(lake: Lake, req: IngestRequest,
           progress: Callable[[int], None] | None = None) -> Run:
    """Run one ingest under the locks of its source and of its input files; returns its
    ledger row.

    Nothing is committed before the input's fingerprint is known and found new (else the
    run is ``unchanged``). The row is written when the run starts committing (``running``:
    once the first batch is read, so that the commit overlaps the read of the next) and
    completed when it ends; a run that fails or is interrupted before its fingerprint is
    known (a large input, hashed alongside the read) leaves none. A stop request (SIGTERM:
    :data:`hubctl.running.STOP`) ends the run after the commit in progress: its row says
    ``stopped`` and counts the records read but not committed as ``unreached``, then
    Stopped is raised.
    """
    lake.root.mkdir(parents=True, exist_ok=True)
    mark_interrupted(lake)
    with ExitStack() as locks:
        locks.enter_context(hold(lake.root, f"source:{req.source}"))
        _hold_inputs(locks, lake, req.inputs)
        before = _file_states(req)  # before the fingerprint is taken
        start = _Start(lake, req)
        run = start.run
        if req.cursor is not None:  # read under the lock; a pull is never "unchanged"
            req.cursor.before = run.cursor_before = last_cursor(lake, req.source)
        previous = None if start.alongside else start.previous()
        if previous:
            return _unchanged(lake, run, previous)
        try:
            stopped = _consume(lake, req, run, progress, start)
        except _Unchanged as found:
            return _unchanged(lake, run, found.previous)
        except BaseException as exc:
            if start.checked and isinstance(exc, KeyboardInterrupt):  # Ctrl-C: where it was
                _record_stopped(lake, run, "Ctrl-C (SIGINT)")
            elif start.checked:  # past the fingerprint check: the run is recorded as failed
                _fail(lake, run, str(exc) or type(exc).__name__)
            raise
        if stopped:
            _stop(lake, run)
        else:
            _same_inputs(lake, run, req, before)  # before _retire deletes what it did not read
            _retire(lake, run)
        if not run.reconciles:  # a bug, never a user error: say so loudly
            _fail(lake, run, _unreconciled(run))
            raise HubError(run.error or "")
        too_many = judge(run, req.max_reject_rate,
                         req.inputs if req.cursor is None else ())
        if req.cursor is not None:  # committed with the run; a failed run never advances it
            run.cursor_after = req.cursor.after or req.cursor.before
        write_run(lake, run)
        if too_many is not None:
            raise too_many
        return run


class _Unchanged(Exception):
    """The input was ingested before by run ``previous`` (found once its hash was known)."""

    def __init__(self, previous: str) -> None:
        super().__init__(previous)
        self.previous = previous


def _unchanged(lake: Lake, run: Run, previous: str) -> Run:
    """Record ``run`` as ``unchanged`` (its input ingested by run ``previous``)."""
    run.status = "unchanged"
    run.warnings[:] = [f"input already ingested by run {previous}; use --force to read it "
                       "again"]  # not what a read begun alongside the hash warned about
    write_run(lake, run)
    return run


class _Start:
    """A run up to its first commit: its fingerprint (the input hashed here, or on a thread
    while the adapter reads when the input is large: ``alongside``), the check that the
    input is new, and its ``running`` row. Calling it does what is left of that (the first
    call; raises _Unchanged if the input was ingested before)."""

    def __init__(self, lake: Lake, req: IngestRequest) -> None:
        self.lake, self.req = lake, req
        self.alongside = req.engine is None and req.cursor is None and sum(
            p.stat().st_size for p in req.inputs if p.is_file()) >= HASH_ALONGSIDE_BYTES \
            and (req.force or not ingested_before(lake, req.source))
        self.hashed: Callable[[], str] | None = None
        if self.alongside:
            self.hashed = _on_thread(lambda: fingerprint(req.adapter.name, req.inputs,
                                                         req.options))
        self.checked = False  # past the fingerprint check: the run will be in the ledger
        self.run = req.run = Run(
            run_id=new_run_id(), source=req.source, adapter=req.adapter.name,
            fingerprint="" if self.alongside else fingerprint(req.adapter.name, req.inputs,
                                                              req.options),
            inputs=[str(p) for p in req.inputs],
            options={k: str(v) for k, v in req.options.items() if v is not None})

    def previous(self) -> str | None:
        """The run that already ingested this input, if any (waits for its hash)."""
        if self.hashed is not None:
            self.run.fingerprint, self.hashed = self.hashed(), None
        found = None if self.req.force or self.req.cursor is not None else find_ingested(
            self.lake, self.req.source, self.run.fingerprint)
        self.checked = not found
        return found

    def __call__(self) -> None:
        if self.run.started or self.hashed is None and not self.checked:
            return  # started, or an input found ingested (not read)
        if self.hashed is not None:
            previous = self.previous()
            if previous:
                raise _Unchanged(previous)
        start_run(self.lake, self.run)


def _on_thread(call: Callable[[], str]) -> Callable[[], str]:
    """Start ``call`` on a thread; the function returned waits for its result (or raises its
    exception)."""
    out: list[str] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # raised where the result is asked for
            error.append(exc)

    thread = threading.Thread(target=target, name="hubctl-fingerprint", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        if error:
            raise error[0]
        return out[0]
    return result


def _started(start: Callable[[], None], batches: Generator[T, None, None]
             ) -> Generator[T, None, None]:
    """``batches``, with ``start()`` called once the first is read (or the read failed or
    found nothing): the run's first commit waits for it, the read does not."""
    try:
        try:
            first = next(batches)
        except StopIteration:
            start()
            return
        except Exception:
            start()  # an input already ingested is skipped, even one that no longer reads
            raise
        start()
        yield first
        yield from batches
    finally:
        batches.close()


def judge(run: Run, max_reject_rate: float | None,
          inputs: Sequence[Path] = ()) -> RejectRateExceeded | None:
    """Set the status of a finished run from its rejects; the error to raise (exit 4) when
    it is not ``ok`` or ``empty``.

    ``rejected``: it read records and every one was rejected (nothing written, updated or
    found duplicate), or every record of its input files was (a station list named in an
    option may have been written), whatever ``max_reject_rate`` says. ``empty``: its input
    files (``inputs``; none for an API pull or a message) held no record at all, e.g. a CSV
    of a header only: not an error (a day without calls can be real; exit 0), but not
    ``ok`` either, with a warning naming the files. ``over-reject-rate``: more than
    ``max_reject_rate`` of what it read was rejected.
    """
    rate = run.rejected / run.read if run.read else 0.0
    hint = f"`hubctl rejects --run {run.run_id}` shows the reasons"
    if run.read and run.rejected == run.read:
        run.status = "rejected"
        return RejectRateExceeded(
            f"run {run.run_id} rejected all {run.read} records it read; nothing was written",
            hint=hint)
    given = run.from_inputs
    if given["read"] and given["rejected"] == given["read"]:
        run.status = "rejected"
        return RejectRateExceeded(
            f"run {run.run_id} rejected all {given['read']} records of its input files; only "
            f"{run.read - given['read']} record(s) of side files (e.g. a station list) were "
            "kept", hint=hint)
    if inputs and not run.read:
        run.status = "empty"
        names = ", ".join(str(p) for p in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        run.warnings.append(f"no records in {names} (a header only?): nothing was written; "
                            "check the export that made it")
        return None
    if max_reject_rate is not None and rate > max_reject_rate:
        run.status = "over-reject-rate"
        return RejectRateExceeded(
            f"run {run.run_id} rejected {run.rejected} of {run.read} records ({rate:.1%}), "
            f"over --max-reject-rate {max_reject_rate:.1%}",
            hint=hint + "; the good records were written")
    run.status = "ok"
    return None


def _hold_inputs(locks: ExitStack, lake: Lake, inputs: Sequence[Path]) -> None:
    """Lock each input file by its identity: the same file through another path or a hard
    link is never read by two runs at once."""
    for key, path in sorted({file_key(p): p for p in inputs}.items()):
        try:
            locks.enter_context(hold(lake.root, key))
        except LockHeld as exc:
            raise LockHeld(f"{path} is being ingested by another run ({exc.message})",
                           hint="the same file (perhaps through another path or a hard link) "
                                "is read by one run at a time; try again later (exit code 75 "
                                "means 'skipped, locked')") from None


def _fail(lake: Lake, run: Run, error: str) -> None:
    """Record ``run`` as failed; what it read and did not commit is ``unreached``."""
    run.status, run.error = "failed", error
    run.settle()
    write_run(lake, run)


def _record_stopped(lake: Lake, run: Run, how: str) -> None:
    """Record ``run`` as ``stopped`` (``how``: by what, and where): what it committed stays,
    the rest of what it read is ``unreached``."""
    run.status = "stopped"
    run.settle()
    run.error = (f"stopped by {how}: {run.committed} of {run.read} records read were "
                 f"committed, {run.unreached} were not")
    write_run(lake, run)


def _stop(lake: Lake, run: Run) -> None:
    """Record ``run`` as stopped after its last commit, then raise Stopped."""
    _record_stopped(lake, run, f"{stop_reason()} after its last commit")
    raise Stopped(run.error or "", run=run,
                  hint="what was committed stays; run the same command again to read the rest "
                       "(a stopped run does not mark its input as ingested)")


def _consume(lake: Lake, req: IngestRequest, run: Run,
             progress: Callable[[int], None] | None, start: Callable[[], None]) -> bool:
    """Account every batch of the adapter; True when a stop request ended the run early."""
    read = [0]  # input bytes the adapter has read, advanced from the reading thread

    def advance(nbytes: int) -> None:
        read[0] += nbytes

    def positioned() -> Iterator[tuple[Batch, int]]:
        for batch in reader(req.inputs, req.options, ctx):
            yield batch, read[0]

    reader: Callable[[Sequence[Path], dict[str, Any], ReadContext], Iterator[Batch]]
    reader = req.adapter.read
    if req.engine is not None:
        from hubctl.spark_ingest import spark_reader

        start()  # before the read: the run's marker keeps its Spark staging folder alive
        reader = spark_reader(lake, req.adapter, req.engine)

    ctx = ReadContext(batch_rows=req.adapter.batch_rows, warn=run.warnings.append,
                      advance=advance)
    shown = 0
    held = _Commit()
    batches = _started(start, prefetch(positioned()))
    try:
        while True:
            try:
                batch, position = next(batches)
            except StopIteration:
                break
            except _Unchanged:
                raise
            except Exception as exc:
                if not STOP.is_set():
                    raise
                run.warnings.append(f"reading stopped: {exc}")  # e.g. a pull's next request
                _commit(lake, run, held)
                return True
            if STOP.is_set():
                _commit(lake, run, held)  # the commit in progress: the slices gated so far
                run.read += batch.records  # read, never committed: counted as unreached
                return True
            rejects = _account(lake, batch, run, held)
            if _from_inputs(batch.file, req.inputs):
                run.from_inputs["read"] += batch.records
                run.from_inputs["rejected"] += sum(r.records for r in rejects)
            committed = not batch.continues and batch.rows is not None and \
                batch.rows.num_rows > 0
            if progress is not None and committed and position > shown:
                progress(position - shown)  # input counts as done once its rows are committed
                shown = position
    finally:
        batches.close()
    _commit(lake, run, held)  # an adapter whose last batch said continues
    if progress is not None and read[0] > shown:
        progress(read[0] - shown)
    return False


def _retire(lake: Lake, run: Run) -> None:
    """After a finished read, delete what each declared scope (``Batch.replaces``) held that
    this run did not read; the ledger row's warnings say what went."""
    for (name, column, value), kept in run.scopes.items():
        keep = pa.concat_arrays(kept) if kept else pa.array([], pa.string())
        gone = lake.remove_absent(get_type(name), column, value, keep)
        if gone:
            run.removed[name] = gone
            run.warnings.append(f"{name}: removed {gone} row(s) of {column} {value} that this "
                                "version no longer has")


def _from_inputs(file: str, inputs: Sequence[Path]) -> bool:
    """True when a batch's ``file`` is one of the run's inputs (or a member of one), not a
    side file named in an option (a station list)."""
    return any(file == str(p) or file.startswith((f"{p}:", f"{p}/")) for p in inputs)


class _Commit:
    """The batches of one commit: one batch, or the slices of one (``Batch.continues``),
    gated as they come and committed together with the last: one upsert, one rejects commit."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.good: list[pa.Table] = []
        self.rejects: list[Reject] = []

    def joins(self, batch: Batch) -> bool:
        """True when ``batch`` continues the slices held (same type, file and cells)."""
        last = self.batches[-1] if self.batches else None
        return last is None or (last.continues and last.entity_type == batch.entity_type
                                and last.file == batch.file
                                and last.cell_columns == batch.cell_columns)


def _account(lake: Lake, batch: Batch, run: Run, held: _Commit) -> list[Reject]:
    """Gate one batch and commit it (with the slices before it that it continues, held in
    ``held``: its last slice commits them all); return the batch's own rejects. Counts are
    added as their commits succeed, and checkpointed after each batch."""
    if not held.joins(batch):
        _commit(lake, run, held)  # an adapter's last slice said continues: commit it anyway
    run.read += batch.records
    rejects = list(batch.rejects)
    if batch.replaces is not None:  # the keys this version holds, rejected rows' too
        kept = run.scopes.setdefault((batch.entity_type, *batch.replaces), [])
        if batch.rows is not None and batch.rows.num_rows:
            kept.append(batch.rows.column("id").combine_chunks())
    if batch.rows is not None and batch.rows.num_rows:
        good, gated = _gate(get_type(batch.entity_type), batch)
        rejects += gated
        if good.num_rows:
            held.good.append(good)
    held.batches.append(batch)
    held.rejects += rejects
    if batch.continues:
        checkpoint(lake, run)  # what was read so far; nothing more committed
    else:
        _commit(lake, run, held)
    return rejects


def _commit(lake: Lake, run: Run, held: _Commit) -> None:
    """Commit the batches ``held`` (their good rows, then their rejects), count them in the
    run and checkpoint it; empty ``held``."""
    if not held.batches:
        return
    first = held.batches[0]
    if held.good:
        # slices may hold dictionaries of their own (a meter-readings range's last instant
        # and the next range's first batch): one dictionary per column for the key checks
        good = held.good[0] if len(held.good) == 1 else \
            pa.concat_tables(held.good).unify_dictionaries()
        _store(lake, get_type(first.entity_type), first, good, run)
    for batch in held.batches:  # folded by the adapter: nothing to commit
        run.duplicate += batch.duplicate
        run.updated += batch.updated
    rejects = held.rejects
    held.batches, held.good, held.rejects = [], [], []
    if rejects:
        checkpoint(lake, run)
        run.tables["_rejects"] = write_rejects(lake, run, rejects)
        run.rejected += sum(r.records for r in rejects)
    checkpoint(lake, run)


def ingest_batches(lake: Lake, source: str, adapter: str, batches: Sequence[Batch], *,
                   fingerprint: str, inputs: Sequence[str] = (),
                   options: dict[str, Any] | None = None,
                   cursor: str | None = None) -> tuple[Run, list[Reject]]:
    """Ingest in-memory batches (a live micro-batch) as one run of ``source``.

    The same gate, upsert, rejects and ledger path as :func:`ingest`, without an input file:
    ``fingerprint`` names what was read (e.g. an MQTT session and batch number). The caller
    holds the source's lock. Returns the ledger row written (status ``ok``, or ``rejected``
    when every record was) and every reject,
    so the caller can answer each message; on failure the run is recorded as failed and the
    error raised, and the caller must not acknowledge the batch. ``cursor`` is stored as the
    run's ``cursor_after`` (a listener's catch-up position; see ``ledger.last_cursor``).
    """
    lake.root.mkdir(parents=True, exist_ok=True)
    run = Run(run_id=new_run_id(), source=source, adapter=adapter, fingerprint=fingerprint,
              inputs=list(inputs), options=dict(options or {}), cursor_after=cursor)
    rejects: list[Reject] = []
    start_run(lake, run)
    held = _Commit()
    try:
        for batch in batches:
            rejects += _account(lake, batch, run, held)
        _commit(lake, run, held)
        if not run.reconciles:
            raise HubError(_unreconciled(run))
    except BaseException as exc:
        _fail(lake, run, str(exc) or type(exc).__name__)
        raise
    judge(run, None)  # ``rejected`` when every message was; the caller answers each one
    write_run(lake, run)
    return run, rejects


def _unreconciled(run: Run) -> str:
    return (f"counts do not reconcile: read {run.read} != written {run.written} + updated "
            f"{run.updated} + duplicate {run.duplicate} + rejected {run.rejected} + unreached "
            f"{run.unreached}")


def _gate(et: EntityType, batch: Batch) -> tuple[pa.Table, list[Reject]]:
    """The rows of a batch that pass the quality gate, and the rejects of the rest (none to
    add for a batch gated where it was read: a Spark executor)."""
    if batch.gated:
        assert batch.rows is not None
        return batch.rows, []
    return gate_batch(et, batch)


def _store(lake: Lake, et: EntityType, batch: Batch, good: pa.Table, run: Run) -> None:
    """Collapse and upsert the gated rows ``good`` of ``batch`` (or of its slices) in one
    commit; count them in the run."""
    shadowed = {"updated": 0, "duplicate": 0}
    if batch.unique_keys:
        own = run.own_files.setdefault(et.name, set())
    else:
        if not batch.distinct_keys:
            good, shadowed = _collapse(et, good)
        own = None
    result = lake.upsert(et, _with_provenance(et, good, run), batch.cell_columns, own)
    run.updated += shadowed["updated"]  # folded into rows that are now committed
    run.duplicate += shadowed["duplicate"]
    run.written += result.records["new"] + result.records["filled"]
    if result.rows:
        run.rows[et.name] = run.rows.get(et.name, 0) + result.rows
    run.updated += result.records["updated"]
    run.duplicate += result.records["duplicate"]
    if result.version is not None:
        run.tables[et.name] = result.version


def gate_batch(et: EntityType, batch: Batch) -> tuple[pa.Table, list[Reject]]:
    """The quality gate on one batch's rows: the rows that pass (with ``_records``, without
    the ``_raw``/``_record`` bookkeeping) and a Reject for each row that does not."""
    rows = batch.rows
    assert rows is not None
    if "_records" not in rows.column_names:
        rows = rows.append_column("_records", pa.array(np.ones(rows.num_rows, np.int64)))
    good, bad, reasons = gate_for(et).split(rows, batch.typed_bad)
    rejects = [_reject(et, bad, i, rs, batch.file) for i, rs in reasons.items()]
    good = good.drop_columns([c for c in ("_raw", "_record") if c in good.column_names])
    return good, rejects


def _reject(et: EntityType, bad: pa.Table, i: int, reasons: list[Reason], file: str) -> Reject:
    row = bad.slice(i, 1).to_pylist()[0]
    raw = row.pop("_raw", None)
    where = row.pop("_record", None)
    records = int(row.pop("_records", 1) or 1)
    if raw is None:
        raw = json.dumps({k: v for k, v in row.items() if v is not None}, default=str,
                         ensure_ascii=False)
    return Reject(et.name, raw, reasons, file=file, record=str(where or ""), records=records)


def _collapse(et: EntityType, rows: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """One row per key: later rows win cell by cell (a null keeps the earlier value).
    ``rows`` carry ``_records`` but no longer ``_raw``/``_record``.

    Earlier rows whose values a later row changed count as updated; exact repeats of the last
    row as duplicate; the rest fold their records into the surviving row.
    """
    counts = {"updated": 0, "duplicate": 0}
    key = list(et.key)
    if not _keys_repeat(rows, key):
        return rows, counts
    rows = rows.append_column("__pos", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    values = [c for c in rows.column_names if c not in key and c not in ("_records", "__pos")]
    q = quote_ident
    keys = ", ".join(q(k) for k in key)
    aggs = ", ".join(f"arg_max({q(c)}, __pos) FILTER (WHERE {q(c)} IS NOT NULL) AS {q(c)}"
                     for c in values)
    on = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in key)
    changed = " OR ".join(f"(s.{q(c)} IS NOT NULL AND s.{q(c)} IS DISTINCT FROM f.{q(c)})"
                          for c in values if not c.startswith("_")) or "false"
    same = " AND ".join(f"s.{q(c)} IS NOT DISTINCT FROM l.{q(c)}"
                        for c in values if not c.startswith("_")) or "true"
    con = scratch()
    try:
        con.register("s_rows", rows)
        con.execute(f"""CREATE TEMP TABLE f AS SELECT {keys}, {aggs}, max(__pos) AS __last
                        FROM s_rows GROUP BY {keys}""").fetchall()
        classes = con.execute(f"""
            SELECT s.__pos, s._records, f.__last,
                   CASE WHEN s.__pos = f.__last THEN 'last' WHEN {changed} THEN 'updated'
                        WHEN {same} THEN 'duplicate' ELSE 'folded' END AS cls
            FROM s_rows s JOIN f ON {on} JOIN s_rows l ON l.__pos = f.__last""").fetchall()
        folded: dict[int, int] = {}
        for _pos, records, last, cls in classes:
            if cls in counts:
                counts[cls] += records
            elif cls == "folded":
                folded[last] = folded.get(last, 0) + records
        out = con.sql("""
            SELECT f.* EXCLUDE (__last), s._records AS _records, f.__last AS __last
            FROM f JOIN s_rows s ON s.__pos = f.__last ORDER BY f.__last""").to_arrow_table()
    finally:
        con.close()
    extra = pa.array([folded.get(p, 0) for p in out.column("__last").to_pylist()], pa.int64())
    out = out.set_column(out.schema.get_field_index("_records"), "_records",
                         pc.add(out.column("_records"), extra))
    out = out.drop_columns(["__last"])
    return out.cast(_schema_like(rows, out)), counts


def _keys_repeat(rows: pa.Table, key: list[str]) -> bool:
    """True when two of ``rows`` share a key. A one-column key is checked by ``pc.unique``
    (a null counts once, as in a group-by): a group-by plan would load pyarrow's Acero and
    dataset modules (10-15 ms of CPU) for the station batch of every OpenAQ ingest."""
    if len(key) == 1:
        column = rows.column(key[0])
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        return len(pc.unique(column)) < rows.num_rows
    return rows.group_by(key).aggregate([]).num_rows < rows.num_rows


def _schema_like(rows: pa.Table, out: pa.Table) -> pa.Schema:
    types = {f.name: f.type for f in rows.schema}
    return pa.schema([pa.field(n, types.get(n, out.schema.field(n).type))
                      for n in out.column_names])


def _with_provenance(et: EntityType, rows: pa.Table, run: Run) -> pa.Table:
    """The lake row form of ``et``: its columns in order, the provenance columns (the source
    and run as one-entry dictionaries: one value down the whole batch), and ``date``."""
    n = rows.num_rows
    now = pa.scalar(datetime.now(UTC), TIMESTAMP)
    cols = {
        "_source": _constant(run.source, n),
        "_run_id": _constant(run.run_id, n),
        "_ingested_at": pa.repeat(now, n),
    }
    if et.time_series:
        cols["date"] = pc.cast(rows.column("observed_at"), pa.date32())
    for name, arr in cols.items():
        if name in rows.column_names:
            rows = rows.drop_columns([name])
        rows = rows.append_column(name, arr)
    schema = et.arrow_schema()
    for f in schema:
        if f.name not in rows.column_names:
            rows = rows.append_column(f.name, _nulls(f.type, n))
    return conform(rows, pa.schema(list(schema) + [pa.field("_records", pa.int64())]))


_NULLS: dict[pa.DataType, pa.Array] = {}


def _nulls(kind: pa.DataType, n: int) -> pa.Array:
    """``n`` nulls of type ``kind``: slices of one array per type, shared by the attribute
    columns a batch does not carry (a million-row OpenAQ batch has 28 of them)."""
    found = _NULLS.get(kind)
    if found is None or len(found) < n:
        found = _NULLS[kind] = pa.nulls(max(n, 2 * len(found) if found is not None else n),
                                        kind)
    return found.slice(0, n)


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """``value`` in each of ``n`` rows, as a one-entry dictionary."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                          pa.array([value], pa.string()))
