"""Frontier throughput: every (mix, prompt) of a grid generated four ways, side by side in one run.

    python bench/frontier_throughput.py                                  # the demo, this CPU
    python bench/frontier_throughput.py --model llama-7b --device cuda   # random Llama-2-7B shape, bf16

21 mixes (the 3-adapter simplex lattice at resolution 5) x 16 prompts x 48 new tokens, fixed
length (EOS ignored), greedy; the same prompt tokens for every method:

(a) soup: the whole grid as batched generation through the gated soup (one run, or chunks of
    ``--batch-size`` rows), every row with its own mix
(b) one mix at a time: merge W = W0 + delta into the weights, then generate its prompts as a batch
(c) PEFT mixed-adapter batches: one pre-built ``cat`` adapter per mix (building them is timed
    apart), then batches whose rows name their adapter (``adapter_names``)
(d) the base model alone on the same number of rows: the ceiling

Prints generated tokens per second, wall time, the ratio to (a) and peak memory (CUDA max
allocated, or the process's peak RSS on the CPU); writes bench/results/frontier-<model>-<device>.json.
"""

from __future__ import annotations

import argparse

import torch
from common import (  # bench/common.py, beside this script
    Merge,
    PeakMemory,
    add_model_args,
    environment,
    finish,
    load_peft,
    load_soup,
    make_setup,
    pick_device,
    pick_dtype,
    time_call,
)
from transformers import GenerationConfig

from explorer.frontier.grid import simplex_lattice


def _generate(model, ids, mask, tokens: int, **kwargs) -> torch.Tensor:
    config = GenerationConfig(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    with torch.inference_mode():
        return model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **kwargs)


def _grid_rows(setup, mixes: torch.Tensor):
    """The grid as rows: every mix's prompts in turn (row = mix * prompts + prompt), on the device."""
    n = len(mixes)
    return setup.input_ids.repeat(n, 1).to(setup.device), setup.attention_mask.repeat(n, 1).to(setup.device)


def _chunks(total: int, size: int):
    for start in range(0, total, size or total):
        yield slice(start, min(total, start + (size or total)))


def run_soup(setup, names, mixes, args) -> float:
    soup = load_soup(setup, names)
    ids, mask = _grid_rows(setup, mixes)
    weights = mixes.repeat_interleave(setup.input_ids.shape[0], dim=0)  # (rows, N)

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size):
            with soup.mixed(weights[rows]):
                _generate(setup.model, ids[rows], mask[rows], args.tokens)

    seconds = time_call(grid, setup.device)
    soup.close()
    return seconds


def run_merge_each(setup, names, mixes, args) -> float:
    merge = Merge(setup, names)
    ids, mask = setup.input_ids.to(setup.device), setup.attention_mask.to(setup.device)

    def one_at_a_time():
        for mix in mixes:
            merge(mix)
            _generate(setup.model, ids, mask, args.tokens)

    seconds = time_call(one_at_a_time, setup.device)
    merge.restore()
    return seconds


def run_peft_mixed(setup, names, mixes, args) -> tuple[float, float]:
    model = load_peft(setup, names)
    mix_names = [f"mix{k}" for k in range(len(mixes))]

    def build():
        for name, mix in zip(mix_names, mixes.tolist(), strict=True):
            model.add_weighted_adapter(names, mix, name, combination_type="cat")

    build_s = time_call(build, setup.device)
    ids, mask = _grid_rows(setup, mixes)
    row_adapters = [name for name in mix_names for _ in range(setup.input_ids.shape[0])]

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size):
            _generate(model, ids[rows], mask[rows], args.tokens, adapter_names=row_adapters[rows])

    seconds = time_call(grid, setup.device)
    setup.model = model.unload()
    return seconds, build_s


def run_base(setup, names, mixes, args) -> float:
    ids, mask = _grid_rows(setup, mixes)

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size):
            _generate(setup.model, ids[rows], mask[rows], args.tokens)

    return time_call(grid, setup.device)


def main(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    setup = make_setup(args.model, device, dtype, prompts=args.prompts)
    names = list(setup.adapters)
    mixes = torch.from_numpy(simplex_lattice(len(names), args.resolution))  # (mixes, N)
    n_rows = len(mixes) * setup.input_ids.shape[0]
    tokens = n_rows * args.tokens
    _generate(setup.model, setup.input_ids[:2].to(device), setup.attention_mask[:2].to(device), 2)  # warm-up
    rows = []
    methods = [
        ("base", "(d) base model alone (ceiling)", run_base),
        ("soup", "(a) soup: one batched grid", run_soup),
        ("merge_each", "(b) merge, then generate, per mix", run_merge_each),
        ("peft_mixed", "(c) PEFT mixed-adapter batch", run_peft_mixed),
    ]
    for method, label, run in methods:
        if method in args.skip:
            continue
        with PeakMemory(device) as mem:
            out = run(setup, names, mixes, args)
        seconds, build = out if isinstance(out, tuple) else (out, None)
        rows.append(
            {
                "method": method,
                "label": label,
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                "build_s": build,
                "peak_bytes": mem.peak,
            }
        )
        print(f"  {label}: {seconds:.1f} s, {tokens / seconds:.0f} tokens/s", flush=True)
    soup_s = next(r["seconds"] for r in rows if r["method"] == "soup")
    base = next((r for r in rows if r["method"] == "base"), None)
    for r in rows:
        r["x_soup_time"] = r["seconds"] / soup_s
        r["of_ceiling"] = base["seconds"] / r["seconds"] if base else None
        r["peak_mb"] = r["peak_bytes"] / 2**20
    env = environment(device, dtype)
    return finish(
        f"frontier-{args.model}-{device.type}.json",
        f"frontier grid, {setup.label}, {len(mixes)} mixes x {setup.input_ids.shape[0]} prompts x "
        f"{args.tokens} tokens = {tokens} tokens, {env['hardware']}, {env['dtype']}",
        rows,
        [
            ("label", "method", ""),
            ("seconds", "wall s", ".2f"),
            ("tokens_per_s", "tokens/s", ".0f"),
            ("x_soup_time", "time / soup", ".2f"),
            ("of_ceiling", "x ceiling", ".2f"),
            ("peak_mb", "peak MB", ".0f"),
            ("build_s", "adapters built in s", ".2f"),
        ],
        {
            "benchmark": "frontier_throughput",
            "model": setup.label,
            "mixes": len(mixes),
            "prompts": int(setup.input_ids.shape[0]),
            "prompt_tokens": int(setup.input_ids.shape[1]),
            "new_tokens": args.tokens,
            "batch_size": args.batch_size,
            **env,
        },
    )


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--resolution", type=int, default=5, help="simplex lattice resolution (5: 21 mixes)")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=48, help="new tokens per row, fixed (EOS ignored)")
    p.add_argument("--batch-size", type=int, default=0, help="rows per generate call (0: all at once)")
    p.add_argument("--skip", nargs="*", default=[], choices=["base", "merge_each", "peft_mixed"])
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
