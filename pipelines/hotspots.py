"""Hotspots of events on a square grid: counts per cell and time band, and the Getis-Ord Gi*
statistic (z-score and two-sided p-value) of every cell.

The study area is every cell of the bounding box of the events (cells without events count as
zeros, as they must for Gi*). Neighbour weights are binary: a cell and the cells within
``rings`` steps of it in both directions (queen contiguity, the cell itself included, as Gi*
requires), held as a :mod:`scipy.sparse` matrix, so the statistic for every cell and band is
one sparse product. With x the counts, n cells, W_i = sum_j w_ij, S1_i = sum_j w_ij^2,
mean X and standard deviation S (population form):

    Gi*_i = (sum_j w_ij x_j - X W_i) / (S sqrt((n S1_i - W_i^2) / (n - 1)))

which is asymptotically standard normal (Getis & Ord 1992; Ord & Getis 1995).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.special import ndtr

from hubctl.errors import UsageError
from hubctl.pipelines.geo import cell_index, cell_keys

__all__ = ["MAX_CELLS", "Bands", "GridCounts", "gi_star", "grid_counts", "hotspots",
           "local_hours", "neighbour_weights", "parse_bands"]

MAX_CELLS = 4_000_000  # cells in the study area's bounding box; beyond, use larger cells


@dataclass(frozen=True)
class Bands:
    """Time-of-day bands: names and the band of each local hour 0..23."""

    names: tuple[str, ...]
    of_hour: np.ndarray


def parse_bands(items: Sequence[str]) -> Bands:
    """Bands from ``HH-HH`` items (end exclusive; ``22-06`` wraps past midnight); they must
    cover each hour of the day exactly once."""
    of_hour = np.full(24, -1, dtype=np.int64)
    names: list[str] = []
    for item in items:
        try:
            start, end = (int(h) for h in item.strip().split("-"))
        except ValueError:
            raise UsageError(f"--param bands: {item!r} is not HH-HH",
                             hint="for example bands=00-06,06-12,12-18,18-24 or 22-06,06-22"
                             ) from None
        if not (0 <= start <= 23 and 1 <= end <= 24) or start == end % 24:
            raise UsageError(f"--param bands: {item!r} needs hours 0 <= start < 24, "
                             "0 < end <= 24 and start != end")
        hours = [h % 24 for h in range(start, end if end > start else end + 24)]
        if (of_hour[hours] >= 0).any():
            raise UsageError(f"--param bands: {item!r} overlaps another band")
        of_hour[hours] = len(names)
        names.append(f"{start:02d}-{end:02d}")
    if (of_hour < 0).any():
        missing = ", ".join(str(h) for h in np.flatnonzero(of_hour < 0))
        raise UsageError(f"--param bands: hours {missing} are in no band",
                         hint="the bands must cover the whole day, e.g. 00-06,06-12,12-18,18-24")
    return Bands(tuple(names), of_hour)


def local_hours(utc_us: np.ndarray, zone: tzinfo) -> np.ndarray:
    """Local hour of day (0..23) of UTC instants in microseconds."""
    instants = pa.array(np.asarray(utc_us, dtype=np.int64), pa.timestamp("us", tz=str(zone)))
    return np.asarray(pc.hour(instants).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class GridCounts:
    """Event counts on the dense grid of the study area (the events' bounding box)."""

    size: float
    ix0: int  # column of the grid's first cell
    iy0: int  # row of the grid's first cell
    width: int
    height: int
    counts: np.ndarray  # (cells, bands) float64, cell c = (ix0 + c // height, iy0 + c % height)
    cell_of_event: np.ndarray  # dense cell number of each event

    @property
    def n_cells(self) -> int:
        """Cells in the study area."""
        return self.width * self.height

    def cell_ix_iy(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid column and row of every dense cell."""
        c = np.arange(self.n_cells, dtype=np.int64)
        return self.ix0 + c // self.height, self.iy0 + c % self.height

    def keys(self) -> np.ndarray:
        """:func:`pipelines.geo.cell_keys` of every dense cell."""
        return cell_keys(*self.cell_ix_iy())


def grid_counts(x: np.ndarray, y: np.ndarray, band: np.ndarray, n_bands: int,
                size: float, weight: np.ndarray | None = None) -> GridCounts:
    """Counts (or summed weights) of events per cell and band on the bounding-box grid."""
    ix, iy = cell_index(x, y, size)
    if ix.size == 0:
        raise UsageError("no event with a position to put on the grid")
    ix0, iy0 = int(ix.min()), int(iy.min())
    width, height = int(ix.max()) - ix0 + 1, int(iy.max()) - iy0 + 1
    if width * height > MAX_CELLS:
        raise UsageError(f"the events span {width} x {height} cells of {size:g} m, more than "
                         f"{MAX_CELLS:,}", hint="use larger cells (--param cell_m=...) or "
                         "restrict the events to one city (--param "
                         "bbox=minlon,minlat,maxlon,maxlat)")
    cell = (ix - ix0) * height + (iy - iy0)
    w = np.ones(ix.size) if weight is None else np.asarray(weight, dtype=np.float64)
    flat = np.bincount(cell * n_bands + np.asarray(band, dtype=np.int64), weights=w,
                       minlength=width * height * n_bands)
    return GridCounts(size, ix0, iy0, width, height, flat.reshape(width * height, n_bands),
                      cell)


def neighbour_weights(width: int, height: int, rings: int = 1) -> sp.csr_matrix:
    """Binary weights of a width x height grid (cell c = column * height + row): each cell and
    every cell within ``rings`` columns and rows of it, the cell itself included."""
    cols, rows = np.divmod(np.arange(width * height, dtype=np.int64), height)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for dx in range(-rings, rings + 1):
        for dy in range(-rings, rings + 1):
            c2, r2 = cols + dx, rows + dy
            ok = (c2 >= 0) & (c2 < width) & (r2 >= 0) & (r2 < height)
            src.append(np.flatnonzero(ok))
            dst.append(c2[ok] * height + r2[ok])
    i, j = np.concatenate(src), np.concatenate(dst)
    n = width * height
    return sp.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))


def gi_star(counts: np.ndarray, weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(z, p) of Getis-Ord Gi* for every cell (rows) and band (columns) of ``counts``.

    p is two-sided from the standard normal. A band whose counts are all equal has z = 0,
    p = 1 everywhere.
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    mean = x.mean(axis=0)
    s = np.sqrt(np.maximum((x * x).mean(axis=0) - mean * mean, 0.0))
    w_sum = np.asarray(weights.sum(axis=1)).reshape(-1, 1)
    w_sq = np.asarray(weights.multiply(weights).sum(axis=1)).reshape(-1, 1)
    lag = weights @ x
    denom = s[None, :] * np.sqrt(np.maximum(n * w_sq - w_sum**2, 0.0) / max(n - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (lag - mean[None, :] * w_sum) / denom
    z = np.where(np.isfinite(z), z, 0.0)
    p = 2.0 * ndtr(-np.abs(z))
    return z, p


def hotspots(z: np.ndarray, p: np.ndarray, alpha: float, fdr: bool = False) -> np.ndarray:
    """Hot cells per band (column): z > 0 and p below ``alpha``; with ``fdr`` the
    Benjamini-Hochberg step-up over each band's cells controls the false-discovery rate at
    ``alpha`` instead (Gi* tests every cell, so plain p-values flag many cells by chance)."""
    hot = (z > 0) & (p < alpha)
    if not fdr:
        return hot
    out = np.zeros_like(hot)
    n = p.shape[0]
    for b in range(p.shape[1]):
        order = np.sort(p[:, b])
        passed = np.flatnonzero(order <= alpha * np.arange(1, n + 1) / n)
        if passed.size:
            out[:, b] = (z[:, b] > 0) & (p[:, b] <= order[passed[-1]])
    return out
