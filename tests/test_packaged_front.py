"""The packaged demo front seeds the cache only when every input's hash matches: the cache key
(base, adapters, mixes, prompts, decoding, objectives, device) and the scorers' source files."""

from __future__ import annotations

import json

import pytest

from explorer.frontier.cache import RunFiles, cache_key, load_cached
from explorer.frontier.evaluation import evaluate_grid
from explorer.frontier.packaged import mark_packaged, origin_of, seed_cache, why_not
from explorer.frontier.results import save_results
from explorer.sampling import SamplingConfig
from tests.test_evaluation import spec_for


@pytest.fixture(scope="module")
def packaged(llama_soup64, tmp_path_factory):
    """A tiny soup's finished grid, written as the package writes its demo front."""
    spec = spec_for(llama_soup64)
    ds = evaluate_grid(llama_soup64, spec, batch_size=16, cache=tmp_path_factory.mktemp("computed"))
    assert origin_of(ds) == "computed here"
    path = tmp_path_factory.mktemp("package") / "demo.nc"
    save_results(mark_packaged(ds, spec.objectives), path)
    return spec, path


def test_a_matching_packaged_front_seeds_an_empty_cache_and_says_so(llama_soup64, packaged, tmp_path):
    spec, path = packaged
    assert load_cached(llama_soup64, spec, tmp_path) is None
    assert seed_cache(llama_soup64, spec, tmp_path, packaged=path)
    ds = load_cached(llama_soup64, spec, tmp_path)
    assert ds is not None and origin_of(ds) == "the packaged demo front"
    assert not seed_cache(llama_soup64, spec, tmp_path, packaged=path)  # a finished run is kept


def test_other_prompts_or_decoding_are_computed_here(llama_soup64, packaged, tmp_path):
    spec, path = packaged
    for other in (
        spec_for(llama_soup64, sampling=SamplingConfig(max_new_tokens=9)),
        spec_for(llama_soup64, resolution=3),
    ):
        assert why_not(path, cache_key(llama_soup64, other), other.objectives) is not None
        assert not seed_cache(llama_soup64, other, tmp_path, packaged=path)
        assert not RunFiles(tmp_path, cache_key(llama_soup64, other)).final.exists()


def test_a_changed_scorer_source_is_computed_here(llama_soup64, packaged, tmp_path):
    spec, path = packaged
    import xarray as xr

    ds = xr.load_dataset(path)
    hashes = json.loads(ds.attrs["scorer_sources"])
    ds.attrs["scorer_sources"] = json.dumps({**hashes, "letters": "0" * 64})
    tampered = save_results(ds, tmp_path / "tampered.nc")
    assert why_not(tampered, cache_key(llama_soup64, spec), spec.objectives) == "a scorer's code differs"
    assert not seed_cache(llama_soup64, spec, tmp_path / "cache", packaged=tampered)


def test_no_packaged_file_is_no_seed(llama_soup64, tmp_path):
    spec = spec_for(llama_soup64)
    assert not seed_cache(llama_soup64, spec, tmp_path, packaged=tmp_path / "absent.nc")
