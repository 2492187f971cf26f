"""What a frontier grid evaluates (``GridSpec``), and its weight grids: the simplex lattice of N
adapters at resolution k, plus chosen points and margins.

The lattice holds every w with w_i = n_i / k, n_i >= 0 integers, sum_i n_i = k: k+1 mixes
for N=2, (k+1)(k+2)/2 for N=3 (66 at k=10). The corners (each adapter alone) and the centre
(1/N each) are always included. An extrapolation margin m adds the lattice points of the
simplex scaled about its centre until its corners reach weight -m on the other adapters,
that fall outside the plain simplex.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from explorer.decoding import SamplingConfig
from explorer.errors import SoupError
from explorer.methods import check_method
from explorer.mix import MAX_WEIGHT

if TYPE_CHECKING:  # the objectives' scorers import torch; a grid's description does not need it
    from explorer.objectives import Objective

DECIMALS = 10  # mixes are rounded to this many decimals, so that duplicates are found
MIN_OBJECTIVES = 2  # a frontier trades off at least two objectives
MAX_MIXES = 1_000_000  # a lattice larger than this is refused before it is made


def check_objectives(names: Sequence[str]) -> None:
    """The one check that a frontier has objectives to trade off (before any model is loaded)."""
    if len(names) < MIN_OBJECTIVES:
        raise SoupError(
            f"a frontier needs at least {MIN_OBJECTIVES} objectives to trade off, got {list(names)}: "
            "pass --objective twice or more"
        )


@dataclass(frozen=True)
class GridSpec:
    """What to evaluate: mixes (M, N) over prompts, samples per prompt, decoding, objectives, and
    how each mix combines the adapters (``methods``, one per mix; None: every mix a soup)."""

    mixes: np.ndarray  # (M, N), columns in the soup's adapter order
    prompts: tuple[str, ...]
    objectives: tuple[Objective, ...]
    samples: int = 1
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    methods: tuple[str, ...] | None = None  # (M,) explorer.mix.METHODS

    def __post_init__(self) -> None:
        check_objectives([o.name for o in self.objectives])
        if self.methods is not None:
            if len(self.methods) != len(self.mixes):
                raise SoupError(f"{len(self.methods)} methods given for {len(self.mixes)} mixes")
            for m in self.methods:
                check_method(m)
        if not self.prompts:
            raise SoupError("no prompts to evaluate: give a prompts file with one request per line")
        if int(self.samples) < 1:
            raise SoupError(f"samples must be at least 1, got {self.samples}")
        if self.samples > 1 and self.sampling.greedy:
            raise SoupError(
                f"{self.samples} samples per prompt with greedy decoding would all be equal: "
                "set a temperature > 0, or use --samples 1"
            )

    @classmethod
    def on_simplex(
        cls,
        names: Sequence[str],
        resolution: int,
        *,
        prompts: Sequence[str],
        objectives: Sequence[Objective],
        sampling: SamplingConfig,
    ) -> GridSpec:
        """The app's grid: the simplex lattice at ``resolution``, one sample per prompt."""
        return cls(
            mixes=weight_grid(names, resolution),
            prompts=tuple(prompts),
            objectives=tuple(objectives),
            samples=1,
            sampling=sampling,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.mixes), len(self.prompts), int(self.samples)

    @property
    def mix_methods(self) -> tuple[str, ...]:
        """Each mix's method, (M,)."""
        return self.methods if self.methods is not None else ("soup",) * len(self.mixes)

    def for_methods(self, methods: Sequence[str]) -> GridSpec:
        """The same grid evaluated under each of ``methods``: the mixes repeated once per method
        (method-major), so every method meets the same mixes, prompts and seeds."""
        methods = tuple(check_method(m) for m in methods)
        if methods == ("soup",):
            return self
        mixes = np.concatenate([np.asarray(self.mixes)] * len(methods))
        per_mix = tuple(m for m in methods for _ in range(len(self.mixes)))
        return GridSpec(mixes, self.prompts, self.objectives, self.samples, self.sampling, per_mix)


def simplex_lattice(n: int, k: int) -> np.ndarray:
    """All (M, n) points with coordinates in {0, 1/k, ..., 1} summing to 1, M = C(k+n-1, n-1).

    Generated directly (never by filtering the (k+1)^(n-1) cube, which hangs for 10 adapters);
    more than ``MAX_MIXES`` points are refused before any is made.
    """
    count = math.comb(k + n - 1, n - 1)
    if count > MAX_MIXES:
        raise SoupError(
            f"{n} adapters at resolution {k} make {count:,} mixes, more than {MAX_MIXES:,}: lower --resolution"
        )
    points = np.array(list(_compositions(n, k)), dtype=np.float64).reshape(count, n)
    return points[:, ::-1] / k


def _compositions(n: int, k: int) -> Iterator[tuple[int, ...]]:
    """Every (c_1, ..., c_n) of whole numbers >= 0 summing to k, in lexicographic order."""
    if n == 1:
        yield (k,)
        return
    for first in range(k + 1):
        for rest in _compositions(n - 1, k - first):
            yield (first, *rest)


