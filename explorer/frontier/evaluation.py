"""Evaluate a grid of mixes: every (mix, prompt, sample) is a row of batched generation through
the gated soup, in chunks; each chunk is scored by every objective as soon as it is generated.

The results layout is ``explorer.frontier.results``; the cache and the journal a cancelled run resumes
from are ``explorer.frontier.cache``; this module plans the rows and runs the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import xarray as xr
from transformers import StoppingCriteria, StoppingCriteriaList

from explorer.errors import SoupError
from explorer.frontier.cache import RunFiles, key_of, soup_fingerprint
from explorer.frontier.grid import GridSpec
from explorer.frontier.results import done_mask, empty_results, fill_rows, summarize
from explorer.merges import merges_for
from explorer.methods import MERGES
from explorer.sampling import Generations, check_prompt_lengths, generate, prompt_lengths
from explorer.scheduler import Cancelled, Priority, Scheduler
from explorer.soup import Soup

Row = tuple[int, int, int]  # (mix, prompt, sample)


@dataclass(frozen=True)
class Progress:
    """Where a run stands after a chunk."""

    rows_done: int
    rows_total: int
    chunks_done: int
    chunks_total: int
    elapsed_s: float
    resumed_rows: int = 0  # rows taken from a previous, cancelled run
    workers_alive: int | None = None  # Ray workers that can take a chunk (None: this process)

    @property
    def fraction(self) -> float:
        return self.rows_done / max(1, self.rows_total)


def plan_rows(tokenizer, spec: GridSpec) -> list[tuple[int, int, int]]:
    """Every (mix, prompt, sample) once, ordered by prompt length then prompt, so that a chunk
    mostly holds rows of one prompt (little left padding, the same numerics as one row alone).
    The mixes of PEFT's merges come last, one mix after another: a chunk then holds few merged
    mixes, each merged once for all its rows."""
    lengths = prompt_lengths(tokenizer, list(spec.prompts))
    order = sorted(range(len(spec.prompts)), key=lambda p: (lengths[p], p))
    m, _, s = spec.shape
    merged = [mi for mi in range(m) if spec.mix_methods[mi] in MERGES]
    shared = [mi for mi in range(m) if spec.mix_methods[mi] not in MERGES]
    rows = [(mi, p, si) for p in order for mi in shared for si in range(s)]
    return rows + [(mi, p, si) for mi in merged for p in order for si in range(s)]


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
    """Stops generation (raises ``Cancelled``) at the first step where ``is_set()`` is true."""

    def __init__(self, is_set: Callable[[], bool]):
        self.is_set = is_set

    def __call__(self, input_ids, scores, **kwargs):
        if self.is_set():
            raise Cancelled
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def cancel_criteria(is_set: Callable[[], bool]) -> StoppingCriteriaList:
    """Stopping criteria for ``generate`` that raise ``Cancelled`` as soon as ``is_set()`` is true."""
    return StoppingCriteriaList([_CancelCriteria(is_set)])


@dataclass(frozen=True)
class ChunkResult:
    """One generated and scored chunk, row by row."""

    texts: list[str]
    n_tokens: list[int]
    finished: list[bool]
    scores: np.ndarray  # (rows, K)


def run_chunk(
    soup: Soup,
    spec: GridSpec,
    chunk: Sequence[Row],
    stop: StoppingCriteriaList | None = None,
    *,
    scheduler: Scheduler | None = None,
    priority: int = Priority.GRID,
    cancel: threading.Event | None = None,
) -> ChunkResult:
    """Generate the rows ``chunk`` of ``spec`` and score them by every objective.

    Soup and decoding-time (mod) rows: with a ``scheduler`` its requests of ``priority`` (batched
    with whatever else it runs; ``cancel`` stops them and raises ``Cancelled``), else one
    ``generate`` call (mod rows through a scheduler of their own). Rows of PEFT's merges: one
    batch per merged mix, on PEFT's model (``explorer.merges``)."""
    methods = [spec.mix_methods[mi] for mi, _, _ in chunk]
    texts: list[str] = [""] * len(chunk)
    n_tokens: list[int] = [0] * len(chunk)
    finished: list[bool] = [False] * len(chunk)

    def put(rows: Sequence[int], out: Generations) -> None:
        for j, text, ids, done in zip(rows, out.texts, out.token_ids, out.finished, strict=True):
            texts[j], n_tokens[j], finished[j] = text, len(ids), bool(done)

    decoded = [j for j, m in enumerate(methods) if m not in MERGES]
    if decoded:
        put(decoded, _decode_rows(soup, spec, [chunk[j] for j in decoded], stop, scheduler, priority, cancel))
    merged: dict[tuple[int, str], list[int]] = {}
    for j, m in enumerate(methods):
        if m in MERGES:
            merged.setdefault((chunk[j][0], m), []).append(j)
    for (mi, method), rows in merged.items():
        if cancel is not None and cancel.is_set():
            raise Cancelled
        out = merges_for(soup).generate(
            [spec.prompts[chunk[j][1]] for j in rows],
            np.asarray(spec.mixes)[mi].tolist(),
            method,
            config=spec.sampling,
            sample_ids=[chunk[j][2] for j in rows],
            stopping_criteria=stop,
        )
        put(rows, out)
    prompts = [spec.prompts[p] for _, p, _ in chunk]
    scores = np.stack([o.score(prompts, texts) for o in spec.objectives], axis=1)  # (rows, K)
    return ChunkResult(texts, n_tokens, finished, scores)


