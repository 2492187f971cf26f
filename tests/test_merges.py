"""PEFT's merges (TIES, DARE, PEFT's linear) as grid methods: each merged mix's rows equal PEFT's
merged model generating alone, with PEFT's own add_weighted_adapter."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from explorer.errors import SoupError
from explorer.frontier.evaluation import evaluate_grid
from explorer.frontier.grid import GridSpec
from explorer.frontier.results import methods_of, mix_dict, row_texts
from explorer.merges import merge_seed
from explorer.methods import MERGES
from explorer.objectives import BUILTINS
from explorer.sampling import SamplingConfig, encode_prompts, generate
from explorer.scheduler import Scheduler
from explorer.soup import Soup
from tests.tiny import LETTERS, tiny_model, tiny_tokenizer, write_adapter

PROMPTS = ("Why is the sky blue?", "Write a story")
NAMES = ("helpful", "concise", "positive")


@pytest.fixture(scope="module")
def same_rank(tmp_path_factory):
    """A tiny float64 Llama and three rank-4 adapters on the same modules (PEFT's merges need equal ranks)."""
    root = tmp_path_factory.mktemp("merges")
    tokenizer = tiny_tokenizer()
    model = tiny_model("llama", len(tokenizer))
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = {
        n: write_adapter(
            model, root / n, seed=i, std=0.3, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]
        )
        for i, n in enumerate(NAMES, start=1)
    }
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    yield base, adapters, soup
    soup.close()


def peft_alone(base, adapters, weights, method, prompt, tokenizer, tokens):
    """PEFT's merged model of one mix, generating one prompt alone (greedy), built independently."""
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64).eval()
    peft = PeftModel.from_pretrained(model, adapters[NAMES[0]], adapter_name=NAMES[0])
    for n in NAMES[1:]:
        peft.load_adapter(adapters[n], adapter_name=n)
    combination, density = MERGES[method]
    torch.manual_seed(merge_seed(method, weights))
    peft.add_weighted_adapter(list(NAMES), list(weights), "m", combination_type=combination, density=density)
    peft.set_adapter("m")
    enc = encode_prompts(tokenizer, [prompt])
    with torch.no_grad():
        out = peft.generate(
            **enc, max_new_tokens=tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    ids = out[0, enc["input_ids"].shape[1] :].tolist()
    stops = {tokenizer.eos_token_id}
    cut = next((i for i, t in enumerate(ids) if t in stops), len(ids))
    return tokenizer.decode(ids[:cut], skip_special_tokens=True)


def test_merged_rows_equal_peft_generating_alone(same_rank):
    base, adapters, soup = same_rank
    mixes = [[0.6, 0.4, 0.0], [0.2, 0.3, 0.5]]
    spec = GridSpec(
        mixes=torch.tensor(mixes, dtype=torch.float64).numpy(),
        prompts=PROMPTS,
        objectives=(BUILTINS["concise"], LETTERS),
        sampling=SamplingConfig(6),
    ).for_methods(["ties", "dare", "peft-linear"])
    ds = evaluate_grid(soup, spec, batch_size=5)
    texts, methods = row_texts(ds), methods_of(ds)
    assert methods == ["ties"] * 2 + ["dare"] * 2 + ["peft-linear"] * 2
    for m in range(len(methods)):
        weights = [mix_dict(ds, m)[n] for n in NAMES]
        for p, prompt in enumerate(PROMPTS):
            assert texts[m, p, 0] == peft_alone(
                base, adapters, weights, methods[m], prompt, soup.tokenizer, 6
            )


def test_peft_linear_is_not_the_weight_soup(same_rank):
    """PEFT's linear combines A's and B's separately: cross terms B_i A_j, so its rows differ from
    the soup's at a two-adapter mix."""
    _, _, soup = same_rank
    spec = GridSpec(
        mixes=torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64).numpy(),
        prompts=PROMPTS,
        objectives=(BUILTINS["concise"], LETTERS),
        sampling=SamplingConfig(12),
    ).for_methods(["soup", "peft-linear"])
    ds = evaluate_grid(soup, spec, batch_size=4)
    texts = row_texts(ds)
    assert (texts[0] != texts[1]).any()


def test_merges_do_not_share_the_schedulers_batches(same_rank):
    _, _, soup = same_rank
    scheduler = Scheduler(soup)
    try:
        with pytest.raises(SoupError, match="one merged mix at a time"):
            scheduler.submit(PROMPTS[0], {"helpful": 1.0}, SamplingConfig(4), method="ties")
    finally:
        scheduler.close()
    assert generate(
        soup, [PROMPTS[0]], {n: 0.0 for n in NAMES}, max_new_tokens=2
    ).texts  # the soup is untouched


def test_a_failed_merge_leaves_no_stale_adapter(same_rank, monkeypatch):
    """PEFT keeps an adapter of the same name without merging again: a merge that failed halfway
    must not leave one behind for the next mix."""
    from explorer.merges import merges_for

    _, _, soup = same_rank
    merger = merges_for(soup)
    real = merger.peft.add_weighted_adapter
    calls = []

    def half_then_fail(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)
        raise ValueError("out of memory halfway")

    monkeypatch.setattr(merger.peft, "add_weighted_adapter", half_then_fail)
    with pytest.raises(SoupError, match="PEFT refused"):
        merger.generate([PROMPTS[0]], [1.0, 0.0, 0.0], "ties", config=SamplingConfig(4), sample_ids=[0])
    assert "merged" not in merger.peft.peft_config
    monkeypatch.undo()
    after = merger.generate(
        [PROMPTS[0]], [0.0, 1.0, 0.0], "peft-linear", config=SamplingConfig(4), sample_ids=[0]
    )
    alone = merger.generate(
        [PROMPTS[0]], [0.0, 1.0, 0.0], "peft-linear", config=SamplingConfig(4), sample_ids=[0]
    )
    assert after.token_ids == alone.token_ids and calls == [1]
