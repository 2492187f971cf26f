"""What the benchmarks share: the models they run on, their adapters, timers and memory meters.

A setup is the demo (SmolLM2-135M-Instruct with the committed adapters, real prompts) or a
randomly initialised Llama-style model of a real shape (``smollm2``, ``llama-1b``, ``llama-7b``)
with random rank-r LoRA adapters of the demo's kind (q_proj, v_proj) and random prompt tokens.
Random weights make no sense as text but cost exactly what trained ones cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from explorer.soup import Soup

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# Llama-style configurations of real models (shapes only; the weights are random).
SHAPES = {
    "smollm2": dict(  # SmolLM2-135M
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "llama-1b": dict(  # Llama-3.2-1B
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "llama-7b": dict(  # Llama-2-7B
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),
}
ADAPTER_NAMES = ("positive", "concise", "readable")


@dataclass
class Setup:
    """A base model on its device, adapter folders for it, and a batch of prompts as token ids."""

    label: str
    model: torch.nn.Module
    tokenizer: object | None
    adapters: dict[str, str]
    input_ids: torch.Tensor  # (prompts, T)
    attention_mask: torch.Tensor  # (prompts, T)
    tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def model_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


def pick_device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def pick_dtype(name: str | None, device: torch.device) -> torch.dtype:
    if name:
        return getattr(torch, name)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def write_random_adapter(
    model: torch.nn.Module, folder: Path, *, seed: int, r: int = 8, targets=("q_proj", "v_proj")
) -> Path:
    """A PEFT LoRA adapter folder with random factors for ``model``'s ``targets`` (no model copy)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and isinstance(module, torch.nn.Linear):
            a = torch.randn(r, module.in_features, generator=gen) / module.in_features**0.5
            b = torch.randn(module.out_features, r, generator=gen) * 0.02
            tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
            tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets), task_type="CAUSAL_LM").save_pretrained(
        folder
    )
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def random_setup(
    shape: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    prompts: int,
    prompt_tokens: int = 32,
    layers: int | None = None,
) -> Setup:
    """A random model of ``shape`` on ``device`` and three random rank-8 adapters on disk.

    ``layers`` keeps only that many decoder layers (module shapes unchanged), for benchmarks of
    per-module work on a machine too small for the whole model.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    kwargs = {**SHAPES[shape], **({"num_hidden_layers": layers} if layers else {})}
    config = LlamaConfig(**kwargs, max_position_embeddings=2048, pad_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its dtype on its device: no float32 copy of a 7B model
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    tmp = tempfile.TemporaryDirectory(prefix="pse-bench-")
    adapters = {
        n: str(write_random_adapter(model, Path(tmp.name) / n, seed=i + 1))
        for i, n in enumerate(ADAPTER_NAMES)
    }
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, config.vocab_size, (prompts, prompt_tokens), generator=gen)
    label = f"random {shape}" + (f" ({layers} layers)" if layers else "")
    return Setup(label, model, None, adapters, ids, torch.ones_like(ids), tmp)


def demo_setup(device: torch.device, dtype: torch.dtype, *, prompts: int) -> Setup:
    """The demo: SmolLM2-135M-Instruct, the committed adapters, held-out prompts (chat template)."""
    from explorer.demo import demo_adapters, demo_base
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import encode_prompts
    from explorer.soup import load_base

    model, tokenizer = load_base(demo_base(), device=device, dtype=dtype)
    enc = encode_prompts(tokenizer, read_prompts(HELDOUT)[:prompts])
    return Setup(
        "demo SmolLM2-135M", model, tokenizer, demo_adapters(), enc["input_ids"], enc["attention_mask"]
    )


def make_setup(
    model: str, device: torch.device, dtype: torch.dtype, *, prompts: int, layers: int | None = None
) -> Setup:
    if model == "demo":
        return demo_setup(device, dtype, prompts=prompts)
    return random_setup(model, device, dtype, prompts=prompts, layers=layers)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device and --dtype, as every benchmark takes them."""
    p.add_argument("--model", default="demo", choices=["demo", *SHAPES])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")


