"""The Choose panel in a real Chromium, on the tiny soup and a frontier worked out by hand: moving a
bound greys out the mixes it excludes on the frontier plot, and "Load" sets the mix sliders."""

from __future__ import annotations

import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from tests.test_app_choose import MEANS, synthetic_front
from tests.tiny import tiny_app_engine
from tests.ui.test_app_ui import TIMEOUT, on_page, serve

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    with tiny_app_engine(tmp_path_factory.mktemp("choose-ui")) as engine:
        yield engine


@pytest.fixture
def explorer(page, tiny_engine):
    made = []

    def factory():
        made.append(Explorer(tiny_engine, max_new_tokens=6))
        return made[-1].template()

    serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = made[0].session
    wait_until(lambda: bool(s.response_for) and not s.generating, page, timeout=TIMEOUT)
    yield made[0]
    s.close(wait=60)


def layer_points(page, column):
    """The (x, y) points of the frontier layer whose data has ``column``, read from the page's Bokeh models."""
    return page.evaluate(
        """(column) => {
        for (const doc of Bokeh.documents) for (const m of doc.all_models) {
            if (m.type === 'GlyphRenderer' && m.glyph.type === 'Scatter' && column in m.data_source.data) {
                const d = m.data_source.data;
                const xs = Array.from(d[m.glyph.x.field]), ys = Array.from(d[m.glyph.y.field]);
                return xs.map((x, i) => [x, ys[i]]);
            }
        }
        return null; }""",
        column,
    )


def test_moving_a_bound_greys_out_mixes_and_load_sets_the_sliders(page, explorer):
    s, chooser = explorer.session, explorer.chooser
    front = synthetic_front()  # concise (words, minimized) on x, letters on y
    on_page(s, lambda: setattr(s, "results", front))
    wait_until(
        lambda: chooser.choice is not None and layer_points(page, "excluded") == [], page, timeout=TIMEOUT
    )

    # "concise at most": from the top of its range (62 words) down by 80 steps of 54/200 words
    handle = page.locator(".constraint-slider").filter(has_text="concise").locator(".noUi-handle")
    handle.focus()
    for _ in range(80):
        handle.press("ArrowLeft")
    bound = 62.0 - 80 * 54.0 / 200  # every key press handled (40.4 words)
    wait_until(lambda: chooser.limits.get("concise") == pytest.approx(bound), page, timeout=TIMEOUT)
    excluded = sorted(tuple(MEANS[m]) for m in range(len(MEANS)) if MEANS[m][0] > chooser.limits["concise"])
    assert excluded == [(50.0, 95.0), (60.0, 70.0)]  # mixes 4 and 6
    wait_until(
        lambda: sorted(map(tuple, layer_points(page, "excluded") or [])) == excluded, page, timeout=TIMEOUT
    )

    chosen = chooser.choice  # among the mixes left; ringed on the plot
    wait_until(
        lambda: layer_points(page, "chosen") == [[chosen.scores["concise"], chosen.scores["letters"]]],
        page,
        timeout=TIMEOUT,
    )
    page.get_by_role("button", name="Load", exact=True).click()
    wait_until(lambda: s.weights == pytest.approx(chosen.weights), page, timeout=TIMEOUT)
    for name, weight in chosen.weights.items():  # the mix sliders on the page show the chosen mix
        handle = page.locator(".weight-slider").filter(has_text=name).locator(".noUi-handle")
        wait_until(
            lambda handle=handle, weight=weight: (
                float(handle.get_attribute("aria-valuenow")) == pytest.approx(weight, abs=0.005)
            ),
            page,
            timeout=TIMEOUT,
        )
    wait_until(lambda: s.choice == chosen.to_dict(), page, timeout=TIMEOUT)  # an export records it
