"""Issue 22 (part A) in a real Chromium on the demo: prompt files, no machine paths, long prompts,
the per-prompt table of clicked grid points, grid status texts, a laptop-sized layout."""

from __future__ import annotations

import io
import os
import zipfile
from functools import partial
from pathlib import Path

import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from explorer.sampling import SamplingConfig
from tests.ui.test_app_ui import TIMEOUT, grid_point_on_screen, on_page, open_app, serve

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture
def app(demo_engine):
    made = []

    def factory():
        explorer = Explorer(demo_engine, max_new_tokens=12)
        made.append(explorer)
        return explorer.template()

    yield factory, made
    for explorer in made:  # no generation may outlive its test
        explorer.session.close(wait=60)


def grid_prompt_box(page):
    return page.locator(".bk-input-group").filter(has_text="Prompts (the first N").locator("input")


def test_uploading_a_prompt_file_shorter_than_the_count_uses_its_prompts(page, app, tmp_path):
    """Problem 1: a 3-line file while the box says 24: no server error, the box says 3."""
    explorer = open_app(page, app)
    s = explorer.session
    on_page(s, lambda: setattr(s, "grid_prompt_count", 24))
    wait_until(lambda: grid_prompt_box(page).input_value() == "24", page, timeout=TIMEOUT)
    file = tmp_path / "three.txt"
    file.write_text("Name a fruit.\nName a river.\nName a tree.\n")
    page.locator("input[type=file]").set_input_files(str(file))
    wait_until(
        lambda: s.grid_prompt_pool == ["Name a fruit.", "Name a river.", "Name a tree."],
        page,
        timeout=TIMEOUT,
    )
    wait_until(lambda: grid_prompt_box(page).input_value() == "3", page, timeout=TIMEOUT)
    assert s.grid_prompt_count == 3 and s.message == ""
    wait_until(lambda: "3 grid prompts" in page.locator(".grid-prompts").inner_text(), page, timeout=TIMEOUT)


def test_a_long_prompt_is_kept_whole(page, app):
    """Problem 3: a 20,000-character prompt reaches the session whole (the box no longer cuts it)."""
    explorer = open_app(page, app)
    s = explorer.session
    text = ("Summarise this please. " * 900)[:20_000]
    box = page.locator("textarea")
    box.fill(text)
    box.press("Tab")
    wait_until(lambda: len(s.prompt) == 20_000, page, timeout=TIMEOUT)
    assert s.prompt == text


def page_text(page) -> str:
    """Every text of the page, open or folded (details), with the values of inputs."""
    return page.evaluate(
        """() => {
        const texts = [];
        const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
                if (el.shadowRoot) walk(el.shadowRoot);
                if (el.value !== undefined && typeof el.value === 'string') texts.push(el.value);
                if (el.title) texts.push(el.title);
            }
            texts.push(root.textContent || '');
        };
        walk(document);
        return texts.join('\\n'); }"""
    )


def test_no_path_of_the_machine_in_the_page_or_the_downloaded_zip(page, app, demo_engine, tmp_path):
    """Problem 2: started from a folder outside the cache and the home folder, the page and the
    downloaded zip never name the cache's (or the export folder's, or the package's) absolute path."""
    from explorer.demo import cache_dir

    elsewhere = tmp_path / "started-here"
    elsewhere.mkdir()
    before = os.getcwd()
    os.chdir(elsewhere)
    try:
        explorer = open_app(page, app)
        page.get_by_role("button", name="Export", exact=True).click()
        link = page.get_by_role("button", name="Download")
        wait_until(lambda: link.count() == 1, page, timeout=TIMEOUT)
        wait_until(lambda: "written to" in page.locator(".export-status").inner_text(), page, timeout=TIMEOUT)
        with page.expect_download(timeout=TIMEOUT) as info:
            link.click()
        data = info.value.path().read_bytes()
        text = page_text(page)
    finally:
        os.chdir(before)
    machine = {
        str(cache_dir()),
        str(demo_engine.export_dir),
        str(Path(explorer.engine.soup.base_path).parent),
        str(Path(__file__).resolve().parents[2]),  # the checkout (the committed demo adapters)
        str(Path.home()),
        str(elsewhere),
    }
    machine.discard("/")
    assert [m for m in machine if m in text] == []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            content = zf.read(name)
            assert [m for m in machine if m.encode() in content] == [], name
        recipe = next(n for n in zf.namelist() if n.endswith("recipe.yaml"))
        assert b"sha256" in zf.read(recipe)  # the inputs stay identified, by their hashes


