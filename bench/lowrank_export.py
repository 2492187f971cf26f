"""Rank-K export of a mix: our factored truncated SVD against PEFT's add_weighted_adapter(..., "svd").

    python bench/lowrank_export.py                        # the demo's adapters on SmolLM2, K = 8
    python bench/lowrank_export.py --model llama-7b   # random Llama-2-7B shapes (2 layers)

Both compute the best rank-K approximation of every module's mixed delta, side by side in one
run, on the same modules of the same PeftModel: PEFT forms each module's full mixed delta
(out x in) and runs a full SVD of it; ours takes QR of the two stacked factors and an SVD of the
R x R core (``explorer.layer.StackedLora.mixed`` + ``explorer.export.truncate``). Ours is timed as the median of
``--repeat`` runs after a warm-up; PEFT once (it is slow). Prints a table and writes
bench/results/lowrank_export-<model>.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import load_peft, make_setup, write_json  # bench/common.py, beside this script

from explorer.adapters import LoraModule
from explorer.export import truncate
from explorer.layer import StackedLora


def lora_layers(model, names, limit: int):
    layers = [
        (name, mod)
        for name, mod in model.named_modules()
        if hasattr(mod, "lora_A") and all(n in mod.lora_A for n in names)
    ]
    return layers[:limit]


def stacks(layers, names) -> dict[str, StackedLora]:
    """Each layer's stacked factors, from its own LoRA tensors (built once, like a soup at load time)."""
    return {
        name: StackedLora(
            name,
            [
                (
                    i,
                    LoraModule(
                        A=layer.lora_A[n].weight.detach(),
                        B=layer.lora_B[n].weight.detach(),
                        scale=layer.scaling[n],
                    ),
                )
                for i, n in enumerate(names)
            ],
        )
        for name, layer in layers
    }


def ours(stacked: dict[str, StackedLora], names, weights, rank: int):
    """Our rank-K factors of every layer's mixed delta: the exact mixed factors, then truncated."""
    w = torch.tensor([weights[n] for n in names], dtype=torch.float64)
    out = {}
    for name, stack in stacked.items():
        factors = stack.mixed(w)
        assert factors is not None
        out[name] = truncate(factors, rank)[0]
    return out


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    layers = None if args.model == "demo" else args.layers
    setup = make_setup(args.model, torch.device("cpu"), torch.float32, prompts=1, layers=layers)
    names = list(setup.adapters)
    weights = {n: 1.0 / len(names) for n in names}
    model = load_peft(setup, names)
    layers = lora_layers(model, names, args.modules)
    keep = {name for name, _ in layers}

    stacked = stacks(layers, names)
    ours(stacked, names, weights, args.rank)  # warm-up (LAPACK initialisation)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        factors = ours(stacked, names, weights, args.rank)
        times.append(time.perf_counter() - start)
    ours_s = statistics.median(times) / len(layers)

    # PEFT's svd over the same modules only: the others are hidden from it by target_modules
    for name, layer in model.named_modules():
        if hasattr(layer, "lora_A") and name not in keep:
            for n in names:
                layer.lora_A.pop(n, None)
                layer.lora_B.pop(n, None)
    start = time.perf_counter()
    model.add_weighted_adapter(
        names, [weights[n] for n in names], "svd_mix", combination_type="svd", svd_rank=args.rank
    )
    peft_total = time.perf_counter() - start
    n_peft = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_A") and "svd_mix" in m.lora_A)
    peft_s = peft_total / n_peft

    name, layer = layers[0]
    theirs = layer.get_delta_weight("svd_mix").double()
    mine = (factors[name].B @ factors[name].A).double()
    agreement = ((theirs - mine).norm() / mine.norm()).item()
    out_f, in_f = mine.shape
    report = {
        "benchmark": "lowrank_export",
        "model": setup.label,
        "module_shape_first": [out_f, in_f],
        "rank": args.rank,
        "stacked_rank": sum(layer.r[n] for n in names),
        "modules": len(layers),
        "modules_peft": n_peft,
        "ours_s_per_module": ours_s,
        "peft_svd_s_per_module": peft_s,
        "speedup": peft_s / ours_s,
        "relative_difference_of_deltas": agreement,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "repeat": args.repeat,
    }
    print(
        f"rank-{args.rank} mix of {len(names)} adapters, {setup.label}, {len(layers)} modules "
        f"(first {out_f}x{in_f}), CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"  ours (QR + R x R SVD):               {ours_s * 1e3:9.3f} ms per module (median of {args.repeat})"
    )
    print(f"  PEFT add_weighted_adapter(svd):      {peft_s * 1e3:9.3f} ms per module")
    print(f"  speed-up: {report['speedup']:.0f}x;  relative difference of the two deltas: {agreement:.1e}")
    out = write_json(f"lowrank_export-{args.model}.json", report)
    print(f"wrote {out}")
    return report


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", choices=["demo", "smollm2", "llama-1b", "llama-7b"])
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--modules", type=int, default=1000, help="use at most this many modules")
    p.add_argument("--layers", type=int, default=2, help="decoder layers of a random model (shapes kept)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of ours (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
