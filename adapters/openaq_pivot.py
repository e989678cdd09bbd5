"""OpenAQ's long-to-wide pivot: the good readings (one pollutant each) of a whole input are
held in compact numpy columns and pivoted once, at the end, into one AirQualityObserved row
per (station, time): the pivot's open keys are carried across CSV blocks and input files
whatever their order, so a fresh ingest only appends and never MERGEs.

Memory: about 25 bytes per held reading (station, time, pollutant, value, city); the pivot
copies them into 14 (a 32-bit sort key, the value and a 16-bit city code, when they fit),
freeing the held ones as it goes; the adapter bounds it (``openaq.FLUSH_ROWS``). Readings
are held in pages of :data:`PAGE` readings, not block by block: a page's columns are large
enough for the C allocator to give them their own mapping, so each goes back to the system
as soon as the pivot has copied it (blocks' small arrays stayed resident: 20 M readings
peaked 470 MB higher). The rows come out sorted by
(time, station), one commit's worth cut at day boundaries, so each commit writes whole date
partitions and never compares with the one before; each commit's rows come in slices of at
most ``batch_rows`` (``Batch.continues``), which the engine commits together.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hubctl.adapter import Batch
from hubctl.types import TIMESTAMP

__all__ = ["PAGE", "PIVOT_ROWS", "Held", "Readings"]

PAGE = 1 << 23
"""Readings per page of held readings: 32 MB and more per column (glibc maps allocations
from 32 MB on by themselves and unmaps them when freed)."""

PIVOT_ROWS = 2_000_000
"""Readings pivoted into one commit (about a million wide rows), cut at a day boundary."""

KEY_LIMIT = 2**62
"""Largest sort key (time slots x stations x pollutants); a wider input (irregular
microseconds over centuries) is sorted on its columns instead."""

_DAY = 86_400_000_000  # µs
_CHUNK = 1 << 18  # readings whose sort keys are worked out at a time (2 MB)


@dataclass
class Readings:
    """Good readings of one block as numpy columns: station (index into the station table),
    ts (µs UTC), attr (index into the pollutant columns), value (canonical unit), city (index
    into :attr:`Held.cities`, -1 for none)."""

    station: np.ndarray
    ts: np.ndarray
    attr: np.ndarray
    value: np.ndarray
    city: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, keep: np.ndarray) -> Readings:
        """The readings where ``keep`` is true."""
        return Readings(self.station[keep], self.ts[keep], self.attr[keep], self.value[keep],
                        self.city[keep])

    def head(self, n: int) -> Readings:
        """The first ``n`` readings (views)."""
        return Readings(self.station[:n], self.ts[:n], self.attr[:n], self.value[:n],
                        self.city[:n])

    @staticmethod
    def empty(n: int) -> Readings:
        """Room for ``n`` readings (unwritten pages cost no memory)."""
        return Readings(np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int8),
                        np.empty(n, np.float64), np.empty(n, np.int32))

    def put(self, at: int, src: Readings, start: int, end: int) -> None:
        """Copy ``src[start:end]`` to positions ``at``... of these readings."""
        k = end - start
        self.station[at:at + k] = src.station[start:end]
        self.ts[at:at + k] = src.ts[start:end]
        self.attr[at:at + k] = src.attr[start:end]
        self.value[at:at + k] = src.value[start:end]
        self.city[at:at + k] = src.city[start:end]


class Held:
    """Readings read but not yet pivoted, across blocks and input files, whatever their
    order.

    Each block is accounted as read when it is read (its records stay ``unreached`` until
    the pivoted rows are committed); :meth:`flush` pivots them at the end of the input, so a
    (station, hour) split across blocks or files becomes one appended row and a fresh ingest
    never MERGEs. Past ``limit`` held readings (bounded memory), those older than the newest
    block's first hour are committed early (a time-ordered input still never MERGEs), and
    past twice that, all of them: keys committed early can still come back later in an
    unsorted input, and the lake's upsert then merges them (the same result, slower).
    """

    def __init__(self, attrs: tuple[str, ...], type_name: str, extra: dict[str, str],
                 batch_rows: int) -> None:
        self.attrs, self.type_name, self.extra = attrs, type_name, extra
        self.batch_rows = batch_rows  # rows per Batch (ReadContext.batch_rows)
        self.parts: list[Readings] = []  # full pages (and what an early commit left)
        self.rows = 0
        self._page: Readings | None = None  # the page being filled: its first _used readings
        self._used = 0
        self._newest = 0  # the first time of the newest block
        self.file = ""
        self.cities: list[str] = []
        self._city_code: dict[str, int] = {}

    def city_codes(self, dictionary: list[str | None]) -> np.ndarray:
        """Codes in :attr:`cities` of a block's city dictionary (-1 for a null)."""
        out = np.empty(len(dictionary), np.int32)
        for i, name in enumerate(dictionary):
            if name is None:
                out[i] = -1
                continue
            code = self._city_code.get(name)
            if code is None:
                code = self._city_code[name] = len(self.cities)
                self.cities.append(name)
            out[i] = code
        return out

    def add(self, readings: Readings, file: str) -> None:
        """Hold the good readings of one block (copied into the page being filled)."""
        n = len(readings)
        if not n:
            return
        start = 0
        while start < n:
            if self._page is None:
                self._page, self._used = Readings.empty(PAGE), 0
            k = min(n - start, PAGE - self._used)
            self._page.put(self._used, readings, start, start + k)
            self._used += k
            start += k
            if self._used == PAGE:
                self.parts.append(self._page)
                self._page = None
        self.rows += n
        self.file = file
        self._newest = int(readings.ts.min())

    def flush(self, stations: pa.Table, limit: int | None = None) -> Iterator[Batch]:
        """Batches of pivoted rows: of every reading held when ``limit`` is None (the end of
        the input); else, once more than ``limit`` are held, of those older than the newest
        block's first hour (all of them past twice ``limit``)."""
        if not self.rows or (limit is not None and self.rows < limit):
            return
        held = self.parts + ([self._page.head(self._used)] if self._page is not None else [])
        keep: list[Readings] = []
        if limit is not None:
            later = [p.ts >= self._newest for p in held]
            kept = sum(int(m.sum()) for m in later)
            if kept * 2 < self.rows:
                keep = [p.take(m) for p, m in zip(held, later, strict=True)]
                held = [p.take(~m) for p, m in zip(held, later, strict=True)]
            elif self.rows < 2 * limit:
                return  # mostly open hours (an unsorted input): wait
        self._page = None  # in ``held`` now: the pivot frees each part once copied
        held, self.parts = [p for p in held if len(p)], [p for p in keep if len(p)]
        self.rows = sum(len(p) for p in self.parts)
        if held:
            yield from _Pivot(held, stations, self).batches()


