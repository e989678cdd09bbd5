"""The one CSV reader of every adapter: every column as text, bounded batches, and a bad
line that costs one line.

The file is read in raw blocks. A byte-level pass over each block finds the records (line
breaks outside quoted fields, with Arrow's quoting rules), checks the encoding and the length
of each record, and hands only clean records to Arrow's parser. A record that is not valid in
the file's encoding (``bad-encoding``), longer than ``max_line_bytes`` (``line-too-long``) or
with the wrong number of fields (``malformed-record``) is kept aside with its raw text (bytes
that do not decode shown as ``\\xNN``) and its real line number in the file, and reading goes
on. :attr:`CsvStream.lines` gives the file line number of every row of the last batch.

An adapter may name columns to be parsed by Arrow itself (``open_csv(types=...)``: numbers,
times, dictionaries of repeated texts); a clean block then comes typed, any other as text.

A large file can be read in byte ranges (``ingest --engine`` gives each range to its own
task): :func:`split_csv` cuts it just after record ends, by the same quote rules as the
reader, and counts the lines before each cut; ``open_csv(span=...)`` then reads the header
from the file's start and only the records of the range, numbered by their line in the file.
Read one after the other, the ranges give the rows, bad lines and line numbers of the whole
file.

The byte-level pass and Arrow's parse run on a read-ahead thread (:func:`hubctl.prefetch.
prefetch`, one block ahead; both release the GIL for most of their work), so that the next
block is parsed while the adapter converts this one; blocks without quotes (the fast path) are
parsed :data:`PARSERS` at once on parsing threads while the reading thread cuts the next.
Each block comes with its own line numbers, bad lines and bytes, and the stream shows them
when that block is handed out: what an adapter sees is the same, in the same batches, as when
the blocks are read on its own thread (``HUBCTL_CSV_READ_AHEAD=0`` does that). An error on the
reading thread (a damaged or unreadable file) is raised where the adapter asks for the next
batch; closing the stream, or the end of its iteration, stops and joins the threads.

Limits (see ``docs/limits.md``): a header wider than ``max_columns`` columns is refused before
anything is read; a record longer than ``max_line_bytes`` is rejected. Both have defaults
(:data:`DEFAULT_LIMITS`) and the options ``--max-columns`` / ``--max-line-bytes`` of every CSV
adapter (:data:`CSV_LIMIT_PARAMS`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from hubctl.adapter import BATCH_ROWS, Batch, Span
from hubctl.errors import InputError
from hubctl.prefetch import prefetch
from hubctl.rejects import Reject, reason

__all__ = ["CSV_LIMIT_PARAMS", "DEFAULT_LIMITS", "READ_AHEAD_ENV", "READ_AHEAD_THREAD",
           "BadLine", "CsvLimits", "CsvStream", "add_malformed", "csv_limits", "open_csv",
           "read_ahead", "read_whole", "require_columns", "split_csv"]

_BYTES_PER_ROW = 64  # block size = BATCH_ROWS rows of a typical sensor CSV
_NL, _CR, _QUOTE = 10, 13, 34
_SAMPLE = 200  # bytes of an over-long line kept in its reject
_MAX_STRAY_PASSES = 32  # stray quotes resolved vectorised; more fall back to a loop over quotes
READ_AHEAD_ENV = "HUBCTL_CSV_READ_AHEAD"  # "0": read the blocks on the adapter's thread
READ_AHEAD_THREAD = "hubctl-csv-read"
PARSERS = 2  # blocks parsed at once on their own threads, while the reading thread cuts more
_T = TypeVar("_T")
_COMPRESSED = (b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


@dataclass(frozen=True)
class CsvLimits:
    """Limits against hostile or broken CSV input (``docs/limits.md``)."""

    max_line_bytes: int = 1 << 20  # 1 MiB: longer records are rejected as line-too-long
    max_columns: int = 2000  # a wider header is refused before any row is read


DEFAULT_LIMITS = CsvLimits()

CSV_LIMIT_PARAMS: tuple[click.Parameter, ...] = (
    click.Option(["--max-line-bytes"], type=click.IntRange(1024), default=None,
                 help=f"Reject CSV records longer than this as line-too-long "
                      f"(default {DEFAULT_LIMITS.max_line_bytes:,} bytes)."),
    click.Option(["--max-columns"], type=click.IntRange(1), default=None,
                 help=f"Refuse a CSV whose header has more columns than this "
                      f"(default {DEFAULT_LIMITS.max_columns:,})."),
)


def csv_limits(options: Mapping[str, Any]) -> CsvLimits:
    """The limits given by an adapter's options (``max_line_bytes``, ``max_columns``)."""
    return CsvLimits(
        max_line_bytes=int(options.get("max_line_bytes") or DEFAULT_LIMITS.max_line_bytes),
        max_columns=int(options.get("max_columns") or DEFAULT_LIMITS.max_columns))


class BadLine(NamedTuple):
    """A record kept out of the batches: its file line number, raw text and reason code."""

    line: int
    text: str
    code: str = "malformed-record"
    detail: str = "wrong number of fields for the header"


@dataclass
class _Chunk:
    """Complete records of one block: the bytes and, once split, where each record starts
    and ends (a block without quotes is split only when the fast path cannot take it)."""

    data: bytes | bytearray
    first_line: int
    breaks: np.ndarray | None = None  # positions of the line breaks in data (fast path)
    table: pa.Table | None = None  # parsed by the fast path, with:
    fast_lines: np.ndarray | None = None  # the file line number of each of its rows
    typed: bytes | bytearray | None = None  # data, when the table has the typed columns
    later: bool = False  # no quotes: cut without the fast path, which is tried in _blocks
    parsed: Future[pa.Table | None] | None = None  # that try, on a parsing thread
    bad_before: list[BadLine] = field(default_factory=list)  # found by the byte pass first
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    lines: np.ndarray | None = None  # file line number of each record's first line

    def split(self, delimiter: int) -> None:
        """Find the records (line breaks outside quotes) and their line numbers."""
        a = np.frombuffer(self.data, np.uint8)
        nl = np.flatnonzero(a == _NL)
        ends = _record_ends(a, nl, delimiter)[0] + 1
        if not len(ends) or ends[-1] != len(a):
            ends = np.append(ends, len(a))  # the last record of the file has no line break
        self.ends = ends.astype(np.int64)
        self.starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
        self.lines = self.first_line + np.searchsorted(nl, self.starts)


