"""A mix: adapter name -> mixing weight. The one parser of ``NAME=W,...`` and the one check of a mix.

Weights travel as a mapping from adapter name to float, never as parallel lists. Any finite
real numbers up to +-MAX_WEIGHT are allowed: negative and > 1 weights extrapolate, all zeros
is the base model.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence

from explorer.errors import SoupError

Mix = dict[str, float]

# Larger weights only overflow: at 1e308 float32 becomes inf and the model's output garbage; real
# extrapolation stays within a few units.
MAX_WEIGHT = 1e4


def check_weight(name: str, value: float) -> float:
    """``value`` when it is a finite number within +-MAX_WEIGHT, else a SoupError naming ``name``."""
    if not math.isfinite(value):
        raise SoupError(f"weight {name}={value} is not a finite number: weights must be finite")
    if abs(value) > MAX_WEIGHT:
        raise SoupError(
            f"weight {name}={value:g} is beyond +-{MAX_WEIGHT:g}: such a mix overflows the model's numbers; "
            "use weights of a few units at most"
        )
    return value


def parse_weights(
    text: str, names: Sequence[str] | None = None, *, flag: str = "--weights", bounded: bool = True
) -> Mix:
    """``"a=0.3, b=0.7"`` -> ``{"a": 0.3, "b": 0.7}``, refusing malformed items, repeated names,
    non-finite numbers and weights beyond +-MAX_WEIGHT.

    Without ``names`` only the text is checked (before any model is loaded). With ``names`` the
    result is completed and checked against them: adapters left out get weight 0, unknown ones
    are refused (``check_mix``). ``flag``: the option the text came from, for the messages
    (the same syntax serves ``--point`` and ``explorer pick --prefer``). ``bounded=False``: the
    numbers are not mix weights (``--aspiration`` levels, in an objective's own units): any finite
    number.
    """
    weights: Mix = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = (part.strip() for part in item.partition("="))
        name = unicodedata.normalize("NFC", name)  # the form adapter names are kept in (explorer.names)
        if not sep or not name:
            raise SoupError(f"{flag} item {item!r}: write NAME=NUMBER, e.g. positive=0.5")
        if name in weights:
            raise SoupError(f"{flag} names '{name}' twice: give each name one number")
        try:
            weights[name] = float(value)
        except ValueError:
            raise SoupError(f"{flag} {name}={value!r}: the weight must be a number") from None
        if not math.isfinite(weights[name]):
            raise SoupError(
                f"{flag} {name}={value}: the {'weight' if bounded else 'number'} must be a finite number"
            )
        if bounded:
            check_weight(name, weights[name])
    return weights if names is None else check_mix(weights, names, missing=0.0)


def check_mix(weights: Mapping[str, object], names: Sequence[str], *, missing: float | None = None) -> Mix:
    """``weights`` as ``{name: float}`` in ``names`` order: every adapter once, a finite number within
    +-MAX_WEIGHT each.

    ``missing``: the weight of an adapter left out (None: leaving one out is an error).
    """
    if not isinstance(weights, Mapping):
        raise SoupError(f"a mix must map adapter names to weights, got {weights!r}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise SoupError(
            f"weights name {unknown}, which are not adapters (unknown: {unknown}); adapters: {list(names)}"
        )
    left_out = [n for n in names if n not in weights]
    if left_out and missing is None:
        raise SoupError(
            f"no weight given for {left_out} (missing: {left_out}): give every adapter a weight "
            "(0 leaves one out)"
        )
    out: Mix = {}
    for name in names:
        value = weights.get(name, missing)
        if isinstance(value, bool | str):  # float(True) is 1 and float("1") is 1: not what was meant
            raise SoupError(f"weight {name}={value!r} is not a number: weights must be numbers")
        try:
            out[name] = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise SoupError(f"weight {name}={value!r} is not a number: weights must be numbers") from None
        check_weight(name, out[name])
    return out


def mix_label(weights: Mapping[str, float], *, digits: int | None = None) -> str:
    """``"a=0.3, b=0.7"``: a mix as people read it (``digits``: decimals shown, e.g. 2 on a page;
    default: up to 6 significant digits, as ``--weights`` takes them back)."""
    return ", ".join(f"{n}={w:g}" if digits is None else f"{n}={w:.{digits}f}" for n, w in weights.items())


def file_label(weights: Mapping[str, float]) -> str:
    """A mix as part of a file name: ``positive+0p50_concise+0p50``."""
    return "_".join(f"{n}{w:+.2f}" for n, w in weights.items()).replace(".", "p")
