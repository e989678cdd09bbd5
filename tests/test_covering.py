"""The maximal covering model against brute force, its reductions, greedy and fallbacks."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import scipy.sparse as sp

from hubctl.pipelines.covering import CoverSolution, coverage_of, greedy_cover, max_cover


def _random_instance(rng: np.random.Generator) -> tuple[sp.csr_matrix, np.ndarray, int, list[int]]:
    n_dem, n_cand = int(rng.integers(1, 22)), int(rng.integers(1, 9))
    dense = rng.random((n_dem, n_cand)) < rng.uniform(0.05, 0.5)
    weight = rng.integers(0, 10, n_dem).astype(float)
    k = int(rng.integers(0, n_cand + 2))
    n_fixed = int(rng.integers(0, min(k, n_cand) + 1))
    fixed = sorted(rng.choice(n_cand, size=n_fixed, replace=False).tolist())
    return sp.csr_matrix(dense), weight, k, fixed


def _brute_force(cover: sp.csr_matrix, weight: np.ndarray, k: int, fixed: list[int]) -> float:
    n_cand = cover.shape[1]
    free = [j for j in range(n_cand) if j not in fixed]
    slots = min(k, n_cand) - len(fixed)
    return max(coverage_of(cover, weight, fixed + list(extra))
               for extra in itertools.combinations(free, slots))


def test_max_cover_equals_brute_force_on_random_instances() -> None:
    rng = np.random.default_rng(20260422)
    for _ in range(100):
        cover, weight, k, fixed = _random_instance(rng)
        best = _brute_force(cover, weight, k, fixed)
        sol = max_cover(cover, weight, k, fixed=fixed)
        assert sol.covered == pytest.approx(best), (cover.toarray(), weight, k, fixed)
        assert sol.method == "milp-optimal" and sol.gap == 0.0
        assert set(fixed) <= set(sol.chosen.tolist())
        assert len(sol.chosen) <= min(k, cover.shape[1])
        assert list(sol.chosen) == sorted(sol.chosen)
        assert sol.covered == pytest.approx(coverage_of(cover, weight, sol.chosen))
        assert sol.total == pytest.approx(weight.sum())
        greedy = greedy_cover(cover, weight, k, fixed=fixed)
        assert greedy.covered <= best + 1e-9
        # the greedy's gap is measured against a true upper bound
        assert greedy.covered * (1 + greedy.gap) >= best - 1e-9


def test_greedy_is_suboptimal_where_the_milp_is_not() -> None:
    # The classic trap: one site covers the middle of two groups, two sites cover one each.
    cover = sp.csr_matrix(np.array([
        [1, 1, 0], [1, 1, 0], [1, 1, 0],
        [1, 0, 1], [1, 0, 1], [1, 0, 1],
        [0, 1, 0], [0, 0, 1],
    ], dtype=bool))
    weight = np.array([1, 1, 1, 1, 1, 1, 2, 2], dtype=float)
    greedy = greedy_cover(cover, weight, 2)
    exact = max_cover(cover, weight, 2)
    assert greedy.chosen.tolist() == [0, 1] and greedy.covered == 8
    assert exact.chosen.tolist() == [1, 2] and exact.covered == 10
    assert exact.method == "milp-optimal" and exact.gap == 0.0


def test_fixed_sites_stay_open_and_count() -> None:
    cover = sp.csr_matrix(np.eye(4, dtype=bool))
    weight = np.array([1.0, 5.0, 3.0, 4.0])
    sol = max_cover(cover, weight, 2, fixed=[0])
    assert sol.chosen.tolist() == [0, 1]
    assert sol.covered == 6.0 and sol.total == 13.0


def test_useless_sites_are_not_opened() -> None:
    cover = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 0]], dtype=bool))
    sol = max_cover(cover, np.array([2.0, 3.0]), 3)
    assert sol.chosen.tolist() == [0] and sol.covered == 5.0 and sol.gap == 0.0


def test_bad_input_is_a_clear_value_error() -> None:
    cover = sp.csr_matrix(np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="weight has 2 values"):
        max_cover(cover, np.ones(2), 1)
    with pytest.raises(ValueError, match="non-negative"):
        max_cover(cover, np.array([1.0, -1.0, 1.0]), 1)
    with pytest.raises(ValueError, match="do not fit in k=1"):
        max_cover(cover, np.ones(3), 1, fixed=[0, 1])
    with pytest.raises(ValueError, match="candidate indices"):
        max_cover(cover, np.ones(3), 2, fixed=[5])


def test_time_limit_too_short_falls_back_to_greedy_with_a_bound() -> None:
    rng = np.random.default_rng(7)
    cover = sp.random(400, 60, density=0.08, random_state=rng, format="csr") != 0
    weight = rng.integers(1, 20, 400).astype(float)
    sol = max_cover(cover, weight, 6, time_limit=0.0)
    greedy = greedy_cover(cover, weight, 6)
    assert isinstance(sol, CoverSolution)
    assert sol.method == "greedy-fallback"
    assert sol.covered == pytest.approx(greedy.covered)
    assert np.isfinite(sol.gap) and sol.gap >= 0.0


def test_larger_instance_is_optimal_and_at_least_the_greedy() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 5000, (3000, 2))
    sites = rng.uniform(0, 5000, (300, 2))
    d2 = ((xy[:, None, :] - sites[None, :, :]) ** 2).sum(axis=2)
    cover = sp.csr_matrix(d2 <= 400.0**2)
    weight = rng.poisson(3.0, 3000).astype(float)
    sol = max_cover(cover, weight, 15, time_limit=60.0)  # 8,465 non-zeros: HiGHS runs (gate)
    greedy = greedy_cover(cover, weight, 15)
    assert sol.covered >= greedy.covered
    assert sol.method in ("milp-optimal", "milp-time-limit")
    assert len(sol.chosen) == 15


def test_lagrangian_bound_and_swap_search_bracket_the_optimum() -> None:
    from hubctl.pipelines.covering import _lagrangian, _swap_search

    rng = np.random.default_rng(99)
    for _ in range(40):
        cover, weight, k, _fixed = _random_instance(rng)
        k = max(1, min(k, cover.shape[1]))
        best = _brute_force(cover, weight, k, [])
        sites, value, bound = _lagrangian(cover, weight, k, 0.0, math.inf)
        assert bound >= best - 1e-6
        assert value <= best + 1e-9 and len(sites) <= k
        start = greedy_cover(cover, weight, k).chosen
        improved, v2 = _swap_search(cover, weight, start, math.inf)
        assert coverage_of(cover, weight, start) - 1e-9 <= v2 <= best + 1e-9
        assert len(improved) == len(start)


def _hard_instance() -> tuple[sp.csr_matrix, np.ndarray]:
    """5,000 demands x 500 sites at 1 % density: ~25,000 non-zeros after the reductions, a 9 %
    gap between the heuristics and the bound; HiGHS needs far more than a few seconds."""
    rng = np.random.default_rng(5)
    cover = sp.random(5000, 500, density=0.01, random_state=rng, format="csr") != 0
    return sp.csr_matrix(cover), rng.integers(1, 20, 5000).astype(float)


def test_time_limit_is_respected_when_highs_runs_on_a_large_instance(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hubctl.pipelines import covering

    cover, weight = _hard_instance()
    # admit the model to HiGHS whatever its size, so that only the time limit can stop it
    monkeypatch.setattr(covering, "_MILP_NONZEROS_PER_SECOND", 1e12)
    start = time.perf_counter()
    sol = max_cover(cover, weight, 40, time_limit=1.5)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5 + 6.0  # generous: a loaded 2-core machine
    assert sol.method in ("milp-time-limit", "greedy-fallback")
    assert 0.0 < sol.gap < 1.0 and len(sol.chosen) == 40
    assert sol.covered == pytest.approx(coverage_of(cover, weight, sol.chosen))


def test_large_model_is_decided_by_size_and_deterministic() -> None:
    cover, weight = _hard_instance()
    start = time.perf_counter()
    first = max_cover(cover, weight, 40, time_limit=5.0)
    assert time.perf_counter() - start < 5.0 + 6.0
    second = max_cover(cover, weight, 40, time_limit=5.0)
    # too large for HiGHS within 5 s: the heuristics answer, with the gap to the bound
    assert first.method == second.method == "greedy-fallback"
    assert first.chosen.tolist() == second.chosen.tolist()
    assert first.gap == second.gap and first.covered == second.covered
    assert first.covered >= greedy_cover(cover, weight, 40).covered


def _count_milp_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from hubctl.pipelines import covering

    calls: list[int] = []
    real = covering.milp

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(covering, "milp", counting)
    return calls


def test_milp_answer_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_milp_calls(monkeypatch)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 5000, (3000, 2))
    sites = rng.uniform(0, 5000, (300, 2))
    cover = sp.csr_matrix(((xy[:, None, :] - sites[None, :, :]) ** 2).sum(axis=2) <= 400.0**2)
    weight = rng.poisson(3.0, 3000).astype(float)
    runs = [max_cover(cover, weight, 15, time_limit=60.0) for _ in range(2)]
    assert len(calls) == 2  # the bound does not prove the heuristics: HiGHS runs each time
    assert runs[0].method == runs[1].method == "milp-optimal"
    assert runs[0].chosen.tolist() == runs[1].chosen.tolist()
    assert runs[0].gap == runs[1].gap == 0.0


def test_heuristic_meeting_the_bound_returns_without_highs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_milp_calls(monkeypatch)
    # disjoint sites: the greedy (largest weights) is optimal and the Lagrangian bound says so
    rng = np.random.default_rng(11)
    cover = sp.csr_matrix(np.repeat(np.eye(60, dtype=bool), 3, axis=0))
    weight = rng.integers(1, 50, 180).astype(float)
    sol = max_cover(cover, weight, 7)
    assert calls == []
    assert sol.method == "milp-optimal" and sol.gap == 0.0
    best = np.sort(weight.reshape(60, 3).sum(axis=1))[-7:].sum()
    assert sol.covered == pytest.approx(best) and len(sol.chosen) == 7
