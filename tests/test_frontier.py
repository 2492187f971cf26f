"""Pareto masks, hypervolume and bootstrap intervals: hand-made cases with known answers, a brute-force
reference, and moocore (an independent implementation) as an oracle on random tables."""

from __future__ import annotations

import math

import moocore
import numpy as np
import pytest

from explorer.errors import SoupError
from explorer.frontier.pareto import bootstrap_mean_ci, default_reference, hypervolume, pareto_mask

MAX, MIN = "maximize", "minimize"


def brute_force(values, directions):
    v = np.asarray(values, dtype=float) * np.array([1 if d == MAX else -1 for d in directions])
    out = []
    for i, row in enumerate(v):
        if np.isnan(row).any():
            out.append(False)
            continue
        dominated = any(
            not np.isnan(o).any() and all(o >= row) and any(o > row) for j, o in enumerate(v) if j != i
        )
        out.append(not dominated)
    return out


def test_simple_front_maximize_both():
    values = [[1, 5], [2, 4], [3, 3], [2, 2], [0, 0]]
    assert pareto_mask(values, [MAX, MAX]).tolist() == [True, True, True, False, False]


def test_mixed_directions():
    # maximize the first, minimize the second (e.g. positive vs word count)
    values = [[0.9, 60], [0.5, 20], [0.4, 30], [0.95, 80], [0.9, 70]]
    assert pareto_mask(values, [MAX, MIN]).tolist() == [True, True, False, True, False]


def test_ties_and_duplicates():
    values = [[1, 1], [1, 1], [1, 0], [0, 1]]
    # the duplicates dominate the others, and do not dominate each other
    assert pareto_mask(values, [MAX, MAX]).tolist() == [True, True, False, False]


def test_nan_rows_are_never_optimal_and_never_dominate():
    values = [[math.nan, 100], [1, 1], [0, 2]]
    assert pareto_mask(values, [MAX, MAX]).tolist() == [False, True, True]


def test_matches_brute_force_on_random_tables():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 4, size=(15, 3)).astype(float)  # many ties
        values[rng.random(15) < 0.1, 0] = np.nan
        dirs = [MAX, MIN, MAX]
        assert pareto_mask(values, dirs).tolist() == brute_force(values, dirs)


def test_bad_shapes():
    with pytest.raises(SoupError, match="3 objectives in the scores but 2 directions"):
        pareto_mask(np.zeros((2, 3)), [MAX, MAX])
    with pytest.raises(SoupError, match="directions must be"):
        pareto_mask(np.zeros((2, 2)), [MAX, "up"])


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = bootstrap_mean_ci(rng.normal(1.0, 1.0, 20))
    large = bootstrap_mean_ci(rng.normal(1.0, 1.0, 2000))
    assert small[1] < small[0] < small[2]
    assert (large[2] - large[1]) < (small[2] - small[1]) / 5
    assert large[1] < 1.0 < large[2]
    assert bootstrap_mean_ci([2.0, 2.0, math.nan]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(x) for x in bootstrap_mean_ci([math.nan]))


def test_hypervolume_two_objectives_by_hand():
    values = [[1, 3], [2, 2], [3, 1], [1, 1]]  # a staircase; the last point is dominated
    assert hypervolume(values, [MAX, MAX], [0, 0]) == pytest.approx(3 + 2 + 1)
    # minimize the second objective: flip it and the reference
    flipped = [[x, -y] for x, y in values]
    assert hypervolume(flipped, [MAX, MIN], [0, 0]) == pytest.approx(6)


def test_hypervolume_three_objectives_against_a_grid_count():
    rng = np.random.default_rng(3)
    pts = rng.integers(1, 6, size=(8, 3)).astype(float)
    ref = np.zeros(3)
    grid = np.stack(np.meshgrid(*[np.arange(0.5, 6, 1.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    covered = sum(any(np.all(p >= g) for p in pts) for g in grid)  # unit cells dominated
    assert hypervolume(pts, [MAX] * 3, ref) == pytest.approx(covered)


def test_hypervolume_edge_cases():
    assert hypervolume([[1, 1], [1, 1]], [MAX, MAX], [0, 0]) == pytest.approx(1)  # duplicates count once
    assert hypervolume([[math.nan, 5], [1, 1]], [MAX, MAX], [0, 0]) == pytest.approx(1)  # NaN row ignored
    assert hypervolume([[-1, 5]], [MAX, MAX], [0, 0]) == 0.0  # does not beat the reference
    assert hypervolume([[math.nan, 1]], [MAX, MAX], [0, 0]) == 0.0


def test_default_reference_is_worse_than_every_mix():
    values = np.array([[0.5, 40.0], [0.9, 80.0]])
    ref = default_reference(values, [MAX, MIN])
    assert ref[0] < 0.5 and ref[1] > 80.0
    assert hypervolume(values, [MAX, MIN], ref) > 0


@pytest.mark.parametrize("k", [2, 3, 4])
def test_pareto_mask_agrees_with_moocore_and_hypervolume_with_slicing(k):
    rng = np.random.default_rng(k)
    for trial in range(25):
        n = int(rng.integers(1, 40))
        values = rng.normal(size=(n, k))
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties and duplicates
        dirs = [MAX if rng.random() < 0.5 else MIN for _ in range(k)]
        maximise = [d == MAX for d in dirs]
        assert (
            pareto_mask(values, dirs).tolist()
            == moocore.is_nondominated(values, maximise=maximise, keep_weakly=True).tolist()
        )
        ref = default_reference(values, dirs)
        signs = np.array([1.0 if d == MAX else -1.0 for d in dirs])
        assert hypervolume(values, dirs, ref) == pytest.approx(
            slice_volume(values * signs - ref * signs), rel=1e-9, abs=1e-12
        )


def slice_volume(points: np.ndarray) -> float:
    """An independent oracle: the volume dominated by ``points`` (n, k) over the origin, maximizing
    every coordinate, by recursive slicing (points not above the origin everywhere add nothing)."""
    points = points[(points > 0).all(axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(points[:, 0].max())
    order = np.argsort(-points[:, -1], kind="stable")
    p = points[order]
    heights = np.append(p[:, -1], 0.0)
    volume = 0.0
    for i in range(len(p)):
        slab = heights[i] - heights[i + 1]
        if slab > 0:
            volume += slab * slice_volume(p[: i + 1, :-1])
    return volume
