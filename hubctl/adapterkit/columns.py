"""Which input column holds which field: the one ``--map COLUMN=FIELD`` parser, the check that
mapped columns exist, and header matching by folded names.

One orientation everywhere: a mapping is ``{field: column}`` (what the adapter needs → where
the file has it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import overload

import pyarrow as pa

from hubctl.errors import InputError, UsageError

__all__ = ["check_mapped", "fold", "parse_map", "resolve_columns", "text_column"]


def fold(name: str) -> str:
    """A header folded for matching: lower case, no spaces, dots, dashes or underscores."""
    return re.sub(r"[\s._\-()/:#]+", "", name.strip().lower())


def parse_map(pairs: Iterable[str] | None, fields: Iterable[str], what: str = "",
              option: str = "--map") -> dict[str, str]:
    """``COLUMN=FIELD`` pairs as ``{field: column}``.

    The last ``=`` splits a pair, so a column name may hold one. A pair without both sides, or
    a field not among ``fields``, is a UsageError (``what`` names the kind of field in the
    message: "'x' is not a call field").
    """
    known = list(fields)
    kind = f"{what} field" if what else "field"
    out: dict[str, str] = {}
    for pair in pairs or ():
        column, sep, field = str(pair).rpartition("=")
        column, field = column.strip(), field.strip()
        if not sep or not column or not field:
            raise UsageError(f"{option} {pair!r}: write it as COLUMN=FIELD, e.g. "
                             f"{option} 'Some Column={known[0]}'")
        if field not in known:
            raise UsageError(f"{option} {pair!r}: {field!r} is not a {kind}",
                             hint=f"fields: {', '.join(known)}")
        out[field] = column
    return out


def check_mapped(path: Path | str, header: Sequence[str], mapping: Mapping[str, str],
                 hint: str = "check --map against the file") -> None:
    """An InputError naming the columns of ``mapping`` that ``header`` lacks."""
    missing = sorted({c for c in mapping.values() if c not in header})
    if missing:
        raise InputError(f"no column {', '.join(repr(m) for m in missing)} in the header; "
                         f"the header has {', '.join(header)}", path=str(path),
                         record="line 1", hint=hint)


def resolve_columns(path: Path, header: Sequence[str], aliases: Mapping[str, Sequence[str]],
                    mapping: Mapping[str, str], required: Sequence[Sequence[str]]
                    ) -> dict[str, str]:
    """{field: header column} from ``--map`` first, then the aliases of each field (matched
    by :func:`fold`).

    ``required`` lists alternatives: each inner sequence needs all of its fields, and one of
    the sequences must be complete (e.g. ``[["timestamp"], ["date", "time"]]``).
    """
    check_mapped(path, header, mapping)
    by_fold = {fold(h): h for h in header}
    out: dict[str, str] = dict(mapping)
    taken = set(out.values())
    for field, names in aliases.items():
        if field in out:
            continue
        for name in (field, *names):
            found = by_fold.get(fold(name))
            if found is not None and found not in taken:
                out[field] = found
                taken.add(found)
                break
    for group in required:
        missing = [f for f in group if f not in out]
        if missing and not any(all(f in out for f in alt) for alt in required if alt != group):
            need = " or ".join("+".join(alt) for alt in required if alt)
            raise InputError(
                f"no column for {', '.join(missing)} (needs {need}); the header has "
                f"{', '.join(header)}", path=str(path), record="line 1",
                hint=f"name the column with --map COLUMN={missing[0]}")
    return out


@overload
def text_column(table: pa.Table | pa.RecordBatch, column: str) -> pa.Array: ...


@overload
def text_column(table: pa.Table | pa.RecordBatch, column: None) -> None: ...


@overload
def text_column(table: pa.Table | pa.RecordBatch, column: str | None) -> pa.Array | None: ...


def text_column(table: pa.Table | pa.RecordBatch, column: str | None) -> pa.Array | None:
    """A text column as one Arrow array (None when the column is not mapped)."""
    if column is None:
        return None
    arr = table.column(column)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    return arr
