"""Pareto fronts and bootstrap intervals over mixes' objective scores.

Convention: scores are "as measured" and every function takes each objective's direction
(``"maximize"`` or ``"minimize"``); they are turned into "higher is better" here and only here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from explorer.errors import SoupError
from explorer.objectives import MAXIMIZE, MINIMIZE


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
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    return float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """The volume of objective space dominated by ``values`` (n, k) and bounded by ``reference`` (k,).

    ``reference`` is in the objectives' own units and directions (a point every mix should
    beat, e.g. slightly worse than the worst mix). Rows with NaN, and rows that do not beat the
    reference on every objective, add nothing. Exact for any k (recursive slicing); meant for
    the few objectives and the tens to hundreds of mixes of a soup grid.
    """
    v = _oriented(values, directions)
    ref = _oriented(np.asarray(reference, dtype=np.float64)[None, :], directions)[0]
    v = v[~np.isnan(v).any(axis=1)]
    v = v[np.all(v > ref, axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[pareto_mask(v, [MAXIMIZE] * v.shape[1])]
    return float(_slice_volume(v - ref))


def _slice_volume(points: np.ndarray) -> float:
    """Volume dominated by positive ``points`` (n, k) over the origin, maximizing every coordinate."""
    if points.shape[1] == 1:
        return float(points[:, 0].max())
    order = np.argsort(-points[:, -1], kind="stable")
    p = points[order]
    heights = np.append(p[:, -1], 0.0)
    volume = 0.0
    for i in range(len(p)):
        slab = heights[i] - heights[i + 1]
        if slab > 0:
            volume += slab * _slice_volume(p[: i + 1, :-1])
    return volume


def default_reference(values: np.ndarray, directions: Sequence[str], *, margin: float = 0.1) -> np.ndarray:
    """A reference point slightly worse than the worst mix on every objective (in own units):
    worst - margin * range (range 1 when all mixes tie)."""
    v = _oriented(values, directions)
    worst, best = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    span = np.where(best > worst, best - worst, 1.0)
    ref = worst - margin * span
    signs = np.array([1.0 if d == MAXIMIZE else -1.0 for d in directions])
    return ref * signs


# ------------------------------------------------------------------------------------------------
# summaries of a results dataset (see explorer.evaluation for its layout)


def summarize(ds, *, n_boot: int = 500, level: float = 0.95, seed: int = 0, reference=None):
    """Add per-mix summaries to a results dataset and return it (a new object).

    Adds ``mean``, ``ci_low``, ``ci_high`` (mix, objective): the mean over prompts of each
    prompt's mean over samples, with a percentile bootstrap interval over prompts; ``pareto``
    (mix): Pareto-optimal by the means and the objectives' directions; and the attributes
    ``hypervolume``, ``hypervolume_ci`` and ``reference`` (the reference point, in the
    objectives' units, default ``default_reference`` of the means). Rows not yet done are
    ignored, so partial results summarize too.
    """
    directions = [str(d) for d in ds["direction"].values]
    per_prompt = ds["score"].where(ds["done"]).mean("sample", skipna=True)  # (mix, prompt, objective)
    arr = per_prompt.transpose("mix", "prompt", "objective").values
    with warnings.catch_warnings():  # partial results have all-NaN slices: NaN means, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(arr, axis=1)  # (M, K)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, arr.shape[1], size=(n_boot, arr.shape[1]))  # same resample for every mix
        boot = np.stack([np.nanmean(arr[:, i, :], axis=1) for i in idx])  # (B, M, K)
        alpha = (1 - level) / 2
        low, high = np.nanquantile(boot, alpha, axis=0), np.nanquantile(boot, 1 - alpha, axis=0)
    out = ds.copy()
    dims = ("mix", "objective")
    out["mean"], out["ci_low"], out["ci_high"] = (dims, mean), (dims, low), (dims, high)
    out["pareto"] = ("mix", pareto_mask(mean, directions) if len(mean) else np.zeros(0, bool))
    valid = ~np.isnan(mean).any(axis=1)
    if valid.any():
        ref = np.asarray(reference if reference is not None else default_reference(mean[valid], directions))
        hv_boot = [hypervolume(b, directions, ref) for b in boot[: min(n_boot, 200)]]
        out.attrs["hypervolume"] = hypervolume(mean, directions, ref)
        out.attrs["hypervolume_ci"] = [
            float(np.quantile(hv_boot, alpha)),
            float(np.quantile(hv_boot, 1 - alpha)),
        ]
        out.attrs["reference"] = [float(r) for r in ref]
    out.attrs["ci_level"] = level
    return out


def estimate(ds, weights: Sequence[float], *, power: float = 2.0) -> np.ndarray:
    """A quick estimate of a mix's mean scores (K,) from the grid's means, without generating.

    ``weights`` (N,) in the dataset's adapter order. Two adapters: linear interpolation along
    the second weight (clamped at the ends); more: inverse-distance weighting of the measured
    mixes (exact on a grid point). Mixes not measured yet are skipped; NaN when none is.
    """
    w = np.asarray(weights, dtype=np.float64)
    grid = ds["weights"].values  # (M, N)
    mean = ds["mean"].transpose("mix", "objective").values  # (M, K)
    ok = ~np.isnan(mean).any(axis=1)
    grid, mean = grid[ok], mean[ok]
    if len(grid) == 0:
        return np.full(ds.sizes["objective"], np.nan)
    if grid.shape[1] == 2 and np.allclose(grid.sum(axis=1), 1.0) and len(grid) > 1:
        order = np.argsort(grid[:, 1])
        return np.array([np.interp(w[1], grid[order, 1], mean[order, k]) for k in range(mean.shape[1])])
    dist = np.linalg.norm(grid - w, axis=1)
    if dist.min() < 1e-12:
        return mean[dist.argmin()]
    inv = 1.0 / dist**power
    return (inv[:, None] * mean).sum(axis=0) / inv.sum()


def mix_scores(ds, weights) -> dict | None:
    """The measured scores of the mix ``weights`` (name -> weight) when the grid holds exactly it:
    ``{objective: {mean, ci_low, ci_high, direction}}``, else None."""
    names = [str(a) for a in ds["adapter"].values]
    if sorted(names) != sorted(weights):
        raise SoupError(f"the frontier mixes {names}, not the adapters {sorted(weights)}")
    target = np.array([float(weights[n]) for n in names])
    hits = np.flatnonzero(np.abs(ds["weights"].values - target).max(axis=1) < 1e-9)
    if len(hits) == 0 or "mean" not in ds:
        return None
    m = int(hits[0])
    return {
        str(o): {v: float(ds[v].values[m, k]) for v in ("mean", "ci_low", "ci_high")}
        | {"direction": str(ds["direction"].values[k])}
        for k, o in enumerate(ds["objective"].values)
    }
