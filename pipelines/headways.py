"""Frequency reallocation: headways that minimise total expected waiting time for a fixed fleet.

With passengers arriving at random, the expected wait on a route of headway ``h`` is ``h / 2``.
Route ``r`` carries ``d_r`` passengers a day and costs ``T_r / h_r`` vehicle-hours a day, where
``T_r = V_r * h_r`` (today's vehicle-hours times today's headway: running time times service
span). The problem

    minimise   sum_r d_r * h_r / 2
    subject to sum_r T_r / h_r <= V          (no more vehicle-hours than today)
               lo_r <= h_r <= hi_r           (minimum and maximum headways)

is convex (``T / h`` is convex for ``h > 0``). Its KKT conditions give, for a multiplier
``lambda > 0``, ``h_r = clip(sqrt(2 * lambda * T_r / d_r), lo_r, hi_r)``: without bounds the
square-root rule ``h_r ∝ sqrt(T_r / d_r)``. The vehicle-hours used, ``g(lambda)``, fall as
``lambda`` grows, so bisection on ``lambda`` finds which routes sit on a bound; the free routes
then get the closed form ``h_r = c * sqrt(T_r / d_r)`` with
``c = sum_free sqrt(T_r * d_r) / (V - sum_bound T_r / h_r)``, which spends the budget exactly.

:func:`optimal_headways` is the solver core (arrays in, arrays out); :func:`reallocate` is the
planning step: bounds widened to include today's headways (so today's plan is always feasible),
today's plan kept when the optimum does not improve on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Reallocation", "optimal_headways", "reallocate", "vehicle_hours", "waiting_time"]

_BISECTION_STEPS = 200
_REL_TOL = 1e-12


def waiting_time(demand: np.ndarray, headway: np.ndarray) -> float:
    """Total expected waiting time ``sum d * h / 2`` (in the units of ``demand * headway``)."""
    return float(np.sum(np.asarray(demand, float) * np.asarray(headway, float)) / 2.0)


def vehicle_hours(cost: np.ndarray, headway: np.ndarray) -> float:
    """Vehicle-hours a plan uses: ``sum T / h``."""
    return float(np.sum(np.asarray(cost, float) / np.asarray(headway, float)))


def _headways_at(lam: float, demand: np.ndarray, cost: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.sqrt(2.0 * lam * cost / demand)
    free = np.where(demand > 0, free, np.inf)  # no demand: as rare as allowed
    return np.clip(free, lo, hi)


def _check(demand: np.ndarray, cost: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           budget: float) -> None:
    if not (demand.shape == cost.shape == lo.shape == hi.shape) or demand.ndim != 1:
        raise ValueError("demand, cost, lo and hi must be 1-D arrays of the same length")
    if not np.all(np.isfinite(demand)) or np.any(demand < 0):
        raise ValueError("demand must be finite and non-negative")
    if not np.all(np.isfinite(cost)) or np.any(cost <= 0):
        raise ValueError("cost (vehicle-hours times headway) must be finite and positive")
    if np.any(lo <= 0) or np.any(hi < lo) or not np.all(np.isfinite(hi)):
        raise ValueError("headway bounds must satisfy 0 < lo <= hi < inf")
    if vehicle_hours(cost, hi) > budget * (1 + 1e-9):
        raise ValueError(f"infeasible: even the maximum headways need "
                         f"{vehicle_hours(cost, hi):.6g} vehicle-hours, more than {budget:.6g}")


def optimal_headways(demand: np.ndarray, cost: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     budget: float) -> tuple[np.ndarray, float]:
    """Headways minimising ``sum d h / 2`` s.t. ``sum T / h <= budget``, ``lo <= h <= hi``.

    Returns ``(headways, lambda)``; ``lambda`` is the multiplier of the budget (0 when the
    budget does not bind, i.e. every route can run at its minimum headway). Raises ValueError
    when the bounds leave no feasible plan.
    """
    d, t = np.asarray(demand, float), np.asarray(cost, float)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    _check(d, t, lo, hi, budget)
    if len(d) == 0:
        return np.zeros(0), 0.0
    if vehicle_hours(t, lo) <= budget:
        return lo.copy(), 0.0
    # g(lambda) = vehicle-hours at lambda, non-increasing; bracket the root, then bisect
    # (in log space: lambda spans many orders of magnitude across cities and units).
    a, b = 1e-30, 1.0
    while vehicle_hours(t, _headways_at(b, d, t, lo, hi)) > budget and b < 1e300:
        b *= 16.0
    for _ in range(_BISECTION_STEPS):
        mid = math.sqrt(a * b)
        if vehicle_hours(t, _headways_at(mid, d, t, lo, hi)) > budget:
            a = mid
        else:
            b = mid
        if b / a - 1.0 < _REL_TOL:
            break
    h = _headways_at(b, d, t, lo, hi)
    return _exact(h, d, t, lo, hi, budget), b


def _exact(h: np.ndarray, d: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           budget: float) -> np.ndarray:
    """Replace the bisection's free headways by the closed form that meets the budget exactly."""
    free = (h > lo) & (h < hi) & (d > 0)
    left = budget - float(np.sum(t[~free] / h[~free]))
    if not free.any() or left <= 0:
        return h
    c = float(np.sum(np.sqrt(t[free] * d[free]))) / left
    exact = h.copy()
    exact[free] = np.clip(c * np.sqrt(t[free] / d[free]), lo[free], hi[free])
    for _ in range(4):  # rounding: stretch the free headways until the budget holds exactly
        used = vehicle_hours(t, exact)
        if used <= budget:
            return exact
        exact[free] = np.minimum(exact[free] * (used / budget) * (1 + 1e-15), hi[free])
    return h


