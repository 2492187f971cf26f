"""The app's views: each takes the session state (and through it the shared engine) and nothing else.

Views only render state: every change they make goes through a ``Session`` method or parameter.
"""

from __future__ import annotations

import html
import io
import math
import re
import tempfile
from functools import partial
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.compare import highlight_differences
from explorer.app.engine import describe_sampling
from explorer.app.state import MAX_PINS, Session
from explorer.frontier.packaged import origin_of
from explorer.frontier.results import (
    adapter_names,
    direction_of,
    done_mask,
    front_in_plane,
    hypervolume_by_method,
    hypervolume_of,
    intervals,
    is_complete,
    is_summarized,
    means,
    methods_of,
    mix_weights,
    n_mixes,
    objective_names,
    pareto,
    save_results,
)
from explorer.mix import mix_label
from explorer.paths import CACHE, shown_path
from explorer.sampling import SamplingConfig

SIMPLEX_RANGE, FREE_RANGE = (0.0, 1.0), (-1.0, 2.0)
PROMPT_MAX_CHARS = 200_000  # the prompt box's limit (the demo's context, 8,192 tokens, ends sooner)

# How the 2-D plot marks a grid mix (colour, marker). With more than two objectives a mix can be
# Pareto-optimal in all of them and still be beaten on the two axes shown (by a mix worse on a third).
ON_PLANE, ALL_ONLY, DOMINATED = (
    "optimal overall and here",  # Pareto-optimal in all objectives and on the two axes shown
    "optimal overall, beaten here",  # in all objectives, but beaten on the two axes shown
    "dominated",
)
PARETO_MARKS = {
    "Pareto-optimal": ("#d62728", "circle"),  # two objectives: the plane is every objective
    ON_PLANE: ("#d62728", "circle"),
    ALL_ONLY: ("#ff7f0e", "triangle"),
    DOMINATED: ("#9aa5b1", "circle"),
}


def pareto_status(ds, x: str, y: str) -> list[str]:
    """Each mix's mark on the plane (x, y): Pareto-optimal (two objectives), or with more, optimal
    in all objectives and on these axes, optimal in all but beaten on these axes, or dominated."""
    optimal = pareto(ds)
    if len(objective_names(ds)) <= 2:
        return ["Pareto-optimal" if o else DOMINATED for o in optimal]
    plane = np.zeros(len(optimal), dtype=bool)
    plane[front_in_plane(ds, x, y)] = True
    return [ON_PLANE if p else ALL_ONLY if o else DOMINATED for o, p in zip(optimal, plane, strict=True)]


def hide_empty_legend_items(plot, element) -> None:
    """A legend lists only what the plot shows: items whose glyphs have no data are hidden (the
    empty plot lists no markers; the current mix appears once it has a place)."""
    for legend in plot.state.legend:
        for item in legend.items:
            item.visible = any(
                any(len(column) for column in r.data_source.data.values())
                for r in item.renderers
                if hasattr(r, "data_source")
            )


def hover_complete_renderers(plot, element) -> None:
    """Each hover tool reads only renderers whose data has every column its tooltips name: when a
    layer's element changes (a new label, say), HoloViews adds the new renderer to the hover tool
    it shares with others, whose tooltips then show "???" over it."""
    from bokeh.models import HoverTool

    for tool in plot.state.tools:
        if not isinstance(tool, HoverTool) or not isinstance(tool.renderers, list):
            continue
        tips = tool.tooltips if isinstance(tool.tooltips, list) else []
        fields = {f for _, text in tips for f in re.findall(r"@\{?([\w ]+?)\}?(?:\W|$)", text)}
        keep = [
            r for r in tool.renderers if not hasattr(r, "data_source") or fields <= set(r.data_source.data)
        ]
        if keep and len(keep) != len(tool.renderers):
            tool.renderers = keep


# What each built-in objective measures, its unit and which way is better (next to axes and sliders).
OBJECTIVE_HELP = {
    "positive": "mean VADER compound sentiment of the response's sentences, -1 (negative) to 1 (positive); higher is better",
    "concise": "words in the response; lower is better",
    "readable": "Flesch reading ease, about 0 (hard) to 100 (easy); higher is better",
    "relevant": "cosine similarity of MiniLM embeddings of prompt and response, -1 to 1; higher is better",
    "nontoxic": "1 - P(offensive) by alt-profanity-check, 0 to 1; higher is better",
}

