"""The Choose panel: a bound slider per objective, the rule (best on one objective, preference
weights, or the knee), the chosen mix and "Load"; and its layers on the frontier plot (the mixes
the bounds exclude, greyed, and the chosen mix, ringed). Views render a ``Chooser``, nothing else.
"""

from __future__ import annotations

import html
from functools import partial

import holoviews as hv
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.choose_state import Chooser
from explorer.direction import MAXIMIZE
from explorer.frontier.results import is_summarized, means, objective_names
from explorer.mix import mix_label

GREY, STEPS = "#e4e7eb", 200  # excluded mixes' colour; slider steps over an objective's range


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4g}"


class ChoosePanel(Viewer):
    """Bounds, rule and the chosen mix, with a button that loads it onto the mix sliders."""

    chooser: Chooser = param.ClassSelector(class_=Chooser, allow_None=False)  # type: ignore[assignment]

    def __init__(self, **params):
        super().__init__(**params)
        c = self.chooser
        self._syncing = False
        self.bounds = {}
        for o, d in c.directions.items():
            slider = pn.widgets.FloatSlider(
                name=f"{o} {'at least' if d == MAXIMIZE else 'at most'}",
                start=0.0,
                end=1.0,
                value=0.0 if d == MAXIMIZE else 1.0,
                step=0.01,
                disabled=True,
                sizing_mode="stretch_width",
                css_classes=["constraint-slider"],
            )
            slider.param.watch(partial(self._moved, o), "value")
            self.bounds[o] = slider
        self.prefs = {}
        for o in c.directions:
            weight = pn.widgets.FloatSlider(
                name=f"weight of {o}",
                start=0.0,
                end=1.0,
                step=0.05,
                value=c.preferences[o],
                sizing_mode="stretch_width",
                css_classes=["preference-slider"],
            )
            weight.param.watch(partial(lambda o, event: c.set_preference(o, event.new), o), "value")
            self.prefs[o] = weight
        c.param.watch(self._sync, ["ranges", "limits"])
        self._sync()

        self.load = pn.widgets.Button(
            name="Load",
            button_type="primary",
            disabled=pn.bind(lambda choice: choice is None, c.param.choice),
        )
        self.load.on_click(lambda event: c.load())
        clear = pn.widgets.Button(name="Clear bounds", button_type="light")
        clear.on_click(lambda event: c.clear_limits())
        method = c.param.method
        self._layout = pn.Column(
            pn.pane.Markdown("### Choose a mix"),
            *self.bounds.values(),
            pn.Row(pn.widgets.RadioButtonGroup.from_param(c.param.bound, button_type="light"), clear),
            pn.widgets.RadioButtonGroup.from_param(method, button_type="light"),
            pn.widgets.Select.from_param(
                c.param.target, name="best on", visible=pn.bind(lambda m: m == "constraint", method)
            ),
            pn.Column(*self.prefs.values(), visible=pn.bind(lambda m: m == "preference", method)),
            pn.widgets.RadioButtonGroup.from_param(
                c.param.knee_method, button_type="light", visible=pn.bind(lambda m: m == "knee", method)
            ),
            pn.bind(self._result, c.param.choice, c.param.problem),
            self.load,
            sizing_mode="stretch_width",
        )

    def _moved(self, objective: str, event) -> None:
        if not self._syncing:
            self.chooser.set_limit(objective, event.new)

    def _sync(self, *events) -> None:
        """Slider ranges follow the frontier; a slider left alone sits at its range's loose end."""
        c = self.chooser
        self._syncing = True
        try:
            for o, slider in self.bounds.items():
                if o not in c.ranges:
                    slider.disabled = True
                    continue
                low, high = c.ranges[o]
                loose = low if c.directions[o] == MAXIMIZE else high
                value = min(high, max(low, c.limits.get(o, loose)))
                step = (high - low) / STEPS if high > low else 1.0
                slider.param.update(
                    start=low, end=max(high, low + step), step=step, value=value, disabled=False
                )
        finally:
            self._syncing = False

    def _result(self, choice, problem):
        if choice is None:
            return pn.pane.HTML(
                f'<div class="choice-result">{html.escape(problem)}</div>', sizing_mode="stretch_width"
            )
        rows = "".join(
            f"<tr><td>{html.escape(o)}</td><td><b>{_fmt(v)}</b></td><td>"
            + (
                f"[{_fmt(choice.intervals[o][0])}, {_fmt(choice.intervals[o][1])}]"
                if choice.intervals
                else ""
            )
            + "</td></tr>"
            for o, v in choice.scores.items()
        )
        return pn.pane.HTML(
            f'<div class="choice-result"><b>{html.escape(mix_label(choice.weights, digits=2))}</b>'
            f"<table>{rows}</table><small>{html.escape(choice.rule)}</small></div>",
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return self._layout


def frontier_layers(chooser: Chooser) -> list[hv.DynamicMap]:
    """The Choose panel's layers for the frontier plot: the measured mixes the bounds exclude
    (greyed over their points) and the chosen mix (ringed), on the session's two axes."""
    s = chooser.session
    axes = (s.param.x_objective, s.param.y_objective)
    excluded = hv.DynamicMap(pn.bind(_excluded, s.param.results, chooser.param.feasible, *axes))
    chosen = hv.DynamicMap(
        pn.bind(_chosen, chooser.param.choice, chooser.param.engaged, s.param.choice, *axes)
    )
    return [excluded, chosen]


def _excluded(ds, feasible, x, y):
    rows = []
    if ds is not None and is_summarized(ds) and feasible is not None and x is not None:
        k = {o: i for i, o in enumerate(objective_names(ds))}
        mean = means(ds)
        for m in range(len(mean)):
            point = (mean[m, k[x]], mean[m, k[y]])
            if not feasible[m] and all(v == v for v in mean[m]):  # measured, but out of bounds
                rows.append((*point, "excluded by the bounds"))
    return hv.Points(rows, kdims=[x or "x", y or "y"], vdims=["excluded"], label="out of bounds").opts(
        color=GREY, line_color="#b0b7bf", size=9, tools=["hover"]
    )


def _chosen(choice, engaged, loaded, x, y):
    """The Choose panel's pick, ringed once the user set a bound or the rule, or loaded a choice
    (before that nothing was chosen: the default rule's pick is not drawn)."""
    data = (
        [(choice.scores[x], choice.scores[y], f"chosen ({choice.method})")]
        if choice is not None and x and (engaged or loaded)
        else []
    )
    return hv.Points(data, kdims=[x or "x", y or "y"], vdims=["chosen"], label="chosen mix").opts(
        marker="circle", size=22, fill_alpha=0.0, line_color="#111111", line_width=3, tools=["hover"]
    )
