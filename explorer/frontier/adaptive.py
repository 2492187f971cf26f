"""Adaptive refinement of a weight grid: after a coarse lattice, measure new mixes where the front is.

Each round ``propose`` splits edges of the measured mixes' triangulation (Delaunay in the
mixes' affine hull: segments for 2 adapters, triangles for 3, ...) that touch a Pareto-optimal
mix, at their midpoints, so the lattice is halved locally around the front. Which midpoints,
under a budget: greedily, the one whose *estimated* scores (the mean of the edge's two ends:
linear interpolation) add the most hypervolume to the front, the estimate then joining the front
so that one batch spreads out ("believer" batching); when no estimate adds any, the edges longest
in normalised objective space go next, so a front that interpolation misjudges is still explored.

``refine`` runs rounds against an ``evaluate(mixes) -> means`` callback, so the batched engine
and its cache plug in as they are: each round is one batched grid run. Hypervolume is computed
by ``moocore``. Scores are in the objectives' own units with their directions, as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import moocore
import numpy as np
from scipy.spatial import Delaunay, QhullError

from explorer.direction import MAXIMIZE, MINIMIZE
from explorer.errors import SoupError
from explorer.frontier.grid import DECIMALS
from explorer.frontier.pareto import default_reference, hypervolume, pareto_mask


def _signs(directions: Sequence[str], k: int) -> np.ndarray:
    if len(directions) != k:
        raise SoupError(f"{k} objectives in the means but {len(directions)} directions")
    bad = [d for d in directions if d not in (MAXIMIZE, MINIMIZE)]
    if bad:
        raise SoupError(f"directions must be '{MAXIMIZE}' or '{MINIMIZE}', got {bad}")
    return np.array([1.0 if d == MAXIMIZE else -1.0 for d in directions])


# ------------------------------------------------------------------------------------------------
# one round


def _edges(weights: np.ndarray) -> np.ndarray:
    """(E, 2) index pairs i < j: the edges of a Delaunay triangulation of ``weights`` (M, N) in
    their affine hull (consecutive points for a 1-D hull; every pair if Qhull cannot triangulate)."""
    m = len(weights)
    if m < 2:
        return np.zeros((0, 2), dtype=int)
    centred = weights - weights.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    dim = int((sv > 1e-9 * max(1.0, sv[0])).sum())
    coords = centred @ vt[:dim].T  # (M, dim): an isometry of the hull, so lattices stay regular
    if dim == 0:
        return np.zeros((0, 2), dtype=int)
    if dim == 1:
        order = np.argsort(coords[:, 0], kind="stable")
        pairs = np.stack([order[:-1], order[1:]], axis=1)
    else:
        try:
            simplices = Delaunay(coords).simplices  # (S, dim + 1)
            pairs = np.concatenate(
                [simplices[:, [a, b]] for a in range(dim + 1) for b in range(a + 1, dim + 1)]
            )
        except QhullError:
            pairs = np.array([(i, j) for i in range(m) for j in range(i + 1, m)])
    pairs = np.sort(pairs, axis=1)
    return np.unique(pairs, axis=0)


def propose(
    measured_weights: np.ndarray,
    means: np.ndarray,
    directions: Sequence[str],
    budget: int,
    *,
    min_step: float = 1e-3,
) -> np.ndarray:
    """Up to ``budget`` new mixes (B, N) to measure next, where the front is.

    ``measured_weights`` (M, N) the mixes measured so far; ``means`` (M, K) their mean scores in
    the objectives' own units (NaN rows: not measured; they are never proposed again but take
    no part otherwise); ``directions`` (K,). Candidates are the midpoints of the triangulation's
    edges that touch a Pareto-optimal mix and are longer than ``2 * min_step`` in weight (max
    norm), minus the mixes already measured (rounded to ``explorer.frontier.grid.DECIMALS``). Order: by
    estimated hypervolume gain (see the module docstring), then by the edge's length in objective
    space normalised by the front's ideal and nadir. Fewer than ``budget`` (or none) come back
    when the front is refined down to ``min_step``.
    """
    w = np.asarray(measured_weights, dtype=np.float64)
    f = np.asarray(means, dtype=np.float64)
    if w.ndim != 2 or f.ndim != 2 or len(w) != len(f):
        raise SoupError(
            f"weights (M, N) and means (M, K) must have one row per mix, got {w.shape} and {f.shape}"
        )
    budget = int(budget)
    if budget <= 0:
        return np.zeros((0, w.shape[1]))
    f = f * _signs(directions, f.shape[1])  # higher is better
    valid = np.isfinite(f).all(axis=1)
    w_ok, f_ok = w[valid], f[valid]
    if len(w_ok) < 2:
        return np.zeros((0, w.shape[1]))
    pareto = pareto_mask(f_ok, [MAXIMIZE] * f.shape[1])
    ideal, nadir = f_ok[pareto].max(axis=0), f_ok[pareto].min(axis=0)
    span = np.where(ideal > nadir, ideal - nadir, 1.0)
    v = (f_ok - nadir) / span  # (M', K): the front spans [0, 1] on every objective

    edges = _edges(w_ok)
    keep = pareto[edges].any(axis=1) & (
        np.abs(w_ok[edges[:, 0]] - w_ok[edges[:, 1]]).max(axis=1) > 2 * min_step
    )
    edges = edges[keep]
    mid = np.round((w_ok[edges[:, 0]] + w_ok[edges[:, 1]]) / 2, DECIMALS) + 0.0  # (C, N)
    measured = {tuple(r) for r in np.round(w, DECIMALS) + 0.0}
    fresh, seen = [], set()
    for c, row in enumerate(map(tuple, mid)):
        if row not in measured and row not in seen:
            seen.add(row)
            fresh.append(c)
    edges, mid = edges[fresh], mid[fresh]
    if len(mid) == 0:
        return np.zeros((0, w.shape[1]))
    estimate = (v[edges[:, 0]] + v[edges[:, 1]]) / 2  # (C, K) linear interpolation
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)  # (C,)
    return mid[_select(estimate, length, v[pareto], budget)]


def _select(estimate: np.ndarray, length: np.ndarray, front: np.ndarray, budget: int) -> list[int]:
    """Greedy batch: the candidate whose ``estimate`` (C, K) adds the most hypervolume to ``front``
    (P, K), all normalised and maximised, reference -0.1; it joins the front; repeat. When none
    adds any, the rest by ``length`` (C,), longest first."""
    hv = moocore.hypervolume
    ref = np.full(front.shape[1], -0.1)
    front = front.copy()
    base = hv(front, ref=ref, maximise=True)
    left = list(range(len(estimate)))
    chosen: list[int] = []
    while left and len(chosen) < budget:
        gains = np.array([hv(np.vstack([front, estimate[c]]), ref=ref, maximise=True) - base for c in left])
        best = int(np.argmax(gains))
        if gains[best] <= 1e-12:
            break
        c = left.pop(best)
        chosen.append(c)
        front = np.vstack([front, estimate[c]])
        base += gains[best]
    left.sort(key=lambda c: -length[c])
    return chosen + left[: budget - len(chosen)]


# ------------------------------------------------------------------------------------------------
# rounds


@dataclass(frozen=True)
class Round:
    """What one round measured."""

    new: int  # mixes measured in this round
    evaluated: int  # mixes measured so far
    pareto: int  # Pareto-optimal mixes so far
    hypervolume: float  # of every mix so far, against the refinement's reference


@dataclass
class Refinement:
    """Every measured mix in the order measured: ``weights`` (M, N), ``means`` (M, K); the rounds
    (the first is the initial grid) and the fixed ``reference`` (K,) their hypervolumes use."""

    weights: np.ndarray
    means: np.ndarray
    directions: tuple[str, ...]
    reference: np.ndarray
    rounds: list[Round] = field(default_factory=list)

    @property
    def pareto(self) -> np.ndarray:
        """(M,) Pareto-optimal mixes by their means."""
        return pareto_mask(self.means, self.directions)


def refine(
    evaluate: Callable[[np.ndarray], np.ndarray],
    initial: np.ndarray,
    directions: Sequence[str],
    *,
    budget: int,
    batch: int | None = None,
    reference: Sequence[float] | None = None,
    min_step: float = 1e-3,
    on_round: Callable[[Refinement], None] | None = None,
) -> Refinement:
    """Measure ``initial`` (M0, N), then rounds of ``propose`` until ``budget`` mixes in all.

    ``evaluate(mixes (B, N)) -> means (B, K)`` measures a batch in the objectives' own units
    (NaN where a mix could not be scored); plug in the batched engine and its cache. ``batch``
    new mixes per round (default: half the initial grid, at least N + 1); fewer when the budget
    or the front runs out. ``reference`` (K,) for the rounds' hypervolume (default:
    ``explorer.frontier.default_reference`` of the initial means, then fixed).
    ``on_round(refinement)`` is called after every round, the initial grid included.
    """
    initial = np.asarray(initial, dtype=np.float64)
    if initial.ndim != 2 or len(initial) == 0:
        raise SoupError(
            f"the initial grid must be a non-empty (mixes, adapters) table, got shape {initial.shape}"
        )
    budget = int(budget)
    if budget < len(initial):
        raise SoupError(
            f"a budget of {budget} mixes does not cover the {len(initial)} of the initial grid: "
            "raise the budget or start from a coarser grid"
        )
    n = initial.shape[1]
    batch = int(batch) if batch is not None else max(n + 1, len(initial) // 2)
    if batch < 1:
        raise SoupError(f"batch must be at least 1 mix per round, got {batch}")
    directions = tuple(directions)
    means = _measure(evaluate, initial, len(directions))
    ref = np.asarray(reference, dtype=np.float64) if reference is not None else None
    if ref is None:
        ok = np.isfinite(means).all(axis=1)
        ref = default_reference(means[ok], directions) if ok.any() else np.zeros(len(directions))
    result = Refinement(initial, means, directions, ref)
    new = len(initial)
    while True:
        result.rounds.append(
            Round(
                new=new,
                evaluated=len(result.weights),
                pareto=int(result.pareto.sum()),
                hypervolume=hypervolume(result.means, directions, ref),
            )
        )
        if on_round is not None:
            on_round(result)
        room = min(batch, budget - len(result.weights))  # propose returns none when room <= 0
        mixes = propose(result.weights, result.means, directions, room, min_step=min_step)
        if len(mixes) == 0:
            return result
        result.weights = np.concatenate([result.weights, mixes])
        result.means = np.concatenate([result.means, _measure(evaluate, mixes, len(directions))])
        new = len(mixes)


def _measure(evaluate: Callable[[np.ndarray], np.ndarray], mixes: np.ndarray, k: int) -> np.ndarray:
    out = np.asarray(evaluate(mixes), dtype=np.float64)
    if out.shape != (len(mixes), k):
        raise SoupError(
            f"evaluate must return means of shape (mixes={len(mixes)}, objectives={k}), got {out.shape}"
        )
    return out


__all__ = ["Refinement", "Round", "hypervolume", "propose", "refine"]
