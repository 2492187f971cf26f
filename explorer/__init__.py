"""Pareto Soup Explorer: exact weight-space soups of LoRA adapters, one per objective."""

from __future__ import annotations

from explorer.adapters import LoraAdapter, read_adapter
from explorer.errors import SoupError
from explorer.soup import Soup

__all__ = ["LoraAdapter", "Soup", "SoupError", "read_adapter"]
__version__ = "0.1.0"
