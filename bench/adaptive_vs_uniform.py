"""Adaptive refinement against the uniform lattice, at the same number of evaluated mixes.

    OMP_NUM_THREADS=1 python bench/adaptive_vs_uniform.py
    python bench/adaptive_vs_uniform.py --demo      # the demo model, 2 and 3 adapters (~10 min, 2 CPU cores)

On synthetic objective surfaces over the simplex of 2 and 3 adapters, whose true front is known
(the Pareto-optimal mixes of a lattice of 2,001 / 80,601 mixes), both methods measure mixes;
after every uniform lattice (resolution 1, 2, ...) and every adaptive round (from a resolution-4
lattice, ``refine``'s default batch) we record the hypervolume reached (as a fraction of the true
front's, one fixed reference point) and IGD+ to the true front (objectives normalised by its
ideal and nadir; 0 = every true front point is matched). The summary gives how many mixes the
adaptive grid needs to reach the hypervolume of the finest uniform lattice (41 / 231 mixes).
Writes bench/results/adaptive_vs_uniform.json.

The surfaces (objective k is driven by adapter k's weight w_k; directions mixed: positive and
readable are maximized, concise is words, minimized):

- ``threshold``: an adapter does little until its weight passes about 0.5, then takes over
  quickly (a logistic in w_k, steepness 0.08, normalised to 0 at w_k = 0 and 1 at w_k = 1).
  Every mix is Pareto-optimal, but the lattice's mixes bunch up at the ends of the front. With
  2 adapters the front is a straight line, where equally spaced points are the hypervolume-optimal
  placement (Auger et al., FOGA 2009): 20 of them fall short of the 41-mix lattice's hypervolume
  and 21 reach it, so no method can do it with half (20.5) the mixes there.
- ``interference``: the same, minus 0.2 * spread(w) on every objective (spread 0 at the corners,
  1 at the centre): a little of another adapter costs before it pays, so much of the simplex is
  dominated (the situation where a uniform lattice wastes most of its evaluations).
- ``smooth`` (control): sqrt(w_k), a gentle trade-off over which the lattice is already spread
  along the front; adaptive refinement has little to gain there.

``compare(evaluate, ...)`` takes any ``evaluate(mixes (B, N)) -> means (B, K)``, so the real
engine plugs in: ``--demo`` measures the demo (SmolLM2 with its adapters: positive and concise,
then positive, concise and readable, each adapter scored by its own objective) over the first
``--prompts-limit`` held-out prompts, greedy, through ``explorer.frontier.evaluation.evaluate_grid`` and its
cache. There the uniform lattices are the divisors of the finest (2 adapters: 1, 2, 4, 5, 10, 20,
so 21 distinct mixes; 3 adapters: 1, 2, 4, 8, 45 mixes), every mix is generated once (a mix's
scores do not depend on what shares its batch), and with no known front IGD+ is left out and the
reference point comes from everything both methods measured. Writes
bench/results/adaptive_vs_uniform-demo.json. Cost: about 4.6 s per distinct mix at 16 prompts x
48 tokens on 2 idle CPU cores (the frontier benchmark's 168 tokens/s), about 37 + 75 distinct mixes.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from common import environment, finish, pick_device, pick_dtype, table  # bench/common.py, beside this script

from explorer.frontier.adaptive import refine
from explorer.frontier.grid import simplex_lattice
from explorer.frontier.pareto import default_reference, hypervolume

MAX, MIN = "maximize", "minimize"
DENSE = {2: 2000, 3: 400}  # lattice resolution of the "true" front: 2,001 and 80,601 mixes
SHOWN = {2: (4, 10, 20, 30, 40), 3: (4, 6, 8, 10, 14, 20)}  # lattices printed side by side
DEMO = {  # adapters (each scored by its own objective) -> uniform lattices: divisors of the finest
    ("positive", "concise"): (1, 2, 4, 5, 10, 20),
    ("positive", "concise", "readable"): (1, 2, 4, 8),
}


@dataclass(frozen=True)
class Surface:
    """Mean scores of a mix on a made-up surface: objective k is an affine map of
    ``g(w_k) - interference * spread(w)``, spread = (1 - sum_i w_i^2) * N / (N - 1) (0 at the
    corners, 1 at the centre): mixing adapters costs every objective a little."""

    name: str
    n: int  # adapters = objectives
    g: Callable[[np.ndarray], np.ndarray]  # (M, N) weights in [0, 1] -> (M, N) in [0, 1]
    interference: float = 0.0

    @property
    def objectives(self) -> tuple[str, ...]:
        return ("positive", "concise", "readable")[: self.n]

    @property
    def directions(self) -> tuple[str, ...]:
        return (MAX, MIN, MAX)[: self.n]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
        spread = (1.0 - (w**2).sum(axis=1, keepdims=True)) * self.n / (self.n - 1)
        x = self.g(w) - self.interference * spread  # (M, N)
        cols = [x[:, 0], 80.0 - 60.0 * x[:, 1], 100.0 * x[:, 2] if self.n > 2 else None]  # score, words, ease
        return np.stack(cols[: self.n], axis=1)

    def true_front(self) -> np.ndarray:
        """(P, K) the Pareto-optimal mixes of a dense lattice (resolution ``DENSE``)."""
        import moocore

        means = self(simplex_lattice(self.n, DENSE[self.n]))
        return moocore.filter_dominated(means, maximise=[d == MAX for d in self.directions])


def logistic(steepness: float, centre: float = 0.5) -> Callable[[np.ndarray], np.ndarray]:
    def g(x: np.ndarray) -> np.ndarray:
        s = lambda z: 1.0 / (1.0 + np.exp(-(z - centre) / steepness))  # noqa: E731
        return (s(x) - s(0.0)) / (s(1.0) - s(0.0))

    return g


SURFACES = {
    "threshold": lambda n: Surface("threshold", n, logistic(0.08)),
    "interference": lambda n: Surface("interference", n, logistic(0.08), interference=0.2),
    "smooth": lambda n: Surface("smooth", n, np.sqrt),
}


def igd_plus(means: np.ndarray, directions: Sequence[str], true_front: np.ndarray) -> float:
    """IGD+ of the measured ``means`` (M, K) to ``true_front`` (P, K), normalised by its ideal and nadir."""
    import moocore

    s = np.array([1.0 if d == MAX else -1.0 for d in directions])
    t = true_front * s
    ideal, nadir = t.max(axis=0), t.min(axis=0)
    span = np.where(ideal > nadir, ideal - nadir, 1.0)
    m = means[np.isfinite(means).all(axis=1)] * s
    return float(moocore.igd_plus((ideal - m) / span, ref=(ideal - t) / span))


def compare(
    evaluate: Callable[[np.ndarray], np.ndarray],
    *,
    label: str,
    n_adapters: int,
    directions: Sequence[str],
    uniform_resolutions: Sequence[int],
    initial_resolution: int = 4,
    batch: int | None = None,
    true_front: np.ndarray | None = None,
) -> dict:
    """Measure the uniform lattices and an adaptive refinement with as many mixes as the finest
    lattice; returns the curves (mixes -> hypervolume, IGD+) and how soon adaptive catches up."""
    started = time.perf_counter()
    uniform = []  # (lattice, means) per resolution
    for r in uniform_resolutions:
        lattice = simplex_lattice(n_adapters, r)
        uniform.append((lattice, np.asarray(evaluate(lattice), dtype=np.float64)))
    budget = len(uniform[-1][0])
    ad = refine(
        evaluate, simplex_lattice(n_adapters, initial_resolution), directions, budget=budget, batch=batch
    )
    if true_front is not None:
        every = true_front
    else:  # judge both against one reference: worse than everything either measured
        every = np.concatenate([m for _, m in uniform] + [ad.means])
        every = every[np.isfinite(every).all(axis=1)]
    reference = default_reference(every, directions)
    best = hypervolume(true_front, directions, reference) if true_front is not None else None

    def point(method: str, means: np.ndarray) -> dict:
        hv = hypervolume(means, directions, reference)
        return {
            "setting": label,
            "method": method,
            "mixes": len(means),
            "hypervolume": hv,
            "hv_fraction": hv / best if best else None,
            "igd_plus": igd_plus(means, directions, true_front) if true_front is not None else None,
        }

    curve_u = [point("uniform", m) for _, m in uniform]
    curve_a = []
    done = 0
    for rnd in ad.rounds:
        done += rnd.new
        curve_a.append(point("adaptive", ad.means[:done]))
    target = curve_u[-1]["hypervolume"]
    reached = next((p["mixes"] for p in curve_a if p["hypervolume"] >= target * (1 - 1e-12)), None)
    summary = {
        "setting": label,
        "uniform_mixes": budget,
        "uniform_hv": target,
        "uniform_hv_fraction": curve_u[-1]["hv_fraction"],
        "uniform_igd_plus": curve_u[-1]["igd_plus"],
        "adaptive_mixes_to_reach": reached,
        "ratio": reached / budget if reached else None,
        "adaptive_final_hv_fraction": curve_a[-1]["hv_fraction"],
        "adaptive_final_igd_plus": curve_a[-1]["igd_plus"],
        "seconds": time.perf_counter() - started,
    }
    return {"summary": summary, "uniform": curve_u, "adaptive": curve_a, "reference": reference.tolist()}


def side_by_side(result: dict) -> list[dict]:
    """One row per uniform lattice: the adaptive grid's numbers at its last round with no more mixes."""
    rows = []
    for u in result["uniform"]:
        before = [a for a in result["adaptive"] if a["mixes"] <= u["mixes"]]
        a = before[-1] if before else None
        rows.append(
            {
                "setting": u["setting"],
                "mixes": u["mixes"],
                "uniform_hv": u["hv_fraction"] if u["hv_fraction"] is not None else u["hypervolume"],
                "uniform_igd": u["igd_plus"],
                "adaptive_mixes": a["mixes"] if a else None,
                "adaptive_hv": (a["hv_fraction"] if a["hv_fraction"] is not None else a["hypervolume"])
                if a
                else None,
                "adaptive_igd": a["igd_plus"] if a else None,
            }
        )
    return rows


