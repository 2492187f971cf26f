"""Brushing the grid's mixes: which mixes a set of per-axis ranges keeps, and the axes they range over.

An axis is one objective (its per-mix mean, in its own units) or one adapter's weight (named
``w_<adapter>``, as in the frontier's CSV download). A brush is a mapping ``axis -> (low, high)``;
a mix is kept when its value on every brushed axis lies in the range (ends included). A mix not
measured yet (NaN mean) is kept only while no objective is brushed. No Panel, HoloViews or Bokeh here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from explorer.errors import SoupError
from explorer.frontier.results import adapter_names, directions, means, mix_weights, objective_names

WEIGHT_PREFIX = "w_"

Ranges = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class Axes:
    """The values a brush ranges over: ``values`` (M, A), one column per axis ``names`` (A,),
    each axis's ``direction`` (``"maximize"``/``"minimize"`` for objectives, ``""`` for weights)."""

    names: tuple[str, ...]
    values: np.ndarray
    directions: tuple[str, ...]

    def column(self, axis: str) -> np.ndarray:
        """(M,) the mixes' values on ``axis``."""
        if axis not in self.names:
            raise SoupError(f"no axis {axis!r} to brush: the axes are {list(self.names)}")
        return self.values[:, self.names.index(axis)]


def weight_axis(adapter: str) -> str:
    """The axis name of an adapter's weight."""
    return f"{WEIGHT_PREFIX}{adapter}"


def brush_axes(ds: xr.Dataset, *, weights: bool = True) -> Axes:
    """The axes of a summarized results dataset: its objectives' means, then (``weights``) the
    adapters' weights. (M, K + N) values."""
    objectives = objective_names(ds)
    columns, names, dirs = [means(ds)], list(objectives), list(directions(ds))
    if weights:
        extra = [weight_axis(a) for a in adapter_names(ds)]
        clash = sorted(set(extra) & set(objectives))
        if clash:
            raise SoupError(f"objectives named like adapter weight axes ({clash}): rename the objectives")
        columns.append(mix_weights(ds))
        names += extra
        dirs += [""] * len(extra)
    return Axes(tuple(names), np.concatenate(columns, axis=1), tuple(dirs))


def kept_mask(axes: Axes, ranges: Ranges) -> np.ndarray:
    """(M,) bool: the mixes whose value on every brushed axis lies in its ``(low, high)`` range
    (ends included, the ends in either order). No range: every mix is kept."""
    keep = np.ones(axes.values.shape[0], dtype=bool)
    for axis, (a, b) in ranges.items():
        low, high = min(float(a), float(b)), max(float(a), float(b))
        column = axes.column(axis)
        with np.errstate(invalid="ignore"):
            keep &= (column >= low) & (column <= high)  # NaN (not measured yet) is never in a range
    return keep


def kept_mixes(ds: xr.Dataset | None, ranges: Ranges) -> np.ndarray | None:
    """``kept_mask`` over a results dataset's axes (None without a summarized dataset). Ranges on
    axes the dataset lacks (another grid's objectives) are ignored."""
    if ds is None or "mean" not in ds:
        return None
    axes = brush_axes(ds)
    return kept_mask(axes, {a: r for a, r in ranges.items() if a in axes.names})


def normalized(axes: Axes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each axis mapped onto [0, 1] for a parallel-coordinates plot, with 1 the better end of an
    objective (a minimized objective is flipped) and the larger weight at the top.

    Returns (unit (M, A), low (A,), high (A,)): ``low``/``high`` are the finite extremes of each
    column (an axis where every mix ties spans its value +- 0.5, so that it sits in the middle).
    NaN stays NaN."""
    v = axes.values
    finite = np.where(np.isfinite(v), v, np.nan)
    with warnings.catch_warnings():  # an axis not measured yet: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
    low, high = np.where(np.isfinite(low), low, 0.0), np.where(np.isfinite(high), high, 1.0)
    tie = high <= low
    low, high = np.where(tie, low - 0.5, low), np.where(tie, high + 0.5, high)
    unit = (v - low) / (high - low)
    flip = np.array([d == "minimize" for d in axes.directions])
    unit[:, flip] = 1.0 - unit[:, flip]
    return unit, low, high


def unit_to_value(axes: Axes, axis: str, unit: float, low: np.ndarray, high: np.ndarray) -> float:
    """The inverse of ``normalized`` on one axis: a height in [0, 1] back in the axis's units."""
    a = axes.names.index(axis)
    u = 1.0 - unit if axes.directions[a] == "minimize" else unit
    return float(low[a] + u * (high[a] - low[a]))
