"""Files shipped inside the package: the demo's held-out prompts and its per-objective adapters.

    prompts/heldout.txt     the demo's evaluation prompts (one per line), never trained on
    adapters/NAME/          one PEFT LoRA adapter per objective, with the recipe.yaml that trained it
    frontiers/demo.nc       the app's default front on the demo (scripts/package_demo_front.py;
                            used only where its inputs' hashes match: explorer.frontier.packaged)

Read through ``importlib.resources``, so a wheel install finds them as well as a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from explorer.errors import SoupError


def data_path(*parts: str) -> Path:
    """The file or folder ``explorer/data/<parts>`` as a real path on disk.

    Adapters and prompts are read by libraries that want paths (safetensors, transformers), so a
    package imported from a zip file is refused with what to do instead.
    """
    resource = files(__name__).joinpath(*parts)
    if not isinstance(resource, Path):
        raise SoupError(
            f"the package data {'/'.join(parts)} is not a folder on disk ({resource!r}): install "
            "pareto-soup-explorer as a regular (unzipped) package, e.g. pip install pareto-soup-explorer"
        )
    return resource
