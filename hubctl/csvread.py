"""Streaming CSV reading for adapters: every column as text, bounded batches, clear errors."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from hubctl.adapter import BATCH_ROWS, Batch
from hubctl.errors import InputError
from hubctl.rejects import Reject, reason

__all__ = ["CsvStream", "add_malformed", "open_csv", "require_columns"]

_BYTES_PER_ROW = 64  # block size = BATCH_ROWS rows of a typical sensor CSV


class CsvStream:
    """A streaming CSV reader with every column as text, and the rows it could not parse."""

    def __init__(self, reader: pacsv.CSVStreamingReader, invalid: list[tuple[int, str]]) -> None:
        self.reader = reader
        self.schema = reader.schema
        self._invalid = invalid

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return iter(self.reader)

    def read_all(self) -> pa.Table:
        """The whole file (for small side files such as station lists)."""
        return self.reader.read_all()

    def take_invalid(self) -> list[tuple[int, str]]:
        """Rows skipped since the last call: (line number or 0, raw text)."""
        out = list(self._invalid)
        self._invalid.clear()
        return out


def open_csv(path: Path, encoding: str = "utf8", delimiter: str = ",") -> CsvStream:
    """Open a CSV for streaming; a row with the wrong number of fields is kept aside."""
    try:
        with open(path, "rb") as f:
            header = f.readline()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if encoding == "utf8":
        try:
            header.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("is not UTF-8 text", path=str(path),
                             hint="convert it first, e.g. iconv -f cp949 -t utf-8") from None
    codec = "utf-8" if encoding == "utf8" else encoding
    text = header.decode(codec, "replace").lstrip("\ufeff")
    names = [n.strip() for n in next(csv.reader([text], delimiter=delimiter), [])]
    invalid: list[tuple[int, str]] = []

    def _keep(row: Any) -> str:
        invalid.append((row.number or 0, row.text))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BATCH_ROWS * _BYTES_PER_ROW,
                                           encoding=encoding, skip_rows=1, column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=_keep),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        if "Could not skip initial" in str(exc):  # one line and no line break after it
            raise InputError("has no records: one line (a header?) and nothing after it",
                             path=str(path), record="line 1",
                             hint=f"the header read as: {', '.join(names) or '(empty)'}; check "
                                  "that this is the right file and the export is complete"
                             ) from None
        raise InputError(f"is not a readable CSV: {exc}", path=str(path)) from None
    return CsvStream(reader, invalid)


def require_columns(path: Path, have: Sequence[str], need: Iterable[str]) -> None:
    """Fail with the missing column names when a CSV lacks required columns."""
    missing = [c for c in need if c not in have]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; the header has {', '.join(have)}",
            path=str(path), record="line 1",
            hint="check that this is the right file for this adapter")


def add_malformed(batch: Batch, entity_type: str, path: Path | str,
                  invalid: Iterable[tuple[int | None, str]]) -> None:
    """Count CSV lines with the wrong number of fields in ``batch``, each as a reject."""
    rejects = [Reject(entity_type, text, [reason(
        "malformed-record", detail="wrong number of fields for the header")],
        file=str(path), record=f"line {line}" if line else "") for line, text in invalid]
    batch.rejects += rejects
    batch.records += len(rejects)
