"""Share links: the mix, prompt and decoding of a response in a URL's query; opening the link
regenerates that response (paired sampling makes it the same text).

``?mix=positive=0.5,concise=0.5&prompt=...&max_new_tokens=48&temperature=0&top_p=1&seed=0&method=soup``
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from explorer.app.persist import check_value
from explorer.app.state import Session
from explorer.errors import SoupError
from explorer.mix import parse_weights

SHARE_KEYS = ("mix", "prompt", *Session.DECODING)


class ShareLinkError(SoupError):
    """A share link that cannot be opened; the message lists every problem."""


def share_query(produced: Mapping) -> str:
    """The query (``?...``) of a link to the response ``produced`` describes
    (``explorer.app.state.produced_by``: weights, method, prompt, sampling)."""
    query = {
        "mix": ",".join(f"{n}={float(w)!r}" for n, w in produced["weights"].items()),  # exact: same text
        "prompt": produced["prompt"],
        **{k: produced["sampling"][k] for k in ("max_new_tokens", "temperature", "top_p", "seed")},
        "method": produced.get("method", "soup"),
    }
    return "?" + urlencode({k: str(v) for k, v in query.items()}, safe="=,")


def _text(values: Sequence[bytes | str], key: str) -> str:
    if len(values) != 1:
        raise ValueError(f"{key} is given {len(values)} times: give it once")
    value = values[0]
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else value
    except UnicodeDecodeError:
        raise ValueError(f"{key} is not UTF-8 text") from None


def _parse_one(key: str, text: str, names: Sequence[str]) -> object:
    if key == "mix":
        return parse_weights(text, names, flag="mix")
    if key == "prompt":
        if not text.strip():
            raise ValueError("prompt is empty")
        return text
    if key in ("max_new_tokens", "seed"):
        try:
            number: object = int(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a whole number") from None
    elif key in ("temperature", "top_p"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a number") from None
    else:
        number = text
    return check_value(key, number, names=names, objectives=())


def parse_share(args: Mapping[str, Sequence[bytes | str]], *, names: Sequence[str]) -> dict | None:
    """The Session parameters a share link's query arguments set (``pn.state.session_args``), or
    None when they hold no share key (a plain visit). A mix off the simplex turns the simplex
    off. ShareLinkError lists every problem: a link is opened whole or not at all."""
    given = {k: v for k, v in args.items() if k in SHARE_KEYS}
    if not given:
        return None
    params: dict[str, Any] = {}
    problems: list[str] = []
    for key, values in given.items():
        try:
            params[key] = _parse_one(key, _text(values, key), names)
        except (SoupError, ValueError) as err:
            problems.append(str(err))
    if problems:
        raise ShareLinkError(
            "this share link could not be opened: "
            + "; ".join(problems)
            + ". The page shows your own session"
        )
    if "mix" in params:
        mix = params.pop("mix")
        params["weights"] = mix
        params["simplex"] = min(mix.values()) >= 0 and math.isclose(sum(mix.values()), 1.0, abs_tol=1e-9)
    return params
