"""bfloat16 and float16, on the CPU here and on CUDA where there is one: the soup's logits against an
explicitly merged copy, every row of a 16-row mixed batch against its mix alone, and the CUDA
batch-size rule (``auto_batch_size``) with the free-memory query faked.

A dtype's tolerance is TOLERANCE_EPS machine epsilons relative to max |logit| (bf16 3.1e-2, fp16
3.9e-3). Measured on these models: the soup is within 1-2 epsilons of the merged copy, and as far
from float64 as the merged copy is.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import GPT2Config, LlamaConfig

from explorer.frontier.evaluation import auto_batch_size
from explorer.frontier.grid import simplex_lattice
from explorer.sampling import SamplingConfig, encode_prompts, generate, stop_token_ids
from explorer.soup import Soup
from tests.test_soup import PROMPTS, batch_inputs, merged_copy
from tests.tiny import ADAPTERS, relative_error, tiny_model, tiny_tokenizer, write_adapter

TOLERANCE_EPS = 4
# tiny.py's adapters (factors of std 0.3) dwarf W0: the logits move by 150% and at an extrapolated
# mix even the merged bf16 copy is 99% off float64, so no dtype tolerance can hold. Factors of std
# 0.1 still move the logits by 14-95% (measured), far beyond any tolerance here.
ADAPTER_STD = 0.1
DTYPES = [torch.bfloat16, torch.float16]
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]
# base, one adapter, a simplex point, two extrapolations
MIXES = [
    {"helpful": 0.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 1.0, "concise": 0.0, "positive": 0.0},
    {"helpful": 0.2, "concise": 0.3, "positive": 0.5},
    {"helpful": -0.5, "concise": 1.2, "positive": 0.3},
    {"helpful": 1.5, "concise": -0.25, "positive": -0.25},
]
NEW_TOKENS = 16  # greedy tokens per row in the 16-row check


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads; on 2 shared cores a bf16 linear waiting for a busy
    thread took 6 ms instead of 20 us (measured), which made this file minutes long."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def dtype_files(request, tmp_path_factory):
    """(kind, base folder, {name: adapter folder}): tests/tiny.py's float64 models and adapter
    configurations, with factors of std ADAPTER_STD."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"dtypes-{kind}")
    tokenizer = tiny_tokenizer()
    model = tiny_model(kind, len(tokenizer))
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = {
        name: write_adapter(model, root / name, seed=seed, std=ADAPTER_STD, **kwargs)
        for seed, (name, kwargs) in enumerate(ADAPTERS[kind].items(), start=1)
    }
    return kind, base, adapters


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE_EPS * torch.finfo(dtype).eps


def load(files, device: str, dtype: torch.dtype) -> Soup:
    """The soup of ``files`` in ``dtype`` on ``device``; skips where the device lacks the dtype."""
    try:
        x = torch.ones(2, 2, dtype=dtype, device=device)
        (x @ x).sum().item()
    except (RuntimeError, TypeError):
        pytest.skip(f"{device} has no {dtype} matmul")
    _, base, adapters = files
    return Soup.load(base, adapters, device=device, dtype=dtype)


