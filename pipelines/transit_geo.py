"""Spatial helpers of the transit pipelines: a local metric projection, walking catchments
(KD-tree pairs of demand points and stops), square grid cells and their clusters.

Everything is vectorised over numpy. The projection is equirectangular around the data's centre
(x east, y north, metres); over a city (tens of kilometres) its distance error stays well under
1 %, far less than the spread of walking distances a catchment radius stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from hubctl.geo import EARTH_RADIUS_M, haversine_m
from hubctl.pipelines.geo import LocalProjection

__all__ = [
    "EARTH_RADIUS_M",
    "Grid",
    "LocalProjection",
    "catchment_pairs",
    "cluster_cells",
    "haversine_m",
    "nearest",
    "projection_around",
    "to_xy",
]

def projection_around(lon: np.ndarray, lat: np.ndarray) -> LocalProjection:
    """pipelines/geo.py's projection centred on the middle of the points' bounding box, not
    snapped (so grid cells keep their anchor); (0, 0) when there is no point."""
    if len(lon) == 0:
        return LocalProjection(0.0, 0.0)
    return LocalProjection(float((np.min(lon) + np.max(lon)) / 2),
                           float((np.min(lat) + np.max(lat)) / 2))


def to_xy(proj: LocalProjection, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """An (n, 2) array of metres east and north of the projection's centre."""
    return np.column_stack(proj.to_xy(lon, lat))


def catchment_pairs(points: np.ndarray, stops: np.ndarray,
                    radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point index, stop index, distance m) of every point within ``radius`` of a stop,
    sorted by point then stop (deterministic)."""
    if len(points) == 0 or len(stops) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), np.zeros(0)
    found = cKDTree(points).sparse_distance_matrix(cKDTree(stops), radius,
                                                   output_type="ndarray")
    i = found["i"].astype(np.int64)
    j = found["j"].astype(np.int64)
    order = np.lexsort((j, i))
    return i[order], j[order], found["v"][order]


def nearest(points: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance m, target index) of the nearest target of each point (inf, -1 if none)."""
    if len(targets) == 0:
        return np.full(len(points), np.inf), np.full(len(points), -1, np.int64)
    dist, idx = cKDTree(targets).query(points, k=1)
    return np.asarray(dist, float), np.asarray(idx, np.int64)


@dataclass(frozen=True)
class Grid:
    """Square cells of ``size`` metres in a projection, anchored at its centre."""

    size: float

    def index(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column and row of the cell of each point."""
        return (np.floor(xy[:, 0] / self.size).astype(np.int64),
                np.floor(xy[:, 1] / self.size).astype(np.int64))

    def centres(self, col: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Cell centres in metres."""
        return np.column_stack([(col + 0.5) * self.size, (row + 0.5) * self.size])


def cluster_cells(col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Cluster label of each cell: cells touching by an edge or a corner share a label.
    Labels are numbered in order of each cluster's first cell (sorted by column, row)."""
    n = len(col)
    if n == 0:
        return np.zeros(0, np.int64)
    key = col * (1 << 32) + row
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for dc in (-1, 0, 1):
        for dr in (-1, 0, 1):
            if (dc, dr) <= (0, 0):
                continue  # each undirected neighbour pair once
            probe = (col + dc) * (1 << 32) + (row + dr)
            pos = np.clip(np.searchsorted(sorted_keys, probe), 0, n - 1)
            hit = sorted_keys[pos] == probe
            src.append(np.flatnonzero(hit))
            dst.append(order[pos[hit]])
    a, b = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber by first appearance in (col, row) order so labels do not depend on input order
    first = np.full(labels.max() + 1, n, np.int64)
    np.minimum.at(first, labels[order], np.arange(n))
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return rank[labels].astype(np.int64)
