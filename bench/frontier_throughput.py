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
import itertools

import torch
from common import (  # bench/common.py, beside this script
    PeakMemory,
    environment,
    make_setup,
    pick_device,
    pick_dtype,
    table,
    time_call,
    write_json,
)
from transformers import GenerationConfig


def lattice(names, resolution: int) -> torch.Tensor:
    """Every mix on the simplex with weights in multiples of 1/resolution, (mixes, N) float64."""
    rows = [c for c in itertools.product(range(resolution + 1), repeat=len(names)) if sum(c) == resolution]
    return torch.tensor(rows, dtype=torch.float64) / resolution


def _generate(model, ids, mask, tokens: int, **kwargs) -> torch.Tensor:
    config = GenerationConfig(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    with torch.inference_mode():
        return model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **kwargs)


def _chunks(total: int, size: int):
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def run_soup(setup, names, mixes, args) -> float:
    from explorer.adapters import read_adapter
    from explorer.soup import Soup

    soup = Soup(setup.model, setup.tokenizer, [read_adapter(n, setup.adapters[n]) for n in names])
    p = setup.input_ids.shape[0]
    ids = setup.input_ids.repeat(len(mixes), 1).to(setup.device)  # row = mix * p + prompt
    mask = setup.attention_mask.repeat(len(mixes), 1).to(setup.device)
    weights = mixes.repeat_interleave(p, dim=0)  # (rows, N)

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size or ids.shape[0]):
            with soup.mixed(weights[rows]):
                _generate(setup.model, ids[rows], mask[rows], args.tokens)

    seconds = time_call(grid, setup.device)
    soup.close()
    return seconds


def run_merge_each(setup, names, mixes, args) -> float:
    from explorer.adapters import read_adapter
    from explorer.soup import Soup

    soup = Soup(setup.model, setup.tokenizer, [read_adapter(n, setup.adapters[n]) for n in names])
    soup.close()  # its stacked factors only: this method merges into the weights
    modules = {m: setup.model.get_submodule(m) for m in soup.target_modules}
    originals = {m: mod.weight.detach().clone() for m, mod in modules.items()}
    ids, mask = setup.input_ids.to(setup.device), setup.attention_mask.to(setup.device)

    def one_at_a_time():
        for mix in mixes:
            w = mix.to(setup.device, setup.dtype)
            with torch.no_grad():
                for m, mod in modules.items():
                    stack = soup._stacks[m]
                    gate = w[list(stack.slots)]
                    mod.weight.copy_(originals[m]).addmm_(stack.B, gate[:, None] * stack.A)
            _generate(setup.model, ids, mask, args.tokens)

    seconds = time_call(one_at_a_time, setup.device)
    with torch.no_grad():
        for m, mod in modules.items():
            mod.weight.copy_(originals[m])
    return seconds


def run_peft_mixed(setup, names, mixes, args) -> tuple[float, float]:
    from peft import PeftModel

    model = PeftModel.from_pretrained(setup.model, setup.adapters[names[0]], adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(setup.adapters[n], adapter_name=n)
    model.eval()
    mix_names = [f"mix{k}" for k in range(len(mixes))]

    def build():
        for name, mix in zip(mix_names, mixes.tolist(), strict=True):
            model.add_weighted_adapter(names, mix, name, combination_type="cat")

    build_s = time_call(build, setup.device)
    p = setup.input_ids.shape[0]
    ids = setup.input_ids.repeat(len(mixes), 1).to(setup.device)
    mask = setup.attention_mask.repeat(len(mixes), 1).to(setup.device)
    row_adapters = [name for name in mix_names for _ in range(p)]

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size or ids.shape[0]):
            _generate(model, ids[rows], mask[rows], args.tokens, adapter_names=row_adapters[rows])

    seconds = time_call(grid, setup.device)
    setup.model = model.unload()
    return seconds, build_s


def run_base(setup, names, mixes, args) -> float:
    ids = setup.input_ids.repeat(len(mixes), 1).to(setup.device)
    mask = setup.attention_mask.repeat(len(mixes), 1).to(setup.device)

    def grid():
        for rows in _chunks(ids.shape[0], args.batch_size or ids.shape[0]):
            _generate(setup.model, ids[rows], mask[rows], args.tokens)

    return time_call(grid, setup.device)


def main(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    setup = make_setup(args.model, device, dtype, prompts=args.prompts)
    names = list(setup.adapters)
    mixes = lattice(names, args.resolution)
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
    print(
        f"\nfrontier grid, {setup.label}, {len(mixes)} mixes x {setup.input_ids.shape[0]} prompts x "
        f"{args.tokens} tokens = {tokens} tokens, {env['hardware']}, {env['dtype']}"
    )
    print(
        table(
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
        )
    )
    report = {
        "benchmark": "frontier_throughput",
        "model": setup.label,
        "mixes": len(mixes),
        "prompts": int(setup.input_ids.shape[0]),
        "prompt_tokens": int(setup.input_ids.shape[1]),
        "new_tokens": args.tokens,
        "batch_size": args.batch_size,
        **env,
        "rows": rows,
    }
    out = write_json(f"frontier-{args.model}-{device.type}.json", report)
    print(f"wrote {out}")
    return report


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", choices=["demo", "smollm2", "llama-1b", "llama-7b"])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--resolution", type=int, default=5, help="simplex lattice resolution (5: 21 mixes)")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=48, help="new tokens per row, fixed (EOS ignored)")
    p.add_argument("--batch-size", type=int, default=0, help="rows per generate call (0: all at once)")
    p.add_argument("--skip", nargs="*", default=[], choices=["base", "merge_each", "peft_mixed"])
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
