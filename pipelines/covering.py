"""The maximal covering location model (Church & ReVelle 1974): open k candidate sites so that
the largest possible demand weight lies within reach of an open site.

The core takes a coverage matrix (``cover[i, j]`` true when candidate j covers demand i), so the
same model serves radius coverage (patrol points) and travel-time coverage on a road graph
(dispatch stations); the pipelines build the matrix.

How it is solved (:func:`max_cover`):

1. **Reduction** (exact): demand rows with zero weight, or that no candidate covers, or that a
   fixed (must-open) site already covers, leave the model as constants; identical rows are merged
   (weights summed); candidates that cover none of the remaining rows are dropped, and so are
   dominated ones (rows a subset of another candidate's: swapping it for its dominator never
   loses, so some optimum avoids it; of identical candidates the first stays). When the useful
   candidates fit within the k - len(fixed) free slots, opening all of them is optimal.
2. **Greedy** (:func:`greedy_cover`): the classic 1 - 1/e approximation, with incremental gain
   updates (each covered row is touched once). Alongside it, the submodularity bound
   ``f(S) + sum of the k largest marginal gains at S`` (minimised over the greedy's iterations)
   is an upper bound on the optimum. A Lagrangian relaxation of the coverage constraints
   (at most 1,000 subgradient steps) gives a bound as tight as the LP relaxation, and single
   swaps (one site out, one in; at most 500) improve the greedy's and the Lagrangian's answers,
   then an iterated local search (close a tenth of the sites by a seeded choice, refill, swap;
   at most 50 rounds).
   When the best answer meets the best bound it is returned at once (proven optimal).
3. **MILP** with HiGHS through :func:`scipy.optimize.milp`, only when the bound does not
   already prove the heuristic answer and the reduced model has at most 200 coverage
   non-zeros per second of ``time_limit`` (6,000 at 30 s): the size decides up front, so a
   loaded machine does not change the method. Binary ``y_j`` per useful candidate, continuous
   ``0 <= z_i <= 1`` per merged row, maximise ``sum w_i z_i`` subject to
   ``z_i <= sum_{j covers i} y_j`` and ``sum y_j <= k - len(fixed)``. ``milp`` has no
   warm-start argument, so the best heuristic answer enters as an objective cut
   ``sum w_i z_i >= value`` (minus a small tolerance). HiGHS stops at 5,000 branch-and-bound
   nodes (``milp-node-limit``, gap from its dual bound) or proves the optimum
   (``milp-optimal``); presolve is off above 20,000 non-zeros (HiGHS does not check its time
   limit inside presolve). When HiGHS is not run, fails or finds nothing better, the best
   heuristic answer is returned (``greedy-fallback``) with the gap against the best of the MILP
   dual bound, the Lagrangian bound and the submodularity bound.

**Determinism.** Every phase stops on a work limit (iterations, swaps, nodes, model size), so
the same input gives the same sites, gap and method. The wall-clock ``time_limit`` is a safety
net only, and the one source of non-determinism: when it cuts a phase short (a tiny limit, a
machine far slower than expected) the answer depends on timing, and a MILP stopped by it says
``milp-time-limit``.

A site that adds no coverage is never opened, so ``chosen`` may hold fewer than k sites (only
when fewer are useful).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["CoverSolution", "coverage_of", "greedy_cover", "max_cover"]

_CUT_TOLERANCE = 1e-7  # relative slack on the greedy objective cut (HiGHS feasibility tolerance)
_MIP_REL_GAP = 1e-7
_LAGRANGE_ITERATIONS = 1_000  # subgradient steps (a work limit: deterministic) ...
_LAGRANGE_WORK = 1_000_000_000  # ... and at most this many coverage non-zeros' worth of steps
_LAGRANGE_PATIENCE = 20  # iterations without a better bound before the step halves
_SWAP_ROUNDS = 500  # most single swaps of the local search (a work limit: deterministic)
_PERTURB_ROUNDS = 50  # most rounds of the iterated local search ...
_PERTURB_WORK = 5_000_000  # ... and at most this many coverage non-zeros' worth of rounds
_PERTURB_SEED = 20260422  # its (fixed) choice of sites to close
# HiGHS is called only when the reduced model has at most this many coverage non-zeros per
# second of the time limit: the size decides the method up front, so that the answer does not
# depend on how loaded the machine is (the patrol benchmark's 21,000 non-zeros need over 45 s of
# root cuts on 2 shared cores; 8,500 non-zeros of a 300-site, k=15 model solve in 0.4 s, but a
# random, non-geometric 1,750 non-zero model can take 12 s). 30 s admit 6,000 non-zeros.
_MILP_NONZEROS_PER_SECOND = 200.0
_MILP_NODE_LIMIT = 5_000  # branch-and-bound nodes (a work limit: deterministic)
_PRESOLVE_NONZEROS = 20_000  # above this, HiGHS presolve is off (it ignores the time limit)


@dataclass(frozen=True)
class CoverSolution:
    """The sites to open and what they cover."""

    chosen: np.ndarray  # sorted candidate indices that are open
    covered: float  # demand weight covered
    total: float  # total demand weight
    gap: float  # relative optimality gap (0.0 when proven optimal)
    # "milp-optimal", "milp-node-limit", "milp-time-limit", "greedy-fallback" ("greedy" from
    # greedy_cover); see max_cover
    method: str
    seconds: float


@dataclass
class _Problem:
    cover: sp.csr_matrix  # bool, demand x candidate
    weight: np.ndarray  # float64
    k: int
    fixed: np.ndarray  # int64, sorted, unique


def _prepare(cover: sp.spmatrix | sp.sparray | np.ndarray, weight: np.ndarray, k: int,
             fixed: Sequence[int]) -> _Problem:
    """Check the inputs; ValueError says what is wrong."""
    matrix = sp.csr_matrix(cover, dtype=bool)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    n_dem, n_cand = matrix.shape
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_dem:
        raise ValueError(f"weight has {w.shape[0]} values but cover has {n_dem} demand rows")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("demand weights must be finite and non-negative")
    if int(k) != k or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k}")
    fx = np.unique(np.asarray(list(fixed), dtype=np.int64))
    if fx.size and (fx.min() < 0 or fx.max() >= n_cand):
        raise ValueError(f"fixed sites must be candidate indices 0..{n_cand - 1}")
    if fx.size > k:
        raise ValueError(f"{fx.size} fixed sites do not fit in k={k}")
    return _Problem(matrix, w, min(int(k), n_cand), fx)


def coverage_of(cover: sp.csr_matrix, weight: np.ndarray,
                chosen: Sequence[int] | np.ndarray) -> float:
    """Demand weight covered by the open sites ``chosen``."""
    sites = np.asarray(list(chosen), dtype=np.int64)
    if sites.size == 0:
        return 0.0
    hit = np.asarray(sp.csc_matrix(cover, dtype=bool)[:, sites].sum(axis=1)).reshape(-1) > 0
    return float(np.asarray(weight, dtype=np.float64)[hit].sum())


def _rows_of(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated column indices of the given CSR rows (vectorised gather)."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=indices.dtype)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return np.asarray(indices[offsets + np.arange(total)])


def _greedy(p: _Problem) -> tuple[np.ndarray, float, float]:
    """Greedy sites (fixed ones first), their coverage, and an upper bound on the optimum."""
    csr, csc = p.cover, p.cover.tocsc()
    n_dem, n_cand = csr.shape
    covered = np.zeros(n_dem, dtype=bool)
    gains = np.asarray(csr.T @ p.weight, dtype=np.float64).reshape(-1)
    is_open = np.zeros(n_cand, dtype=bool)
    value = 0.0

    def open_site(j: int) -> float:
        rows = csc.indices[csc.indptr[j]:csc.indptr[j + 1]]
        rows = rows[~covered[rows]]
        covered[rows] = True
        is_open[j] = True
        cols = _rows_of(csr.indptr, csr.indices, rows)
        w = np.repeat(p.weight[rows], np.diff(csr.indptr)[rows])
        gains[:] -= np.bincount(cols, weights=w, minlength=n_cand)
        return float(p.weight[rows].sum())

    for j in p.fixed.tolist():
        value += open_site(j)
    free = p.k - p.fixed.size
    # OPT <= f(S) + (sum of the `free` largest gains at S) for every S on the way (submodular)
    bound = value + _top_sum(gains, is_open, free)
    for _ in range(free):
        masked = np.where(is_open, -np.inf, gains)
        j = int(np.argmax(masked))  # ties: the lowest index
        if masked[j] <= 1e-12 * max(value, 1.0):
            break
        value += open_site(j)
        bound = min(bound, value + _top_sum(gains, is_open, free))
    return np.flatnonzero(is_open), value, max(bound, value)


def _top_sum(gains: np.ndarray, is_open: np.ndarray, m: int) -> float:
    """Sum of the m largest positive gains of the sites not yet open."""
    if m <= 0:
        return 0.0
    g = np.clip(gains[~is_open], 0.0, None)
    if g.size > m:
        g = np.partition(g, g.size - m)[g.size - m:]
    return float(g.sum())


def greedy_cover(cover: sp.csr_matrix, weight: np.ndarray, k: int, *,
                 fixed: Sequence[int] = ()) -> CoverSolution:
    """Greedy maximal covering (fixed sites first, then the largest marginal gain, ties to the
    lowest index); ``gap`` is measured against the submodularity upper bound."""
    start = time.perf_counter()
    p = _prepare(cover, weight, k, fixed)
    chosen, value, bound = _greedy(p)
    return CoverSolution(chosen=chosen, covered=value, total=float(p.weight.sum()),
                         gap=_gap(bound, value), method="greedy",
                         seconds=time.perf_counter() - start)


def _gap(bound: float, value: float) -> float:
    if bound - value <= 1e-9 * max(abs(bound), 1.0):
        return 0.0
    return (bound - value) / value if value > 0 else float("inf")


@dataclass
class _Reduced:
    matrix: sp.csr_matrix  # merged free rows x useful candidates
    weight: np.ndarray
    columns: np.ndarray  # original candidate index of each column
    constant: float  # weight covered by the fixed sites


def _reduce(p: _Problem) -> _Reduced:
    """Drop rows fixed sites cover or nothing covers, merge identical rows, drop idle sites."""
    csr = p.cover
    n_dem, n_cand = csr.shape
    by_fixed = np.zeros(n_dem, dtype=bool)
    if p.fixed.size:
        by_fixed = np.asarray(csr[:, p.fixed].sum(axis=1)).reshape(-1) > 0
    constant = float(p.weight[by_fixed].sum())
    free_col = np.ones(n_cand, dtype=bool)
    free_col[p.fixed] = False
    sub = csr[:, np.flatnonzero(free_col)]
    keep = (~by_fixed) & (p.weight > 0) & (np.diff(sub.indptr) > 0)
    sub = sub[np.flatnonzero(keep)]
    w = p.weight[keep]
    used = np.flatnonzero(np.diff(sub.tocsc().indptr) > 0)
    sub = sub[:, used]
    columns = np.flatnonzero(free_col)[used]
    undominated = _undominated(sub)
    sub = sub[:, undominated]
    sub.sort_indices()
    columns = columns[undominated]
    merged, mw = _merge_rows(sub, w)
    return _Reduced(merged, mw, columns, constant)


def _undominated(m: sp.csr_matrix) -> np.ndarray:
    """Columns whose row set is not inside another column's (of identical columns the first
    stays). Some optimum uses only these: swap a dominated site for its dominator."""
    n = m.shape[1]
    if n <= 1:
        return np.arange(n)
    mi = sp.csc_matrix(m, dtype=np.int32)
    size = np.diff(mi.indptr)
    inter = (mi.T @ mi).tocoo()
    r, c = inter.row, inter.col
    mask = (inter.data == size[r]) & (r != c) & (
        (size[c] > size[r]) | ((size[c] == size[r]) & (c < r)))
    keep = np.ones(n, dtype=bool)
    keep[r[mask]] = False
    return np.flatnonzero(keep)


def _merge_rows(m: sp.csr_matrix, w: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows with the same set of columns become one row with the summed weight."""
    groups: dict[bytes, int] = {}
    group = np.empty(m.shape[0], dtype=np.int64)
    ind, ptr = m.indices, m.indptr
    for i in range(m.shape[0]):
        group[i] = groups.setdefault(ind[ptr[i]:ptr[i + 1]].tobytes(), len(groups))
    first = np.unique(group, return_index=True)[1]
    return m[first], np.bincount(group, weights=w, minlength=len(groups))


