"""Simulated researchers: how fast do side-by-side picks find the mix a researcher wants?

A simulated researcher has a hidden trade-off lambda* (drawn uniformly from the simplex) and a
hidden utility (linear or augmented Chebyshev, over the objectives normalised by the front's
ideal and nadir; ``explorer.frontier.preference``). Shown two mixes, they pick one from a
logistic choice model with noise: P(a) = sigmoid(BETA * (U(a) - U(b))), BETA = 30 (a utility gap
of 0.05, a twentieth of the front's range, is picked right 82% of the time). The explorer learns
from the picks (utility "auto") and recommends a mix. Pairs are chosen by its "compare these
next" rule or at random (two distinct measured mixes).

Reported after 5, 10, 20 and 40 picks, per front and hidden utility: the median regret of the
recommended mix (hidden utility of the best grid mix minus that of the recommendation, in units
of the front's range: normalised scores run 0..1 from nadir to ideal) and the median L1 error of
lambda's posterior mean.

Fronts: the demo's measured mixes (``bench/results/methods-demo.nc``, written by
``python bench/methods.py --save-nc``: 80 mixes of five methods, three objectives) and two synthetic fronts of known shape: ``sphere`` (three objectives, a
convex quarter sphere, 66 Pareto-optimal mixes and 30 dominated ones) and ``plane`` (four
objectives, the flat simplex front f = w, 84 mixes, with 30 dominated ones).

python bench/picks_simulation.py                 # 20 researchers per front and utility (about 50 min on 2 busy cores)
python bench/picks_simulation.py --draws 3       # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

from explorer.frontier.choose import Measured
from explorer.frontier.preference import UTILITIES, learn, normalise, utilities
from explorer.frontier.results import load_results
from explorer.picks import Pick

HERE = Path(__file__).resolve().parent
BETA = 30.0
CHECKPOINTS = (5, 10, 20, 40)
RULES = ("next", "random")


def simplex_grid(k: int, steps: int) -> np.ndarray:
    """(M, k) every mix with weights in multiples of 1/steps summing to 1."""
    rows = [c for c in itertools.product(range(steps + 1), repeat=k) if sum(c) == steps]
    return np.array(rows, dtype=float) / steps


def synthetic(name: str, seed: int = 0) -> Measured:
    rng = np.random.default_rng(seed)
    if name == "sphere":
        w = simplex_grid(3, 10)
        f = w / np.linalg.norm(w, axis=1, keepdims=True)
    else:  # plane
        w = simplex_grid(4, 6)
        f = w.copy()
    inner = rng.choice(len(w), 30, replace=False)  # dominated mixes: shrunk towards the origin
    w = np.vstack([w, w[inner]])
    f = np.vstack([f, f[inner] * rng.uniform(0.5, 0.95, size=(30, 1))])
    k = f.shape[1]
    return Measured(
        weights=w,
        mean=f,
        objectives=tuple(f"f{i}" for i in range(k)),
        directions=("maximize",) * k,
        adapters=tuple(f"a{i}" for i in range(w.shape[1])),
    )


def demo_front() -> Measured:
    path = HERE / "results" / "methods-demo.nc"
    if not path.exists():
        raise SystemExit(
            f"{path} is missing (results files are not kept in git): write it with "
            "`python bench/methods.py --save-nc`, or leave the demo out with --fronts sphere,plane"
        )
    return Measured.from_dataset(load_results(path))


def mix_of(m: Measured, row: int) -> dict[str, float]:
    return dict(zip(m.adapters, map(float, m.weights[row]), strict=True))


def simulate(m: Measured, utility: str, lam: np.ndarray, rule: str, rng: np.random.Generator) -> list[dict]:
    """One researcher: returns, at each checkpoint, the regret and lambda's L1 error."""
    norm = normalise(m)
    rows = norm.rows
    hidden = utilities(norm.g[rows], lam[None, :], utility)[0]  # (C,)
    value = dict(zip(rows.tolist(), hidden.tolist(), strict=True))
    best = hidden.max()
    picks: list[Pick] = []
    out = []
    learned = learn(m, picks) if rule == "next" else None
    for t in range(1, max(CHECKPOINTS) + 1):
        if rule == "next":
            assert learned is not None
            a, b = learned.next_rows
        else:
            a, b = (int(x) for x in rng.choice(rows, 2, replace=False))
        p_a = float(expit(BETA * (value[a] - value[b])))
        winner = "a" if rng.random() < p_a else "b"
        picks.append(
            Pick(a=mix_of(m, a), b=mix_of(m, b), winner=winner, a_method=m.mixing[a], b_method=m.mixing[b])
        )
        if rule == "next" or t in CHECKPOINTS:
            learned = learn(m, picks)
        if t in CHECKPOINTS:
            assert learned is not None and learned.choice is not None
            estimate = np.array([learned.lam[o] for o in m.objectives])
            out.append(
                {
                    "picks": t,
                    "regret": float(best - value[learned.choice.index]),
                    "l1": float(np.abs(estimate - lam).sum()),
                    "utility_found": learned.utility == utility,
                }
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=20, help="researchers (hidden lambdas) per front and utility")
    p.add_argument("--fronts", default="demo,sphere,plane")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "picks_simulation.json"))
    args = p.parse_args()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    fronts = {name: demo_front() if name == "demo" else synthetic(name) for name in args.fronts.split(",")}
    runs = []
    for (name, m), utility in itertools.product(fronts.items(), UTILITIES):
        lams = np.random.default_rng([args.seed, 1]).dirichlet(np.ones(len(m.objectives)), size=args.draws)
        for d, lam in enumerate(lams):
            for rule in RULES:
                rng = np.random.default_rng([args.seed, d, RULES.index(rule), UTILITIES.index(utility)])
                for r in simulate(m, utility, lam, rule, rng):
                    runs.append({"front": name, "utility": utility, "rule": rule, "draw": d, **r})
        print(f"{name} / {utility}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    summary = summarize(runs)
    print(report(summary))
    Path(args.out).write_text(
        json.dumps(
            {
                "beta": BETA,
                "draws": args.draws,
                "load_average_at_start": load,
                "seconds": time.perf_counter() - start,
                "summary": summary,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["front"], r["utility"], r["rule"], r["picks"]) for r in runs})
    for front, utility, rule, picks in keys:
        group = [
            r
            for r in runs
            if (r["front"], r["utility"], r["rule"], r["picks"]) == (front, utility, rule, picks)
        ]
        rows.append(
            {
                "front": front,
                "utility": utility,
                "rule": rule,
                "picks": picks,
                "median_regret": statistics.median(r["regret"] for r in group),
                "median_l1": statistics.median(r["l1"] for r in group),
                "utility_found": sum(r["utility_found"] for r in group) / len(group),
            }
        )
    return rows


def report(summary: list[dict]) -> str:
    """A Markdown table: median regret (and lambda's L1 error) after each number of picks."""
    head = "| front | hidden utility | pairs | " + " | ".join(f"{c} picks" for c in CHECKPOINTS) + " |"
    lines = [head, "|" + "---|" * (3 + len(CHECKPOINTS))]
    groups = sorted(
        {(s["front"], s["utility"], s["rule"]) for s in summary}, key=lambda g: (g[0], g[1], g[2])
    )
    for front, utility, rule in groups:
        cells = []
        for c in CHECKPOINTS:
            s = next(
                s
                for s in summary
                if (s["front"], s["utility"], s["rule"], s["picks"]) == (front, utility, rule, c)
            )
            cells.append(f"{100 * s['median_regret']:.1f}% ({s['median_l1']:.2f})")
        lines.append(f"| {front} | {utility} | {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
