"""Command-line options shared by the CLI and the app's launch (``panel serve ... --args``): the model
options every command takes, the app's options, and their checks, all before any model loads.

explorer serve --base ./base --adapter a=./a --adapter b=./b --objective positive --objective concise
panel serve explorer/app/main.py --args --base ./base --adapter a=./a --adapter b=./b
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from explorer.config import ModelOptions, merge, parse_adapter_args, read_config
from explorer.distributed import RayOptions, require_ray
from explorer.errors import SoupError


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


def objective_specs(args: argparse.Namespace, options: ModelOptions) -> tuple[str, ...]:
    """The objectives asked for: ``--objective`` values, else the config file's ``objectives:``
    (empty: the default rule of ``explorer.launch.choose_objectives`` applies)."""
    specs = getattr(args, "objective", None) or options.extra.get("objectives") or ()
    if isinstance(specs, str):
        specs = [specs]
    return tuple(str(s) for s in specs)


@dataclass(frozen=True)
class AppOptions:
    """The app's options besides the model: objectives, prompts, its grid and where exports go."""

    objectives: tuple[str, ...] = ()  # empty: the adapters named after built-in objectives
    prompts_file: str | None = None  # preset prompts and the grid's prompts; None: the demo's held-out ones
    # The default grid: 15 mixes x 24 prompts (about 3 minutes on 2 CPU cores for the demo), enough
    # prompts for the demo's front to stand well above its 95% intervals (bench/demo_frontier.py).
    grid_prompts: int = 24  # prompts in the app's grid
    resolution: int = 4  # the app grid's simplex steps of 1/K
    grid_batch_size: int = 16  # rows per grid chunk (the grid yields to sliders between decode steps)
    ray: RayOptions | None = None  # the app's grid on Ray workers (explorer serve --ray ADDRESS)
    export_dir: str | None = None  # None: exports/ in the user cache folder (never the current directory)

    def __post_init__(self) -> None:
        for name in ("grid_prompts", "resolution", "grid_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--" + name.replace("_", "-")
                raise SoupError(f"{flag} must be a whole number >= 1, got {value!r}")


def add_serve_args(p: argparse.ArgumentParser) -> None:
    defaults = AppOptions()
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="an objective (repeatable); default: the config file's objectives, else the adapters "
        "named after built-in objectives",
    )
    p.add_argument(
        "--prompts", metavar="FILE", help="preset prompts and the grid's prompts (default: the demo's)"
    )
    p.add_argument(
        "--grid-prompts",
        type=int,
        default=defaults.grid_prompts,
        metavar="N",
        help=f"prompts in the app's grid (default {defaults.grid_prompts})",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=defaults.resolution,
        metavar="K",
        help=f"the app grid's simplex steps 1/K (default {defaults.resolution})",
    )
    p.add_argument(
        "--grid-batch-size",
        type=int,
        default=defaults.grid_batch_size,
        metavar="ROWS",
        help=f"rows per grid chunk; small keeps sliders responsive while a grid runs "
        f"(default {defaults.grid_batch_size})",
    )
    p.add_argument(
        "--export-dir",
        metavar="DIR",
        help="where the app writes exports (default: exports/ in the cache folder, $PSE_CACHE_DIR or ~/.cache/pareto-soup-explorer)",
    )
    add_network_args(p, port=5006)
    p.add_argument("--show", action="store_true", help="open a browser tab")
    add_ray_args(p)


def add_network_args(p: argparse.ArgumentParser, *, port: int) -> None:
    """Where a server listens and which Host names it answers (``explorer serve`` and ``explorer api``)."""
    p.add_argument("--port", type=port_number, default=port, help=f"port to listen on (default {port})")
    p.add_argument(
        "--address", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (NAME or NAME:PORT); others get 403 (repeatable)",
    )


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return port


def check_port_free(address: str, port: int) -> None:
    """Refuse, before any model loads, a port another program listens on (or one we may not use)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Tornado binds it
        try:
            probe.bind((address, port))
        except OSError as err:
            raise SoupError(
                f"port {port} on {address} is not free ({err.strerror or err}): another program listens "
                "there, or the address is not this machine's; pass --port with another number"
            ) from None


def app_options_from_args(args: argparse.Namespace) -> tuple[ModelOptions, AppOptions]:
    """Both option sets of ``explorer serve``, checked."""
    options = options_from_args(args)
    app = AppOptions(
        objectives=objective_specs(args, options),
        prompts_file=args.prompts,
        grid_prompts=args.grid_prompts,
        resolution=args.resolution,
        grid_batch_size=args.grid_batch_size,
        export_dir=args.export_dir,
        ray=ray_options_from_args(args),
    )
    return options, app


def parse_app_argv(argv: Sequence[str]) -> tuple[ModelOptions, AppOptions]:
    """For ``panel serve explorer/app/main.py --args ...``: the same options as ``explorer serve``."""
    p = argparse.ArgumentParser(prog="explorer app", parents=[model_options_parser()])
    add_serve_args(p)
    return app_options_from_args(p.parse_args(list(argv)))


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """``--ray``, ``--workers`` and ``--gpus-per-worker`` (``explorer grid`` and ``explorer serve``)."""
    g = p.add_argument_group("scale out on Ray (pip install -e '.[ray]')")
    g.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the grid's chunks on Ray workers: 'local' (start Ray in this process), 'auto' (the "
        "Ray started here with `ray start --head`) or the head node's HOST:PORT",
    )
    g.add_argument(
        "--workers", type=int, metavar="N", help="Ray workers, each loading the soup once (default: all fit)"
    )
    g.add_argument(
        "--gpus-per-worker", type=float, metavar="G", help="GPUs per Ray worker (default 0: CPU workers)"
    )


def ray_options_from_args(args: argparse.Namespace) -> RayOptions | None:
    """The Ray options asked for (None: run in this process); Ray must be installed for them."""
    if args.ray is None:
        given = [
            f for f, v in (("--workers", args.workers), ("--gpus-per-worker", args.gpus_per_worker)) if v
        ]
        if given:
            raise SoupError(f"{' and '.join(given)} only apply with --ray ADDRESS (try --ray local)")
        return None
    options = RayOptions(
        address=args.ray, workers=args.workers, gpus_per_worker=float(args.gpus_per_worker or 0.0)
    )
    require_ray()
    return options
