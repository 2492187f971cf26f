"""Hashes of what determines a result: a file's bytes, every file of a model folder, a function's source.

Cache keys and recipes are built from these, so that changing any input (an adapter's config,
a tokenizer's chat template, a scorer's code) changes the key instead of returning old results.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

# Files in a model folder that no loader reads: editing them must not invalidate results.
_NOT_READ = (".md", ".png", ".jpg", ".gif", ".lock")

_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks, memoised by (path, size, mtime)."""
    st = Path(path).stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _memo[key] = digest.hexdigest()
    return _memo[key]


def folder_hashes(folder: Path | str) -> dict[str, str]:
    """sha256 of every file at the top of ``folder`` that loading may read (configs, weights,
    tokenizer files, chat template...), by file name; hidden files and docs are left out."""
    files = sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in _NOT_READ
    )
    return {p.name: file_sha256(p) for p in files}


def changed_files(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """The file names whose hash differs, that appeared, or that disappeared (sorted)."""
    return sorted(n for n in set(expected) | set(actual) if expected.get(n) != actual.get(n))


def source_sha256(fn: object) -> str:
    """sha256 of the file that defines ``fn`` (its module), else of its source, else of its name."""
    try:
        file = inspect.getsourcefile(fn)  # type: ignore[arg-type]
    except TypeError:
        file = None
    if file and Path(file).is_file():
        return file_sha256(file)
    try:
        text = inspect.getsource(fn)  # type: ignore[arg-type]
    except (OSError, TypeError):
        text = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return hashlib.sha256(text.encode()).hexdigest()