def _front(demo_engine) -> None:
    demo_engine.start_grid(SamplingConfig(max_new_tokens=12))
    demo_engine.wait_grid(600)


def click_point(page, session, index):
    """Click grid point ``index`` on the plot until the session loads it."""

    def clicked():
        x, y = grid_point_on_screen(page, index)
        page.mouse.click(x, y)
        page.wait_for_timeout(1500)
        return session.grid_point == index

    wait_until(clicked, page, timeout=TIMEOUT, interval=500)


def distinct_points(page, ds) -> list[int]:
    spots = [tuple(grid_point_on_screen(page, i)) for i in range(len(ds["mix"]))]
    return [i for i in range(len(spots)) if spots.count(spots[i]) == 1]


def test_a_clicked_points_table_is_in_the_main_area_sortable_and_beside_a_second_point(
    page, app, demo_engine
):
    """Problem 4: the per-prompt table is wide, in the main area, sorts by an objective, and a
    second clicked point is shown beside the first with its words that differ marked."""
    _front(demo_engine)
    explorer = open_app(page, app)
    s = explorer.session
    ds = s.results
    page.locator(".frontier-plot").scroll_into_view_if_needed()
    first, second = distinct_points(page, ds)[:2]
    click_point(page, s, first)
    table = page.locator(".point-table")
    wait_until(
        lambda: table.count() == 1 and table.locator(".tabulator-row").count() == 2, page, timeout=TIMEOUT
    )
    box, plot = table.bounding_box(), page.locator(".frontier-plot").bounding_box()
    assert box["width"] >= 0.9 * plot["width"]  # as wide as the plot, not the 320-px side column
    assert box["x"] == pytest.approx(plot["x"], abs=40)
    # sort by an objective: click its header, the rows follow its values
    objective = str(ds["objective"].values[0])
    header = table.locator(f'.tabulator-col[tabulator-field="{objective}"]')
    cells = table.locator(f'.tabulator-row .tabulator-cell[tabulator-field="{objective}"]')

    def column():
        return [float(cells.nth(i).inner_text()) for i in range(cells.count())]

    values = column()
    header.click()
    wait_until(lambda: header.get_attribute("aria-sort") == "ascending", page, timeout=TIMEOUT)
    wait_until(lambda: column() == sorted(values), page, timeout=TIMEOUT)
    header.click()
    wait_until(lambda: header.get_attribute("aria-sort") == "descending", page, timeout=TIMEOUT)
    wait_until(lambda: column() == sorted(values, reverse=True), page, timeout=TIMEOUT)
    # a second point: both mixes side by side, the second's differing words marked
    click_point(page, s, second)
    wait_until(lambda: s.compare_point == first, page, timeout=TIMEOUT)
    labels = page.locator(".point-table-mixes").inner_text()
    from explorer.frontier.results import mix_dict
    from explorer.mix import mix_label

    assert mix_label(mix_dict(ds, first), digits=2) in labels
    assert mix_label(mix_dict(ds, second), digits=2) in labels
    wait_until(
        lambda: table.locator('.tabulator-cell[tabulator-field="other_response"]').count() == 2,
        page,
        timeout=TIMEOUT,
    )


