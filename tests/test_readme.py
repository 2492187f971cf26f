"""The README's layout list matches the tree: every module and sub-folder of the package, every
top-level folder of the project."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("explorer/", "models/", "assets/", "tests/", "bench/", "notebooks/")


def layout() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Layout") :]


def test_the_layout_names_every_module_and_folder():
    section = layout()
    modules = sorted(p.name for p in (ROOT / "explorer").glob("*.py") if p.name != "__init__.py")
    folders = sorted(
        f"{d.name}/" for d in (ROOT / "explorer").iterdir() if d.is_dir() and d.name != "__pycache__"
    )
    # whole names: "grid.py" inside "adaptive_grid.py" does not count
    named = set(re.findall(r"(?<![\w./])([\w]+(?:\.py|/))", section))
    assert [m for m in [*modules, *folders] if m not in named] == []
    assert all((ROOT / t).is_dir() for t in TOP) and [t for t in TOP if t not in section] == []
