"""Weight grids on the simplex."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import SoupError
from explorer.frontier.grid import weight_grid


def test_sizes_match_the_lattice_formula():
    assert len(weight_grid(["a", "b"], 10)) == 11
    assert len(weight_grid(["a", "b", "c"], 9)) == 55  # the centre (3/9 each) is on this lattice
    assert len(weight_grid(["a", "b", "c"], 10)) == 66 + 1  # 66 lattice points + the centre (1/3 each)
    assert len(weight_grid(["a", "b", "c", "d"], 4)) == 35  # C(4+3, 3)


def test_corners_and_centre_are_always_in():
    grid = weight_grid(["a", "b", "c"], 2)  # the centre (1/3 each) is not on this lattice
    for row in [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]]:
        assert np.isclose(grid, row).all(axis=1).any()
    assert len(grid) == 6 + 1
    assert np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()


def test_two_adapters_at_resolution_ten_step_by_tenths():
    grid = weight_grid(["a", "b"], 10)
    assert sorted(grid[:, 1].tolist()) == pytest.approx([i / 10 for i in range(11)])


def test_margin_adds_points_just_outside_the_simplex():
    plain = weight_grid(["a", "b"], 10)
    wide = weight_grid(["a", "b"], 10, margin=0.2)
    outside = wide[len(plain) :]
    assert len(outside) > 0 and (outside < 0).any(axis=1).all()
    assert np.allclose(wide.sum(axis=1), 1.0)
    assert wide.min() == pytest.approx(-0.2)


def test_user_points_are_added_once():
    grid = weight_grid(["a", "b"], 2, points=[{"a": 0.3, "b": 0.7}, {"a": 1.0}, {"a": 2.0, "b": -1.0}])
    assert len(grid) == 3 + 2  # {"a": 1.0} is a corner already
    assert grid[-1].tolist() == [2.0, -1.0]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(names=["a", "b"], resolution=0), "resolution must be a whole number >= 1"),
        (dict(names=["a", "b"], resolution=2.5), "resolution must be a whole number >= 1"),
        (dict(names=["a"], resolution=10), "at least 2 adapters"),
        (dict(names=["a", "b"], resolution=4, margin=-0.1), "margin must be >= 0"),
        (dict(names=["a", "b"], resolution=4, points=[{"c": 1.0}]), r"names \['c'\], which are not adapters"),
    ],
)
def test_bad_grids(kwargs, words):
    with pytest.raises(SoupError, match=words):
        weight_grid(**kwargs)