class _Block(NamedTuple):
    """A batch as the byte pass and the parse made it, with what the stream shows while it is
    the last batch handed out; ``batch`` None: the end of the records."""

    batch: pa.RecordBatch | None
    lines: np.ndarray  # file line number of each row
    typed: bytes | bytearray | None  # the block's bytes when read typed (for ``text_batch``)
    bad: list[BadLine]  # lines kept out since the block before
    handed: int  # bytes of the file handed out since the block before


def read_ahead() -> bool:
    """True unless ``HUBCTL_CSV_READ_AHEAD`` is ``0`` (or ``false``, ``no``, ``off``): a
    stream then reads its blocks on the thread that asks for them."""
    return os.environ.get(READ_AHEAD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class CsvStream:
    """A CSV opened for streaming: its header, its batches of text columns, its bad lines."""

    path: str
    handle: IO[bytes]
    names: list[str]
    codec: str
    delimiter: bytes
    limits: CsvLimits
    block_size: int
    empty_as_null: bool = False
    pad_short: bool = False  # GTFS: short rows padded with empty fields
    header_only_ok: bool = False  # GTFS: a lone header line without a line break is no records
    trailing_field: bool = False  # every record ends with one empty unnamed field (dropped)
    bytes_per_row: float = float(_BYTES_PER_ROW)  # mean line length, from the first block
    # columns read typed when a whole block parses (see :func:`open_csv`); else text
    types: Mapping[str, pa.DataType] = field(default_factory=dict)
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _pending: bytes | bytearray = b""  # held after the last block handed out
    _handed: int = 0  # bytes of the file handed out as records (and the header), for progress
    _reported: int = 0
    _read_total: int = 0
    _remaining: int | None = None  # bytes left to read in a byte range (None: to the end)
    _next_line: int = 2
    _bad: list[BadLine] = field(default_factory=list)
    _eof: bool = False
    _guess: str | None = None  # the likely encoding of a file with bad UTF-8 lines (a hint)
    _typed_block: bytes | bytearray | None = None  # the last batch's bytes, when it was read typed
    _invalid: list[BadLine] = field(default_factory=list)  # handed out, not yet taken
    _ahead: Generator[_Block, None, None] | None = None  # the read-ahead thread's, while it runs
    _made: Generator[_Block, None, None] | None = None  # what that thread runs
    # the block being made (on the reading thread): its line numbers and typed bytes
    _made_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _made_typed: bytes | bytearray | None = None

    @property
    def schema(self) -> pa.Schema:
        """Every column as text."""
        return pa.schema([(n, pa.string()) for n in self.names])

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        blocks: Iterator[_Block]
        if read_ahead() and not self._eof:  # (a file already held whole: nothing to overlap)
            made = self._made = self._blocks(PARSERS)
            blocks = self._ahead = prefetch(made, name=READ_AHEAD_THREAD)
        else:
            blocks = self._blocks()
        try:
            for block in blocks:
                self._handed += block.handed
                self._invalid += block.bad
                if block.batch is not None:
                    self.lines, self._typed_block = block.lines, block.typed
                    yield block.batch
                elif self._invalid:  # bad lines after the last good row still reach
                    self.lines = np.zeros(0, np.int64)  # take_invalid
                    self._typed_block = None
                    yield pa.RecordBatch.from_pylist([], schema=self.schema)
        finally:
            self.close()

    def _blocks(self, parsers: int = 0) -> Generator[_Block, None, None]:
        """The batches with their line numbers, bad lines and bytes, then the end (whatever
        thread runs this: the stream's shown state is set as each block is handed out).

        ``parsers``: threads that parse blocks without quotes (the fast path), that many
        blocks at once (the next one handed out and those after it), while this thread runs
        the byte pass. A block's bad lines and any error come as in the serial read."""
        handed, bad = 0, []
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(ThreadPoolExecutor(
                parsers, thread_name_prefix=f"{READ_AHEAD_THREAD}-parse")) if parsers else None
            window: deque[_Chunk | BaseException] = deque()
            chunks: Iterator[_Chunk] | None = self._chunks(later=pool is not None)
            while True:
                while chunks is not None and len(window) < max(parsers, 1):
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        chunks = None
                        break
                    except Exception as exc:  # raised where the serial read raises it (the
                        window.append(exc)  # bad lines found just before are not shown)
                        self._take_bad()
                        chunks = None
                        break
                    chunk.bad_before = self._take_bad()
                    if chunk.later and pool is not None:
                        chunk.parsed = pool.submit(self._fast, chunk)
                    window.append(chunk)
                if not window:
                    break
                item = window.popleft()
                if isinstance(item, BaseException):
                    raise item
                handed += len(item.data)
                bad += item.bad_before
                if item.later:
                    item.table = item.parsed.result() if item.parsed else self._fast(item)
                batch = self._parse(item)
                bad += self._take_bad()
                if batch is not None:
                    yield _Block(batch, self._made_lines, self._made_typed, bad, handed)
                    handed, bad = 0, []
        yield _Block(None, np.zeros(0, np.int64), None, bad + self._take_bad(), handed)

    def _take_bad(self) -> list[BadLine]:
        out, self._bad = self._bad, []
        return out

    def read_all(self) -> pa.Table:
        """The whole file (for small side files such as station lists)."""
        batches, lines = [], []
        for batch in self:
            batches.append(batch)
            lines.append(self.lines)
        self.lines = np.concatenate(lines) if lines else np.zeros(0, np.int64)
        return pa.Table.from_batches(batches, schema=self.schema)

    def text_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The last batch ``batch`` with every column as text (a typed batch is read again
        from its bytes): what a reject keeps as its raw record."""
        if self._typed_block is None:
            return batch
        table = self._arrow(self._typed_block, [])
        return table.combine_chunks().to_batches()[0] if table.num_rows else batch

    def take_read_bytes(self) -> int:
        """Bytes of the file read into batches since the last call (the header included in the
        first): what an adapter passes to ``ReadContext.advance`` for a progress bar."""
        n, self._reported = self._handed - self._reported, self._handed
        return n

    def take_invalid(self) -> list[BadLine]:
        """Lines kept out since the last call (their line numbers, text and reason)."""
        out, self._invalid = self._invalid, []
        return out

    def close(self) -> None:
        """Stop the read-ahead thread, if it runs (it ends its block first), and close the file
        (once it is read to the end this happens by itself)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.close()  # the generator's end joins the reading thread
        made, self._made = self._made, None
        if made is not None:
            made.close()  # ... then its parsing threads
        self.handle.close()

    # -- the byte-level pass -------------------------------------------------------------

    def _read(self, size: int | None = None) -> bytes:
        if self._eof:
            return b""
        size = self._size(size)
        more = self._io(lambda: self.handle.read(size) if size else b"")
        self._count(len(more))
        return more

    def _read_after(self, held: bytes | bytearray) -> bytes | bytearray:
        """``held`` and the next block read after it, in one buffer the block is read into
        (no copy of the block: it is the bulk of the reading's memory traffic)."""
        if self._eof:
            return held
        size = self._size(None)
        buf = bytearray(len(held) + size)
        buf[:len(held)] = held
        with memoryview(buf) as view:
            n = self._io(lambda: self.handle.readinto(view[len(held):]) or 0  # type: ignore
                         if size else 0)
        del buf[len(held) + n:]
        self._count(n)
        return buf

    def _size(self, size: int | None) -> int:
        size = size or self.block_size
        return size if self._remaining is None else min(size, self._remaining)

    def _io(self, read: Callable[[], _T]) -> _T:
        """``read()``, its errors as the file's (a damaged zip member, a read error)."""
        try:
            return read()
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InputError(f"is damaged inside its zip file ({exc})", path=self.path,
                             hint="download or copy the zip again; `unzip -t` tests it") from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=self.path) from None

    def _count(self, n: int) -> None:
        if not n:
            self._eof = True
        self._read_total += n
        if self._remaining is not None:
            self._remaining -= n

    def _chunks(self, later: bool = False) -> Iterator[_Chunk]:
        """Blocks of complete, clean-length records; over-long ones go to the bad lines.
        ``later``: a block without quotes is cut at its last line break without trying the
        fast path (the caller tries it: the cut is the same whatever it gives)."""
        limit = self.limits.max_line_bytes
        stuck = False
        while True:
            if not self._eof and (len(self._pending) < self.block_size or stuck):
                self._pending = self._read_after(self._pending)
            data = self._pending
            if not data:
                return
            cut = len(data) if self._eof else data.rfind(b"\n") + 1
            if cut and len(data) - cut <= limit:  # cut at the last line break
                breaks = np.flatnonzero(np.frombuffer(data, np.uint8, cut) == _NL)
                count = len(breaks)
                plain = data.find(b'"', 0, cut) < 0  # then no record goes on past the cut
                chunk = _Chunk(self._records(cut) if plain else bytes(data[:cut]),
                               self._next_line, breaks, later=later and plain)
                if not chunk.later:
                    chunk.table = self._fast(chunk)  # every line one clean row: done
                if plain or chunk.table is not None:  # else split exactly below
                    if not plain:
                        self._pending = data[cut:]
                    yield chunk
                    self._next_line += count
                    stuck = False
                    continue
            a = np.frombuffer(data, np.uint8)
            nl = np.flatnonzero(a == _NL)
            breaks, open_quote = _record_ends(a, nl, self.delimiter[0])
            ends = breaks + 1
            complete = int(ends[-1]) if len(ends) else 0
            # at the end of the file, a quoted field that never closes costs its first line
            unclosed = self._eof and open_quote and bool(len(nl)) and int(nl[-1]) >= complete
            if self._eof and complete != len(a) and not unclosed:
                ends = np.append(ends, len(a))  # the last record has no line break
                complete = len(a)
            starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
            lengths = ends - starts
            over = np.flatnonzero(lengths > limit)
            if len(over):
                stop = int(starts[over[0]])
            elif len(a) - complete > limit or unclosed:
                stop = complete
            else:
                stop = -1
            cut = complete if stop < 0 else stop
            if cut:
                keep = starts < cut
                lines = self._next_line + np.searchsorted(nl, starts[keep])
                yield _Chunk(data[:cut], self._next_line, starts=starts[keep], ends=ends[keep],
                             lines=lines)
            line = self._next_line + int(np.searchsorted(nl, cut))
            if stop < 0:
                self._pending, self._next_line = data[cut:], line
                stuck = not cut
                if self._eof and not self._pending:
                    return
                continue
            stuck = False
            self._overlong(data, cut, nl, line)

    def _records(self, cut: int) -> bytes | bytearray:
        """The held bytes up to ``cut`` (the records of a block); the rest stays held. A
        buffer read into is cut where it is (the rest is a partial line: copied), not copied."""
        data = self._pending
        self._pending = bytes(data[cut:])
        if isinstance(data, bytearray):
            del data[cut:]
            return data
        return data[:cut]

    def _overlong(self, data: bytes | bytearray, start: int, nl: np.ndarray, line: int) -> None:
        """Reject the record at ``start`` (longer than the limit) and go on after its first
        line: a single over-long line is ``line-too-long``; a record that is long because a
        quoted field never closes costs its first line (``malformed-record``)."""
        limit = self.limits.max_line_bytes
        i = int(np.searchsorted(nl, start))
        first_end = int(nl[i]) + 1 if i < len(nl) else -1
        if 0 < first_end - start <= limit:
            text = _show(data[start:first_end].rstrip(b"\r\n"), self.codec)
            self._bad.append(BadLine(line, text, "malformed-record", (
                f"a quoted field opened on this line is not closed within {limit:,} bytes "
                "or before the end of the file; the line is rejected and reading goes on "
                "with the next")))
            self._pending, self._next_line = data[first_end:], line + 1
            return
        sample, size = data[start:start + _SAMPLE], len(data) - start
        if first_end < 0:  # the line goes on past what is held: skip to its end
            rest, skipped = self._skip_line()
            size += skipped
            self._pending = rest
        else:
            size = first_end - start
            self._pending = data[first_end:]
        self._next_line = line + 1
        self._bad.append(self._long_line(line, sample, size))

    def _skip_line(self) -> tuple[bytes, int]:
        """Read on to the end of the current line; (bytes after it, bytes skipped)."""
        skipped = 0
        while True:
            block = self._read()
            if not block:
                return b"", skipped
            at = block.find(b"\n")
            if at >= 0:
                return block[at + 1:], skipped + at + 1
            skipped += len(block)

    # -- encoding and parsing ------------------------------------------------------------

    def _parse(self, chunk: _Chunk) -> pa.RecordBatch | None:
        """Arrow's parse of a chunk's clean records; their file line numbers in ``lines``."""
        if chunk.table is not None:
            assert chunk.fast_lines is not None
            self._made_typed = chunk.typed
            return self._finish(chunk.table, chunk.fast_lines)
        self._made_typed = None
        if chunk.starts is None:
            chunk.split(self.delimiter[0])
        assert chunk.starts is not None and chunk.ends is not None and chunk.lines is not None
        a = np.frombuffer(chunk.data, np.uint8)
        lengths = chunk.ends - chunk.starts
        empty = (lengths == 0) | ((lengths == 1) & (a[chunk.starts] == _NL)) | (
            (lengths == 2) & (a[chunk.starts] == _CR)
            & (a[np.minimum(chunk.starts + 1, len(a) - 1)] == _NL))
        last = len(a) - 1
        if len(lengths) and lengths[-1] == 1 and a[last] == _CR:
            empty[-1] = True
        keep = ~empty & ~self._too_long(chunk, empty)
        starts, ends, lines = chunk.starts[keep], chunk.ends[keep], chunk.lines[keep]
        clean, good = self._decode(chunk.data, starts, ends, lines)
        if not good.any():
            return None
        starts, ends, lines = starts[good], ends[good], lines[good]
        invalid: list[str] = []
        table = self._arrow(clean, invalid)
        lines = self._place_invalid(chunk.data, starts, ends, lines, invalid, table.num_rows)
        return self._finish(table, lines)

    def _finish(self, table: pa.Table, lines: np.ndarray) -> pa.RecordBatch:
        if self.pad_short:
            table, lines = self._pad(table, lines)
        self._made_lines = lines
        return table.combine_chunks().to_batches()[0] if table.num_rows else \
            pa.RecordBatch.from_pylist([], schema=self.schema)

    def _fast(self, chunk: _Chunk) -> pa.Table | None:
        """A UTF-8 block parsed in one go: it is taken when every line is a row (no bad byte,
        no empty, malformed, multi-line or over-long record); else None and the exact path
        runs. The columns of ``types`` are parsed to their types when every cell of the block
        parses (a float column: every cell a finite number); else the block is read as text.
        Touches nothing but ``chunk`` (its rows' line numbers, its typed bytes): it may run
        on a parsing thread."""
        if self.codec != "utf-8":
            return None
        data, breaks = chunk.data, chunk.breaks
        assert breaks is not None
        lines = len(breaks) + (0 if data.endswith(b"\n") else 1)
        if len(data) > self.limits.max_line_bytes and _longest_line(breaks, len(data)) > \
                self.limits.max_line_bytes:
            return None  # the exact path rejects the over-long records one by one
        for typed in ((True, False) if self.types else (False,)):
            invalid: list[str] = []
            try:
                table = self._arrow(data, invalid, strict=True, typed=typed)
            except pa.ArrowInvalid:
                continue
            if invalid or table.num_rows != lines or (typed and not _finite(table)):
                continue
            chunk.fast_lines = chunk.first_line + np.arange(lines, dtype=np.int64)
            chunk.typed = data if typed else None
            return table
        return None

    def _too_long(self, chunk: _Chunk, empty: np.ndarray) -> np.ndarray:
        """Mask of the records of a split chunk longer than the limit, each a bad line."""
        assert chunk.starts is not None and chunk.ends is not None and chunk.lines is not None
        over = (chunk.ends - chunk.starts) > self.limits.max_line_bytes
        for i in np.flatnonzero(over & ~empty).tolist():
            s, e = int(chunk.starts[i]), int(chunk.ends[i])
            self._bad.append(self._long_line(int(chunk.lines[i]), chunk.data[s:s + _SAMPLE],
                                             e - s))
        return over

    def _long_line(self, line: int, sample: bytes | bytearray, size: int) -> BadLine:
        limit = self.limits.max_line_bytes
        return BadLine(line, f"{_show(sample[:_SAMPLE], self.codec)}… ({size:,} bytes)",
                       "line-too-long", f"the line is {size:,} bytes, longer than the limit "
                                        f"of {limit:,} (--max-line-bytes)")

    def _decode(self, data: bytes | bytearray, starts: np.ndarray, ends: np.ndarray,
                lines: np.ndarray) -> tuple[bytes | bytearray, np.ndarray]:
        """(UTF-8 bytes of the given records, mask of those that decode); a record that does
        not decode is a bad line. Records left out before (empty, over-long) stay out."""
        good = np.ones(len(starts), bool)
        if not len(starts):
            return b"", good
        gaps = np.flatnonzero(starts[1:] != ends[:-1]) + 1  # runs of adjacent records
        firsts = np.concatenate(([0], gaps)).tolist()
        lasts = np.concatenate((gaps - 1, [len(starts) - 1])).tolist()
        pieces: list[bytes | bytearray] = []
        for first, last in zip(firsts, lasts, strict=True):
            self._decode_span(data, starts, ends, lines, (first, last), good, pieces)
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), good

    def _decode_span(self, data: bytes | bytearray, starts: np.ndarray, ends: np.ndarray,
                     lines: np.ndarray, span: tuple[int, int], good: np.ndarray,
                     pieces: list[bytes | bytearray]) -> None:
        """Decode adjacent records; on a bad byte, reject its record and go on after it."""
        at, hi = int(starts[span[0]]), int(ends[span[1]])
        while at < hi:
            try:
                text = data[at:hi].decode(self.codec)
                pieces.append(data[at:hi] if self.codec == "utf-8" else text.encode())
                return
            except UnicodeDecodeError as exc:
                r = int(np.searchsorted(starts, at + exc.start, side="right")) - 1
                s, e = int(starts[r]), int(ends[r])
                if s > at:
                    head = data[at:s]
                    pieces.append(head if self.codec == "utf-8" else
                                  head.decode(self.codec).encode())
                good[r] = False
                raw = bytes(data[s:e]).rstrip(b"\r\n")  # shown as b'..', not bytearray(..)
                col = at + exc.start - s
                self._bad.append(BadLine(int(lines[r]), _show(raw, self.codec), "bad-encoding",
                                         f"byte {raw[col:col + 1]!r} at column {col + 1} is "
                                         f"not valid {self.codec.upper()} ({exc.reason})"
                                         + self._looks_like(data[s:s + (1 << 16)])))
                at = e

    def _looks_like(self, sample: bytes | bytearray) -> str:
        """``; the file looks like CP949 ...`` for a UTF-8 stream's first bad line (guessed
        once per stream from the bytes from that line on), else ``""``."""
        if self.codec != "utf-8":
            return ""
        if self._guess is None:
            from hubctl.encoding import convert_hint

            self._guess = "; " + convert_hint(bytes(sample), Path(self.path).name)
        return self._guess

    def _arrow(self, clean: bytes | bytearray, invalid: list[str], strict: bool = False,
               typed: bool = False) -> pa.Table:
        """Arrow's parse of clean bytes; ``strict`` lets its errors through (fast path);
        ``typed`` parses the columns of ``types`` to their types (an empty cell is then no
        number or time: the block fails and is read as text)."""
        def keep(row: Any) -> str:
            invalid.append(row.text)
            return "skip"

        nulls = self.empty_as_null
        names = [*self.names, "\x00trailing"] if self.trailing_field else self.names
        try:
            return pacsv.read_csv(
                pa.py_buffer(clean),
                read_options=pacsv.ReadOptions(column_names=names,
                                               block_size=max(len(clean) + 1, 1 << 16)),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter.decode(),
                                                 newlines_in_values=True,
                                                 # strict: a bad row fails the parse (its
                                                 # text may not decode: no handler for it)
                                                 invalid_row_handler=None if strict else keep),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: (self.types.get(n, pa.string()) if typed else pa.string())
                                  for n in self.names},
                    include_columns=self.names,
                    strings_can_be_null=nulls, quoted_strings_can_be_null=nulls,
                    null_values=[""] if nulls else []))
        except pa.ArrowInvalid as exc:
            if strict:
                raise
            raise InputError(f"cannot be read as CSV: {exc}", path=self.path,
                             hint="fix or remove the damaged part of the file") from None

    def _place_invalid(self, data: bytes | bytearray, starts: np.ndarray, ends: np.ndarray,
                       lines: np.ndarray, invalid: list[str], rows: int) -> np.ndarray:
        """Line numbers of the rows Arrow kept; the rows it skipped become bad lines. Arrow
        gives a skipped row's text, not where it was: it is found among the records of the
        same length, in order."""
        if not invalid and rows == len(lines):
            return lines.astype(np.int64)
        a = np.frombuffer(data, np.uint8)
        last = np.maximum(ends - 1, 0)
        trail = (a[last] == _NL).astype(np.int64)
        trail += (trail == 1) & (a[np.maximum(ends - 2, 0)] == _CR) & (ends - starts >= 2)
        lengths = ends - starts - trail
        skipped = np.zeros(len(starts), bool)
        after = 0  # records before this are placed
        for text in invalid:
            raw = text.encode() if self.codec == "utf-8" else text.encode(self.codec)
            same = np.flatnonzero(lengths[after:] == len(raw)) + after
            hit = next((int(i) for i in same.tolist()
                        if data[int(starts[i]):int(starts[i]) + len(raw)] == raw), None)
            if hit is None:  # not matched to a record (never expected): keep it counted
                self._bad.append(BadLine(0, text))
                continue
            skipped[hit] = True
            self._bad.append(BadLine(int(lines[hit]), text))
            after = hit + 1
        out = lines[~skipped].astype(np.int64)[:rows]
        if len(out) < rows:
            out = np.concatenate((out, np.zeros(rows - len(out), np.int64)))
        return out

    def _pad(self, table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """GTFS rule: a short row is padded with empty fields; a long row whose extra fields
        are all empty is cut to the header; others stay bad (``malformed-record``)."""
        width = len(self.names)
        padded: list[dict[str, str | None]] = []
        padded_lines: list[int] = []
        still: list[BadLine] = []
        for bad in self._bad:
            if bad.code != "malformed-record" or bad.detail != BadLine(0, "").detail:
                still.append(bad)
                continue
            values = next(csv.reader([bad.text]), [])
            if len(values) > width and any(v.strip() for v in values[width:]):
                still.append(bad._replace(detail=f"{len(values)} fields, more than the "
                                                 f"{width} the header names"))
                continue
            values = (values + [""] * width)[:width]
            padded.append({c: (v if v != "" else None) for c, v in zip(self.names, values,
                                                                         strict=True)})
            padded_lines.append(bad.line)
        self._bad[:] = still
        if not padded:
            return table, lines
        extra = pa.Table.from_pylist(padded, schema=self.schema)
        return (pa.concat_tables([table.cast(self.schema), extra]),
                np.concatenate((lines, np.asarray(padded_lines, np.int64))))


def _longest_line(breaks: np.ndarray, size: int) -> int:
    """Bytes of the longest line of a block of ``size`` bytes with line breaks at
    ``breaks`` (each line with its line break)."""
    if not len(breaks):
        return size
    return int(max(int(np.diff(breaks).max(initial=0)), int(breaks[0]) + 1,
                   size - int(breaks[-1]) - 1))


def _finite(table: pa.Table) -> bool:
    """True when every float cell of ``table`` is a finite number (Arrow reads ``nan`` and
    ``inf`` as floats; the text rules of :func:`hubctl.arrowkit.parse_numbers` do not)."""
    for column in table.columns:
        if pa.types.is_floating(column.type) and column.null_count == 0:
            if not pc.all(pc.is_finite(column)).as_py():
                return False
        elif pa.types.is_floating(column.type):
            return False
    return True


def _show(raw: bytes | bytearray, codec: str) -> str:
    """Raw bytes as text: what decodes as itself, the rest as ``\\xNN``."""
    return raw.decode(codec, "backslashreplace")


def _record_ends(a: np.ndarray, nl: np.ndarray, delimiter: int) -> tuple[np.ndarray, bool]:
    """Positions of the line breaks that end a record (those outside quoted fields), and
    whether the block ends inside a quoted field.

    Arrow's rules: a quote opens a quoted field only at the start of a field; inside one, a
    pair of quotes is a quote and a single one closes it. Counted over runs of quotes: a run
    of odd length opens or closes, except that a run in the middle of an unquoted field is
    text. Vectorised; a block with stray quotes is resolved one stray quote at a time.
    """
    q = np.flatnonzero(a == _QUOTE)
    if not len(q):
        return nl, False
    breaks = np.flatnonzero(np.diff(q) != 1) + 1
    run_start = q[np.concatenate(([0], breaks))]
    run_end = q[np.concatenate((breaks - 1, [len(q) - 1]))]
    odd = ((run_end - run_start) % 2) == 0
    toggles_start, toggles_end = run_start[odd], run_end[odd]
    before = np.where(toggles_start > 0, a[np.maximum(toggles_start - 1, 0)], _NL)
    at_field_start = (before == delimiter) | (before == _NL) | (before == _CR)
    live = np.ones(len(toggles_start), bool)
    for _ in range(_MAX_STRAY_PASSES):
        parity = (np.cumsum(live) - live) % 2  # 0 = unquoted before this run
        stray = np.flatnonzero(live & (parity == 0) & ~at_field_start)
        if not len(stray):
            break
        live[stray[0]] = False  # text, not a quote: the state after it is recomputed
    else:
        live = _sequential(live, at_field_start)
    closes = toggles_end[live]
    inside = np.searchsorted(closes, nl) % 2  # toggles before each line break
    return nl[inside == 0], bool(len(closes) % 2)


def _sequential(live: np.ndarray, at_field_start: np.ndarray) -> np.ndarray:
    """The quote state machine one run at a time (only for blocks with many stray quotes)."""
    out = np.zeros(len(live), bool)
    quoted = False
    for i, start in enumerate(at_field_start.tolist()):
        if quoted or start:
            out[i] = True
            quoted = not quoted
    return out


def open_csv(path: Path | str, encoding: str = "utf8", delimiter: str = ",", *,
             limits: CsvLimits = DEFAULT_LIMITS, block_size: int | None = None,
             handle: IO[bytes] | None = None, empty_as_null: bool = False,
             pad_short: bool = False, batch_rows: int | None = None,
             header_only_ok: bool = False,
             types: Mapping[str, pa.DataType] | None = None,
             span: Span | None = None) -> CsvStream:
    """Open a CSV for streaming; its header is read and checked here.

    ``handle`` reads from an open binary file instead (a zip member), which the stream then
    closes; ``path`` only names it in messages. ``batch_rows`` sizes the blocks from the mean
    line length of the first block, so that a batch holds about that many rows (else
    ``block_size`` bytes). A header that is not valid in ``encoding`` fails (``is not UTF-8
    text``); every later line that is not is rejected alone. ``span`` (from
    :func:`split_csv`) reads only the records of that byte range of the file, numbered by
    their line in the file (the header, the block size and the trailing-field rule still come
    from the file's start).
    """
    codec = "utf-8" if encoding.replace("-", "").lower() == "utf8" else encoding
    codecs.lookup(codec)
    where = str(path)
    try:
        f = handle if handle is not None else open(path, "rb")  # noqa: SIM115 - closed by stream
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=where) from None
    block = block_size or BATCH_ROWS * _BYTES_PER_ROW
    block = max(block, 1 << 16)
    stream = CsvStream(where, f, [], codec, delimiter.encode(), limits, block,
                       empty_as_null=empty_as_null, pad_short=pad_short,
                       header_only_ok=header_only_ok, types=dict(types or {}))
    try:
        stream.names = _header(stream)
        stream._handed = stream._read_total - len(stream._pending)  # the header's bytes
        _trailing_field(stream)
    except BaseException:
        stream.close()
        raise
    if batch_rows:
        sample = stream._pending
        per_row = len(sample) / sample.count(b"\n") if sample.count(b"\n") > 1 else \
            float(_BYTES_PER_ROW)
        stream.bytes_per_row = per_row
        stream.block_size = max(int(max(batch_rows, 1) * per_row * 0.97), 1 << 16)
    if span is not None:
        _to_span(stream, span)
    return stream


