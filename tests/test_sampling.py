"""Paired sampling: the same draws for (seed, prompt, sample, step) whatever the mix and the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.errors import SoupError
from explorer.sampling import SamplingConfig, generate, gumbel_noise, row_keys

MIXES = [
    {"helpful": 0.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 1.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 0.2, "concise": 0.3, "positive": 0.5},
    {"helpful": -0.5, "concise": 1.5, "positive": 0.0},
]
PROMPTS = [
    "Give me one tip for sleeping better.",
    "Why is the sky blue?",
    "Write a story",
    "Review the phone",
]
SAMPLED = SamplingConfig(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=7)


def test_noise_is_a_pure_function_of_key_step_and_token():
    keys = row_keys(["a", "b", "a"], [0, 0, 0], seed=3)
    assert keys[0] == keys[2] and keys[0] != keys[1]
    first = gumbel_noise(keys, step=4, vocab=50)
    assert torch.equal(first, gumbel_noise(keys, step=4, vocab=50))
    assert torch.equal(first[0], first[2])  # same prompt, sample and seed: same draws
    assert not torch.equal(first, gumbel_noise(keys, step=5, vocab=50))
    alone = gumbel_noise(keys[1:2], step=4, vocab=50)
    assert torch.equal(alone[0], first[1])  # what shares the batch does not matter
    assert not torch.equal(first[0], gumbel_noise(row_keys(["a"], [1], 3), step=4, vocab=50)[0])
    assert not torch.equal(first[0], gumbel_noise(row_keys(["a"], [0], 4), step=4, vocab=50)[0])


def test_gumbel_max_samples_from_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    keys = row_keys(["p"] * 50000, list(range(50000)), seed=0)
    draws = (logits + gumbel_noise(keys, step=0, vocab=4)).argmax(dim=1)
    freq = np.bincount(draws.numpy(), minlength=4) / len(draws)
    expected = torch.softmax(logits, 0).numpy()
    assert np.abs(freq - expected).max() < 0.01  # 50000 draws: standard error < 0.0022


def test_sampled_batch_equals_one_row_generation(llama_soup64):
    prompts = [PROMPTS[b % 4] for b in range(len(MIXES))]
    batched = generate(llama_soup64, prompts, MIXES, config=SAMPLED)
    for b in range(len(MIXES)):
        single = generate(llama_soup64, [prompts[b]], MIXES[b], config=SAMPLED)
        assert single.token_ids[0] == batched.token_ids[b]


def test_sampling_differs_from_greedy_and_across_seeds_and_samples(llama_soup64):
    greedy = generate(llama_soup64, PROMPTS, MIXES[2], max_new_tokens=10)
    sampled = generate(llama_soup64, PROMPTS, MIXES[2], config=SAMPLED)
    other_seed = generate(llama_soup64, PROMPTS, MIXES[2], config=SamplingConfig(10, 1.0, 0.9, seed=8))
    other_sample = generate(llama_soup64, PROMPTS, MIXES[2], config=SAMPLED, sample_ids=[1, 1, 1, 1])
    assert sampled.token_ids != greedy.token_ids
    assert sampled.token_ids != other_seed.token_ids
    assert sampled.token_ids != other_sample.token_ids
    assert generate(llama_soup64, PROMPTS, MIXES[2], config=SAMPLED).token_ids == sampled.token_ids


def test_tiny_top_p_is_greedy(llama_soup64):
    nucleus_of_one = SamplingConfig(max_new_tokens=10, temperature=1.0, top_p=1e-6, seed=1)
    assert (
        generate(llama_soup64, PROMPTS, MIXES[1], config=nucleus_of_one).token_ids
        == generate(llama_soup64, PROMPTS, MIXES[1], max_new_tokens=10).token_ids
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
        (dict(temperature=-1.0), "temperature must be >= 0"),
        (dict(temperature=float("nan")), "must be finite numbers"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    ],
)
def test_bad_sampling_settings(kwargs, words):
    with pytest.raises(SoupError, match=words):
        SamplingConfig(**kwargs)
