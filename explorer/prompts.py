"""Prompt files: one user request per line, UTF-8 text; blank lines and '#' comments skipped."""

from __future__ import annotations

from pathlib import Path

from explorer.data import data_path
from explorer.errors import SoupError
from explorer.loaders import read_text

HELDOUT = data_path("prompts", "heldout.txt")  # the demo's evaluation prompts, never trained on


def read_prompts(path: str | Path, *, limit: int | None = None) -> list[str]:
    """The prompts in ``path`` (the first ``limit`` when given), refusing empty and non-text files."""
    file = Path(path).expanduser()
    text = read_text(file, what="prompts file", hint="give a text file with one request per line")
    prompts = parse_prompts(text)
    if not prompts:
        raise SoupError(f"prompts file {file} holds no prompts: write one request per line")
    if limit is not None:
        if limit < 1:
            raise SoupError(f"the number of prompts must be at least 1, got {limit}")
        prompts = prompts[:limit]
    return prompts


def parse_prompts(text: str) -> list[str]:
    """The prompts of a prompt file's text: one per line, stripped; blank lines and ``#`` comments
    skipped; a byte-order mark (an upload decoded as plain UTF-8 keeps it) is no part of the text."""
    text = text.removeprefix("\ufeff")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
