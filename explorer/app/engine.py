"""The state every browser session shares: one soup in memory, its objectives, and the frontier grids.

The soup has one owner, the engine's ``explorer.scheduler.Scheduler``: every session's streamed
response, pin refreshes, measurements, grid chunks and API requests are its requests, decoded
together in shared batches, interactive ones first (a grid's rows wait between two decode steps
while people's rows run). Grids are keyed by their settings: sessions with the same settings
share one; others keep theirs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import param
import xarray as xr

from explorer.errors import SoupError
from explorer.export import export_mix, zip_export
from explorer.frontier.evaluation import ChunkExecutor, Progress, evaluate_grid, run_grid
from explorer.frontier.grid import Budget, GridSpec, check_budget
from explorer.frontier.results import (
    is_complete,
    is_summarized,
    means,
    mix_scores,
    objective_names,
    total_tokens,
)
from explorer.launch import AppSetup
from explorer.mix import file_label
from explorer.objectives import Objective
from explorer.paths import shown_path
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, Generations, SamplingConfig
from explorer.scheduler import Priority, Scheduler
from explorer.soup import Soup


class GridRun(param.Parameterized):
    """One frontier grid of the app, keyed by its settings; sessions with the same settings share it."""

    results = param.Parameter(default=None, doc="the frontier (xarray.Dataset), partial while it runs")
    running = param.Boolean(default=False)
    progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    message = param.String(default="")
    eta = param.String(default="", doc="the time left while it runs, in words")
    tokens_per_s = param.Number(default=None, allow_None=True, doc="generated tokens per second, when done")

    def __init__(self, key: str, settings: str, **params):
        super().__init__(**params)
        self.key = key
        self.settings = settings  # what it evaluates, in words (shown with its front)
        self.waiters: set[int] = set()  # ids of the sessions that asked for it and did not cancel
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


def settings_key(spec: GridSpec) -> str:
    """What makes two app grids the same: mixes, prompts, samples, decoding and objectives."""
    payload = {
        "mixes": np.round(np.asarray(spec.mixes, dtype=np.float64), 12).tolist(),
        "prompts": list(spec.prompts),
        "samples": int(spec.samples),
        "sampling": asdict(spec.sampling),
        "objectives": [o.name for o in spec.objectives],
        "methods": list(spec.mix_methods),
    }
    return json.dumps(payload, sort_keys=True)


def describe_sampling(sampling: SamplingConfig) -> str:
    """Decoding in words: ``48 tokens, greedy`` or ``48 tokens, temperature 0.7, top-p 0.9, seed 0``."""
    if sampling.greedy:
        return f"{sampling.max_new_tokens} tokens, greedy"
    return (
        f"{sampling.max_new_tokens} tokens, temperature {sampling.temperature:g}, "
        f"top-p {sampling.top_p:g}, seed {sampling.seed}"
    )


def describe_grid(spec: GridSpec) -> str:
    """A grid's settings in words, shown next to its front."""
    methods = sorted(set(spec.mix_methods))
    how = "" if methods == ["soup"] else f" ({', '.join(methods)})"
    return f"{len(spec.mixes)} mixes{how} x {len(spec.prompts)} prompts, {describe_sampling(spec.sampling)}"


@dataclass(frozen=True)
class ExportDone:
    """An export written by the app: its folder, size, low-rank error and, for small formats, a zip."""

    path: Path
    format: str
    size_bytes: int
    error: float  # relative Frobenius error of the delta (0 for exact formats)
    zip_path: Path | None  # adapter and lowrank exports only: merged models are never zipped

    def summary(self) -> str:
        text = f"{self.format} written to {shown_path(self.path)} ({self.size_bytes / 1e6:.1f} MB)"
        if self.format == "lowrank":
            text += f"; low-rank relative error {self.error:.3g}"
        return text


