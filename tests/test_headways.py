"""The frequency reallocation solver: optimum against brute force, budget, bounds, no regress."""

from __future__ import annotations

import numpy as np
import pytest

from hubctl.pipelines.headways import (
    optimal_headways,
    reallocate,
    vehicle_hours,
    waiting_time,
)


def _brute_force(d: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 budget: float, steps: int = 1500) -> float:
    """Least total waiting over a fine grid of (h1, h2); h3 is then the smallest feasible one
    (waiting grows with h3, so nothing better exists for that pair): an exhaustive search."""
    h1 = np.linspace(lo[0], hi[0], steps)[:, None]
    h2 = np.linspace(lo[1], hi[1], steps)[None, :]
    left = budget - t[0] / h1 - t[1] / h2
    with np.errstate(divide="ignore", invalid="ignore"):
        h3 = np.maximum(lo[2], np.where(left > 0, t[2] / left, np.inf))
    feasible = h3 <= hi[2]
    wait = (d[0] * h1 + d[1] * h2 + d[2] * h3) / 2
    return float(np.min(np.where(feasible, wait, np.inf)))


@pytest.mark.parametrize("case", [
    # demand, cost T, lo, hi, budget: interior optimum
    (np.array([900.0, 300.0, 50.0]), np.array([40.0, 60.0, 30.0]), np.full(3, 2.0),
     np.full(3, 60.0), 8.0),
    # bounds bind: the busiest route hits the minimum headway, the quiet one the maximum
    (np.array([5000.0, 400.0, 1.0]), np.array([20.0, 50.0, 80.0]), np.array([5.0, 5.0, 5.0]),
     np.array([30.0, 30.0, 30.0]), 10.0),
    # a route without demand goes to its maximum headway
    (np.array([700.0, 0.0, 200.0]), np.array([30.0, 30.0, 30.0]), np.full(3, 3.0),
     np.full(3, 40.0), 9.0),
])
def test_optimum_matches_a_brute_force_search(case: tuple) -> None:
    d, t, lo, hi, budget = case
    h, lam = optimal_headways(d, t, lo, hi, budget)
    assert vehicle_hours(t, h) <= budget
    assert np.all(h >= lo - 1e-12) and np.all(h <= hi + 1e-12)
    best = _brute_force(d, t, lo, hi, budget)
    ours = waiting_time(d, h)
    assert ours <= best + 1e-9  # never worse than any grid plan
    assert ours == pytest.approx(best, rel=2e-3)  # and the grid comes arbitrarily close
    assert lam > 0


def test_square_root_rule_without_binding_bounds() -> None:
    d = np.array([400.0, 100.0, 25.0])
    t = np.array([10.0, 10.0, 10.0])
    h, _ = optimal_headways(d, t, np.full(3, 1e-6), np.full(3, 1e6), 3.0)
    ratio = h / np.sqrt(t / d)
    assert np.allclose(ratio, ratio[0])  # h ∝ sqrt(T / d)
    assert vehicle_hours(t, h) == pytest.approx(3.0, rel=1e-12)


def test_kkt_conditions_hold_on_random_cases() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(2, 30))
        d = rng.gamma(1.0, 500.0, n)
        t = rng.uniform(5, 200, n)
        lo, hi = np.full(n, 4.0), np.full(n, 60.0)
        budget = float(vehicle_hours(t, rng.uniform(5, 40, n)))
        h, lam = optimal_headways(d, t, lo, hi, budget)
        assert vehicle_hours(t, h) <= budget
        free = (h > lo + 1e-9) & (h < hi - 1e-9)
        # stationarity on free routes: d/2 = lambda T / h^2
        assert np.allclose(d[free] / 2, lam * t[free] / h[free] ** 2, rtol=1e-6)
        # clamped routes would move the wrong way if released
        assert np.all(d[h <= lo + 1e-9] / 2 >= lam * t[h <= lo + 1e-9] / lo[0] ** 2 * (1 - 1e-6))
        assert np.all(d[h >= hi - 1e-9] / 2 <= lam * t[h >= hi - 1e-9] / hi[0] ** 2 * (1 + 1e-6))


def test_reallocation_never_uses_more_vehicle_hours_or_waits_longer() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        demand = rng.gamma(0.8, 800.0, n)
        vh = rng.uniform(2, 60, n)
        h0 = rng.uniform(3, 90, n)
        plan = reallocate(demand, vh, h0, min_headway=5.0, max_headway=30.0)
        assert plan.vehicle_hours_after <= plan.vehicle_hours_before  # exactly, no tolerance
        assert plan.waiting_after <= plan.waiting_before
        assert plan.improvement >= 0


def test_already_optimal_plan_is_returned_unchanged() -> None:
    d, t = np.array([400.0, 100.0, 30.0]), np.array([60.0, 120.0, 45.0])
    best, _ = optimal_headways(d, t, np.full(3, 1.0), np.full(3, 100.0), 12.0)
    plan = reallocate(d, t / best, best, min_headway=1.0, max_headway=100.0)
    assert plan.status == "current-is-optimal"
    assert np.array_equal(plan.headway_after, plan.headway_before)
    assert plan.waiting_after == plan.waiting_before


def test_infeasible_bounds_are_reported() -> None:
    with pytest.raises(ValueError, match="infeasible"):
        optimal_headways(np.array([1.0]), np.array([100.0]), np.array([1.0]), np.array([2.0]),
                         10.0)
