"""The one rule for the names a user gives (adapters, objectives): checked once, where options are
read, so that a name can be a dict key, a YAML key, part of a file name, a ``NAME=W,...`` item and
text on a page without surprises.

A name is NFC-normalised (an ``é`` typed as e + combining accent and the precomposed one are the
same name), starts with a letter, digit or ``_``, holds only letters, digits, ``_``, ``-`` and
``.``, is at most 64 characters, and is not a word YAML reads as something else (``yes``,
``null``, ``~``...). So no ``/`` (a nested export folder), no ``,`` or ``=`` (a ``--weights``
item), no spaces, quotes, ``<`` or ``$`` (HTML or shell when shown or pasted).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from explorer.errors import SoupError

MAX_LENGTH = 64
_PUNCTUATION = "_-."
# Words YAML 1.1 (PyYAML) reads as booleans or null: a name written unquoted would change type.
YAML_WORDS = frozenset("y n yes no on off true false null ~ none nan inf .nan .inf -.inf".split())


def check_name(name: object, *, what: str = "adapter") -> str:
    """``name`` NFC-normalised when it follows the rule above, else a SoupError that says why."""
    if not isinstance(name, str):
        raise SoupError(f"{what} name {name!r} is not text: {_HINT}")
    text = unicodedata.normalize("NFC", name.strip())
    if not text:
        raise SoupError(f"{what} name {name!r} is empty: {_HINT}")
    if len(text) > MAX_LENGTH:
        raise SoupError(f"{what} name {text[:20]!r}... is {len(text)} characters long (at most {MAX_LENGTH})")
    bad = sorted({c for c in text if not (c.isalnum() or c in _PUNCTUATION)})
    if bad:
        raise SoupError(f"{what} name {text!r} holds {''.join(bad)!r}: {_HINT}")
    if not (text[0].isalnum() or text[0] == "_"):
        raise SoupError(f"{what} name {text!r} must start with a letter, a digit or '_'")
    if text.lower() in YAML_WORDS:
        raise SoupError(f"{what} name {text!r} reads as a YAML boolean or null: {_HINT}")
    return text


def check_names(names: Iterable[object], *, what: str = "adapter") -> list[str]:
    """Each name checked; two that are the same once normalised are refused."""
    out: list[str] = []
    for name in names:
        text = check_name(name, what=what)
        if text in out:
            raise SoupError(
                f"{what} name {text!r} is given twice (perhaps as two spellings of the same letters): "
                "names must differ"
            )
        out.append(text)
    return out


_HINT = "use letters, digits, '_', '-' and '.' (e.g. helpful, concise_v2)"
