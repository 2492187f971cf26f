"""The soup on the real SmolLM2-135M in float32: exact against explicit merging, batched = one row."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from explorer.sampling import generate
from explorer.soup import Soup
from tests.tiny import write_adapter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol_soup(smollm2_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("smol-adapters")
    base = AutoModelForCausalLM.from_pretrained(smollm2_base, dtype=torch.float32)
    adapters = {
        "a": write_adapter(
            base, root / "a", seed=1, std=0.02, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]
        ),
        "b": write_adapter(
            base, root / "b", seed=2, std=0.02, r=4, lora_alpha=8, target_modules=["v_proj", "down_proj"]
        ),
    }
    soup = Soup.load(smollm2_base, adapters, device="cpu")
    yield soup, base
    soup.close()


def test_mixed_logits_match_explicit_merge_in_float32(smol_soup):
    soup, base = smol_soup
    mix = {"a": 0.3, "b": 0.9}
    ids = soup.tokenizer(["The quick brown fox jumps over the lazy dog."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        bare = base(input_ids=ids).logits
        for name in soup.target_modules:
            base.get_submodule(name).weight += soup.delta(name, mix).float()
        merged = base(input_ids=ids).logits
        with soup.mixed(mix):
            ours = soup.model(input_ids=ids).logits
    scale = merged.abs().max()
    assert ((ours - merged).abs().max() / scale).item() < 1e-4
    assert ((bare - merged).abs().max() / scale).item() > 1e-3  # the adapters matter


def test_batched_generation_equals_one_row_on_smollm2(smol_soup):
    soup, _ = smol_soup
    prompts = ["Give me one tip for sleeping better.", "Name a fruit.", "Why do cats purr?"]
    mixes = [{"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.5}]
    batched = generate(soup, prompts, mixes, max_new_tokens=16)
    for b in range(3):
        single = generate(soup, [prompts[b]], mixes[b], max_new_tokens=16)
        assert single.texts[0] == batched.texts[b]
    assert all(len(t) > 0 for t in batched.texts)
