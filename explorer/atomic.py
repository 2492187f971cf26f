"""The one atomic-write helper: build a file or folder under a temporary name beside its target,
move it into place when complete, and leave nothing behind when anything fails."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from explorer.errors import SoupError

_MARK = "explorer-tmp"  # in the name of every temporary folder, with the writing process's id
_STALE = re.compile(rf"^\..+\.{_MARK}-(\d+)-")


def remove_stale(parent: Path) -> list[Path]:
    """Delete the temporary folders that killed writers left in ``parent`` (a writer killed with
    SIGKILL cannot clean up; a merged export's leftover is as big as the model). A folder is stale
    when the process named in it is gone; the ones of running processes are left alone."""
    removed = []
    for entry in parent.iterdir() if parent.is_dir() else []:
        match = _STALE.match(entry.name)
        # only real folders: a link with such a name is not ours (rmtree would follow nothing, but
        # neither may it be renamed onto)
        if match and entry.is_dir() and not entry.is_symlink() and not running(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def running(pid: int) -> bool:
    """Whether process ``pid`` is alive (this one counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def atomic_write(target: str | Path, *, folder: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block ends without error it becomes ``target``.

    ``folder=False``: the block writes a file at the yielded path; ``os.replace`` swaps it in
    atomically. ``folder=True``: the yielded path is an empty folder to fill; an existing
    ``target`` is renamed aside first and deleted only once the new folder is in place. On any
    error (a full disk, Ctrl-C) the temporary is removed and ``target`` is left as it was.
    ``replace=False``: a ``target`` that appeared meanwhile (another writer) is kept and the write
    refused with a SoupError.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        remove_stale(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_MARK}-{os.getpid()}-", dir=target.parent))
    else:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if not replace and (target.exists() or target.is_symlink()):
            raise SoupError(
                f"{target} was created by another process meanwhile: it is kept; choose another --out"
            )
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
    # a fresh empty folder (a left-behind link or folder of that name is never reused): the rename
    # replaces it
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_MARK}-{os.getpid()}-old", dir=target.parent))
    target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_output_path(path: str, *, example: str = "front.nc") -> Path:
    """Refuse, before any work, an output we could not write (``example``: a file name to suggest)."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise SoupError(f"--out {out} is a folder: give a file name such as {out / example}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise SoupError(f"--out {out}: folder {parent} does not exist; create it first")
    try:  # a real write: permissions, read-only file systems and full disks all show here
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".explorer-write-test-"):
            pass
    except OSError as err:
        raise SoupError(
            f"--out {out}: cannot write in {parent} ({err.strerror}); choose another path"
        ) from None
    if (out.exists() or out.is_symlink()) and not stat.S_ISREG(os.lstat(out).st_mode):
        raise SoupError(
            f"--out {out} exists and is not a regular file (a link, a device or a pipe): it is kept; "
            "choose another path"
        )
    if out.exists() and not os.access(out, os.W_OK):
        raise SoupError(f"--out {out}: the file exists and is read-only; choose another path")
    return out
