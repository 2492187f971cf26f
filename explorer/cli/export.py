"""``explorer export``: write a mix as a PEFT adapter, a rank-K adapter or a merged model, with a recipe.

explorer export --weights positive=0.6,concise=0.4 --out ./my-mix
explorer export --weights positive=0.6,concise=0.4 --format lowrank --rank 8 --out ./my-mix-r8
explorer export --recipe ./my-mix/recipe.yaml --out ./again      # reproduces it bit for bit
explorer export --choice choice.json --frontier front.nc --out ./my-mix   # the mix explorer pick chose
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explorer.config import ModelOptions
from explorer.errors import SoupError
from explorer.export import FORMATS, check_format, export_mix, read_recipe
from explorer.frontier.results import load_results, mix_scores
from explorer.launch import open_soup
from explorer.loaders import load_json
from explorer.methods import not_exported
from explorer.mix import check_mix, parse_weights
from explorer.options import options_from_args


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
        choices=list(FORMATS),
        default="adapter",
        help="adapter: exact PEFT LoRA (default); lowrank: best rank-K LoRA; merged: full model",
    )
    p.add_argument("--rank", type=int, metavar="K", help="rank of the lowrank format")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--recipe", metavar="FILE", help="reproduce the export that wrote this recipe.yaml")
    p.add_argument(
        "--frontier", metavar="FILE.nc", help="results of explorer grid: the mix's scores go into the recipe"
    )
    p.add_argument(
        "--choice",
        metavar="FILE.json",
        help="the mix chosen by explorer pick --out: its weights, and the rule and result go into the recipe",
    )


def cmd_export(args: argparse.Namespace) -> int:
    if args.recipe:
        recipe = read_recipe(args.recipe)  # checks the adapters' hashes before loading anything
        options = ModelOptions(
            base=recipe["base"]["path"],
            adapters={n: a["path"] for n, a in recipe["adapters"].items()},
            device=args.device or "cpu",
            dtype=recipe["dtype"],
        )
        weights, fmt, rank = recipe["weights"], recipe["format"], recipe.get("rank")
        scores, choice = recipe.get("scores"), recipe.get("choice")
    else:
        if bool(args.weights) == bool(args.choice):
            raise SoupError(
                "give the mix with --weights NAME=W,... or --choice FILE.json (one of them; or reproduce an "
                "export with --recipe FILE)"
            )
        choice = read_choice(args.choice) if args.choice else None
        options, weights, fmt, rank, scores = (
            options_from_args(args),
            choice["weights"] if choice else parse_weights(args.weights),
            args.format,
            args.rank,
            None,
        )
    check_format(fmt, rank)
    soup = open_soup(options)
    if args.frontier:
        scores = mix_scores(load_results(args.frontier), check_mix(weights, soup.names))
    result = export_mix(
        soup, weights, args.out, format=fmt, rank=rank, force=args.force, scores=scores, choice=choice
    )
    print(f"wrote {result.format} export to {result.path}")
    if result.format == "lowrank":
        worst = max(result.module_errors.items(), key=lambda kv: kv[1])
        print(
            f"rank {result.rank}: overall relative error {result.overall_error:.3g} "
            f"(worst module {worst[0]}: {worst[1]:.3g}); per-module errors are in recipe.yaml"
        )
    return 0


def read_choice(path: str) -> dict:
    """A choice written by ``explorer pick --out`` (``explorer.frontier.choose.Choice.to_dict()``)."""
    file = Path(path).expanduser()
    data = load_json(file, what="--choice")
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict) or "rule" not in data:
        raise SoupError(
            f"--choice {file} is not a choice written by explorer pick --out: it has no weights or rule"
        )
    for name, value in data["weights"].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SoupError(
                f"--choice {file}: weight {name}={json.dumps(value)} is not a number; use the choice "
                "that explorer pick --out wrote"
            )
    mixing = data.get("mixing", "soup")
    if mixing != "soup":
        raise SoupError(f"--choice {file}: {not_exported(mixing, data['weights'])}")
    return data
