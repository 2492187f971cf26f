"""Decoding-time mixing (MOD) on the scheduler: one batch row per adapter, log-probs combined per
response before the paired draw."""

from __future__ import annotations

import threading

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from explorer.errors import SoupError
from explorer.sampling import SamplingConfig, encode_prompts, generate
from explorer.scheduler import Scheduler, member_rows

PROMPTS = ["Why is the sky blue?", "Write a story about a cat", "Give me one tip"]
SAMPLED = SamplingConfig(10, temperature=0.9, top_p=0.95, seed=11)


@pytest.fixture
def scheduler(soup64):
    s = Scheduler(soup64)
    yield s
    s.close()


def one_hot(names, name):
    return {n: float(n == name) for n in names}


@pytest.mark.parametrize("config", [SamplingConfig(10), SAMPLED], ids=["greedy", "sampled"])
def test_one_hot_mod_equals_the_soups_one_hot_response(soup64, scheduler, config):
    for name in soup64.names:
        mix = one_hot(soup64.names, name)
        mod = scheduler.generate(PROMPTS, mix, config=config, method="mod")
        soup = generate(soup64, PROMPTS, mix, config=config)
        assert mod.token_ids == soup.token_ids and mod.texts == soup.texts


def peft_mod_greedy(base, adapters, weights, prompt, steps, tokenizer):
    """Greedy MOD computed independently: PEFT's PeftModel, one adapter at a time, full sequences."""
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64).eval()
    names = [n for n, w in weights.items() if w]
    peft = PeftModel.from_pretrained(model, adapters[names[0]], adapter_name=names[0]).eval()
    for n in names[1:]:
        peft.load_adapter(adapters[n], adapter_name=n)
    ids = encode_prompts(tokenizer, [prompt])["input_ids"]
    out = []
    for _ in range(steps):
        total = 0.0
        for n in names:
            peft.set_adapter(n)
            with torch.no_grad():
                logits = peft(input_ids=ids).logits[0, -1]
            total = total + weights[n] * torch.log_softmax(logits.float(), dim=-1)
        token = int(torch.argmax(total))
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return out


def test_two_adapter_mod_greedy_equals_the_weighted_log_probs_through_peft(tiny_files, soup64, scheduler):
    _, base, adapters = tiny_files
    weights = {"helpful": 0.35, "concise": 0.65, "positive": 0.0}
    mod = scheduler.generate([PROMPTS[0]], weights, config=SamplingConfig(6), method="mod")
    expected = peft_mod_greedy(
        base, adapters, weights, PROMPTS[0], len(mod.token_ids[0]) + 1, soup64.tokenizer
    )
    stops = set(scheduler.stops)
    cut = next((i for i, t in enumerate(expected) if t in stops), len(expected))
    assert mod.token_ids[0] == expected[: min(cut, 6)]


def test_mod_rows_of_a_response_stay_together_in_shared_batches(soup64, scheduler):
    """A MOD response's rows are decoded in the same steps as other requests' rows and end together;
    each response equals the same request alone."""
    mixes = [
        {"helpful": 0.5, "concise": 0.5, "positive": 0.0},
        {"helpful": 0.2, "concise": 0.3, "positive": 0.5},
    ]
    alone = [
        scheduler.generate([p], m, config=SAMPLED, method="mod") for p, m in zip(PROMPTS, mixes, strict=False)
    ]
    started = threading.Event()
    first = scheduler.submit(PROMPTS[2], None, SamplingConfig(30), on_text=lambda t: started.set())
    assert started.wait(60)
    start = len(scheduler.history)
    tickets = [scheduler.submit(p, m, SAMPLED, method="mod") for p, m in zip(PROMPTS, mixes, strict=False)]
    outs = [t.result(60) for t in tickets]
    first.result(60)
    widths = [rows for kind, _, rows in list(scheduler.history)[start:] if kind == "step"]
    assert max(widths) >= 1 + 2 + 3  # the soup row, then 2 and 3 member rows, in one step
    assert [o.token_ids for o in outs] == [a.token_ids[0] for a in alone]


def test_member_rows():
    gates, coeffs = member_rows(torch.tensor([0.3, 0.0, 0.7], dtype=torch.float64), "mod")
    assert gates.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]] and coeffs == (0.3, 0.7)
    gates, coeffs = member_rows(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), "mod")
    assert gates.tolist() == [[0.0, 1.0, 0.0]] and coeffs is None  # one adapter alone: a soup row
    gates, coeffs = member_rows(torch.tensor([0.3, 0.0, 0.7], dtype=torch.float64), "soup")
    assert gates.tolist() == [[0.3, 0.0, 0.7]] and coeffs is None
    with pytest.raises(SoupError, match="unknown method"):
        member_rows(torch.zeros(3, dtype=torch.float64), "blend")
    with pytest.raises(SoupError, match="one merged mix at a time"):
        member_rows(torch.zeros(3, dtype=torch.float64), "ties")


def test_a_lane_counts_batch_rows_not_responses(soup64):
    """max_rows bounds the rows decoded at once: a 3-adapter MOD response is three rows."""
    s = Scheduler(soup64, max_rows=3)
    try:
        mixes = [
            {"helpful": 0.3, "concise": 0.3, "positive": 0.4},
            {"helpful": 1.0, "concise": 0.0, "positive": 0.0},
        ]
        tickets = [s.submit(PROMPTS[0], m, SamplingConfig(4), method="mod") for m in mixes]
        for t in tickets:
            t.result(60)
        assert max(rows for _, _, rows in s.history) <= 3
    finally:
        s.close()
