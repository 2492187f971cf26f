"""Model options shared by every command: from a YAML file, overridden by the command line.

A config file holds the same keys as the command-line options::

    base: ./my-base-model          # a local Hugging Face folder; leave out for the demo
    adapters:                      # name (objective) -> PEFT adapter folder
      helpful: ./adapters/helpful
      concise: ./adapters/concise
    device: auto                   # auto | cpu | cuda | cuda:1
    dtype: auto                    # auto | float32 | bfloat16 | float16 | float64
    allow_pickle: false            # read adapter_model.bin with torch.load(weights_only=True)

Relative paths are relative to the config file's folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from explorer.errors import SoupError
from explorer.loaders import load_yaml
from explorer.names import check_name, check_names
from explorer.runtime import resolve_device, resolve_dtype


@dataclass
class ModelOptions:
    """What to load: the base model folder (None: the demo), adapters, device and dtype.

    Validated when made, so that a typo fails before the (slow) model load.
    """

    base: str | None = None  # None: the embedded SmolLM2 demo
    adapters: Mapping[str, str] = field(default_factory=dict)  # name -> adapter folder, in order
    device: str | None = None  # None: CUDA when available, else CPU
    dtype: str | None = None  # None: bf16/fp16 on CUDA, float32 on CPU
    allow_pickle: bool = False  # accept adapter_model.bin (read with weights_only=True)
    extra: dict = field(default_factory=dict)  # the config file's other keys, for sub-commands

    def __post_init__(self) -> None:
        if not isinstance(self.adapters, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | Path) for k, v in self.adapters.items()
        ):
            raise SoupError(f"adapters must map names to folders, got {self.adapters!r}")
        self.adapters = dict(zip(check_names(self.adapters), self.adapters.values(), strict=True))
        resolve_dtype(self.dtype, resolve_device(self.device))  # names a known device and dtype

    @property
    def is_demo(self) -> bool:
        return self.base is None


def parse_adapter_args(values: Iterable[str]) -> dict[str, str]:
    """``["name=path", ...]`` -> ``{name: path}``, refusing malformed items and repeated names."""
    adapters: dict[str, str] = {}
    for item in values:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise SoupError(
                f"--adapter {item!r}: write NAME=FOLDER, e.g. --adapter concise=./adapters/concise"
            )
        name = check_name(name)
        if name in adapters:
            raise SoupError(
                f"adapter name '{name}' is given twice ({adapters[name]} and {path}): names must differ"
            )
        adapters[name] = path
    return adapters


def read_config(path: str | Path) -> ModelOptions:
    """Read a YAML config file into ``ModelOptions`` (paths resolved against its folder)."""
    file = Path(path).expanduser()
    data = load_yaml(file, what="config file") or {}
    if not isinstance(data, Mapping):
        raise SoupError(f"config file {file} must hold a mapping of options (base:, adapters:, ...)")
    here = file.parent
    adapters = data.get("adapters") or {}
    if isinstance(adapters, list):  # also accept a list of "name=path" strings
        adapters = parse_adapter_args(adapters)
    if not isinstance(adapters, Mapping):
        raise SoupError(f"config file {file}: 'adapters' must map names to folders")
    known = {f.name for f in fields(ModelOptions)} - {"extra"}
    for key in adapters:
        if not isinstance(key, str):  # yes, null, 1: YAML read them as a boolean, None or a number
            raise SoupError(f"config file {file}: adapter name {key!r} is not text; quote it or rename it")
    return ModelOptions(
        base=_resolve(here, data.get("base")),
        adapters={k: str(_resolve(here, v)) for k, v in adapters.items()},
        device=data.get("device"),
        dtype=data.get("dtype"),
        allow_pickle=bool(data.get("allow_pickle", False)),
        extra={k: v for k, v in data.items() if k not in known},
    )


def merge(
    file: ModelOptions | None,
    *,
    base: str | None = None,
    adapters: Mapping[str, str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    allow_pickle: bool = False,
) -> ModelOptions:
    """Command-line values override the config file's; adapters given on the command line replace the file's."""
    opts = file or ModelOptions()
    return ModelOptions(
        base=base if base is not None else opts.base,
        adapters=dict(adapters) if adapters else dict(opts.adapters),
        device=device if device is not None else opts.device,
        dtype=dtype if dtype is not None else opts.dtype,
        allow_pickle=allow_pickle or opts.allow_pickle,
        extra=dict(opts.extra),
    )


def _resolve(here: Path, value) -> str | None:
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else (here / path))
