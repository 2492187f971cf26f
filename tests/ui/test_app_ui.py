"""The app in a real Chromium: sliders stream a new response, frontier clicks, pins, grid, export."""

from __future__ import annotations

import io
import math
import re
import uuid
import zipfile
from functools import partial

import panel as pn
import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from explorer.sampling import SamplingConfig

pytestmark = [pytest.mark.ui, pytest.mark.integration]

TIMEOUT = 300_000  # ms; building the page and generating on a loaded 2-core CPU


def serve(page, factory):
    """Serve the app in this process and open it in ``page``; returns the port.

    Like ``panel.tests.util.serve_component`` without its 5 s waits, which a loaded machine
    misses. A session the browser has not connected to yet is kept as long as the tests wait
    (Bokeh drops it after 15 s by default; the browser would then get a second session)."""
    server_id = uuid.uuid4().hex
    pn.serve(
        factory,
        port=0,
        threaded=True,
        show=False,
        server_id=server_id,
        unused_session_lifetime_milliseconds=TIMEOUT,
    )
    wait_until(lambda: server_id in pn.state._servers, page, timeout=TIMEOUT)
    port = pn.state._servers[server_id][0].port
    page.set_default_timeout(TIMEOUT)
    page.goto(f"http://localhost:{port}/", wait_until="domcontentloaded")
    return port


def on_page(session, fn):
    """Change a served session from the test: as one of its page's events (``Session.on_page``),
    never from the test's thread (Bokeh documents change only on their own event loop)."""
    return session.on_page(fn, timeout=TIMEOUT / 1000)


def generate_on_page(session, page, **values):
    """Set ``values`` on the session and regenerate, on its page; wait for the scored response."""

    def change():
        session.param.update(**values)
        session.regenerate()
        return dict(session.response_for)

    produced = on_page(session, change)
    wait_until(
        lambda: not session.generating and bool(session.scores) and session.response_for == produced,
        page,
        timeout=TIMEOUT,
    )


@pytest.fixture
def app(demo_engine):
    made = []

    def factory():
        explorer = Explorer(demo_engine, max_new_tokens=12)
        made.append(explorer)
        return explorer.template()

    yield factory, made
    for explorer in made:  # no generation may outlive its test (nor run while the process exits)
        explorer.session.close(wait=60)


def open_app(page, app):
    factory, made = app
    page.set_default_timeout(TIMEOUT)  # a loaded 2-core machine builds the page slowly
    serve(page, factory)
    wait_until(lambda: len(made) == 1, page)
    explorer = made[0]
    wait_until(
        lambda: bool(explorer.session.response) and not explorer.session.generating, page, timeout=TIMEOUT
    )
    return explorer


def star_position(page):
    """The current-mix marker's data coordinates, read from the page's Bokeh models."""
    return page.evaluate("""() => {
        for (const doc of Bokeh.documents) for (const m of doc.all_models) {
            if (m.type === 'GlyphRenderer' && m.glyph.type === 'Scatter' && m.glyph.marker?.value === 'star'
                && m.data_source.data[m.glyph.x.field] !== undefined && !('x' in m.data_source.data && m.glyph.x.field === 'x')) {
                const d = m.data_source.data;
                return [Array.from(d[m.glyph.x.field]), Array.from(d[m.glyph.y.field])];
            }
        }
        return null; }""")


def grid_point_on_screen(page, index):
    """Screen coordinates of frontier point ``index``, from the Bokeh view's own scales (the grid
    mixes' renderer is the one with both a ``mix`` and a ``pareto`` column: not the pins, the
    current mix, the chosen ring or the simplex plot)."""
    return page.evaluate(
        """(index) => {
        for (const doc of Bokeh.documents) for (const m of doc.all_models) {
            if (m.type === 'GlyphRenderer' && m.glyph.type === 'Scatter' && 'pareto' in m.data_source.data && 'mix' in m.data_source.data) {
                const view = Bokeh.index.find_one(m);
                const d = m.data_source.data;
                const sx = view.coordinates.x_scale.compute(d[m.glyph.x.field][index]);
                const sy = view.coordinates.y_scale.compute(d[m.glyph.y.field][index]);
                const rect = view.parent.el.getBoundingClientRect();
                return [rect.left + sx, rect.top + sy];
            }
        }
        return null; }""",
        index,
    )


