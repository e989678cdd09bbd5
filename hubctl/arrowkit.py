"""Vectorised parsing of text columns (CSV input) into typed Arrow arrays.

Each parser returns the typed array (null where the text is missing or bad) and a mask of the
cells whose text was present but did not parse, so adapters can reject exactly those records.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.types import TIMESTAMP

__all__ = ["MISSING", "blank", "parse_numbers", "parse_timestamps"]

# Texts that mean "no value" in published data.
MISSING = ["", "-", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_NUMBER = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
_ISO = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
        r"\s*(Z|[+-]\d{2}(:?\d{2})?)?$")
_HAS_ZONE = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def blank(text: pa.Array) -> pa.Array:
    """True where a text cell means 'no value' (null, empty, '-', NA, ...)."""
    stripped = pc.utf8_trim_whitespace(text)
    return pc.or_(pc.is_null(text),
                  pc.fill_null(pc.is_in(stripped, value_set=pa.array(MISSING)), True))


def parse_numbers(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(float64 values, mask of present-but-not-numeric cells)."""
    if pa.types.is_floating(text.type) or pa.types.is_integer(text.type):
        return pc.cast(text, pa.float64()), _none(len(text))
    missing = blank(text)
    ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    bad = pc.and_(pc.invert(ok), pc.invert(missing))
    clean = pc.if_else(ok, pc.utf8_trim_whitespace(text), pa.scalar(None, pa.string()))
    return pc.cast(clean, pa.float64()), bad


def parse_timestamps(text: pa.Array, assume_offset: str = "+00:00") -> tuple[pa.Array, pa.Array]:
    """(UTC timestamps, mask of present-but-unparseable cells).

    ISO 8601 with ``T`` or a space; texts without a zone get ``assume_offset`` (the source's
    time zone, e.g. ``+09:00`` for Korea).
    """
    if pa.types.is_timestamp(text.type):
        return pc.cast(text, TIMESTAMP), _none(len(text))
    if len(text) > 4096:  # sensor data repeats its timestamps: parse each distinct text once
        encoded = pc.dictionary_encode(text).combine_chunks() if isinstance(
            text, pa.ChunkedArray) else pc.dictionary_encode(text)
        if len(encoded.dictionary) < len(text) // 4:
            values, bad = parse_timestamps(encoded.dictionary, assume_offset)
            idx = encoded.indices
            return pc.take(values, idx), pc.fill_null(pc.take(bad, idx), False)
    missing = blank(text)
    trimmed = pc.utf8_trim_whitespace(text)
    ok = pc.fill_null(pc.match_substring_regex(trimmed, _ISO), False)
    has_zone = pc.fill_null(pc.match_substring_regex(trimmed, _HAS_ZONE), False)
    date_only = pc.equal(pc.utf8_length(trimmed), 10)
    fixed = pc.if_else(date_only, pc.binary_join_element_wise(trimmed, "T00:00:00", ""), trimmed)
    zoned = pc.if_else(has_zone, fixed, pc.binary_join_element_wise(fixed, assume_offset, ""))
    zoned = pc.replace_substring_regex(zoned, r"\s*Z$", "+00:00")
    zoned = pc.replace_substring_regex(zoned, r"\s+([+-]\d{2})", r"\1")
    zoned = pc.replace_substring_regex(zoned, r"^(\d{4}-\d{2}-\d{2}) ", r"\1T")
    zoned = pc.replace_substring_regex(zoned, r"T(\d{2}:\d{2})([+-])", r"T\1:00\2")
    clean = pc.if_else(ok, zoned, pa.scalar(None, pa.string()))
    try:
        values = pc.cast(clean, TIMESTAMP)
    except pa.ArrowInvalid:  # matches the pattern but is no date (month 13): one by one
        values = pa.array([_one(t) for t in clean.to_pylist()], TIMESTAMP)
    bad = pc.and_(pc.invert(missing), pc.is_null(values))
    return values, bad


def _none(n: int) -> pa.Array:
    """A mask of ``n`` false cells (nothing bad in an already typed column)."""
    return pa.array(np.zeros(n, dtype=bool))


def _one(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None
