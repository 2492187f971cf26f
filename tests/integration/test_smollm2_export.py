"""Exports of a demo mix on the real SmolLM2 in float32: PEFT adapter and merged model vs the soup."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from explorer.demo import demo_adapters
from explorer.export import export_mix
from explorer.soup import Soup

pytestmark = pytest.mark.integration


def test_demo_exports_match_the_soup_in_float32(smollm2_base, tmp_path):
    soup = Soup.load(smollm2_base, demo_adapters(), device="cpu")
    mix = {n: w for n, w in zip(soup.names, [0.5, 0.3, 0.2], strict=False)}
    ids = soup.tokenizer(["Give me one tip for sleeping better."], return_tensors="pt")["input_ids"]
    with soup.mixed(mix), torch.no_grad():
        ours = soup.model(input_ids=ids).logits
    adapter = export_mix(soup, mix, tmp_path / "adapter")
    merged = export_mix(soup, mix, tmp_path / "merged", format="merged")
    with torch.no_grad():
        peft_logits = (
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_base), adapter.path)
            .eval()(input_ids=ids)
            .logits
        )
        merged_logits = AutoModelForCausalLM.from_pretrained(merged.path).eval()(input_ids=ids).logits
    scale = ours.abs().max()
    diffs = {
        "adapter": (peft_logits - ours).abs().max().item(),
        "merged": (merged_logits - ours).abs().max().item(),
    }
    print(f"max |logit difference| vs the soup (logit scale {scale:.1f}): {diffs}")
    assert diffs["adapter"] / scale < 1e-4 and diffs["merged"] / scale < 1e-4
    soup.close()
