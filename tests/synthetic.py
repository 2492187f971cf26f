"""Synthetic summarized results of any size, for the views of every objective at once (no model).

``synthetic_results(adapters=5, objectives=6)`` is a complete grid on the simplex (resolution 2:
15 mixes for 5 adapters) whose scores are smooth functions of the weights, so that mixes differ
on every objective; the first half of the objectives is maximized, the rest minimized.
"""

from __future__ import annotations

import numpy as np

from explorer.frontier.grid import GridSpec, weight_grid
from explorer.frontier.results import empty_results, fill_rows, summarize
from explorer.objectives import Objective


def _constant(prompts, responses):
    return [0.0] * len(responses)


def synthetic_results(
    *, adapters: int = 5, objectives: int = 6, resolution: int = 2, prompts: int = 2, seed: int = 0
):
    """A complete, summarized results dataset: ``adapters`` adapters ``a0..``, ``objectives``
    objectives ``o0..`` (the first half maximized), the simplex lattice at ``resolution``."""
    names = tuple(f"a{i}" for i in range(adapters))
    objs = tuple(
        Objective(f"o{k}", _constant, "maximize" if k < (objectives + 1) // 2 else "minimize")
        for k in range(objectives)
    )
    texts = tuple(f"prompt {p}" for p in range(prompts))
    spec = GridSpec(mixes=weight_grid(names, resolution), prompts=texts, objectives=objs)
    ds = empty_results(spec, adapters=names, fingerprint={})
    rng = np.random.default_rng(seed)
    w = np.asarray(spec.mixes, dtype=np.float64)  # (M, N)
    coef = rng.normal(size=(adapters, objectives))  # (N, K)
    base = w @ coef + 0.3 * (w**2) @ rng.normal(size=(adapters, objectives))  # (M, K)
    rows = [(m, p, 0) for m in range(len(w)) for p in range(prompts)]
    scores = np.array([base[m] + 0.05 * (p - (prompts - 1) / 2) for m, p, _ in rows])
    fill_rows(ds, rows, ["a response"] * len(rows), [3] * len(rows), [True] * len(rows), scores)
    ds.attrs["complete"] = 1
    return summarize(ds)
