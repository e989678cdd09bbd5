"""What an adapter is: a name, the entity types it produces, its click options, and a
``read`` that yields bounded batches of lake rows (never the whole input).

The ingest engine (:mod:`hubctl.ingest`) does the rest: quality gate, lake upsert, rejects,
ledger. Adapters know their source format and nothing else: what every adapter needs besides
(the ``--map`` parser, the reject collector, the CSV batch loop, entity ids, local times) is in
:mod:`hubctl.adapterkit`, and no adapter imports from another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import click
import pyarrow as pa

from hubctl.gate import RowReasons
from hubctl.rejects import Reject

__all__ = ["BATCH_ROWS", "Adapter", "Batch", "ReadContext", "Span"]

# The one name for the batch size, everywhere: rows an adapter puts in one Batch.
BATCH_ROWS = 250_000


@dataclass
class Batch:
    """Lake rows of one entity type from one input, plus what the adapter rejected itself.

    ``rows`` is in lake-row form (``id``, ``observed_at``, attribute columns, ``lon``/``lat``,
    optional ``_extra``, ``_time_index``), with two optional bookkeeping columns: ``_records``
    (input records folded into the row, default 1) and ``_raw`` (the raw record, kept for rejects)
    and ``_record`` (where in the input: a line number or JSON pointer).
    ``records`` is how many input records this batch accounts for: the sum of ``_records`` plus
    the records of ``rejects``, plus ``duplicate`` and ``updated``: records the adapter itself
    found repeated within the input (same key and attribute) and folded away.
    """

    entity_type: str
    rows: pa.Table | None
    file: str
    records: int
    typed_bad: RowReasons = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    duplicate: int = 0
    updated: int = 0
    cell_columns: tuple[str, ...] = ()  # columns where each non-null cell is one input record
    # True when no key of these rows repeats, within the batch or in any other batch of the
    # same run (the adapter removed repeats itself, as the GTFS adapter does): the engine then
    # skips its within-batch key check, and a static table compares the rows only with what
    # the table held before this run, not with what this run wrote.
    unique_keys: bool = False
    # (column, value): this run's rows of this (static) type with ``column`` = ``value``, over
    # all its batches, are the whole of that scope (a GTFS feed version under its feed id).
    # When the run finishes, rows of the scope that the run did not read are deleted, so a
    # new version never mixes with what the old one had and the new one dropped. A batch
    # without rows may declare a scope too: every row of it then goes (a file the new
    # version no longer has).
    replaces: tuple[str, str] | None = None
    # True when no key repeats within these rows (an adapter that pivoted or folded them
    # itself): the engine skips its within-batch key check. Keys may still repeat in other
    # batches of the run; the lake's upsert classifies those.
    distinct_keys: bool = False
    # True when ``rows`` already passed the quality gate and ``rejects`` hold the gate's
    # rejects too (a batch read and gated on a Spark executor: :mod:`hubctl.spark_ingest`).
    gated: bool = False
    # True when the next batch is more rows of the same commit: one logical batch the
    # adapter cut into slices of at most ``batch_rows`` rows (:meth:`slices`). The engine
    # gates each slice as it comes and commits them together with the last one (one upsert,
    # one rejects commit): slicing adds no Delta commit.
    continues: bool = False
    # True: not lake rows but a part of the input read and checked, for the adapter's own
    # :meth:`Adapter.fold` (OpenAQ's good readings of one block, before its pivot); a part
    # never reaches the engine.
    part: bool = False

    def slices(self, batch_rows: int) -> Iterator[Batch]:
        """This batch as slices of at most ``batch_rows`` rows (zero-copy), all but the last
        marked :attr:`continues`. The first carries ``records``, ``rejects``, ``duplicate``
        and ``updated``; ``typed_bad`` goes with the rows it names."""
        n = self.rows.num_rows if self.rows is not None else 0
        if n <= batch_rows:
            yield self
            return
        assert self.rows is not None
        for start in range(0, n, batch_rows):
            first = start == 0
            typed_bad = {i - start: r for i, r in self.typed_bad.items()
                         if start <= i < start + batch_rows}
            yield replace(self, rows=self.rows.slice(start, batch_rows),
                          records=self.records if first else 0, typed_bad=typed_bad,
                          rejects=self.rejects if first else [],
                          duplicate=self.duplicate if first else 0,
                          updated=self.updated if first else 0,
                          continues=self.continues or start + batch_rows < n)


@dataclass(frozen=True)
class Span:
    """A byte range of one input file, cut just after a record's line break (``ingest
    --engine`` reads a large CSV in ranges: :func:`hubctl.csvread.split_csv`): bytes
    ``[start, end)``, whose first line is line ``first_line`` of the file; range ``index``
    of the file's ``count``. The header is read from the file's start whatever the range."""

    start: int
    end: int
    first_line: int
    index: int = 0
    count: int = 1

    @property
    def first(self) -> bool:
        """True for the file's first range (the one that holds its header)."""
        return self.index == 0


