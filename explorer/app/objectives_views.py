"""Every objective at once: the grid's mixes in parallel coordinates (one line per mix, one axis per
objective and, optionally, per adapter weight), where a box drawn over an axis brushes it (keeps
only the mixes inside the box's height there), and a scatter matrix of every pair of objectives.
Views render a ``Brush`` (and through it the session), nothing else; the filtering is
``explorer.frontier.brush``.
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.brush_state import Brush
from explorer.app.views import hide_empty_legend_items
from explorer.frontier.brush import Axes, brush_axes, normalized, unit_to_value
from explorer.frontier.results import is_summarized, means, mix_dict, objective_names, pareto
from explorer.mix import mix_label

FILTERED = "#d5d9de"  # mixes the brush filters out, everywhere
KEPT = {"Pareto-optimal": "#d62728", "dominated": "#5b7083"}
BRUSHED = "#1f77b4"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def mix_label_of(ds, m: int) -> str:
    return mix_label(mix_dict(ds, int(m)), digits=2)


def axis_label(axes: Axes, a: int) -> str:
    """An axis's tick label: its name, and for an objective which way is better (its top)."""
    name, direction = axes.names[a], axes.directions[a]
    if not direction:
        return f"weight {name[2:]}"
    return f"{name} ({'higher' if direction == 'maximize' else 'lower'} better)"


def brushed_ranges(axes: Axes, bounds, low: np.ndarray, high: np.ndarray) -> dict[str, tuple[float, float]]:
    """The ranges a box drawn on the parallel-coordinates plot sets: ``bounds`` (x0, y0, x1, y1) in
    plot units (axis ``a`` at x = a, heights in [0, 1]) -> {axis: (low, high)} for every axis the
    box spans (or the nearest, within half a step, for a narrow box between two)."""
    x0, y0, x1, y1 = (float(b) for b in bounds)
    x0, x1 = sorted((x0, x1))
    covered = [a for a in range(len(axes.names)) if x0 <= a <= x1]
    if not covered:
        nearest = int(round((x0 + x1) / 2))
        covered = [nearest] if 0 <= nearest < len(axes.names) and abs(nearest - (x0 + x1) / 2) <= 0.5 else []
    u0, u1 = (min(1.0, max(0.0, u)) for u in sorted((y0, y1)))
    out = {}
    for a in covered:
        ends = sorted(unit_to_value(axes, axes.names[a], u, low, high) for u in (u0, u1))
        out[axes.names[a]] = (ends[0], ends[1])
    return out


