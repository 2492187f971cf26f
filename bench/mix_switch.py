"""Mix switch: the time to go from one mix to another and be ready to generate, four ways, side by side.

    python bench/mix_switch.py                                  # the demo on this machine (CPU)
    python bench/mix_switch.py --model llama-7b --device cuda   # random Llama-2-7B shape, bf16

(a) soup: ``Soup.set_weights`` (the gate of the stacked adapter; no model weight changes)
(b) PEFT ``add_weighted_adapter(..., "cat")`` + ``set_adapter`` + ``delete_adapter`` of the old mix
(c) PEFT ``add_weighted_adapter(..., "svd")`` at its default rank (+ set/delete)
(d) merge: W = W0 + sum_i w_i s_i B_i A_i written into every target module's weight, as a
    rewarded-soups user does (the lightest form: one addmm per module from a kept copy of W0)

Every switch alternates between two mixes; the median of ``--repeat`` switches is reported, with
the ratio to (a), and the peak memory of each (CUDA max allocated, or the process's peak RSS on
the CPU). Writes bench/results/mix_switch-<model>-<device>.json.
"""

from __future__ import annotations

import argparse
import itertools

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
    peft_switch,
    pick_device,
    pick_dtype,
    time_call,
)

MIXES = (
    {"positive": 0.6, "concise": 0.3, "readable": 0.1},
    {"positive": 0.1, "concise": 0.2, "readable": 0.7},
)


def _mixes(names) -> list[dict[str, float]]:
    return [{n: m.get(n, 0.0) for n in names} for m in MIXES]


def bench_soup(setup, names, repeat: int) -> tuple[float, int, int]:
    soup = load_soup(setup, names)
    mixes = itertools.cycle(_mixes(names))
    soup.set_weights(next(mixes))  # warm-up
    with PeakMemory(setup.device) as mem:
        seconds = time_call(lambda: soup.set_weights(next(mixes)), setup.device, repeat=repeat)
    soup.close()
    stacked = sum(s.A.nbytes + s.B.nbytes for s in soup.stacks.values())
    return seconds, mem.peak, stacked


def bench_merge(setup, names, repeat: int) -> tuple[float, int]:
    merge = Merge(setup, names)
    mixes = itertools.cycle(torch.tensor([[m[n] for n in names] for m in _mixes(names)]))
    merge(next(mixes))
    with PeakMemory(setup.device) as mem:
        seconds = time_call(lambda: merge(next(mixes)), setup.device, repeat=repeat)
    merge.restore()
    return seconds, mem.peak


def bench_peft(setup, names, repeat: int, combination: str) -> tuple[float, int]:
    model = load_peft(setup, names)
    mixes = ([mix[n] for n in names] for mix in itertools.cycle(_mixes(names)))
    switch = peft_switch(model, names, mixes, combination)
    switch()
    with PeakMemory(setup.device) as mem:
        seconds = time_call(switch, setup.device, repeat=repeat)
    setup.model = model.unload()  # the bare base model again, for whatever runs next
    return seconds, mem.peak


def main(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    setup = make_setup(args.model, device, dtype, prompts=1)
    names = list(setup.adapters)
    model_mb = setup.model_bytes() / 2**20
    rows = []
    for method, label, run, repeat in [
        ("soup", "(a) soup: set the gate", lambda: bench_soup(setup, names, args.repeat), args.repeat),
        ("merge", "(d) merge into W", lambda: bench_merge(setup, names, args.slow_repeat), args.slow_repeat),
        (
            "peft_cat",
            "(b) PEFT cat + set + delete",
            lambda: bench_peft(setup, names, args.slow_repeat, "cat"),
            args.slow_repeat,
        ),
        (
            "peft_svd",
            "(c) PEFT svd + set + delete",
            lambda: bench_peft(setup, names, max(1, args.slow_repeat // 3), "svd"),
            max(1, args.slow_repeat // 3),
        ),
    ]:
        if method in args.skip:
            continue
        seconds, peak, *extra = run()
        rows.append(
            {"method": method, "label": label, "seconds": seconds, "repeat": repeat, "peak_bytes": peak}
        )
        if extra:  # the soup's own memory: its stacked factors, the adapters' size, never a model copy
            rows[-1]["added_mb"] = extra[0] / 2**20
        print(f"  {label}: {seconds * 1e3:.3f} ms", flush=True)
    base = next(r["seconds"] for r in rows if r["method"] == "soup")
    for r in rows:
        r["ms"] = r["seconds"] * 1e3
        r["x_soup"] = r["seconds"] / base
        r["peak_mb"] = r["peak_bytes"] / 2**20
    env = environment(device, dtype)
    added = next(r["added_mb"] for r in rows if r["method"] == "soup")
    print(
        f"the soup's stacked adapters: {added:.2f} MB ({100 * added / model_mb:.2f}% of the model's weights)"
    )
    return finish(
        f"mix_switch-{args.model}-{device.type}.json",
        f"mix switch, {setup.label} ({model_mb:.0f} MB of weights), {env['hardware']}, {env['dtype']}",
        rows,
        [
            ("label", "method", ""),
            ("ms", "ms per switch", ".4g"),
            ("x_soup", "x soup", ".4g"),
            ("peak_mb", "peak MB", ".0f"),
            ("repeat", "median of", "d"),
        ],
        {"benchmark": "mix_switch", "model": setup.label, "model_mb": model_mb, **env},
    )


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--repeat", type=int, default=200, help="switches timed for the soup")
    p.add_argument("--slow-repeat", type=int, default=6, help="switches timed for merge and PEFT")
    p.add_argument("--skip", nargs="*", default=[], choices=["merge", "peft_cat", "peft_svd"])
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
