"""A soup: one base causal LM and N LoRA adapters, mixed exactly in weight space per batch row.

For a target module with base weight W0 and adapters i = 1..N (rank r_i, scale s_i), the
factors are stacked once at load time along the rank dimension, R = sum_i r_i:

    A_cat = [s_1 A_1; ...; s_N A_N]   (R, in)
    B_cat = [B_1 ... B_N]             (out, R)

Row b of a batch carries weights w_b (N,); its gate g_b (R,) repeats w_{b,i} over adapter
i's r_i slots, and the module computes

    y_b = W0 x_b + B_cat @ (g_b * (A_cat @ x_b))  =  (W0 + sum_i w_{b,i} s_i B_i A_i) x_b

which is exactly the rewarded soup W(w_b). Changing the weights rewrites the gates only
(a few tiny tensors, independent of model size); nothing is merged. The base model is left
untouched: the low-rank path is a forward hook on each target module, removed by ``close()``.

The mix travels with the call: ``with soup.mixed(w): soup.model(...)`` sets the gates for the
forward passes of *this thread* only, so several threads (the scheduler, a CLI call, a test) can
run the model at once, each with its own mixes, and nothing is locked. ``set_weights`` sets the
default mix that a thread outside any ``mixed`` block computes.
The stacked factors of each module are a ``explorer.layer.StackedLora``; this file wires them
into the model and keeps the gates.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.pytorch_utils import Conv1D

from explorer.adapters import LoraAdapter, read_adapter
from explorer.errors import SoupError
from explorer.layer import StackedLora
from explorer.mix import MAX_WEIGHT, check_mix
from explorer.runtime import resolve_device, resolve_dtype

# Weights as the user gives them: one mix (name -> weight), several mixes, or a (rows, N) tensor
# whose columns follow ``Soup.names``.
Weights = Mapping[str, float] | Sequence[Mapping[str, float]] | torch.Tensor


def module_shape(module: nn.Module) -> tuple[int, int] | None:
    """(out, in) of a Linear or a GPT-2 Conv1D (whose weight is stored transposed), else None."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if isinstance(module, Conv1D):
        return module.nf, module.nx
    return None


