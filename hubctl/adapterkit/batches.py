"""The one CSV batch loop: blocks of the shared reader (:mod:`hubctl.csvread`) through an
adapter's conversion, one bounded Batch per block.

Per block it reports progress, gives the conversion a fresh :class:`Problems` (with the
block's file line numbers), and adds the lines the reader kept out (wrong field count, bad
encoding, over-long) to the batch as rejects, so one bad line costs one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from hubctl.adapter import Batch, ReadContext, Span
from hubctl.adapterkit.columns import check_mapped
from hubctl.adapterkit.problems import Problems
from hubctl.csvread import DEFAULT_LIMITS, CsvLimits, CsvStream, add_malformed, open_csv, read_whole
from hubctl.errors import InputError

__all__ = ["csv_batches", "field_batches", "open_text_csv", "read_text_csv"]


def csv_batches(stream: CsvStream, path: Path | str, type_name: str, ctx: ReadContext,
                convert: Callable[[pa.Table, Problems], Batch],
                names: Sequence[str] | None = None) -> Iterator[Batch]:
    """Each block of ``stream`` (its columns renamed to ``names`` when given), in pieces of at
    most ``ctx.batch_rows`` rows, through ``convert``, which fills the piece's Problems and
    returns its Batch."""
    size = max(1, ctx.batch_rows)
    for block in stream:
        ctx.advance(stream.take_read_bytes())
        table = pa.Table.from_batches([block])
        if names is not None:
            table = table.rename_columns(list(names))
        lines = stream.lines
        for start in range(0, max(table.num_rows, 1), size):
            piece = table.slice(start, size) if table.num_rows > size else table
            out = convert(piece, Problems(piece, type_name, path,
                                          lines[start:start + piece.num_rows]))
            if start == 0:
                add_malformed(out, type_name, path, stream.take_invalid())
            yield out


def field_names(header: Sequence[str], fields: dict[str, str],
                aliases: dict[str, str] | None = None) -> list[str]:
    """Header names after the mapping ``{field: column}`` (else case-folded, then common
    aliases resolved)."""
    by_column = {column: field for field, column in fields.items()}
    folded = [n.strip().lower() for n in header]
    return [by_column[n] if n in by_column else (aliases or {}).get(f, f)
            for n, f in zip(header, folded, strict=True)]


def field_batches(path: Path, mapping: dict[str, str], type_name: str,
                  need: Callable[[Path, list[str]], None], ctx: ReadContext,
                  convert: Callable[[pa.Table, Problems], Batch],
                  aliases: dict[str, str] | None = None,
                  limits: CsvLimits = DEFAULT_LIMITS,
                  rename: Callable[[Sequence[str]], dict[str, str]] | None = None,
                  cp949: bool = False) -> Iterator[Batch]:
    """:func:`csv_batches` of a CSV whose columns are renamed to the adapter's field names:
    by ``mapping`` (``{field: column}``, from ``--map``), then ``rename(header)`` for the
    fields and columns ``mapping`` leaves, then case-folded ``aliases``; ``need`` checks the
    renamed header before any row is read. ``cp949``: a header that is not UTF-8 is read as
    CP949 (:func:`open_text_csv`; Korean public data)."""
    stream = open_text_csv(path, limits=limits) if cp949 else open_csv(path, limits=limits)
    header = stream.schema.names
    check_mapped(path, header, mapping)
    fields = dict(mapping)
    if rename is not None:
        for field, column in rename(header).items():
            if field not in fields and column not in fields.values():
                fields[field] = column
    names = field_names(header, fields, aliases)
    need(path, names)
    yield from csv_batches(stream, path, type_name, ctx, convert, names)


def _not_utf8(exc: InputError) -> bool:
    return "UTF-8" in str(exc)


def open_text_csv(path: Path, limits: CsvLimits = DEFAULT_LIMITS, *,
                  batch_rows: int | None = None, span: Span | None = None) -> CsvStream:
    """:func:`hubctl.csvread.open_csv`, falling back to CP949 (common for Korean public data)
    when the file's header is not UTF-8; ``batch_rows`` and ``span`` as there."""
    try:
        return open_csv(path, limits=limits, batch_rows=batch_rows, span=span)
    except InputError as exc:
        if not _not_utf8(exc):
            raise
        return open_csv(path, encoding="cp949", limits=limits, batch_rows=batch_rows,
                        span=span)


def read_text_csv(path: Path, limits: CsvLimits = DEFAULT_LIMITS) -> pa.Table:
    """A small CSV (a list of places) as one text table, with the CP949 fallback of
    :func:`open_text_csv`."""
    try:
        return read_whole(path, limits=limits)[0]
    except InputError as exc:
        if not _not_utf8(exc):
            raise
        return read_whole(path, limits=limits, encoding="cp949")[0]
