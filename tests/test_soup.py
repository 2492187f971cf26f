"""Exactness of the gated stacked adapter against explicitly merged weights, in float64."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from transformers.pytorch_utils import Conv1D

from explorer.sampling import encode_prompts, generate
from explorer.soup import Soup
from tests.tiny import relative_error

# Every row of one batch gets its own mix: simplex points, negative, > 1, zero, one-hot.
MIXES = [
    {"helpful": 0.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 1.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 0.0, "concise": 1.0, "positive": 0.0},
    {"helpful": 0.0, "concise": 0.0, "positive": 1.0},
    {"helpful": 0.2, "concise": 0.3, "positive": 0.5},
    {"helpful": -0.7, "concise": 1.9, "positive": 0.25},
    {"helpful": 2.5, "concise": -1.0, "positive": -0.5},
]
PROMPTS = [
    "Give me one tip for sleeping better.",
    "Why is the sky blue?",
    "Write a story",
    "Review the phone",
]
RTOL = 1e-9


def bare_base(base) -> torch.nn.Module:
    """A fresh float64 copy of the base model from disk, with no hooks."""
    return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64).eval()


def merged_copy(soup: Soup, base, mix: dict[str, float]) -> torch.nn.Module:
    """A copy of the base model whose weights are set explicitly to W0 + sum_i w_i s_i B_i A_i."""
    model = bare_base(base)
    with torch.no_grad():
        for name in soup.target_modules:
            module = model.get_submodule(name)
            delta = soup.delta(name, mix)  # (out, in)
            module.weight += delta.T if isinstance(module, Conv1D) else delta
    return model


def batch_inputs(soup: Soup, rows: int) -> dict[str, torch.Tensor]:
    """``rows`` prompts of one length (no padding), so logits can be compared position by position."""
    enc = encode_prompts(soup.tokenizer, [PROMPTS[0]] * rows)
    torch.manual_seed(0)
    ids = torch.randint(3, len(soup.tokenizer), enc["input_ids"].shape)  # a different sequence per row
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_every_row_equals_its_explicitly_merged_model(tiny_files, soup64):
    inputs = batch_inputs(soup64, len(MIXES))
    with soup64.mixed(MIXES), torch.no_grad():
        logits = soup64.model(**inputs).logits  # (B, T, V)
    with torch.no_grad():
        base = soup64.model(**inputs).logits  # weights restored to zero: the base model
    for b, mix in enumerate(MIXES):
        with torch.no_grad():
            ref = merged_copy(soup64, tiny_files[1], mix)(
                **{k: v[b : b + 1] for k, v in inputs.items()}
            ).logits[0]
        assert relative_error(logits[b], ref) < RTOL, mix
        if any(mix.values()):  # the adapters really move the logits, so the check has teeth
            assert relative_error(base[b], ref) > 1e-3


def test_zero_weights_are_the_base_model_bit_for_bit(soup64):
    inputs = batch_inputs(soup64, 2)
    with torch.no_grad():
        with soup64.mixed(MIXES[0]):
            mixed = soup64.model(**inputs).logits
        soup64.close()
        bare = soup64.model(**inputs).logits
    assert torch.equal(mixed, bare)


@pytest.mark.parametrize("name", ["helpful", "concise", "positive"])
def test_one_hot_equals_peft_with_that_adapter(tiny_files, soup64, name):
    _, base, adapters = tiny_files
    peft_model = PeftModel.from_pretrained(bare_base(base), adapters[name]).eval()
    inputs = batch_inputs(soup64, 3)
    one_hot = {n: float(n == name) for n in soup64.names}
    with soup64.mixed(one_hot), torch.no_grad():
        ours = soup64.model(**inputs).logits
        theirs = peft_model(**inputs).logits
    assert relative_error(ours, theirs) < RTOL


def test_batched_logits_equal_one_row_logits(soup64):
    inputs = batch_inputs(soup64, len(MIXES))
    with soup64.mixed(MIXES), torch.no_grad():
        batched = soup64.model(**inputs).logits
    for b, mix in enumerate(MIXES):
        with soup64.mixed(mix), torch.no_grad():
            single = soup64.model(**{k: v[b : b + 1] for k, v in inputs.items()}).logits[0]
        assert relative_error(batched[b], single) < RTOL


def test_batched_generation_equals_one_row_generation(soup64):
    prompts = [PROMPTS[b % len(PROMPTS)] for b in range(len(MIXES))]  # different lengths: left padding
    batched = generate(soup64, prompts, MIXES, max_new_tokens=12)
    for b, (prompt, mix) in enumerate(zip(prompts, MIXES, strict=True)):
        single = generate(soup64, [prompt], mix, max_new_tokens=12)
        assert single.token_ids[0] == batched.token_ids[b]
        assert single.texts[0] == batched.texts[b]
    # the mixes really produce different responses
    assert len({tuple(t) for t in batched.token_ids}) > 1


def test_one_mix_broadcasts_to_every_row(soup64):
    mix = MIXES[4]
    broadcast = generate(soup64, PROMPTS, mix, max_new_tokens=6)
    explicit = generate(soup64, PROMPTS, [mix] * len(PROMPTS), max_new_tokens=6)
    assert broadcast.token_ids == explicit.token_ids


def test_set_weights_touches_no_model_weight(soup64):
    before = {k: v.clone() for k, v in soup64.model.state_dict().items()}
    soup64.set_weights(MIXES[5])
    after = soup64.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert soup64.as_dict() == MIXES[5]


def test_mixed_restores_previous_weights_after_an_error(soup64):
    soup64.set_weights(MIXES[4])
    with pytest.raises(RuntimeError), soup64.mixed(MIXES[5]):
        raise RuntimeError("generation failed")
    assert soup64.as_dict() == MIXES[4]


def test_close_removes_every_hook(soup64):
    soup64.close()
    assert all(not m._forward_hooks for m in soup64.model.modules())


def test_module_not_adapted_by_an_adapter_gets_zero_delta_from_it(soup64):
    # 'helpful' on the tiny Llama adapts q_proj and v_proj only; its one-hot delta elsewhere is zero
    adapter = soup64.adapters["helpful"]
    others = [m for m in soup64.target_modules if m not in adapter.modules]
    assert others, "fixture should give modules that 'helpful' does not adapt"
    for module in others:
        delta = soup64.delta(module, {"helpful": 1.0, "concise": 0.0, "positive": 0.0})
        assert torch.count_nonzero(delta) == 0
