"""Which way to combine: the weight soup, decoding-time mixing (MOD) and PEFT's merges, on one grid.

    python bench/methods.py --resolution 4 --prompts 48 --tokens 128

One run on the demo (SmolLM2-135M and its three adapters, greedy): the same mixes (the app's default
grid), held-out prompts and decoding under each method, through the same run loop
(``explorer.frontier.evaluation.evaluate_grid``), each from scratch (no cache). Prints, per method:
the hypervolume with its 95% bootstrap interval on each plane of two objectives and in all three
(one reference point per plane, shared by the methods), the share of the method's front (in all
objectives) that a mix of another method dominates, wall time and tokens/s as ratios to the soup.
Writes the results (netCDF, both methods) next to the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from common import RESULTS, environment, finish, pick_device, pick_dtype


def dominated_share(mean: np.ndarray, signs: np.ndarray, mine: np.ndarray, others: np.ndarray) -> float:
    """The share of the front of the mixes ``mine`` (a boolean mask) that a mix of ``others`` dominates.

    ``mean`` (M, K) in the objectives' units, ``signs`` (K,) +1 to maximize, -1 to minimize."""
    from explorer.frontier.pareto import pareto_mask

    value = mean * signs  # larger is better everywhere
    dirs = ["maximize"] * mean.shape[1]
    front = np.flatnonzero(mine)[pareto_mask(mean[mine] * signs, dirs)]
    if not len(front):
        return float("nan")
    theirs = value[others]
    hit = [bool(((theirs >= value[f]).all(axis=1) & (theirs > value[f]).any(axis=1)).any()) for f in front]
    return float(np.mean(hit))


def main(args: argparse.Namespace) -> dict:
    from explorer.demo import demo_adapters, demo_base
    from explorer.frontier.evaluation import evaluate_grid
    from explorer.frontier.grid import GridSpec, weight_grid
    from explorer.frontier.results import (
        concat_results,
        directions,
        hypervolume_by_method,
        methods_of,
        objective_names,
        save_results,
        summarize,
    )
    from explorer.objectives import get_objective
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import SamplingConfig
    from explorer.soup import Soup

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    soup = Soup.load(demo_base(), demo_adapters(), device=device, dtype=dtype)
    prompts = tuple(read_prompts(HELDOUT, limit=args.prompts))
    objectives = tuple(get_objective(n) for n in soup.names)
    base = GridSpec(
        mixes=weight_grid(soup.names, args.resolution),
        prompts=prompts,
        objectives=objectives,
        sampling=SamplingConfig(max_new_tokens=args.tokens),
    )
    parts, timing = [], {}
    for method in args.methods:
        spec = base.for_methods([method])
        start = time.perf_counter()
        ds = evaluate_grid(soup, spec, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        tokens = int(ds["n_tokens"].sum())
        timing[method] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
        print(f"{method}: {seconds:.0f} s, {tokens} tokens, {tokens / seconds:.1f} tokens/s", flush=True)
        parts.append(ds)
    both = concat_results(parts)
    out_nc = save_results(both, RESULTS / "methods-demo.nc") if args.save_nc else None
    names = objective_names(both)
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions(both)])
    mean = both["mean"].transpose("mix", "objective").values
    methods = np.array(methods_of(both))
    planes = [list(p) for p in itertools.combinations(names, 2)] + [names]
    rows = []
    per_plane = {}
    for plane in planes:
        sub = summarize(both.drop_vars(["mean", "ci_low", "ci_high", "pareto"]).sel(objective=plane))
        per_plane[" x ".join(plane)] = hypervolume_by_method(sub)
    for method in args.methods:
        mine = methods == method
        row = {
            "method": method,
            "dominated": dominated_share(mean, signs, mine, ~mine),
            "x_soup_time": timing[method]["seconds"] / timing[args.methods[0]]["seconds"],
            "tokens_per_s": timing[method]["tokens_per_s"],
            "of_soup_tokens_per_s": timing[method]["tokens_per_s"] / timing[args.methods[0]]["tokens_per_s"],
            "mixes": int(mine.sum()),
        }
        for plane, hv in per_plane.items():
            v, lo, hi = hv[method]
            row[plane] = f"{v:.4g} [{lo:.4g}, {hi:.4g}]"
        rows.append(row)
    columns = [("method", "method", "s")]
    columns += [(plane, f"HV {plane} [95% CI]", "s") for plane in per_plane]
    columns += [
        ("dominated", "front dominated by another method", ".2f"),
        ("tokens_per_s", "tokens/s", ".1f"),
        ("of_soup_tokens_per_s", "tokens/s / soup's", ".2f"),
        ("x_soup_time", "wall time / soup's", ".2f"),
    ]
    report = {
        "benchmark": "methods",
        "environment": environment(device, dtype),
        "settings": vars(args),
        "timing": timing,
        "hypervolume": {p: {m: list(v) for m, v in hv.items()} for p, hv in per_plane.items()},
        "results": str(out_nc.relative_to(RESULTS.parent.parent)) if out_nc else None,
    }
    title = (
        f"Methods on the demo: {len(base.mixes)} mixes x {len(prompts)} held-out prompts x {args.tokens} "
        f"tokens, greedy ({', '.join(args.methods)})"
    )
    result = finish("methods-demo.json", title, rows, columns, report)
    print(json.dumps(report["hypervolume"], indent=1))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["soup", "mod", "ties", "dare", "peft-linear"],
        help="the first is the reference",
    )
    p.add_argument(
        "--resolution", type=int, default=4, help="the app's default grid (16 mixes for 3 adapters)"
    )
    p.add_argument("--prompts", type=int, default=48, help="held-out prompts")
    p.add_argument("--tokens", type=int, default=128, help="new tokens per response")
    p.add_argument("--batch-size", type=int, default=None, help="rows per chunk (default: auto)")
    p.add_argument("--save-nc", action="store_true", help="also write the results as methods-demo.nc")
    main(p.parse_args())