def slider_handle(page, name):
    return page.locator(".weight-slider").filter(has_text=name).locator(".noUi-handle")


def test_moving_a_slider_streams_a_new_response_and_moves_the_marker(page, app, demo_engine):
    from explorer.sampling import generate

    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)
    explorer = open_app(page, app)
    s = explorer.session
    first_star = star_position(page)
    seen = []
    s.param.watch(lambda e: seen.append((dict(s.weights), e.new)), "response")
    handle = slider_handle(page, "concise")
    handle.focus()
    target = round(s.weights["concise"] + 0.40, 2)  # 40 presses of the slider's 0.01 step
    for _ in range(40):
        handle.press("ArrowRight")
    wait_until(lambda: s.weights["concise"] == pytest.approx(target), page, timeout=TIMEOUT)
    final = dict(s.weights)  # the last key press has reached the server
    wait_until(
        lambda: not s.generating and bool(s.scores) and s.response_for.get("weights") == final,
        page,
        timeout=TIMEOUT,
    )
    expected = generate(demo_engine.soup, [s.prompt], final, config=s.sampling).texts[0]
    assert s.response == expected
    streamed = [text for _, text in seen if text]
    assert len(streamed) >= 2  # it streamed after the move: partial texts before the final one
    assert s.first_token_s is not None and s.first_token_s > 0
    wait_until(
        lambda: page.locator(".response-text").inner_text().strip() == expected.strip(), page, timeout=TIMEOUT
    )
    wait_until(lambda: star_position(page) not in (None, first_star), page, timeout=TIMEOUT)
    wait_until(
        lambda: "first token after" in page.locator(".response-status").inner_text(), page, timeout=TIMEOUT
    )


def test_clicking_a_frontier_point_loads_its_weights(page, app, demo_engine):
    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)
    explorer = open_app(page, app)
    ds = explorer.session.results
    page.locator(".frontier-plot").scroll_into_view_if_needed()
    # a point no other mix shares (two mixes with the same responses share one spot on the plot)
    spots = [tuple(grid_point_on_screen(page, i)) for i in range(len(ds["mix"]))]
    index = next(i for i in range(1, len(spots)) if spots.count(spots[i]) == 1)
    expected = dict(zip(map(str, ds["adapter"].values), ds["weights"].values[index].tolist(), strict=True))

    def clicked():
        x, y = grid_point_on_screen(page, index)
        assert math.isfinite(x) and math.isfinite(y), (x, y)
        page.mouse.click(x, y)
        page.wait_for_timeout(2000)
        return explorer.session.weights == pytest.approx(expected)

    wait_until(clicked, page, timeout=TIMEOUT, interval=500)
    for name, weight in expected.items():  # the sliders on the page show the clicked mix
        handle = slider_handle(page, name)
        wait_until(
            lambda handle=handle, weight=weight: (
                float(handle.get_attribute("aria-valuenow")) == pytest.approx(weight, abs=0.005)
            ),
            page,
            timeout=TIMEOUT,
        )
    # the current-mix star moves onto the clicked point: its grid means are its measured scores
    k = {str(o): i for i, o in enumerate(ds["objective"].values)}
    x, y = explorer.session.x_objective, explorer.session.y_objective
    point = [ds["mean"].values[index][k[x]], ds["mean"].values[index][k[y]]]
    wait_until(
        lambda: star_position(page) == [[pytest.approx(point[0])], [pytest.approx(point[1])]],
        page,
        timeout=TIMEOUT,
    )


def test_pin_three_mixes_and_compare_them(page, app):
    explorer = open_app(page, app)
    s = explorer.session
    for i, name in enumerate(list(s.weights)):
        generate_on_page(s, page, weights={n: float(n == name) for n in s.weights})
        page.get_by_role("button", name="Pin this mix").click()
        wait_until(lambda i=i: page.locator(".pinned-column").count() == i + 1, page, timeout=TIMEOUT)
    columns = page.locator(".pinned-response")
    wait_until(lambda: columns.count() == 3, page, timeout=TIMEOUT)
    texts = [columns.nth(i).inner_text() for i in range(3)]
    assert len(set(texts)) == 3 and all(texts)
    assert page.locator(".pinned-response mark").count() > 0  # differences from the reference are marked


