"""Rank-K export of a mix: our factored truncated SVD against PEFT's add_weighted_adapter(..., "svd").

    python bench/lowrank_export.py                 # the demo's adapters on SmolLM2, K = 8
    python bench/lowrank_export.py --rank 4 --modules 20

Both compute the best rank-K approximation of every module's mixed delta, side by side in one
run, on the same modules. Prints a table and writes bench/results/lowrank_export.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(args: argparse.Namespace) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from explorer.demo import demo_adapters, demo_base
    from explorer.export import mixed_factors, truncate
    from explorer.soup import Soup

    torch.manual_seed(0)
    base, adapters = demo_base(), demo_adapters()
    soup = Soup.load(base, adapters, device="cpu")
    weights = {n: 1.0 / len(soup.names) for n in soup.names}
    modules = list(soup.target_modules)[: args.modules]

    start = time.perf_counter()
    factors = mixed_factors(soup, weights)
    ours = {m: truncate(factors[m], args.rank) for m in modules}
    ours_s = time.perf_counter() - start

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    names = list(adapters)
    peft_model = PeftModel.from_pretrained(model, adapters[names[0]], adapter_name=names[0])
    for n in names[1:]:
        peft_model.load_adapter(adapters[n], adapter_name=n)
    # PEFT's svd forms each module's full mixed delta (out x in) and runs a full SVD of it
    start = time.perf_counter()
    peft_model.add_weighted_adapter(
        names,
        [weights[n] for n in names],
        "svd_mix",
        combination_type="svd",
        svd_rank=args.rank,
    )
    peft_s = time.perf_counter() - start
    n_peft = sum(
        1 for _, mod in peft_model.named_modules() if hasattr(mod, "lora_A") and "svd_mix" in mod.lora_A
    )

    # both are the same best rank-K approximation: compare their deltas on one module
    m = modules[0]
    layer = peft_model.base_model.model.get_submodule(m)
    theirs = layer.get_delta_weight("svd_mix").double()
    mine = (ours[m].B @ ours[m].A).double()
    agreement = ((theirs - mine).norm() / mine.norm()).item()

    per_module_ours = ours_s / len(modules)
    per_module_peft = peft_s / n_peft
    report = {
        "rank": args.rank,
        "modules_ours": len(modules),
        "modules_peft": n_peft,
        "ours_s_per_module": per_module_ours,
        "peft_svd_s_per_module": per_module_peft,
        "speedup": per_module_peft / per_module_ours,
        "relative_difference_of_deltas": agreement,
        "device": "cpu",
        "threads": torch.get_num_threads(),
    }
    print(
        f"rank-{args.rank} mix of {len(names)} adapters, per module (CPU, {torch.get_num_threads()} threads)"
    )
    print(f"  ours (QR + R x R SVD):     {per_module_ours * 1e3:9.2f} ms  over {len(modules)} modules")
    print(f"  PEFT add_weighted_adapter: {per_module_peft * 1e3:9.2f} ms  over {n_peft} modules")
    print(
        f"  speed-up: {report['speedup']:.0f}x;  relative difference of the two deltas on {m}: {agreement:.2e}"
    )
    out = HERE / "results" / "lowrank_export.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return report


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--modules", type=int, default=1000, help="time our method on at most this many modules")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
