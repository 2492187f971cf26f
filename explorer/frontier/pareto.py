"""Pareto fronts, hypervolume and bootstrap intervals over mixes' objective scores: numeric kernels
on plain arrays (the results dataset and its summaries are ``explorer.frontier.results``).

Convention: scores are "as measured" and every function takes each objective's direction
(``"maximize"`` or ``"minimize"``); they are turned into "higher is better" here and only here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import moocore
import numpy as np
from scipy.stats import bootstrap

from explorer.direction import MAXIMIZE, MINIMIZE
from explorer.errors import SoupError


def _oriented(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """(n, k) scores with minimized objectives negated, so that higher is better everywhere."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise SoupError(f"scores must be a (mixes, objectives) table, got shape {values.shape}")
    if len(directions) != values.shape[1]:
        raise SoupError(f"{values.shape[1]} objectives in the scores but {len(directions)} directions")
    bad = [d for d in directions if d not in (MAXIMIZE, MINIMIZE)]
    if bad:
        raise SoupError(f"directions must be '{MAXIMIZE}' or '{MINIMIZE}', got {bad}")
    signs = np.array([1.0 if d == MAXIMIZE else -1.0 for d in directions])
    return values * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows are Pareto-optimal: (n,) bool.

    ``values`` is (n, k), one row per mix, one column per objective. A row is dominated when
    another row is at least as good on every objective and strictly better on one. Rows with
    a NaN score are never optimal and never dominate; duplicate optimal rows are all optimal.
    """
    v = _oriented(values, directions)
    n = v.shape[0]
    valid = ~np.isnan(v).any(axis=1)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        others = v[valid]
        dominated = np.any(np.all(others >= v[i], axis=1) & np.any(others > v[i], axis=1))
        mask[i] = not dominated
    return mask if n else np.zeros(0, dtype=bool)


def bootstrap_mean_ci(
    samples: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``samples`` (n,) and its percentile bootstrap interval: (mean, low, high). NaNs are dropped."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    if x.size == 1:  # every resample is the one value (scipy refuses a sample of one)
        return (float(x[0]),) * 3
    ci = bootstrap(
        (x,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile", rng=seed
    ).confidence_interval
    return float(x.mean()), float(ci.low), float(ci.high)


def paired_bootstrap(
    values: np.ndarray, *, axis: int, n_boot: int, level: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN-skipping means over ``axis`` with percentile bootstrap intervals, resampling ``axis`` once
    for every other index (paired: the same prompts for every mix).

    Returns (low, high, distribution): ``values`` with ``axis`` removed for ``low``/``high``, and a
    trailing resample axis of length ``n_boot`` for ``distribution``. NaN where a slice is all NaN.
    """
    nanmean: Callable[..., np.ndarray] = np.nanmean
    with warnings.catch_warnings():  # partial results have all-NaN slices: NaN means, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        if values.shape[axis] < 2:  # scipy refuses a sample of one: every resample is that sample
            mean = nanmean(values, axis=axis)
            return mean, mean, np.repeat(mean[..., None], n_boot, axis=-1)
        result = bootstrap(
            (values,),
            nanmean,
            axis=axis,
            vectorized=True,
            n_resamples=n_boot,
            confidence_level=level,
            method="percentile",
            rng=seed,
        )
    ci = result.confidence_interval
    return np.asarray(ci.low), np.asarray(ci.high), np.asarray(result.bootstrap_distribution)


def hypervolume(
    values: np.ndarray, directions: Sequence[str], reference: Sequence[float] | np.ndarray
) -> float:
    """The volume of objective space dominated by ``values`` (n, k) and bounded by ``reference`` (k,).

    ``reference`` is in the objectives' own units and directions (a point every mix should
    beat, e.g. slightly worse than the worst mix). Rows with NaN, and rows that do not beat the
    reference on every objective, add nothing. Computed by moocore: the one hypervolume of the
    project (grids, their bootstrap intervals, adaptive rounds).
    """
    v = _oriented(values, directions)
    ref = _oriented(np.asarray(reference, dtype=np.float64)[None, :], directions)[0]
    v = v[~np.isnan(v).any(axis=1)]
    v = v[np.all(v > ref, axis=1)]
    if len(v) == 0:
        return 0.0
    return float(moocore.hypervolume(v, ref=ref, maximise=True))


def default_reference(values: np.ndarray, directions: Sequence[str], *, margin: float = 0.1) -> np.ndarray:
    """A reference point slightly worse than the worst mix on every objective (in own units):
    worst - margin * range (range 1 when all mixes tie)."""
    v = _oriented(values, directions)
    worst, best = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    span = np.where(best > worst, best - worst, 1.0)
    ref = worst - margin * span
    signs = np.array([1.0 if d == MAXIMIZE else -1.0 for d in directions])
    return ref * signs