class _Pivot:
    """One pivot of held readings: sorted once by (time, station, pollutant), then cut into
    batches. Readings that come in that order already (a time-ordered input) are not sorted:
    the batches then read their slices in place, without gathering through an order."""

    def __init__(self, parts: list[Readings], stations: pa.Table, held: Held) -> None:
        self.held, self.stations = held, stations
        self.n_st = max(stations.num_rows, 1)
        self.n_at = len(held.attrs)
        n = sum(len(p) for p in parts)
        self.lo = min(int(p.ts.min()) for p in parts)
        step = 0
        for p in parts:  # the time grid: e.g. hours, so that the sort key stays small
            step = int(np.gcd(step, np.gcd.reduce(p.ts - self.lo)))
        self.step = max(step, 1)
        slots = (max(int(p.ts.max()) for p in parts) - self.lo) // self.step + 1
        self.value = np.empty(n, np.float64)
        # city codes in 16 bits when they fit (the cities of a whole input are few)
        self.city = np.empty(n, np.int16 if len(held.cities) < 2**15 else np.int32)
        # One integer key per reading (time slot, station, pollutant), in 32 bits when it
        # fits (20 M readings: 80 MB less while the batches are written): time and station
        # are read back from it, so the held columns are freed as they are copied (14 bytes
        # per reading, 24 with 64-bit keys and more cities; the held pages take 25).
        self.ts: np.ndarray | None = None
        self.station: np.ndarray | None = None
        by_key = slots * self.n_st * self.n_at < KEY_LIMIT
        key: np.ndarray = np.empty(n, np.int32 if slots * self.n_st * self.n_at < 2**31
                                   else np.int64)
        chunk = np.empty(min(n, _CHUNK), np.int64)  # keys are worked out in 64 bits
        last = -1  # the key before this chunk
        if not by_key:  # an enormous time range: the columns are kept and sorted on
            self.ts, self.station = np.empty(n, np.int64), np.empty(n, np.int32)
        attr = None if by_key else np.empty(n, np.int8)
        at = 0
        ordered = by_key  # keys non-decreasing so far (checked page by page, while cached)
        while parts:
            p = parts.pop(0)
            k = len(p)
            self.value[at:at + k], self.city[at:at + k] = p.value, p.city
            for c in range(0, k, _CHUNK) if by_key else ():  # cache-sized chunks
                e = min(k, c + _CHUNK)
                dst = chunk[:e - c]
                np.subtract(p.ts[c:e], self.lo, out=dst)
                dst //= self.step
                dst *= self.n_st
                dst += p.station[c:e]
                dst *= self.n_at
                dst += p.attr[c:e]
                ordered = ordered and last <= dst[0] and not (dst[1:] < dst[:-1]).any()
                last = int(dst[-1])
                key[at + c:at + e] = dst
            if not by_key:
                assert self.ts is not None and self.station is not None and attr is not None
                self.ts[at:at + k], self.station[at:at + k] = p.ts, p.station
                attr[at:at + k] = p.attr
            at += k
            del p
        self.order: np.ndarray | None = None  # None: the keys are in order already
        if ordered:
            self.key = key
        elif by_key:
            order = np.argsort(key, kind="stable")  # near-linear on near-ordered input
            # positions fit in 32 bits below 2**31 readings: 4 bytes a reading less while the
            # batches are written
            self.order = order.astype(np.int32) if n < 2**31 else order
            del order
            self.key = key  # in input order: each batch gathers its slice (no sorted copy)
        else:  # sort on the columns, rank the (time, station) rows
            assert self.ts is not None and self.station is not None and attr is not None
            self.order = np.lexsort((attr, self.station, self.ts))
            s_ts, s_st = self.ts[self.order], self.station[self.order]
            new_row = np.concatenate(([0], (s_ts[1:] != s_ts[:-1]) | (s_st[1:] != s_st[:-1])))
            rank = np.empty(n, np.int64)  # the sorted rank, put back in input order
            rank[self.order] = np.cumsum(new_row, dtype=np.int64) * self.n_at + attr[self.order]
            self.key = rank

    def batches(self) -> Iterator[Batch]:
        """The pivoted rows, about :data:`PIVOT_ROWS` readings per commit, in batches of at
        most ``batch_rows`` rows (slices of one commit: ``Batch.continues``)."""
        n, start = len(self.key), 0
        while start < n:
            end = self._cut(start + PIVOT_ROWS)
            yield from self._batch(start, end).slices(self.held.batch_rows)
            start = end

    def _at(self, i: int) -> int:
        """The input position of the reading at sorted position ``i``."""
        return i if self.order is None else int(self.order[i])

    def _time(self, i: int) -> int:
        """The time of the reading at sorted position ``i``."""
        if self.ts is not None:
            return int(self.ts[self._at(i)])
        return self.lo + int(self.key[self._at(i)]) // (self.n_st * self.n_at) * self.step

    def _rows(self, key: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(time, station) of the rows whose sorted keys are ``key`` and first readings
        ``first``."""
        if self.ts is not None and self.station is not None:
            return self.ts[first], self.station[first]
        row = key // self.n_at
        return (self.lo + (row // self.n_st).astype(np.int64) * self.step,
                (row % self.n_st).astype(np.int32))

    def _cut(self, target: int) -> int:
        """A batch end at or after sorted position ``target``: the next day boundary, or the
        next time boundary if the day runs much longer."""
        n = len(self.key)
        if target >= n:
            return n
        t = self._time(target)
        day_end = bisect.bisect_left(range(n), (t // _DAY + 1) * _DAY, lo=target, key=self._time)
        if day_end - target <= PIVOT_ROWS:
            return day_end
        return bisect.bisect_left(range(n), t + 1, lo=target, key=self._time)

    def _batch(self, start: int, end: int) -> Batch:
        if self.order is None:  # in order: slices in place
            order = None
            key, values = self.key[start:end], self.value[start:end]
        else:
            order = self.order[start:end]
            key, values = self.key[order], self.value[order]
        n = len(key)
        new_cell = key[1:] != key[:-1]
        row_key = key // self.n_at
        new_row = np.empty(n, bool)
        new_row[0] = True
        np.not_equal(row_key[1:], row_key[:-1], out=new_row[1:])
        row_starts = np.flatnonzero(new_row)
        size = len(row_starts)
        dup = upd = 0
        if new_cell.all():  # no pollutant twice at a station and time: each reading a cell
            cell_row = np.cumsum(new_row, dtype=np.int64)
            cell_row -= 1
            cell_attr = key - row_key * self.n_at
            last = values
        else:  # the last reading of a cell wins; same value again: duplicate, else updated
            cell_starts = np.flatnonzero(np.concatenate(([True], new_cell)))
            cell_row = np.cumsum(new_row[cell_starts], dtype=np.int64)
            cell_row -= 1
            cell_attr = key[cell_starts] - row_key[cell_starts] * self.n_at
            counts = np.diff(np.append(cell_starts, n))
            last = values[cell_starts + counts - 1]
            repeated = counts > 1
            same = np.minimum.reduceat(values, cell_starts) == np.maximum.reduceat(
                values, cell_starts)
            dup = int((counts - 1)[repeated & same].sum())
            upd = int((counts - 1)[repeated & ~same].sum())
        # the first reading of each row in input order
        first = row_starts + start if order is None else np.minimum.reduceat(order, row_starts)
        times, station = self._rows(key[row_starts], first)
        at = pa.array(times).view(TIMESTAMP)
        city = self.city[first]
        cities = pa.array(self.held.cities, pa.string())
        columns: dict[str, pa.Array] = {}
        for j in np.flatnonzero(np.bincount(cell_attr, minlength=self.n_at)):
            mine = cell_attr == j
            rows = cell_row[mine]
            cell = np.full(size, np.nan)
            absent = np.ones(size, bool)
            cell[rows] = last[mine]
            absent[rows] = False
            columns[self.held.attrs[j]] = pa.array(cell, mask=absent)
        st = self.stations
        lon = st["lon"].to_numpy(zero_copy_only=False)
        lat = st["lat"].to_numpy(zero_copy_only=False)
        rows_table = pa.table({
            "id": _coded(station, st["aq_id"]), "observed_at": at, "dateObserved": at,
            "areaServed": _coded(city, cities),
            "lon": pa.array(lon[station]), "lat": pa.array(lat[station]),
            "refPointOfInterest": _coded(station, st["poi_id"]),
            **{name: _coded(np.zeros(size, np.int32), pa.array([value]))
               for name, value in self.held.extra.items()},
            "_records": pa.array(np.bincount(cell_row, minlength=size).astype(np.int64)),
            **columns,
        })
        return Batch(self.held.type_name, rows_table, self.held.file, 0, duplicate=dup,
                     updated=upd, cell_columns=self.held.attrs, distinct_keys=True)


def _coded(codes: np.ndarray, values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    """``values[codes]`` as a dictionary array (a negative code is null): the text is never
    copied per row, and the Parquet writer encodes each distinct value once."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    indices = pa.array(codes.astype(np.int32, copy=False), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, values)