def model_inputs(soup: Soup, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Left-padded ids, mask and positions counted from each prompt's first token (B, T), as
    ``generate`` passes them (GPT-2's absolute positions would otherwise count the padding)."""
    enc = encode_prompts(soup.tokenizer, prompts)
    positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return {k: v.to(soup.device) for k, v in {**enc, "position_ids": positions}.items()}


def sixteen_mixes(names) -> list[dict[str, float]]:
    """The resolution-4 simplex lattice (15 mixes) and one extrapolation."""
    rows = simplex_lattice(len(names), 4).tolist() + [[1.4] + [-0.2] * (len(names) - 1)]
    return [dict(zip(names, r, strict=True)) for r in rows]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_soup_logits_equal_a_merged_copy_within_the_dtype_tolerance(dtype_files, dtype, device):
    soup = load(dtype_files, device, dtype)
    tol, eps = tolerance(dtype), torch.finfo(dtype).eps
    try:
        inputs = {k: v.to(device) for k, v in batch_inputs(soup, len(MIXES)).items()}
        with soup.mixed(MIXES), torch.no_grad():
            logits = soup.model(**inputs).logits.double().cpu()  # (M, T, V), row b at mix b
        with torch.no_grad():
            base = soup.model(**inputs).logits.double().cpu()  # no mix: the base model in dtype
        for b, mix in enumerate(MIXES):
            row = {k: v[b : b + 1] for k, v in inputs.items()}
            exact = merged_copy(soup, dtype_files[1], mix)  # float64 W0 + delta on the CPU
            in_dtype = copy.deepcopy(exact).to(device, dtype)  # the same weights rounded once to dtype
            with torch.no_grad():
                ref = exact(**{k: v.cpu() for k, v in row.items()}).logits[0]
                merged = in_dtype(**row).logits[0].double().cpu()
            ours, theirs = relative_error(logits[b], merged), relative_error(merged, ref)
            numbers = f"{mix}: soup vs merged {ours:.2e} (tol {tol:.1e}); vs float64 soup "
            numbers += f"{relative_error(logits[b], ref):.2e}, merged {theirs:.2e}"
            assert ours <= tol, numbers
            assert relative_error(logits[b], ref) <= 2 * theirs + eps, numbers  # as exact as merging
            if any(mix.values()):  # the mix moves the logits far beyond the tolerance: the check has teeth
                assert relative_error(base[b], merged) > 2 * tol, numbers
    finally:
        soup.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batched_logits_equal_each_mix_alone_within_the_dtype_tolerance(dtype_files, dtype, device):
    soup = load(dtype_files, device, dtype)
    try:
        prompts = [PROMPTS[b % len(PROMPTS)] for b in range(16)]  # four lengths: left padding
        mixes = sixteen_mixes(soup.names)
        with soup.mixed(mixes), torch.no_grad():
            batched = soup.model(**model_inputs(soup, prompts)).logits[:, -1].double().cpu()  # (16, V)
        for b in range(16):
            with soup.mixed(mixes[b]), torch.no_grad():
                alone = soup.model(**model_inputs(soup, [prompts[b]])).logits[0, -1].double().cpu()
            assert relative_error(batched[b], alone) <= tolerance(dtype), (b, mixes[b])
    finally:
        soup.close()


def first_difference(a: list[int], b: list[int]) -> int:
    """The first step where two token lists differ (a stop counts as a token)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def divergence_gap(soup: Soup, prompt: str, mix: dict, prefix: list[int], chosen: int, other: int) -> float:
    """How far ``other`` was below ``chosen`` after ``prompt`` + ``prefix`` in the mix alone,
    relative to max |logit| (a near-tie when within the dtype's tolerance)."""
    enc = encode_prompts(soup.tokenizer, [prompt])
    ids = torch.cat([enc["input_ids"], torch.tensor([prefix], dtype=torch.long)], dim=1).to(soup.device)
    with soup.mixed(mix), torch.no_grad():
        logits = soup.model(input_ids=ids).logits[0, -1].double().cpu()  # (V,)
    return ((logits[chosen] - logits[other]) / logits.abs().max()).item()


def differing_rows(soup: Soup, mixes: list[dict], alone_mixes: list[dict]) -> tuple[list, list[list[int]]]:
    """Greedy through ``explorer.sampling.generate``: 16 rows (four prompt lengths) at ``mixes`` in
    one batch, then row b alone at ``alone_mixes[b]``. Returns ([(row, first differing step, gap)],
    the batch's token ids)."""
    prompts = [PROMPTS[b % len(PROMPTS)] for b in range(16)]
    batched = generate(soup, prompts, mixes, max_new_tokens=NEW_TOKENS).token_ids
    stop = stop_token_ids(soup)[0]
    differ = []
    for b in range(16):
        alone = generate(soup, [prompts[b]], alone_mixes[b], max_new_tokens=NEW_TOKENS).token_ids[0]
        if alone == batched[b]:
            continue
        step = first_difference(alone, batched[b])
        ours = alone[step] if step < len(alone) else stop
        theirs = batched[b][step] if step < len(batched[b]) else stop
        differ.append((b, step, divergence_gap(soup, prompts[b], alone_mixes[b], alone[:step], ours, theirs)))
    return differ, batched


def explained(differ: list, dtype: torch.dtype) -> bool:
    """Most rows (12 of 16) match token for token, and every other one diverged at a near-tie."""
    return len(differ) <= 4 and all(gap <= tolerance(dtype) for _, _, gap in differ)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_row_of_a_16_row_mixed_batch_matches_its_mix_alone(dtype_files, dtype, device, record_property):
    """A row may differ only where two tokens tie within the dtype's tolerance: the batched matrix
    products round differently from one row's."""
    soup = load(dtype_files, device, dtype)
    try:
        mixes = sixteen_mixes(soup.names)
        differ, batched = differing_rows(soup, mixes, mixes)
    finally:
        soup.close()
    report = f"{len(differ)} of 16 rows differ ({dtype_files[0]}, {dtype}): " + ", ".join(
        f"row {b} from step {s} (gap {g:.1e})" for b, s, g in differ
    )
    record_property("rows_differ", len(differ))
    print(report)
    assert explained(differ, dtype), report
    assert len({tuple(t) for t in batched}) >= 8, "the 16 mixes should answer differently"


def test_the_16_row_check_fails_a_batch_whose_rows_carry_other_mixes(dtype_files):
    """The check has teeth: compared with its neighbour's mix alone, a row differs far beyond a tie."""
    soup = load(dtype_files, "cpu", torch.bfloat16)
    try:
        mixes = sixteen_mixes(soup.names)
        differ, _ = differing_rows(soup, mixes, mixes[1:] + mixes[:1])
    finally:
        soup.close()
    assert not explained(differ, torch.bfloat16), differ


# ------------------------------------------------------------------------------------------------
# the CUDA batch-size rule, with torch.cuda.mem_get_info faked

LLAMA_7B = LlamaConfig(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32000,
)
LLAMA_1B = LlamaConfig(  # grouped-query attention: 8 key/value heads of 64 dims
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
)
GPT2_SMALL = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257)  # no num_key_value_heads
GIB = 2**30


def fake_soup(device: str, dtype: torch.dtype, config) -> SimpleNamespace:
    """What auto_batch_size reads of a soup: its device, dtype and model config."""
    return SimpleNamespace(device=torch.device(device), dtype=dtype, model=SimpleNamespace(config=config))


def spec(max_new_tokens: int = 128) -> SimpleNamespace:
    return SimpleNamespace(sampling=SamplingConfig(max_new_tokens=max_new_tokens))


@pytest.fixture
def free_memory(monkeypatch):
    """Fake ``torch.cuda.mem_get_info``: set ``state["free"]`` in bytes; ``state["asked"]`` lists the
    devices it was asked about."""
    state = {"free": 60 * GIB, "asked": []}

    def mem_get_info(device=None):
        state["asked"].append(device)
        return state["free"], 80 * GIB

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    return state


# Rows = a third of the free memory / per-row bytes, per row the K and V caches of 512 prompt +
# max_new_tokens tokens (2 x layers x kv heads x head dim x tokens x bytes) and 4 float32 logits rows.
@pytest.mark.parametrize(
    "config, dtype, free_gib, new_tokens, rows",
    [
        # 2*32*32*128*640*2 + 4*32000*4 = 336,056,320 bytes; 20 GiB / that = 63.9
        (LLAMA_7B, torch.bfloat16, 60, 128, 63),
        # 8 key/value heads, not 32: 2*16*8*64*640*2 + 4*128256*4 = 23,023,616 bytes
        (LLAMA_1B, torch.bfloat16, 60, 128, 932),
        (LLAMA_1B, torch.float32, 60, 128, 488),  # 4-byte caches: about half the rows
        (LLAMA_1B, torch.bfloat16, 60, 1024, 409),  # longer responses: fewer rows
        # GPT-2 has no num_key_value_heads: 12 heads of 768/12 = 64; 2*12*12*64*640*2 + 4*50257*4
        (GPT2_SMALL, torch.float16, 16, 128, 234),
        (LLAMA_7B, torch.bfloat16, 1024, 128, 1024),  # at most 1024 rows
        (LLAMA_7B, torch.bfloat16, 0.25, 128, 1),  # at least one row
    ],
)
def test_auto_batch_size_on_cuda_fills_a_third_of_the_free_memory(
    free_memory, config, dtype, free_gib, new_tokens, rows
):
    free_memory["free"] = int(free_gib * GIB)
    soup = fake_soup("cuda:1", dtype, config)
    assert auto_batch_size(soup, spec(new_tokens)) == rows
    assert free_memory["asked"] == [torch.device("cuda:1")]  # the soup's own GPU


def test_auto_batch_size_on_the_cpu_is_64_without_asking_cuda(free_memory):
    assert auto_batch_size(fake_soup("cpu", torch.float32, LLAMA_7B), spec()) == 64
    assert free_memory["asked"] == []
