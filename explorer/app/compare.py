"""Word-level differences between a response and a reference response, as HTML."""

from __future__ import annotations

import difflib
import html


def highlight_differences(text: str, reference: str) -> str:
    """``text`` as HTML with the words that differ from ``reference`` wrapped in ``<mark>``."""
    words, ref_words = text.split(), reference.split()
    out = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=ref_words, b=words, autojunk=False).get_opcodes():
        chunk = html.escape(" ".join(words[j1:j2]))
        if not chunk:
            continue
        out.append(chunk if op == "equal" else f"<mark>{chunk}</mark>")
    return " ".join(out)
