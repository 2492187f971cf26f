"""Every GPU check in one run: bf16/fp16 correctness, the soup at llama-1b and llama-7b shapes, the 7B
grid, peak memory and a profile of the soup's hook; each result a JSON file under --out.

    python bench/gpu_suite.py --out $OUT/gpu --check-imports                        # one H100/H200
    python bench/gpu_suite.py --device cpu --tiny --out /tmp/suite --check-imports  # dry run, ~10 s
    python bench/gpu_suite.py --out $OUT/gpu --only grid profile                    # some sections again

Carry to the device machine: nothing (``carry=[]``). It has torch, transformers and peft, and with
them numpy and safetensors; the copied tree brings ``explorer`` and ``bench/common.py`` (this script
puts the repository root and bench/ on ``sys.path``: no virtual environment, no pip install), and
nothing is downloaded (random weights of real shapes). ``--check-imports`` fails the run (exit 2) if
anything else was imported: only torch, transformers, peft, numpy, safetensors, the standard library
and the explorer core (whose own dependencies, xarray among them, only where explorer imports them);
never panel, holoviews, bokeh, param or ray. On the device tool:

    run(command="python bench/gpu_suite.py --out $OUT/gpu --check-imports", timeout_s=540)

Estimated 4-6 minutes on one H100 (never measured: no GPU yet). ``--budget-s`` (default 400) skips
the sections that would start later, so a slow machine still writes every section it finished;
exit status 1 when a section failed or was skipped.

Sections, in order (files <name>-<device>.json in the layout of bench/results: benchmark, device,
model, rows with method and of_ceiling; peak memory is CUDA max allocated, null on the CPU):
  correctness       llama-1b shape: bf16 and fp16 soup logits vs an explicitly merged copy (float64
                    delta, rounded once) and vs float32; a 16-row mixed batch vs each mix alone, greedy
  mix_switch-<s>    soup gate vs merge into W vs PEFT cat rebuild (+ set + delete), s = llama-1b, llama-7b
  frontier-<s>      21 mixes x 16 prompts x 48 tokens: base, soup, merge per mix, PEFT mixed batches
  grid-llama-7b     66 mixes x 64 prompts x 128 tokens; merge per mix and PEFT mixed batches measured
                    on part of the grid and scaled to all of it (marked ``extrapolated``)
  profile-llama-7b  torch.profiler: top ops by self time, the hook's share, base vs soup
  optional-llama-7b explorer.scheduler (1, 3, 6 simultaneous sessions) and decoding-time mixing
                    (MOD) rows, each only where the feature exists
  imports, suite    what was imported; every section's status, the issue's goals, wall time
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import gc
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO), str(HERE)):  # explorer from the copied tree, bench/common.py beside this file
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: nothing may reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from common import (  # noqa: E402
    SHAPES,
    Merge,
    PeakMemory,
    Setup,
    environment,
    load_peft,
    load_soup,
    peft_switch,
    sync,
    table,
    time_call,
    write_random_adapter,
)
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402

from explorer.adapters import read_adapter  # noqa: E402
from explorer.decoding import SamplingConfig  # noqa: E402
from explorer.frontier.grid import simplex_lattice  # noqa: E402
from explorer.soup import Soup  # noqa: E402

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # 3 adapters of rank 8 on every attention projection
TOLERANCE_EPS = 4  # logits agree within 4 machine epsilons of the dtype, relative to max |logit|
HOOK = "soup.hook"  # the profiler's label for the soup's forward hooks
ALLOWED = frozenset({"torch", "transformers", "peft", "numpy", "safetensors"})
FORBIDDEN = frozenset({"panel", "holoviews", "bokeh", "param", "ray", "xarray", "playwright", "pytest"})
REPO_MODULES = frozenset({"explorer", "common", "gpu_suite", "bench", "tests"})
# Mixes of the logits check: base, one adapter, a simplex point, two extrapolations.
LOGIT_MIXES = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.2, 0.3, 0.5), (-0.5, 1.2, 0.3), (1.5, -0.25, -0.25))
SWITCH_MIXES = ((0.6, 0.3, 0.1), (0.1, 0.2, 0.7))
TINY_SHAPES = {  # same layer kinds as the real shapes, sized for a 2-core CPU
    "llama-1b": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        tie_word_embeddings=True,
    ),
    "llama-7b": dict(
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=384,
        tie_word_embeddings=False,
    ),
}


@dataclass(frozen=True)
class Sizes:
    """How large each section runs; the GPU run and the ``--tiny`` dry run differ only here."""

    shapes: dict[str, dict]  # shape name -> LlamaConfig keyword arguments
    prompt_tokens: int = 32  # tokens per (random) prompt
    check_tokens: int = 48  # greedy new tokens in the 16-row batch-vs-alone check
    switch_repeat: int = 200  # gate switches timed (median)
    slow_repeat: int = 4  # merge and PEFT switches timed (median)
    frontier: tuple[int, int, int] = (5, 16, 48)  # lattice resolution (21 mixes), prompts, new tokens
    grid: tuple[int, int, int] = (10, 64, 128)  # 66 mixes x 64 prompts x 128 new tokens
    grid_merge_mixes: int = 2  # mixes merged and generated in the grid, scaled to all 66
    grid_peft_rows: int = 512  # grid rows run as PEFT mixed batches, scaled to all rows
    profile_rows: int = 64  # rows of the profiled generation
    profile_tokens: int = 8  # its new tokens
    user_tokens: int = 64  # new tokens per request in the optional scheduler / MOD rows


FULL = Sizes(shapes=SHAPES)
TINY = Sizes(
    shapes=TINY_SHAPES,
    prompt_tokens=12,
    check_tokens=8,
    switch_repeat=20,
    slow_repeat=2,
    frontier=(5, 2, 4),
    grid=(10, 2, 4),
    grid_peft_rows=32,
    profile_rows=4,
    profile_tokens=2,
    user_tokens=4,
)


@dataclass
class Run:
    """One run of the suite: where it writes, on what, how large, and what each section did."""

    out: Path
    device: torch.device
    dtype: torch.dtype  # the throughput sections' dtype (correctness runs bf16 and fp16 itself)
    sizes: Sizes
    tiny: bool
    budget_s: float  # sections that would start later than this are skipped
    batch: int | None  # rows per generate call in the grids (None: the memory rule)
    tmp: Path
    start: float = field(default_factory=time.perf_counter)
    sections: list[dict] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def label(self, shape: str) -> str:
        return f"random {shape}" + (" (tiny)" if self.tiny else "")

    def write(self, name: str, report: dict) -> Path:
        """Write ``report`` as ``<name>-<device>.json`` under ``out`` (remembered for the summary)."""
        self.reports[name] = report
        path = self.out / f"{name}-{self.device.type}.json"
        path.write_text(json.dumps(report, indent=1, default=str))
        return path


# ------------------------------------------------------------------------------------------------
# models, adapters, prompts


def new_model(config: LlamaConfig, device: torch.device, dtype: torch.dtype) -> LlamaForCausalLM:
    """A randomly initialised Llama built directly in ``dtype`` on ``device`` (no float32 copy)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)


