"""Gi* against the textbook formula on a tiny grid; grid counts, bands and local hours."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from hubctl.errors import UsageError
from hubctl.pipelines.geo import (
    LocalProjection,
    cell_keys,
    haversine_m,
    projection_for,
    split_cell_keys,
)
from hubctl.pipelines.hotspots import (
    gi_star,
    grid_counts,
    local_hours,
    neighbour_weights,
    parse_bands,
)


def _direct_gi(grid: np.ndarray) -> np.ndarray:
    """Gi* cell by cell with explicit loops (Getis & Ord 1992, Ord & Getis 1995)."""
    width, height = grid.shape
    x = grid.reshape(-1).astype(float)
    n = len(x)
    mean = x.sum() / n
    s = math.sqrt((x**2).sum() / n - mean**2)
    out = np.zeros((width, height))
    for c in range(width):
        for r in range(height):
            lag = w_sum = 0.0
            for c2 in range(width):
                for r2 in range(height):
                    if abs(c2 - c) <= 1 and abs(r2 - r) <= 1:
                        lag += grid[c2, r2]
                        w_sum += 1.0
            denom = s * math.sqrt((n * w_sum - w_sum**2) / (n - 1))
            out[c, r] = (lag - mean * w_sum) / denom
    return out


def test_gi_star_equals_the_direct_formula_on_a_tiny_grid() -> None:
    rng = np.random.default_rng(11)
    grid = rng.poisson(2.0, (5, 4)).astype(float)
    grid[1, 1] = grid[1, 2] = grid[2, 1] = 12.0  # a cluster
    w = neighbour_weights(5, 4)
    z, p = gi_star(grid.reshape(-1), w)
    direct = _direct_gi(grid)
    assert np.allclose(z[:, 0], direct.reshape(-1))
    assert np.allclose(p[:, 0], [math.erfc(abs(v) / math.sqrt(2)) for v in z[:, 0]])
    hottest = int(np.argmax(z[:, 0]))
    assert divmod(hottest, 4) in ((1, 1), (1, 2), (2, 1), (2, 2))


def test_gi_star_on_several_bands_and_a_flat_band() -> None:
    rng = np.random.default_rng(5)
    a = rng.poisson(3.0, (4, 4)).astype(float)
    counts = np.column_stack([a.reshape(-1), np.full(16, 2.0)])
    z, p = gi_star(counts, neighbour_weights(4, 4))
    assert np.allclose(z[:, 0], _direct_gi(a).reshape(-1))
    assert (z[:, 1] == 0).all() and (p[:, 1] == 1).all()


def test_neighbour_weights_count_edges_and_corners() -> None:
    w = neighbour_weights(3, 3)
    sums = np.asarray(w.sum(axis=1)).reshape(3, 3)
    assert sums.tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    assert neighbour_weights(5, 5, rings=2).sum(axis=1).max() == 25


def test_grid_counts_by_cell_and_band() -> None:
    x = np.array([10.0, 20.0, 260.0, -5.0])
    y = np.array([10.0, 30.0, 10.0, 10.0])
    band = np.array([0, 1, 0, 0])
    g = grid_counts(x, y, band, 2, 250.0)
    assert (g.width, g.height, g.ix0, g.iy0) == (3, 1, -1, 0)
    assert g.counts.tolist() == [[1, 0], [1, 1], [1, 0]]
    ix, iy = g.cell_ix_iy()
    assert ix.tolist() == [-1, 0, 1] and iy.tolist() == [0, 0, 0]


def test_bands_cover_the_day_and_wrap_midnight() -> None:
    b = parse_bands(["22-06", "06-22"])
    assert b.names == ("22-06", "06-22")
    assert b.of_hour[[23, 0, 5, 6, 21]].tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(UsageError, match="in no band"):
        parse_bands(["00-12"])
    with pytest.raises(UsageError, match="overlaps"):
        parse_bands(["00-13", "12-24"])
    with pytest.raises(UsageError, match="is not HH-HH"):
        parse_bands(["night"])


def test_local_hours_follow_daylight_saving() -> None:
    la = ZoneInfo("America/Los_Angeles")
    times = [datetime(2018, 3, 11, 9, 30, tzinfo=UTC), datetime(2018, 3, 11, 10, 30, tzinfo=UTC),
             datetime(2018, 7, 1, 0, 0, tzinfo=UTC)]
    us = np.array([int(t.timestamp()) * 1_000_000 for t in times])
    assert local_hours(us, la).tolist() == [1, 3, 17]


def test_local_hours_in_a_half_hour_zone() -> None:
    # 10:45 UTC is 16:15 in Kolkata (+05:30): flooring to the UTC hour first would give 15
    us = np.array([int(datetime(2024, 1, 1, 10, 45, tzinfo=UTC).timestamp()) * 1_000_000])
    assert local_hours(us, ZoneInfo("Asia/Kolkata")).tolist() == [16]


def test_geo_helpers() -> None:
    proj = projection_for(np.array([-122.31, -122.23]), np.array([37.84, 37.91]))
    assert (proj.lon0, proj.lat0) == (-122.25, 37.9)
    x, y = proj.to_xy(np.array([-122.26]), np.array([37.87]))
    lon, lat = proj.to_lonlat(x, y)
    assert np.allclose([lon[0], lat[0]], [-122.26, 37.87])
    d = haversine_m(-122.25, 37.9, -122.26, 37.87)
    assert abs(math.hypot(x[0], y[0]) - d) / d < 0.005
    keys = cell_keys(np.array([-3, 0, 7]), np.array([5, -2, 0]))
    assert [a.tolist() for a in split_cell_keys(keys)] == [[-3, 0, 7], [5, -2, 0]]
    assert isinstance(proj, LocalProjection)


def test_cell_keys_round_trip_at_the_extremes() -> None:
    lim = 1 << 30
    edge = np.array([-lim, -lim + 1, -4_294_967_296 // 8, -1, 0, 1, 4_294_967_296 // 8,
                     lim - 2, lim - 1], dtype=np.int64)
    ix, iy = (a.reshape(-1) for a in np.meshgrid(edge, edge, indexing="ij"))
    keys = cell_keys(ix, iy)
    back_x, back_y = split_cell_keys(keys)
    assert back_x.tolist() == ix.tolist() and back_y.tolist() == iy.tolist()
    assert (keys >= 0).all()  # no int64 overflow, even for the largest column
    order = np.lexsort((iy, ix))  # keys sort by column, then row
    assert (np.diff(keys[order]) > 0).all()
    for bad_x, bad_y in ((lim, 0), (-lim - 1, 0), (0, lim), (0, -lim - 1),
                         (np.iinfo(np.int64).min, 0)):
        with pytest.raises(ValueError, match="outside"):
            cell_keys(np.array([bad_x]), np.array([bad_y]))


def test_fdr_keeps_fewer_hotspots_than_plain_p_values() -> None:
    from hubctl.pipelines.hotspots import hotspots

    rng = np.random.default_rng(2)
    z = rng.normal(0, 1, (400, 1))
    z[:5] = 6.0  # five true hotspots
    from scipy.special import ndtr
    p = 2 * ndtr(-np.abs(z))
    plain = hotspots(z, p, 0.05)
    fdr = hotspots(z, p, 0.05, fdr=True)
    assert fdr[:5].all() and fdr.sum() < plain.sum()
    assert (fdr <= plain).all()