def test_grid_status_computing_eta_cancelled_and_the_cancel_button(page, app, demo_engine):
    """Problem 5: "Cancel grid" is disabled with nothing running; right after "Compute frontier"
    the plot says it is computing and the grid gives its time left; after each chunk the time
    left is measured; a cancelled partial grid does not say its points will still move."""
    explorer = open_app(page, app)
    s = explorer.session
    cancel = page.get_by_role("button", name="Cancel grid")
    wait_until(lambda: s._grid is None or not s.grid_running, page, timeout=TIMEOUT)
    wait_until(lambda: cancel.is_disabled(), page, timeout=TIMEOUT)
    on_page(s, lambda: setattr(s, "max_new_tokens", 400))  # still in its first chunk when cancelled
    page.get_by_role("button", name="Compute frontier").click()
    status = page.locator(".frontier-status")
    wait_until(lambda: "Computing" in status.inner_text(), page, timeout=TIMEOUT)
    assert "No frontier yet" not in status.inner_text()
    wait_until(lambda: cancel.is_enabled(), page, timeout=TIMEOUT)
    wait_until(lambda: "left" in page.locator(".grid-message").inner_text(), page, timeout=TIMEOUT)
    cancel.click()
    wait_until(lambda: not s.grid_running, page, timeout=TIMEOUT)
    wait_until(lambda: cancel.is_disabled(), page, timeout=TIMEOUT)
    # a grid cancelled after its first chunk (from its own thread, as soon as the chunk is in)
    on_page(s, lambda: setattr(s, "max_new_tokens", 5))
    messages: list[str] = []
    watched = []

    def cancel_after_the_first_chunk(run, event):
        if 0 < event.new < 1:
            messages.append(run.message)
            demo_engine.cancel_grid(run)

    def watch_the_new_grid(event):
        for run in demo_engine.grids.values():
            if run.running and "5 tokens" in run.settings and run not in watched:
                watched.append(run)
                run.param.watch(partial(cancel_after_the_first_chunk, run), "progress")

    watcher = demo_engine.param.watch(watch_the_new_grid, "grids_changed")
    try:
        page.get_by_role("button", name="Compute frontier").click()
        wait_until(lambda: bool(watched) and not watched[0].running, page, timeout=TIMEOUT)
    finally:
        demo_engine.param.unwatch(watcher)
    assert messages and "rows" in messages[0] and "left" in messages[0], messages  # measured ETA
    wait_until(lambda: "cancelled" in status.inner_text(), page, timeout=TIMEOUT)
    assert "Partial:" in status.inner_text() and "will still move" not in status.inner_text()
    wait_until(lambda: cancel.is_disabled(), page, timeout=TIMEOUT)


def visible_tooltips(page) -> list[str]:
    return page.evaluate(
        """() => {
        const out = [];
        const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
                if (el.shadowRoot) walk(el.shadowRoot);
                if (el.classList && el.classList.contains('bk-tooltip-content')) {
                    const r = el.getBoundingClientRect();
                    if (r.width > 0 && r.height > 0) out.push(el.innerText);
                }
            }
        };
        walk(document);
        return out; }"""
    )


def test_hovering_a_clicked_point_shows_no_unknown_fields(page, app, demo_engine):
    """Problem 5: the star on a clicked point shows its own tooltip, not the grid's with ???."""
    _front(demo_engine)
    explorer = open_app(page, app)
    s = explorer.session
    page.locator(".frontier-plot").scroll_into_view_if_needed()
    index = distinct_points(page, s.results)[0]
    click_point(page, s, index)
    wait_until(lambda: bool(s.measured), page, timeout=TIMEOUT)  # the star sits on the point

    def hovered():
        x, y = grid_point_on_screen(page, index)
        page.mouse.move(x - 30, y - 30)
        page.mouse.move(x, y)
        page.wait_for_timeout(800)
        return visible_tooltips(page)

    wait_until(lambda: len(hovered()) > 0, page, timeout=TIMEOUT, interval=500)
    tips = hovered()
    assert not [t for t in tips if "???" in t], tips


def test_the_response_says_stale_while_the_prompt_is_typed(page, app):
    """Problem 5: "stale" appears as soon as the prompt changes, before the box loses focus."""
    explorer = open_app(page, app)
    box = page.locator("textarea")
    box.click()
    box.press("End")
    box.press_sequentially(" Please.", delay=50)
    wait_until(lambda: page.locator(".response-stale").count() == 1, page, timeout=TIMEOUT)
    assert box.evaluate("el => document.activeElement === el || el.matches(':focus')")
    assert explorer.session.response


def test_on_a_laptop_screen_the_frontier_is_visible_without_scrolling(browser, app, demo_engine):
    """Problem 7: at 1366x768 the frontier plot is on the first screen, whole."""
    _front(demo_engine)
    factory, made = app
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = made[0].session
    wait_until(lambda: bool(s.response) and not s.generating, page, timeout=TIMEOUT)
    plot = page.locator(".frontier-plot")
    wait_until(
        lambda: plot.bounding_box() is not None and plot.bounding_box()["height"] > 200, page, timeout=TIMEOUT
    )
    page.wait_for_timeout(1000)  # the layout settles
    box = plot.bounding_box()
    assert page.evaluate("() => window.scrollY") == 0
    assert box["y"] >= 0 and box["y"] + box["height"] <= 768, box
    page.close()
