"""``explorer serve``: start the app (the demo by default) on 127.0.0.1 and print its URL.

explorer serve                                   # the embedded demo
explorer serve --base ./base --adapter a=./a --adapter b=./b --objective positive --objective concise
panel serve explorer/app/main.py --args --base ./base --adapter a=./a --adapter b=./b
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="an objective (repeatable); default: the adapters named after built-in objectives",
    )
    p.add_argument(
        "--prompts", metavar="FILE", help="preset prompts and the grid's prompts (default: the demo's)"
    )
    p.add_argument(
        "--grid-prompts", type=int, default=16, metavar="N", help="prompts in the app's grid (default 16)"
    )
    p.add_argument(
        "--resolution", type=int, default=5, metavar="K", help="the app grid's simplex steps 1/K (default 5)"
    )
    p.add_argument(
        "--grid-batch-size",
        type=int,
        default=8,
        metavar="ROWS",
        help="rows per grid chunk; small keeps sliders responsive while a grid runs (default 8)",
    )
    p.add_argument("--export-dir", metavar="DIR", help="where exports are written (default ./exports)")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument(
        "--address", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--show", action="store_true", help="open a browser tab")


def engine_from_args(args: argparse.Namespace):
    from explorer.app import shared_engine
    from explorer.cli import options_from_args
    from explorer.errors import SoupError

    if args.resolution < 1:
        raise SoupError(f"--resolution must be at least 1, got {args.resolution}")
    return shared_engine(
        options_from_args(args),
        objectives=args.objective or (),
        prompts_file=args.prompts,
        grid_prompts=args.grid_prompts,
        resolution=args.resolution,
        grid_batch_size=args.grid_batch_size,
        export_dir=args.export_dir,
    )


def engine_from_argv(argv: Sequence[str]):
    """For ``panel serve explorer/app/main.py --args ...``: the same options as ``explorer serve``."""
    from explorer.cli import model_options_parser

    p = argparse.ArgumentParser(prog="explorer app", parents=[model_options_parser()])
    add_serve_args(p)
    return engine_from_args(p.parse_args(list(argv)))


def cmd_serve(args: argparse.Namespace) -> int:
    from explorer.app import serve

    engine = engine_from_args(args)
    serve(engine, port=args.port, address=args.address, show=args.show)
    return 0
