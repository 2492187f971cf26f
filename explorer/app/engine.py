"""The state every browser session shares: one soup in memory, its objectives, and the frontier grid.

Generation is serialized by the soup's lock. Interactive requests go first: the background grid
runs in small chunks and, before each chunk, waits while an interactive generation is waiting
or running, so a slider never waits for more than the chunk in flight.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import param
import torch
import xarray as xr
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from explorer.errors import SoupError
from explorer.evaluation import Progress, evaluate_grid
from explorer.export import export_mix
from explorer.grid import GridSpec
from explorer.launch import AppSetup
from explorer.objectives import Objective
from explorer.results import is_complete, means, mix_scores, objective_names
from explorer.sampling import Generations, SamplingConfig, generate
from explorer.soup import Soup


class _TokenStreamer(BaseStreamer):
    """Calls ``on_text(text_so_far)`` after every generated token (the first ``put`` is the prompt)."""

    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids += value.reshape(-1).tolist()
        self.on_text(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def end(self):
        pass


class _StopOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class Engine(param.Parameterized):
    """One soup and its frontier, shared by every session of the app process."""

    results = param.Parameter(default=None, doc="the frontier (xarray.Dataset), partial while a grid runs")
    grid_running = param.Boolean(default=False)
    grid_progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    grid_message = param.String(default="")

    def __init__(
        self,
        soup: Soup,
        objectives: Sequence[Objective],
        *,
        prompts: Sequence[str],
        grid_prompts: Sequence[str],
        resolution: int = 10,
        grid_batch_size: int = 8,
        export_dir: Path,
        cache_dir: Path | None = None,
        **params,
    ):
        super().__init__(**params)
        if len(objectives) < 1:
            raise SoupError("the app needs at least one objective: pass --objective NAME")
        self.soup = soup
        self.objectives = list(objectives)
        self.prompts = list(prompts)
        self.grid_prompts = list(grid_prompts)
        self.resolution = resolution
        self.grid_batch_size = grid_batch_size
        self.export_dir = Path(export_dir)
        self.cache_dir = cache_dir
        self._interactive = 0  # interactive requests waiting or running
        self._idle = threading.Condition()
        self._grid_cancel: threading.Event | None = None
        self._grid_thread: threading.Thread | None = None

    @classmethod
    def from_setup(cls, setup: AppSetup) -> Engine:
        """The engine of a loaded app set-up (``explorer.launch.prepare_app``)."""
        engine = cls(
            setup.soup,
            setup.objectives,
            prompts=setup.prompts,
            grid_prompts=setup.grid_prompts,
            resolution=setup.resolution,
            grid_batch_size=setup.grid_batch_size,
            export_dir=setup.export_dir,
            cache_dir=setup.cache_dir,
        )
        cached = setup.cached_front()
        if cached is not None:  # a front computed before appears at once
            engine.param.update(
                results=cached, grid_progress=1.0, grid_message="frontier read from the cache"
            )
        return engine

    @property
    def names(self) -> tuple[str, ...]:
        return self.soup.names

    # ------------------------------------------------------------------------------------------
    # interactive generation

    @contextlib.contextmanager
    def _interactive_request(self) -> Iterator[None]:
        """Mark an interactive generation waiting or running: the grid waits before its next chunk."""
        with self._idle:
            self._interactive += 1
        try:
            yield
        finally:
            with self._idle:
                self._interactive -= 1
                self._idle.notify_all()

    def generate_stream(
        self,
        prompt: str,
        weights: Mapping[str, float],
        sampling: SamplingConfig,
        *,
        cancel: threading.Event,
        on_text: Callable[[str], None],
    ) -> Generations:
        """One response, streamed through ``on_text``; stops early when ``cancel`` is set.

        Paired sampling makes it the very response the grid scores for this mix, prompt and seed.
        """
        with self._interactive_request():
            return generate(
                self.soup,
                [prompt],
                weights,
                config=sampling,
                streamer=_TokenStreamer(self.soup.tokenizer, on_text),
                stopping_criteria=StoppingCriteriaList([_StopOnEvent(cancel)]),
            )

    def generate_batch(
        self, prompt: str, mixes: Sequence[Mapping[str, float]], sampling: SamplingConfig
    ) -> Generations:
        """The same prompt under several mixes, as one batch (pinned comparisons)."""
        with self._interactive_request():
            return generate(self.soup, [prompt] * len(mixes), list(mixes), config=sampling)

    def measure(
        self,
        weights: Mapping[str, float],
        prompts: Sequence[str],
        sampling: SamplingConfig,
        *,
        samples: int = 1,
        cancel: threading.Event,
    ) -> dict[str, float] | None:
        """Mean scores of one mix over ``prompts`` (the grid's), measured by the grid's own run loop.

        None when ``cancel`` is set before it ends (a newer request came).
        """
        spec = GridSpec(
            mixes=np.array([[weights[n] for n in self.names]]),
            prompts=tuple(prompts),
            objectives=tuple(self.objectives),
            samples=samples,
            sampling=sampling,
        )
        with self._interactive_request():
            ds = evaluate_grid(self.soup, spec, batch_size=len(prompts) * samples, cancel=cancel)
        if not is_complete(ds) or cancel.is_set():
            return None
        return dict(zip(objective_names(ds), means(ds)[0].tolist(), strict=True))

    def score(self, prompt: str, text: str) -> dict[str, float]:
        """Every objective's score of one response."""
        return {o.name: float(o.score([prompt], [text])[0]) for o in self.objectives}

    # ------------------------------------------------------------------------------------------
    # the background grid

    def grid_spec(self, sampling: SamplingConfig) -> GridSpec:
        """The app's frontier grid under ``sampling`` (refuses fewer than two objectives)."""
        return GridSpec.on_simplex(
            self.names,
            self.resolution,
            prompts=self.grid_prompts,
            objectives=self.objectives,
            sampling=sampling,
        )

    def start_grid(self, sampling: SamplingConfig) -> None:
        """Compute the frontier in a background thread; a cached one appears at once."""
        if self.grid_running:
            return
        spec = self.grid_spec(sampling)
        self._grid_cancel = threading.Event()
        self.param.update(grid_running=True, grid_progress=0.0, grid_message="starting the grid...")
        self._grid_thread = threading.Thread(
            target=self._run_grid, args=(spec, self._grid_cancel), daemon=True
        )
        self._grid_thread.start()

    def cancel_grid(self) -> None:
        if self._grid_cancel is not None:
            self._grid_cancel.set()

    def wait_grid(self, timeout: float | None = None) -> None:
        if self._grid_thread is not None:
            self._grid_thread.join(timeout)

    def _run_grid(self, spec: GridSpec, cancel: threading.Event) -> None:
        start = time.time()

        def on_chunk(partial: xr.Dataset, progress: Progress) -> None:
            self.param.update(
                results=partial,
                grid_progress=progress.fraction,
                grid_message=f"{progress.rows_done}/{progress.rows_total} rows, {time.time() - start:.0f} s",
            )
            with self._idle:  # interactive generation goes first
                while self._interactive and not cancel.is_set():
                    self._idle.wait(0.5)

        try:
            ds = evaluate_grid(
                self.soup,
                spec,
                batch_size=self.grid_batch_size,
                cache=self.cache_dir,
                cancel=cancel,
                on_chunk=on_chunk,
            )
            done = f"done in {time.time() - start:.0f} s" if is_complete(ds) else "cancelled"
            self.param.update(results=ds, grid_message=f"grid {done}")
        except Exception as err:  # shown in the app; the app stays usable
            self.param.update(grid_message=f"grid failed: {type(err).__name__}: {err}")
        finally:
            self.grid_running = False

    # ------------------------------------------------------------------------------------------
    # export

    def export_zip(
        self, weights: Mapping[str, float], *, format: str = "adapter", rank: int | None = None
    ) -> io.BytesIO:
        """Export the mix into the export folder and return it zipped (for a browser download)."""
        label = "_".join(f"{n}{w:+.2f}" for n, w in weights.items()).replace(".", "p")
        folder = self.export_dir / f"{format}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
        scores = mix_scores(self.results, weights) if self.results is not None else None
        result = export_mix(self.soup, weights, folder, format=format, rank=rank, force=True, scores=scores)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(result.path.rglob("*")):
                if file.is_file():
                    zf.write(file, Path(result.path.name) / file.relative_to(result.path))
        buffer.seek(0)
        return buffer