def test_start_and_cancel_a_grid(page, app, demo_engine):
    explorer = open_app(page, app)
    s = explorer.session
    on_page(s, lambda: setattr(s, "max_new_tokens", 400))  # the grid is still running when we cancel
    page.get_by_role("button", name="Compute frontier").click()
    wait_until(lambda: s.grid_running, page, timeout=TIMEOUT)
    page.get_by_role("button", name="Cancel grid").click()
    wait_until(lambda: not s.grid_running, page, timeout=TIMEOUT)
    assert "cancelled" in s.grid_message, s.grid_message
    wait_until(lambda: "cancelled" in page.locator(".grid-message").inner_text(), page, timeout=TIMEOUT)
    assert s.message == ""


def test_a_partial_front_says_partial(page, app, demo_engine):
    explorer = open_app(page, app)
    s = explorer.session
    on_page(s, lambda: setattr(s, "max_new_tokens", 3))  # a grid of its own, in chunks of 7
    watched = []

    def cancel_after_the_first_chunk(run, event):
        if 0 < event.new < 1:
            demo_engine.cancel_grid(run)

    def watch_the_new_grid(event):  # in the thread that starts it, before its first chunk ends
        for run in demo_engine.grids.values():
            if run.running and "3 tokens" in run.settings and run not in watched:
                watched.append(run)
                run.param.watch(partial(cancel_after_the_first_chunk, run), "progress")

    watcher = demo_engine.param.watch(watch_the_new_grid, "grids_changed")
    try:
        page.get_by_role("button", name="Compute frontier").click()
        wait_until(lambda: bool(watched) and not watched[0].running, page, timeout=TIMEOUT)
    finally:
        demo_engine.param.unwatch(watcher)
    wait_until(lambda: s._grid is watched[0] and not s.grid_running, page, timeout=TIMEOUT)
    status = page.locator(".frontier-status")
    wait_until(lambda: "Partial:" in status.inner_text(), page, timeout=TIMEOUT)
    done, total = map(int, re.search(r"Partial: (\d+)/(\d+) rows", status.inner_text()).groups())
    assert 0 < done < total  # cancelled after its first chunk of 7 (or a later one)
    assert "3 tokens, greedy" in status.inner_text()  # the settings of the front shown
    wait_until(
        lambda: "partial grid" in page.locator(".grid-hypervolume").inner_text(), page, timeout=TIMEOUT
    )


def test_export_downloads_a_zip_with_a_loadable_adapter(page, app, demo_engine, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    explorer = open_app(page, app)
    page.get_by_role("button", name="Export", exact=True).click()
    link = page.get_by_role("button", name="Download")  # a zip named after the mix
    wait_until(lambda: link.count() == 1, page, timeout=TIMEOUT)
    assert "adapter.zip" in link.inner_text() and "concise" in link.inner_text()
    status = page.locator(".export-status")
    # the folder by its name: the page shows no absolute path of the server (issue 22)
    wait_until(lambda: "adapter written to adapter-" in status.inner_text(), page, timeout=TIMEOUT)
    with page.expect_download(timeout=TIMEOUT) as info:
        link.click()
    data = info.value.path().read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path)
        top = zf.namelist()[0].split("/")[0]
    assert (tmp_path / top / "recipe.yaml").is_file()
    soup = demo_engine.soup
    base = AutoModelForCausalLM.from_pretrained(soup.base_path, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, tmp_path / top).eval()  # loads, and is the session's mix
    ids = soup.tokenizer(["Give me one tip for sleeping better."], return_tensors="pt")["input_ids"]
    with torch.no_grad(), soup.lock, soup.mixed(explorer.session.weights):
        expected = soup.model(input_ids=ids).logits
        assert (loaded(input_ids=ids).logits - expected).abs().max() < 1e-3 * expected.abs().max()


def open_two(browser, app):
    """Two pages on one served app, each with its first response; returns (pages, A, B)."""
    factory, made = app
    pages = [browser.new_page(), browser.new_page()]
    for p in pages:
        p.set_default_timeout(TIMEOUT)
    port = serve(pages[0], factory)
    pages[1].goto(f"http://localhost:{port}")
    wait_until(lambda: len(made) == 2, pages[1], timeout=TIMEOUT)
    for explorer in made:
        wait_until(
            lambda e=explorer: bool(e.session.response) and not e.session.generating,
            pages[1],
            timeout=TIMEOUT,
        )
    return pages, made[0].session, made[1].session