def build_setup(run: Run, shape: str, dtype: torch.dtype, *, prompts: int) -> Setup:
    """A random model of ``shape``, 3 random rank-8 adapters on q/k/v/o on disk, ``prompts`` random
    prompts of ``prompt_tokens`` tokens (ids (prompts, T), all positions real)."""
    config = LlamaConfig(
        **run.sizes.shapes[shape], max_position_embeddings=2048, pad_token_id=0, eos_token_id=2
    )
    model = new_model(config, run.device, dtype)
    folder = run.tmp / shape
    adapters = {
        name: str(write_random_adapter(model, folder / name, seed=i + 1, targets=TARGETS))
        for i, name in enumerate(("positive", "concise", "readable"))
    }
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, config.vocab_size, (prompts, run.sizes.prompt_tokens), generator=gen)
    return Setup(run.label(shape), model, None, adapters, ids, torch.ones_like(ids))


def model_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def word_tokenizer(vocab_size: int, folder: Path):
    """A word-level tokenizer over ``t0 .. t{V-1}`` (t0 pad, t2 EOS): text prompts for a random model.

    Written as a tokenizer.json and read by transformers, so nothing but transformers is imported.
    """
    from transformers import PreTrainedTokenizerFast

    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {f"t{i}": i for i in range(vocab_size)}, "unk_token": "t1"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), pad_token="t0", unk_token="t1", eos_token="t2"
    )
    tok.padding_side = "left"
    return tok


def mix_tensor(mixes) -> torch.Tensor:
    """Mixes as a (M, N) float64 tensor, columns in the adapters' order."""
    return torch.as_tensor(mixes, dtype=torch.float64)


def greedy(model, ids: torch.Tensor, mask: torch.Tensor, tokens: int, **kwargs):
    """Greedy generation of exactly ``tokens`` new tokens per row (EOS ignored): ids/mask (B, T)."""
    config = GenerationConfig(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    with torch.inference_mode():
        return model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **kwargs)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_of(mem: PeakMemory, device: torch.device) -> int | None:
    """CUDA max allocated bytes; None on the CPU (the process's RSS would mix in everything else)."""
    return mem.peak if device.type == "cuda" else None


