"""From checked options to loaded objects, the same for the CLI and the app: the soup (the given base
and adapters, or the demo), the objectives by one default rule, and the app's set-up."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from explorer.config import ModelOptions
from explorer.demo import cache_dir, demo_adapters, demo_base
from explorer.distributed import RayExecutor
from explorer.errors import SoupError
from explorer.frontier.cache import load_cached
from explorer.frontier.evaluation import ChunkExecutor
from explorer.frontier.grid import MIN_OBJECTIVES, GridSpec
from explorer.frontier.packaged import seed_cache
from explorer.objectives import BUILTINS, Objective, get_objective, get_objectives
from explorer.options import AppOptions
from explorer.prompts import HELDOUT, read_prompts
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig
from explorer.soup import Soup


def open_soup(options: ModelOptions) -> Soup:
    """Load the soup that ``options`` describe; with no base, the embedded demo and its adapters."""
    if options.base is None:
        base = str(demo_base())
        adapters = dict(options.adapters) or demo_adapters()
    else:
        base, adapters = options.base, dict(options.adapters)
        if not adapters:
            raise SoupError(
                "no adapters given: pass --adapter NAME=FOLDER once per objective (or list them in --config)"
            )
    return Soup.load(
        base, adapters, device=options.device, dtype=options.dtype, allow_pickle=options.allow_pickle
    )


# The order of the built-in objectives that adapters are named after: the frontier plot's default
# axes are the first two objectives (on the demo, its clearest trade-off, positive against
# readable: all 11 mixes of the sweep between them are non-dominated, models/README.md).
BUILTIN_ORDER = ("positive", "readable", "concise", "relevant", "nontoxic")


def choose_objectives(given: Sequence[Objective], adapter_names: Sequence[str]) -> list[Objective]:
    """The one default rule: the objectives asked for (``--objective``, else the config file's
    ``objectives:``, see ``explorer.options.objective_specs``), else the adapters that are named
    after built-in objectives (the demo's are), in ``BUILTIN_ORDER``."""
    if given:
        return list(given)
    order = [*BUILTIN_ORDER, *(n for n in BUILTINS if n not in BUILTIN_ORDER)]
    return [get_objective(n) for n in order if n in adapter_names]


@dataclass(frozen=True)
class AppSetup:
    """Everything the app's shared engine is made of, loaded once per process."""

    soup: Soup
    objectives: tuple[Objective, ...]
    prompts: tuple[str, ...]  # the preset prompts
    grid_prompts: tuple[str, ...]
    resolution: int
    grid_batch_size: int
    export_dir: Path
    cache_dir: Path | None
    grid_workers: ChunkExecutor | None = None  # Ray workers for the app's grids (None: this process)
    sessions_dir: Path | None = None  # the browsers' saved sessions (None: not kept)

    def grid_spec(self, sampling: SamplingConfig) -> GridSpec:
        """The app's frontier grid under ``sampling``."""
        return GridSpec.on_simplex(
            self.soup.names,
            self.resolution,
            prompts=self.grid_prompts,
            objectives=self.objectives,
            sampling=sampling,
        )

    def cached_front(self) -> xr.Dataset | None:
        """The app's default front (default decoding) when it was computed before, else None.

        On a fresh cache the package's demo front seeds it when its inputs' hashes all match
        (``explorer.frontier.packaged``): the demo then opens with its front drawn."""
        if len(self.objectives) < MIN_OBJECTIVES or self.cache_dir is None:
            return None  # no frontier to look up: the app shows why when one is asked for
        spec = self.grid_spec(SamplingConfig(DEFAULT_MAX_NEW_TOKENS))
        seed_cache(self.soup, spec, self.cache_dir)
        return load_cached(self.soup, spec, self.cache_dir)


def prepare_app(options: ModelOptions, app: AppOptions) -> AppSetup:
    """Load the soup and objectives and read the prompts for the app, checking them before the model."""
    given = get_objectives(app.objectives)  # checked before the slow load
    held = read_prompts(app.prompts_file or HELDOUT)
    # Ray workers first: a bad address or cluster fails before the slow load
    workers = RayExecutor.start(functools.partial(open_soup, options), app.ray) if app.ray else None
    soup = open_soup(options)
    objectives = choose_objectives(given, soup.names)
    if not objectives:
        raise SoupError(
            f"no objective to score with: the adapters {list(soup.names)} are not named after built-in "
            f"objectives ({sorted(BUILTINS)}); pass --objective NAME (or objectives: in --config)"
        )
    return AppSetup(
        soup=soup,
        objectives=tuple(objectives),
        prompts=tuple(held),
        grid_prompts=tuple(held[: app.grid_prompts]),
        resolution=app.resolution,
        grid_batch_size=app.grid_batch_size,
        export_dir=Path(app.export_dir).expanduser() if app.export_dir else cache_dir() / "exports",
        cache_dir=cache_dir() / "frontiers",
        grid_workers=workers,
        sessions_dir=cache_dir() / "sessions",
    )