def test_two_sessions_share_one_model_and_keep_their_own_mixes(browser, app, demo_engine):
    from explorer.sampling import generate

    pages, a, b = open_two(browser, app)
    names = list(a.weights)
    on_page(a, lambda: setattr(a, "weights", {n: float(n == names[0]) for n in names}))
    assert b.weights != a.weights  # one session's sliders do not move the other's
    on_page(b, lambda: setattr(b, "weights", {n: float(n == names[1]) for n in names}))
    on_page(a, a.regenerate), on_page(b, b.regenerate)  # at the same time, on the one model
    for s in (a, b):  # each got its own mix's response: the model's weights never changed under it
        expected = generate(demo_engine.soup, [s.prompt], s.weights, config=s.sampling).texts[0]
        wait_until(lambda s=s, e=expected: not s.generating and s.response == e, pages[1], timeout=TIMEOUT)
    for p in pages:
        p.close()


def test_one_session_stays_live_while_another_refreshes_pins_and_exports(browser, app, demo_engine):
    pages, a, b = open_two(browser, app)
    names = list(a.weights)
    for name in names:
        generate_on_page(a, pages[0], weights={n: float(n == name) for n in names})
        on_page(a, a.pin)
    assert len(a.pinned) == 3
    on_page(a, lambda: setattr(a, "max_new_tokens", 150))  # a long refresh: three pins of 150 tokens
    pages[0].get_by_role("button", name="Regenerate pinned for this prompt").click()
    pages[0].get_by_role("button", name="Export", exact=True).click()
    wait_until(lambda: a.refreshing_pins, pages[0], timeout=TIMEOUT)
    # meanwhile B's page answers: its prompt edit comes back as a "stale" label, and its own
    # response streams in token by token
    box = pages[1].locator("textarea")
    box.fill("Name three colours.")
    box.press("Tab")
    wait_until(lambda: pages[1].locator(".response-stale").count() == 1, pages[1], timeout=TIMEOUT)
    assert a.refreshing_pins  # it happened while A's pins were being regenerated
    seen = []
    b.param.watch(lambda e: seen.append(e.new), "response")
    pages[1].get_by_role("button", name="Generate", exact=True).click()
    wait_until(  # the response for the new prompt (the old one is scored too, until the click arrives)
        lambda: b.response_for["prompt"] == "Name three colours." and not b.generating and bool(b.scores),
        pages[1],
        timeout=TIMEOUT,
    )
    assert len([t for t in seen if t]) >= 2
    wait_until(lambda: not a.refreshing_pins and "written to" in a.export_status, pages[0], timeout=TIMEOUT)
    assert all(p["sampling"]["max_new_tokens"] == 150 for p in a.pinned)
    for p in pages:
        p.close()


def simplex_box(page):
    """The "Keep on the simplex" tick box itself (Bokeh 3.9 draws its text beside it, not in a
    <label>: clicking the text does not tick it)."""
    return page.locator(".bk-Checkbox").filter(has_text="Keep on the simplex (sum 1)").locator("input")


def test_simplex_toggle_regenerates_and_pins_show_their_prompt(page, app, demo_engine):
    from explorer.sampling import generate

    explorer = open_app(page, app)
    s = explorer.session
    simplex_box(page).click()
    wait_until(lambda: not s.simplex, page, timeout=TIMEOUT)
    generate_on_page(s, page, weights={**s.weights, "positive": 2.0})
    page.get_by_role("button", name="Pin this mix").click()
    wait_until(lambda: len(s.pinned) == 1, page, timeout=TIMEOUT)
    simplex_box(page).click()  # back on the simplex: a new response
    wait_until(lambda: s.simplex and sum(s.weights.values()) == pytest.approx(1.0), page, timeout=TIMEOUT)
    expected = generate(demo_engine.soup, [s.prompt], s.weights, config=s.sampling).texts[0]
    wait_until(lambda: not s.generating and s.response == expected, page, timeout=TIMEOUT)
    assert s.response_for["weights"] == pytest.approx(s.weights)
    status = page.locator(".response-status")
    wait_until(lambda: "positive=2" not in status.inner_text(), page, timeout=TIMEOUT)
    assert page.locator(".response-stale").count() == 0
    page.get_by_role("button", name="Pin this mix").click()
    page.get_by_role("button", name="Pin this mix").click()  # the same again: refused
    wait_until(lambda: "already pinned" in s.message, page, timeout=TIMEOUT)
    assert len(s.pinned) == 2 and s.pinned[0]["weights"]["positive"] == 2.0  # the mix that produced it
    on_page(s, lambda: setattr(s, "prompt", "Name three colours."))
    prompts = page.locator(".pin-prompt")
    wait_until(lambda: page.locator(".pin-other-prompt").count() == 2, page, timeout=TIMEOUT)
    wait_until(lambda: "Give me one tip" in prompts.nth(0).inner_text(), page, timeout=TIMEOUT)