def synthetic(args: argparse.Namespace) -> dict:
    """label -> compare() on every synthetic surface and adapter count asked for."""
    results = {}
    for name in args.surfaces:
        for n in args.adapters:
            surface = SURFACES[name](n)
            resolutions = list(range(1, (40 if n == 2 else 20) + 1))
            label = f"{name}, {n} adapters"
            results[label] = compare(
                surface,
                label=label,
                n_adapters=n,
                directions=surface.directions,
                uniform_resolutions=resolutions,
                initial_resolution=args.initial_resolution,
                batch=args.batch,
                true_front=surface.true_front(),
            )
    return results


class MeasureOnce:
    """``evaluate(mixes (B, N)) -> means (B, K)`` on a soup through the engine and its cache, each
    distinct mix generated once (a mix's scores do not depend on what shares its batch)."""

    def __init__(self, soup, spec, *, batch_size: int | None = None):
        self.soup, self.spec, self.batch_size = soup, spec, batch_size  # spec: prompts, decoding, objectives
        self.measured: dict[tuple, np.ndarray] = {}

    def __call__(self, mixes: np.ndarray) -> np.ndarray:
        from dataclasses import replace

        from explorer.demo import cache_dir
        from explorer.frontier.evaluation import evaluate_grid
        from explorer.frontier.grid import DECIMALS
        from explorer.frontier.results import means

        keys = [tuple(np.round(w, DECIMALS) + 0.0) for w in mixes]
        todo = list(dict.fromkeys(k for k in keys if k not in self.measured))
        if todo:
            spec = replace(self.spec, mixes=np.array(todo))
            ds = evaluate_grid(self.soup, spec, batch_size=self.batch_size, cache=cache_dir() / "frontiers")
            self.measured.update(zip(todo, means(ds), strict=True))
        return np.array([self.measured[k] for k in keys])


