"""Export a mix: an exact PEFT adapter, a rank-K compressed adapter with its error, or a merged model,
each with a recipe (recipe.yaml) that reproduces it.

For one module, the mix's delta is already factored with inner size R = sum of the ranks of
the adapters that adapt it (zero-weight adapters dropped):

    delta = B_cat diag(g) A_cat,   B_cat (out, R), A_cat (R, in) with A_i pre-scaled by s_i

* ``adapter``: lora_B = B_cat, lora_A = diag(g) A_cat, scale 1 (alpha = r per module): exact.
* ``lowrank``: QR of both factors and an SVD of the R x R middle give the exact truncated
  SVD of delta in O((in + out) R^2); keeping K singular values gives the best rank-K delta,
  with relative Frobenius error sqrt(sum_{j>K} s_j^2 / sum_j s_j^2), reported per module and overall.
* ``merged``: the base model with W0 + delta saved with ``save_pretrained``, with its tokenizer.

The mixed factors come from each module's ``explorer.layer.StackedLora``. Writes are atomic
(``explorer.atomic``): everything goes to a temporary folder beside the target, moved into
place when complete; an existing target is only replaced with ``force``.
"""

from __future__ import annotations

import json
import math
import platform
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
import yaml
from peft import LoraConfig
from safetensors import SafetensorError
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from transformers.pytorch_utils import Conv1D

from explorer import __version__
from explorer.adapters import LoraModule, read_adapter
from explorer.atomic import atomic_write
from explorer.errors import SoupError
from explorer.fingerprint import changed_files, folder_hashes
from explorer.frontier.cache import soup_fingerprint
from explorer.loaders import load_yaml, parse_yaml
from explorer.mix import check_mix
from explorer.names import check_names
from explorer.ownership import claim, export_problem, regular_file, written_files
from explorer.paths import resolve_path, shown_path
from explorer.soup import Soup

FORMATS = ("adapter", "lowrank", "merged")
RECIPE = "recipe.yaml"


@dataclass
class ExportResult:
    path: Path
    format: str
    rank: int | None = None
    module_errors: dict[str, float] = field(default_factory=dict)
    overall_error: float = 0.0


def mixed_factors(soup: Soup, weights: Mapping[str, float]) -> dict[str, LoraModule]:
    """Exact factors of each module's mixed delta in float64, scale 1: lora_B (out, R), lora_A (R, in).

    ``weights`` is a checked mix (``check_mix``); modules whose adapters all have weight 0 are left out.
    """
    w = torch.tensor([weights[n] for n in soup.names], dtype=torch.float64)
    out = {m: f for m, stack in soup.stacks.items() if (f := stack.mixed(w)) is not None}
    if not out:
        raise SoupError(
            "every weight is zero: this mix is the base model itself; export it with --format merged"
        )
    return out


def truncate(factors: LoraModule, rank: int) -> tuple[LoraModule, float]:
    """The best rank-``rank`` approximation of B @ A (scale 1), from QR of each factor and an SVD of the
    R x R core, and its relative Frobenius error against B @ A."""
    B, A = factors.B, factors.A  # (out, R), (R, in)
    Qb, Rb = torch.linalg.qr(B)  # (out, R), (R, R)
    Qa, Ra = torch.linalg.qr(A.T)  # (in, R), (R, R)
    U, S, Vh = torch.linalg.svd(Rb @ Ra.T)  # the R x R core
    k = min(rank, S.numel())
    root = S[:k].sqrt()
    total = float((S**2).sum())
    error = math.sqrt(float((S[k:] ** 2).sum()) / total) if total > 0 else 0.0
    return LoraModule(A=root[:, None] * (Vh[:k] @ Qa.T), B=(Qb @ U[:, :k]) * root[None, :], scale=1.0), error


def peft_config(soup: Soup, factors: Mapping[str, LoraModule]) -> LoraConfig:
    """A LoRA config with scale 1 on every module (lora_alpha = r through rank/alpha patterns)."""
    ranks = {m: f.A.shape[0] for m, f in factors.items()}
    r = max(ranks.values())
    patterns = {m: k for m, k in ranks.items() if k != r}
    conv1d = any(isinstance(soup.model.get_submodule(m), Conv1D) for m in factors)
    return LoraConfig(
        r=r,
        lora_alpha=r,
        rank_pattern=patterns,
        alpha_pattern=dict(patterns),
        target_modules=sorted(factors),
        fan_in_fan_out=conv1d,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(soup.base_path) if soup.base_path else None,
    )


