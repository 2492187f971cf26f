"""An adaptive frontier grid: a coarse lattice, then rounds of mixes where the front is
(``explorer.frontier.adaptive``), each round one batched grid run (``explorer.frontier.evaluation.run_grid``, on
this process's soup or on Ray workers) through the results cache; all rounds' mixes end up in one
results dataset, as a uniform grid's do.

explorer grid --adaptive --resolution 4 --budget 40 --out front.nc
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import xarray as xr

from explorer.frontier.adaptive import Refinement, Round, refine
from explorer.frontier.evaluation import ChunkExecutor, Progress, run_grid
from explorer.frontier.grid import GridSpec
from explorer.frontier.results import concat_results, means


def evaluate_adaptive(
    executor: ChunkExecutor,
    spec: GridSpec,
    *,
    budget: int,
    round_size: int | None = None,
    batch_size: int | None = None,
    cache: Path | str | None = None,
    on_chunk: Callable[[xr.Dataset, Progress], None] | None = None,
    on_round: Callable[[xr.Dataset, Round], None] | None = None,
) -> xr.Dataset:
    """Evaluate ``spec.mixes`` (the coarse grid), then rounds of mixes proposed where the front is
    (``explorer.frontier.adaptive.refine``) until ``budget`` mixes in all; returns every mix's results as
    one summarized dataset, mixes in the order measured.

    Each round is one ``run_grid`` over its new mixes on ``executor`` (``LocalExecutor(soup)``,
    or Ray workers), with ``batch_size``, ``cache`` (a round is cached under its own key, so a
    rerun reads the finished rounds back) and ``on_chunk`` passed on. ``round_size``: new mixes
    per round (default: ``refine``'s, half the coarse grid). ``on_round(results so far, round)``
    after every round, the coarse grid's included. ``attrs["adaptive"]`` (JSON) holds the budget and each round's new mixes, mixes
    so far, Pareto-optimal mixes and hypervolume (against the reference point fixed after the
    coarse grid; the dataset's own ``hypervolume`` attribute uses the union's).
    """
    parts: list[xr.Dataset] = []  # one per round

    def evaluate(mixes: np.ndarray) -> np.ndarray:  # (B, N) -> (B, K) means
        ds = run_grid(
            executor, replace(spec, mixes=mixes), batch_size=batch_size, cache=cache, on_chunk=on_chunk
        )
        parts.append(ds)
        return means(ds)

    latest: list[xr.Dataset] = []  # every round's mixes so far, summarized together

    def after_round(refinement: Refinement) -> None:
        ds = concat_results(parts)
        rounds = [asdict(r) for r in refinement.rounds]
        ds.attrs["adaptive"] = json.dumps({"budget": int(budget), "rounds": rounds})
        latest[:] = [ds]
        if on_round is not None:
            on_round(ds, refinement.rounds[-1])

    directions = [o.direction for o in spec.objectives]
    refine(
        evaluate, np.asarray(spec.mixes), directions, budget=budget, batch=round_size, on_round=after_round
    )
    return latest[0]  # refine ends with a round