class ParallelCoordinates(Viewer):
    """One line per measured mix across every objective (and adapter weight); a box drawn over
    an axis keeps only the mixes inside it there (``Brush.ranges``); kept mixes are coloured
    (red: Pareto-optimal in all objectives), the others grey."""

    brush: Brush = param.ClassSelector(class_=Brush, allow_None=False)  # type: ignore[assignment]
    weights = param.Boolean(default=True, doc="show the adapters' weights as axes too")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.brush.session
        lines = hv.DynamicMap(
            pn.bind(
                self._plot,
                s.param.results,
                self.brush.param.ranges,
                self.brush.param.kept,
                self.param.weights,
            )
        )
        # the box select tool sits on a static, invisible point: a BoundsXY stream whose source is
        # a DynamicMap of overlays never receives the box (measured: HoloViews 1.23, Bokeh 3.9)
        self.catcher = hv.Points([(0.0, 0.5)], kdims=["axis", "height"]).opts(
            tools=["box_select"], alpha=0.0, size=1
        )
        self.plot = (lines * self.catcher).opts(
            hv.opts.Overlay(
                responsive=True,
                height=330,
                active_tools=["box_select"],
                legend_position="top",
                legend_cols=3,
                hooks=[hide_empty_legend_items],
            )
        )
        self.box = hv.streams.BoundsXY(source=self.catcher, bounds=None)
        self.box.add_subscriber(self._boxed)

    def _axes(self):
        ds = self.brush.session.results
        if ds is None or not is_summarized(ds):
            return None
        axes = brush_axes(ds, weights=self.weights)
        unit, low, high = normalized(axes)
        return ds, axes, unit, low, high

    def _plot(self, ds, ranges, kept, weights):
        """Every frame has the same layers (a DynamicMap keeps the layers of its first frame):
        filtered, dominated and optimal lines, the axes' spines, their end values, the brushes."""
        found = self._axes() if ds is not None else None
        if found is None:
            n, unit, lines = 1, np.zeros((0, 1)), [np.zeros(0, dtype=int)] * 3
            spines, ends, boxes, label = [], [(0, 0.5, "No frontier yet")], [], [""]
        else:
            ds, axes, unit, low, high = found
            n = len(axes.names)
            measured = np.isfinite(means(ds)).all(axis=1)
            keep = kept if kept is not None and len(kept) == len(unit) else np.ones(len(unit), bool)
            optimal = pareto(ds)
            lines = [
                np.flatnonzero(measured & ~keep),
                np.flatnonzero(measured & keep & ~optimal),
                np.flatnonzero(measured & keep & optimal),
            ]
            spines = [(a, 0.0, a, 1.0) for a in range(n)]
            ends = []
            for a in range(n):
                top, bottom = (low[a], high[a]) if axes.directions[a] == "minimize" else (high[a], low[a])
                ends += [(a, 1.06, _fmt(top)), (a, -0.06, _fmt(bottom))]
            boxes = []
            for axis, (lo, hi) in ranges.items():
                if axis in axes.names:
                    a = axes.names.index(axis)
                    u = sorted(float(np.clip((v - low[a]) / (high[a] - low[a]), 0, 1)) for v in (lo, hi))
                    if axes.directions[a] == "minimize":
                        u = sorted(1.0 - v for v in u)
                    boxes.append((a - 0.12, u[0], a + 0.12, u[1]))
            label = [axis_label(axes, a) for a in range(n)]
        xs = np.arange(n, dtype=float)

        def path(rows):
            return [{"axis": xs, "height": unit[m], "mix": mix_label_of(ds, m)} for m in rows]

        paths = [
            hv.Path(path(rows), kdims=["axis", "height"], vdims=["mix"], label=name).opts(
                color=colour, line_width=width, alpha=alpha
            )
            for rows, name, colour, width, alpha in zip(
                lines,
                ("filtered out by the brush", "kept: dominated", "kept: Pareto-optimal in all objectives"),
                (FILTERED, KEPT["dominated"], KEPT["Pareto-optimal"]),
                (1.5, 1.5, 2.5),
                (0.8, 0.7, 0.9),
                strict=True,
            )
        ]
        overlay = hv.Overlay(
            [
                *paths,
                hv.Segments(spines, kdims=["axis", "height", "axis_end", "height_end"]).opts(
                    color="black", line_width=1
                ),
                hv.Labels(ends, kdims=["axis", "height"], vdims=["text"]).opts(text_font_size="8pt"),
                hv.Rectangles(boxes, kdims=["axis", "height", "axis_end", "height_end"]).opts(
                    fill_color=BRUSHED, fill_alpha=0.15, line_color=BRUSHED
                ),
            ]
        )
        frame = {
            "xticks": list(enumerate(label)),
            "xrotation": 20 if n > 6 else 0,
            "yaxis": None,
            "xlabel": "",
            "xlim": (-0.4, n - 0.6),
            "ylim": (-0.12, 1.12),
            "show_grid": False,
            "framewise": True,
        }
        return overlay.opts(
            hv.opts.Path(nonselection_alpha=1.0, selection_alpha=1.0, **frame),
            hv.opts.Segments(**frame),
            hv.opts.Labels(**frame),
            hv.opts.Rectangles(**frame),
        )

    def _boxed(self, bounds) -> None:
        """A box drawn on the plot: its height on each axis it spans becomes that axis's range."""
        found = self._axes()
        if bounds is None or found is None:
            return
        _, axes, _, low, high = found
        for axis, (lo, hi) in brushed_ranges(axes, bounds, low, high).items():
            self.brush.set_range(axis, lo, hi)

    def __panel__(self):
        return pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", css_classes=["parallel-plot"])


