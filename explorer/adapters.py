"""Read and validate one PEFT LoRA adapter folder into plain low-rank factors.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors``.
For every adapted module the file stores ``lora_A`` (r x in) and ``lora_B`` (out x r);
the module's weight delta is ``s * B @ A`` with ``s = alpha / r`` (``alpha / sqrt(r)``
with rsLoRA), ``alpha`` from ``alpha_pattern`` where a pattern matches the module.

Only adapters whose effect is exactly that linear delta can be mixed exactly, so
every other PEFT feature (DoRA, ``lora_bias``, ``modules_to_save``...) is refused here,
before anything touches a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from peft.utils.other import get_pattern_key
from safetensors import SafetensorError
from safetensors.torch import load_file

from explorer.errors import SoupError
from explorer.fingerprint import file_sha256
from explorer.loaders import load_json

__all__ = ["LoraAdapter", "LoraModule", "file_sha256", "read_adapter"]

CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter_model.safetensors"
PICKLE_FILE = "adapter_model.bin"

# PEFT options whose adapters are not a plain W0 + s*B@A delta, with what each one does.
_NOT_A_LINEAR_DELTA = {
    "use_dora": "DoRA rescales each column by a learned magnitude",
    "lora_bias": "lora_bias adds a trained bias to lora_B",
    "use_qalora": "QA-LoRA pools the input before lora_A",
    "alora_invocation_tokens": "aLoRA only acts after its invocation tokens",
    "layer_replication": "layer_replication duplicates base layers",
    "modules_to_save": "modules_to_save replaces whole modules with trained copies",
    "trainable_token_indices": "trainable_token_indices trains embedding rows",
    "target_parameters": "target_parameters adapts raw parameters (MoE experts)",
    "arrow_config": "Arrow routes between adapters per token",
    "use_bdlora": "BD-LoRA uses block-diagonal factors",
    "megatron_config": "Megatron parallel layers are not supported",
}
_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: ``delta = scale * B @ A`` of shape (out, in)."""

    A: torch.Tensor  # (r, in)
    B: torch.Tensor  # (out, r)
    scale: float  # alpha / r, or alpha / sqrt(r) with rsLoRA

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    def delta(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The module's weight delta, (out, in), in ``dtype`` (float64 by default, for exact references)."""
        return self.scale * (self.B.to(dtype) @ self.A.to(dtype))


@dataclass(frozen=True)
class LoraAdapter:
    """A validated LoRA adapter: factors per base-model module name, and where they came from."""

    name: str
    path: Path
    config: dict
    modules: dict[str, LoraModule]  # base-model module name -> factors
    weights_file: Path
    sha256: str  # of the weights file
    files: dict[str, str]  # sha256 of each file loading reads (the config and the weights), by name

    @property
    def rank(self) -> int:
        """The largest rank over modules (equal to ``r`` unless ``rank_pattern`` is used)."""
        return max(m.rank for m in self.modules.values())

    @property
    def alpha(self) -> float:
        return float(self.config.get("lora_alpha", 8))

    @property
    def nbytes(self) -> int:
        return sum(m.A.nbytes + m.B.nbytes for m in self.modules.values())


def read_adapter(name: str, path: str | Path, *, allow_pickle: bool = False) -> LoraAdapter:
    """Read the PEFT LoRA adapter in folder ``path`` under ``name``, validating everything.

    Raises ``SoupError`` naming the file and what to do, for: a missing folder, a folder with
    no adapter, a non-LoRA or non-linear LoRA variant, a pickle-only adapter (unless
    ``allow_pickle``; then it is read with ``torch.load(weights_only=True)``), malformed
    tensors and NaN/inf values.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise SoupError(f"adapter '{name}': folder {folder} does not exist; check the path given for it")
    if not folder.is_dir():
        raise SoupError(
            f"adapter '{name}': {folder} is a file, not a folder; give the folder that holds {CONFIG_FILE}"
        )
    config = _read_config(name, folder)
    weights_file, state = _read_weights(name, folder, allow_pickle=allow_pickle)
    modules = _factors(name, weights_file, state, config)
    return LoraAdapter(
        name=name,
        path=folder,
        config=config,
        modules=modules,
        weights_file=weights_file,
        sha256=file_sha256(weights_file),
        files={p.name: file_sha256(p) for p in (folder / CONFIG_FILE, weights_file)},
    )


def _read_config(name: str, folder: Path) -> dict:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise SoupError(
            f"adapter '{name}': {folder} has no {CONFIG_FILE}, so it is not a PEFT adapter folder; "
            "give the folder written by PeftModel.save_pretrained"
        )
    config = load_json(config_path, what=f"adapter '{name}':")  # one line naming the file (explorer.loaders)
    if not isinstance(config, dict):
        raise SoupError(f"adapter '{name}': {config_path} must hold a JSON object")
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise SoupError(
            f"adapter '{name}': {config_path} is a {peft_type or 'untyped'} adapter, not LORA; "
            "only LoRA adapters (a linear weight delta) can be mixed exactly"
        )
    for key, why in _NOT_A_LINEAR_DELTA.items():
        if config.get(key):
            raise SoupError(
                f"adapter '{name}': {config_path} sets {key}={config[key]!r}; {why}, so its effect is not "
                "a linear weight delta and it cannot be mixed exactly. Retrain it as a plain LoRA."
            )
    return config


def _read_weights(name: str, folder: Path, *, allow_pickle: bool) -> tuple[Path, dict[str, torch.Tensor]]:
    st_path, bin_path = folder / SAFETENSORS_FILE, folder / PICKLE_FILE
    if st_path.is_file():
        try:
            return st_path, load_file(st_path, device="cpu")
        except (SafetensorError, OSError) as err:
            raise SoupError(f"adapter '{name}': cannot read {st_path}: {err}. Is the file complete?") from err
    if bin_path.is_file():
        if not allow_pickle:
            raise SoupError(
                f"adapter '{name}': {folder} only has {PICKLE_FILE}, a pickle file that can run code when "
                "loaded. Convert it to safetensors, or pass --allow-pickle (allow_pickle=True) to read "
                "it with torch.load(weights_only=True)."
            )
        try:
            return bin_path, torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for a bad or unsafe pickle
            raise SoupError(f"adapter '{name}': cannot read {bin_path} safely: {err}") from err
    raise SoupError(
        f"adapter '{name}': {folder} has {CONFIG_FILE} but no {SAFETENSORS_FILE}; "
        "copy the weights file next to the config"
    )


def _factors(name: str, file: Path, state: dict[str, torch.Tensor], config: dict) -> dict[str, LoraModule]:
    """Pair ``lora_A``/``lora_B`` tensors per module and attach each module's scale."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        module, _, kind = key.rpartition(".lora_")
        if not module or kind not in ("A.weight", "B.weight"):
            raise SoupError(
                f"adapter '{name}': {file} holds tensor '{key}', which is not a lora_A/lora_B weight "
                "(embedding LoRA, biases or trained modules cannot be mixed as a linear delta)"
            )
        module = module.removeprefix(_PREFIX)
        if not torch.is_floating_point(tensor) or not torch.isfinite(tensor).all():
            raise SoupError(
                f"adapter '{name}': tensor '{key}' in {file} has NaN/inf or non-float values; "
                "the adapter is broken (diverged training?) and cannot be mixed"
            )
        pairs.setdefault(module, {})[kind[0]] = tensor
    if not pairs:
        raise SoupError(f"adapter '{name}': {file} holds no LoRA tensors")
    rslora = bool(config.get("use_rslora", False))
    alpha_pattern = config.get("alpha_pattern") or {}
    default_alpha = float(config.get("lora_alpha", 8))
    modules = {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            missing = "lora_B" if "A" in ab else "lora_A"
            raise SoupError(f"adapter '{name}': module '{module}' in {file} has no {missing} weight")
        A, B = ab["A"], ab["B"]
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise SoupError(
                f"adapter '{name}': module '{module}' has lora_A {tuple(A.shape)} and lora_B "
                f"{tuple(B.shape)}; expected (r, in) and (out, r) (convolutional LoRA is not supported)"
            )
        rank = A.shape[0]
        alpha = float(alpha_pattern.get(get_pattern_key(list(alpha_pattern), module), default_alpha))
        scale = alpha / math.sqrt(rank) if rslora else alpha / rank
        modules[module] = LoraModule(A=A, B=B, scale=scale)
    return modules
