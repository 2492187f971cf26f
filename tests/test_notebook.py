"""The notebook in notebooks/ runs top to bottom (nbclient, a real kernel, the real demo)."""

from __future__ import annotations

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
