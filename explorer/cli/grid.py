"""``explorer grid``: compute a frontier headless, with a progress bar and a summary table.

explorer grid --out front.nc --objective positive --objective concise --resolution 10 --prompts-limit 32
explorer grid --out front.nc --adaptive --resolution 4 --budget 40   # refine where the front is
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from explorer.atomic import check_output_path
from explorer.cli.ray import add_ray_args, progress_text, ray_options_from_args, start_ray
from explorer.config import ModelOptions
from explorer.demo import cache_dir, demo_adapters
from explorer.distributed import RayOptions
from explorer.errors import SoupError
from explorer.frontier.adaptive import Round
from explorer.frontier.adaptive_grid import evaluate_adaptive
from explorer.frontier.evaluation import ChunkExecutor, LocalExecutor, Progress, run_grid
from explorer.frontier.grid import (
    MAX_MIXES,
    MAX_ROWS,
    Budget,
    GridSpec,
    check_budget,
    check_objectives,
    count_mixes,
    weight_grid,
)
from explorer.frontier.results import (
    adapter_names,
    directions,
    hypervolume_by_method,
    hypervolume_of,
    intervals,
    means,
    methods_of,
    mix_weights,
    n_mixes,
    objective_names,
    pareto,
    reference_of,
    save_results,
)
from explorer.launch import choose_objectives, open_soup
from explorer.methods import parse_methods
from explorer.mix import parse_weights
from explorer.objectives import get_objectives
from explorer.options import objective_specs, options_from_args
from explorer.ownership import claim, results_problem
from explorer.prompts import HELDOUT, read_prompts
from explorer.runtime import resolve_device
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig


def add_grid_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="FILE.nc", help="where to write the results (netCDF)")
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="an objective (built-in name, module:function, file.py:function, reward:FOLDER); at least 2; "
        "default: the config file's objectives, else the adapters named after built-in objectives",
    )
    p.add_argument(
        "--prompts", metavar="FILE", help="one request per line (default: the demo's held-out prompts)"
    )
    p.add_argument("--prompts-limit", type=int, metavar="N", help="use only the first N prompts")
    p.add_argument(
        "--resolution",
        type=int,
        metavar="K",
        help=f"simplex steps of 1/K (default {RESOLUTION}; {ADAPTIVE_RESOLUTION} with --adaptive)",
    )
    p.add_argument(
        "--margin", type=float, default=0.0, help="extrapolation margin outside the simplex (default 0)"
    )
    p.add_argument(
        "--point", action="append", default=[], metavar="NAME=W,...", help="an extra mix; repeatable"
    )
    p.add_argument("--samples", type=int, default=1, metavar="S", help="samples per prompt (default 1)")
    p.add_argument(
        "--method",
        action="append",
        metavar="METHOD",
        help="how each mix combines the adapters: soup (default: the weights mixed), mod (decoding-time "
        "mixing), or PEFT's merges ties, dare, peft-linear; repeat or give a comma list (soup,mod) to "
        "evaluate several on the same mixes, prompts and seeds in one run",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        metavar="N",
        help=f"tokens per response (default {DEFAULT_MAX_NEW_TOKENS})",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--batch-size", type=int, metavar="ROWS", help="rows per chunk (default: 64 on CPU, by memory on GPU)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the results cache")
    p.add_argument(
        "--force", action="store_true", help="replace an existing --out that is not a results file"
    )
    p.add_argument(
        "--yes", action="store_true", help=f"run a grid of more than {MAX_ROWS:,} rows (refused otherwise)"
    )
    add_ray_args(p)
    g = p.add_argument_group("adaptive grid")
    g.add_argument(
        "--adaptive",
        action="store_true",
        help="after the lattice, add mixes where the front is, in rounds, until --budget mixes in all",
    )
    g.add_argument("--budget", type=int, metavar="M", help="mixes to evaluate in all (with --adaptive)")
    g.add_argument(
        "--round-size",
        type=int,
        metavar="MIXES",
        help="new mixes per round (default: half the first lattice, at least adapters + 1)",
    )


RESOLUTION, ADAPTIVE_RESOLUTION = 10, 4  # default lattices: uniform, and the adaptive grid's first


def check_adaptive_args(args: argparse.Namespace) -> None:
    """--adaptive, --budget and --round-size go together and are whole numbers >= 1."""
    if not args.adaptive:
        given = [
            f for f, v in (("--budget", args.budget), ("--round-size", args.round_size)) if v is not None
        ]
        if given:
            raise SoupError(f"{' and '.join(given)} only apply to an adaptive grid: add --adaptive")
        return
    if args.budget is None:
        raise SoupError("an adaptive grid needs --budget M: the number of mixes to evaluate in all")
    for flag, value in (("--budget", args.budget), ("--round-size", args.round_size)):
        if value is not None and value < 1:
            raise SoupError(f"{flag} must be at least 1 mix, got {value}")


def budget_before_loading(
    args: argparse.Namespace, options: ModelOptions, ray: RayOptions | None, *, n_prompts: int
) -> tuple[tuple[str, ...], np.ndarray] | tuple[None, None]:
    """Print the grid's budget (rows, new tokens, estimated time) and refuse more than ``MAX_ROWS``
    rows without ``--yes``, before any model loads; returns the adapter names and the mixes (None,
    None where the adapters are only known once loaded).
    An adaptive grid counts its budget's mixes, or its first lattice where that is larger."""
    given = dict(options.adapters) or (demo_adapters() if options.is_demo else {})
    if not given:
        return None, None
    names = tuple(given)
    device = "cuda" if ray is not None and ray.gpus_per_worker > 0 else resolve_device(options.device).type
    workers = (ray.workers or 1) if ray is not None else 1

    def budget(mixes: int) -> Budget:  # every method evaluates every mix
        mixes = (max(mixes, args.budget) if args.adaptive else mixes) * len(parse_methods(args.method))
        return Budget(mixes, n_prompts, args.samples, args.max_new_tokens, device, workers)

    # an adaptive grid whose --budget is what makes it large is advised to lower that
    knobs = (
        "--budget, --prompts-limit or --samples"
        if args.adaptive
        else "--resolution, --prompts-limit or --samples"
    )
    lattice = count_mixes(len(names), args.resolution)
    if lattice <= MAX_MIXES and not args.yes and budget(lattice).rows > MAX_ROWS:
        print(budget(lattice).line(), file=sys.stderr)  # refused before the lattice is even made
        if not (args.adaptive and args.budget > lattice):
            knobs = "--resolution, --prompts-limit or --samples"
        check_budget(budget(lattice), confirmed=False, knobs=knobs)
    points = [parse_weights(p, names, flag="--point") for p in args.point]
    mixes = weight_grid(names, args.resolution, margin=args.margin, points=points)
    if args.adaptive and args.budget < len(mixes):
        raise SoupError(
            f"a budget of {args.budget} mixes does not cover the {len(mixes)} of the first lattice "
            f"(--resolution {args.resolution}): raise --budget to {len(mixes)} or more, or lower --resolution"
        )
    print(budget(len(mixes)).line(), file=sys.stderr)
    if args.adaptive and args.budget <= len(mixes):
        knobs = "--resolution, --prompts-limit or --samples"
    check_budget(budget(len(mixes)), confirmed=args.yes, knobs=knobs)
    return names, mixes


