"""Every objective at once in a real Chromium on the real demo: a box drawn over an axis of the
parallel coordinates greys the same mixes on the 2-D frontier plot; and the demo on a fresh
cache opens with its packaged front drawn (no grid runs)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from explorer.frontier.results import means, objective_names
from explorer.sampling import SamplingConfig
from tests.ui.test_app_ui import TIMEOUT, open_app, serve
from tests.ui.test_choose_ui import layer_points

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture
def app(demo_engine):
    made = []

    def factory():
        explorer = Explorer(demo_engine, max_new_tokens=12)
        made.append(explorer)
        return explorer.template()

    yield factory, made
    for explorer in made:
        explorer.session.close(wait=60)


def axis_on_screen(page, axis, height):
    """Screen coordinates of ``(axis, height)`` on the parallel-coordinates plot, from the Bokeh
    view's own scales (its axes' end values are the Text glyph with an ``axis`` column)."""
    return page.evaluate(
        """([axis, height]) => {
        for (const doc of Bokeh.documents) for (const m of doc.all_models) {
            if (m.type === 'GlyphRenderer' && m.glyph.type === 'Text' && 'axis' in m.data_source.data) {
                const view = Bokeh.index.find_one(m);
                if (!view) continue;
                const rect = view.parent.el.getBoundingClientRect();
                return [rect.left + view.coordinates.x_scale.compute(axis),
                        rect.top + view.coordinates.y_scale.compute(height)];
            }
        }
        return null; }""",
        [axis, height],
    )


def test_brushing_an_axis_greys_the_same_mixes_on_the_frontier(page, app, demo_engine):
    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)
    explorer = open_app(page, app)
    s, brush = explorer.session, explorer.brush
    ds = s.results
    assert ds is not None and layer_points(page, "filtered") == []
    page.locator(".parallel-plot").scroll_into_view_if_needed()
    wait_until(lambda: axis_on_screen(page, 0, 1.0) is not None, page, timeout=TIMEOUT)

    # a box over the top half of the first axis (the first objective, better end on top)
    (x0, y0), (x1, y1) = axis_on_screen(page, -0.2, 1.1), axis_on_screen(page, 0.2, 0.5)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    first = objective_names(ds)[0]
    wait_until(lambda: first in brush.ranges, page, timeout=TIMEOUT)
    kept = brush.kept
    assert kept is not None and 0 < kept.sum() < len(kept), brush.ranges
    low, high = brush.ranges[first]
    mean = means(ds)
    assert kept.tolist() == ((mean[:, 0] >= low) & (mean[:, 0] <= high)).tolist()

    # the 2-D plot greys exactly the mixes the brush filtered out
    k = {o: i for i, o in enumerate(objective_names(ds))}
    x, y = s.x_objective, s.y_objective

    def rounded(points):
        return sorted((round(float(a), 9), round(float(b), 9)) for a, b in points)

    expected = rounded((mean[m, k[x]], mean[m, k[y]]) for m in np.flatnonzero(~kept))
    wait_until(lambda: rounded(layer_points(page, "filtered") or []) == expected, page, timeout=TIMEOUT)
    # the Choose panel chooses among the kept mixes only
    choice = explorer.chooser.choice
    assert choice is None or kept[choice.index]
    page.get_by_role("button", name="Clear brushes").click()
    wait_until(lambda: layer_points(page, "filtered") == [], page, timeout=TIMEOUT)


def test_the_demo_on_a_fresh_cache_opens_with_its_packaged_front(page, tmp_path):
    """The packaged front seeds an empty frontier cache (its inputs' hashes match), so the page
    shows the default front as soon as it opens, with no grid run; the page says where it came from."""
    from explorer.app.engine import Engine
    from explorer.config import ModelOptions
    from explorer.frontier.packaged import packaged_front
    from explorer.launch import prepare_app
    from explorer.options import AppOptions

    assert packaged_front().is_file(), "run: python scripts/package_demo_front.py"
    setup = dataclasses.replace(
        prepare_app(ModelOptions(device="cpu"), AppOptions()), cache_dir=tmp_path / "frontiers"
    )
    engine = Engine.from_setup(setup)
    made = []

    def factory():
        made.append(Explorer(engine))
        return made[-1].template()

    try:
        opened = time.perf_counter()
        serve(page, factory)
        wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
        s = made[0].session
        assert s.results is not None and not s.grid_running  # read, not computed
        wait_until(
            lambda: len(layer_points(page, "x_ci") or []) == len(s.results["mix"]), page, timeout=TIMEOUT
        )
        shown = time.perf_counter() - opened
        print(f"the packaged front was drawn {shown:.1f} s after the page was opened")
        assert "the packaged demo front" in page.locator(".frontier-origin").inner_text()
        assert not any(run.running for run in engine.grids.values())
    finally:
        for explorer in made:
            explorer.session.close(wait=60)
        engine.close()
        setup.soup.close()


def frontier_legend(page):
    """The visible legend entries of the 2-D frontier plot (the legend with the current mix's
    entry): a label's value, or for the grid points' categories the values of that column."""
    return page.evaluate("""() => {
        for (const doc of Bokeh.documents) for (const legend of doc.all_models) {
            if (legend.type !== 'Legend') continue;
            if (!legend.items.some(i => String(i.label?.value).startsWith('current mix'))) continue;
            const out = [];
            for (const item of legend.items) {
                if (!item.visible) continue;
                if (item.label?.value !== undefined) out.push(item.label.value);
                else if (item.label?.field !== undefined) {
                    const d = item.renderers[0].data_source.data[item.label.field] || [];
                    for (const v of new Set(Array.from(d))) out.push(v);
                }
            }
            return out;
        }
        return null; }""")


def test_the_plot_lists_only_its_markers_and_tells_the_fronts_apart(page, app, demo_engine):
    from explorer.app.views import ALL_ONLY, DOMINATED, ON_PLANE, pareto_status

    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)
    factory, made = app

    def fresh():  # a session whose decoding has no grid yet: an empty plot
        # a decoding no test computes a grid for (sampled, its own seed)
        explorer = Explorer(demo_engine, max_new_tokens=12, temperature=0.9, seed=4242)
        made.append(explorer)
        return explorer.template()

    explorer = open_app(page, (fresh, made))
    s = explorer.session
    assert s.results is None
    wait_until(lambda: frontier_legend(page) == [], page, timeout=TIMEOUT)  # no absent markers listed

    from tests.ui.test_app_ui import on_page

    on_page(s, lambda: s.param.update(temperature=0.0, seed=0))  # the grid of these settings is there
    wait_until(lambda: s.results is not None, page, timeout=TIMEOUT)
    ds = s.results
    expected = pareto_status(ds, s.x_objective, s.y_objective)
    assert set(expected) <= {ON_PLANE, ALL_ONLY, DOMINATED}  # three objectives: two kinds of optimal
    wait_until(lambda: set(expected) <= set(frontier_legend(page) or []), page, timeout=TIMEOUT)
    assert "chosen mix" not in frontier_legend(page) and "pinned" not in frontier_legend(page)
    # the Choose panel has a pick, but nothing was chosen: no ring on the plot
    assert explorer.chooser.choice is not None
    assert layer_points(page, "chosen") == []
