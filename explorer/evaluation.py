"""Evaluate a grid of mixes: every (mix, prompt, sample) is a row of batched generation through
the gated soup, in chunks; each chunk is scored by every objective as soon as it is generated.

The results layout is ``explorer.results``; the cache and the journal a cancelled run resumes
from are ``explorer.cache``; this module plans the rows and runs the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from transformers import StoppingCriteria, StoppingCriteriaList

from explorer.cache import RunFiles, cache_key, soup_fingerprint
from explorer.errors import SoupError
from explorer.grid import GridSpec
from explorer.results import done_mask, empty_results, fill_rows, summarize
from explorer.sampling import encode_prompts, generate
from explorer.soup import Soup


class Cancelled(Exception):
    """Raised inside generation when the run's cancel event is set."""


@dataclass(frozen=True)
class Progress:
    """Where a run stands after a chunk."""

    rows_done: int
    rows_total: int
    chunks_done: int
    chunks_total: int
    elapsed_s: float
    resumed_rows: int = 0  # rows taken from a previous, cancelled run

    @property
    def fraction(self) -> float:
        return self.rows_done / max(1, self.rows_total)


def plan_rows(tokenizer, spec: GridSpec) -> list[tuple[int, int, int]]:
    """Every (mix, prompt, sample) once, ordered by prompt length then prompt, so that a chunk
    mostly holds rows of one prompt (little left padding, the same numerics as one row alone)."""
    lengths = encode_prompts(tokenizer, list(spec.prompts))["attention_mask"].sum(dim=1).tolist()
    order = sorted(range(len(spec.prompts)), key=lambda p: (lengths[p], p))
    m, _, s = spec.shape
    return [(mi, p, si) for p in order for mi in range(m) for si in range(s)]


def auto_batch_size(soup: Soup, spec: GridSpec) -> int:
    """Rows per chunk: 64 on the CPU; on a GPU, as many as fit a third of the free memory
    (KV cache for prompt + new tokens and the last logits per row), at most 1024."""
    if soup.device.type != "cuda":
        return 64
    cfg: Any = soup.model.config
    layers = int(getattr(cfg, "num_hidden_layers", 24))
    heads = cfg.num_key_value_heads if getattr(cfg, "num_key_value_heads", None) else cfg.num_attention_heads
    head_dim = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    tokens = 512 + int(spec.sampling.max_new_tokens)
    itemsize = torch.finfo(soup.dtype).bits // 8
    per_row = 2 * layers * heads * head_dim * tokens * itemsize + 4 * cfg.vocab_size * 4
    free, _ = torch.cuda.mem_get_info(soup.device)
    return int(max(1, min(1024, (free // 3) // per_row)))


class _CancelCriteria(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        if self.event.is_set():
            raise Cancelled
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def evaluate_grid(
    soup: Soup,
    spec: GridSpec,
    *,
    batch_size: int | None = None,
    cache: Path | str | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Progress], None] | None = None,
) -> xr.Dataset:
    """Generate and score every (mix, prompt, sample) of ``spec``; returns the summarized dataset.

    ``batch_size`` rows per chunk (default ``auto_batch_size``). With ``cache`` (a folder), a
    finished run is read back at once and a cancelled one resumes. ``cancel`` stops the run
    within one generation step; the chunks finished so far are kept (on disk with ``cache``),
    and the returned dataset has ``attrs["complete"] == 0``. ``on_chunk(partial, progress)``
    is called after every chunk with the summarized partial results.
    """
    start = time.time()
    batch = int(batch_size or auto_batch_size(soup, spec))
    if batch < 1:
        raise SoupError(f"batch size must be at least 1, got {batch}")
    key = cache_key(soup, spec)
    files = RunFiles(cache, key) if cache is not None else None
    if files is not None and (finished := files.finished()) is not None:
        if on_chunk is not None:
            n = int(done_mask(finished).size)
            on_chunk(finished, Progress(n, n, 1, 1, time.time() - start, resumed_rows=n))
        return finished
    ds = empty_results(spec, adapters=soup.names, fingerprint=soup_fingerprint(soup))
    ds.attrs["cache_key"] = key
    resumed = files.resume(ds) if files is not None else 0
    done = done_mask(ds)
    rows = [r for r in plan_rows(soup.tokenizer, spec) if not done[r]]
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    total = int(done.size)
    stop = StoppingCriteriaList([_CancelCriteria(cancel)]) if cancel is not None else None
    complete = True
    for c, chunk in enumerate(chunks):
        if cancel is not None and cancel.is_set():
            complete = False
            break
        prompts = [spec.prompts[p] for _, p, _ in chunk]
        try:
            out = generate(
                soup,
                prompts,
                torch.as_tensor(np.asarray(spec.mixes)[[mi for mi, _, _ in chunk]]),
                config=spec.sampling,
                sample_ids=[si for _, _, si in chunk],
                stopping_criteria=stop,
            )
        except Cancelled:
            complete = False
            break
        scores = np.stack([o.score(prompts, out.texts) for o in spec.objectives], axis=1)  # (rows, K)
        n_tokens = [len(t) for t in out.token_ids]
        fill_rows(ds, chunk, out.texts, n_tokens, out.finished, scores)
        if files is not None:
            files.append(chunk, out.texts, n_tokens, out.finished, scores)
        if on_chunk is not None:
            rows_done = int(done_mask(ds).sum())
            on_chunk(
                summarize(ds), Progress(rows_done, total, c + 1, len(chunks), time.time() - start, resumed)
            )
    ds.attrs["complete"] = int(complete)
    ds = summarize(ds)
    if complete and files is not None:
        files.complete(ds)
    return ds