def max_cover(cover: sp.csr_matrix, weight: np.ndarray, k: int, *,
              fixed: Sequence[int] = (), time_limit: float = 30.0) -> CoverSolution:
    """cover[i, j] true when candidate j covers demand i; choose k candidates (including the
    `fixed` ones, which must be open) maximising covered weight. Exact reductions, greedy,
    Lagrangian bound and swaps, then (when the heuristics are not proven optimal and the model
    is small enough for ``time_limit``) an exact MILP with HiGHS through scipy.optimize.milp
    under a node limit; report the gap, or the best heuristic (``greedy-fallback``).

    Deterministic: the same input gives the same sites and gap, because every phase stops on a
    work limit (iterations, swaps, nodes) and the model size decides up front whether HiGHS
    runs. ``time_limit`` (seconds, the whole call) is only a safety net: when it cuts a phase
    short (a loaded machine, a tiny limit) the answer depends on timing and, if HiGHS was
    stopped, ``method`` is ``milp-time-limit``. ValueError on inconsistent input (weights and
    rows differ in length, negative weights, more fixed sites than k, bad indices).
    """
    start = time.perf_counter()
    deadline = start + max(float(time_limit), 0.0)
    p = _prepare(cover, weight, k, fixed)
    total = float(p.weight.sum())
    red = _reduce(p)
    free = p.k - p.fixed.size

    def done(chosen: np.ndarray, gap: float, method: str) -> CoverSolution:
        sites = np.unique(np.concatenate([p.fixed, np.asarray(chosen, dtype=np.int64)]))
        return CoverSolution(chosen=sites, covered=coverage_of(p.cover, p.weight, sites),
                             total=total, gap=gap, method=method,
                             seconds=time.perf_counter() - start)

    n_cols = red.matrix.shape[1]
    if free == 0:  # nothing to choose: the fixed sites are the answer
        return done(np.empty(0, dtype=np.int64), 0.0, "milp-optimal")
    if n_cols <= free:  # every useful site fits: opening them all is optimal
        return done(red.columns, 0.0, "milp-optimal")
    sub = _Problem(red.matrix, red.weight, free, np.empty(0, dtype=np.int64))
    g_cols, g_value, g_bound = _greedy(sub)
    l_cols, l_value, l_bound = _lagrangian(red.matrix, red.weight, free, g_value, deadline)
    # local search from both answers: on the patrol benchmark swaps take the greedy's 77,226 only
    # to 78,022, but the Lagrangian's best k sites to 79,785 (HiGHS: 80,332 after 60 s)
    best_cols, best_value = _swap_search(red.matrix, red.weight, g_cols, deadline)
    if _gap(min(g_bound, l_bound), best_value) != 0.0:
        s_cols, s_value = _swap_search(red.matrix, red.weight, l_cols, deadline)
        if s_value > best_value:
            best_cols, best_value = s_cols, s_value
    best_cols, best_value = _perturb_search(red.matrix, red.weight, free, best_cols, best_value,
                                            min(g_bound, l_bound), deadline)
    bound = max(min(g_bound, l_bound), best_value)

    def heuristic(method: str = "greedy-fallback") -> CoverSolution:
        return done(red.columns[best_cols],
                    _gap(bound + red.constant, best_value + red.constant), method)

    if _gap(bound, best_value) == 0.0:  # the bound proves the heuristic answer optimal
        return heuristic("milp-optimal")
    remaining = deadline - time.perf_counter()
    if red.matrix.nnz > _MILP_NONZEROS_PER_SECOND * time_limit or remaining <= 0.05:
        return heuristic()  # too large for HiGHS within the limit (decided by size)
    res = _solve_milp(red, free, best_value, remaining)
    x = getattr(res, "x", None)
    dual = getattr(res, "mip_dual_bound", None)
    if dual is not None and np.isfinite(dual):
        bound = max(min(bound, -float(dual)), best_value)
    if x is None or res.status not in (0, 1):
        return heuristic()
    picked = np.flatnonzero(np.asarray(x[:n_cols]) > 0.5)
    m_value = coverage_of(red.matrix, red.weight, picked)
    if m_value >= best_value:
        best_cols, best_value = picked, m_value
        bound = max(bound, best_value)
    if res.status == 0:
        return done(red.columns[best_cols], 0.0, "milp-optimal")
    nodes = getattr(res, "mip_node_count", None)
    by_nodes = nodes is not None and nodes >= _MILP_NODE_LIMIT
    return heuristic("milp-node-limit" if by_nodes else "milp-time-limit")