def demo(args: argparse.Namespace) -> dict:
    """label -> compare() on the demo model with 2 and 3 adapters, every mix generated once."""
    from explorer.demo import demo_adapters, demo_base
    from explorer.frontier.grid import GridSpec
    from explorer.objectives import get_objective
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import SamplingConfig
    from explorer.soup import Soup

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    prompts = tuple(read_prompts(HELDOUT, limit=args.prompts_limit))
    results = {}
    for names, resolutions in DEMO.items():
        soup = Soup.load(demo_base(), {n: demo_adapters()[n] for n in names}, device=device, dtype=dtype)
        objectives = tuple(get_objective(n) for n in names)
        spec = GridSpec(
            mixes=np.eye(len(names)),
            prompts=prompts,
            objectives=objectives,
            sampling=SamplingConfig(args.max_new_tokens),
        )
        evaluate = MeasureOnce(soup, spec, batch_size=args.batch_size)
        label = f"demo, {len(names)} adapters"
        started = time.perf_counter()
        results[label] = compare(
            evaluate,
            label=label,
            n_adapters=len(names),
            directions=[o.direction for o in objectives],
            uniform_resolutions=resolutions,
            initial_resolution=args.initial_resolution,
            batch=args.batch,
        )
        results[label]["summary"].update(
            mixes_generated=len(evaluate.measured), seconds=time.perf_counter() - started
        )
        soup.close()
    return results