def duration_text(seconds: float) -> str:
    """``40 s``, ``3 min``, ``1 h 20 min``: a time left as people read it."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"


def time_left(progress: Progress, elapsed_s: float) -> float | None:
    """Seconds until the grid ends at the pace of the rows this run computed (rows resumed from a
    cancelled run took no time here); None before the first computed row."""
    computed = progress.rows_done - progress.resumed_rows
    if computed <= 0 or elapsed_s <= 0:
        return None
    return (progress.rows_total - progress.rows_done) * elapsed_s / computed


class Engine(param.Parameterized):
    """One soup and its frontier grids, shared by every session of the app process."""

    grids_changed = param.Integer(default=0, doc="bumped whenever a grid is added (sessions look for theirs)")

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
        grid_workers: ChunkExecutor | None = None,
        sessions_dir: Path | None = None,
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
        self.grid_workers = grid_workers  # Ray workers for the grids (None: this process)
        self.sessions_dir = sessions_dir  # one saved session per browser (None: sessions are not kept)
        self.scheduler = Scheduler(soup)  # the soup's only user: everything generates through it
        self.grids: dict[str, GridRun] = {}
        self._grids_lock = threading.Lock()
        # seconds per row and new token of the last grid chunk: a new grid's time left before its
        # first chunk ends (None until a grid has computed one)
        self._row_token_s: float | None = None

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
            grid_workers=setup.grid_workers,
            sessions_dir=setup.sessions_dir,
        )
        cached = setup.cached_front()
        if cached is not None:  # a front computed before appears at once
            spec = engine.grid_spec(SamplingConfig(DEFAULT_MAX_NEW_TOKENS))
            run = GridRun(settings_key(spec), describe_grid(spec))
            run.param.update(results=cached, progress=1.0, message="frontier read from the cache")
            engine.grids[run.key] = run
        return engine

    def close(self) -> None:
        """Stop every grid and the scheduler (the process ends, or a test is done)."""
        self.cancel_grid()
        self.scheduler.close()

    @property
    def names(self) -> tuple[str, ...]:
        return self.soup.names

    # ------------------------------------------------------------------------------------------
    # interactive generation

    def generate_stream(
        self,
        prompt: str,
        weights: Mapping[str, float],
        sampling: SamplingConfig,
        *,
        cancel: threading.Event,
        on_text: Callable[[str], None],
        method: str = "soup",
    ) -> Generations | None:
        """One response, streamed through ``on_text`` (called from the scheduler's thread); None
        when ``cancel`` is set before it ends (the row stops at its next decode step, or never
        starts).

        Paired sampling makes it the very response the grid scores for this mix, prompt and seed.
        """
        out = self.scheduler.submit(
            prompt, weights, sampling, on_text=on_text, cancel=cancel, method=method
        ).result()
        if out.cancelled:
            return None
        return Generations(texts=[out.text], token_ids=[out.token_ids], finished=[out.finished])

    def generate_batch(
        self,
        prompt: str,
        mixes: Sequence[Mapping[str, float]],
        sampling: SamplingConfig,
        methods: Sequence[str] | None = None,
    ) -> Generations:
        """The same prompt under several mixes (pinned comparisons; ``methods``: each mix's, default
        soup), batched with the other sessions' interactive rows."""
        how = list(methods) if methods is not None else "soup"
        return self.scheduler.generate([prompt] * len(mixes), list(mixes), config=sampling, method=how)

    def measure(
        self,
        weights: Mapping[str, float],
        prompts: Sequence[str],
        sampling: SamplingConfig,
        *,
        samples: int = 1,
        cancel: threading.Event,
        method: str = "soup",
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
        ).for_methods([method])
        ds = evaluate_grid(
            self.soup,
            spec,
            batch_size=len(prompts) * samples,
            cancel=cancel,
            scheduler=self.scheduler,
            priority=Priority.MEASURE,
        )
        if not is_complete(ds) or cancel.is_set():
            return None
        return dict(zip(objective_names(ds), means(ds)[0].tolist(), strict=True))

    def score(self, prompt: str, text: str) -> dict[str, float]:
        """Every objective's score of one response."""
        return {o.name: float(o.score([prompt], [text])[0]) for o in self.objectives}

    # ------------------------------------------------------------------------------------------
    # the background grids, one per settings

    def grid_spec(
        self,
        sampling: SamplingConfig,
        *,
        prompts: Sequence[str] | None = None,
        resolution: int | None = None,
        method: str = "soup",
    ) -> GridSpec:
        """The app's frontier grid under ``sampling`` and ``method`` (default prompts and
        resolution: the app's). Refuses fewer than two objectives."""
        return GridSpec.on_simplex(
            self.names,
            self.resolution if resolution is None else int(resolution),
            prompts=self.grid_prompts if prompts is None else list(prompts),
            objectives=self.objectives,
            sampling=sampling,
        ).for_methods([method])

    def grid_for(self, spec: GridSpec) -> GridRun | None:
        """The grid started (or read from the cache) with these settings, if any."""
        return self.grids.get(settings_key(spec))

    def start_grid(
        self,
        sampling: SamplingConfig,
        *,
        prompts: Sequence[str] | None = None,
        resolution: int | None = None,
        owner: object | None = None,
        method: str = "soup",
    ) -> GridRun:
        """The grid of these settings: joined when it runs or is done, else started in a background
        thread (a cached front appears at once). ``owner`` (a session) waits on it until it cancels."""
        spec = self.grid_spec(sampling, prompts=prompts, resolution=resolution, method=method)
        key = settings_key(spec)
        with self._grids_lock:
            run = self.grids.get(key)
            if run is None or not (run.running or (run.results is not None and is_complete(run.results))):
                budget = self.check_budget(spec)  # the CLI's rule: a new grid above it is refused
                run = GridRun(key, describe_grid(spec))
                eta = self._starting_text(spec)
                run.param.update(
                    running=True, message=f"starting the grid: {budget.rows:,} rows; {eta}", eta=eta
                )
                run.thread = threading.Thread(target=self._run_grid, args=(run, spec), daemon=True)
                self.grids[key] = run
                run.thread.start()
            if owner is not None and run.running:
                run.waiters.add(id(owner))
        self.grids_changed += 1
        return run

    def check_budget(self, spec: GridSpec) -> Budget:
        """The CLI's budget rule (``explorer.frontier.grid.check_budget``, MAX_ROWS rows) for a grid
        of the app; the app has no --yes: above it, a refusal that says what to lower."""
        workers = self.grid_workers.workers_alive() if self.grid_workers is not None else None
        budget = Budget(
            len(spec.mixes),
            len(spec.prompts),
            spec.samples,
            spec.sampling.max_new_tokens,
            self.soup.device.type,
            workers or 1,
        )
        check_budget(
            budget,
            confirmed=False,
            knobs="the grid's resolution or its number of prompts (or run it with explorer grid --yes)",
        )
        return budget

    def _starting_text(self, spec: GridSpec) -> str:
        """A grid starts: its time left from the pace of the last grid, else when it will be known."""
        rows = int(np.prod(spec.shape))
        if self._row_token_s is None:
            return f"time left known after the first {min(rows, self.grid_batch_size)} of {rows} rows"
        seconds = rows * spec.sampling.max_new_tokens * self._row_token_s
        return f"about {duration_text(seconds)} left for {rows} rows (at the last grid's pace)"

    def cancel_grid(self, run: GridRun | None = None, *, owner: object | None = None) -> bool:
        """Cancel ``run`` for ``owner``: it stops only when no other session waits on it (True
        then). Without arguments every grid stops (the process ends)."""
        runs = list(self.grids.values()) if run is None else [run]
        for r in runs:
            if owner is not None:
                r.waiters.discard(id(owner))
            if owner is None or not r.waiters:
                r.cancel.set()
        return run is None or run.cancel.is_set()

    def leave(self, owner: object) -> None:
        """A session ends: it no longer waits on any grid; a grid no session waits on any more is
        cancelled (its finished chunks stay in the cache's journal: asking again resumes it)."""
        for run in list(self.grids.values()):
            if id(owner) in run.waiters:
                run.waiters.discard(id(owner))
                if not run.waiters:
                    run.cancel.set()

    def wait_grid(self, timeout: float | None = None) -> None:
        """Wait for every grid thread to end (``timeout`` seconds each at most)."""
        for run in list(self.grids.values()):
            if run.thread is not None:
                run.thread.join(timeout)

    def _evaluate(self, spec: GridSpec, **kwargs) -> xr.Dataset:
        """The grid on the Ray workers, or as the scheduler's least urgent requests."""
        if self.grid_workers is not None:
            return run_grid(self.grid_workers, spec, **kwargs)
        return evaluate_grid(self.soup, spec, scheduler=self.scheduler, priority=Priority.GRID, **kwargs)

    def _run_grid(self, run: GridRun, spec: GridSpec) -> None:
        start = time.time()
        resumed = [0]

        def on_chunk(partial: xr.Dataset, progress: Progress) -> None:
            resumed[0] = progress.resumed_rows
            elapsed = time.time() - start
            left = time_left(progress, elapsed)
            computed = progress.rows_done - progress.resumed_rows
            if computed > 0:
                self._row_token_s = elapsed / (computed * spec.sampling.max_new_tokens)
            eta = f"about {duration_text(left)} left" if left is not None and left > 0 else ""
            run.param.update(
                results=partial,
                progress=progress.fraction,
                eta=eta,
                message=f"{progress.rows_done}/{progress.rows_total} rows, {elapsed:.0f} s"
                + (f", {eta}" if eta else "")
                + (f", {progress.workers_alive} Ray workers" if progress.workers_alive is not None else ""),
            )

        try:
            ds = self._evaluate(
                spec,
                batch_size=self.grid_batch_size,
                cache=self.cache_dir,
                cancel=run.cancel,
                on_chunk=on_chunk,
            )
            seconds = time.time() - start
            done = f"done in {seconds:.0f} s" if is_complete(ds) else "cancelled"
            speed = None  # measured only when this run generated every row (not cached, not resumed)
            if is_complete(ds) and not resumed[0] and seconds > 0.5:
                speed = total_tokens(ds) / seconds
            run.param.update(results=ds, message=f"grid {done}", eta="", tokens_per_s=speed)
        except Exception as err:  # shown in the app; the app stays usable
            run.param.update(message=f"grid failed: {type(err).__name__}: {err}", eta="")
        finally:
            run.running = False
            self.grids_changed += 1  # sessions showing several methods' fronts look again

    # ------------------------------------------------------------------------------------------
    # export

    def export(
        self,
        weights: Mapping[str, float],
        *,
        format: str = "adapter",
        rank: int | None = None,
        results: xr.Dataset | None = None,
        choice: Mapping | None = None,
    ) -> ExportDone:
        """Export the mix into the export folder (call it from a worker thread: a merged model
        takes seconds). Adapter and low-rank exports are also zipped, named after the mix, for a
        download; merged models stay on disk. ``results`` give the recipe its scores, only from
        a complete grid (a partial one has no scores for most mixes); ``choice`` (how the mix was
        chosen, ``Choice.to_dict()``) goes into the recipe as it is."""
        label = file_label(weights)
        folder = self.export_dir / f"{format}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
        scores = None
        if results is not None and is_summarized(results) and is_complete(results):
            scores = mix_scores(results, weights)
        result = export_mix(
            self.soup, weights, folder, format=format, rank=rank, force=True, scores=scores, choice=choice
        )
        files = sorted(f for f in result.path.rglob("*") if f.is_file())
        zip_path = None
        if format != "merged":
            zip_path = zip_export(result.path, result.path.with_name(f"{label}-{format}.zip"))
        return ExportDone(
            path=result.path,
            format=format,
            size_bytes=sum(f.stat().st_size for f in files),
            error=float(result.overall_error),
            zip_path=zip_path,
        )