def _swap_search(a: sp.csr_matrix, w: np.ndarray, cols: np.ndarray,
                 deadline: float) -> tuple[np.ndarray, float]:
    """Improve an answer by the best single swap (one site out, one in) while one gains
    (Teitz-Bart vertex substitution), at most ``_SWAP_ROUNDS`` swaps; ``deadline``
    (perf_counter) is a safety net. Returns (sites, coverage)."""
    n_rows, n_cols = a.shape
    af = sp.csr_matrix(a, dtype=np.float64)
    at = af.T.tocsr()
    is_open = np.zeros(n_cols, dtype=bool)
    is_open[cols] = True
    for _ in range(_SWAP_ROUNDS):
        if time.perf_counter() >= deadline or not 0 < is_open.sum() < n_cols:
            break
        count = af @ is_open.astype(np.float64)
        gain = at @ (w * (count == 0))  # weight a closed site would add
        single = np.flatnonzero(count == 1)
        open_idx = np.flatnonzero(is_open)
        # owner of each row covered once: the one open site covering it
        sub = af[single][:, open_idx].tocoo()
        owner = sp.csr_matrix((w[single][sub.row], (single[sub.row], sub.col)),
                              shape=(n_rows, len(open_idx)))
        loss = np.asarray(owner.sum(axis=0)).reshape(-1)  # weight only this site covers
        kept = (at @ owner).toarray()  # of that weight, what a closed site would cover too
        delta = gain[:, None] - loss[None, :] + kept
        delta[is_open, :] = -np.inf
        j_in, j_out = np.unravel_index(int(np.argmax(delta)), delta.shape)
        if delta[j_in, j_out] <= 1e-9 * max(float(w.sum()), 1.0):
            break
        is_open[open_idx[j_out]] = False
        is_open[j_in] = True
    chosen = np.flatnonzero(is_open)
    return chosen, coverage_of(a, w, chosen)