def _write_adapter(soup: Soup, factors: Mapping[str, LoraModule], folder: Path) -> None:
    dtype = max((a.A.dtype for a in _all_modules(soup)), key=lambda d: torch.finfo(d).bits)
    tensors = {}
    for module, f in sorted(factors.items()):
        tensors[f"base_model.model.{module}.lora_A.weight"] = f.A.to(dtype).contiguous()
        tensors[f"base_model.model.{module}.lora_B.weight"] = f.B.to(dtype).contiguous()
    for key, tensor in tensors.items():
        check_finite(key, tensor)
    save_file(tensors, folder / "adapter_model.safetensors")
    peft_config(soup, factors).save_pretrained(str(folder))


def _all_modules(soup: Soup):
    return [m for a in soup.adapters.values() for m in a.modules.values()]


def _write_merged(soup: Soup, weights: Mapping[str, float], folder: Path) -> None:
    if soup.base_path is None:
        raise SoupError("a merged export needs the soup's base model folder: load the soup with Soup.load")
    model: Any = AutoModelForCausalLM.from_pretrained(
        soup.base_path, dtype=soup.dtype
    )  # a fresh copy, on the CPU
    with torch.no_grad():
        for module in soup.target_modules:
            layer: Any = model.get_submodule(module)
            delta = soup.delta(module, weights)  # (out, in) float64
            if isinstance(layer, Conv1D):
                delta = delta.T
            layer.weight.copy_((layer.weight.to(torch.float64) + delta).to(layer.weight.dtype))
            check_finite(f"{module}.weight", layer.weight)
    model.save_pretrained(folder)
    soup.tokenizer.save_pretrained(folder)


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Refuse to write a tensor holding inf or NaN (a mix whose numbers overflow the dtype)."""
    if not torch.isfinite(tensor).all():
        raise SoupError(
            f"the export's tensor {name} holds inf or NaN ({tensor.dtype} overflows at this mix): "
            "nothing was written; use smaller weights or --dtype float32"
        )


def check_format(format: str, rank: int | None) -> None:
    """A known format, and a whole rank >= 1 for ``lowrank`` (checked before any model loads)."""
    if format not in FORMATS:
        raise SoupError(f"unknown export format {format!r}: use one of {list(FORMATS)}")
    if format == "lowrank" and (
        rank is None or isinstance(rank, bool) or not isinstance(rank, int) or rank < 1
    ):
        raise SoupError(f"--rank must be a whole number >= 1 for the lowrank format, got {rank!r}")


def export_mix(
    soup: Soup,
    weights: Mapping[str, object],
    out: str | Path,
    *,
    format: str = "adapter",
    rank: int | None = None,
    force: bool = False,
    scores: Mapping | None = None,
    choice: Mapping | None = None,
) -> ExportResult:
    """Export the mix ``weights`` of ``soup`` to the folder ``out`` in ``format``, with its recipe.

    ``rank`` is required for ``lowrank``. ``scores`` (objective -> {mean, ci_low, ci_high}) and
    ``choice`` (how the mix was chosen: ``explorer.frontier.choose.Choice.to_dict()``), when given, are
    written to the recipe. Everything is checked before anything is written.
    """
    w = check_mix(weights, soup.names)
    check_format(format, rank)
    target = check_out_folder(out)
    check_target(target, force=force)
    factors = mixed_factors(soup, w) if format != "merged" else {}  # refuses an all-zero mix
    if format == "lowrank":
        check_rank(int(rank), factors)  # type: ignore[arg-type]

    result = ExportResult(
        path=target, format=format, rank=int(rank) if rank is not None and format == "lowrank" else None
    )
    try:
        with claim(target), atomic_write(target, folder=True, replace=force) as tmp:
            check_target(target, force=force)  # again, under the lock: what is there now is ours
            if format == "merged":
                _write_merged(soup, w, tmp)
            else:
                if result.rank is not None:
                    truncated = {m: truncate(f, result.rank) for m, f in factors.items()}
                    factors = {m: f for m, (f, _) in truncated.items()}
                    result.module_errors = {m: err for m, (_, err) in truncated.items()}
                    result.overall_error = overall_error(soup, w, result.module_errors)
                _write_adapter(soup, factors, tmp)
            made = recipe(soup, w, result, scores, choice)
            made["written"] = written_files(tmp)  # what --force may later replace (explorer.ownership)
            (tmp / RECIPE).write_text(yaml.safe_dump(made, sort_keys=False))
    except (OSError, SafetensorError) as err:  # a read-only folder, a full disk: nothing was written
        raise SoupError(
            f"cannot write the export to {target} ({_reason(err)}): nothing was written; choose "
            "another --out in a writable folder with free space"
        ) from None
    return result


def check_rank(rank: int, factors: Mapping[str, LoraModule]) -> None:
    """A lowrank export's rank is at most the mix's full rank (the largest module's inner size R):
    above it nothing is truncated and the recipe would claim a rank the adapter does not have."""
    full = max(f.A.shape[0] for f in factors.values())
    if rank > full:
        raise SoupError(
            f"--rank {rank} is above the full rank {full} of this mix: nothing would be truncated; use "
            f"--rank {full} or less, or --format adapter (exact)"
        )


def check_out_folder(out: str | Path) -> Path:
    """``out`` as an absolute path that can become an export folder (not the current folder, one
    of its parents or the root: replacing it would pull the ground from under the user's shell)."""
    target = Path(out).expanduser().absolute()
    here = Path.cwd()
    if target == Path(target.anchor) or target.resolve() in (here, *here.parents):
        raise SoupError(
            f"--out {out} is the current folder or one above it: give a new folder's name, e.g. --out ./my-mix"
        )
    return target


def check_target(target: Path, *, force: bool) -> None:
    """An export goes to a new folder; ``force`` replaces only an unchanged earlier export (its
    recipe.yaml lists every file of the folder with its sha256, explorer.ownership), never
    anything else, so a typo in --out cannot delete a user's files."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise SoupError(f"{target} exists and is not a folder: --out must be a new folder")
    if not force:
        raise SoupError(f"{target} already exists: choose another --out, or pass --force to replace it")
    recipe_file = target / RECIPE
    if not regular_file(recipe_file):
        raise SoupError(
            f"{target} is not an earlier export (it has no {RECIPE}): --force only replaces an export; "
            "choose another --out"
        )
    try:
        data = parse_yaml(recipe_file.read_text(encoding="utf-8"), where=str(recipe_file))
    except (SoupError, OSError, UnicodeDecodeError):
        data = None
    problem = (
        export_problem(target, data.get("written"))
        if isinstance(data, dict) and data.get("explorer_recipe") == 1
        else f"its {RECIPE} was not written by explorer export"
    )
    if problem:
        raise SoupError(
            f"{target} is not an earlier export, or changed since ({problem}): --force only replaces an "
            "unchanged export, so nothing was deleted; move your files out or choose another --out"
        )


def _reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(text.split())


def overall_error(soup: Soup, weights: Mapping[str, float], errors: Mapping[str, float]) -> float:
    """Relative Frobenius error over all modules from each module's relative error:
    sqrt(sum ||err_m||^2 / sum ||delta_m||^2)."""
    num = den = 0.0
    for module, error in errors.items():
        energy = float(torch.linalg.matrix_norm(soup.delta(module, weights)) ** 2)
        num += (error**2) * energy
        den += energy
    return math.sqrt(num / den) if den > 0 else 0.0


def recipe(
    soup: Soup,
    weights: Mapping[str, float],
    result: ExportResult,
    scores: Mapping | None = None,
    choice: Mapping | None = None,
) -> dict:
    """The recipe of an export: everything needed to reproduce it, and to check the inputs did not change."""
    fingerprint = soup_fingerprint(soup)
    out = {
        "explorer_recipe": 1,
        "format": result.format,
        "rank": result.rank,
        "weights": dict(weights),
        "base": {
            "path": str(soup.base_path) if soup.base_path else None,
            "files_sha256": fingerprint["base"],
        },
        "adapters": {
            n: {
                "path": str(a.path),
                "sha256": a.sha256,
                "files_sha256": dict(a.files),
                "rank": a.rank,
                "lora_alpha": a.alpha,
            }
            for n, a in soup.adapters.items()
        },
        "dtype": str(soup.dtype).removeprefix("torch."),
        "versions": {
            "explorer": __version__,
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    if result.format == "lowrank":
        out["overall_relative_error"] = result.overall_error
        out["module_relative_errors"] = dict(sorted(result.module_errors.items()))
    if scores:
        out["scores"] = {k: dict(v) for k, v in scores.items()}
    if choice:  # the rule that chose the mix and what it found (explorer pick, the app's Choose panel)
        out["choice"] = dict(choice)
    return out


def read_recipe(path: str | Path) -> dict:
    """Read a recipe, check it is complete, and check that every file the base model and the
    adapters load from is unchanged since the export (sha256); refuses naming the changed file."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / RECIPE
    data = load_yaml(file, what="recipe")
    if not isinstance(data, dict) or data.get("explorer_recipe") != 1:
        raise SoupError(f"{file} is not a recipe written by explorer export")
    _check_recipe_keys(data, file)
    base = data["base"]
    folder = resolve_path(base["path"])  # a downloaded recipe names it as <cache>/..., ~/...
    if not folder.is_dir():
        raise SoupError(f"recipe {file}: the base model folder {folder} does not exist any more")
    _refuse_changes(file, f"the base model at {folder}", base["files_sha256"], folder_hashes(folder))
    for name, info in data["adapters"].items():
        adapter = read_adapter(name, resolve_path(info["path"]))
        _refuse_changes(file, f"adapter '{name}' at {info['path']}", info["files_sha256"], adapter.files)
    return data


def _check_recipe_keys(data: dict, file: Path) -> None:
    """Every key ``explorer export --recipe`` reads is there, with the right kind of value."""
    needed = {"format": str, "weights": dict, "base": dict, "adapters": dict, "dtype": str}
    for key, kind in needed.items():
        if not isinstance(data.get(key), kind):
            raise SoupError(
                f"recipe {file} has no valid '{key}' (a {kind.__name__}): it is incomplete or was edited; "
                "use the recipe.yaml that explorer export wrote"
            )
    if not data["base"].get("path"):
        raise SoupError(
            f"recipe {file} has no base model path: use the recipe.yaml that explorer export wrote"
        )
    if not _hashes(data["base"].get("files_sha256")):  # without them nothing would be checked
        raise SoupError(
            f"recipe {file}: the base model has no files_sha256 (the hashes that prove its files are "
            "unchanged): use the recipe.yaml that explorer export wrote"
        )
    for name, info in data["adapters"].items():
        if not isinstance(info, dict) or not info.get("path"):
            raise SoupError(
                f"recipe {file}: adapter '{name}' has no path: use the recipe.yaml that explorer export wrote"
            )
        if not _hashes(info.get("files_sha256")):
            raise SoupError(
                f"recipe {file}: adapter '{name}' has no files_sha256 (the hashes that prove its files "
                "are unchanged): use the recipe.yaml that explorer export wrote"
            )
    check_names(data["adapters"])
    try:
        check_format(data["format"], data.get("rank"))
    except SoupError as err:
        raise SoupError(f"recipe {file}: {err}") from None


def _hashes(value: object) -> bool:
    """A non-empty mapping of file names to hex digests."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _refuse_changes(file: Path, what: str, expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    changed = changed_files(dict(expected), dict(actual))
    if changed:
        raise SoupError(
            f"recipe {file}: {what} has changed since the export (files {changed} differ): restore "
            "the original files to reproduce this export"
        )


def portable_recipe(data: Mapping) -> dict:
    """A recipe for another machine: the base model's and adapters' paths as ``shown_path`` writes
    them (``<cache>/...``, ``<explorer>/...``, ``~/...`` or a name; never this machine's absolute
    path); their sha256 still identify them, and ``read_recipe`` resolves the paths again."""
    out = dict(data)
    base = dict(out["base"])
    if base.get("path"):
        base["path"] = shown_path(base["path"])
    out["base"] = base
    out["adapters"] = {n: {**info, "path": shown_path(info["path"])} for n, info in out["adapters"].items()}
    return out


def zip_export(folder: str | Path, zip_path: str | Path) -> Path:
    """Zip an adapter or low-rank export for a download, under the folder's name, with no path
    of this machine in it: the recipe's paths are made portable (``portable_recipe``) and the
    adapter config names its base model the same way."""
    folder, zip_path = Path(folder), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            name = str(Path(folder.name) / file.relative_to(folder))
            if file.name == RECIPE:
                data = portable_recipe(yaml.safe_load(file.read_text(encoding="utf-8")))
                zf.writestr(name, yaml.safe_dump(data, sort_keys=False))
            elif file.name == "adapter_config.json":
                config = json.loads(file.read_text(encoding="utf-8"))
                if config.get("base_model_name_or_path"):
                    config["base_model_name_or_path"] = shown_path(config["base_model_name_or_path"])
                zf.writestr(name, json.dumps(config, indent=2, sort_keys=True))
            else:
                zf.write(file, name)
    return zip_path
