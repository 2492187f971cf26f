"""Brushing the grid's mixes: which mixes per-axis ranges keep, and the parallel-coordinates scaling."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import SoupError
from explorer.frontier.brush import Axes, brush_axes, kept_mask, kept_mixes, normalized, unit_to_value
from explorer.frontier.results import means, mix_weights
from tests.synthetic import synthetic_results

AXES = Axes(
    names=("up", "down", "w_a"),
    values=np.array([[1.0, 10.0, 0.0], [2.0, 20.0, 0.5], [3.0, 30.0, 1.0], [np.nan, np.nan, 0.25]]),
    directions=("maximize", "minimize", ""),
)


def test_no_range_keeps_every_mix_even_unmeasured_ones():
    assert kept_mask(AXES, {}).tolist() == [True, True, True, True]


def test_ranges_on_several_axes_keep_their_intersection_ends_included():
    assert kept_mask(AXES, {"up": (2.0, 3.0)}).tolist() == [False, True, True, False]
    assert kept_mask(AXES, {"up": (3.0, 1.0), "down": (10.0, 20.0)}).tolist() == [True, True, False, False]


def test_a_weight_range_keeps_unmeasured_mixes_an_objective_range_does_not():
    assert kept_mask(AXES, {"w_a": (0.2, 0.6)}).tolist() == [False, True, False, True]


def test_an_unknown_axis_is_refused_with_the_axes():
    with pytest.raises(SoupError, match="the axes are"):
        kept_mask(AXES, {"nope": (0, 1)})


def test_normalized_puts_the_better_end_on_top_and_inverts():
    unit, low, high = normalized(AXES)
    assert unit[:3, 0].tolist() == [0.0, 0.5, 1.0]  # maximized: larger is higher
    assert unit[:3, 1].tolist() == [1.0, 0.5, 0.0]  # minimized: smaller is higher
    assert np.isnan(unit[3, 0])
    for a, axis in enumerate(AXES.names):
        for m in range(3):
            assert unit_to_value(AXES, axis, unit[m, a], low, high) == pytest.approx(AXES.values[m, a])


def test_six_objectives_and_five_adapters():
    ds = synthetic_results(adapters=5, objectives=6)
    axes = brush_axes(ds)
    assert axes.names == ("o0", "o1", "o2", "o3", "o4", "o5", "w_a0", "w_a1", "w_a2", "w_a3", "w_a4")
    mean, w = means(ds), mix_weights(ds)
    o4 = np.sort(mean[:, 4])
    low, high = o4[3], o4[-4]
    ranges = {"o4": (low, high), "w_a1": (0.0, 0.5)}
    expected = (mean[:, 4] >= low) & (mean[:, 4] <= high) & (w[:, 1] <= 0.5)
    kept = kept_mixes(ds, ranges)
    assert kept is not None and kept.tolist() == expected.tolist()
    assert 0 < kept.sum() < len(kept)
    assert kept_mixes(ds, {"not an axis of this grid": (0, 1)}).all()  # another grid's brush
    assert kept_mixes(None, ranges) is None
