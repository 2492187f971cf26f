"""Every objective at once without a browser: the brush state, the parallel coordinates and the
scatter matrix at 6 objectives x 5 adapters, the Choose panel within the brush, and the 2-D plot's
marks (problem 6 of issue 22: optimal in all objectives vs on the plane, empty legend, no ring
before a choice, free-mode mixes off the triangle)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest
from bokeh.models import Legend

from explorer.app.brush_state import Brush
from explorer.app.choose_state import Chooser
from explorer.app.choose_views import _chosen
from explorer.app.objectives_views import ParallelCoordinates, ScatterMatrix, brushed_ranges
from explorer.app.views import ALL_ONLY, DOMINATED, ON_PLANE, FrontierView, SimplexView, pareto_status
from explorer.frontier.brush import brush_axes, kept_mixes, normalized
from explorer.frontier.results import front_in_plane, means, pareto
from tests.synthetic import synthetic_results
from tests.test_app_choose import synthetic_front

hv.extension("bokeh")


@pytest.fixture
def brush(session):
    b = Brush(session=session)
    yield b
    b.close()


def test_the_brush_keeps_what_the_core_keeps_and_follows_a_new_frontier(brush, session):
    assert brush.kept is None
    ds = synthetic_results(adapters=5, objectives=6)
    session.results = ds
    assert brush.kept.all() and not brush.active
    mean = means(ds)
    brush.set_range("o1", np.median(mean[:, 1]), mean[:, 1].max())
    assert brush.kept.tolist() == kept_mixes(ds, brush.ranges).tolist()
    assert brush.active and 0 < brush.kept.sum() < len(mean)
    brush.clear("o1")
    assert brush.kept.all()


def test_parallel_coordinates_scale_to_six_objectives_and_five_adapters(brush, session):
    ds = synthetic_results(adapters=5, objectives=6)
    session.results = ds
    view = ParallelCoordinates(brush=brush)
    fig = hv.render(view.plot[()])
    ticks = fig.xaxis[0].major_label_overrides
    assert len(ticks) == 11  # 6 objectives and 5 weights
    assert ticks[0] == "o0 (higher better)" and ticks[5] == "o5 (lower better)" and ticks[10] == "weight a4"
    view.weights = False
    assert len(hv.render(view.plot[()]).xaxis[0].major_label_overrides) == 6


def test_a_box_over_an_axis_brushes_that_axis_in_its_units(brush, session):
    ds = synthetic_results(adapters=5, objectives=6)
    session.results = ds
    view = ParallelCoordinates(brush=brush)
    axes = brush_axes(ds)
    _, low, high = normalized(axes)
    view._boxed((0.9, 0.5, 1.1, 1.0))  # the top half of axis 1 (o1, maximized)
    assert brush.ranges == {"o1": pytest.approx(((low[1] + high[1]) / 2, high[1]))}
    view._boxed((4.9, 0.75, 5.1, 1.0))  # the top quarter of o5, minimized: its lowest values
    lo, hi = brush.ranges["o5"]
    assert lo == pytest.approx(low[5]) and hi == pytest.approx(low[5] + 0.25 * (high[5] - low[5]))
    kept = brush.kept
    mean = means(ds)
    assert (
        kept.tolist()
        == ((mean[:, 1] >= brush.ranges["o1"][0]) & (mean[:, 5] <= brush.ranges["o5"][1])).tolist()
    )
    # a box spanning two axes brushes both; a box far from any axis brushes none
    assert set(brushed_ranges(axes, (1.8, 0.0, 3.2, 0.5), low, high)) == {"o2", "o3"}
    assert brushed_ranges(axes, (20.0, 0.0, 21.0, 0.5), low, high) == {}


def test_the_scatter_matrix_has_every_pair_and_greys_the_filtered(brush, session):
    ds = synthetic_results(adapters=5, objectives=6)
    session.results = ds
    brush.set_range("w_a0", 0.0, 0.0)
    matrix = ScatterMatrix(brush=brush)._matrix(ds, brush.kept)
    assert matrix is not None and len(matrix) == 25  # 5 x 5, the upper triangle empty
    cells = [el for el in matrix if el is not None]
    assert len(cells) == 15  # 6 * 5 / 2
    assert {(c.kdims[0].name, c.kdims[1].name) for c in cells} == {
        (f"o{i}", f"o{j}") for j in range(6) for i in range(j)
    }
    statuses = cells[0].dimension_values("status")
    assert (statuses == "filtered out").sum() == (~brush.kept).sum() > 0
    for cell in cells:
        hv.render(cell)  # draws


def test_the_choose_panel_chooses_among_the_kept_mixes(session):
    brush = Brush(session=session)
    chooser = Chooser(session=session, brush=brush)
    session.results = synthetic_front()  # concise (minimized) x letters
    chooser.method = "constraint"
    chooser.target = "letters"
    assert chooser.choice.index == 4  # (50, 95)
    brush.set_range("concise", 0.0, 45.0)  # keeps mixes 0-3 and 5
    assert chooser.choice.index == 3  # (40, 90): the best left
    assert chooser.feasible.all()  # the brush is not a bound: the plot greys its mixes itself
    assert chooser.ranges["concise"][1] <= 45.0 + SPREAD_MAX
    brush.set_range("concise", 1000.0, 2000.0)
    assert chooser.choice is None and "brush keeps no mix" in chooser.problem
    brush.clear()
    assert chooser.choice.index == 4
    chooser.close()
    brush.close()


SPREAD_MAX = 2.0  # the synthetic front's interval half-width on concise


def test_no_chosen_ring_until_the_user_chooses(session):
    chooser = Chooser(session=session)
    session.results = synthetic_front()
    assert chooser.choice is not None and not chooser.engaged
    ring = _chosen(chooser.choice, chooser.engaged, session.choice, "concise", "letters")
    assert len(ring) == 0
    chooser.method = "knee"
    assert chooser.engaged
    assert len(_chosen(chooser.choice, chooser.engaged, session.choice, "concise", "letters")) == 1
    chooser.close()


def test_three_objectives_mark_optimal_in_all_and_on_the_plane_apart():
    ds = synthetic_results(adapters=3, objectives=3, resolution=4, seed=5)
    status = pareto_status(ds, "o0", "o1")
    optimal, plane = pareto(ds), set(front_in_plane(ds, "o0", "o1"))
    assert {s for s in status} <= {ON_PLANE, ALL_ONLY, DOMINATED}
    for m, s in enumerate(status):
        assert s == (ON_PLANE if m in plane else ALL_ONLY if optimal[m] else DOMINATED)
    assert status.count(ALL_ONLY) > 0  # this data has mixes optimal overall but beaten on the plane
    two = synthetic_results(adapters=3, objectives=2, resolution=4)
    assert set(pareto_status(two, "o0", "o1")) <= {"Pareto-optimal", DOMINATED}


def _legend_labels(fig):
    legends = [r for r in fig.renderers + fig.center + fig.right if isinstance(r, Legend)]
    return [
        getattr(item.label, "value", None) or getattr(item.label, "field", None) or str(item.label)
        for legend in legends
        for item in legend.items
        if item.visible
    ]


def test_the_empty_plot_lists_no_markers(session):
    view = FrontierView(session=session)
    fig = hv.render(view.plot)
    assert _legend_labels(fig) == []


def test_a_free_mode_mix_off_the_simplex_is_not_drawn_in_the_triangle(session):
    view = SimplexView(session=session)
    names = list(session.weights)
    inside = view._plot(None, dict.fromkeys(names, 1 / 3))
    assert len(inside.get(3)) == 1 and "on the simplex" in inside.opts.get().kwargs["title"]
    off = view._plot(None, {names[0]: 1.0, names[1]: 0.8, names[2]: -0.3})
    assert len(off.get(3)) == 0 and "off the simplex" in off.opts.get().kwargs["title"]
