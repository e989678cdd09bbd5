"""Shared by the energy adapters: time parsing with a
time zone or a strptime format, energy units to kWh, and side files with coordinates (a meters
file, a sites file). Everything is vectorised over Arrow arrays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit import resolve_columns, text_column
from hubctl.arrowkit import blank, parse_numbers, parse_timestamps
from hubctl.csvread import read_whole
from hubctl.errors import InputError
from hubctl.localtime import local_to_utc
from hubctl.rejects import Reason
from hubctl.types import TIMESTAMP

__all__ = ["ENERGY_TO_KWH", "Places", "energy_factors", "flag_rows", "parse_times", "raw_row",
           "read_places"]

# Energy unit spellings (folded to lower case, no spaces) -> factor to kWh.
ENERGY_TO_KWH: dict[str, float] = {
    "kwh": 1.0, "kw·h": 1.0, "kw.h": 1.0, "kwhr": 1.0, "kwhrs": 1.0,
    "wh": 0.001, "w·h": 0.001, "whr": 0.001,
    "mwh": 1000.0, "gwh": 1_000_000.0,
    "mj": 1 / 3.6, "gj": 1000 / 3.6, "kj": 1 / 3600,
}
# UN/CEFACT codes (as NGSI-LD unitCode) for the same units.
_CODES = {"KWH": 1.0, "WHR": 0.001, "MWH": 1000.0, "GWH": 1_000_000.0, "3B": 1 / 3.6}
_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$|^Z$|^UTC$", re.IGNORECASE)


def parse_times(text: pa.Array, tz: str = "UTC", fmt: str | None = None
                ) -> tuple[pa.Array, pa.Array]:
    """(UTC timestamps, mask of present-but-unparseable cells).

    ``fmt`` is a strptime format (``%d/%m/%Y %H:%M``); without it ISO 8601 is expected.
    Texts without a zone are local times in ``tz``: an IANA name (``Europe/London``) or an
    offset (``+09:00``). Each distinct text is parsed once.
    """
    n = len(text)
    if n == 0:
        return pa.array([], TIMESTAMP), pa.array([], pa.bool_())
    encoded = pc.dictionary_encode(text)
    uniq, idx = encoded.dictionary, encoded.indices
    if fmt:
        missing = blank(uniq)
        naive = pc.strptime(pc.utf8_trim_whitespace(uniq), format=fmt, unit="us",
                            error_is_null=True)
        values = local_to_utc(naive, tz)
        bad = pc.and_(pc.invert(missing), pc.is_null(values))
    elif _OFFSET.match(tz.strip()):
        offset = tz.strip().upper()
        offset = "+00:00" if offset in ("Z", "UTC") else offset
        values, bad = parse_timestamps(uniq, offset)
    else:
        zoned = pc.fill_null(pc.match_substring_regex(
            pc.utf8_trim_whitespace(uniq), r"(Z|[+-]\d{2}(:?\d{2})?)$"), False)
        as_utc, bad = parse_timestamps(uniq, "+00:00")
        naive = pc.cast(pc.cast(as_utc, pa.int64()), pa.timestamp("us"))
        values = pc.if_else(zoned, as_utc, local_to_utc(naive, tz))
    return pc.take(values, idx), pc.fill_null(pc.take(bad, idx), False)


def energy_factors(units: pa.Array) -> pa.Array:
    """Factor to kWh for each unit text (null where the unit is not an energy unit)."""
    encoded = pc.dictionary_encode(pc.fill_null(units, ""))
    factors = [_factor(u) for u in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(factors, pa.float64()), encoded.indices)


def _factor(unit: str) -> float | None:
    text = unit.strip()
    if text in _CODES:
        return _CODES[text]
    return ENERGY_TO_KWH.get(text.lower().replace(" ", ""))


@dataclass
class Places:
    """Rows of a meters or sites file: a key, coordinates and an optional site name."""

    key: pa.Array
    lon: pa.Array
    lat: pa.Array
    site: pa.Array
    extra: dict[str, pa.Array]

    def lookup(self, keys: pa.Array) -> pa.Array:
        """Index into this file of each key (null where the key is not listed)."""
        return pc.index_in(keys, value_set=self.key)


PLACE_ALIASES = {"lat": ("latitude", "y", "coordinates.latitude"),
                 "lon": ("lng", "long", "longitude", "x", "coordinates.longitude"),
                 "site": ("site name", "location", "building", "district", "area")}


def read_places(path: Path, key: str, key_aliases: Sequence[str],
                extra: Sequence[str] = ()) -> Places:
    """A meters or sites CSV: ``key`` column (or an alias), ``lat``, ``lon``, optional ``site``.

    A key listed twice keeps its first row. Coordinates that are not numbers are an InputError
    naming the line (a side file is small and should be fixed, not half-used).
    """
    table, lines = read_whole(path)
    line_of = lines.tolist()
    aliases = {key: key_aliases, **{k: v for k, v in PLACE_ALIASES.items() if k != key},
               **{e: () for e in extra}}
    cols = resolve_columns(path, table.column_names, aliases, {}, [[key, "lat", "lon"]])
    keys = pc.utf8_trim_whitespace(text_column(table, cols[key]))
    lat, bad_lat = parse_numbers(text_column(table, cols["lat"]))
    lon, bad_lon = parse_numbers(text_column(table, cols["lon"]))
    for bad, name in ((bad_lat, "lat"), (bad_lon, "lon")):
        hits = np.flatnonzero(pc.fill_null(bad, False).to_numpy(zero_copy_only=False))
        if len(hits):
            i = int(hits[0])
            raise InputError(f"{cols[name]} {table.column(cols[name])[i].as_py()!r} is not a "
                             "number", path=str(path), record=f"line {line_of[i]}",
                             hint="fix the coordinates or leave the cell empty")
    _, first = np.unique(keys.to_numpy(zero_copy_only=False).astype(str), return_index=True)
    keep = pa.array(np.sort(first))
    site_col = cols.get("site") if key != "site" else None
    site = (text_column(table, site_col) if site_col else pa.nulls(table.num_rows, pa.string()))
    extras = {e: text_column(table, cols[e]).take(keep) for e in extra if e in cols}
    return Places(keys.take(keep), lon.take(keep), lat.take(keep), site.take(keep), extras)


def flag_rows(problems: dict[int, list[Reason]], mask: pa.Array,
              make: Callable[[int], Reason]) -> None:
    """Add ``make(i)`` to the problems of every row ``i`` where ``mask`` is true."""
    filled = pc.fill_null(mask, False)
    if filled.true_count == 0:
        return
    for i in np.flatnonzero(filled.to_numpy(zero_copy_only=False)):
        problems.setdefault(int(i), []).append(make(int(i)))


def raw_row(batch: pa.RecordBatch, i: int) -> str:
    """Row ``i`` of a text batch as JSON, for a reject's raw record."""
    return json.dumps({c: batch.column(c)[i].as_py() for c in batch.schema.names},
                      ensure_ascii=False)
