"""Paths as a page or a downloaded file shows them: relative to a folder the user knows (the cache
folder, the installed package, the home folder), never the serving machine's absolute path.

``shown_path`` writes ``<cache>/exports/adapter-x``, ``<explorer>/data/adapters/concise`` or
``~/models/base``; a path under none of them is shown by its name alone (its hashes, in a recipe,
still identify it). ``resolve_path`` reads such a path back on the machine that reads it.
"""

from __future__ import annotations

from pathlib import Path

from explorer.demo import cache_dir  # the cache folder's rule lives with the demo it caches

CACHE, PACKAGE, HOME = "<cache>", "<explorer>", "~"


def _roots() -> list[tuple[str, Path]]:
    package = Path(__file__).resolve().parent
    return [(CACHE, cache_dir().expanduser().absolute()), (PACKAGE, package), (HOME, Path.home())]


def shown_path(path: str | Path) -> str:
    """``path`` relative to the first of the cache folder, the package and the home folder that
    holds it (``<cache>/exports``), else its name alone."""
    path = Path(path).expanduser().absolute()
    for prefix, root in _roots():
        for candidate in dict.fromkeys([path, path.resolve()]):
            if candidate == root:
                return prefix
            if candidate.is_relative_to(root):
                return f"{prefix}/{candidate.relative_to(root).as_posix()}"
    return path.name


def resolve_path(text: str | Path) -> Path:
    """A path written by ``shown_path`` (or any path) on this machine: ``<cache>/x`` in this
    machine's cache folder, ``<explorer>/x`` in this installed package, ``~/x`` in this home."""
    text = str(text)
    for prefix, root in _roots():
        if text == prefix:
            return root
        if text.startswith(prefix + "/"):
            return root / text[len(prefix) + 1 :]
    return Path(text).expanduser()