class Soup:
    """A base causal LM with N LoRA adapters stacked into one gated adapter per target module.

    Use ``Soup.load(base, {"name": folder, ...})`` to read from disk, then the ``mixed`` context
    manager (or ``set_weights``) before calling ``soup.model`` (or ``explorer.sampling.generate``).
    """

    def __init__(self, model: nn.Module, tokenizer, adapters: Sequence[LoraAdapter]):
        names = [a.name for a in adapters]
        if not adapters:
            raise SoupError("a soup needs at least one adapter; pass --adapter NAME=FOLDER")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SoupError(f"two adapters are named {duplicates}: give each adapter its own name")
        self.model: Any = model  # a transformers causal LM
        self.tokenizer: Any = tokenizer
        self.base_path: Path | None = None  # set by Soup.load; part of result cache keys
        # The mix of a forward pass is per thread (``mixed``); this lock only serializes callers
        # that share the soup-wide default mix of ``set_weights``.
        self.lock = threading.RLock()
        self._local = threading.local()  # .state: (weights (rows, N), gates) of this thread's ``mixed``
        self.adapters: dict[str, LoraAdapter] = {a.name: a for a in adapters}
        self.names: tuple[str, ...] = tuple(names)
        self._check_targets()  # validate everything before touching the model
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        targets = sorted({m for a in adapters for m in a.modules})
        self.stacks: dict[str, StackedLora] = {
            m: StackedLora.build(m, adapters, device=self.device, dtype=self.dtype) for m in targets
        }
        self._gates: dict[tuple[int, ...], torch.Tensor] = {}
        self._weights = torch.zeros(1, len(self.names), dtype=torch.float64)
        self.set_weights(self._weights)
        self._handles = [
            model.get_submodule(m).register_forward_hook(self._hook(stack))
            for m, stack in self.stacks.items()
        ]

    # ----------------------------------------------------------------------------------------
    # loading

    @classmethod
    def load(
        cls,
        base: str | Path,
        adapters: Mapping[str, str | Path],
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        allow_pickle: bool = False,
    ) -> Soup:
        """Load the base model folder and each ``name -> adapter folder``; adapters are read and
        validated first, so a bad adapter fails before the (slow) base model load."""
        read = [read_adapter(name, path, allow_pickle=allow_pickle) for name, path in adapters.items()]
        model, tokenizer = load_base(base, device=device, dtype=dtype)
        soup = cls(model, tokenizer, read)
        soup.base_path = Path(base).expanduser().resolve()
        return soup

    def _check_targets(self) -> None:
        """Every adapted module must exist in the base model, be linear, and have matching shapes."""
        for adapter in self.adapters.values():
            for module_name, factors in adapter.modules.items():
                try:
                    module = self.model.get_submodule(module_name)
                except AttributeError:
                    raise SoupError(
                        f"adapter '{adapter.name}' adapts module '{module_name}', which the base model "
                        f"({type(self.model).__name__}) does not have: was it trained on a different base model?"
                    ) from None
                shape = module_shape(module)
                if shape is None:
                    raise SoupError(
                        f"adapter '{adapter.name}' adapts '{module_name}', a {type(module).__name__}; only "
                        "Linear and Conv1D layers can be mixed as a linear delta"
                    )
                expected = (factors.B.shape[0], factors.A.shape[1])
                if shape != expected:
                    raise SoupError(
                        f"adapter '{adapter.name}' targets {module_name} of shape {expected[0]}x{expected[1]} "
                        f"(out x in) but the base model has {shape[0]}x{shape[1]}: was it trained on a "
                        "different base model?"
                    )

    def close(self) -> None:
        """Remove the hooks: the base model computes W0 again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ----------------------------------------------------------------------------------------
    # weights

    @property
    def weights(self) -> torch.Tensor:
        """The weights this thread computes, (rows, N) float64 on the CPU; columns follow ``names``:
        the innermost ``mixed`` block's, else the default of ``set_weights``."""
        return self._state()[0].clone()

    def _state(self) -> tuple[torch.Tensor, dict[tuple[int, ...], torch.Tensor]]:
        state = getattr(self._local, "state", None)
        return state if state is not None else (self._weights, self._gates)

    def weights_tensor(self, weights: Weights) -> torch.Tensor:
        """Validate ``weights`` and return them as a (rows, N) float64 CPU tensor.

        A mapping gives one row; a sequence of mappings gives one row each; a tensor of shape
        (N,) or (rows, N) is taken as is. Any finite real numbers are allowed: negative and
        > 1 weights extrapolate, all zeros is the base model.
        """
        if isinstance(weights, Mapping):
            rows: Any = [self._row(weights)]
        elif isinstance(weights, torch.Tensor):
            rows = weights.detach().to("cpu", torch.float64)
            rows = rows.unsqueeze(0) if rows.dim() == 1 else rows
            if rows.dim() != 2 or rows.shape[1] != len(self.names):
                raise SoupError(
                    f"weights of shape {tuple(weights.shape)} given, expected (rows, {len(self.names)}) "
                    f"with columns {list(self.names)}"
                )
        else:
            rows = [self._row(w) for w in weights]
            if not rows:
                raise SoupError("an empty list of mixes was given; give at least one mix")
        t = torch.as_tensor(rows, dtype=torch.float64) if isinstance(rows, list) else rows
        if not torch.isfinite(t).all():
            raise SoupError(f"weights must be finite numbers, got {t.tolist()}")
        if t.numel() and t.abs().max() > MAX_WEIGHT:
            raise SoupError(
                f"weights beyond +-{MAX_WEIGHT:g} overflow the model's numbers (got up to "
                f"{t.abs().max().item():g}): use weights of a few units at most"
            )
        return t

    def _row(self, mix: Mapping[str, float]) -> list[float]:
        return list(check_mix(mix, self.names).values())

    def gates(self, weights: torch.Tensor) -> dict[tuple[int, ...], torch.Tensor]:
        """The gates of validated ``weights`` (rows, N): for each distinct slot layout of the
        stacks, the (rows, R) gate on the soup's device and dtype."""
        on_device = weights.to(self.device, self.dtype)
        gates = {}
        for stack in self.stacks.values():
            if stack.slots not in gates:
                index = torch.tensor(stack.slots, device=self.device)
                gates[stack.slots] = on_device.index_select(1, index)  # (rows, R)
        return gates

    def set_weights(self, weights: Weights) -> None:
        """Set the default mix (what a thread outside ``mixed`` computes): one row for every
        batch row, or one row per batch row.

        Costs a few small tensor ops (microseconds), whatever the model size: only the
        gates change, never a model weight.
        """
        w = self.weights_tensor(weights)  # (rows, N)
        self._weights, self._gates = w, self.gates(w)

    @contextlib.contextmanager
    def mixed(self, weights: Weights) -> Iterator[Soup]:
        """Within the block this thread's forward passes compute ``weights`` (one mix, or one per
        batch row); other threads are not affected, and the previous mix comes back after."""
        w = self.weights_tensor(weights)
        previous = getattr(self._local, "state", None)
        self._local.state = (w, self.gates(w))
        try:
            yield self
        finally:
            self._local.state = previous

    def as_dict(self, row: int = 0) -> dict[str, float]:
        """Row ``row`` of the current weights as ``{name: weight}``."""
        return dict(zip(self.names, self._state()[0][row].tolist(), strict=True))

    # ----------------------------------------------------------------------------------------
    # the mixed computation

    def _hook(self, stack: StackedLora) -> Callable[[nn.Module, tuple, torch.Tensor], torch.Tensor]:
        def add_lora(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            x = args[0]  # (B, T, in)
            gate = self._state()[1][stack.slots]  # (rows, R): this thread's mix, read at call time
            rows, batch = gate.shape[0], x.shape[0]
            if rows != 1 and rows != batch:
                raise SoupError(
                    f"the soup holds {rows} mixes but the batch has {batch} rows: give one mix, or one per row"
                )
            return output + stack.forward(x, gate).to(output.dtype)  # (B, T, out)

        return add_lora

    def delta(self, module_name: str, weights: Mapping[str, float]) -> torch.Tensor:
        """The mixed weight delta sum_i w_i s_i B_i A_i of one module, (out, in) float64 on CPU."""
        if module_name not in self.stacks:
            raise SoupError(f"no adapter adapts module '{module_name}'")
        return self.stacks[module_name].delta(self.weights_tensor(weights)[0])

    @property
    def target_modules(self) -> tuple[str, ...]:
        return tuple(self.stacks)

    @property
    def total_rank(self) -> int:
        """The largest stacked rank R over modules."""
        return max(s.rank for s in self.stacks.values())

    def __repr__(self) -> str:
        ranks = ", ".join(f"{n} (r={a.rank})" for n, a in self.adapters.items())
        return (
            f"Soup({type(self.model).__name__}, {len(self.stacks)} target modules, adapters: {ranks}, "
            f"device={self.device}, dtype={self.dtype})"
        )


def load_base(
    path: str | Path, *, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
):
    """Load a causal LM and its tokenizer from a local Hugging Face folder, in eval mode.

    Returns (model, tokenizer). The tokenizer pads on the left (batched generation).
    """
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.exists() else "has no config.json"
        raise SoupError(
            f"base model folder {folder} {what}; give a local Hugging Face model folder "
            "(saved with save_pretrained), or run `explorer demo` for the embedded SmolLM2"
        )
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dt)
    except (OSError, ValueError) as err:
        raise SoupError(f"cannot load the base model from {folder}: {err}") from err
    model.to(dev).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prepare_tokenizer(tokenizer)
    return model, tokenizer


def prepare_tokenizer(tokenizer) -> None:
    """Left padding for batched generation, and a pad token (EOS) when the tokenizer has none."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
