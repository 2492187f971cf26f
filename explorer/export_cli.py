"""``explorer export``: write a mix as a PEFT adapter, a rank-K adapter or a merged model, with a recipe.

explorer export --weights positive=0.6,concise=0.4 --out ./my-mix
explorer export --weights positive=0.6,concise=0.4 --format lowrank --rank 8 --out ./my-mix-r8
explorer export --recipe ./my-mix/recipe.yaml --out ./again      # reproduces it bit for bit
"""

from __future__ import annotations

import argparse

from explorer.errors import SoupError


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        metavar="NAME=W,...",
        help="the mix: every adapter's weight, e.g. positive=0.6,concise=0.4",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the folder to write (must not exist, unless --force)"
    )
    p.add_argument(
        "--format",
        choices=["adapter", "lowrank", "merged"],
        default="adapter",
        help="adapter: exact PEFT LoRA (default); lowrank: best rank-K LoRA; merged: full model",
    )
    p.add_argument("--rank", type=int, metavar="K", help="rank of the lowrank format")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--recipe", metavar="FILE", help="reproduce the export that wrote this recipe.yaml")
    p.add_argument(
        "--frontier", metavar="FILE.nc", help="results of explorer grid: the mix's scores go into the recipe"
    )


def weight_items(text: str) -> dict[str, str]:
    """``"a=0.3,b=0.7"`` -> ``{"a": "0.3", "b": "0.7"}``; values are checked by the export."""
    items = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SoupError(f"--weights item {item!r}: write NAME=NUMBER, e.g. positive=0.5")
        if name.strip() in items:
            raise SoupError(f"--weights names '{name.strip()}' twice")
        items[name.strip()] = value.strip()
    return items


def cmd_export(args: argparse.Namespace) -> int:
    from explorer.cli import options_from_args
    from explorer.config import ModelOptions
    from explorer.evaluation import soup_fingerprint
    from explorer.export import export_mix, read_recipe
    from explorer.launch import open_soup

    if args.recipe:
        recipe = read_recipe(args.recipe)  # checks the adapters' hashes before loading anything
        options = ModelOptions(
            base=recipe["base"]["path"],
            adapters={n: a["path"] for n, a in recipe["adapters"].items()},
            device=args.device or "cpu",
            dtype=recipe["dtype"],
        )
        weights, fmt, rank = recipe["weights"], recipe["format"], recipe["rank"]
        scores = recipe.get("scores")
    else:
        if not args.weights:
            raise SoupError("give the mix with --weights NAME=W,... (or reproduce one with --recipe FILE)")
        options, weights, fmt, rank, scores = (
            options_from_args(args),
            weight_items(args.weights),
            args.format,
            args.rank,
            None,
        )
    if fmt == "lowrank" and (rank is None or rank < 1):
        raise SoupError(f"--rank must be a whole number >= 1 for the lowrank format, got {rank}")
    soup = open_soup(options)
    if args.recipe and soup_fingerprint(soup)["base"] != recipe["base"]["files_sha256"]:
        raise SoupError(
            f"recipe {args.recipe}: the base model files at {options.base} have changed since the export"
        )
    if args.frontier:
        from explorer.evaluation import load_results
        from explorer.export import check_weights
        from explorer.frontier import mix_scores

        scores = mix_scores(load_results(args.frontier), check_weights(soup, weights))
    result = export_mix(soup, weights, args.out, format=fmt, rank=rank, force=args.force, scores=scores)
    print(f"wrote {result.format} export to {result.path}")
    if result.format == "lowrank":
        worst = max(result.module_errors.items(), key=lambda kv: kv[1])
        print(
            f"rank {result.rank}: overall relative error {result.overall_error:.3g} "
            f"(worst module {worst[0]}: {worst[1]:.3g}); per-module errors are in recipe.yaml"
        )
    return 0