@dataclass(frozen=True)
class Reallocation:
    """A reallocation plan with its before/after figures.

    ``status`` is ``optimal`` (a better plan was found), ``current-is-optimal`` (today's plan
    cannot be improved within the bounds, so it is returned unchanged) or ``empty``.
    ``multiplier`` is the KKT multiplier of the vehicle-hour budget.
    """

    headway_before: np.ndarray
    headway_after: np.ndarray
    vehicle_hours_before: float
    vehicle_hours_after: float
    waiting_before: float
    waiting_after: float
    multiplier: float
    status: str

    @property
    def improvement(self) -> float:
        """Share of today's total waiting time saved (0 when unchanged)."""
        return 0.0 if self.waiting_before <= 0 else 1.0 - self.waiting_after / self.waiting_before


def reallocate(demand: np.ndarray, vehicle_hours_now: np.ndarray, headway_now: np.ndarray,
               min_headway: float, max_headway: float) -> Reallocation:
    """Reallocate today's vehicle-hours across routes to minimise total expected waiting time.

    ``demand`` is passengers per day per route, ``vehicle_hours_now`` the vehicle-hours each
    route uses today, ``headway_now`` its mean headway today (any time unit; the bounds are in
    the same unit). A route keeps its own headway as a bound where today's headway lies
    outside ``[min_headway, max_headway]``, so today's plan is always feasible; the result never
    uses more vehicle-hours and never waits longer in total than today.
    """
    d = np.asarray(demand, float)
    v = np.asarray(vehicle_hours_now, float)
    h0 = np.asarray(headway_now, float)
    if len(d) == 0:
        return Reallocation(h0, h0, 0.0, 0.0, 0.0, 0.0, 0.0, "empty")
    cost = v * h0
    lo = np.minimum(min_headway, h0)
    hi = np.maximum(max_headway, h0)
    budget = float(np.sum(v))
    h, lam = optimal_headways(d, cost, lo, hi, budget)
    before, after = waiting_time(d, h0), waiting_time(d, h)
    if after >= before * (1 - 1e-9) or vehicle_hours(cost, h) > budget:
        return Reallocation(h0, h0.copy(), budget, budget, before, before, lam,
                            "current-is-optimal")
    return Reallocation(h0, h, budget, vehicle_hours(cost, h), before, after, lam, "optimal")
