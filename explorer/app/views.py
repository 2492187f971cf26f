"""The app's views: each takes the session state (and through it the shared engine) and nothing else.

Views only render state: every change they make goes through a ``Session`` method or parameter.
"""

from __future__ import annotations

import html
import math
from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.compare import highlight_differences
from explorer.app.state import MAX_PINS, Session
from explorer.results import (
    adapter_names,
    direction_of,
    front_in_plane,
    intervals,
    is_summarized,
    means,
    mix_weights,
    n_mixes,
    objective_names,
    pareto,
)

SIMPLEX_RANGE, FREE_RANGE = (0.0, 1.0), (-1.0, 2.0)


def _mix_label(weights: dict) -> str:
    return ", ".join(f"{n} {w:.2f}" for n, w in weights.items())


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


class MixControls(Viewer):
    """One slider per adapter, the simplex/free switch, the prompt and the decoding settings."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

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
            s.param.prompt, name="Prompt", height=90, sizing_mode="stretch_width"
        )
        self.generate = pn.widgets.Button(name="Generate", button_type="primary")
        self.generate.on_click(lambda e: s.regenerate())
        self.pin = pn.widgets.Button(name="Pin this mix", button_type="default")
        self.pin.on_click(lambda e: s.pin())
        self._layout = pn.Column(
            pn.pane.Markdown("### Mix"),
            pn.widgets.Checkbox.from_param(s.param.simplex, name="Keep on the simplex (sum 1)"),
            *self.sliders.values(),
            pn.Row(self.generate, self.pin),
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
            sizing_mode="stretch_width",
        )

    def _moved(self, name: str, event) -> None:
        if self._syncing:
            return
        self.session.set_weight(name, event.new)

    def _released(self, event) -> None:
        if not self._syncing:
            self.session.regenerate()

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

    def __panel__(self):
        return self._layout


class ResponseView(Viewer):
    """The live response, its scores, and the time from slider release to the first token."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        s = self.session

        def body(response, generating):
            text = html.escape(response) if response else ("<i>generating...</i>" if generating else "")
            return pn.pane.HTML(
                f'<div class="response-text" style="white-space: pre-wrap">{text}</div>',
                sizing_mode="stretch_width",
                min_height=120,
            )

        def status(scores, first_token_s, generating, weights):
            parts = [f"<b>Mix:</b> {html.escape(_mix_label(weights))}"]
            if first_token_s is not None:
                parts.append(f"first token after <b>{first_token_s:.2f} s</b>")
            if generating:
                parts.append("generating...")
            elif scores:
                parts.append(
                    "scores: " + ", ".join(f"{html.escape(k)} <b>{_fmt(v)}</b>" for k, v in scores.items())
                )
            return pn.pane.HTML(
                f'<div class="response-status">{" · ".join(parts)}</div>', sizing_mode="stretch_width"
            )

        def message(text):
            return pn.pane.Alert(text, alert_type="danger", css_classes=["app-message"], visible=bool(text))

        return pn.Column(
            pn.pane.Markdown("### Response"),
            pn.bind(status, s.param.scores, s.param.first_token_s, s.param.generating, s.param.weights),
            pn.bind(body, s.param.response, s.param.generating),
            pn.bind(message, s.param.message),
            sizing_mode="stretch_width",
        )