class ScatterMatrix(Viewer):
    """Every pair of objectives: the lower triangle of a matrix of scatter plots of the mixes'
    means, kept mixes coloured (red: Pareto-optimal in all objectives), filtered ones grey."""

    brush: Brush = param.ClassSelector(class_=Brush, allow_None=False)  # type: ignore[assignment]

    def _matrix(self, ds, kept) -> list[hv.Points | None] | None:
        """The cells of the matrix, row by row ((k - 1) x (k - 1), None above the diagonal)."""
        if ds is None or not is_summarized(ds) or len(objective_names(ds)) < 2:
            return None
        names, mean, optimal = objective_names(ds), means(ds), pareto(ds)
        keep = kept if kept is not None and len(kept) == len(mean) else np.ones(len(mean), bool)
        status = np.where(~keep, "filtered out", np.where(optimal, "Pareto-optimal", "dominated"))
        mixes = [mix_label_of(ds, m) for m in range(len(mean))]
        k = len(names)
        size = self._size(k)
        cells: list[hv.Points | None] = []
        for r in range(1, k):
            for c in range(k - 1):
                if c >= r:
                    cells.append(None)
                    continue
                rows = [
                    (mean[m, c], mean[m, r], status[m], mixes[m])
                    for m in np.argsort(keep, kind="stable")  # kept ones drawn last, on top
                    if np.isfinite(mean[m, [c, r]]).all()
                ]
                cells.append(
                    hv.Points(rows, kdims=[names[c], names[r]], vdims=["status", "mix"]).opts(
                        color="status",
                        cmap={**KEPT, "filtered out": FILTERED},
                        size=6,
                        width=size + (60 if c == 0 else 15),  # room for the y ticks and label
                        height=size + (50 if r == k - 1 else 10),  # room for the x ticks and label
                        tools=["hover"],
                        show_legend=False,
                        xaxis="bottom" if r == k - 1 else None,
                        yaxis="left" if c == 0 else None,
                        fontsize={"labels": "8pt", "ticks": "7pt"},
                    )
                )
        return cells

    def _grid(self, ds, kept):
        """One Bokeh figure per cell in a grid (a HoloViews Layout of them drew collapsed in the page)."""
        cells = self._matrix(ds, kept)
        if cells is None:
            return pn.pane.HTML("<i>No frontier yet, or fewer than two objectives.</i>")
        k = len(objective_names(ds))
        return pn.GridBox(
            *[pn.Spacer() if c is None else pn.pane.HoloViews(c.opts(toolbar=None)) for c in cells],
            ncols=k - 1,
            css_classes=["scatter-matrix"],
        )

    @staticmethod
    def _size(k: int) -> int:
        """A cell's side in pixels: the matrix fits about 800 px up to six objectives."""
        return max(110, min(200, 720 // max(1, k - 1)))

    def __panel__(self):
        s = self.brush.session
        return pn.Column(
            pn.pane.HTML(
                "<small>Every pair of objectives; red: Pareto-optimal in all objectives, grey: filtered "
                "out by the brush.</small>"
            ),
            pn.bind(self._grid, s.param.results, self.brush.param.kept),
        )


def brush_summary(ranges: dict, kept, names: list[str]) -> str:
    """The ranges in force and how many mixes they keep, in words."""
    if not ranges:
        return '<div class="brush-summary"><small>Draw a box over an axis to keep only the mixes inside it there; every view follows.</small></div>'
    parts = [f"<b>{html.escape(a)}</b> in [{_fmt(lo)}, {_fmt(hi)}]" for a, (lo, hi) in ranges.items()]
    count = "" if kept is None else f": {int(np.sum(kept))} of {len(kept)} mixes kept"
    return f'<div class="brush-summary">Brushed {", ".join(parts)}{count}</div>'


class AllObjectivesView(Viewer):
    """Parallel coordinates and the scatter matrix, with the brush's ranges and a way to clear them."""

    brush: Brush = param.ClassSelector(class_=Brush, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        b = self.brush
        parallel = ParallelCoordinates(brush=b)
        clear = pn.widgets.Button(
            name="Clear brushes", button_type="light", disabled=b.param.ranges.rx.not_()
        )
        clear.on_click(lambda event: b.clear())
        show_weights = pn.widgets.Checkbox.from_param(
            parallel.param.weights, name="adapters' weights as axes"
        )
        return pn.Column(
            pn.pane.Markdown("### Every objective at once"),
            pn.Tabs(
                (
                    "Parallel coordinates",
                    pn.Column(
                        pn.Row(show_weights, clear),
                        pn.pane.HTML(
                            pn.bind(brush_summary, b.param.ranges, b.param.kept, []),
                            sizing_mode="stretch_width",
                        ),
                        parallel,
                        sizing_mode="stretch_width",
                    ),
                ),
                ("Scatter matrix", ScatterMatrix(brush=b)),
                dynamic=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["all-objectives"],
        )


def brush_layers(brush: Brush) -> list[hv.DynamicMap]:
    """The brush's layer for the 2-D frontier plot: the mixes it filters out, greyed over their points."""
    s = brush.session
    return [
        hv.DynamicMap(
            pn.bind(_filtered, s.param.results, brush.param.kept, s.param.x_objective, s.param.y_objective)
        )
    ]


def _filtered(ds, kept, x, y):
    rows = []
    if (
        ds is not None
        and is_summarized(ds)
        and kept is not None
        and x is not None
        and len(kept) == len(means(ds))
    ):
        k = {o: i for i, o in enumerate(objective_names(ds))}
        mean = means(ds)
        for m in np.flatnonzero(~kept):
            point = (mean[m, k[x]], mean[m, k[y]])
            if np.isfinite(point).all():
                rows.append((*point, mix_label_of(ds, m), "filtered out by the brush"))
    return hv.Points(
        rows,
        kdims=[x or "x", y or "y"],
        vdims=["mix", "filtered"],
        label="filtered out by the brush",
    ).opts(color=FILTERED, line_color="#b0b7bf", size=9, tools=["hover"])
