"""The one reject collector: the reasons of each bad record of one block, filled from
vectorised masks, so that Python touches only the rows that fail.

The rules, the same for every adapter:

* a record gets at most one reason per field: the first one flagged (a cell that does not
  parse is a type error, not also a missing value);
* a reject names its record by its file line (``line 12``) where the reader knows the lines,
  else by its key fields (``trip_id=T1, stop_sequence=3``), else by its row in the block;
* its raw form is the record's cells as a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.rejects import Reason, Reject, reason

__all__ = ["Problems", "line_numbers", "missing", "type_error"]


def _mask(arr: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """A boolean mask as numpy (null is false)."""
    if isinstance(arr, np.ndarray):
        return arr.astype(bool)
    filled = pc.fill_null(arr, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _text(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


class Problems:
    """Reasons per row of one block of an input (``table``), for records of ``type_name`` read
    from ``path``; ``lines`` are the file line numbers of the rows, when the reader knows
    them. ``rows`` maps a row index to its reasons (the engine's ``RowReasons``)."""

    def __init__(self, table: pa.Table | pa.RecordBatch, type_name: str = "",
                 path: Path | str = "", lines: np.ndarray | None = None) -> None:
        self.table, self.type_name, self.path, self.lines = table, type_name, path, lines
        self.rows: dict[int, list[Reason]] = {}

    def flag(self, mask: pa.Array | pa.ChunkedArray | np.ndarray,
             make: Callable[[int], Reason]) -> None:
        """Add ``make(i)`` to every row ``i`` where ``mask`` is true (null is false), unless
        the row has a reason for that field already."""
        m = _mask(mask)
        if not m.any():
            return
        for i in np.flatnonzero(m):
            found = self.rows.setdefault(int(i), [])
            r = make(int(i))
            if all(x.field != r.field for x in found):
                found.append(r)

    def add(self, i: int, reasons: Sequence[Reason]) -> None:
        """Add reasons found elsewhere (the quality gate's) to row ``i``."""
        self.rows.setdefault(int(i), []).extend(reasons)

    def parsed(self, name: str, parse: Callable[[pa.Array], tuple[pa.Array, Any]],
               expected: str) -> tuple[pa.Array, np.ndarray]:
        """Column ``name`` (all null when absent) through ``parse`` (values, bad mask); a
        cell it cannot read is a type error."""
        raw = _text(self.table, name)
        values, bad = parse(raw)
        bad = _mask(bad)
        self.flag(bad, type_error(name, raw, expected))
        return values, bad

    def flag_nul(self) -> None:
        """Reject rows holding a NUL character in any text cell."""
        for name in self.table.column_names:
            col = _text(self.table, name)
            if not pa.types.is_string(col.type):
                continue
            data = col.buffers()[2]
            if data is not None and not (np.frombuffer(data, np.uint8) == 0).any():
                continue  # no NUL byte anywhere in the column: nothing to look at
            self.flag(pc.match_substring(col, "\x00"), _nul(name))

    def cell(self, column: str, i: int) -> Any:
        """The raw value of a cell."""
        return self.table.column(column)[i].as_py()

    def bad(self) -> np.ndarray:
        """Mask of the rows with at least one reason."""
        out = np.zeros(self.table.num_rows, bool)
        if self.rows:
            out[list(self.rows)] = True
        return out

    def keep(self) -> pa.Array:
        """True for the rows without reasons."""
        return pa.array(~self.bad())

    def raw(self, i: int) -> str:
        """Row ``i`` as a JSON object of its cells: a reject's raw record."""
        return json.dumps({c: self.table.column(c)[i].as_py() for c in self.table.column_names},
                          ensure_ascii=False)

    def raw_column(self) -> pa.Array:
        """The raw record of each flagged row, null for the others (the ``_raw`` column of
        rows that go to the engine with their reasons as ``typed_bad``)."""
        out: list[str | None] = [None] * self.table.num_rows
        for i in self.rows:
            out[i] = self.raw(i)
        return pa.array(out, pa.string())

    def record(self, i: int, key: Sequence[str] = ()) -> str:
        """Where row ``i`` is in the input: its file line, else its key fields, else its row."""
        if self.lines is not None:
            return f"line {int(self.lines[i])}"
        named = [(k, self.cell(k, i)) for k in key if k in self.table.column_names]
        return ", ".join(f"{k}={v}" for k, v in named) or f"row {i + 1}"

    def record_column(self) -> pa.Array:
        """Where each row is in the input (``line N``, else ``row N``): the ``_record``
        column."""
        if self.lines is not None:
            return line_numbers(self.lines)
        rows = pc.cast(pa.array(np.arange(1, self.table.num_rows + 1)), pa.string())
        return pc.binary_join_element_wise(pa.scalar("row "), rows, "")

    def rejects(self, key: Sequence[str] = ()) -> list[Reject]:
        """One Reject per flagged row, in row order, with its raw record."""
        return [Reject(self.type_name, self.raw(i), self.rows[i], file=str(self.path),
                       record=self.record(i, key)) for i in sorted(self.rows)]


def line_numbers(lines: np.ndarray) -> pa.Array:
    """``line N`` texts for rows at file lines ``lines`` (the ``_record`` column)."""
    numbers = pc.cast(pa.array(np.asarray(lines, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar("line "), numbers, "")


def _nul(field: str) -> Callable[[int], Reason]:
    return lambda i: reason("malformed-record", field, detail=f"{field} contains a NUL character")


def missing(field: str) -> Callable[[int], Reason]:
    """A reason maker for a required field left empty."""
    return lambda i: reason("missing-required", field)


def type_error(field: str, values: pa.Array, expected: str) -> Callable[[int], Reason]:
    """A reason maker for a field whose text is not of the expected kind."""
    return lambda i: reason("type-error", field, value=values[i].as_py(), expected=expected)