def load_soup(setup: Setup, names) -> Soup:
    """The gated soup of ``names`` over the setup's model (its hooks on until ``close()``)."""
    from explorer.adapters import read_adapter
    from explorer.soup import Soup

    return Soup(setup.model, setup.tokenizer, [read_adapter(n, setup.adapters[n]) for n in names])


def load_peft(setup: Setup, names):
    """A PeftModel wrapping the setup's model with every adapter of ``names`` loaded under its name.

    ``model.unload()`` gives the bare base model back (store it in ``setup.model``).
    """
    from peft import PeftModel

    model = PeftModel.from_pretrained(setup.model, setup.adapters[names[0]], adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(setup.adapters[n], adapter_name=n)
    return model.eval()


def peft_switch(model, names, mixes, combination: str):
    """A function that switches the PEFT model ``model`` to the next of ``mixes`` (an iterator of
    weight lists in ``names`` order) as a PEFT user does: add_weighted_adapter(``combination``) +
    set_adapter + delete the previous mix's adapter."""
    state: dict = {"k": 0, "old": None}

    def switch() -> None:
        new = f"mix{state['k']}"
        state["k"] += 1
        model.add_weighted_adapter(names, list(next(mixes)), new, combination_type=combination)
        model.set_adapter(new)
        if state["old"] is not None:
            model.delete_adapter(state["old"])
        state["old"] = new

    return switch


class Merge:
    """Merging as a rewarded-soups user does: W = W0 + B_cat diag(g) A_cat written into every
    target module's weight, from a kept copy of W0 (the lightest form: one addmm per module)."""

    def __init__(self, setup: Setup, names):
        self.setup = setup
        self.soup = load_soup(setup, names)
        self.soup.close()  # only its stacked factors are used: the merge writes the weights
        self.modules = {m: setup.model.get_submodule(m) for m in self.soup.target_modules}
        self.originals = {m: mod.weight.detach().clone() for m, mod in self.modules.items()}

    def __call__(self, weights: torch.Tensor) -> None:
        """Merge the mix ``weights`` (N,), columns in the order of ``names``."""
        w = weights.to(self.setup.device, self.setup.dtype)
        with torch.no_grad():
            for m, mod in self.modules.items():
                stack = self.soup.stacks[m]
                gate = w[list(stack.slots)]  # (R,)
                mod.weight.copy_(self.originals[m]).addmm_(stack.B, gate[:, None] * stack.A)

    def restore(self) -> None:
        with torch.no_grad():
            for m, mod in self.modules.items():
                mod.weight.copy_(self.originals[m])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, *, repeat: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in seconds (the device synchronized)."""
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PeakMemory:
    """Peak memory of a block: CUDA max allocated on a GPU, the process's peak RSS on the CPU (bytes)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _reset_peak_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = _peak_rss()


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


LOAD_AT_START = os.getloadavg()  # 1, 5 and 15 min load averages when the bench started


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    """The machine and libraries, and the load average when the bench started (a figure counts
    from an idle machine only)."""
    import peft
    import transformers

    return {
        "device": str(device),
        "hardware": hardware(device),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in LOAD_AT_START],
    }


def write_json(name: str, report: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(report, indent=1))
    return out


def finish(
    name: str, title: str, rows: list[dict], columns: list[tuple[str, str, str]], report: dict
) -> dict:
    """Print ``title`` and the table of ``rows``; write ``report`` with the rows to results/``name``."""
    print(f"\n{title}")
    print(table(rows, columns))
    report = {**report, "rows": rows}
    print(f"wrote {write_json(name, report)}")
    return report


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain text table: ``columns`` are (key, header, format)."""
    cells = [[h for _, h, _ in columns]] + [
        [("" if r.get(k) is None else format(r[k], f)) for k, _, f in columns] for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
