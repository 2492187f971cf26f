"""The results cache: keys of everything that determines a grid run, finished runs as netCDF, and
the journal of a run in progress (one JSON line per finished chunk) that a cancelled run resumes from.

    <cache>/<key>.nc              a finished run (summarized results)
    <cache>/<key>.partial.jsonl   the chunks of an unfinished run
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from explorer.fingerprint import folder_hashes, source_sha256
from explorer.frontier.grid import GridSpec
from explorer.frontier.results import fill_rows, save_results
from explorer.objectives import BUILTINS, Objective
from explorer.soup import Soup

FORMAT_VERSION = "1"  # bump when the dataset layout or the generation path changes results


def soup_fingerprint(soup: Soup) -> dict:
    """What determines a soup's outputs: every file of the base folder that loading reads (weights,
    configs, tokenizer, chat template), every file of each adapter that loading reads (config and
    weights), dtype, device."""
    if soup.base_path is not None:
        base = folder_hashes(soup.base_path)
    else:  # an in-memory model: hash its weights (slower, but exact)
        digest = hashlib.sha256()
        for name, t in soup.model.state_dict().items():
            digest.update(name.encode())
            digest.update(t.detach().to("cpu", torch.float32).numpy().tobytes())
        base = {"state_dict": digest.hexdigest()}
    return {
        "base": base,
        "adapters": {n: dict(a.files) for n, a in soup.adapters.items()},
        "dtype": str(soup.dtype),
        "device": soup.device.type,
    }


def cache_key(soup: Soup, spec: GridSpec) -> str:
    """A hex key of everything that determines the results of ``spec`` on ``soup``."""
    return key_of(soup_fingerprint(soup), soup.names, spec)


def key_of(fingerprint: dict, names: Sequence[str], spec: GridSpec) -> str:
    """``cache_key`` from a soup's fingerprint and adapter names (a soup loaded elsewhere: a Ray worker)."""
    payload = {
        "format": FORMAT_VERSION,
        "soup": fingerprint,
        "adapters": list(names),
        "mixes": np.round(np.asarray(spec.mixes, dtype=np.float64), 12).tolist(),
        "prompts": list(spec.prompts),
        "samples": int(spec.samples),
        "sampling": asdict(spec.sampling),
        "objectives": [[o.name, o.direction, o.version, _scorer_id(o)] for o in spec.objectives],
    }
    if any(m != "soup" for m in spec.mix_methods):  # a soup-only grid keeps the key it always had
        payload["methods"] = list(spec.mix_methods)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _scorer_id(objective: Objective) -> str:
    """The scorer's name, and for one that is not a built-in the hash of its source file, so that
    fixing a scorer's code computes its results again."""
    fn = objective.scorer
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    builtin = BUILTINS.get(objective.name)
    return name if builtin is not None and builtin.scorer is fn else f"{name}@{source_sha256(fn)[:16]}"


class RunFiles:
    """Where one run lives in a cache folder: its finished file and its journal."""

    def __init__(self, cache: Path | str, key: str):
        folder = Path(cache).expanduser()
        self.final = folder / f"{key}.nc"
        self.journal = folder / f"{key}.partial.jsonl"

    def finished(self, spec: GridSpec | None = None) -> xr.Dataset | None:
        """The finished results, or None. A file that cannot be read (cut by a crash or a full disk)
        or does not fit ``spec`` (other dimensions or objectives: damaged or edited) is moved aside
        with a warning, and the run is computed again."""
        if not self.final.is_file():
            return None
        try:
            ds = xr.load_dataset(self.final)
            if spec is not None:
                _check_fits(ds, spec)
            return ds
        except Exception as err:  # netCDF/HDF5 raise several types for a damaged file
            aside = self.final.with_name(f"{self.final.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.final, aside)
            warnings.warn(
                f"cached results {self.final} could not be read ({type(err).__name__}: {err}); moved "
                f"aside to {aside.name} and computed again",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    def append(
        self,
        rows: Sequence[tuple[int, int, int]],
        texts: Sequence[str],
        n_tokens: Sequence[int],
        finished: Sequence[bool],
        scores: np.ndarray,
    ) -> None:
        """Record one finished chunk (flushed to disk before the next chunk starts)."""
        record = {
            "rows": [list(r) for r in rows],
            "texts": list(texts),
            "n_tokens": [int(n) for n in n_tokens],
            "finished": [bool(f) for f in finished],
            "scores": [[None if np.isnan(v) else float(v) for v in row] for row in scores],
        }
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def resume(self, ds: xr.Dataset) -> int:
        """Fill ``ds`` with the chunks a cancelled run left in the journal; returns the rows taken."""
        if not self.journal.is_file():
            return 0
        taken, skipped = 0, 0
        text = self.journal.read_bytes().decode("utf-8", errors="replace")
        for line in text.splitlines():
            try:  # a line cut or garbled by a crash: that chunk is generated again
                taken += self._fill(ds, json.loads(line))
            except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                skipped += 1
        if skipped:
            warnings.warn(
                f"{skipped} damaged line(s) in {self.journal.name} were skipped; those chunks are "
                "generated again",
                RuntimeWarning,
                stacklevel=2,
            )
        return taken

    @staticmethod
    def _fill(ds: xr.Dataset, r: dict) -> int:
        """Fill ``ds`` with one journal record; ValueError/KeyError/TypeError/IndexError when it is damaged."""
        scores = np.array(
            [[np.nan if v is None else v for v in row] for row in r["scores"]], dtype=np.float64
        )
        rows = [(int(a), int(b), int(c)) for a, b, c in r["rows"]]
        shape, k = ds["done"].shape, ds.sizes["objective"]
        n = len(rows)
        if scores.shape != (n, k) or not (len(r["texts"]) == len(r["n_tokens"]) == len(r["finished"]) == n):
            raise ValueError("a record whose lengths do not match")
        kinds = ((r["texts"], str), (r["n_tokens"], int), (r["finished"], bool))
        if any(not isinstance(v, kind) for values, kind in kinds for v in values):
            raise TypeError("a record whose texts, token counts or flags have the wrong type")
        if any(not (0 <= i < size) for row in rows for i, size in zip(row, shape, strict=True)):
            raise IndexError("a row outside the grid")
        fill_rows(ds, rows, r["texts"], r["n_tokens"], r["finished"], scores)
        return n

    def complete(self, ds: xr.Dataset) -> None:
        """Store the finished results and drop the journal."""
        save_results(ds, self.final)
        self.journal.unlink(missing_ok=True)


def _check_fits(ds: xr.Dataset, spec: GridSpec) -> None:
    """ValueError unless ``ds`` holds the results of ``spec``: its sizes, objectives and variables."""
    m, p, s = spec.shape
    want = {"mix": m, "prompt": p, "sample": s, "objective": len(spec.objectives)}
    sizes = {d: ds.sizes.get(d) for d in want}
    if sizes != want or not {"score", "text", "done", "weights"} <= set(ds.data_vars):
        raise ValueError(f"it holds a grid of sizes {sizes}, not {want}")
    if [str(o) for o in ds["objective"].values] != [o.name for o in spec.objectives]:
        raise ValueError("its objectives are not the grid's")


def load_cached(soup: Soup, spec: GridSpec, cache: Path | str) -> xr.Dataset | None:
    """The finished results of ``spec`` from the cache folder, or None (nothing is generated)."""
    return RunFiles(cache, cache_key(soup, spec)).finished(spec)