def weight_grid(
    names: Sequence[str],
    resolution: int,
    *,
    margin: float = 0.0,
    points: Sequence[Mapping[str, float]] = (),
) -> np.ndarray:
    """The mixes to evaluate, (M, N) with columns in ``names`` order, without duplicates.

    Order: the lattice (corners and centre included), the margin points, then the user's
    ``points`` (a missing name is weight 0).
    """
    n = len(names)
    if n < 2:
        raise SoupError(f"a frontier needs at least 2 adapters to mix, got {list(names)}")
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or resolution < 1:
        raise SoupError(f"resolution must be a whole number >= 1 (10 gives steps of 0.1), got {resolution!r}")
    if not (np.isfinite(margin) and margin >= 0):
        raise SoupError(f"the extrapolation margin must be >= 0, got {margin}")
    lattice = simplex_lattice(n, int(resolution))
    rows = [lattice, np.eye(n), np.full((1, n), 1.0 / n)]
    if margin > 0:
        centre = 1.0 / n
        scaled = centre + (1.0 + n * margin) * (lattice - centre)  # corners reach -margin
        rows.append(scaled[(scaled < -1e-12).any(axis=1)])
    for p in points:
        unknown = sorted(set(p) - set(names))
        if unknown:
            raise SoupError(
                f"grid point {dict(p)} names {unknown}, which are not adapters; adapters: {list(names)}"
            )
        rows.append(np.array([[float(p.get(name, 0.0)) for name in names]]))
    grid = np.round(np.concatenate(rows), DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    if not np.isfinite(grid).all():
        raise SoupError("grid points must be finite numbers")
    if np.abs(grid).max() > MAX_WEIGHT:
        raise SoupError(
            f"grid weights reach {np.abs(grid).max():g}, beyond +-{MAX_WEIGHT:g}: lower --margin or the "
            "--point weights (a few units at most)"
        )
    _, first = np.unique(grid, axis=0, return_index=True)
    return grid[np.sort(first)]


MAX_ROWS = 100_000  # a grid of more rows starts only when confirmed (explorer grid --yes)
# Conservative new tokens/s per device (one soup, batched generate), for the estimate printed before a
# grid starts; assumptions, not measurements: the demo does about 150 on 2 CPU cores, a 7B base about
# 1,300 on one GPU (README, Scale out). The progress bar then shows the measured rate.
ASSUMED_TOKENS_PER_SECOND = {"cpu": 100.0, "cuda": 1000.0}


def count_mixes(n: int, resolution: int) -> int:
    """The mixes ``weight_grid`` makes without margin or points (the simplex lattice, and the centre
    where the lattice misses it), computed without making them."""
    centre = 0 if resolution % n == 0 else 1  # the centre 1/n is a lattice point when n divides K
    return math.comb(resolution + n - 1, n - 1) + centre


@dataclass(frozen=True)
class Budget:
    """A grid's size before any work: rows (mixes x prompts x samples), new tokens at most, and an
    estimated time from ``ASSUMED_TOKENS_PER_SECOND`` (divided among ``workers``)."""

    mixes: int
    prompts: int
    samples: int
    max_new_tokens: int
    device: str = "cpu"  # a device type: cpu, cuda
    workers: int = 1

    @property
    def rows(self) -> int:
        return self.mixes * self.prompts * self.samples

    @property
    def tokens(self) -> int:  # an upper bound: a response may stop early
        return self.rows * self.max_new_tokens

    @property
    def tokens_per_second(self) -> float:
        return ASSUMED_TOKENS_PER_SECOND.get(self.device, ASSUMED_TOKENS_PER_SECOND["cpu"]) * self.workers

    @property
    def seconds(self) -> float:
        return self.tokens / self.tokens_per_second

    def line(self) -> str:
        """One line: rows, tokens and the estimated time, with the throughput it assumes."""
        on = f"{self.workers} workers on {self.device}" if self.workers > 1 else self.device
        return (
            f"budget: {self.mixes:,} mixes x {self.prompts:,} prompts x {self.samples} samples = "
            f"{self.rows:,} rows, at most {self.tokens:,} new tokens, about {_duration(self.seconds)} "
            f"at an assumed {self.tokens_per_second:,.0f} tokens/s on {on} (a conservative constant, "
            "not measured: the progress bar shows the real rate)"
        )


def check_budget(
    budget: Budget,
    *,
    confirmed: bool,
    limit: int = MAX_ROWS,
    knobs: str = "--resolution, --prompts-limit or --samples",
) -> None:
    """Refuse a grid of more than ``limit`` rows unless ``confirmed`` (``--yes``); ``knobs``: the
    options that make it smaller (an adaptive grid's --budget, the app's settings)."""
    if budget.rows > limit and not confirmed:
        raise SoupError(
            f"{budget.rows:,} rows is more than {limit:,} (about {_duration(budget.seconds)}): pass --yes "
            f"to run it, or lower {knobs}"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
