"""The one "replace only what we wrote" rule for outputs (exports, results files).

* An existing output is replaced only with ``--force``, and only when it is ours: an export folder
  whose recipe.yaml lists, with their sha256, exactly the files the folder holds (``written``);
  a results file that is a regular netCDF file with our variables and our ``soup`` fingerprint.
  Anything else (a user's folder holding some recipe.yaml, a link, a device node, an edited
  export) is refused, checked before anything is written or deleted.
* One writer per target: a lock file ``.NAME.explorer-lock`` beside it, created with O_EXCL, holds
  the writer's process id; a second writer refuses while that process runs (a lock left by a
  killed writer is taken over).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from explorer.atomic import running
from explorer.errors import SoupError
from explorer.fingerprint import file_sha256

LOCK = ".{name}.explorer-lock"


def written_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (what an export records it wrote)."""
    return {
        p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def export_problem(folder: Path, written: object) -> str | None:
    """Why ``folder`` is not an unchanged export whose recipe lists ``written`` (None: it is)."""
    if not isinstance(written, Mapping) or not written:
        return "its recipe.yaml lists no files it wrote"
    others = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name == "recipe.yaml" or (path.is_dir() and not path.is_symlink()) or name in written:
            continue
        others.append(name)
    if others:
        return f"it holds files the export did not write ({', '.join(others[:3])})"
    for name, digest in written.items():
        path = folder / str(name)
        if path.is_symlink() or not path.is_file() or file_sha256(path) != digest:
            return f"{name} is missing or changed since the export"
    return None


def results_problem(path: Path) -> str | None:
    """Why the file ``path`` is not a results file of explorer grid that --force may replace."""
    if not regular_file(path):
        return "it is not a regular file (a link, a folder or a device)"
    import xarray as xr  # here: the export path imports this module without xarray's cost

    try:
        with xr.open_dataset(path) as ds:
            ours = "score" in ds.data_vars and "done" in ds.data_vars and "soup" in ds.attrs
    except Exception:  # netCDF/HDF5 raise several types for a file that is not theirs
        ours = False
    return None if ours else "it is not a results file written by explorer grid"


def refuse_foreign_choice(path: Path) -> None:
    """``explorer pick --out``: an existing file is replaced only when it is a choice pick wrote."""
    if not path.exists():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ours = isinstance(data, dict) and "rule" in data and isinstance(data.get("weights"), dict)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        ours = False
    if not ours:
        raise SoupError(
            f"--out {path} exists and is not a choice written by explorer pick: it is kept; choose another path"
        )


def regular_file(path: Path) -> bool:
    """``path`` is a plain file (not a link, folder, device node, pipe or socket)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def claim(target: str | Path) -> Iterator[None]:
    """Hold the lock of ``target`` while the block runs; SoupError when another writer holds it."""
    target = Path(target)
    lock = target.parent / LOCK.format(name=target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _holder(lock)
            if pid is None and _age(lock) < 10:  # just made: its writer has not written its id yet
                raise SoupError(
                    f"{target} is being written by another explorer process now: choose another --out"
                ) from None
            if pid is not None and running(pid):
                raise SoupError(
                    f"{target} is being written by another explorer process (pid {pid}) now: wait for it "
                    "to finish, or choose another --out"
                ) from None
            lock.unlink(missing_ok=True)  # left by a writer that was killed
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    else:
        raise SoupError(f"cannot take the lock {lock}: remove it if no explorer process is writing {target}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None