def main(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    results = demo(args) if args.demo else synthetic(args)
    curve = [row for r in results.values() for row in side_by_side(r)]
    if not args.demo:  # the synthetic curves are long: print a few lattices
        shown = {
            f"{name}, {n} adapters": {len(simplex_lattice(n, r)) for r in SHOWN[n]}
            for name in SURFACES
            for n in (2, 3)
        }
        curve = [row for row in curve if row["mixes"] in shown[row["setting"]]]
    print("\nHypervolume (fraction of the true front's, else absolute) and IGD+ at the same number of mixes")
    print(
        table(
            curve,
            [
                ("setting", "setting", "s"),
                ("mixes", "uniform mixes", "d"),
                ("uniform_hv", "uniform HV", ".4f"),
                ("uniform_igd", "uniform IGD+", ".4f"),
                ("adaptive_mixes", "adaptive mixes", "d"),
                ("adaptive_hv", "adaptive HV", ".4f"),
                ("adaptive_igd", "adaptive IGD+", ".4f"),
            ],
        )
    )
    summary = [r["summary"] for r in results.values()]
    report = {
        "what": "adaptive refinement vs the uniform simplex lattice on synthetic surfaces with a known front",
        "initial_resolution": args.initial_resolution,
        "batch": args.batch,
        "results": results,
    }
    if args.demo:
        report.update(
            what="adaptive refinement vs the uniform simplex lattice on the demo model",
            prompts=args.prompts_limit,
            max_new_tokens=args.max_new_tokens,
            environment=environment(
                pick_device(args.device), pick_dtype(args.dtype, pick_device(args.device))
            ),
            load_average=os.getloadavg(),
            seconds=time.perf_counter() - started,
        )
    return finish(
        "adaptive_vs_uniform-demo.json" if args.demo else "adaptive_vs_uniform.json",
        "Mixes the adaptive grid needs to reach the finest uniform lattice's hypervolume",
        summary,
        [
            ("setting", "setting", "s"),
            ("uniform_mixes", "uniform mixes", "d"),
            ("uniform_hv_fraction", "uniform HV", ".4f"),
            ("adaptive_mixes_to_reach", "adaptive mixes to reach it", "d"),
            ("ratio", "ratio", ".2f"),
            ("adaptive_final_hv_fraction", "adaptive HV at same mixes", ".4f"),
            ("uniform_igd_plus", "uniform IGD+", ".4f"),
            ("adaptive_final_igd_plus", "adaptive IGD+", ".4f"),
        ],
        report,
    )


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--surfaces", nargs="+", default=list(SURFACES), choices=list(SURFACES))
    p.add_argument("--adapters", nargs="+", type=int, default=[2, 3], choices=[2, 3])
    p.add_argument("--initial-resolution", type=int, default=4, help="the adaptive grid's first lattice")
    p.add_argument("--batch", type=int, default=None, help="new mixes per adaptive round (default: refine's)")
    g = p.add_argument_group("the demo model (--demo)")
    g.add_argument("--demo", action="store_true", help="measure the demo model (2 and 3 adapters) instead")
    g.add_argument("--prompts-limit", type=int, default=16, help="held-out prompts per mix (default 16)")
    g.add_argument("--max-new-tokens", type=int, default=48, help="tokens per response (default 48)")
    g.add_argument("--batch-size", type=int, default=None, help="rows per chunk (default: the engine's)")
    g.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    g.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
