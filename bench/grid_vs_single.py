"""How many of a grid's responses differ from generating that mix alone (one row, same seed)?

    python bench/grid_vs_single.py --results front.nc --rows 48

Reads a results file written by ``explorer grid`` on the demo, regenerates a random subset of
its rows one at a time, and counts the texts that differ (float32 batch numerics and padding
are the only possible causes: the sampling noise is keyed per row).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(args: argparse.Namespace) -> dict:
    from explorer.demo import demo_adapters, demo_base
    from explorer.frontier.results import (
        adapter_names,
        load_results,
        mix_dict,
        prompt_texts,
        row_texts,
        sampling_of,
    )
    from explorer.sampling import generate
    from explorer.soup import Soup

    ds = load_results(args.results)
    names = adapter_names(ds)
    adapters = demo_adapters()
    soup = Soup.load(demo_base(), {n: adapters[n] for n in names}, device="cpu")
    sampling = sampling_of(ds)
    texts, prompts = row_texts(ds), prompt_texts(ds)
    m, p, s = texts.shape
    rng = np.random.default_rng(0)
    picks = rng.choice(m * p * s, size=min(args.rows, m * p * s), replace=False)
    differ = []
    for flat in picks:
        mi, pi, si = np.unravel_index(flat, (m, p, s))
        mix = mix_dict(ds, int(mi))
        prompt = prompts[pi]
        alone = generate(soup, [prompt], mix, config=sampling, sample_ids=[int(si)]).texts[0]
        if alone != str(texts[mi, pi, si]):
            differ.append({"mix": mix, "prompt": prompt, "grid": str(texts[mi, pi, si]), "alone": alone})
    report = {"rows_checked": len(picks), "rows_differing": len(differ), "examples": differ[:3]}
    print(json.dumps(report, indent=1))
    return report


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True)
    p.add_argument("--rows", type=int, default=48)
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
