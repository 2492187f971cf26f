"""The notebook in notebooks/ runs top to bottom (nbclient, a real kernel, the real demo)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def test_the_notebook_runs_and_draws_a_frontier(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the venv's own kernel (jupyter_client runs a "python" kernelspec with this interpreter);
    # a loaded CI machine may need more than the default 60 s to start it
    NotebookClient(
        nb,
        timeout=600,
        startup_timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("hypervolume" in o.get("text", "") for o in outputs)  # the headless frontier was drawn
    # issue 22, problem 9: the frontier is a plot (HoloViews' notebook output), not its text repr
    last = nb.cells[-1]["outputs"][-1]
    assert "application/vnd.holoviews_exec.v0+json" in last.get("data", {}), last
    text_only = [o for o in outputs if set(o.get("data", {})) == {"text/plain"}]
    assert not [o for o in text_only if o["data"]["text/plain"].startswith(":")]
    # the count the notebook says is the data's (7 mixes: corners, edge middles, the centre)
    texts = [o.get("text", "") for o in outputs] + [
        str(o.get("data", {}).get("text/plain", "")) for o in outputs
    ]
    said = re.search(r"(\d+) mixes x", "".join(texts))
    held = re.search(r"mix: (\d+)", "".join(texts))
    assert said and held and said.group(1) == held.group(1) == "7"
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"\b\d+ mixes", prose)  # no count in the prose that could drift from the data
    # no log lines of libraries it never uses (Ray is imported only for --ray)
    assert not [t for t in texts if "INFO" in t or "ray" in t.lower().split()], texts