HOW_TO = (
    "**How to use.** Each slider is the weight of one adapter in the mix W = W0 + sum_i w_i delta_i; "
    "release one and the response for the new mix streams in (its mix, prompt and decoding are shown "
    "with it; it says *stale* when you changed any of them since). *Compute frontier* evaluates a grid "
    "of mixes over the grid prompts in the background: each point is a mix's mean score with its 95% "
    "interval, red points are Pareto-optimal, the star is your mix; click a point to load it and read "
    "its responses. *Pin* keeps a mix's response to compare side by side; *Export* writes the mix "
    "as a PEFT adapter, a low-rank adapter or a merged model."
)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def slider_help(names: list[str]) -> str:
    """Under the sliders: what each adapter was trained for, as its objective measures it."""
    lines = [
        f"<b>{html.escape(n)}</b>: adapter trained for {html.escape(OBJECTIVE_HELP[n])}"
        for n in names
        if n in OBJECTIVE_HELP
    ]
    lines.append("a weight scales its adapter's delta: 0 leaves it out, 1 adds it whole")
    return f"<small>{'<br>'.join(lines)}</small>"


class MixControls(Viewer):
    """One slider per adapter, the simplex/free switch, the prompt and the decoding settings."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    actions = param.List(default=[], doc="more buttons beside Generate and Pin (undo and redo of the mix)")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.session
        self._syncing = False
        lo, hi = SIMPLEX_RANGE if s.simplex else FREE_RANGE
        self.sliders = {
            n: pn.widgets.FloatSlider(
                name=n,
                start=lo,
                end=hi,
                step=0.01,
                value=s.weights[n],
                sizing_mode="stretch_width",
                css_classes=["weight-slider"],
                format="0.00",
            )
            for n in s.weights
        }
        for name, slider in self.sliders.items():
            slider.param.watch(partial(self._moved, name), "value")
            slider.param.watch(self._released, "value_throttled")
        s.param.watch(self._sync, "weights")
        s.param.watch(self._mode, "simplex")
        presets = pn.widgets.Select(
            name="Preset prompts", options=["", *s.engine.prompts], value="", sizing_mode="stretch_width"
        )
        presets.param.watch(self._preset, "value")
        self.prompt = pn.widgets.TextAreaInput.from_param(
            s.param.prompt,
            name="Prompt",
            height=90,
            sizing_mode="stretch_width",
            max_length=PROMPT_MAX_CHARS,  # Panel's default (5,000) cut longer prompts without a word
            placeholder=f"a request for the model (up to {PROMPT_MAX_CHARS:,} characters)",
        )
        # "stale" shows while the prompt is typed, not only once the box loses focus
        self.prompt.param.watch(lambda event: s.prompt_typed(event.new), "value_input")
        self.generate = pn.widgets.Button(name="Generate", button_type="primary")
        self.generate.on_click(lambda e: s.regenerate())
        self.pin = pn.widgets.Button(name="Pin this mix", button_type="default")
        self.pin.on_click(lambda e: s.pin())
        self._layout = pn.Column(
            pn.pane.Markdown("### Mix"),
            pn.widgets.Checkbox.from_param(s.param.simplex, name="Keep on the simplex (sum 1)"),
            *self.sliders.values(),
            pn.pane.HTML(slider_help(list(s.weights)), css_classes=["slider-help"]),
            pn.Row(self.generate, self.pin, *self.actions),
            pn.pane.Markdown("### Prompt"),
            presets,
            self.prompt,
            pn.pane.Markdown("### Decoding"),
            pn.widgets.IntInput.from_param(s.param.max_new_tokens, name="Max new tokens"),
            pn.widgets.FloatSlider.from_param(
                s.param.temperature, step=0.05, name="Temperature (0 = greedy)"
            ),
            pn.widgets.FloatSlider.from_param(s.param.top_p, step=0.01, name="Top-p"),
            pn.widgets.IntInput.from_param(s.param.seed, name="Seed"),
            pn.widgets.Select.from_param(s.param.method, name="Mixing method"),
            pn.pane.HTML(
                "<small><b>soup</b>: the adapters' weights mixed (one forward pass); <b>mod</b>: their "
                "next-token distributions mixed at decoding time, prod p_i^w_i (one pass per adapter)</small>",
                css_classes=["method-help"],
            ),
            sizing_mode="stretch_width",
        )

    def _moved(self, name: str, event) -> None:
        if self._syncing:
            return
        self.session.set_weight(name, event.new)

    def _released(self, event) -> None:
        if not self._syncing:  # arrow keys release once per press: one generation once they stop
            self.session.request_regenerate()

    def _sync(self, event) -> None:
        self._syncing = True
        try:
            for n, slider in self.sliders.items():
                value = self.session.weights[n]
                if not (slider.start <= value <= slider.end):
                    slider.param.update(
                        start=min(slider.start, math.floor(value)), end=max(slider.end, math.ceil(value))
                    )
                slider.value = value
        finally:
            self._syncing = False

    def _mode(self, event) -> None:
        lo, hi = SIMPLEX_RANGE if event.new else FREE_RANGE
        self._syncing = True
        try:
            for slider in self.sliders.values():
                slider.param.update(start=min(lo, slider.value), end=max(hi, slider.value))
        finally:
            self._syncing = False

    def _preset(self, event) -> None:
        if event.new:
            self.session.prompt = event.new
            self.session.regenerate()

    def __panel__(self):
        return self._layout


class ResponseView(Viewer):
    """The live response, its scores, and the time from slider release to the first token."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        s = self.session

        def body(response, generating):
            text = html.escape(response) if response else ("<i>generating...</i>" if generating else "")
            return f'<div class="response-text" style="white-space: pre-wrap">{text}</div>'

        def status(scores, first_token_s, generating, produced, stale):
            if not produced:
                return '<div class="response-status"></div>'
            how = produced.get("method", "soup")
            parts = [
                f"<b>Mix:</b> {html.escape(mix_label(produced['weights'], digits=2))} <b>({html.escape(how)})</b>",
                f"<b>prompt:</b> {html.escape(_short(produced['prompt']))}",
                html.escape(describe_sampling(SamplingConfig(**produced["sampling"]))),
            ]
            if stale:
                parts.append(
                    '<span class="response-stale" style="color:#b00">stale: the mix, prompt or decoding '
                    "changed since; press Generate</span>"
                )
            if first_token_s is not None:
                parts.append(f"first token after <b>{first_token_s:.2f} s</b>")
            if generating:
                parts.append("generating...")
            elif scores:
                parts.append(
                    "scores: " + ", ".join(f"{html.escape(k)} <b>{_fmt(v)}</b>" for k, v in scores.items())
                )
            return f'<div class="response-status">{" · ".join(parts)}</div>'

        def message(text):
            return pn.pane.Alert(text, alert_type="danger", css_classes=["app-message"], visible=bool(text))

        return pn.Column(
            pn.pane.Markdown("### Response", margin=(0, 10)),
            # one pane each whose text changes (a new pane per token would blank between tokens)
            pn.pane.HTML(
                pn.bind(
                    status,
                    s.param.scores,
                    s.param.first_token_s,
                    s.param.generating,
                    s.param.response_for,
                    s.param.stale,
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.HTML(
                pn.bind(body, s.param.response, s.param.generating),
                sizing_mode="stretch_width",
                min_height=40,  # short: a laptop screen shows the frontier below it without scrolling
                max_height=220,
                styles={"overflow-y": "auto"},
            ),
            pn.bind(message, s.param.message),
            sizing_mode="stretch_width",
        )


class FrontierView(Viewer):
    """Grid mixes in objective space: the Pareto front, the current mix, pinned mixes; tap loads a mix."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    layers = param.List(default=[], doc="more layers drawn over the grid mixes (the Choose panel's)")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.session
        self.points = hv.DynamicMap(
            pn.bind(self._grid_points, s.param.results, s.param.x_objective, s.param.y_objective)
        )
        self.tap = hv.streams.Selection1D(source=self.points)
        self.tap.add_subscriber(self._tapped)
        front = hv.DynamicMap(pn.bind(self._front, s.param.results, s.param.x_objective, s.param.y_objective))
        current = hv.DynamicMap(
            pn.bind(
                self._current,
                s.param.results,
                s.param.weights,
                s.param.measured,
                s.param.x_objective,
                s.param.y_objective,
            )
        )
        pins = hv.DynamicMap(pn.bind(self._pins, s.param.pinned, s.param.x_objective, s.param.y_objective))
        y_bars = hv.DynamicMap(
            pn.bind(
                self._whiskers, s.param.results, s.param.x_objective, s.param.y_objective, horizontal=False
            )
        )
        x_bars = hv.DynamicMap(
            pn.bind(
                self._whiskers, s.param.results, s.param.x_objective, s.param.y_objective, horizontal=True
            )
        )
        methods = hv.DynamicMap(
            pn.bind(self._method_fronts, s.param.method_fronts, s.param.x_objective, s.param.y_objective)
        )
        mixes = front * x_bars * y_bars * self.points * methods
        for layer in self.layers:
            mixes = mixes * layer
        self.plot = (mixes * pins * current).opts(
            hv.opts.Overlay(
                responsive=True,
                min_height=340,
                legend_position="right",
                hooks=[hide_empty_legend_items, hover_complete_renderers],
            ),
            # the axes follow the data as the grid fills in and the current mix moves
            hv.opts.Points(framewise=True, padding=0.1),
            hv.opts.Curve(framewise=True, padding=0.1),
            hv.opts.ErrorBars(framewise=True, color="#9aa5b1", line_alpha=0.6),
        )

    def _table(self, ds, x, y):
        """One row per grid mix measured so far (a partial grid has mixes with no rows yet)."""
        if ds is None or not is_summarized(ds) or x is None:
            return None
        names, weights = adapter_names(ds), mix_weights(ds)
        k = {o: i for i, o in enumerate(objective_names(ds))}
        mean, (low, high) = means(ds), intervals(ds)
        status = pareto_status(ds, x, y)
        return [
            {
                x: mean[m, k[x]],
                y: mean[m, k[y]],
                "mix": mix_label(dict(zip(names, weights[m], strict=True)), digits=2),
                "x_ci": f"[{_fmt(low[m, k[x]])}, {_fmt(high[m, k[x]])}]",
                "y_ci": f"[{_fmt(low[m, k[y]])}, {_fmt(high[m, k[y]])}]",
                "pareto": status[m],
                "index": m,
                "x_low": mean[m, k[x]] - low[m, k[x]],
                "x_high": high[m, k[x]] - mean[m, k[x]],
                "y_low": mean[m, k[y]] - low[m, k[y]],
                "y_high": high[m, k[y]] - mean[m, k[y]],
                "x_text": f"{x}: {_fmt(mean[m, k[x]])} [{_fmt(low[m, k[x]])}, {_fmt(high[m, k[x]])}]",
                "y_text": f"{y}: {_fmt(mean[m, k[y]])} [{_fmt(low[m, k[y]])}, {_fmt(high[m, k[y]])}]",
            }
            for m in range(n_mixes(ds))
            if np.isfinite(mean[m, k[x]]) and np.isfinite(mean[m, k[y]])
        ]

    def _whiskers(self, ds, x, y, *, horizontal: bool):
        """The 95% bootstrap interval of each mix's mean on one axis."""
        rows = self._table(ds, x, y) or []
        end = "x" if horizontal else "y"
        data = [(r[x], r[y], r[f"{end}_low"], r[f"{end}_high"]) for r in rows]
        return hv.ErrorBars(data, kdims=[x or "x"], vdims=[y or "y", "low", "high"], horizontal=horizontal)

    # one hover tool per kind of marker, made by HoloViews for that marker's renderer only (a
    # HoverTool object of ours hovered every renderer: the front line through a clicked point
    # showed a second tooltip of "???"); its fields are text columns, valid whatever the axes
    GRID_TOOLTIPS = [("mix", "@mix"), ("", "@x_text"), ("", "@y_text"), ("", "@pareto")]
    MARK_TOOLTIPS = [("", "@what"), ("mix", "@mix"), ("", "@x_text"), ("", "@y_text")]

    def _grid_points(self, ds, x, y):
        rows = self._table(ds, x, y)
        vdims = ["mix", "x_ci", "y_ci", "pareto", "index", "x_text", "y_text"]
        # the same options with or without rows: Bokeh's renderer is made once, on the first frame,
        # and a first frame without the colour/marker mapping left later frames' columns unmapped
        # (their tooltips read "???")
        return hv.Points(rows, kdims=[x or "x", y or "y"], vdims=vdims, label="grid mixes").opts(
            color="pareto",
            cmap={status: colour for status, (colour, _) in PARETO_MARKS.items()},
            marker=hv.dim("pareto").categorize({status: mark for status, (_, mark) in PARETO_MARKS.items()}),
            size=9,
            tools=["hover", "tap"],
            hover_tooltips=self.GRID_TOOLTIPS,
            nonselection_alpha=0.6,
            selection_color="#ff7f0e",
            xlabel=self._axis(ds, x) if rows else "",
            ylabel=self._axis(ds, y) if rows else "",
            show_legend=True,
        )

    def _method_fronts(self, joined, x, y):
        """Each method's front on these axes, in its own colour, over the grids computed so far
        with this session's settings (only when more than one method has a grid)."""
        curves = []
        if joined is not None and x is not None and is_summarized(joined):
            k = {o: i for i, o in enumerate(objective_names(joined))}
            mean, methods = means(joined), np.array(methods_of(joined))
            for method in dict.fromkeys(methods.tolist()):
                part = joined.isel(mix=np.flatnonzero(methods == method))
                rows = [i for i in front_in_plane(part, x, y) if np.isfinite(means(part)[i]).all()]
                index = np.flatnonzero(methods == method)[rows]
                points = sorted((mean[m, k[x]], mean[m, k[y]]) for m in index)
                curves.append(
                    hv.Curve(points, kdims=[x], vdims=[y], label=f"{method} front").opts(
                        color=METHOD_COLOURS.get(method, "#555"), line_width=2, line_dash="dashed"
                    )
                )
        if not curves:
            return hv.Curve([], kdims=[x or "x"], vdims=[y or "y"])
        return hv.Overlay(curves)

    def _axis(self, ds, name):
        better = "higher" if direction_of(ds, name) == "maximize" else "lower"
        return f"{name} ({better} is better)"

    def _front(self, ds, x, y):
        """The front in the plane shown: the mixes no other mix beats on both axes, joined by x.

        With more than two objectives a point can be Pareto-optimal overall (red) and still lie
        off this line: another mix beats it on the two axes shown but not on a third.
        """
        rows = self._table(ds, x, y) or []
        front = [rows[m] for m in front_in_plane(ds, x, y)] if rows else []
        return hv.Curve(
            [(r[x], r[y]) for r in front],
            kdims=[x or "x"],
            vdims=[y or "y"],
            label="Pareto front" if ds is None or len(objective_names(ds)) <= 2 else "front on these axes",
        ).opts(color="#d62728", line_width=2)

    def _current(self, ds, weights, measured, x, y):
        """The star: the mix's means over the grid's prompts once measured, else the grid estimate."""
        done = bool(measured) and x in measured and y in measured
        point = (measured[x], measured[y]) if done else None
        if point is None:
            est = self.session.estimated_scores()
            point = (est[x], est[y]) if est else None
        label = "current mix (measured)" if done else "current mix (estimate)"
        mix = mix_label(self.session.weights, digits=2)
        data = []
        if point and all(np.isfinite(point)):
            data = [(*point, mix, label, f"{x}: {_fmt(point[0])}", f"{y}: {_fmt(point[1])}")]
        vdims = ["mix", "what", "x_text", "y_text"]
        return hv.Points(data, kdims=[x or "x", y or "y"], vdims=vdims, label=label).opts(
            marker="star",
            size=22,
            color="#1f77b4",
            line_color="black",
            tools=["hover"],
            hover_tooltips=self.MARK_TOOLTIPS,
        )

    def _pins(self, pinned, x, y):
        # a pinned mix sits where the grid would put it: its means over the grid's prompts
        data = [
            (
                p["measured"][x],
                p["measured"][y],
                mix_label(p["weights"], digits=2),
                f"pinned {i + 1}",
                f"{x}: {_fmt(p['measured'][x])}",
                f"{y}: {_fmt(p['measured'][y])}",
            )
            for i, p in enumerate(pinned)
            if {x, y} <= set(p.get("measured", {}))
        ]
        vdims = ["mix", "what", "x_text", "y_text"]
        return hv.Points(data, kdims=[x or "x", y or "y"], vdims=vdims, label="pinned").opts(
            marker="diamond",
            size=14,
            color="#2ca02c",
            line_color="black",
            tools=["hover"],
            hover_tooltips=self.MARK_TOOLTIPS,
        )

    def _tapped(self, index):
        if index:  # the selection indexes the rows drawn (mixes measured so far)
            rows = self._table(self.session.results, self.session.x_objective, self.session.y_objective)
            if rows and index[0] < len(rows):
                self.session.load_mix(int(rows[index[0]]["index"]))
                self.session.regenerate()

    def __panel__(self):
        s = self.session
        axes = [  # beside the title: one line less above the plot
            pn.widgets.Select.from_param(s.param.x_objective, name="x axis", width=160),
            pn.widgets.Select.from_param(s.param.y_objective, name="y axis", width=160),
        ]
        return pn.Column(
            pn.Row(
                pn.pane.Markdown("### Frontier", margin=(0, 10), width=120, align="end"),
                *(axes if len(s.engine.objectives) > 2 else []),
            ),
            pn.pane.HTML(
                pn.bind(
                    frontier_status,
                    s.param.results,
                    s.param.grid_settings,
                    s.param.grid_running,
                    s.param.grid_message,
                    s.param.grid_eta,
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.HTML(pn.bind(origin_text, s.param.results), sizing_mode="stretch_width"),
            pn.pane.HoloViews(
                self.plot, sizing_mode="stretch_width", min_height=340, css_classes=["frontier-plot"]
            ),
            pn.pane.HTML(
                pn.bind(method_table, s.param.method_fronts, s.param.method_speeds),
                sizing_mode="stretch_width",
                css_classes=["method-table"],
            ),
            pn.pane.HTML(
                pn.bind(axes_help, s.param.x_objective, s.param.y_objective), sizing_mode="stretch_width"
            ),
            sizing_mode="stretch_width",
        )


def on_simplex(weights) -> bool:
    """Every weight at least 0 and their sum 1 (to 1e-6): a point of the weight triangle."""
    w = np.asarray(list(weights), dtype=np.float64)
    return bool((w >= -1e-9).all() and abs(w.sum() - 1.0) < 1e-6)


class SimplexView(Viewer):
    """With three adapters: the grid and the current mix on the weight triangle (a free-mode mix
    off the simplex is not drawn in it: the title says where it is)."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    kept = param.Parameter(default=None, doc="a Brush's ``param.kept``: the mixes it filters out are greyed")

    @staticmethod
    def _xy(w):
        return w[1] + w[2] / 2.0, w[2] * math.sqrt(3) / 2.0

    def _plot(self, ds, weights, kept=None):
        names = list(self.session.weights)
        corners = [self._xy(np.eye(3)[i]) for i in range(3)]
        edges = hv.Path([[*corners, corners[0]]]).opts(color="black")
        labels = hv.Labels(
            [(cx, cy - 0.06 if cy == 0 else cy + 0.05, n) for (cx, cy), n in zip(corners, names, strict=True)]
        )
        grid = []
        if ds is not None and is_summarized(ds):
            keep = kept if kept is not None and len(kept) == n_mixes(ds) else np.ones(n_mixes(ds), bool)
            grid = [
                (*self._xy(w), "filtered out" if not k else "Pareto-optimal" if p else "dominated")
                for w, p, k in zip(mix_weights(ds), pareto(ds), keep, strict=True)
                if on_simplex(w)
            ]
        pts = hv.Points(grid, vdims=["pareto"]).opts(
            color="pareto",
            cmap={"Pareto-optimal": "#d62728", "dominated": "#9aa5b1", "filtered out": "#e4e7eb"},
            size=7,
            show_legend=False,
        )
        mix = [weights[n] for n in names]
        inside = on_simplex(mix)
        current = hv.Points([self._xy(mix)] if inside else []).opts(marker="star", size=20, color="#1f77b4")
        title = "Weights on the simplex"
        if not inside:
            title = f"Current mix off the simplex (sum {sum(mix):.2f})"
        return (edges * labels * pts * current).opts(
            hv.opts.Overlay(
                xaxis=None,
                yaxis=None,
                height=260,
                width=300,
                title=title,
                xlim=(-0.15, 1.15),
                ylim=(-0.15, 1.0),
            )
        )

    def __panel__(self):
        s = self.session
        if len(s.weights) != 3:
            return pn.Spacer(width=0)
        return pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._plot, s.param.results, s.param.weights, self.kept)),
            css_classes=["simplex-plot"],
        )


METHOD_COLOURS = {"soup": "#1f77b4", "mod": "#ff7f0e"}


def method_table(joined, speeds: dict) -> str:
    """Method, hypervolume [95% CI] of its front in all objectives (one reference point for all),
    mixes and tokens/s: one row per method whose grid of these settings was computed."""
    if joined is None:
        return ""
    counts = {m: methods_of(joined).count(m) for m in dict.fromkeys(methods_of(joined))}
    rows = "".join(
        f"<tr><td style='color:{METHOD_COLOURS.get(m, '#555')}'><b>{html.escape(m)}</b></td>"
        f"<td>{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]</td><td>{counts.get(m, 0)}</td>"
        f"<td>{_fmt(speeds.get(m))}</td></tr>"
        for m, (v, lo, hi) in hypervolume_by_method(joined).items()
    )
    return (
        "<table class='methods'><tr><th>method</th><th>hypervolume [95% CI]</th><th>mixes</th>"
        f"<th>tokens/s</th></tr>{rows}</table>"
        "<small>the fronts of every method computed with these settings, dashed in the method's colour</small>"
    )


def frontier_status(ds, settings: str, running: bool = False, message: str = "", eta: str = "") -> str:
    """What the plot shows: whose settings, whether the front is only partial, and while a grid
    runs that it runs (from the click on, before its first points) with its time left."""
    if ds is None:
        if running:
            return (
                '<div class="frontier-status"><b class="frontier-computing">Computing the frontier'
                f"{' of ' + html.escape(settings) if settings else ''}</b>: the first points appear after "
                f"the grid's first chunk{'; ' + html.escape(eta) if eta else ''}.</div>"
            )
        return '<div class="frontier-status">No frontier yet: press "Compute frontier".</div>'
    text = f"Grid: {html.escape(settings)}." if settings else ""
    if not is_complete(ds):
        done = done_mask(ds)
        rows = f"{int(done.sum())}/{done.size} rows done"
        if running:
            text += (
                f' <b class="frontier-partial frontier-computing" style="color:#b00">Computing: {rows}'
                f"{', ' + html.escape(eta) if eta else ''}; the points and the front will still move.</b>"
            )
        else:
            why = "failed" if message.startswith("grid failed") else "was cancelled"
            text += (
                f' <b class="frontier-partial" style="color:#b00">Partial: {rows}; the grid {why}: '
                'these points stay as they are. Press "Compute frontier" to compute the whole grid.</b>'
            )
    return f'<div class="frontier-status">{text}</div>'


def origin_text(ds) -> str:
    """Where the front shown comes from: the package's demo front (its inputs' hashes match this
    machine's), or computed here."""
    origin = origin_of(ds)
    if not origin:
        return '<div class="frontier-origin"></div>'
    why = " (its inputs' hashes match this machine's)" if origin != "computed here" else ""
    return f'<div class="frontier-origin"><small>Front: {html.escape(origin)}{why}</small></div>'


def axes_help(x: str | None, y: str | None) -> str:
    """What the two axes measure, in which unit, and which way is better."""
    names = [n for n in dict.fromkeys([x, y]) if n]
    lines = [
        f"<b>{html.escape(n)}</b>: {html.escape(OBJECTIVE_HELP.get(n, 'a custom objective'))}" for n in names
    ]
    whiskers = "whiskers: 95% bootstrap interval of each mix's mean over the grid's prompts"
    return f'<div class="axes-help"><small>{"<br>".join([*lines, whiskers])}</small></div>'


def hypervolume_text(ds) -> str:
    """The front's hypervolume and its 95% interval (bootstrap over prompts)."""
    if ds is None or "hypervolume" not in ds.attrs:
        return '<div class="grid-hypervolume"></div>'
    low, high = (float(v) for v in np.atleast_1d(ds.attrs.get("hypervolume_ci", [np.nan, np.nan])))
    ref = ", ".join(_fmt(float(r)) for r in np.atleast_1d(ds.attrs.get("reference", [])))
    partial_note = " (partial grid)" if not is_complete(ds) else ""
    return (
        f'<div class="grid-hypervolume">Hypervolume <b>{_fmt(hypervolume_of(ds))}</b> '
        f"[{_fmt(low)}, {_fmt(high)}] (95% CI){partial_note}<br><small>reference point ({ref}); "
        "larger dominates more of objective space</small></div>"
    )


def _netcdf_bytes(ds) -> io.BytesIO:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_results(ds, Path(tmp) / "frontier.nc")
        return io.BytesIO(path.read_bytes())


def _csv_bytes(ds) -> io.BytesIO:
    """One line per mix: weights, mean and interval of every objective, the Pareto mark."""
    names, objectives = adapter_names(ds), objective_names(ds)
    mean, (low, high), optimal = means(ds), intervals(ds), pareto(ds)
    frame = pd.DataFrame(mix_weights(ds), columns=[f"w_{n}" for n in names])
    for k, o in enumerate(objectives):
        frame[f"{o}_mean"], frame[f"{o}_ci_low"], frame[f"{o}_ci_high"] = mean[:, k], low[:, k], high[:, k]
    frame["pareto"] = optimal
    return io.BytesIO(frame.to_csv(index=False).encode())


class GridControls(Viewer):
    """The background grid: its settings (editable), start and cancel, progress, hypervolume,
    downloads of its data and one grid point's responses prompt by prompt."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def _settings(self) -> pn.Column:
        s = self.session
        upload = pn.widgets.FileInput(accept=".txt", multiple=False, name="Prompt file")
        upload.param.watch(self._uploaded, "value")
        return pn.Column(
            pn.widgets.IntInput.from_param(s.param.grid_resolution, name="Resolution (steps per weight)"),
            pn.widgets.IntInput.from_param(
                s.param.grid_prompt_count, name="Prompts (the first N of the file)"
            ),
            pn.pane.HTML("<small>Prompt file (one request per line):</small>"),
            upload,
            pn.pane.HTML(pn.bind(self._prompt_list, s.param.grid_prompt_pool, s.param.grid_prompt_count)),
            pn.pane.HTML(
                "<small>The grid decodes with the decoding settings in the sidebar.</small>",
            ),
            sizing_mode="stretch_width",
        )

    def _uploaded(self, event) -> None:
        if event.new:
            self.session.set_prompt_file(event.new.decode("utf-8", "replace"))

    @staticmethod
    def _prompt_list(pool, count) -> str:
        items = "".join(f"<li>{html.escape(_short(p))}</li>" for p in pool[:count])
        return f'<details class="grid-prompts"><summary>{min(count, len(pool))} grid prompts</summary><ol>{items}</ol></details>'

    def __panel__(self):
        s = self.session
        start = pn.widgets.Button(name="Compute frontier", button_type="success")
        cancel = pn.widgets.Button(name="Cancel grid", button_type="warning")

        start.on_click(lambda event: s.start_grid())
        cancel.on_click(lambda event: s.cancel_grid())
        cancel.disabled = s.param.grid_running.rx.not_()  # nothing to cancel while no grid runs
        downloads = pn.Row(
            pn.widgets.FileDownload(
                callback=pn.bind(lambda ds: _netcdf_bytes(ds) if ds is not None else None, s.param.results),
                filename="frontier.nc",
                label="netCDF",
                embed=False,
            ),
            pn.widgets.FileDownload(
                callback=pn.bind(lambda ds: _csv_bytes(ds) if ds is not None else None, s.param.results),
                filename="frontier.csv",
                label="CSV",
                embed=False,
            ),
            visible=s.param.results.rx.is_not(None),
        )
        progress = pn.indicators.Progress(
            value=pn.bind(lambda fraction: int(round(1000 * fraction)), s.param.grid_progress),
            max=1000,
            sizing_mode="stretch_width",
            bar_color="success",
        )
        return pn.Column(
            pn.pane.Markdown("### Frontier grid"),
            self._settings(),
            pn.Row(start, cancel),
            progress,
            pn.bind(
                lambda m, r: pn.pane.HTML(
                    f'<div class="grid-message">{html.escape(m or ("running..." if r else ""))}</div>',
                    sizing_mode="stretch_width",
                ),
                s.param.grid_message,
                s.param.grid_running,
            ),
            pn.pane.HTML(pn.bind(hypervolume_text, s.param.results), sizing_mode="stretch_width"),
            downloads,
            sizing_mode="stretch_width",
        )


class CompareView(Viewer):
    """Pinned mixes side by side; words that differ from the reference column are highlighted."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def _columns(self, pinned, reference, prompt):
        s = self.session
        if not pinned:
            return pn.pane.Markdown(
                f"Pin up to {MAX_PINS} mixes to compare their responses to the same prompt and seed."
            )
        ref = pinned[min(reference, len(pinned) - 1)]["response"]
        cols = []
        for i, p in enumerate(pinned):
            body = html.escape(p["response"]) if i == reference else highlight_differences(p["response"], ref)
            notes = [f"prompt: {html.escape(_short(p['prompt']))}"]
            if p["prompt"] != s.prompt:
                notes.append(
                    '<b class="pin-other-prompt" style="color:#b00">answers another prompt than the one '
                    "above: press Regenerate pinned</b>"
                )
            notes.append(html.escape(describe_sampling(SamplingConfig(**p["sampling"]))))
            if p.get("partial"):
                notes.append(
                    '<b class="pin-partial" style="color:#b00">partial: still streaming or cut off</b>'
                )
            scores = "<br>".join(f"{k}: <b>{_fmt(v)}</b>" for k, v in p["scores"].items())
            make_ref = pn.widgets.Button(
                name="reference" if i == reference else "make reference",
                disabled=i == reference,
                button_type="light",
            )
            make_ref.on_click(partial(lambda i, e: setattr(s, "reference", i), i))
            unpin = pn.widgets.Button(name="unpin", button_type="light")
            unpin.on_click(partial(lambda i, e: s.unpin(i), i))
            cols.append(
                pn.Column(
                    pn.pane.HTML(f"<b>{html.escape(mix_label(p['weights'], digits=2))}</b>"),
                    pn.pane.HTML(f'<small class="pin-prompt">{"<br>".join(notes)}</small>'),
                    pn.pane.HTML(
                        f'<div class="pinned-response" style="white-space: pre-wrap">{body}</div>',
                        sizing_mode="stretch_width",
                    ),
                    pn.pane.HTML(f"<small>{scores}</small>"),
                    pn.Row(make_ref, unpin),
                    css_classes=["pinned-column"],
                    styles={"border": "1px solid #ddd", "padding": "6px"},
                    sizing_mode="stretch_width",
                )
            )
        return pn.Row(*cols, sizing_mode="stretch_width")

    def __panel__(self):
        s = self.session
        refresh = pn.widgets.Button(name="Regenerate pinned for this prompt", button_type="default")
        refresh.on_click(lambda e: s.refresh_pins())  # in a worker thread
        refresh.disabled = s.param.refreshing_pins.rx()
        return pn.Column(
            pn.Row(pn.pane.Markdown("### Compare pinned mixes"), refresh),
            pn.bind(self._columns, s.param.pinned, s.param.reference, s.param.prompt),
            sizing_mode="stretch_width",
        )


class ExportView(Viewer):
    """Export the current mix into the export folder (in a worker thread); the folder, size and
    low-rank error are shown, and adapter and low-rank exports can be downloaded as a zip named
    after the mix. Merged models stay on disk: they are far too big for the browser."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    @staticmethod
    def _download(path: str):
        if not path:
            return pn.Spacer(height=0)
        return pn.widgets.FileDownload(
            file=path, filename=Path(path).name, label=f"Download {Path(path).name}", embed=False
        )

    def __panel__(self):
        s = self.session
        export = pn.widgets.Button(name="Export", button_type="primary")
        export.on_click(lambda e: s.export())
        export.disabled = s.param.exporting.rx()
        return pn.Column(
            pn.pane.Markdown(f"### Export\ninto `{shown_path(s.engine.export_dir)}`"),
            pn.pane.HTML(
                f"<small>{CACHE}: the cache folder ($PSE_CACHE_DIR, else ~/.cache/pareto-soup-explorer)</small>",
                visible=shown_path(s.engine.export_dir).startswith(CACHE),
            ),
            pn.widgets.Select.from_param(s.param.export_format, name="Format"),
            pn.widgets.IntInput.from_param(s.param.export_rank, name="Rank (lowrank)"),
            export,
            pn.pane.HTML(
                pn.bind(
                    lambda t: f'<div class="export-status">{html.escape(t)}</div>', s.param.export_status
                ),
                sizing_mode="stretch_width",
            ),
            pn.bind(self._download, s.param.export_zip),
            sizing_mode="stretch_width",
        )
