"""One browser session's state: the mix on the sliders, the live response, the pinned mixes.

Views depend on these parameters and never on each other. Work that takes time (generation,
scoring, pin refresh, export) runs in worker threads; their results come back through the
session's ``dispatch`` (on a served page: a callback on the page's own event loop), so no
session's work ever runs on the server's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TypeVar

import numpy as np
import param

from explorer.app.engine import Engine, GridRun
from explorer.errors import SoupError
from explorer.export import FORMATS
from explorer.frontier.grid import GridSpec
from explorer.frontier.results import (
    adapter_names,
    concat_results,
    estimate,
    is_summarized,
    methods_of,
    mix_dict,
    mix_scores,
    n_mixes,
    objective_names,
    prompt_texts,
    samples_of,
    sampling_of,
)
from explorer.methods import DECODING_METHODS, METHODS
from explorer.mix import check_mix
from explorer.prompts import parse_prompts
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig

T = TypeVar("T")

MAX_PINS = 6
DEBOUNCE_S = 0.25  # slider releases (arrow keys) closer than this start one generation


def rescale_on_simplex(weights: Mapping[str, float], name: str, value: float) -> dict[str, float]:
    """Set ``name`` to ``value`` (clipped to [0, 1]) and rescale the others so the mix sums to 1.

    The others keep their proportions; when they are all zero they share the rest equally.
    """
    value = min(1.0, max(0.0, float(value)))
    others = [n for n in weights if n != name]
    rest = 1.0 - value
    total = sum(max(0.0, weights[n]) for n in others)
    out = {name: value}
    for n in others:
        share = max(0.0, weights[n]) / total if total > 0 else 1.0 / len(others)
        out[n] = rest * share
    return {n: out[n] for n in weights}


def project_on_simplex(weights: Mapping[str, float]) -> dict[str, float]:
    """Negative weights clipped to 0, the rest scaled to sum 1 (all zero: equal shares)."""
    w = {n: max(0.0, v) for n, v in weights.items()}
    total = sum(w.values())
    return {n: v / total for n, v in w.items()} if total > 0 else {n: 1.0 / len(w) for n in w}


def _rounded(weights: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """A mix as a comparable key (weights to 1e-6)."""
    return tuple((n, round(float(w), 6)) for n, w in weights.items())


def produced_by(
    weights: Mapping[str, float], prompt: str, sampling: SamplingConfig, method: str = "soup"
) -> dict:
    """What produced a response: its mix and mixing method, prompt and decoding (shown with it,
    stored with a pin)."""
    return {"weights": dict(weights), "method": method, "prompt": prompt, "sampling": asdict(sampling)}


def pin_key(pin: Mapping) -> tuple:
    """Two pins are the same when mix, method, prompt and decoding are."""
    return (
        _rounded(pin["weights"]),
        pin.get("method", "soup"),
        pin["prompt"],
        tuple(sorted(pin["sampling"].items())),
    )


class Session(param.Parameterized):
    """The state of one browser session (or one notebook cell)."""

    weights = param.Dict(default={}, doc="the mix on the sliders: adapter name -> weight")
    simplex = param.Boolean(
        default=True, doc="keep the weights on the simplex (moving one rescales the others)"
    )
    prompt = param.String(default="", doc="the user request")
    max_new_tokens = param.Integer(default=DEFAULT_MAX_NEW_TOKENS, bounds=(1, 1024))
    temperature = param.Number(default=0.0, bounds=(0.0, 2.0), doc="0 is greedy")
    top_p = param.Number(default=1.0, bounds=(0.01, 1.0))
    seed = param.Integer(default=0)
    method: param.Selector = param.Selector(
        default="soup",
        objects=list(DECODING_METHODS),
        doc="how the mix combines the adapters: soup (weights mixed) or mod (decoding-time mixing)",
    )

    response = param.String(default="", doc="the live response, streamed token by token")
    response_for = param.Dict(default={}, doc="what produced the response: weights, prompt, sampling")
    stale = param.Boolean(default=False, doc="the mix, prompt or decoding changed since the response")
    scores = param.Dict(default={}, doc="the response's score on each objective")
    measured = param.Dict(
        default={}, doc="the mix's mean scores over the grid's prompts, as the grid measures its mixes"
    )
    generating = param.Boolean(default=False)
    first_token_s = param.Number(default=None, allow_None=True, doc="slider release to first token, seconds")
    message = param.String(default="", doc="the last error or notice, for the user")

    x_objective: param.Selector = param.Selector(default=None, objects=[])
    y_objective: param.Selector = param.Selector(default=None, objects=[])

    pinned = param.List(
        default=[], doc="pinned mixes: {weights, prompt, sampling, response, scores, measured, partial}"
    )
    reference = param.Integer(default=0, doc="index of the pinned column the others are compared to")
    refreshing_pins = param.Boolean(default=False)

    export_format: param.Selector = param.Selector(default="adapter", objects=list(FORMATS))
    export_rank = param.Integer(default=8, bounds=(1, None))
    exporting = param.Boolean(default=False)
    export_status = param.String(default="", doc="where the last export went, its size and error")
    export_zip = param.String(default="", doc="the last export's zip (adapter and lowrank only)")
    choice = param.Dict(
        default=None,
        allow_None=True,
        doc="how the mix on the sliders was chosen (explorer.frontier.choose.Choice.to_dict(), set by the Choose "
        "panel's Load, cleared when the sliders move off it): exports write it into the recipe",
    )

    # the grid this session asks for (with the decoding above)
    grid_resolution = param.Integer(default=10, bounds=(1, 40), doc="simplex lattice steps")
    grid_prompt_count = param.Integer(default=8, bounds=(1, None), doc="prompts the grid evaluates")
    grid_prompt_pool = param.List(default=[], doc="the prompts the grid takes its first ones from")

    # this session's copy of the state of the grid it follows (see ``follow_grid``)
    results = param.Parameter(default=None, doc="the frontier (xarray.Dataset), partial while a grid runs")
    grid_running = param.Boolean(default=False)
    grid_progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    grid_message = param.String(default="")
    grid_eta = param.String(default="", doc="the time left of the grid shown while it runs, in words")
    grid_settings = param.String(default="", doc="the settings of the grid shown, in words")
    grid_point = param.Integer(default=None, allow_None=True, doc="the grid mix last clicked")
    compare_point = param.Integer(
        default=None, allow_None=True, doc="the grid mix clicked before grid_point (shown beside it)"
    )
    method_fronts = param.Parameter(
        default=None,
        doc="the grids of this session's settings under every method computed so far, joined (an "
        "xarray.Dataset whose mixes carry their method), when more than one method has one",
    )
    method_speeds = param.Dict(default={}, doc="method -> tokens/s of its grid, where measured")

    GRID_STATE = {
        "results": "results",
        "running": "grid_running",
        "progress": "grid_progress",
        "message": "grid_message",
        "eta": "grid_eta",
    }
    DECODING = ("max_new_tokens", "temperature", "top_p", "seed", "method")

    def __init__(
        self, engine: Engine, *, dispatch: Callable[[Callable[[], None]], None] | None = None, **params
    ):
        names = engine.names
        params.setdefault("weights", {n: 1.0 / len(names) for n in names})
        params.setdefault(
            "prompt", engine.prompts[0] if engine.prompts else "Give me one tip for sleeping better."
        )
        params.setdefault("grid_resolution", engine.resolution)
        params.setdefault("grid_prompt_pool", list(engine.prompts or engine.grid_prompts))
        params.setdefault("grid_prompt_count", max(1, len(engine.grid_prompts)))
        x, y = params.pop("x_objective", None), params.pop("y_objective", None)  # once objects are set
        super().__init__(**params)
        self.engine = engine
        objectives = [o.name for o in engine.objectives]
        self.param.x_objective.objects = objectives
        self.param.y_objective.objects = objectives
        self.x_objective = x if x in objectives else objectives[0]
        self.y_objective = y if y in objectives else objectives[1] if len(objectives) > 1 else objectives[0]
        self._cancel = threading.Event()
        self._generation = 0  # the id of the newest request; older threads drop their results
        self._dispatch = dispatch or (lambda fn: fn())
        self._grid: GridRun | None = None
        self._grid_watcher: param.parameterized.Watcher | None = None
        self._debounce: threading.Timer | None = None
        self._worker: threading.Thread | None = None  # the session's one generation thread, while it runs
        self._pending: Callable[[], None] | None = None  # the newest request not started yet
        self._queue = threading.Lock()
        self._engine_watcher: param.parameterized.Watcher | None = engine.param.watch(
            lambda event: self._dispatch(self.follow_matching_grid), "grids_changed"
        )
        self.param.watch(  # several of them change in one update (a prompt file): one call, many events
            lambda *events: self.follow_matching_grid(),
            [*self.DECODING, "grid_resolution", "grid_prompt_count", "grid_prompt_pool"],
        )
        self.param.watch(self._mark_stale, ["weights", "prompt", *self.DECODING])
        self.follow_matching_grid()

    # ------------------------------------------------------------------------------------------
    # the grid this session shows

    def grid_prompts(self) -> list[str]:
        """The prompts of this session's grid: the first ``grid_prompt_count`` of the pool."""
        return list(self.grid_prompt_pool[: self.grid_prompt_count])

    def follow_grid(self, run: GridRun | None) -> None:
        """Show ``run``'s state in this session's parameters as it changes.

        The grid changes from its own thread; every session applies the change through its own
        ``dispatch`` (in the app: a callback on the session's page, so views update there).
        """
        if self._grid_watcher is not None and self._grid is not None:
            self._grid.param.unwatch(self._grid_watcher)
            self._grid_watcher = None
        self._grid = run
        if run is None:
            return
        self.param.update(
            grid_settings=run.settings,
            **{mine: getattr(run, theirs) for theirs, mine in self.GRID_STATE.items()},
        )

        def changed(*events):
            values = {self.GRID_STATE[ev.name]: ev.new for ev in events}
            self._dispatch(lambda: self._grid is run and self.param.update(**values))

        self._grid_watcher = run.param.watch(changed, list(self.GRID_STATE))

    def _grid_spec(self, method: str) -> GridSpec:
        """The grid of this session's settings (decoding, grid prompts, resolution) under ``method``."""
        return self.engine.grid_spec(
            self.sampling, prompts=self.grid_prompts(), resolution=self.grid_resolution, method=method
        )

    def follow_matching_grid(self) -> None:
        """Show the grid of this session's settings when one exists; else keep the one shown
        (its settings are shown with it)."""
        try:
            spec = self._grid_spec(self.method)
        except SoupError:
            return
        run = self.engine.grid_for(spec)
        if run is not None and run is not self._grid:
            self.follow_grid(run)
        self.gather_method_fronts()

    def gather_method_fronts(self) -> None:
        """Join the grids of this session's settings under each method that has one (complete or
        partial) into ``method_fronts``, for the plot to overlay their fronts."""
        found, speeds = [], {}
        for method in METHODS:
            try:
                spec = self._grid_spec(method)
            except SoupError:
                return
            run = self.engine.grid_for(spec)
            if run is not None and run.results is not None and is_summarized(run.results):
                found.append(run.results)
                if run.tokens_per_s:
                    speeds[method] = run.tokens_per_s
        joined = concat_results(found) if len(found) > 1 else None
        self.param.update(method_fronts=joined, method_speeds=speeds)

    def close(self, *, wait: float | None = None) -> None:
        """The session ends: cancel its generation and stop following the engine; with ``wait``,
        also wait up to that many seconds for its worker thread to stop."""
        self._cancel.set()
        if self._debounce is not None:
            self._debounce.cancel()
        if self._engine_watcher is not None:
            self.engine.param.unwatch(self._engine_watcher)
            self._engine_watcher = None
        self.follow_grid(None)
        self.engine.leave(self)
        if wait is not None and self._worker is not None:
            self._worker.join(wait)

    def later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` soon as one of the session's page events, from any thread, without waiting
        (outside a served page: at once)."""
        self._dispatch(fn)

    def on_page(self, fn: Callable[[], T], *, timeout: float | None = 600.0) -> T:
        """Run ``fn`` as one of the session's page events and return its result: how a script or
        a test thread changes a served session (Bokeh documents may only change on their own
        event loop). Outside a served page it runs at once. Never call it from the page itself."""
        done = threading.Event()
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as err:  # re-raised in the caller's thread
                box["error"] = err
            finally:
                done.set()

        self._dispatch(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the page did not run {fn!r} within {timeout} s")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------
    # the mix

    def set_weight(self, name: str, value: float) -> None:
        """Move one slider: on the simplex the others rescale, in free mode only this one moves."""
        if name not in self.weights:
            raise SoupError(f"no adapter named {name!r}; adapters: {list(self.weights)}")
        moved = check_mix({**self.weights, name: value}, list(self.weights))
        if self.simplex:
            self.weights = rescale_on_simplex(self.weights, name, moved[name])
        else:
            self.weights = moved

    @param.depends("simplex", watch=True)
    def _back_on_the_simplex(self) -> None:
        """Ticking "keep on the simplex" projects the current mix onto it and regenerates."""
        if self.simplex:
            projected = project_on_simplex(self.weights)
            if _rounded(projected) != _rounded(self.weights):
                self.weights = projected
                self.regenerate()

    def _mark_stale(self, *events) -> None:
        """The response no longer matches the mix, prompt or decoding on the page."""
        if self.response_for:
            try:
                now = produced_by(self.weights, self.prompt, self.sampling, self.method)
            except SoupError:
                self.stale = True
                return
            self.stale = pin_key(now) != pin_key(self.response_for)

    def prompt_typed(self, text: str) -> None:
        """The prompt box is being edited (its text is not the prompt until it loses focus): the
        response is stale as soon as the text differs from its prompt."""
        if self.response_for and text is not None and text != self.response_for.get("prompt"):
            self.stale = True

    def load_mix(self, index: int) -> None:
        """Put grid mix ``index`` on the sliders (a click on the frontier)."""
        ds = self.results
        if ds is None or not (0 <= index < n_mixes(ds)):
            return
        mix = mix_dict(ds, index)
        if min(mix.values()) < -1e-12:
            self.simplex = False  # an extrapolated mix cannot stay on the simplex
        before = self.grid_point if self.grid_point != index else self.compare_point
        self.param.update(weights=mix, grid_point=index, compare_point=before, method=methods_of(ds)[index])

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.max_new_tokens, self.temperature, self.top_p, self.seed)

    def estimated_scores(self) -> dict[str, float] | None:
        """The current mix's scores interpolated from the grid, before they are measured."""
        ds = self.results
        if ds is None or not is_summarized(ds):
            return None
        values = estimate(ds, [self.weights[n] for n in adapter_names(ds)])
        if np.isnan(values).all():
            return None
        return {o: float(v) for o, v in zip(objective_names(ds), values, strict=True)}

    # ------------------------------------------------------------------------------------------
    # live generation

    def _apply(self, request: int, **values) -> None:
        """Set parameters from a worker thread, on the session's page, unless a newer request came."""

        def apply() -> None:
            if request == self._generation:
                self.param.update(**values)

        self._dispatch(apply)

    def request_regenerate(self, *, delay: float = DEBOUNCE_S) -> None:
        """A slider was released (or an arrow key pressed): regenerate once the releases stop for
        ``delay`` seconds. The time to the first token counts from this release."""
        released = time.perf_counter()
        if self._debounce is not None:
            self._debounce.cancel()

        def fire() -> None:
            self.regenerate(released=released)

        self._debounce = threading.Timer(delay, lambda: self._dispatch(fire))
        self._debounce.daemon = True
        self._debounce.start()

    def regenerate(self, *, wait: bool = False, released: float | None = None) -> threading.Thread:
        """Cancel the generation in flight and stream a new response for the current mix.

        ``released``: when the user asked (``time.perf_counter()``), default now."""
        released = time.perf_counter() if released is None else released
        self._cancel.set()
        self._cancel = cancel = threading.Event()
        self._generation += 1
        request = self._generation
        weights, prompt, method = dict(self.weights), self.prompt, self.method
        try:
            sampling = self.sampling
            if not prompt.strip():
                raise SoupError("the prompt is empty: write a request for the model to answer")
        except SoupError as err:
            self.message = str(err)
            thread = threading.Thread(target=lambda: None)
            thread.start()
            return thread
        self.param.update(
            generating=True,
            response="",
            response_for=produced_by(weights, prompt, sampling, method),
            stale=False,
            scores={},
            measured={},
            first_token_s=None,
            message="",
        )
        first: list[float] = []

        def on_text(text: str) -> None:
            if not first:
                first.append(time.perf_counter() - released)
                self._apply(request, response=text, first_token_s=first[0])
            else:
                self._apply(request, response=text)

        def work() -> None:
            try:
                out = self.engine.generate_stream(
                    prompt, weights, sampling, cancel=cancel, on_text=on_text, method=method
                )
                if out is None or cancel.is_set() or request != self._generation:
                    return
                text = out.texts[0]
                scores = self.engine.score(prompt, text)
                self._apply(request, response=text, scores=scores, generating=False)
                self._complete_pins(request, response=text, scores=scores, partial=False)
                self._measure(weights, cancel, request, method)
            except Exception as err:  # a scorer or generation failure is shown, the app stays usable
                self._apply(request, message=f"{type(err).__name__}: {err}", generating=False)
            finally:
                self._apply(request, generating=False)

        thread = self._submit(work)
        if wait:
            thread.join()
        return thread

    def _submit(self, work: Callable[[], None]) -> threading.Thread:
        """Run ``work`` on the session's one generation thread: at most one generation per session
        at a time, and a request superseded before it started never runs (no prompt pass)."""
        with self._queue:
            self._pending = work
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, daemon=True)
                self._worker.start()
            return self._worker

    def _drain(self) -> None:
        while True:
            with self._queue:
                work, self._pending = self._pending, None
                if work is None:
                    self._worker = None
                    return
            work()

    def _measure(
        self, weights: dict[str, float], cancel: threading.Event, request: int, method: str = "soup"
    ) -> None:
        """Place the mix among the grid's points: its grid means when the grid holds it (under the
        same method), else measured over the grid's prompts with the grid's sampling (after the
        live response)."""
        ds = self.results
        if ds is None or not is_summarized(ds):
            return
        on_grid = mix_scores(ds, weights, method)
        measured: dict[str, float] | None
        if on_grid is not None and all(np.isfinite(v["mean"]) for v in on_grid.values()):
            measured = {o: v["mean"] for o, v in on_grid.items()}
        else:
            measured = self.engine.measure(
                weights,
                prompt_texts(ds),
                sampling_of(ds),
                samples=samples_of(ds),
                cancel=cancel,
                method=method,
            )
        if measured is not None:
            self._apply(request, measured=measured)
            self._complete_pins(request, measured=measured)

    # ------------------------------------------------------------------------------------------
    # the grid and export

    def start_grid(self) -> None:
        """Compute (or join) the frontier grid of this session's settings; a refusal is a message."""
        try:
            run = self.engine.start_grid(
                self.sampling,
                prompts=self.grid_prompts(),
                resolution=self.grid_resolution,
                owner=self,
                method=self.method,
            )
        except Exception as err:
            self.message = str(err)
            return
        self.follow_grid(run)

    def cancel_grid(self) -> None:
        """Stop waiting on the grid shown; it stops when no other session waits on it."""
        if self._grid is None:
            return
        if not self.engine.cancel_grid(self._grid, owner=self):
            self.message = "the grid keeps running: another session with the same settings waits on it"

    def set_prompt_file(self, text: str) -> None:
        """Use the prompts of an uploaded file (one per line, ``#`` comments) for the grid."""
        prompts = parse_prompts(text)
        if not prompts:
            self.message = "the prompt file holds no prompt: write one request per line"
            return
        self.param.update(
            grid_prompt_pool=prompts, grid_prompt_count=min(self.grid_prompt_count, len(prompts))
        )

    def export(self, *, wait: bool = False) -> threading.Thread:
        """Export the current mix in the chosen format, in a worker thread: the folder, its size
        and error are shown; adapter and lowrank exports also get a zip to download."""
        weights, format = dict(self.weights), self.export_format
        if self.method != "soup":
            self.message = (
                f"{self.method} mixes the adapters at decoding time: it has no single adapter or merged "
                "model to export. Set the mixing method to soup to export these weights as an exact soup"
            )
            thread = threading.Thread(target=lambda: None)
            thread.start()
            return thread
        rank = self.export_rank if format == "lowrank" else None
        results, choice = self.results, self.choice
        self.param.update(exporting=True, export_status=f"exporting {format}...", export_zip="")

        def work() -> None:
            try:
                done = self.engine.export(weights, format=format, rank=rank, results=results, choice=choice)
                values = {"export_status": done.summary(), "export_zip": str(done.zip_path or "")}
            except Exception as err:
                values = {"export_status": "", "message": f"export failed: {err}"}

            def apply() -> None:
                self.param.update(exporting=False, **values)

            self._dispatch(apply)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        if wait:
            thread.join()
        return thread

    # ------------------------------------------------------------------------------------------
    # pinned mixes

    def pin(self) -> None:
        """Pin the response shown with what produced it (up to six). A response still streaming
        is pinned as partial and completed when it ends; the same mix, prompt and decoding twice
        is refused."""
        if not self.response_for:
            self.message = "nothing to pin yet: generate a response first"
            return
        if len(self.pinned) >= MAX_PINS:
            self.message = f"at most {MAX_PINS} mixes can be pinned: unpin one first"
            return
        entry = {
            **self.response_for,
            "response": self.response,
            "scores": dict(self.scores),
            "measured": dict(self.measured),  # over the grid's prompts: where the plot puts it
            "partial": self.generating,
            "request": self._generation,
        }
        same = [i for i, p in enumerate(self.pinned) if pin_key(p) == pin_key(entry)]
        if same:
            self.message = f"this mix is already pinned for this prompt and decoding (column {same[0] + 1})"
            return
        self.pinned = [*self.pinned, entry]

    def _complete_pins(self, request: int, **values) -> None:
        """Fill in the pins taken of request ``request`` while it streamed or was measured."""

        def apply() -> None:
            if any(p.get("request") == request for p in self.pinned):
                self.pinned = [{**p, **values} if p.get("request") == request else p for p in self.pinned]

        self._dispatch(apply)

    def unpin(self, index: int) -> None:
        pins = [p for i, p in enumerate(self.pinned) if i != index]
        self.reference = min(self.reference, max(0, len(pins) - 1))
        self.pinned = pins

    def refresh_pins(self, *, wait: bool = False) -> threading.Thread | None:
        """Regenerate every pinned mix for the current prompt and decoding, as one batch, in a
        worker thread (the page stays live)."""
        if not self.pinned:
            return None
        pins, prompt = list(self.pinned), self.prompt
        try:
            sampling = self.sampling
        except SoupError as err:
            self.message = str(err)
            return None
        self.refreshing_pins = True

        def work() -> None:
            try:
                methods = [p.get("method", "soup") for p in pins]
                out = self.engine.generate_batch(prompt, [p["weights"] for p in pins], sampling, methods)
                fresh = {
                    (_rounded(p["weights"]), p.get("method", "soup")): {
                        **p,
                        **produced_by(p["weights"], prompt, sampling, p.get("method", "soup")),
                        "response": text,
                        "scores": self.engine.score(prompt, text),
                        "partial": False,
                        "request": None,
                    }
                    for p, text in zip(pins, out.texts, strict=True)
                }

                def apply() -> None:
                    self.pinned = [
                        fresh.get((_rounded(p["weights"]), p.get("method", "soup")), p) for p in self.pinned
                    ]

                self._dispatch(apply)
            except Exception as err:
                text = f"{type(err).__name__}: {err}"
                self._dispatch(lambda: setattr(self, "message", text))
            finally:
                self._dispatch(lambda: setattr(self, "refreshing_pins", False))

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        if wait:
            thread.join()
        return thread