class FrontierView(Viewer):
    """Grid mixes in objective space: the Pareto front, the current mix, pinned mixes; tap loads a mix."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

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
        self.plot = (front * self.points * pins * current).opts(
            hv.opts.Overlay(responsive=True, min_height=380, legend_position="right", title="Frontier"),
            # the axes follow the data as the grid fills in and the current mix moves
            hv.opts.Points(framewise=True, padding=0.1),
            hv.opts.Curve(framewise=True, padding=0.1),
        )

    def _table(self, ds, x, y):
        if ds is None or not is_summarized(ds) or x is None:
            return None
        names, weights = adapter_names(ds), mix_weights(ds)
        k = {o: i for i, o in enumerate(objective_names(ds))}
        mean, (low, high), optimal = means(ds), intervals(ds), pareto(ds)
        return [
            {
                x: mean[m, k[x]],
                y: mean[m, k[y]],
                "mix": _mix_label(dict(zip(names, weights[m], strict=True))),
                "x_ci": f"[{_fmt(low[m, k[x]])}, {_fmt(high[m, k[x]])}]",
                "y_ci": f"[{_fmt(low[m, k[y]])}, {_fmt(high[m, k[y]])}]",
                "pareto": "Pareto-optimal" if optimal[m] else "dominated",
            }
            for m in range(n_mixes(ds))
        ]

    def _grid_points(self, ds, x, y):
        rows = self._table(ds, x, y)
        vdims = [y, "mix", "x_ci", "y_ci", "pareto"]
        if not rows:
            return hv.Points([], kdims=[x or "x", y or "y"], vdims=vdims[2:]).opts(tools=["tap"])
        return hv.Points(rows, kdims=[x, y], vdims=vdims[1:], label="grid mixes").opts(
            color="pareto",
            cmap={"Pareto-optimal": "#d62728", "dominated": "#9aa5b1"},
            size=9,
            tools=["hover", "tap"],
            nonselection_alpha=0.6,
            selection_color="#ff7f0e",
            xlabel=self._axis(ds, x),
            ylabel=self._axis(ds, y),
            show_legend=False,
        )

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
        data = [point] if point and all(np.isfinite(point)) else []
        label = "current mix (measured)" if done else "current mix (estimate)"
        return hv.Points(data, kdims=[x or "x", y or "y"], label=label).opts(
            marker="star", size=22, color="#1f77b4", line_color="black"
        )

    def _pins(self, pinned, x, y):
        # a pinned mix sits where the grid would put it: its means over the grid's prompts
        data = [(p["measured"][x], p["measured"][y]) for p in pinned if {x, y} <= set(p.get("measured", {}))]
        return hv.Points(data, kdims=[x or "x", y or "y"], label="pinned").opts(
            marker="diamond", size=14, color="#2ca02c", line_color="black"
        )

    def _tapped(self, index):
        if index:
            self.session.load_mix(int(index[0]))
            self.session.regenerate()

    def __panel__(self):
        s = self.session
        axes = pn.Row(
            pn.widgets.Select.from_param(s.param.x_objective, name="x axis"),
            pn.widgets.Select.from_param(s.param.y_objective, name="y axis"),
            visible=len(s.engine.objectives) > 2,
        )
        return pn.Column(
            axes,
            pn.pane.HoloViews(
                self.plot, sizing_mode="stretch_width", min_height=380, css_classes=["frontier-plot"]
            ),
            sizing_mode="stretch_width",
        )


class SimplexView(Viewer):
    """With three adapters: the grid and the current mix on the weight triangle."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    @staticmethod
    def _xy(w):
        return w[1] + w[2] / 2.0, w[2] * math.sqrt(3) / 2.0

    def _plot(self, ds, weights):
        names = list(self.session.weights)
        corners = [self._xy(np.eye(3)[i]) for i in range(3)]
        edges = hv.Path([[*corners, corners[0]]]).opts(color="black")
        labels = hv.Labels(
            [(cx, cy - 0.06 if cy == 0 else cy + 0.05, n) for (cx, cy), n in zip(corners, names, strict=True)]
        )
        grid = []
        if ds is not None and is_summarized(ds):
            grid = [
                (*self._xy(w), "Pareto-optimal" if p else "dominated")
                for w, p in zip(mix_weights(ds), pareto(ds), strict=True)
            ]
        pts = hv.Points(grid, vdims=["pareto"]).opts(
            color="pareto",
            cmap={"Pareto-optimal": "#d62728", "dominated": "#9aa5b1"},
            size=7,
            show_legend=False,
        )
        current = hv.Points([self._xy([weights[n] for n in names])]).opts(
            marker="star", size=20, color="#1f77b4"
        )
        return (edges * labels * pts * current).opts(
            hv.opts.Overlay(
                xaxis=None,
                yaxis=None,
                height=260,
                width=300,
                title="Weights on the simplex",
                xlim=(-0.15, 1.15),
                ylim=(-0.15, 1.0),
            )
        )

    def __panel__(self):
        s = self.session
        if len(s.weights) != 3:
            return pn.Spacer(width=0)
        return pn.pane.HoloViews(hv.DynamicMap(pn.bind(self._plot, s.param.results, s.param.weights)))


class GridControls(Viewer):
    """Start and cancel the background grid; its progress."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        s, e = self.session, self.session.engine
        start = pn.widgets.Button(name="Compute frontier", button_type="success")
        cancel = pn.widgets.Button(name="Cancel grid", button_type="warning")

        start.on_click(lambda event: s.start_grid())
        cancel.on_click(lambda event: e.cancel_grid())
        progress = pn.indicators.Progress(
            value=pn.bind(lambda fraction: int(round(1000 * fraction)), s.param.grid_progress),
            max=1000,
            sizing_mode="stretch_width",
            bar_color="success",
        )
        return pn.Column(
            pn.pane.Markdown(f"### Frontier grid\n{len(e.grid_prompts)} prompts, resolution {e.resolution}"),
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
            sizing_mode="stretch_width",
        )


class CompareView(Viewer):
    """Pinned mixes side by side; words that differ from the reference column are highlighted."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def _columns(self, pinned, reference):
        s = self.session
        if not pinned:
            return pn.pane.Markdown(
                f"Pin up to {MAX_PINS} mixes to compare their responses to the same prompt and seed."
            )
        ref = pinned[min(reference, len(pinned) - 1)]["response"]
        cols = []
        for i, p in enumerate(pinned):
            body = html.escape(p["response"]) if i == reference else highlight_differences(p["response"], ref)
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
                    pn.pane.HTML(f"<b>{html.escape(_mix_label(p['weights']))}</b>"),
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
        refresh.on_click(lambda e: s.refresh_pins())
        return pn.Column(
            pn.Row(pn.pane.Markdown("### Compare pinned mixes"), refresh),
            pn.bind(self._columns, s.param.pinned, s.param.reference),
            sizing_mode="stretch_width",
        )


class ExportView(Viewer):
    """Export the current mix (written to the export folder) and download it as a zip."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        s = self.session

        download = pn.widgets.FileDownload(
            callback=s.export_zip,
            filename="mix.zip",
            label="Export and download (zip)",
            button_type="primary",
            embed=False,
        )
        return pn.Column(
            pn.pane.Markdown(f"### Export\nwritten to `{s.engine.export_dir}`"),
            pn.widgets.Select.from_param(s.param.export_format, name="Format"),
            pn.widgets.IntInput.from_param(s.param.export_rank, name="Rank (lowrank)"),
            download,
            sizing_mode="stretch_width",
        )
