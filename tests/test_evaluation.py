"""Grid evaluation on a tiny float64 soup: rows equal one-row generations, cache, cancel and resume."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import xarray as xr

from explorer.errors import SoupError
from explorer.frontier.evaluation import evaluate_grid
from explorer.frontier.grid import GridSpec, weight_grid
from explorer.frontier.pareto import pareto_mask
from explorer.frontier.results import estimate, load_results, save_results
from explorer.objectives import BUILTINS
from explorer.sampling import SamplingConfig, generate
from tests.tiny import LETTERS, letters

PROMPTS = (
    "Give me one tip for sleeping better.",
    "Why is the sky blue?",
    "Write a story",
    "Review the phone",
)


OBJECTIVES = (BUILTINS["concise"], LETTERS)


GREEDY = SamplingConfig(max_new_tokens=8)


def spec_for(soup, *, samples=1, sampling=GREEDY, resolution=2):
    return GridSpec(
        mixes=weight_grid(soup.names, resolution),
        prompts=PROMPTS,
        objectives=OBJECTIVES,
        samples=samples,
        sampling=sampling,
    )


@pytest.mark.parametrize(
    "samples, sampling",
    [
        (1, SamplingConfig(max_new_tokens=8)),
        (2, SamplingConfig(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3)),
    ],
)
def test_grid_rows_equal_one_row_generations(llama_soup64, samples, sampling):
    spec = spec_for(llama_soup64, samples=samples, sampling=sampling)
    ds = evaluate_grid(llama_soup64, spec, batch_size=7)  # chunks that cut across prompts and mixes
    assert ds.sizes == {"mix": 7, "adapter": 3, "prompt": 4, "sample": samples, "objective": 2}
    assert bool(ds["done"].all()) and ds.attrs["complete"] == 1
    for mi in [0, 3, 6]:  # a corner, an edge midpoint, the centre
        for p in range(len(PROMPTS)):
            for s in range(samples):
                mix = dict(zip(llama_soup64.names, spec.mixes[mi], strict=True))
                alone = generate(llama_soup64, [PROMPTS[p]], mix, config=sampling, sample_ids=[s])
                assert ds["text"].values[mi, p, s] == alone.texts[0]
                assert ds["n_tokens"].values[mi, p, s] == len(alone.token_ids[0])
    # scores are the objectives' scores of the stored texts
    texts = ds["text"].values.reshape(-1).tolist()
    assert ds["score"].sel(objective="letters").values.reshape(-1).tolist() == letters(None, texts)


def test_summary_means_and_pareto(llama_soup64):
    ds = evaluate_grid(llama_soup64, spec_for(llama_soup64), batch_size=16)
    per_prompt = ds["score"].mean("sample")
    assert np.allclose(ds["mean"].values, per_prompt.mean("prompt").values)
    assert (ds["ci_low"] <= ds["mean"] + 1e-12).all() and (ds["ci_high"] >= ds["mean"] - 1e-12).all()
    assert ds["pareto"].values.tolist() == pareto_mask(ds["mean"].values, ["minimize", "maximize"]).tolist()
    assert ds.attrs["hypervolume"] > 0 and len(ds.attrs["reference"]) == 2


def test_save_and_load_round_trip(llama_soup64, tmp_path):
    ds = evaluate_grid(llama_soup64, spec_for(llama_soup64), batch_size=16)
    back = load_results(save_results(ds, tmp_path / "front.nc"))
    assert back["text"].values.tolist() == ds["text"].values.tolist()
    xr.testing.assert_allclose(back["score"], ds["score"])
    assert back.attrs["hypervolume"] == ds.attrs["hypervolume"]


def test_cached_run_returns_without_generating(llama_soup64, tmp_path, monkeypatch):
    spec = spec_for(llama_soup64)
    first = evaluate_grid(llama_soup64, spec, batch_size=16, cache=tmp_path)
    import explorer.frontier.evaluation

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached run generated again")

    monkeypatch.setattr(explorer.frontier.evaluation, "generate", no_generation)
    again = evaluate_grid(llama_soup64, spec, batch_size=16, cache=tmp_path)
    assert again["text"].values.tolist() == first["text"].values.tolist()
    other = GridSpec(spec.mixes, spec.prompts, spec.objectives, 1, SamplingConfig(max_new_tokens=9))
    with pytest.raises(AssertionError, match="generated again"):  # another setting is another key
        evaluate_grid(llama_soup64, other, batch_size=16, cache=tmp_path)


def test_cancel_half_way_then_resume_equals_an_uninterrupted_run(llama_soup64, tmp_path):
    spec = spec_for(
        llama_soup64, samples=2, sampling=SamplingConfig(max_new_tokens=8, temperature=1.0, seed=5)
    )
    reference = evaluate_grid(llama_soup64, spec, batch_size=8)
    cancel = threading.Event()
    seen = []

    def stop_after_three(partial, progress):
        seen.append(progress)
        if progress.chunks_done == 3:
            cancel.set()

    partial = evaluate_grid(
        llama_soup64, spec, batch_size=8, cache=tmp_path, cancel=cancel, on_chunk=stop_after_three
    )
    assert partial.attrs["complete"] == 0 and int(partial["done"].sum()) == 24
    assert not list(tmp_path.glob("*.nc"))  # only the partial file
    progress = []
    final = evaluate_grid(
        llama_soup64, spec, batch_size=8, cache=tmp_path, on_chunk=lambda d, p: progress.append(p)
    )
    assert progress[0].resumed_rows == 24 and progress[-1].rows_done == progress[-1].rows_total == 56
    assert final["text"].values.tolist() == reference["text"].values.tolist()
    np.testing.assert_array_equal(final["score"].values, reference["score"].values)
    assert list(tmp_path.glob("*.partial.jsonl")) == []


def test_estimate_is_exact_on_grid_points_and_between_them(llama_soup64):
    ds = evaluate_grid(llama_soup64, spec_for(llama_soup64), batch_size=16)
    for mi in range(ds.sizes["mix"]):
        assert np.allclose(estimate(ds, ds["weights"].values[mi]), ds["mean"].values[mi])
    off = estimate(ds, [0.3, 0.3, 0.4])
    assert np.all(off >= ds["mean"].min("mix").values - 1e-9) and np.all(
        off <= ds["mean"].max("mix").values + 1e-9
    )


def test_estimate_two_adapters_interpolates_linearly():
    ds = xr.Dataset(
        {
            "weights": (("mix", "adapter"), [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
            "mean": (("mix", "objective"), [[0.0, 10.0], [1.0, 20.0], [3.0, 40.0]]),
        },
        coords={"objective": ["a", "b"]},
    )
    assert estimate(ds, [0.75, 0.25]).tolist() == [0.5, 15.0]
    assert estimate(ds, [-0.5, 1.5]).tolist() == [3.0, 40.0]  # clamped outside the grid


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(objectives=OBJECTIVES[:1]), "at least 2 objectives"),
        (dict(prompts=()), "no prompts"),
        (dict(samples=0), "samples must be at least 1"),
        (dict(samples=3), "greedy decoding would all be equal"),
    ],
)
def test_bad_specs(kwargs, words):
    args = dict(mixes=np.eye(2), prompts=PROMPTS, objectives=OBJECTIVES) | kwargs
    with pytest.raises(SoupError, match=words):
        GridSpec(**args)
