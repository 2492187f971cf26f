"""The ``explorer`` command: sub-commands over one set of model options.

explorer info --base ./base --adapter helpful=./a --adapter concise=./b
explorer generate --prompt "Give me a tip for sleeping better." --weights helpful=0.3,concise=0.7
explorer demo                       # convert the embedded SmolLM2 once and answer a prompt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from explorer.config import ModelOptions, merge, parse_adapter_args, read_config
from explorer.errors import SoupError
from explorer.export_cli import add_export_args, cmd_export
from explorer.grid_cli import add_grid_args, cmd_grid
from explorer.serve_cli import add_serve_args, cmd_serve


def model_options_parser() -> argparse.ArgumentParser:
    """The options every sub-command shares: what to load and where."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--config", metavar="FILE", help="YAML file holding any of these options")
    g.add_argument(
        "--base", metavar="PATH", help="local Hugging Face model folder (default: the SmolLM2 demo)"
    )
    g.add_argument(
        "--adapter",
        metavar="NAME=PATH",
        action="append",
        default=[],
        help="a PEFT LoRA adapter folder under an objective's name; repeat once per adapter",
    )
    g.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:1")
    g.add_argument(
        "--dtype", help="auto (default: bf16 on CUDA, float32 on CPU), float32, bfloat16, float16, float64"
    )
    g.add_argument(
        "--allow-pickle", action="store_true", help="read pickle adapters (adapter_model.bin) safely"
    )
    return p


def options_from_args(args: argparse.Namespace) -> ModelOptions:
    """The config file's options overridden by the command line's."""
    file = read_config(args.config) if args.config else None
    return merge(
        file,
        base=args.base,
        adapters=parse_adapter_args(args.adapter),
        device=args.device,
        dtype=args.dtype,
        allow_pickle=args.allow_pickle,
    )


def parse_weights(text: str, names: Sequence[str]) -> dict[str, float]:
    """``"a=0.3,b=0.7"`` -> ``{"a": 0.3, "b": 0.7}``; adapters left out get weight 0."""
    weights = {n: 0.0 for n in names}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SoupError(f"--weights item {item!r}: write NAME=NUMBER, e.g. {names[0]}=0.5")
        if name.strip() not in weights:
            raise SoupError(
                f"--weights names '{name.strip()}', which is not an adapter; adapters: {list(names)}"
            )
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise SoupError(f"--weights {name.strip()}={value!r}: the weight must be a number") from None
    return weights


def objectives_from_args(args: argparse.Namespace, names: Sequence[str]) -> list:
    """``--objective`` values, else the config file's ``objectives:``, else the adapters' names that
    are built-in objectives (the demo's adapters are named after theirs)."""
    from explorer.objectives import BUILTINS, get_objective, get_objectives

    specs = list(args.objective or [])
    if not specs and args.config:
        specs = list(read_config(args.config).extra.get("objectives") or [])
    if specs:
        return get_objectives(specs)
    return [get_objective(n) for n in names if n in BUILTINS]


def cmd_info(args: argparse.Namespace) -> int:
    from explorer.launch import open_soup

    soup = open_soup(options_from_args(args))
    print(soup)
    for name, adapter in soup.adapters.items():
        print(
            f"  {name}: rank {adapter.rank}, alpha {adapter.alpha:g}, {len(adapter.modules)} modules, "
            f"{adapter.nbytes / 1e6:.2f} MB, {adapter.path}"
        )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from explorer.launch import open_soup
    from explorer.sampling import generate

    soup = open_soup(options_from_args(args))
    objectives = objectives_from_args(args, soup.names)
    mixes = [parse_weights(w, soup.names) for w in (args.weights or [""])]
    prompts = args.prompt or ["Give me one tip for sleeping better."]
    for mix in mixes:
        out = generate(soup, prompts, mix, max_new_tokens=args.max_new_tokens)
        label = ", ".join(f"{n}={w:g}" for n, w in mix.items())
        scores = [o.score(prompts, out.texts) for o in objectives]
        for i, (prompt, text) in enumerate(zip(prompts, out.texts, strict=True)):
            scored = "  ".join(f"{o.name}={s[i]:.3g}" for o, s in zip(objectives, scores, strict=True))
            print(f"[{label}] {prompt}\n{text}\n" + (f"  scores: {scored}\n" if scored else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from explorer import demo

    path = demo.demo_base()
    print(f"demo base model: {path}")
    args.base = args.base or None
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
        "--max-new-tokens", type=int, default=96, help="tokens to generate per response (default 96)"
    )
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="score responses with an objective: a built-in name, module:function, file.py:function or "
        "reward:FOLDER; repeatable (default: the adapters named after built-in objectives)",
    )


# name -> (help, handler, extra-arguments); other modules (grid, export, serve) add theirs here.
COMMANDS: dict[str, tuple[str, Callable, Callable | None]] = {
    "serve": ("start the app in the browser (the demo by default) on 127.0.0.1", cmd_serve, add_serve_args),
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
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer", description="Pareto Soup Explorer: mix LoRA adapters exactly."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = model_options_parser()
    for name, (help_text, handler, extra) in COMMANDS.items():
        p = sub.add_parser(name, parents=[shared], help=help_text, description=help_text)
        if extra is not None:
            extra(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SoupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