def _perturb_search(a: sp.csr_matrix, w: np.ndarray, k: int, cols: np.ndarray, value: float,
                    bound: float, deadline: float) -> tuple[np.ndarray, float]:
    """Iterated local search: close a tenth of the open sites (seeded choice), refill greedily,
    swap to a local optimum, keep it when it covers more. Rounds are a work limit
    (``_PERTURB_WORK`` / non-zeros, at most ``_PERTURB_ROUNDS``); ``deadline`` is a safety net.
    On the patrol benchmark it lifts 79,785 to 80,057 in about 1 s."""
    rng = np.random.default_rng(_PERTURB_SEED)
    rounds = min(_PERTURB_ROUNDS, _PERTURB_WORK // max(a.nnz, 1))
    size = len(cols) - max(1, len(cols) // 10)
    for _ in range(rounds):
        if time.perf_counter() >= deadline or _gap(bound, value) == 0.0 or size < 1:
            break
        keep = np.sort(rng.choice(cols, size=size, replace=False)).astype(np.int64)
        r_cols, _, _ = _greedy(_Problem(a, w, k, keep))
        r_cols, r_value = _swap_search(a, w, r_cols, deadline)
        if r_value > value:
            cols, value = r_cols, r_value
    return cols, value


def _lagrangian(a: sp.csr_matrix, w: np.ndarray, k: int, lower: float,
                deadline: float) -> tuple[np.ndarray, float, float]:
    """Subgradient optimisation of the Lagrangian relaxation of ``z_i <= sum_j a_ij y_j``
    (multipliers 0 <= l_i <= w_i): L(l) = sum_i (w_i - l_i) + (sum of the k largest
    (A^T l)_j) bounds the optimum from above (as tight as the LP relaxation), and the k sites of
    each iteration are a feasible answer. At most ``_LAGRANGE_ITERATIONS`` steps (fewer on
    models over a million non-zeros: ``_LAGRANGE_WORK``); ``deadline``
    (perf_counter) is a safety net. Returns (best sites, their coverage, best bound)."""
    af = sp.csr_matrix(a, dtype=np.float64)
    at = af.T.tocsr()
    degree = np.maximum(np.diff(af.indptr), 1)
    lam = w / degree
    best_cols, best_value, best_bound = np.empty(0, dtype=np.int64), 0.0, np.inf
    theta, stall = 2.0, 0
    for _ in range(min(_LAGRANGE_ITERATIONS, max(_LAGRANGE_WORK // max(af.nnz, 1), 50))):
        score = at @ lam
        top = np.argpartition(-score, k - 1)[:k] if k < len(score) else np.arange(len(score))
        y = np.zeros(len(score))
        y[top] = 1.0
        hits = af @ y
        bound = float(np.clip(w - lam, 0.0, None).sum() + score[top].sum())
        value = float(w[hits > 0].sum())
        if value > best_value:
            best_cols, best_value = np.sort(top), value
        if best_bound == np.inf or bound < best_bound - 1e-9 * max(best_bound, 1.0):
            best_bound, stall = bound, 0
        else:
            stall += 1
            if stall >= _LAGRANGE_PATIENCE:
                theta, stall = theta / 2, 0
        target = max(lower, best_value)
        if theta < 1e-3 or best_bound - target <= 1e-9 * max(target, 1.0) or (
                time.perf_counter() >= deadline):
            break
        g = hits - (w > lam)
        norm = float(g @ g)
        if norm == 0:
            break
        lam = np.clip(lam - theta * (bound - target) / norm * g, 0.0, w)
    return best_cols, best_value, best_bound


def _solve_milp(red: _Reduced, k: int, greedy_value: float, seconds: float) -> Any:
    """The reduced MCLP as a HiGHS MILP with the greedy objective cut. A row that one site
    alone covers needs no z: its weight goes straight onto that site's y."""
    single = np.diff(red.matrix.indptr) == 1
    n_cols = red.matrix.shape[1]
    direct = np.bincount(red.matrix.indices[red.matrix.indptr[:-1][single]],
                         weights=red.weight[single], minlength=n_cols)
    a = red.matrix[np.flatnonzero(~single)]
    w = red.weight[~single]
    n_rows = a.shape[0]
    c = -np.concatenate([direct, w])
    link = sp.hstack([-a.astype(np.float64), sp.identity(n_rows, format="csr")], format="csr")
    budget = sp.csr_matrix(np.concatenate([np.ones(n_cols), np.zeros(n_rows)]))
    cut = sp.csr_matrix(-c)
    floor = greedy_value - _CUT_TOLERANCE * max(greedy_value, 1.0)
    constraints = [
        LinearConstraint(link, -np.inf, 0.0),
        LinearConstraint(budget, 0.0, float(k)),
        LinearConstraint(cut, floor, np.inf),
    ]
    integrality = np.concatenate([np.ones(n_cols), np.zeros(n_rows)])
    options = {"node_limit": _MILP_NODE_LIMIT, "time_limit": max(seconds, 0.1),
               "mip_rel_gap": _MIP_REL_GAP, "disp": False,
               "presolve": bool(red.matrix.nnz <= _PRESOLVE_NONZEROS)}
    try:
        with _stdout_to_stderr():
            return milp(c, constraints=constraints, integrality=integrality,
                        bounds=Bounds(0.0, 1.0), options=options)
    except (ValueError, RuntimeError, MemoryError) as exc:  # HiGHS failure: greedy fallback
        return _Failed(str(exc))


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """HiGHS sometimes prints debug lines on file descriptor 1 even with disp off; send them
    to stderr so that ``--json`` output on stdout stays clean."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (embedded use): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class _Failed:
    message: str
    status: int = 4
    x: None = None
    mip_dual_bound: None = None
