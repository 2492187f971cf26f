"""Turn ``ModelOptions`` into a loaded ``Soup``: the given base and adapters, or the demo."""

from __future__ import annotations

from explorer.config import ModelOptions
from explorer.errors import SoupError
from explorer.soup import Soup


def open_soup(options: ModelOptions) -> Soup:
    """Load the soup that ``options`` describe; with no base, the embedded demo and its adapters."""
    from explorer import demo

    if options.is_demo:
        base = str(demo.demo_base())
        adapters = options.adapters or demo.demo_adapters()
    else:
        base, adapters = options.base, options.adapters
        if not adapters:
            raise SoupError(
                "no adapters given: pass --adapter NAME=FOLDER once per objective (or list them in --config)"
            )
    return Soup.load(
        base, adapters, device=options.device, dtype=options.dtype, allow_pickle=options.allow_pickle
    )
