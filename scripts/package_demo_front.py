"""Compute the demo's default frontier and ship it with the package, so the demo opens with it drawn.

    python scripts/package_demo_front.py           # reuses a finished run of it in the user cache
    python scripts/package_demo_front.py --fresh   # computes it again (about 4 minutes on 2 CPU cores)

Writes ``explorer/data/frontiers/demo.nc``: the app's default grid (``AppOptions``: its grid
prompts and resolution; greedy, ``DEFAULT_MAX_NEW_TOKENS``) on the demo base and adapters, on
this machine's device and dtype (CPU, float32). The app uses it only where its cache key and its
scorers' code hashes match (``explorer.frontier.packaged``); run this again after changing any
input of the demo's grid (adapters, prompts, decoding, objectives, scorers, the cache key).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from explorer.config import ModelOptions
from explorer.frontier.cache import cache_key
from explorer.frontier.evaluation import evaluate_grid
from explorer.frontier.packaged import mark_packaged, packaged_front, why_not
from explorer.frontier.results import is_complete, n_mixes, save_results
from explorer.launch import prepare_app
from explorer.options import AppOptions
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig

MAX_BYTES = 1_000_000  # a package file, not a data set


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fresh", action="store_true", help="compute the grid again, ignoring the user cache")
    p.add_argument("--out", type=Path, default=None, help="default: explorer/data/frontiers/demo.nc")
    args = p.parse_args(argv)
    setup = prepare_app(ModelOptions(device="cpu"), AppOptions())
    spec = setup.grid_spec(SamplingConfig(DEFAULT_MAX_NEW_TOKENS))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) if args.fresh or setup.cache_dir is None else setup.cache_dir
        ds = evaluate_grid(setup.soup, spec, batch_size=setup.grid_batch_size, cache=cache)
    if not is_complete(ds):
        raise SystemExit("the grid did not complete: nothing written")
    out = args.out or packaged_front()
    save_results(mark_packaged(ds, spec.objectives), out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(
            f"{out} is {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.0f} MB a package file may take"
        )
    key = cache_key(setup.soup, spec)
    problem = why_not(out, key, spec.objectives)
    if problem is not None:
        raise SystemExit(f"{out} would not be used: {problem}")
    print(
        f"wrote {out} ({size / 1e3:.0f} kB): {n_mixes(ds)} mixes x {len(spec.prompts)} prompts, cache key {key}"
    )
    setup.soup.close()
    return out


if __name__ == "__main__":
    main()