def test_two_sessions_with_different_grid_settings_keep_their_own_fronts(browser, app, demo_engine):
    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)
    pages, a, b = open_two(browser, app)
    front = a.results
    assert front is not None and b.results is front  # the same settings: one grid
    on_page(b, lambda: setattr(b, "max_new_tokens", 4))
    pages[1].get_by_role("button", name="Compute frontier").click()
    wait_until(lambda: b.grid_running, pages[1], timeout=TIMEOUT)
    assert pages[0].get_by_role("button", name="Cancel grid").is_disabled()  # A runs no grid to cancel
    wait_until(lambda: not b.grid_running, pages[1], timeout=TIMEOUT)
    assert "grid done" in b.grid_message and a.results is front
    wait_until(
        lambda: "4 tokens" in pages[1].locator(".frontier-status").inner_text(), pages[1], timeout=TIMEOUT
    )
    assert "12 tokens" in pages[0].locator(".frontier-status").inner_text()
    for p in pages:
        p.close()


def test_a_merged_export_writes_a_folder_and_sends_no_zip(page, app, demo_engine):
    explorer = open_app(page, app)
    s = explorer.session
    on_page(s, lambda: setattr(s, "export_format", "merged"))
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.get_by_role("button", name="Export", exact=True).click()
    status = page.locator(".export-status")
    wait_until(lambda: "merged written to" in status.inner_text(), page, timeout=TIMEOUT)
    folder = s.export_status.split("written to ")[1].split(" (")[0]
    assert (demo_engine.export_dir / folder.split("/")[-1] / "config.json").is_file()
    assert page.get_by_role("button", name="Download").count() == 0 and not downloads
    assert not list(demo_engine.export_dir.glob("*merged*.zip"))


def test_a_failing_scorer_shows_a_message_and_the_app_stays_usable(page, app, demo_engine):
    from explorer.objectives import Objective

    explorer = open_app(page, app)
    s = explorer.session
    demo_engine.objectives.append(Objective("broken", lambda prompts, responses: "not numbers"))
    try:
        page.get_by_role("button", name="Generate", exact=True).click()
        wait_until(
            lambda: page.get_by_text("objective 'broken' returned str").count() > 0, page, timeout=TIMEOUT
        )
        wait_until(lambda: not s.generating, page, timeout=TIMEOUT)
        assert s.response  # the response is kept
    finally:
        demo_engine.objectives.pop()
    page.get_by_role("button", name="Generate", exact=True).click()  # usable: the next request works
    wait_until(lambda: not s.generating and bool(s.scores) and not s.message, page, timeout=TIMEOUT)
    wait_until(lambda: "scores:" in page.locator(".response-status").inner_text(), page, timeout=TIMEOUT)


def test_the_mixing_method_selector_streams_a_decoding_time_mix_and_says_so(page, app, demo_engine):
    explorer = open_app(page, app)
    s = explorer.session
    generate_on_page(s, page, weights={"positive": 0.5, "readable": 0.5, "concise": 0.0})
    select = page.locator(".bk-input-group").filter(has_text="Mixing method").locator("select")
    select.select_option("mod")
    wait_until(lambda: s.method == "mod", page, timeout=TIMEOUT)
    wait_until(lambda: page.locator(".response-stale").count() == 1, page, timeout=TIMEOUT)
    page.get_by_role("button", name="Generate", exact=True).click()
    expected = demo_engine.scheduler.generate([s.prompt], s.weights, config=s.sampling, method="mod").texts[0]
    wait_until(lambda: not s.generating and s.response == expected, page, timeout=TIMEOUT)
    status = page.locator(".response-status")
    wait_until(lambda: "(mod)" in status.inner_text(), page, timeout=TIMEOUT)
    assert s.response_for["method"] == "mod" and page.locator(".response-stale").count() == 0
