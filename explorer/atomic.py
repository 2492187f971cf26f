"""The one atomic-write helper: build a file or folder under a temporary name beside its target,
move it into place when complete, and leave nothing behind when anything fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(target: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block ends without error it becomes ``target``.

    ``folder=False``: the block writes a file at the yielded path; ``os.replace`` swaps it in
    atomically. ``folder=True``: the yielded path is an empty folder to fill; an existing
    ``target`` is renamed aside first and deleted only once the new folder is in place. On any
    error (a full disk, Ctrl-C) the temporary is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    else:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if folder:
            _swap_folder(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _swap_folder(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` folder to ``target``, replacing an old one only at the end."""
    if not target.exists():
        tmp.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
