"""Pareto Soup Explorer: exact weight-space soups of LoRA adapters, one per objective.

``from explorer import Soup`` works as always, but the package itself imports no torch: what
only reads results (``explorer pick``) stays light. The names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from explorer.errors import SoupError

_LAZY = {"LoraAdapter": "explorer.adapters", "read_adapter": "explorer.adapters", "Soup": "explorer.soup"}

__all__ = ["LoraAdapter", "Soup", "SoupError", "read_adapter"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
