"""Device and dtype choice: CUDA when present (bf16, else fp16), otherwise CPU float32."""

from __future__ import annotations

import torch

from explorer.errors import SoupError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float64": torch.float64,
    "fp64": torch.float64,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else ``cuda`` when available, else ``cpu``."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise SoupError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1' or 'auto'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SoupError(f"device {device!r} was asked for but this torch sees no CUDA GPU: use --device cpu")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype: the one asked for, else bf16 (fp16 without bf16 support) on CUDA, fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise SoupError(f"unknown dtype {dtype!r}: use one of {sorted(set(DTYPES))} or 'auto'") from None