def _to_span(stream: CsvStream, span: Span) -> None:
    """Make ``stream`` (its header read) read the records of ``span`` only, with its end as
    the end of the file. A later range starts where the whole file's reading cut a block
    (:func:`split_csv` cuts nowhere else), and its reads keep the whole file's block
    alignment, so that it cuts the same blocks, hence the same batches, from there on."""
    data_start = stream._read_total - len(stream._pending)
    if span.start <= data_start:  # the file's first range: what follows the header
        stream._pending = stream._pending[:max(0, span.end - data_start)]
        stream._remaining = max(0, span.end - stream._read_total)
        return
    first, block = _first_cut(stream), stream.block_size
    aligned = first + max(0, -(-(span.start - first) // block)) * block  # the read it ended
    try:
        stream.handle.seek(span.start)
    except OSError as exc:
        stream.close()
        raise InputError(f"cannot read: {exc.strerror or exc}", path=stream.path) from None
    stream._pending, stream._eof = b"", False
    stream._read_total, stream._remaining = span.start, span.end - span.start
    stream._handed = stream._reported = 0  # the header's bytes count in the first range
    stream._next_line = span.first_line
    if aligned > span.start:  # what the whole file's reading held after this cut
        stream._pending = stream._read(aligned - span.start)


def _first_cut(stream: CsvStream) -> int:
    """The file offset at which a stream whose header was just read first cuts a block: the
    end of what it holds, or of one more block when it holds less than a block. Every later
    cut is at a whole number of blocks after it."""
    held = len(stream._pending)
    return stream._read_total + (0 if held >= stream.block_size else stream.block_size)


def split_csv(path: Path | str, size: int, *, limits: CsvLimits = DEFAULT_LIMITS,
              batch_rows: int | None = None, delimiter: str = ",") -> list[Span]:
    """Byte ranges of about ``size`` bytes that cover a CSV file, for ``open_csv(span=...)``
    with the same ``limits`` and ``batch_rows``: read in order, they give the rows, bad lines
    and line numbers of the whole file, in the same blocks.

    Each range ends where reading the whole file cuts a block: just after the line break that
    ends the last record of a block (the reader's own quote rules, :func:`_record_ends`: never
    inside a quoted field), so a range is at least a block (about ``batch_rows`` rows). One
    range (the whole file) for a file of at most ``size`` bytes, a compressed file (gzip,
    zip, bzip2, xz, zstd: read as one), or one whose header cannot be read (the reader then
    fails on it as usual). Past a quoted record longer than ``limits.max_line_bytes`` (which
    the reader rejects line by line) nothing is cut: the rest of the file is the last range.
    The file is read once, block by block: a search for line breaks, and a vectorised pass of
    the quote rules over the blocks that have quotes."""
    total = os.path.getsize(path)
    whole = [Span(0, total, 1)]
    if total <= size:
        return whole
    with open(path, "rb") as f:
        if f.read(6).startswith(_COMPRESSED):
            return whole
    try:  # where the records start and the blocks end (any codec reads the header's bytes)
        stream = open_csv(path, "latin-1", delimiter, limits=limits, batch_rows=batch_rows)
    except InputError:
        return whole
    start, line = stream._read_total - len(stream._pending), stream._next_line
    reads = (_first_cut(stream), stream.block_size)
    stream.close()
    n = max(1, round((total - start) / size))
    targets = [start + (total - start) * k // n for k in range(1, n)]
    cuts = _cuts(path, (start, line), reads, targets,
                 (limits.max_line_bytes, delimiter.encode()[0]))
    starts, ends = [(0, 1), *cuts], [offset for offset, _ in cuts] + [total]
    return [Span(s, e, first, i, len(starts))
            for i, ((s, first), e) in enumerate(zip(starts, ends, strict=True))]


def _cuts(path: Path | str, at: tuple[int, int], reads: tuple[int, int], targets: list[int],
          rules: tuple[int, int]) -> list[tuple[int, int]]:
    """(offset, line) of the first block cut at or after each target (a target that an
    earlier cut passed is dropped), reading from ``at``, the (offset, line) of the first
    record; ``reads``: (where the reader first cuts a block, the block size); ``rules``: (the
    record length limit, the delimiter byte)."""
    cuts: list[tuple[int, int]] = []
    pos, line = at
    end, block = reads
    pending = b""  # the bytes from pos (a record start, the last cut) to the last read's end
    with open(path, "rb") as f:
        f.seek(pos)
        while targets:
            more = f.read(max(0, end - pos - len(pending)))
            if not more:
                break
            data = pending + more
            ends, stop = _record_ends_in(data, *rules)
            if len(ends):  # the reader cuts its block after the last record it holds
                last = int(ends[-1])
                lines = data.count(b"\n", 0, last)
                if pos + last >= targets[0]:
                    cuts.append((pos + last, line + lines))
                    targets = [t for t in targets if t > pos + last]
                pos, line, pending = pos + last, line + lines, data[last:]
            else:
                pending = data
            if stop:
                break
            end += block
    return cuts


def _record_ends_in(data: bytes, limit: int, delimiter: int) -> tuple[np.ndarray, bool]:
    """Offsets just after the line breaks that end records in ``data`` (which starts at a
    record start; without a quote in it, only the last line break: every one ends a record),
    and True when nothing may be cut after them: a quoted record longer than ``limit`` (the
    reader rejects its first line and starts afresh on the next, which quote parity does not
    follow), or a line longer than ``limit`` that does not end in ``data``."""
    if data.find(b'"') < 0:
        last = data.rfind(b"\n") + 1  # a line with no end in sight: stop, not hold it all
        return np.array([last] if last else [], np.int64), not last and len(data) > limit
    a = np.frombuffer(data, np.uint8)
    ends = _record_ends(a, np.flatnonzero(a == _NL), delimiter)[0] + 1
    over = np.flatnonzero(np.diff(ends, prepend=0) > limit)
    if len(over):
        return ends[:over[0]], True
    return ends, not len(ends) and len(data) > limit


def _header(stream: CsvStream) -> list[str]:
    """Read the header record from the stream; what follows it stays pending."""
    limit = stream.limits.max_line_bytes
    data = b""
    window = 1 << 16  # the header is looked for in a window that grows only if it must
    while True:
        while len(data) < window and not stream._eof:
            data += stream._read(window - len(data))  # a first block is read after the sample
        a = np.frombuffer(data, np.uint8, min(window, len(data)))
        ends, _ = _record_ends(a, np.flatnonzero(a == _NL), stream.delimiter[0])
        if len(ends) or (stream._eof and window >= len(data)) or window > limit:
            break
        window *= 2
    end = int(ends[0]) + 1 if len(ends) else min(window, len(data))
    if end > limit:
        raise InputError(f"its header line is longer than {limit:,} bytes", path=stream.path,
                         record="line 1", hint="check that this is a CSV file; raise "
                                               "--max-line-bytes if the header is really that long")
    raw = data[:end]
    if not raw.strip():
        raise InputError("is empty (no header line)", path=stream.path,
                         hint="a CSV starts with a header line of column names")
    if not len(ends) and stream._eof and not stream.header_only_ok:
        # one line and no line break after it
        names = _names(raw, stream)
        raise InputError("has no records: one line (a header?) and nothing after it",
                         path=stream.path, record="line 1",
                         hint=f"the header read as: {', '.join(names) or '(empty)'}; check "
                              "that this is the right file and the export is complete")
    stream._pending = data[end:]
    stream._next_line = 2 + raw.count(b"\n") - 1
    return _names(raw, stream)


def _trailing_field(stream: CsvStream) -> None:
    """A trailing empty unnamed field is no field: a header that ends with a delimiter (an
    empty last name), or a first record with one field more than the header whose last field
    is empty (the Seoul transport-card exports end every row with a comma), makes every
    record's last field dropped. A record without it is then malformed."""
    names = stream.names
    if len(names) > 1 and names[-1] == "":
        stream.names = names[:-1]
        stream.trailing_field = True
        return
    first = stream._pending.split(b"\n", 1)
    if len(first) < 2 and not stream._eof:
        return
    try:
        line = first[0].decode(stream.codec).rstrip("\r")
    except UnicodeDecodeError:
        return
    fields = next(csv.reader([line], delimiter=stream.delimiter.decode()), [])
    if len(fields) == len(names) + 1 and fields[-1] == "" and len(names) > 0:
        stream.trailing_field = True


_COMPRESSION_NAMES = dict(zip(_COMPRESSED, ("gzip", "zip", "bzip2", "xz", "zstd"), strict=True))
_DECOMPRESS = {"gzip": "gzip -dc {f} > {s}.csv", "bzip2": "bzip2 -dc {f} > {s}.csv",
               "xz": "xz -dc {f} > {s}.csv", "zstd": "zstd -dc {f} > {s}.csv",
               "zip": "unzip -l {f} (what it holds), then unzip -p {f} NAME.csv > NAME.csv"}


def _compression(raw: bytes) -> str | None:
    """The compression whose magic bytes start ``raw`` (bzip2's with its block magic, as a
    header may start with "BZh"), else None."""
    kind = next((n for magic, n in _COMPRESSION_NAMES.items() if raw.startswith(magic)), None)
    if kind == "bzip2" and not (raw[3:4].isdigit() and raw[4:10] == b"1AY&SY"):
        return None
    return kind


def _names(raw: bytes, stream: CsvStream) -> list[str]:
    kind = _compression(raw)
    if kind is not None:  # not a text file at all: say so, not "convert it with iconv"
        name = Path(stream.path).name
        how = _DECOMPRESS[kind].format(f=name, s=name.split(".")[0] or "data")
        raise InputError(f"is compressed ({kind}), not CSV text", path=stream.path,
                         hint=f"decompress it first and give the CSV, e.g. {how}")
    try:
        text = raw.decode(stream.codec)
    except UnicodeDecodeError:
        if stream.codec == "utf-8":
            from hubctl.encoding import convert_hint

            raise InputError("is not UTF-8 text", path=stream.path, hint=convert_hint(
                raw + stream._pending, Path(stream.path).name)) from None
        raise InputError(f"is not {stream.codec} text", path=stream.path) from None
    text = text.lstrip("\ufeff").rstrip("\r\n")
    width = text.count(stream.delimiter.decode()) + 1
    limit = stream.limits.max_columns
    if width > limit:
        raise InputError(f"its header has {width:,} columns, more than the limit of {limit:,}",
                         path=stream.path, record="line 1",
                         hint="check the delimiter and that this is the right file; raise "
                              "--max-columns if the file really is that wide")
    return [n.strip() for n in next(csv.reader([text], delimiter=stream.delimiter.decode()), [])]


def read_whole(path: Path | str, *, limits: CsvLimits = DEFAULT_LIMITS,
               encoding: str = "utf8") -> tuple[pa.Table, np.ndarray]:
    """A small side file (stations, zones, meters, sites, a facility list) read whole: its
    text table and the file line of each row. A bad line fails it, naming the line: such a
    file should be fixed, not half used."""
    stream = open_csv(path, encoding, limits=limits)
    table = stream.read_all()
    bad = stream.take_invalid()
    if bad:
        more = f" ({len(bad)} such lines)" if len(bad) > 1 else ""
        raise InputError(f"{bad[0].code}: {bad[0].detail}{more}", path=str(path),
                         record=f"line {bad[0].line}" if bad[0].line else None,
                         hint="fix the file: a side file must be complete")
    return table, stream.lines


def require_columns(path: Path | str, have: Sequence[str], need: Iterable[str]) -> None:
    """Fail with the missing column names when a CSV lacks required columns."""
    missing = [c for c in need if c not in have]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; the header has {', '.join(have)}",
            path=str(path), record="line 1",
            hint="check that this is the right file for this adapter")


def add_malformed(batch: Batch, entity_type: str, path: Path | str,
                  invalid: Iterable[BadLine]) -> None:
    """Count the lines a :class:`CsvStream` kept out in ``batch``, each as a reject with
    its reason code (malformed-record, bad-encoding or line-too-long)."""
    rejects = [Reject(entity_type, bad.text, [reason(bad.code, detail=bad.detail)],
                      file=str(path), record=f"line {bad.line}" if bad.line else "")
               for bad in invalid]
    batch.rejects += rejects
    batch.records += len(rejects)