def _decode_rows(
    soup: Soup,
    spec: GridSpec,
    rows: Sequence[Row],
    stop: StoppingCriteriaList | None,
    scheduler: Scheduler | None,
    priority: int,
    cancel: threading.Event | None,
) -> Generations:
    """Soup and mod rows: through the scheduler, or one ``generate`` call when they are all soup."""
    prompts = [spec.prompts[p] for _, p, _ in rows]
    weights = torch.as_tensor(np.asarray(spec.mixes)[[mi for mi, _, _ in rows]])
    sample_ids = [si for _, _, si in rows]
    methods = [spec.mix_methods[mi] for mi, _, _ in rows]
    if scheduler is None and any(m != "soup" for m in methods):  # decoding-time mixing needs one
        with closing(Scheduler(soup)) as own:
            return _decode_rows(soup, spec, rows, stop, own, priority, cancel)
    if scheduler is not None:
        return scheduler.generate(
            prompts,
            weights,
            config=spec.sampling,
            sample_ids=sample_ids,
            priority=priority,
            cancel=cancel,
            method=methods,
        )
    return generate(
        soup, prompts, weights, config=spec.sampling, sample_ids=sample_ids, stopping_criteria=stop
    )


class ChunkExecutor(Protocol):
    """Where a grid's chunks are generated and scored: this process (``LocalExecutor``) or Ray
    workers (``explorer.distributed.RayExecutor``). The run loop (``run_grid``) keeps the
    journal, the cache and the results, whichever executor runs the chunks."""

    names: tuple[str, ...]

    def fingerprint(self) -> dict:
        """The soup's fingerprint (``explorer.frontier.cache.soup_fingerprint``) where the chunks run."""
        ...

    def plan(self, spec: GridSpec) -> list[Row]:
        """Every row of ``spec`` in generation order (``plan_rows``)."""
        ...

    def batch_size(self, spec: GridSpec) -> int:
        """Rows per chunk when none is given."""
        ...

    def workers_alive(self) -> int | None:
        """Workers that can take a chunk (None: this process)."""
        ...

    def run(
        self, spec: GridSpec, chunks: Sequence[Sequence[Row]], cancel: threading.Event | None
    ) -> Iterator[tuple[int, ChunkResult]]:
        """Yield ``(chunk index, result)`` as chunks finish, in any order; stop early (within
        one chunk) once ``cancel`` is set."""
        ...


class LocalExecutor:
    """Runs the chunks one after the other on a soup in this process: through ``generate``, or
    as requests of ``priority`` to the ``scheduler`` that owns the soup (the app's)."""

    def __init__(self, soup: Soup, *, scheduler: Scheduler | None = None, priority: int = Priority.GRID):
        self.soup = soup
        self.names = soup.names
        self.scheduler, self.priority = scheduler, priority

    def fingerprint(self) -> dict:
        return soup_fingerprint(self.soup)

    def plan(self, spec: GridSpec) -> list[Row]:
        # every prompt must fit the model's context: checked for all of them before generating any
        lengths = prompt_lengths(self.soup.tokenizer, spec.prompts)
        check_prompt_lengths(self.soup, lengths, spec.sampling.max_new_tokens)
        return plan_rows(self.soup.tokenizer, spec)

    def batch_size(self, spec: GridSpec) -> int:
        return auto_batch_size(self.soup, spec)

    def workers_alive(self) -> int | None:
        return None

    def run(
        self, spec: GridSpec, chunks: Sequence[Sequence[Row]], cancel: threading.Event | None
    ) -> Iterator[tuple[int, ChunkResult]]:
        stop = cancel_criteria(cancel.is_set) if cancel is not None else None
        for c, chunk in enumerate(chunks):
            if cancel is not None and cancel.is_set():
                return
            try:
                result = run_chunk(
                    self.soup,
                    spec,
                    chunk,
                    stop,
                    scheduler=self.scheduler,
                    priority=self.priority,
                    cancel=cancel,
                )
            except Cancelled:
                return
            yield c, result


