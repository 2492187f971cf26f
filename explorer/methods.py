"""How a mix combines the adapters: the methods, their names and checks, with no torch import.

``soup`` mixes their weights (W0 + sum_i w_i delta_i, one forward row); ``mod`` mixes their
next-token distributions at decoding time (prod_i p_i^w_i, one forward row per adapter of non-zero
weight; ``explorer.scheduler.member_rows``): both decode in shared batches. ``ties``, ``dare`` and
``peft-linear`` are PEFT's merges (``explorer.merges``), one merged mix at a time on a private copy
of the model.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from explorer.errors import SoupError

DECODING_METHODS = ("soup", "mod")
MERGE_METHODS = ("ties", "dare", "peft-linear")
METHODS = DECODING_METHODS + MERGE_METHODS

# PEFT's merges: method -> (add_weighted_adapter's combination_type, density)
MERGES: dict[str, tuple[str, float | None]] = {
    "ties": ("ties", 0.2),
    "dare": ("dare_ties", 0.2),
    "peft-linear": ("linear", None),
}


def check_method(method: object) -> str:
    """``method`` when it is one of ``METHODS``, else a SoupError saying which are."""
    if method not in METHODS:
        raise SoupError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return str(method)


def parse_methods(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--method`` values (repeatable, or comma lists) as distinct methods in the order given;
    none given: the soup alone."""
    out: list[str] = []
    for value in values or ["soup"]:
        for item in filter(None, (v.strip() for v in value.split(","))):
            if check_method(item) not in out:
                out.append(item)
    return tuple(out) or ("soup",)


def not_exported(method: str, weights: Mapping[str, float]) -> str:
    """Why a mix combined by ``method`` (not the soup) is not exported here, and what to do instead."""
    same = shlex.quote(",".join(f"{n}={float(w):g}" for n, w in weights.items()))  # a shell word
    if method == "mod":
        why = "mod mixes the adapters at decoding time, so it has no single adapter or merged model to export"
    else:
        combination, density = MERGES.get(method, (method, None))
        why = (
            f"{method} is PEFT's merge (add_weighted_adapter(..., combination_type={combination!r}"
            f"{f', density={density}' if density else ''})): make it with PEFT; this command exports exact soups"
        )
    return (
        f"the choice is a {method} mix: {why}. Export the nearest exact soup, the same weights mixed in "
        f"weight space, with --weights {same}, or choose among the soups: explorer pick --method soup"
    )