@dataclass
class ReadContext:
    """What the engine gives an adapter: batch size, arrival time, warnings, progress, and,
    when the engine split a file, the byte range to read."""

    batch_rows: int = BATCH_ROWS
    arrival: datetime = field(default_factory=lambda: datetime.now(UTC))
    warn: Callable[[str], None] = lambda msg: None
    advance: Callable[[int], None] = lambda nbytes: None
    #: The byte range of the (one) input to read, when the engine split it (an adapter with
    #: ``reads_byte_ranges`` passes it to :func:`hubctl.csvread.open_csv`); None: whole files.
    span: Span | None = None
    #: Where a byte range's counts for its file's closing warnings go (:meth:`file_done`).
    tally: Callable[[dict[str, int]], None] = lambda counts: None

    def file_done(self, adapter: Adapter, path: Path, counts: dict[str, int]) -> None:
        """The end of reading ``path``: its closing warnings (:meth:`Adapter.file_warnings`
        of ``counts``) now; or, when this was one byte range of it, ``counts`` to the
        engine, which sums them over the file's ranges and warns once, after the last."""
        if self.span is None:
            for warning in adapter.file_warnings(path, counts):
                self.warn(warning)
        else:
            self.tally(counts)


class Adapter(Protocol):
    """The contract every module in ``adapters/`` fulfils.

    An adapter class subclasses this protocol explicitly (``class OpenAQ(Adapter):``), so that
    it inherits the defaults of the optional members below and mypy checks the ones it sets.
    The engine reads these members directly; it never probes an adapter with ``hasattr``.
    """

    name: str
    entity_types: tuple[str, ...]
    summary: str
    example: str
    params: Sequence[click.Parameter]

    # Optional members, with their defaults.
    #: True: a folder given as input is one input (an unzipped GTFS feed); otherwise a folder
    #: argument is a usage mistake.
    accepts_folders: bool = False
    #: True: each input file is read on its own, nothing carried from one file to the next
    #: (no pivot or station list across files), so files can be read in parallel and their
    #: batches replayed in order (``ingest --engine``: one Spark task per file); otherwise
    #: the files of a run are one task.
    reads_files_apart: bool = False
    #: True (with ``reads_files_apart``): a large plain CSV input may be read in byte ranges,
    #: each on its own, with the same batches, rejects and line numbers as the whole file:
    #: one Spark task per range (``ingest --engine``). The adapter opens its input with
    #: ``open_csv(..., batch_rows=ctx.batch_rows, span=ctx.span)``
    #: (:func:`hubctl.csvread.split_csv` cuts where such a stream cuts its blocks); what it
    #: infers from a file's first rows is settled once (:meth:`file_options`), and its
    #: per-file closing warnings are summed over the ranges (:meth:`file_warnings`).
    reads_byte_ranges: bool = False
    #: Rows an adapter puts in one Batch (``ReadContext.batch_rows``).
    batch_rows: int = BATCH_ROWS
    #: An adapter that can pull from an API: the options of a pull, an example command line,
    #: and :meth:`is_pull` / :meth:`pull_source`. Empty for file-only adapters.
    pull_example: str | None = None

    @property
    def pull_params(self) -> Sequence[click.Parameter]:
        """Options of an API pull (none for a file-only adapter)."""
        return ()

    def is_pull(self, options: dict[str, Any]) -> bool:
        """True when ``options`` ask for an API pull instead of reading files."""
        return False

    def pull_source(self, options: dict[str, Any]) -> str:
        """The default source name of a pull (its cursor is kept under it)."""
        return self.name

    def file_options(self, path: Path, options: dict[str, Any],
                     ctx: ReadContext) -> dict[str, Any]:
        """``options`` for reading ``path`` in byte ranges: with what the adapter would infer
        from the file's first rows (meter readings' interval) settled once, on the whole
        file, so that every range reads as the whole file would. The default: ``options``."""
        return options

    def parts_apart(self, options: dict[str, Any]) -> bool:
        """True when, with these options, :meth:`read_parts` may read each byte range of each
        input on its own (``ReadContext.span``, given to :func:`hubctl.csvread.open_csv`) and
        :meth:`fold` of their parts, in input order, gives what :meth:`read` gives (``ingest
        --engine``: the executors read the parts, the driver folds them). Default: False."""
        return False

    def read_parts(self, inputs: Sequence[Path], options: dict[str, Any],
                   ctx: ReadContext) -> Iterator[Batch]:
        """:meth:`read` before its fold: batches of lake rows or rejects, and parts
        (``Batch.part``) for :meth:`fold`. Default: :meth:`read`."""
        return self.read(inputs, options, ctx)

    def fold(self, parts: Iterator[Batch], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The batches of :meth:`read_parts`, parts folded into lake rows (OpenAQ's pivot of
        the whole input's readings). Default: the batches as they are."""
        return parts

    def file_warnings(self, path: Path, counts: dict[str, int]) -> list[str]:
        """The warnings that close the reading of ``path``, from the counts the adapter gave
        :meth:`ReadContext.file_done` (summed over the file's byte ranges). Default: none."""
        return []

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Yield batches of lake rows from the inputs."""
        ...