def evaluate_grid(
    soup: Soup,
    spec: GridSpec,
    *,
    batch_size: int | None = None,
    cache: Path | str | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Progress], None] | None = None,
    scheduler: Scheduler | None = None,
    priority: int = Priority.GRID,
) -> xr.Dataset:
    """Generate and score every (mix, prompt, sample) of ``spec``; returns the summarized dataset.

    ``batch_size`` rows per chunk (default ``auto_batch_size``). With ``cache`` (a folder), a
    finished run is read back at once and a cancelled one resumes. ``cancel`` stops the run
    within one generation step; the chunks finished so far are kept (on disk with ``cache``),
    and the returned dataset has ``attrs["complete"] == 0``. ``on_chunk(partial, progress)``
    is called after every chunk with the summarized partial results. With a ``scheduler`` (the app's) the rows are its requests of
    ``priority``: they share batches with other requests and give way to more urgent ones.
    """
    return run_grid(
        LocalExecutor(soup, scheduler=scheduler, priority=priority),
        spec,
        batch_size=batch_size,
        cache=cache,
        cancel=cancel,
        on_chunk=on_chunk,
    )


def check_scored(ds: xr.Dataset) -> None:
    """A SoupError when an objective scored none of the grid's responses (NaN for every one): a
    broken scorer, whose front would be empty and its hypervolume NaN."""
    scores = ds["score"].values  # (M, P, S, K)
    for k, name in enumerate(ds["objective"].values):
        if np.isnan(scores[..., k]).all():
            raise SoupError(
                f"objective '{name}' scored none of the {scores[..., k].size} responses (NaN for every "
                "one): fix the scorer; nothing was cached"
            )


def run_grid(
    executor: ChunkExecutor,
    spec: GridSpec,
    *,
    batch_size: int | None = None,
    cache: Path | str | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Progress], None] | None = None,
) -> xr.Dataset:
    """``evaluate_grid`` with the chunks run by ``executor``: the same chunks, journal, cache key
    and results whichever executor runs them and in whatever order the chunks finish."""
    start = time.time()
    batch = int(batch_size or executor.batch_size(spec))
    if batch < 1:
        raise SoupError(f"batch size must be at least 1, got {batch}")
    fingerprint = executor.fingerprint()
    key = key_of(fingerprint, executor.names, spec)
    files = RunFiles(cache, key) if cache is not None else None
    if files is not None and (finished := files.finished(spec)) is not None:
        if on_chunk is not None:
            n = int(done_mask(finished).size)
            on_chunk(finished, Progress(n, n, 1, 1, time.time() - start, resumed_rows=n))
        return finished
    ds = empty_results(spec, adapters=executor.names, fingerprint=fingerprint)
    ds.attrs["cache_key"] = key
    resumed = files.resume(ds) if files is not None else 0
    done = done_mask(ds)
    rows = [r for r in executor.plan(spec) if not done[r]]
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    total = int(done.size)
    for finished_chunks, (c, out) in enumerate(executor.run(spec, chunks, cancel), start=1):
        chunk = chunks[c]
        fill_rows(ds, chunk, out.texts, out.n_tokens, out.finished, out.scores)
        if files is not None:
            files.append(chunk, out.texts, out.n_tokens, out.finished, out.scores)
        if on_chunk is not None:
            progress = Progress(
                int(done_mask(ds).sum()),
                total,
                finished_chunks,
                len(chunks),
                time.time() - start,
                resumed,
                executor.workers_alive(),
            )
            on_chunk(summarize(ds), progress)
    complete = bool(done_mask(ds).all())
    if complete:
        try:
            check_scored(ds)
        except SoupError:
            if files is not None:  # its chunks are worth nothing: no resume from them either
                files.journal.unlink(missing_ok=True)
            raise
    ds.attrs["complete"] = int(complete)
    ds = summarize(ds)
    if complete and files is not None:
        files.complete(ds)
    return ds
