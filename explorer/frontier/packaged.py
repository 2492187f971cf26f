"""The demo's default frontier shipped with the package, so that the demo opens with its front drawn.

``explorer/data/frontiers/demo.nc`` is a finished run of the app's default grid on the demo,
written by ``python scripts/package_demo_front.py``. It is used only where it is exactly the run
this machine would compute: its cache key (``explorer.frontier.cache.cache_key``: the hashes of
the base model's files and the adapters' files, dtype, device, the mixes, prompts, decoding and
objectives) equals this machine's, and the source files of the objectives' scorers hash the same.
Then it seeds the results cache under that key and the cache serves it like any finished run;
otherwise the front is computed here. No Panel, HoloViews or Bokeh here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from explorer.atomic import atomic_write
from explorer.data import data_path
from explorer.fingerprint import source_sha256
from explorer.frontier.cache import RunFiles, cache_key
from explorer.frontier.grid import GridSpec
from explorer.objectives import Objective
from explorer.soup import Soup

PACKAGED_NAME = "demo.nc"
ORIGIN = "packaged demo front"  # the ``origin`` attribute of the packaged file (copied with it)


def packaged_front() -> Path:
    """Where the package keeps its demo front (the file may be absent in a checkout)."""
    return data_path("frontiers") / PACKAGED_NAME


def scorer_hashes(objectives: Sequence[Objective]) -> dict[str, str]:
    """objective -> sha256 of the file that defines its scorer (a built-in scorer's code changes:
    the packaged front no longer applies)."""
    return {o.name: source_sha256(o.scorer) for o in objectives}


def mark_packaged(ds: xr.Dataset, objectives: Sequence[Objective]) -> xr.Dataset:
    """``ds`` (a finished run) marked as the packaged front, with its scorers' hashes."""
    out = ds.copy()
    out.attrs["origin"] = ORIGIN
    out.attrs["scorer_sources"] = json.dumps(scorer_hashes(objectives), sort_keys=True)
    return out


def why_not(packaged: Path, key: str, objectives: Sequence[Objective]) -> str | None:
    """Why the packaged front at ``packaged`` is not the run of ``key`` with these scorers, or None
    when it is."""
    if not packaged.is_file():
        return f"no packaged front at {packaged.name}"
    try:
        with xr.open_dataset(packaged) as ds:
            attrs = dict(ds.attrs)
    except Exception as err:  # a damaged file is never used
        return f"the packaged front cannot be read ({type(err).__name__})"
    if attrs.get("cache_key") != key:
        return "its cache key differs (base model, adapters, prompts, decoding, objectives or device)"
    if json.loads(str(attrs.get("scorer_sources", "{}"))) != scorer_hashes(objectives):
        return "a scorer's code differs"
    return None


def seed_cache(soup: Soup, spec: GridSpec, cache: Path | str, *, packaged: Path | None = None) -> bool:
    """Copy the packaged front into the results cache under ``spec``'s key when it is exactly
    that run (see the module docstring) and the cache has no finished run of it yet; True when
    it was copied."""
    packaged = packaged_front() if packaged is None else packaged
    key = cache_key(soup, spec)
    files = RunFiles(cache, key)
    if files.final.is_file() or why_not(packaged, key, spec.objectives) is not None:
        return False
    with atomic_write(files.final) as tmp:
        shutil.copyfile(packaged, tmp)
    return True


def origin_of(ds: xr.Dataset | None) -> str:
    """Where a frontier comes from, in words: the packaged demo front, or computed here."""
    if ds is None:
        return ""
    return "the packaged demo front" if ds.attrs.get("origin") == ORIGIN else "computed here"
