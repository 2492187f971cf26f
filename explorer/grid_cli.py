"""``explorer grid``: compute a frontier headless, with a progress bar and a summary table.

explorer grid --out front.nc --objective positive --objective concise --resolution 10 --prompts-limit 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from explorer.errors import SoupError


def add_grid_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="FILE.nc", help="where to write the results (netCDF)")
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help="an objective (built-in name, module:function, file.py:function, reward:FOLDER); at least 2; "
        "default: the adapters named after built-in objectives",
    )
    p.add_argument(
        "--prompts", metavar="FILE", help="one request per line (default: the demo's held-out prompts)"
    )
    p.add_argument("--prompts-limit", type=int, metavar="N", help="use only the first N prompts")
    p.add_argument(
        "--resolution", type=int, default=10, metavar="K", help="simplex steps of 1/K (default 10)"
    )
    p.add_argument(
        "--margin", type=float, default=0.0, help="extrapolation margin outside the simplex (default 0)"
    )
    p.add_argument(
        "--point", action="append", default=[], metavar="NAME=W,...", help="an extra mix; repeatable"
    )
    p.add_argument("--samples", type=int, default=1, metavar="S", help="samples per prompt (default 1)")
    p.add_argument(
        "--max-new-tokens", type=int, default=64, metavar="N", help="tokens per response (default 64)"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--batch-size", type=int, metavar="ROWS", help="rows per chunk (default: 64 on CPU, by memory on GPU)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the results cache")


def check_output_path(path: str) -> Path:
    """Refuse, before any work, an output we could not write."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise SoupError(f"--out {out} is a folder: give a file name such as {out / 'front.nc'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise SoupError(f"--out {out}: folder {parent} does not exist; create it first")
    try:  # a real write: permissions, read-only file systems and full disks all show here
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".explorer-write-test-"):
            pass
    except OSError as err:
        raise SoupError(
            f"--out {out}: cannot write in {parent} ({err.strerror}); choose another path"
        ) from None
    if out.exists() and not os.access(out, os.W_OK):
        raise SoupError(f"--out {out}: the file exists and is read-only; choose another path")
    return out


def cmd_grid(args: argparse.Namespace) -> int:
    from explorer.cli import objectives_from_args, options_from_args, parse_weights
    from explorer.demo import cache_dir
    from explorer.evaluation import GridSpec, evaluate_grid, save_results
    from explorer.grid import weight_grid
    from explorer.launch import open_soup
    from explorer.objectives import get_objectives
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import SamplingConfig

    # everything that can be checked without the model is checked first
    out = check_output_path(args.out)
    if args.resolution < 1:
        raise SoupError(f"--resolution must be at least 1 (10 gives steps of 0.1), got {args.resolution}")
    if args.batch_size is not None and args.batch_size < 1:
        raise SoupError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.objective is not None and len(args.objective) < 2:
        raise SoupError("a frontier needs at least 2 objectives: pass --objective twice or more")
    given = tuple(get_objectives(args.objective)) if args.objective else None
    prompts = read_prompts(args.prompts or HELDOUT, limit=args.prompts_limit)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_p, args.seed)

    soup = open_soup(options_from_args(args))
    objectives = given or tuple(objectives_from_args(args, soup.names))
    points = [parse_weights(p, soup.names) for p in args.point]
    mixes = weight_grid(soup.names, args.resolution, margin=args.margin, points=points)
    spec = GridSpec(
        mixes=mixes, prompts=tuple(prompts), objectives=objectives, samples=args.samples, sampling=sampling
    )
    rows = len(mixes) * len(prompts) * args.samples
    print(
        f"{len(mixes)} mixes x {len(prompts)} prompts x {args.samples} samples = {rows} rows "
        f"on {soup.device} ({soup.dtype})",
        file=sys.stderr,
    )
    bar = _progress_bar(rows)

    def on_chunk(partial, progress):
        bar.n = progress.rows_done
        bar.set_postfix_str(f"chunk {progress.chunks_done}/{progress.chunks_total}")
        bar.refresh()

    cache = None if args.no_cache else cache_dir() / "frontiers"
    try:
        ds = evaluate_grid(soup, spec, batch_size=args.batch_size, cache=cache, on_chunk=on_chunk)
    finally:
        bar.close()
    save_results(ds, out)
    print(summary_table(ds))
    print(
        f"\nwrote {out}  (wall time {bar.format_dict['elapsed']:.1f} s; hypervolume "
        f"{ds.attrs.get('hypervolume', float('nan')):.4g}, reference {ds.attrs.get('reference')})"
    )
    return 0


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="row", desc="grid", file=sys.stderr, dynamic_ncols=True)


def summary_table(ds) -> str:
    """One line per mix: weights, mean scores with intervals, and a Pareto mark."""
    adapters = [str(a) for a in ds["adapter"].values]
    objectives = [str(o) for o in ds["objective"].values]
    head = [
        *adapters,
        *(f"{o} ({d[:3]})" for o, d in zip(objectives, ds["direction"].values, strict=True)),
        "pareto",
    ]
    lines = []
    for m in range(ds.sizes["mix"]):
        cells = [f"{w:.2f}" for w in ds["weights"].values[m]]
        for k in range(len(objectives)):
            mean, lo, hi = (float(ds[v].values[m, k]) for v in ("mean", "ci_low", "ci_high"))
            cells.append(f"{mean:.3g} [{lo:.3g}, {hi:.3g}]")
        cells.append("*" if ds["pareto"].values[m] else "")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*c) for c in lines)])
