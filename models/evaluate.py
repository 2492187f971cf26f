"""Evaluate the demo adapters on held-out prompts: own-objective gains, tension, examples.

    python -m models.evaluate --sweep positive,concise

Generates greedily (one batched run through the soup: every (mix, prompt) is a row) for the
base model, each adapter alone, and an 11-point sweep between two adapters; scores every
response with every adapter's objective; writes models/evaluation.json and prints the tables
that models/README.md reports.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELDOUT = HERE.parent / "assets" / "prompts" / "heldout.txt"


def main(args: argparse.Namespace) -> dict:
    import numpy as np

    from explorer.demo import demo_adapters, demo_base
    from explorer.frontier import bootstrap_mean_ci, pareto_mask
    from explorer.objectives import get_objective
    from explorer.sampling import generate
    from explorer.soup import Soup

    prompts = [p.strip() for p in HELDOUT.read_text().splitlines() if p.strip()][: args.prompts]
    soup = Soup.load(demo_base(), demo_adapters(), device=args.device)
    names = list(soup.names)
    objectives = {n: get_objective(n) for n in names}
    a, b = args.sweep.split(",")
    mixes = [{n: 0.0 for n in names}] + [{n: float(n == m) for n in names} for m in names]
    sweep = [{n: (1 - t) * (n == a) + t * (n == b) for n in names} for t in np.linspace(0, 1, 11)]
    mixes += [m for m in sweep if m not in mixes]
    rows_prompts = [p for _ in mixes for p in prompts]
    rows_mixes = [m for m in mixes for _ in prompts]
    start = time.time()
    texts = []
    for i in range(0, len(rows_prompts), args.batch_size):
        out = generate(
            soup,
            rows_prompts[i : i + args.batch_size],
            rows_mixes[i : i + args.batch_size],
            max_new_tokens=args.max_new_tokens,
        )
        texts += out.texts
        print(f"  generated {len(texts)}/{len(rows_prompts)} rows", flush=True)
    gen_s = time.time() - start
    scores = {
        n: o.score(rows_prompts, texts).reshape(len(mixes), len(prompts)) for n, o in objectives.items()
    }

    def label(m):
        return ", ".join(f"{n}={w:g}" for n, w in m.items() if w) or "base"

    report: dict = {
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "generation_s": round(gen_s, 1),
        "device": str(soup.device),
        "mixes": [],
        "gains": {},
        "examples": {},
    }
    for k, m in enumerate(mixes):
        report["mixes"].append(
            {"weights": m, "label": label(m), "means": {n: bootstrap_mean_ci(scores[n][k]) for n in names}}
        )
    for n in names:  # each adapter vs the base on its own objective, paired over prompts
        k = mixes.index({x: float(x == n) for x in names})
        diff = objectives[n].sign * (scores[n][k] - scores[n][0])
        report["gains"][n] = {
            "objective": n,
            "direction": objectives[n].direction,
            "improvement_mean_ci": bootstrap_mean_ci(diff),
        }
        report["examples"][n] = [
            {"prompt": prompts[j], "base": texts[j], "adapter": texts[k * len(prompts) + j]} for j in range(3)
        ]
    sweep_rows = [mixes.index(m) for m in sweep]
    table = np.array([[np.nanmean(scores[n][k]) for n in (a, b)] for k in sweep_rows])
    mask = pareto_mask(table, [objectives[a].direction, objectives[b].direction])
    report["sweep"] = {
        "pair": [a, b],
        "means": table.tolist(),
        "pareto": mask.tolist(),
        "non_dominated": int(mask.sum()),
    }
    best = {
        n: max(range(1, len(names) + 1), key=lambda k: objectives[n].sign * np.nanmean(scores[n][k]))
        for n in names
    }
    report["best_single_adapter_per_objective"] = {n: label(mixes[k]) for n, k in best.items()}
    (HERE / "evaluation.json").write_text(json.dumps(report, indent=1))
    print(
        json.dumps({k: report[k] for k in ("gains", "sweep", "best_single_adapter_per_objective")}, indent=1)
    )
    return report


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sweep", default="positive,concise", help="two adapters to sweep between (default positive,concise)"
    )
    p.add_argument("--prompts", type=int, default=64, help="held-out prompts to use (default all 64)")
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None)
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
