"""Hashes of what determines a result: a file's bytes, every file of a model folder, a function's
source and the helper modules beside it.

Cache keys and recipes are built from these, so that changing any input (an adapter's config,
a tokenizer's chat template, a scorer's code) changes the key instead of returning old results.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path
from types import ModuleType

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


def module_tree_sha256(fn: object) -> str:
    """``source_sha256(fn)``, extended to the helper modules its module imports from its own
    folder (and theirs, recursively): a changed helper changes the hash. A scorer without such
    helpers keeps the hash of its one file."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if module is None or not file:
        return source_sha256(fn)
    folder = Path(file).resolve().parent
    files = _local_files(module, folder, set())
    own = Path(file).resolve()
    if files == {own}:
        return source_sha256(fn)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _local_files(module: ModuleType, folder: Path, seen: set[Path]) -> set[Path]:
    """The source files under ``folder`` of ``module`` and of the modules it refers to."""
    file = getattr(module, "__file__", None)
    if not file:
        return seen
    path = Path(file).resolve()
    if path in seen or not path.is_relative_to(folder) or path.suffix != ".py":
        return seen
    seen.add(path)
    for value in list(vars(module).values()):
        used = (
            value
            if isinstance(value, ModuleType)
            else sys.modules.get(getattr(value, "__module__", None) or "")
        )
        if isinstance(used, ModuleType):
            _local_files(used, folder, seen)
    return seen
