"""Side files of places: a small CSV that gives coordinates (and a site name) to the keys a
main input names, such as a meters file for meter readings or a sites file for charging
sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit.columns import resolve_columns, text_column
from hubctl.arrowkit import parse_numbers
from hubctl.csvread import read_whole
from hubctl.errors import InputError

__all__ = ["Places", "read_places"]


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
