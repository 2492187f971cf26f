"""Evaluate the demo adapters on the 64 held-out prompts: effect sizes, tension, fluency, examples.

    python -m models.evaluate                          # writes models/evaluation.json, prints the tables
    python -m models.evaluate --pair positive,concise --pair readable,positive

Decoding is the app's default (greedy, ``DEFAULT_MAX_NEW_TOKENS`` new tokens). Every (mix,
prompt) is a row of batched generations through the soup: the base (all weights 0), each
adapter alone, and an 11-point sweep between the two adapters of each ``--pair``. Every
response is scored by every built-in objective the adapters are named after, plus relevance.

Reported, per the demo's acceptance criteria:
- effect: each adapter's mean paired improvement on its own objective over the base, in units
  of the SD of the base's per-prompt scores, with a 95% bootstrap interval;
- tension: along each sweep, how far each objective moves between the ends (base SDs, in the
  objective's better direction) and how many of the 11 mixes are mutually non-dominated;
- fluency: perplexity of each mix's responses under the base model (over response tokens),
  corpus distinct-2, mean relevance (MiniLM cosine to the prompt), empty responses.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from models.train import LOOP_DISTINCT2, distinct2, word_bigrams

HERE = Path(__file__).resolve().parent
OUT = HERE / "evaluation.json"


def label(mix: dict[str, float]) -> str:
    return ", ".join(f"{n}={w:g}" for n, w in mix.items() if w) or "base"


def report_path(folder: str) -> str:
    """``folder`` relative to the checkout when it is inside it (the report names no machine
    path), else absolute."""
    path = Path(folder).resolve()
    return str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path)


def distinct2_corpus(texts: list[str]) -> float:
    """Distinct bigrams / all bigrams over every response (Li et al., 2016)."""
    bigrams = [bg for t in texts for bg in word_bigrams(t)]
    return len(set(bigrams)) / len(bigrams) if bigrams else float("nan")


def base_perplexity(soup, prompts: list[str], token_ids: list[list[int]], batch_size: int = 16) -> float:
    """exp(mean NLL per response token) of the responses under the base model (all weights 0)."""
    import torch

    from explorer.sampling import encode_prompts

    total_nll, total_tokens = 0.0, 0
    zeros = {n: 0.0 for n in soup.names}
    with soup.lock, soup.mixed(zeros), torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            ps, rs = prompts[start : start + batch_size], token_ids[start : start + batch_size]
            enc = encode_prompts(soup.tokenizer, ps)  # left-padded prompts
            width = max(len(r) for r in rs)
            resp = torch.full((len(rs), width), soup.tokenizer.pad_token_id, dtype=torch.long)
            resp_mask = torch.zeros((len(rs), width), dtype=torch.long)
            for i, r in enumerate(rs):
                resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
                resp_mask[i, : len(r)] = 1
            ids = torch.cat([enc["input_ids"], resp], dim=1).to(soup.device)
            mask = torch.cat([enc["attention_mask"], resp_mask], dim=1).to(soup.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions start at each prompt
            logits = soup.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
            t0 = enc["input_ids"].shape[1]
            logp = torch.log_softmax(logits[:, t0 - 1 : -1], dim=-1)  # predicts the response tokens
            nll = -logp.gather(-1, resp.to(soup.device)[..., None])[..., 0]
            total_nll += float((nll * resp_mask.to(soup.device)).sum())
            total_tokens += int(resp_mask.sum())
    return math.exp(total_nll / max(total_tokens, 1))


def generate_all(soup, prompts, mixes, *, max_new_tokens: int, batch_size: int):
    """Texts and token ids, (mix, prompt) order; rows batched in mix order."""
    from explorer.sampling import generate

    rows = [(k, p) for k in range(len(mixes)) for p in prompts]
    texts, ids = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out = generate(
            soup, [p for _, p in chunk], [mixes[k] for k, _ in chunk], max_new_tokens=max_new_tokens
        )
        texts += out.texts
        ids += out.token_ids
        print(f"  generated {len(texts)}/{len(rows)} rows", flush=True)
    shape = (len(mixes), len(prompts))
    return np.array(texts, dtype=object).reshape(shape), [
        ids[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])
    ]


def main(args: argparse.Namespace) -> dict:
    from explorer.demo import demo_adapters, demo_base
    from explorer.frontier.pareto import bootstrap_mean_ci, pareto_mask
    from explorer.objectives import get_objective
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import DEFAULT_MAX_NEW_TOKENS
    from explorer.soup import Soup

    prompts = read_prompts(HELDOUT)[: args.prompts]
    adapters = demo_adapters()
    for spec in args.adapter or []:  # NAME=DIR: evaluate a candidate adapter in place of the demo's
        name, _, folder = spec.partition("=")
        if name not in adapters or not Path(folder, "adapter_config.json").is_file():
            raise SystemExit(
                f"--adapter {spec}: give NAME=DIR, NAME one of {sorted(adapters)}, DIR a PEFT adapter"
            )
        adapters[name] = folder
    named = {n: report_path(f) for n, f in adapters.items()}  # before the long run, not after it
    soup = Soup.load(demo_base(), adapters, device=args.device)
    names = list(soup.names)
    pairs = [tuple(p.split(",")) for p in (args.pair or [])] or [
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :]
    ]
    measured = list(dict.fromkeys(names + ["relevant"]))
    objectives = {n: get_objective(n) for n in measured}
    max_new = args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS

    zero = {n: 0.0 for n in names}
    mixes = [zero] + [{n: float(n == m) for n in names} for m in names]
    sweeps = {}
    for a, b in pairs:
        sweep = [
            {n: round((1 - t) * (n == a) + t * (n == b), 10) for n in names} for t in np.linspace(0, 1, 11)
        ]
        sweeps[(a, b)] = sweep
        mixes += [m for m in sweep if m not in mixes]

    start = time.time()
    texts, token_ids = generate_all(soup, prompts, mixes, max_new_tokens=max_new, batch_size=args.batch_size)
    gen_s = time.time() - start
    flat_prompts = [p for _ in mixes for p in prompts]
    scores = {
        n: o.score(flat_prompts, list(texts.ravel())).reshape(len(mixes), len(prompts))
        for n, o in objectives.items()
    }
    base_sd = {n: float(np.nanstd(scores[n][0], ddof=1)) for n in measured}

    report: dict = {
        "prompts": len(prompts),
        "decoding": {"greedy": True, "max_new_tokens": max_new},
        "generation_s": round(gen_s, 1),
        "rows": len(mixes) * len(prompts),
        "device": str(soup.device),
        "base_sd": base_sd,
        "mixes": [],
        "effects": {},
        "sweeps": [],
        "fluency": {},
        "examples": {},
    }
    for k, m in enumerate(mixes):
        report["mixes"].append(
            {
                "weights": m,
                "label": label(m),
                "means": {n: bootstrap_mean_ci(scores[n][k]) for n in measured},
            }
        )
    cap = np.array([[len(t) >= max_new for t in row] for row in token_ids])
    for k in range(len(mixes)):
        report["mixes"][k]["cut_by_token_limit"] = float(cap[k].mean())

    for n in names:  # each adapter against the base on its own objective, paired over prompts
        k = mixes.index({x: float(x == n) for x in names})
        diff = objectives[n].sign * (scores[n][k] - scores[n][0])
        mean, low, high = bootstrap_mean_ci(diff)
        report["effects"][n] = {
            "direction": objectives[n].direction,
            "base_mean": float(np.nanmean(scores[n][0])),
            "adapter_mean": float(np.nanmean(scores[n][k])),
            "improvement": [mean, low, high],
            "improvement_sd": [mean / base_sd[n], low / base_sd[n], high / base_sd[n]],
        }
        report["examples"][n] = [
            {"prompt": prompts[j], "base": texts[0, j], "adapter": texts[k, j]} for j in range(args.examples)
        ]

    for mix_label, k in [("base", 0)] + [(n, mixes.index({x: float(x == n) for x in names})) for n in names]:
        report["fluency"][mix_label] = {
            "perplexity_under_base": base_perplexity(soup, prompts, token_ids[k]),
            "distinct2": distinct2_corpus(list(texts[k])),
            "relevance": float(np.nanmean(scores["relevant"][k])),
            "empty": int(sum(not t.strip() for t in texts[k])),
            "looping": int(sum(distinct2(t) < LOOP_DISTINCT2 for t in texts[k])),
            "mean_words": float(np.mean([len(t.split()) for t in texts[k]])),
        }
    base_fl = report["fluency"]["base"]
    for n in names:
        f = report["fluency"][n]
        f["perplexity_ratio"] = f["perplexity_under_base"] / base_fl["perplexity_under_base"]
        f["distinct2_ratio"] = f["distinct2"] / base_fl["distinct2"]
        f["relevance_drop"] = base_fl["relevance"] - f["relevance"]

    for (a, b), sweep in sweeps.items():
        rows = [mixes.index(m) for m in sweep]
        table = np.array([[np.nanmean(scores[n][k]) for n in (a, b)] for k in rows])
        dirs = [objectives[a].direction, objectives[b].direction]
        mask = pareto_mask(table, dirs)
        move_a = objectives[a].sign * (table[0, 0] - table[-1, 0]) / base_sd[a]  # a is better at a's end
        move_b = objectives[b].sign * (table[-1, 1] - table[0, 1]) / base_sd[b]  # b is better at b's end
        report["sweeps"].append(
            {
                "pair": [a, b],
                "weights_of_b": [round(t, 2) for t in np.linspace(0, 1, 11)],
                "means": table.tolist(),
                "pareto": mask.tolist(),
                "non_dominated": int(mask.sum()),
                "move_sd": [float(move_a), float(move_b)],
            }
        )

    report["adapters"] = named
    Path(args.out).write_text(json.dumps(report, indent=1, default=float))
    print_tables(report)
    return report


def print_tables(report: dict) -> None:
    """The markdown tables that models/README.md reports."""
    print("\n| adapter | base mean | adapter mean | paired improvement [95% CI] | in base SDs [95% CI] |")
    print("|---|---|---|---|---|")
    for n, e in report["effects"].items():
        m, lo, hi = e["improvement"]
        ms, los, his = e["improvement_sd"]
        print(
            f"| {n} ({e['direction']}) | {e['base_mean']:.3g} | {e['adapter_mean']:.3g} | "
            f"{m:.3g} [{lo:.3g}, {hi:.3g}] | {ms:.2f} [{los:.2f}, {his:.2f}] |"
        )
    print(
        "\n| mix | perplexity under base | ratio | distinct-2 | ratio | relevance | drop | empty | looping | words |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, f in report["fluency"].items():
        print(
            f"| {n} | {f['perplexity_under_base']:.2f} | {f.get('perplexity_ratio', 1):.2f} | {f['distinct2']:.3f} | "
            f"{f.get('distinct2_ratio', 1):.2f} | {f['relevance']:.3f} | {f.get('relevance_drop', 0):+.3f} | "
            f"{f['empty']} | {f.get('looping', '')} | {f['mean_words']:.1f} |"
        )
    for s in report["sweeps"]:
        a, b = s["pair"]
        print(
            f"\nSweep {a} -> {b}: moves {s['move_sd'][0]:.2f} and {s['move_sd'][1]:.2f} base SDs; "
            f"{s['non_dominated']} of 11 non-dominated"
        )
        print(f"| {b} weight | {a} | {b} | Pareto |\n|---|---|---|---|")
        for t, (va, vb), p in zip(s["weights_of_b"], s["means"], s["pareto"], strict=True):
            print(f"| {t:.1f} | {va:.3g} | {vb:.3g} | {'*' if p else ''} |")


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", action="append", help="A,B: sweep between two adapters (default: every pair)")
    p.add_argument("--prompts", type=int, default=64, help="held-out prompts to use (default all 64)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the app's default")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--examples", type=int, default=3, help="examples per adapter in the report")
    p.add_argument("--device", default=None)
    p.add_argument(
        "--adapter", action="append", help="NAME=DIR: evaluate this adapter in place of the demo's NAME"
    )
    p.add_argument("--out", default=str(OUT), help=f"the report (default {OUT.relative_to(HERE.parent)})")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
