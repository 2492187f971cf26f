"""The ``explorer`` command: sub-commands over one set of model options.

explorer info --base ./base --adapter helpful=./a --adapter concise=./b
explorer generate --prompt "Give me a tip for sleeping better." --weights helpful=0.3,concise=0.7
explorer demo                       # convert the embedded SmolLM2 once and answer a prompt
explorer pick --frontier front.nc --maximize positive --where "concise<=40"   # choose a mix
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from explorer.cli.api import add_api_args, cmd_api
from explorer.cli.export import add_export_args, cmd_export
from explorer.cli.grid import add_grid_args, cmd_grid
from explorer.cli.guard import run_guarded
from explorer.cli.pick import PICK_HELP, add_pick_args, cmd_pick
from explorer.cli.serve import add_serve_args, cmd_serve
from explorer.demo import demo_base
from explorer.launch import choose_objectives, open_soup
from explorer.merges import merges_for
from explorer.methods import MERGE_METHODS, METHODS
from explorer.mix import mix_label, parse_weights
from explorer.objectives import get_objectives
from explorer.options import model_options_parser, objective_specs, options_from_args
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig, generate
from explorer.scheduler import Scheduler


def cmd_info(args: argparse.Namespace) -> int:
    soup = open_soup(options_from_args(args))
    print(soup)
    for name, adapter in soup.adapters.items():
        print(
            f"  {name}: rank {adapter.rank}, alpha {adapter.alpha:g}, {len(adapter.modules)} modules, "
            f"{adapter.nbytes / 1e6:.2f} MB, {adapter.path}"
        )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    given = get_objectives(objective_specs(args, options))  # checked before the model loads
    weights = args.weights or [""]
    for text in weights:
        parse_weights(text)  # the syntax, checked before the model loads
    soup = open_soup(options)
    objectives = choose_objectives(given, soup.names)
    mixes = [parse_weights(text, soup.names) for text in weights]
    prompts = args.prompt or ["Give me one tip for sleeping better."]
    scheduler = Scheduler(soup) if args.method == "mod" else None
    config = SamplingConfig(args.max_new_tokens)
    for mix in mixes:
        if args.method in MERGE_METHODS:  # PeftMerges: PEFT's merged adapter, on its own model copy
            weights = [mix[n] for n in soup.names]
            out = merges_for(soup).generate(
                prompts, weights, args.method, config=config, sample_ids=[0] * len(prompts)
            )
        elif scheduler is not None:  # decoding-time mixing: one batch row per adapter, through the scheduler
            out = scheduler.generate(prompts, mix, config=config, method=args.method)
        else:
            out = generate(soup, prompts, mix, max_new_tokens=args.max_new_tokens)
        scores = [o.score(prompts, out.texts) for o in objectives]
        for i, (prompt, text) in enumerate(zip(prompts, out.texts, strict=True)):
            scored = "  ".join(f"{o.name}={s[i]:.3g}" for o, s in zip(objectives, scores, strict=True))
            label = mix_label(mix) + ("" if args.method == "soup" else f"; {args.method}")
            print(f"[{label}] {prompt}\n{text}\n" + (f"  scores: {scored}\n" if scored else ""))
    if scheduler is not None:
        scheduler.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    print(f"demo base model: {demo_base()}")
    return cmd_generate(args) if args.prompt or args.weights else cmd_info(args)


def add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", action="append", help="a user request; repeat for several")
    p.add_argument(
        "--weights",
        action="append",
        metavar="NAME=W,...",
        help="one mix, e.g. helpful=0.3,concise=0.7 (unnamed adapters get 0); repeat to compare mixes",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="soup",
        help="how a mix combines the adapters: soup (their weights mixed, the default), mod "
        "(decoding-time mixing: each token drawn from prod_i p_i^w_i, one forward pass per adapter), "
        "or PEFT's merges ties, dare, peft-linear (add_weighted_adapter)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"tokens to generate per response (default {DEFAULT_MAX_NEW_TOKENS})",
    )
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="score responses with an objective: a built-in name, module:function, file.py:function or "
        "reward:FOLDER; repeatable (default: the config file's objectives, else the adapters named "
        "after built-in objectives)",
    )


# name -> (help, handler, extra-arguments)
COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int], Callable | None]] = {
    "serve": ("start the app in the browser (the demo by default) on 127.0.0.1", cmd_serve, add_serve_args),
    "api": (
        "serve the OpenAI-compatible API alone (/v1/completions, /v1/chat/completions) on 127.0.0.1",
        cmd_api,
        add_api_args,
    ),
    "info": ("load the soup and describe its adapters", cmd_info, None),
    "generate": ("answer prompts with one or more mixes", cmd_generate, add_generation_args),
    "grid": (
        "compute the frontier over a grid of mixes (headless) and save it as netCDF",
        cmd_grid,
        add_grid_args,
    ),
    "export": (
        "write a mix as a PEFT adapter, a rank-K adapter or a merged model, with a recipe",
        cmd_export,
        add_export_args,
    ),
    "demo": (
        "prepare the embedded SmolLM2 demo (converted once) and describe it",
        cmd_demo,
        add_generation_args,
    ),
    "pick": (
        PICK_HELP,
        cmd_pick,
        add_pick_args,
    ),
}
NO_MODEL = {"pick"}  # commands that read results files only: no model options


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer", description="Pareto Soup Explorer: mix LoRA adapters exactly."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = model_options_parser()
    for name, (help_text, handler, extra) in COMMANDS.items():
        parents = [] if name in NO_MODEL else [shared]
        p = sub.add_parser(name, parents=parents, help=help_text, description=help_text)
        if extra is not None:
            extra(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return run_guarded(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
