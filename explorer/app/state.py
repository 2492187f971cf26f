"""One browser session's state: the mix on the sliders, the live response, the pinned mixes.

Views depend on these parameters and never on each other. Work that takes time (generation,
scoring) runs in worker threads and writes its results back to parameters; Panel moves the
updates to the session's page.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
import param

from explorer.app.engine import Engine
from explorer.errors import SoupError
from explorer.export import FORMATS
from explorer.mix import check_mix
from explorer.results import (
    adapter_names,
    estimate,
    is_summarized,
    mix_dict,
    mix_scores,
    n_mixes,
    objective_names,
    prompt_texts,
    samples_of,
    sampling_of,
)
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig

MAX_PINS = 6


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

    response = param.String(default="", doc="the live response, streamed token by token")
    scores = param.Dict(default={}, doc="the response's score on each objective")
    measured = param.Dict(
        default={}, doc="the mix's mean scores over the grid's prompts, as the grid measures its mixes"
    )
    generating = param.Boolean(default=False)
    first_token_s = param.Number(default=None, allow_None=True, doc="slider release to first token, seconds")
    message = param.String(default="", doc="the last error or notice, for the user")

    x_objective: param.Selector = param.Selector(default=None, objects=[])
    y_objective: param.Selector = param.Selector(default=None, objects=[])

    pinned = param.List(default=[], doc="pinned mixes: {weights, response, scores}")
    reference = param.Integer(default=0, doc="index of the pinned column the others are compared to")

    export_format: param.Selector = param.Selector(default="adapter", objects=list(FORMATS))
    export_rank = param.Integer(default=8, bounds=(1, None))

    # this session's copy of the shared engine's frontier state (see ``follow_engine``)
    results = param.Parameter(default=None, doc="the frontier (xarray.Dataset), partial while a grid runs")
    grid_running = param.Boolean(default=False)
    grid_progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    grid_message = param.String(default="")

    ENGINE_STATE = ("results", "grid_running", "grid_progress", "grid_message")

    def __init__(
        self, engine: Engine, *, dispatch: Callable[[Callable[[], None]], None] | None = None, **params
    ):
        names = engine.names
        params.setdefault("weights", {n: 1.0 / len(names) for n in names})
        params.setdefault(
            "prompt", engine.prompts[0] if engine.prompts else "Give me one tip for sleeping better."
        )
        super().__init__(**params)
        self.engine = engine
        objectives = [o.name for o in engine.objectives]
        self.param.x_objective.objects = objectives
        self.param.y_objective.objects = objectives
        self.x_objective = objectives[0]
        self.y_objective = objectives[1] if len(objectives) > 1 else objectives[0]
        self._cancel = threading.Event()
        self._generation = 0  # the id of the newest request; older threads drop their results
        self._dispatch = dispatch or (lambda fn: fn())
        self._engine_watcher: param.parameterized.Watcher | None = None
        self._worker: threading.Thread | None = None
        self.follow_engine()

    # ------------------------------------------------------------------------------------------
    # the shared engine's state, mirrored

    def follow_engine(self) -> None:
        """Mirror the engine's frontier state into this session's parameters.

        The engine changes from its grid thread; every session applies the change through its own
        ``dispatch`` (in the app: a callback on the session's page, so views update there).
        """
        e = self.engine
        self.param.update(**{n: getattr(e, n) for n in self.ENGINE_STATE})

        def changed(*events):
            values = {ev.name: ev.new for ev in events}
            self._dispatch(lambda: self.param.update(**values))

        self._engine_watcher = e.param.watch(changed, list(self.ENGINE_STATE))

    def close(self, *, wait: float | None = None) -> None:
        """The session ends: cancel its generation and stop following the engine; with ``wait``,
        also wait up to that many seconds for its worker thread to stop."""
        self._cancel.set()
        if self._engine_watcher is not None:
            self.engine.param.unwatch(self._engine_watcher)
            self._engine_watcher = None
        if wait is not None and self._worker is not None:
            self._worker.join(wait)

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
        """Ticking "keep on the simplex" projects the current mix onto it."""
        if self.simplex:
            self.weights = project_on_simplex(self.weights)

    def load_mix(self, index: int) -> None:
        """Put grid mix ``index`` on the sliders (a click on the frontier)."""
        ds = self.results
        if ds is None or not (0 <= index < n_mixes(ds)):
            return
        mix = mix_dict(ds, index)
        if min(mix.values()) < -1e-12:
            self.simplex = False  # an extrapolated mix cannot stay on the simplex
        self.weights = mix

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

    def regenerate(self, *, wait: bool = False) -> threading.Thread:
        """Cancel the generation in flight and stream a new response for the current mix."""
        self._cancel.set()
        self._cancel = cancel = threading.Event()
        self._generation += 1
        request = self._generation
        weights, prompt, sampling = dict(self.weights), self.prompt, None
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
            generating=True, response="", scores={}, measured={}, first_token_s=None, message=""
        )
        released = time.perf_counter()

        def on_text(text: str) -> None:
            if request != self._generation:
                return
            if self.first_token_s is None:
                self.first_token_s = time.perf_counter() - released
            self.response = text

        def work() -> None:
            try:
                out = self.engine.generate_stream(prompt, weights, sampling, cancel=cancel, on_text=on_text)
                if cancel.is_set() or request != self._generation:
                    return
                self.response = out.texts[0]
                self.scores = self.engine.score(prompt, out.texts[0])
                self.generating = False
                self._measure(weights, cancel, request)
            except Exception as err:  # a scorer or generation failure is shown, the app stays usable
                if request == self._generation:
                    self.message = f"{type(err).__name__}: {err}"
            finally:
                if request == self._generation:
                    self.generating = False

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self._worker = thread
        if wait:
            thread.join()
        return thread

    def _measure(self, weights: dict[str, float], cancel: threading.Event, request: int) -> None:
        """Place the mix among the grid's points: its grid means when the grid holds it, else
        measured over the grid's prompts with the grid's sampling (after the live response)."""
        ds = self.results
        if ds is None or not is_summarized(ds):
            return
        on_grid = mix_scores(ds, weights)
        measured: dict[str, float] | None
        if on_grid is not None:
            measured = {o: v["mean"] for o, v in on_grid.items()}
        else:
            measured = self.engine.measure(
                weights, prompt_texts(ds), sampling_of(ds), samples=samples_of(ds), cancel=cancel
            )
        if measured is not None and request == self._generation:
            self.measured = measured

    # ------------------------------------------------------------------------------------------
    # the shared grid and export

    def start_grid(self) -> None:
        """Compute the frontier with this session's decoding; a refusal is shown as a message."""
        try:
            self.engine.start_grid(self.sampling)
        except Exception as err:
            self.message = str(err)

    def export_zip(self) -> io.BytesIO | None:
        """Export the current mix in the chosen format, zipped for a download (None when it fails)."""
        try:
            rank = self.export_rank if self.export_format == "lowrank" else None
            return self.engine.export_zip(dict(self.weights), format=self.export_format, rank=rank)
        except Exception as err:
            self.message = f"export failed: {err}"
            return None

    # ------------------------------------------------------------------------------------------
    # pinned mixes

    def pin(self) -> None:
        """Pin the current mix (up to six) with its response."""
        if len(self.pinned) >= MAX_PINS:
            self.message = f"at most {MAX_PINS} mixes can be pinned: unpin one first"
            return
        self.pinned = [
            *self.pinned,
            {
                "weights": dict(self.weights),
                "response": self.response,
                "scores": dict(self.scores),
                "measured": dict(self.measured),  # over the grid's prompts: where the plot puts it
            },
        ]

    def unpin(self, index: int) -> None:
        pins = [p for i, p in enumerate(self.pinned) if i != index]
        self.reference = min(self.reference, max(0, len(pins) - 1))
        self.pinned = pins

    def refresh_pins(self) -> None:
        """Regenerate every pinned mix for the current prompt and settings, as one batch."""
        if not self.pinned:
            return
        try:
            out = self.engine.generate_batch(self.prompt, [p["weights"] for p in self.pinned], self.sampling)
            self.pinned = [
                {**p, "response": text, "scores": self.engine.score(self.prompt, text)}
                for p, text in zip(self.pinned, out.texts, strict=True)
            ]
        except Exception as err:
            self.message = f"{type(err).__name__}: {err}"