def refuse_overwrite(out: Path, *, force: bool) -> None:
    """An existing --out is replaced only with ``force``, and only when it is an earlier results
    file (explorer.ownership): never a user's notes, a link or a device node."""
    if not out.exists() and not out.is_symlink():
        return
    problem = results_problem(out)
    if problem:
        raise SoupError(
            f"--out {out} exists and {problem}: it is kept; choose another --out"
            + ("" if force else " (--force replaces only an earlier results file)")
        )
    if not force:
        raise SoupError(
            f"--out {out} exists (results of an earlier grid): choose another --out, or pass --force to "
            "replace it"
        )


def cmd_grid(args: argparse.Namespace) -> int:
    out = check_output_path(args.out)
    refuse_overwrite(out, force=args.force)
    with claim(out):  # one writer per --out: a second grid to it refuses
        return _grid(args, out)


def _grid(args: argparse.Namespace, out: Path) -> int:
    # everything that can be checked without the model is checked first
    check_adaptive_args(args)
    methods = parse_methods(args.method)
    if args.adaptive and methods != ("soup",):
        raise SoupError(
            "--adaptive refines the weight soup's grid only: leave out --method, or drop --adaptive"
        )
    if args.resolution is None:
        args.resolution = ADAPTIVE_RESOLUTION if args.adaptive else RESOLUTION
    if args.resolution < 1:
        raise SoupError(f"--resolution must be at least 1 (10 gives steps of 0.1), got {args.resolution}")
    if args.batch_size is not None and args.batch_size < 1:
        raise SoupError(f"--batch-size must be at least 1, got {args.batch_size}")
    options = options_from_args(args)
    ray = ray_options_from_args(args)
    specs = objective_specs(args, options)
    if specs:
        check_objectives(specs)
    given = get_objectives(specs)
    prompts = read_prompts(args.prompts or HELDOUT, limit=args.prompts_limit)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_p, args.seed)
    for point in args.point:
        parse_weights(point, flag="--point")
    names, mixes = budget_before_loading(args, options, ray, n_prompts=len(prompts))

    workers = start_ray(options, ray) if ray is not None else None  # each worker loads the soup
    if workers is None:
        soup = open_soup(options)
        executor: ChunkExecutor = LocalExecutor(soup)
        where = f"{soup.device} ({soup.dtype})"
    else:
        executor, where = workers, workers.describe()
    objectives = tuple(choose_objectives(given, executor.names))
    if mixes is None or tuple(executor.names) != names:  # the mixes' columns follow the soup's order
        points = [parse_weights(p, executor.names, flag="--point") for p in args.point]
        mixes = weight_grid(executor.names, args.resolution, margin=args.margin, points=points)
    spec = GridSpec(
        mixes=mixes, prompts=tuple(prompts), objectives=objectives, samples=args.samples, sampling=sampling
    ).for_methods(methods)
    per_mix = len(prompts) * args.samples  # rows
    total = (args.budget if args.adaptive else len(spec.mixes)) * per_mix
    several = f" x {len(methods)} methods ({', '.join(methods)})" if len(methods) > 1 else ""
    print(
        f"{len(mixes)} mixes{f' first, {args.budget} in all' if args.adaptive else ''}{several} x {len(prompts)} "
        f"prompts x {args.samples} samples = {total} rows{' at most' if args.adaptive else ''} "
        f"on {where}",
        file=sys.stderr,
    )
    bar = _progress_bar(total)
    before, rounds = [0], [0]  # the adaptive grid's rows in finished rounds, and rounds after the lattice

    def on_chunk(partial: xr.Dataset, progress: Progress) -> None:
        bar.n = before[0] + progress.rows_done
        bar.set_postfix_str(progress_text(progress))
        bar.refresh()

    def on_round(so_far: xr.Dataset, done: Round) -> None:  # saved after every round: a stop keeps them
        before[0] = done.evaluated * per_mix
        save_results(so_far, out)
        what = (
            f"round {rounds[0]}: +{done.new} mix{'es' if done.new != 1 else ''}, {done.evaluated} in all"
            if rounds[0]
            else f"lattice: {done.evaluated} mixes"
        )
        bar.write(
            f"{what}, {done.pareto} Pareto-optimal, hypervolume {done.hypervolume:.4g}", file=sys.stderr
        )
        rounds[0] += 1

    cache = None if args.no_cache else cache_dir() / "frontiers"
    try:
        if args.adaptive:
            ds = evaluate_adaptive(
                executor,
                spec,
                budget=args.budget,
                round_size=args.round_size,
                batch_size=args.batch_size,
                cache=cache,
                on_chunk=on_chunk,
                on_round=on_round,
            )
        else:
            ds = run_grid(executor, spec, batch_size=args.batch_size, cache=cache, on_chunk=on_chunk)
    finally:
        bar.close()
        if workers is not None:
            workers.close()
    save_results(ds, out)
    print(summary_table(ds))
    for method, (hv, low, high) in hypervolume_by_method(ds).items():
        print(f"{method}: hypervolume {hv:.4g} [{low:.4g}, {high:.4g}]")
    print(
        f"\nwrote {out}  (wall time {bar.format_dict['elapsed']:.1f} s; hypervolume "
        f"{hypervolume_of(ds):.4g}, reference {reference_of(ds)})"
    )
    return 0


def _progress_bar(total: int) -> tqdm:
    return tqdm(total=total, unit="row", desc="grid", file=sys.stderr, dynamic_ncols=True)


def summary_table(ds: xr.Dataset) -> str:
    """One line per mix: weights, mean scores with intervals, and a Pareto mark."""
    objectives = objective_names(ds)
    methods = methods_of(ds)
    several = len(set(methods)) > 1
    head = [
        *(["method"] if several else []),
        *adapter_names(ds),
        *(f"{o} ({d[:3]})" for o, d in zip(objectives, directions(ds), strict=True)),
        "pareto",
    ]
    weights, mean, (low, high), optimal = mix_weights(ds), means(ds), intervals(ds), pareto(ds)
    lines = []
    for m in range(n_mixes(ds)):
        cells = [*([methods[m]] if several else []), *(f"{w:.2f}" for w in weights[m])]
        for k in range(len(objectives)):
            cells.append(f"{mean[m, k]:.3g} [{low[m, k]:.3g}, {high[m, k]:.3g}]")
        cells.append("*" if optimal[m] else "")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*c) for c in lines)])