def batch_rows(run: Run, setup: Setup, total_rows: int, new_tokens: int) -> int:
    """Rows per generate call: ``--batch``, else on a GPU as many as half the free memory holds
    (KV cache of prompt + new tokens, and float32 logits three times over), else 64."""
    if run.batch:
        return min(run.batch, total_rows)
    if run.device.type != "cuda":
        return min(64, total_rows)
    cfg = setup.model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = cfg.num_key_value_heads or cfg.num_attention_heads
    itemsize = torch.finfo(setup.dtype).bits // 8
    tokens = setup.input_ids.shape[1] + new_tokens
    per_row = 2 * cfg.num_hidden_layers * kv_heads * head_dim * tokens * itemsize + 3 * 4 * cfg.vocab_size
    free, _ = torch.cuda.mem_get_info(run.device)
    return int(max(1, min(total_rows, (free // 2) // per_row)))


# ------------------------------------------------------------------------------------------------
# (a) correctness


def tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of logits computed in ``dtype``: TOLERANCE_EPS machine epsilons."""
    return TOLERANCE_EPS * torch.finfo(dtype).eps


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| in float64: how far ``a`` is from the reference ``b``."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@contextlib.contextmanager
def merged(model: torch.nn.Module, stacks: dict, weights: torch.Tensor) -> Iterator[torch.nn.Module]:
    """Within the block every target module's weight is W0 + sum_i w_i s_i B_i A_i, the delta exact in
    float64 and rounded once to the weight's dtype; W0 comes back after. ``weights`` (N,)."""
    saved = {}
    try:
        with torch.no_grad():
            for name, stack in stacks.items():
                weight = model.get_submodule(name).weight  # (out, in)
                saved[name] = weight.detach().clone()
                factors = stack.mixed(weights)  # exact float64 factors, None when every weight is 0
                if factors is not None:
                    delta = factors.B.to(weight.device) @ factors.A.to(weight.device)  # (out, in) float64
                    weight.copy_((weight.double() + delta).to(weight.dtype))
        yield model
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                model.get_submodule(name).weight.copy_(original)


def merged_logits(model, stacks: dict, mixes: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Row b's logits (T, V) by a model merged to mix b and run on row b alone: (M, T, V) float32."""
    out = []
    for b in range(len(mixes)):
        with merged(model, stacks, mixes[b]), torch.inference_mode():
            out.append(model(input_ids=ids[b : b + 1]).logits[0].float())
    return torch.stack(out)


def supported(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether a matmul in ``dtype`` runs on ``device``."""
    try:
        x = torch.ones(2, 2, dtype=dtype, device=device)
        return bool(torch.isfinite((x @ x).float()).all())
    except (RuntimeError, TypeError):
        return False


def logits_row(dtype, soup_l, merged_l, ref_l, base_l) -> dict:
    """The logits check of one dtype from (M, T, V) logits: the soup, the merged copy in ``dtype``,
    the float32 merged reference, the base model in ``dtype``."""
    tol, eps = tolerance(dtype), torch.finfo(dtype).eps
    m = len(soup_l)
    vs_merged = [rel(soup_l[b], merged_l[b]) for b in range(m)]
    soup_ref = [rel(soup_l[b], ref_l[b]) for b in range(m)]
    merged_ref = [rel(merged_l[b], ref_l[b]) for b in range(m)]
    effect = [rel(base_l[b], merged_l[b]) for b in range(m) if any(LOGIT_MIXES[b])]
    within = all(v <= tol for v in vs_merged)
    # the dtype's own error grows with depth: the soup must be as close to float32 as merging is
    as_exact = all(s <= 2 * g + eps for s, g in zip(soup_ref, merged_ref, strict=True))
    return {
        "method": "logits_soup_vs_merged",
        "dtype": str(dtype).replace("torch.", ""),
        "mixes": [list(x) for x in LOGIT_MIXES],
        "tolerance": tol,
        "soup_vs_merged": max(vs_merged),
        "soup_vs_float32": max(soup_ref),
        "merged_vs_float32": max(merged_ref),
        "per_mix_soup_vs_merged": vs_merged,
        "mix_effect_min": min(effect),  # how far a non-zero mix moves the logits: the check's teeth
        "within_tolerance": within,
        "as_exact_as_merging": as_exact,
        "ok": within and as_exact and min(effect) > tol,
        "of_ceiling": None,
    }


def left_pad(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as left-padded ids and mask, both (B, T)."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - len(p) :], mask[b, width - len(p) :] = p, 1
    return ids, mask


def batch_vs_alone(soup: Soup, prompts: list[torch.Tensor], mixes: torch.Tensor, tokens: int) -> dict:
    """Greedy: every row of one mixed batch (row b: prompts[b] at mixes[b]) against that mix alone.

    For each row, compares the logits of the two runs at every step where their tokens so far agree
    (the first differing step included), relative to max |logit|: above the dtype's tolerance the
    batch would compute another mix. A token that differs is explained by ``gap``: how far the batch's
    token was below the alone run's choice in the alone run's logits (relative; a near-tie if <= tol).
    """
    device, tol = soup.device, tolerance(soup.dtype)
    ids, mask = left_pad(prompts)
    with soup.mixed(mixes):
        out = greedy(
            soup.model,
            ids.to(device),
            mask.to(device),
            tokens,
            output_logits=True,
            return_dict_in_generate=True,
        )
    batch_tokens = out.sequences[:, ids.shape[1] :].cpu()  # (B, tokens)
    batch_logits = torch.stack(out.logits, dim=1).float().cpu()  # (B, tokens, V)
    rows = []
    for b in range(len(prompts)):
        one_ids = prompts[b][None].to(device)
        with soup.mixed(mixes[b]):
            one = greedy(
                soup.model,
                one_ids,
                torch.ones_like(one_ids),
                tokens,
                output_logits=True,
                return_dict_in_generate=True,
            )
        alone_tokens = one.sequences[0, one_ids.shape[1] :].cpu()
        alone_logits = torch.stack(one.logits, dim=1)[0].float().cpu()  # (tokens, V)
        differ = (alone_tokens != batch_tokens[b]).nonzero()
        first = int(differ[0]) if len(differ) else None
        last = tokens - 1 if first is None else first
        noise = max(rel(batch_logits[b, s], alone_logits[s]) for s in range(last + 1))
        row = {"row": b, "first_differing_step": first, "logits_vs_alone": noise}
        if first is not None:
            la = alone_logits[first]
            gap = (la[alone_tokens[first]] - la[batch_tokens[b, first]]).item()
            row["gap"] = gap / la.abs().max().item()
        rows.append(row)
    differing = [r for r in rows if r["first_differing_step"] is not None]
    worst = max(r["logits_vs_alone"] for r in rows)
    near_ties = all(r["gap"] <= tol for r in differing)
    return {
        "method": "batch_vs_alone",
        "dtype": str(soup.dtype).replace("torch.", ""),
        "rows": len(prompts),
        "new_tokens": tokens,
        "rows_differ": len(differing),
        "first_differing_steps": [r["first_differing_step"] for r in differing],
        "gaps": [r["gap"] for r in differing],
        "logits_vs_alone_max": worst,
        "tolerance": tol,
        "distinct_responses": len({tuple(t.tolist()) for t in batch_tokens}),
        "why": (
            "every differing row diverged at a near-tie (the two tokens within the tolerance) while "
            "its logits matched the mix alone: batched kernels round differently (random weights give "
            "flat logits, where near-ties are common)"
            if differing and near_ties and worst <= tol
            else ("no row differs" if not differing else "NOT explained by rounding: see per_row")
        ),
        "per_row": rows,
        "ok": worst <= tol and near_ties,  # how many rows differ depends on how flat the logits are
        "of_ceiling": None,
    }


def check_prompts(setup: Setup, rows: int) -> list[torch.Tensor]:
    """``rows`` prompts of four different lengths (the batch is left-padded), cut from the setup's."""
    t = setup.input_ids.shape[1]
    return [setup.input_ids[b % 4, : t - 3 * (b % 4)] for b in range(rows)]


def check_mixes(n_adapters: int, rows: int = 16) -> torch.Tensor:
    """``rows`` distinct mixes: the resolution-4 simplex lattice (15 for 3 adapters) and extrapolations."""
    lattice = simplex_lattice(n_adapters, 4).tolist()
    extra = [[1.4 if i == k else -0.2 for i in range(n_adapters)] for k in range(n_adapters)]
    return mix_tensor((lattice + extra)[:rows])


def section_correctness(run: Run) -> None:
    """bf16 and fp16 at the llama-1b shape: logits against merged copies; a 16-row batch vs alone."""
    setup = build_setup(run, "llama-1b", torch.float32, prompts=len(LOGIT_MIXES))
    names = list(setup.adapters)
    adapters = [read_adapter(n, setup.adapters[n]) for n in names]
    if run.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # a float32 reference, not TF32
    ids = setup.input_ids.to(run.device)
    mixes = mix_tensor(LOGIT_MIXES)
    ref_soup = Soup(setup.model, None, adapters)
    ref_soup.close()  # only its stacked factors: the reference merges
    reference = merged_logits(setup.model, ref_soup.stacks, mixes, ids)  # float32 (M, T, V)
    rows = []
    for dtype in (torch.bfloat16, torch.float16):
        if not supported(dtype, run.device):
            rows.append({"method": "logits_soup_vs_merged", "dtype": str(dtype), "skipped": "unsupported"})
            continue
        model = copy.deepcopy(setup.model).to(dtype)
        soup = Soup(model, None, adapters)
        with soup.mixed(mixes), torch.inference_mode():
            soup_l = model(input_ids=ids).logits.float()  # (M, T, V), every row its own mix
        check = batch_vs_alone(
            soup, check_prompts(setup, 16), check_mixes(len(names)), run.sizes.check_tokens
        )
        soup.close()
        with torch.inference_mode():
            base_l = model(input_ids=ids).logits.float()
        merged_l = merged_logits(model, soup.stacks, mixes, ids)
        rows += [logits_row(dtype, soup_l, merged_l, reference, base_l), check]
        del model, soup
        free_memory(run.device)
    report = {"benchmark": "correctness", "model": setup.label, **environment(run.device, torch.float32)}
    report["dtype"] = "bfloat16, float16 (reference float32)"
    run.write("correctness", {**report, "rows": rows})
    setup.model = None
    free_memory(run.device)


# ------------------------------------------------------------------------------------------------
# (b) mix switch


def cast_lora(model, dtype: torch.dtype) -> None:
    """PEFT keeps float32 adapter files in float32; cast them to the model's dtype, as the soup does."""
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = p.data.to(dtype)


def switch_soup(setup: Setup, names: list[str], repeat: int) -> tuple[float, int | None, int]:
    soup = load_soup(setup, names)
    mixes = [dict(zip(names, m, strict=True)) for m in SWITCH_MIXES]
    k = {"i": 0}

    def switch() -> None:
        k["i"] += 1
        soup.set_weights(mixes[k["i"] % 2])

    switch()
    with PeakMemory(setup.device) as mem:
        seconds = time_call(switch, setup.device, repeat=repeat)
    soup.close()
    stacked = sum(s.A.nbytes + s.B.nbytes for s in soup.stacks.values())
    return seconds, peak_of(mem, setup.device), stacked


def switch_merge(setup: Setup, names: list[str], repeat: int) -> tuple[float, int | None]:
    merge = Merge(setup, names)
    mixes = mix_tensor(SWITCH_MIXES)
    k = {"i": 0}

    def switch() -> None:
        k["i"] += 1
        merge(mixes[k["i"] % 2])

    switch()
    with PeakMemory(setup.device) as mem:
        seconds = time_call(switch, setup.device, repeat=repeat)
    merge.restore()
    return seconds, peak_of(mem, setup.device)


def switch_peft_cat(setup: Setup, names: list[str], repeat: int) -> tuple[float, int | None]:
    """PEFT's exact rebuild of a mix: add_weighted_adapter(cat) + set_adapter + delete the old one."""
    model = load_peft(setup, names)
    cast_lora(model, setup.dtype)
    switch = peft_switch(model, names, itertools.cycle(SWITCH_MIXES), "cat")
    switch()
    with PeakMemory(setup.device) as mem:
        seconds = time_call(switch, setup.device, repeat=repeat)
    setup.model = model.unload()
    return seconds, peak_of(mem, setup.device)


def mix_switch(run: Run, setup: Setup, shape: str) -> None:
    names = list(setup.adapters)
    sizes = run.sizes
    soup_s, soup_peak, stacked = switch_soup(setup, names, sizes.switch_repeat)
    merge_s, merge_peak = switch_merge(setup, names, sizes.slow_repeat)
    peft_s, peft_peak = switch_peft_cat(setup, names, sizes.slow_repeat)
    rows = [
        {"method": "soup", "label": "soup: set the gate", "seconds": soup_s, "peak_bytes": soup_peak},
        {"method": "merge", "label": "merge into W", "seconds": merge_s, "peak_bytes": merge_peak},
        {
            "method": "peft_cat",
            "label": "PEFT cat + set + delete",
            "seconds": peft_s,
            "peak_bytes": peft_peak,
        },
    ]
    for r, repeat in zip(rows, (sizes.switch_repeat, sizes.slow_repeat, sizes.slow_repeat), strict=True):
        r.update(ms=r["seconds"] * 1e3, x_soup=r["seconds"] / soup_s, repeat=repeat, of_ceiling=None)
    mb = model_bytes(setup.model) / 2**20
    run.write(
        f"mix_switch-{shape}",
        {
            "benchmark": "mix_switch",
            "model": setup.label,
            "model_mb": mb,
            "stacked_mb": stacked / 2**20,
            "stacked_share_of_model": stacked / 2**20 / mb,
            "targets": list(TARGETS),
            **environment(run.device, setup.dtype),
            "rows": rows,
        },
    )


# ------------------------------------------------------------------------------------------------
# (b, c) frontier throughput and the grid


@dataclass(frozen=True)
class Grid:
    """Every (mix, prompt) of a grid as rows: row = mix * prompts + prompt."""

    mixes: torch.Tensor  # (M, N) float64
    ids: torch.Tensor  # (M * P, T) on the device
    mask: torch.Tensor  # (M * P, T)
    prompts: int  # P
    tokens: int  # new tokens per row
    batch: int  # rows per generate call

    @property
    def rows(self) -> int:
        return self.ids.shape[0]

    def weights(self) -> torch.Tensor:
        """(rows, N): each row's mix."""
        return self.mixes.repeat_interleave(self.prompts, dim=0)

    def chunks(self, limit: int | None = None) -> Iterator[slice]:
        """Slices of at most ``batch`` rows: all of them, or the whole chunks within the first ``limit``
        rows (at least one), so that a part of the grid runs in batches as large as the whole."""
        end = self.rows if limit is None else min(self.rows, max(1, limit // self.batch) * self.batch)
        for start in range(0, end, self.batch):
            yield slice(start, min(end, start + self.batch))


def make_grid(run: Run, setup: Setup, resolution: int, prompts: int, tokens: int) -> Grid:
    mixes = mix_tensor(simplex_lattice(len(setup.adapters), resolution))
    ids = setup.input_ids[:prompts].repeat(len(mixes), 1).to(run.device)
    mask = setup.attention_mask[:prompts].repeat(len(mixes), 1).to(run.device)
    return Grid(mixes, ids, mask, prompts, tokens, batch_rows(run, setup, ids.shape[0], tokens))


def grid_base(setup: Setup, grid: Grid) -> float:
    """The base model alone on the same rows: the ceiling."""

    def go() -> None:
        for rows in grid.chunks():
            greedy(setup.model, grid.ids[rows], grid.mask[rows], grid.tokens)

    return time_call(go, setup.device)


def grid_soup(setup: Setup, names: list[str], grid: Grid) -> float:
    """The whole grid as batched generation through the soup, every row its own mix."""
    soup = load_soup(setup, names)
    weights = grid.weights()

    def go() -> None:
        for rows in grid.chunks():
            with soup.mixed(weights[rows]):
                greedy(setup.model, grid.ids[rows], grid.mask[rows], grid.tokens)

    try:
        return time_call(go, setup.device)
    finally:
        soup.close()


def grid_merge_each(setup: Setup, names: list[str], grid: Grid, measure: int | None) -> tuple[float, int]:
    """One mix at a time: merge, then generate its prompts; ``measure`` mixes timed, scaled to all.
    Returns (seconds for the whole grid, mixes measured)."""
    merge = Merge(setup, names)
    one = Grid(
        grid.mixes[:1],
        grid.ids[: grid.prompts],
        grid.mask[: grid.prompts],
        grid.prompts,
        grid.tokens,
        grid.batch,
    )
    done = min(measure or len(grid.mixes), len(grid.mixes))

    def go() -> None:
        for mix in grid.mixes[:done]:
            merge(mix)
            for rows in one.chunks():
                greedy(setup.model, one.ids[rows], one.mask[rows], grid.tokens)

    try:
        return time_call(go, setup.device) * len(grid.mixes) / done, done
    finally:
        merge.restore()


def grid_peft_mixed(
    setup: Setup, names: list[str], grid: Grid, measure: int | None
) -> tuple[float, float, int]:
    """PEFT mixed-adapter batches: one ``cat`` adapter per mix (built, timed apart), rows naming their
    adapter (``adapter_names``); the first ``measure`` rows timed and scaled to the grid.
    Returns (seconds for the whole grid, build seconds for every mix, rows measured)."""
    model = load_peft(setup, names)
    cast_lora(model, setup.dtype)
    chunks = list(grid.chunks(measure))
    measured = chunks[-1].stop
    used = sorted({r // grid.prompts for r in range(measured)})

    def build() -> None:
        for m in used:
            model.add_weighted_adapter(names, grid.mixes[m].tolist(), f"mix{m}", combination_type="cat")

    try:
        build_s = time_call(build, setup.device) * len(grid.mixes) / len(used)
        cast_lora(model, setup.dtype)
        row_adapters = [f"mix{r // grid.prompts}" for r in range(measured)]

        def go() -> None:
            for rows in chunks:
                greedy(model, grid.ids[rows], grid.mask[rows], grid.tokens, adapter_names=row_adapters[rows])

        seconds = time_call(go, setup.device) * grid.rows / measured
        return seconds, build_s, measured
    finally:
        setup.model = model.unload()


def throughput(
    run: Run, setup: Setup, grid: Grid, *, merge_mixes: int | None, peft_rows: int | None
) -> list[dict]:
    """Base, soup, merge per mix, PEFT mixed batches on ``grid``: wall time, tokens/s, peak memory."""
    names = list(setup.adapters)
    tokens = grid.rows * grid.tokens
    greedy(setup.model, grid.ids[:2], grid.mask[:2], 2)  # warm-up
    methods: list[tuple[str, str, Callable[[], Any]]] = [
        ("base", "base model alone (ceiling)", lambda: grid_base(setup, grid)),
        ("soup", "soup: batched grid", lambda: grid_soup(setup, names, grid)),
        (
            "merge_each",
            "merge, then generate, per mix",
            lambda: grid_merge_each(setup, names, grid, merge_mixes),
        ),
        ("peft_mixed", "PEFT mixed-adapter batches", lambda: grid_peft_mixed(setup, names, grid, peft_rows)),
    ]
    rows = []
    for method, label, go in methods:
        free_memory(run.device)
        row: dict[str, Any] = {"method": method, "label": label}
        try:
            with PeakMemory(run.device) as mem:
                out = go()
        except torch.cuda.OutOfMemoryError as err:  # one method out of memory: the others still run
            rows.append({**row, "error": f"out of memory: {err}"[:300], "of_ceiling": None})
            continue
        seconds = out[0] if isinstance(out, tuple) else out
        row.update(seconds=seconds, tokens_per_s=tokens / seconds, peak_bytes=peak_of(mem, run.device))
        if method == "merge_each":
            row.update(measured_mixes=out[1], extrapolated=out[1] < len(grid.mixes))
        if method == "peft_mixed":
            row.update(build_s=out[1], measured_rows=out[2], extrapolated=out[2] < grid.rows)
        rows.append(row)
        print(f"    {label}: {seconds:.2f} s, {tokens / seconds:.0f} tokens/s", flush=True)
    base = next((r for r in rows if r["method"] == "base" and "seconds" in r), None)
    soup = next((r for r in rows if r["method"] == "soup" and "seconds" in r), None)
    for r in rows:
        if "seconds" not in r:
            continue
        r["of_ceiling"] = base["seconds"] / r["seconds"] if base else None
        r["x_soup_time"] = r["seconds"] / soup["seconds"] if soup else None
        ok = base and base["peak_bytes"] and r["peak_bytes"]
        r["peak_vs_base"] = r["peak_bytes"] / base["peak_bytes"] if ok else None
    return rows


def grid_report(run: Run, setup: Setup, grid: Grid, rows: list[dict], benchmark: str) -> dict:
    return {
        "benchmark": benchmark,
        "model": setup.label,
        "mixes": len(grid.mixes),
        "prompts": grid.prompts,
        "prompt_tokens": int(grid.ids.shape[1]),
        "new_tokens": grid.tokens,
        "rows_total": grid.rows,
        "tokens_total": grid.rows * grid.tokens,
        "batch_size": grid.batch,
        "targets": list(TARGETS),
        "peft_adapters_dtype": str(setup.dtype).replace("torch.", ""),
        **environment(run.device, setup.dtype),
        "rows": rows,
    }


def frontier(run: Run, setup: Setup, shape: str) -> None:
    resolution, prompts, tokens = run.sizes.frontier
    grid = make_grid(run, setup, resolution, prompts, tokens)
    rows = throughput(run, setup, grid, merge_mixes=None, peft_rows=None)
    run.write(f"frontier-{shape}", grid_report(run, setup, grid, rows, "frontier_throughput"))


def big_grid(run: Run, setup: Setup, shape: str) -> None:
    resolution, prompts, tokens = run.sizes.grid
    grid = make_grid(run, setup, resolution, prompts, tokens)
    sizes = run.sizes
    rows = throughput(run, setup, grid, merge_mixes=sizes.grid_merge_mixes, peft_rows=sizes.grid_peft_rows)
    run.write(f"grid-{shape}", grid_report(run, setup, grid, rows, "grid"))


# ------------------------------------------------------------------------------------------------
# (e) profile of the soup's hook


def _labelled(fn: Callable, label: str) -> Callable:
    def hook(*args, **kwargs):
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)

    return hook


@contextlib.contextmanager
def labelled_hooks(model: torch.nn.Module, modules, label: str) -> Iterator[int]:
    """Each forward hook of ``modules`` runs inside ``record_function(label)``; yields how many."""
    saved = []
    for name in modules:
        hooks = model.get_submodule(name)._forward_hooks
        for key, fn in list(hooks.items()):
            saved.append((hooks, key, fn))
            hooks[key] = _labelled(fn, label)
    try:
        yield len(saved)
    finally:
        for hooks, key, fn in saved:
            hooks[key] = fn


def profile_summary(prof, device: torch.device, top: int = 10) -> dict:
    """Op time of a profiled block (us): on CUDA kernel time, on the CPU op time; the top ops by
    self time; the hook's share of the total and the ops and kernels one hook call launches."""
    from torch.autograd import DeviceType

    cuda = device.type == "cuda"
    events = [e for e in prof.events() if e.device_type == DeviceType.CPU]
    total = sum(e.self_device_time_total if cuda else e.self_cpu_time_total for e in events)
    cpu_total = sum(e.self_cpu_time_total for e in events)
    averages = [e for e in prof.key_averages() if e.device_type == DeviceType.CPU]
    averages.sort(key=lambda e: e.self_device_time_total if cuda else e.self_cpu_time_total, reverse=True)
    tops = [
        {
            "op": e.key,
            "self_us": e.self_device_time_total if cuda else e.self_cpu_time_total,
            "calls": e.count,
        }
        for e in averages[:top]
    ]
    for t in tops:
        t["share"] = t["self_us"] / total if total else None
    hooks = [e for e in events if e.name == HOOK]
    summary: dict[str, Any] = {
        "total_us": total,
        "cpu_total_us": cpu_total,
        "top_ops": tops,
        "hook_calls": len(hooks),
    }
    if hooks:
        hook_us = sum(e.device_time_total if cuda else e.cpu_time_total for e in hooks)
        summary.update(
            hook_us=hook_us,
            hook_share=hook_us / total if total else None,
            hook_cpu_share=sum(e.cpu_time_total for e in hooks) / cpu_total if cpu_total else None,
            ops_per_call=sorted({len(e.cpu_children) for e in hooks}),
            ops=[c.name for c in hooks[0].cpu_children],
            kernels_per_call=(
                sum(len(d.kernels) for e in hooks for d in _descendants(e)) / len(hooks) if cuda else None
            ),
        )
    return summary


def _descendants(event) -> Iterator:
    for child in event.cpu_children:
        yield child
        yield from _descendants(child)


def section_profile(run: Run, setup: Setup, shape: str) -> None:
    """Profile a few decode steps of ``profile_rows`` rows: the base model, then the soup."""
    from torch.profiler import ProfilerActivity, profile

    sizes = run.sizes
    mixes = mix_tensor(simplex_lattice(len(setup.adapters), 4))  # (15, 3)
    ids = setup.input_ids[:1].repeat(sizes.profile_rows, 1).to(run.device)  # one prompt, every row a mix
    mask = torch.ones_like(ids)
    weights = mixes[torch.arange(sizes.profile_rows) % len(mixes)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device.type == "cuda" else [])

    def timed(go: Callable[[], Any]) -> tuple[dict, float]:
        go()  # warm-up
        sync(run.device)
        start = time.perf_counter()
        with profile(activities=activities) as prof:
            go()
            sync(run.device)
        return profile_summary(prof, run.device), time.perf_counter() - start

    base, base_wall = timed(lambda: greedy(setup.model, ids, mask, sizes.profile_tokens))
    soup = load_soup(setup, list(setup.adapters))
    try:
        with labelled_hooks(setup.model, soup.target_modules, HOOK) as wrapped, soup.mixed(weights):
            mixed, soup_wall = timed(lambda: greedy(setup.model, ids, mask, sizes.profile_tokens))
    finally:
        soup.close()
    rows = [
        {"method": "base", "wall_s": base_wall, **base, "of_ceiling": 1.0},
        {"method": "soup", "wall_s": soup_wall, **mixed, "of_ceiling": base_wall / soup_wall},
    ]
    report = {
        "benchmark": "profile",
        "model": setup.label,
        "batch_rows": sizes.profile_rows,
        "new_tokens": sizes.profile_tokens,
        "hooks_labelled": wrapped,
        "time_unit": "us of CUDA kernel time" if run.device.type == "cuda" else "us of CPU op time",
        "soup_overhead": mixed["total_us"] / base["total_us"] - 1 if base["total_us"] else None,
        "note": None if wrapped else "the soup adds no forward hooks any more: update labelled_hooks",
        **environment(run.device, setup.dtype),
        "rows": rows,
    }
    run.write(f"profile-{shape}", report)


# ------------------------------------------------------------------------------------------------
# (f) optional rows: the scheduler and decoding-time mixing, where they exist


def _sessions(scheduler, prompts: list[str], mixes: list[dict], sampling) -> tuple[float, float | None, list]:
    """Submit every (prompt, mix) at the same moment; (seconds until the last ends, seconds until the
    slowest first streamed token, completions)."""
    firsts: dict[int, float] = {}
    start = time.perf_counter()

    def first(i: int) -> Callable[[str], None]:
        return lambda text: firsts.setdefault(i, time.perf_counter() - start)

    tickets = [
        scheduler.submit(p, m, sampling, on_text=first(i))
        for i, (p, m) in enumerate(zip(prompts, mixes, strict=True))
    ]
    outs = [t.result(timeout=600) for t in tickets]
    return time.perf_counter() - start, max(firsts.values(), default=None), outs


def scheduler_rows(soup: Soup, prompts: list[str], mixes: list[dict], tokens: int) -> list[dict]:
    """1, 3 and 6 sessions at the same moment, each its own prompt and mix, ``tokens`` greedy tokens:
    through ``explorer.scheduler.Scheduler`` (their rows share batches) and one after another
    (``explorer.sampling.generate``). Seconds to the slowest first streamed token and to the end."""
    from explorer.sampling import SamplingConfig, generate
    from explorer.scheduler import Scheduler

    sampling = SamplingConfig(max_new_tokens=tokens)
    scheduler = Scheduler(soup)
    rows = []
    try:
        _sessions(scheduler, prompts[:1], mixes[:1], sampling)  # warm-up: starts the scheduler's thread
        for users in (1, 3, 6):
            together, first, outs = _sessions(scheduler, prompts[:users], mixes[:users], sampling)
            start = time.perf_counter()
            for i in range(users):
                generate(soup, [prompts[i]], mixes[i], config=sampling)
            rows.append(
                {
                    "method": f"scheduler_{users}_users",
                    "status": "ok",
                    "users": users,
                    "seconds": together,  # until the slowest session ends
                    "first_token_max_s": first,
                    "one_after_another_s": time.perf_counter() - start,
                    "new_tokens": [len(o.token_ids) for o in outs],
                }
            )
    finally:
        scheduler.close()
    for r in rows:
        r["x_one_user"] = r["seconds"] / rows[0]["seconds"]
        r["of_ceiling"] = None
    return rows


def mod_rows(soup: Soup, prompts: list[str], mixes: list[dict], tokens: int) -> list[dict]:
    """Decoding-time mixing (MOD) against the weight soup on the same rows, both through the
    scheduler (``Scheduler.generate(method=...)``); tokens generated per second, and the time
    relative to the soup."""
    from explorer.scheduler import Scheduler

    scheduler = Scheduler(soup)
    rows = []
    try:
        for method in ("soup", "mod"):
            out: list = []

            def run(m: str = method, out: list = out) -> None:
                out.append(scheduler.generate(prompts, mixes, config=SamplingConfig(tokens), method=m))

            seconds = time_call(run, soup.device)
            generated = sum(len(ids) for ids in out[-1].token_ids)
            rows.append({"method": method, "status": "ok", "seconds": seconds, "tokens": generated})
    finally:
        scheduler.close()
    for r in rows:
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["x_soup_time"] = r["seconds"] / rows[0]["seconds"]
        r["of_ceiling"] = None
    return rows


def section_optional(run: Run, setup: Setup, shape: str) -> None:
    """The scheduler and MOD rows, each only where its feature exists (another session builds them)."""
    vocab = setup.model.config.vocab_size
    setup.tokenizer = word_tokenizer(vocab, run.tmp / "tokenizer")
    gen = torch.Generator().manual_seed(1)
    prompts = [
        " ".join(f"t{i}" for i in torch.randint(3, vocab, (24,), generator=gen).tolist()) for _ in range(6)
    ]
    names = list(setup.adapters)
    mixes = [dict(zip(names, m.tolist(), strict=True)) for m in check_mixes(len(names), 6)]
    soup = load_soup(setup, names)
    rows: list[dict] = []
    try:
        for what, go in (("scheduler", scheduler_rows), ("mod", mod_rows)):
            if what == "scheduler" and importlib.util.find_spec("explorer.scheduler") is None:
                rows.append({"method": what, "status": "absent (no explorer.scheduler)", "of_ceiling": None})
                continue
            try:
                rows += go(soup, prompts, mixes, run.sizes.user_tokens)
            except Exception as err:  # an API that changed under us must not stop the suite
                rows.append({"method": what, "status": f"error: {err!r}"[:400], "of_ceiling": None})
    finally:
        soup.close()
        setup.tokenizer = None
    report = {"benchmark": "scheduler_and_mod", "model": setup.label, **environment(run.device, setup.dtype)}
    run.write(f"optional-{shape}", {**report, "rows": rows})


# ------------------------------------------------------------------------------------------------
# imports


def third_party(name: str) -> bool:
    """Whether module ``name`` is a third-party package's (not the standard library, not this
    repository, not a private extension module such as ``_cython_3_1_4``)."""
    top = name.split(".")[0]
    private = top.startswith("_") or top == "cython_runtime"
    return bool(top) and not private and top not in sys.stdlib_module_names and top not in REPO_MODULES


def imported_names(path: Path) -> set[str]:
    """Top-level names of every absolute import in a source file, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def core_dependency_modules() -> set[str]:
    """Import names of explorer's own (non-extra) dependencies, e.g. yaml, xarray; empty when the
    project is not installed (the copied tree on the device machine)."""
    try:
        requires = importlib.metadata.requires("pareto-soup-explorer") or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    dists = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
    dists = {re.sub(r"[-_.]+", "-", d) for d in dists}
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(re.sub(r"[-_.]+", "-", o).lower() in dists for o in owners)
    }


def import_check(extra_allowed: set[str] | None = None) -> dict:
    """What this process imported, judged: the suite's own files (bench/) may import only ALLOWED
    third-party packages, explorer's modules also explorer's core dependencies; no FORBIDDEN module
    may be loaded at all unless a loaded explorer core module imports it (xarray); no explorer.app."""
    core = core_dependency_modules() if extra_allowed is None else extra_allowed
    loaded = {}
    for name, module in list(sys.modules.items()):
        path = Path(getattr(module, "__file__", None) or "/")
        if path.suffix == ".py" and path.is_relative_to(REPO) and ".venv" not in path.parts:
            loaded[name] = path
    violations, core_imports = [], set()
    for name, path in sorted(loaded.items()):
        outside = {n for n in imported_names(path) if third_party(n)}
        in_core = path.is_relative_to(REPO / "explorer")
        if in_core:
            core_imports |= outside
        bad = outside - ALLOWED - (core if in_core else set())
        violations += [f"{path.relative_to(REPO)} imports {n}" for n in sorted(bad)]
        if name.startswith("explorer.app"):
            violations.append(f"{name} (the app) was loaded")
    present = sorted({n.split(".")[0] for n in sys.modules if third_party(n)})
    violations += [f"{n} was loaded" for n in present if n in FORBIDDEN and n not in core_imports]
    return {
        "ok": not violations,
        "violations": violations,
        "allowed": sorted(ALLOWED),
        "repo_modules_loaded": sorted({str(p.relative_to(REPO)) for p in loaded.values()}),
        "modules": present,  # every third-party top-level module in sys.modules at the end
    }


# ------------------------------------------------------------------------------------------------
# the run


def section(run: Run, name: str, go: Callable[[], None]) -> None:
    """Run one section, timed; past the time budget it is skipped, an error is recorded and the
    suite goes on (the JSON of every finished section is already written)."""
    start = run.elapsed()
    entry: dict[str, Any] = {"section": name, "start_s": start}
    if start > run.budget_s:
        entry["status"] = f"skipped: {start:.0f} s elapsed, budget {run.budget_s:.0f} s"
    else:
        print(f"[{start:6.1f} s] {name}", flush=True)
        try:
            go()
            entry["status"] = "ok"
        except Exception as err:
            traceback.print_exc()
            entry["status"] = f"error: {err!r}"[:500]
    entry["seconds"] = run.elapsed() - start
    run.sections.append(entry)
    free_memory(run.device)


def shape_sections(run: Run, shape: str, only: set[str], sections: list[tuple[str, Callable]]) -> None:
    """Build ``shape`` once (in the run's dtype) for the ``sections`` that ask for it."""
    wanted = [(n, go) for n, go in sections if n in only]
    if not wanted:
        return
    holder: dict[str, Setup] = {}
    prompts = max(run.sizes.frontier[1], run.sizes.grid[1], run.sizes.profile_rows, 4)
    section(
        run,
        f"build {shape}",
        lambda: holder.update(setup=build_setup(run, shape, run.dtype, prompts=prompts)),
    )
    if "setup" not in holder:
        return
    for name, go in wanted:
        section(run, f"{name} {shape}", lambda go=go: go(run, holder["setup"], shape))
    holder.clear()
    free_memory(run.device)


def goals(run: Run) -> list[dict]:
    """The issue's targets, read from the reports (informative on a CPU)."""
    out = []

    def row(report: str, method: str) -> dict:
        rows = run.reports.get(report, {}).get("rows", [])
        return next((r for r in rows if r.get("method") == method), {})

    def add(what: str, value, target: str, met: bool | None) -> None:
        out.append({"goal": what, "value": value, "target": target, "met": met})

    for shape, grid in (("llama-7b", "grid-llama-7b"), ("llama-1b", "frontier-llama-1b")):
        soup, cat = row(f"mix_switch-{shape}", "soup"), row(f"mix_switch-{shape}", "peft_cat")
        if soup and cat:
            add(f"{shape} switch ms", soup["ms"], "< 1", soup["ms"] < 1)
            add(f"{shape} PEFT cat / soup switch", cat["x_soup"], ">= 1000", cat["x_soup"] >= 1000)
        g = row(grid, "soup")
        if "seconds" in g:
            add(f"{shape} soup of base tokens/s", g["of_ceiling"], ">= 0.85", g["of_ceiling"] >= 0.85)
            for method, target in (("merge_each", 10), ("peft_mixed", 2)):
                other = row(grid, method)
                if "seconds" in other:
                    x = other["x_soup_time"]
                    add(f"{shape} {method} time / soup", x, f">= {target}", x >= target)
            if g.get("peak_vs_base") is not None:
                add(f"{shape} soup peak / base", g["peak_vs_base"], "< 1.02", g["peak_vs_base"] < 1.02)
    return out


def summary(run: Run) -> str:
    """One screen: correctness, switches, throughput, the profile, optional rows, goals."""
    lines = []
    env = environment(run.device, run.dtype)
    lines.append(
        f"GPU suite on {env['hardware']}, {env['dtype']}, {run.elapsed():.0f} s{' (tiny)' if run.tiny else ''}"
    )
    for r in run.reports.get("correctness", {}).get("rows", []):
        if r.get("method") == "logits_soup_vs_merged" and "tolerance" in r:
            lines.append(
                f"  logits {r['dtype']}: soup vs merged {r['soup_vs_merged']:.2e} (tol {r['tolerance']:.1e}), "
                f"vs fp32 {r['soup_vs_float32']:.2e} (merged {r['merged_vs_float32']:.2e}), mixes move "
                f"{r['mix_effect_min']:.1e}+ {'ok' if r['ok'] else 'FAIL'}"
            )
        elif r.get("method") == "batch_vs_alone":
            lines.append(
                f"  16-row batch {r['dtype']}: {r['rows_differ']}/{r['rows']} rows differ "
                f"(steps {r['first_differing_steps']}), logits vs alone {r['logits_vs_alone_max']:.1e} "
                f"{'ok' if r['ok'] else 'FAIL'}"
            )
    for shape in ("llama-1b", "llama-7b"):
        sw = run.reports.get(f"mix_switch-{shape}")
        if sw:
            cells = ", ".join(f"{r['method']} {r['ms']:.3g} ms ({r['x_soup']:.0f}x)" for r in sw["rows"])
            lines.append(f"  switch {shape}: {cells}")
    for name in ("frontier-llama-1b", "frontier-llama-7b", "grid-llama-7b"):
        rep = run.reports.get(name)
        if not rep:
            continue
        lines.append(
            f"  {name} ({rep['mixes']} mixes x {rep['prompts']} prompts x {rep['new_tokens']} tokens, batch {rep['batch_size']}):"
        )
        cols = [
            ("method", "method", ""),
            ("tokens_per_s", "tokens/s", ".0f"),
            ("of_ceiling", "x base", ".2f"),
            ("x_soup_time", "time/soup", ".2f"),
            ("peak_vs_base", "peak/base", ".3f"),
        ]
        lines += ["    " + t for t in table(rep["rows"], cols).splitlines()]
    prof = run.reports.get("profile-llama-7b")
    if prof:
        soup = prof["rows"][1]
        top = ", ".join(f"{t['op']} {t['share']:.0%}" for t in soup["top_ops"][:4] if t["share"] is not None)
        share, overhead = soup.get("hook_share"), prof["soup_overhead"] or 0.0
        lines.append(
            f"  profile: hook {share:.0%} of op time, {soup.get('ops_per_call')} ops/call, soup overhead "
            f"{overhead:+.0%}; top: {top}"
            if share is not None
            else f"  profile: {prof.get('note')}"
        )
    for r in run.reports.get("optional-llama-7b", {}).get("rows", []):
        line = f"  {r['method']}: {r.get('status')}"
        if "users" in r:
            line += f", slowest {r['seconds']:.2f} s ({r['x_one_user']:.2f}x one user; one after another "
            line += f"{r['one_after_another_s']:.2f} s), slowest first token {r['first_token_max_s']:.2f} s"
        elif "seconds" in r:
            line += f", {r['seconds']:.2f} s ({r['x_soup_time']:.2f}x the soup)"
        lines.append(line)
    imports = run.reports.get("imports")
    if imports:
        lines.append(
            f"  imports: {'ok' if imports['ok'] else 'VIOLATIONS ' + '; '.join(imports['violations'])}"
        )
    for shape in ("llama-7b", "llama-1b"):
        cells = [
            f"{g['goal'].removeprefix(shape + ' ')} {g['value']:.3g} ({g['target']}) {'met' if g['met'] else 'NOT met'}"
            for g in run.reports.get("suite", {}).get("goals", [])
            if g["goal"].startswith(shape)
        ]
        if cells:
            lines.append(f"  goals {shape}: " + "; ".join(cells))
    bad = [s for s in run.sections if s["status"] != "ok"]
    lines += [f"  section {s['section']}: {s['status']}" for s in bad]
    return "\n".join(lines)


SECTIONS = ("correctness", "switch", "frontier", "grid", "profile", "optional", "imports")


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = (
        getattr(torch, args.dtype)
        if args.dtype
        else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.also_import:  # a canary for the import check (the tests use it)
        importlib.import_module(name)
    if args.tiny and device.type == "cpu":
        # tiny matrices gain nothing from threads, and on 2 shared cores a linear that waits for a
        # busy thread took 6 ms instead of 20 us (measured): 30 s of the dry run's 50 s
        torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    only = set(args.only or SECTIONS)
    with tempfile.TemporaryDirectory(prefix="pse-gpu-suite-") as tmp:
        run = Run(
            out, device, dtype, TINY if args.tiny else FULL, args.tiny, args.budget_s, args.batch, Path(tmp)
        )
        if "correctness" in only:
            section(run, "correctness llama-1b", lambda: section_correctness(run))
        shape_sections(run, "llama-1b", only, [("switch", mix_switch), ("frontier", frontier)])
        shape_sections(
            run,
            "llama-7b",
            only,
            [
                ("switch", mix_switch),
                ("frontier", frontier),
                ("grid", big_grid),
                ("profile", section_profile),
                ("optional", section_optional),
            ],
        )
        check = import_check()
        if "imports" in only:
            run.write(
                "imports", {"benchmark": "imports", "device": str(device), "model": None, **check, "rows": []}
            )
        failed = [s for s in run.sections if s["status"] != "ok"]
        report = {
            "benchmark": "suite",
            "model": "random llama-1b, llama-7b" + (" (tiny)" if run.tiny else ""),
            **environment(device, dtype),
            "tiny": run.tiny,
            "wall_s": run.elapsed(),
            "sections": run.sections,
            "rows": [],
        }
        report["goals"] = goals(run)
        run.write("suite", report)
        print("\n" + summary(run), flush=True)
    if args.check_imports and not check["ok"]:
        print("import check failed: " + "; ".join(check["violations"]), file=sys.stderr)
        return 2
    return 1 if failed else 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the JSON files")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument(
        "--dtype", default=None, help="throughput dtype (default: bfloat16 on CUDA, float32 on CPU)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny shapes: the CPU dry run")
    p.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    p.add_argument("--batch", type=int, default=None, help="rows per generate call in the grids")
    p.add_argument("--budget-s", type=float, default=400.0, help="skip sections starting later than this")
    p.add_argument(
        "--check-imports",
        action="store_true",
        help="exit 2 if a module outside the allowed ones was imported",
    )
    p.add_argument("--also-import", nargs="*", default=[], help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    sys.exit(main(make_parser().parse_args()))
