"""Adaptive refinement: which mixes a round proposes (worked out by hand), the driver, the gain."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import SoupError
from explorer.frontier.adaptive import _edges, propose, refine
from explorer.frontier.grid import simplex_lattice
from explorer.frontier.pareto import default_reference, hypervolume
from explorer.frontier.pareto import hypervolume as exact_hypervolume

MAX, MIN = "maximize", "minimize"
NAN = float("nan")


def line(ts) -> np.ndarray:
    """Two-adapter mixes (1 - t, t), (len(ts), 2)."""
    t = np.asarray(ts, dtype=float)
    return np.stack([1 - t, t], axis=1)


@pytest.mark.parametrize("directions", [[MAX, MAX], [MAX, MIN], [MIN, MAX, MIN]])
def test_hypervolume_matches_the_exact_reference(directions):
    rng = np.random.default_rng(len(directions))
    means = rng.normal(size=(40, len(directions)))
    means[3] = NAN
    ref = default_reference(means[~np.isnan(means).any(axis=1)], directions)
    assert hypervolume(means, directions, ref) == pytest.approx(
        exact_hypervolume(means, directions, ref), rel=1e-12
    )
    assert hypervolume(means[:0], directions, ref) == 0.0


def test_edges_of_lattices():
    # 2 adapters: consecutive mixes along the segment, whatever the order given
    pairs = _edges(line([0.5, 0.0, 1.0, 0.25]))
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (0, 3), (1, 3)]
    # 3 adapters at resolution 2: 6 mixes, 4 triangles, 9 edges, each joining neighbours 1/2 apart
    lattice = simplex_lattice(3, 2)
    pairs = _edges(lattice)
    assert len(pairs) == 9
    steps = np.abs(lattice[pairs[:, 0]] - lattice[pairs[:, 1]]).max(axis=1)
    np.testing.assert_allclose(steps, 0.5)


def test_propose_two_adapters_by_hand():
    # t = 0 and t = .5 are Pareto-optimal, t = 1 is dominated by t = .5. Normalised by the front
    # (ideal (1, .6), nadir (.6, 0)) the mixes sit at (1, 0), (0, 1), (-1.5, .83): the midpoint of
    # the first edge is estimated at (.5, .5), which adds hypervolume; that of the second edge is
    # dominated, so it comes next only by its length.
    weights, means = line([0.0, 0.5, 1.0]), np.array([[1.0, 0.0], [0.6, 0.6], [0.0, 0.5]])
    np.testing.assert_allclose(propose(weights, means, [MAX, MAX], 1), line([0.25]))
    np.testing.assert_allclose(propose(weights, means, [MAX, MAX], 5), line([0.25, 0.75]))
    # the same scores with the second objective measured as a cost
    np.testing.assert_allclose(propose(weights, means * [1, -1], [MAX, MIN], 5), line([0.25, 0.75]))
    assert propose(weights, means, [MAX, MAX], 0).shape == (0, 2)


def test_propose_skips_measured_mixes_and_nan_rows():
    # t = .25 is measured but failed (NaN): it is not proposed again and is no edge's end
    weights = line([0.0, 0.5, 1.0, 0.25])
    means = np.array([[1.0, 0.0], [0.6, 0.6], [0.0, 0.5], [NAN, NAN]])
    np.testing.assert_allclose(propose(weights, means, [MAX, MAX], 5), line([0.75]))


def test_propose_stops_at_min_step():
    weights = line([0.0, 0.001, 0.002])
    means = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    assert propose(weights, means, [MAX, MAX], 5).shape == (0, 2)
    assert propose(weights, means, [MAX, MAX], 5, min_step=1e-4).shape == (2, 2)


def test_propose_three_adapters_refines_around_the_front():
    # one mix, the first corner, dominates all others: only the edges from it are split
    lattice = simplex_lattice(3, 2)
    means = np.stack([-np.linalg.norm(lattice - [1, 0, 0], axis=1)] * 2, axis=1)  # (6, 2)
    new = propose(lattice, means, [MAX, MAX], 10)
    expected = {(0.75, 0.25, 0.0), (0.75, 0.0, 0.25)}
    assert {tuple(r) for r in new.tolist()} == expected


def test_propose_validates_input():
    with pytest.raises(SoupError, match="one row per mix"):
        propose(line([0, 1]), np.zeros((3, 2)), [MAX, MAX], 2)
    with pytest.raises(SoupError, match="directions"):
        propose(line([0, 1]), np.zeros((2, 2)), [MAX, "up"], 2)


# ------------------------------------------------------------------------------------------------
# the driver


def interference(weights: np.ndarray) -> np.ndarray:
    """A two-adapter surface where a little mixing hurts: (M, 2) -> (M, 2) [score max, words min]."""
    t = weights[:, 1]

    def g(x):  # a logistic threshold at 0.5, 0 at x = 0 and 1 at x = 1
        s = lambda z: 1 / (1 + np.exp(-(z - 0.5) / 0.08))  # noqa: E731
        return (s(x) - s(0)) / (s(1) - s(0))

    spread = 4 * t * (1 - t)
    return np.stack([g(1 - t) - 0.2 * spread, 80 - 60 * (g(t) - 0.2 * spread)], axis=1)


def test_refine_respects_the_budget_and_records_rounds():
    calls = []

    def evaluate(mixes):
        calls.append(len(mixes))
        return interference(mixes)

    seen = []
    result = refine(evaluate, simplex_lattice(2, 4), [MAX, MIN], budget=12, batch=3, on_round=seen.append)
    assert calls == [5, 3, 3, 1] and len(result.weights) == 12 == len(result.means)
    assert [r.new for r in result.rounds] == calls
    assert [r.evaluated for r in result.rounds] == [5, 8, 11, 12]
    hv = [r.hypervolume for r in result.rounds]
    assert hv == sorted(hv) and hv[-1] > hv[0]
    assert len(seen) == 4
    assert len(np.unique(np.round(result.weights, 10), axis=0)) == 12  # nothing measured twice
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0)  # stays on the simplex
    assert result.pareto.sum() == result.rounds[-1].pareto


def test_refine_reaches_the_uniform_hypervolume_with_half_the_mixes():
    directions = [MAX, MIN]
    uniform = interference(simplex_lattice(2, 40))  # 41 mixes
    reference = default_reference(uniform, directions)
    target = hypervolume(uniform, directions, reference)
    result = refine(interference, simplex_lattice(2, 4), directions, budget=20, reference=reference)
    assert len(result.weights) <= 20
    assert result.rounds[-1].hypervolume >= target


def test_refine_errors():
    with pytest.raises(SoupError, match="does not cover"):
        refine(interference, simplex_lattice(2, 4), [MAX, MIN], budget=3)
    with pytest.raises(SoupError, match="evaluate must return"):
        refine(lambda m: np.zeros((len(m), 3)), simplex_lattice(2, 4), [MAX, MIN], budget=8)
    with pytest.raises(SoupError, match="non-empty"):
        refine(interference, np.zeros((0, 2)), [MAX, MIN], budget=8)
