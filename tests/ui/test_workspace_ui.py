"""The workspace in a real Chromium: a reload restores pins and mix, a share link reproduces its
response, undo restores the previous mix, keys generate and pin, the comparison downloads."""

from __future__ import annotations

import csv
import io
import json

import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from tests.ui.test_app_ui import TIMEOUT, generate_on_page, on_page, serve, slider_handle

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture
def app(demo_engine, tmp_path, monkeypatch):
    """The app with saved sessions in a folder of this test."""
    monkeypatch.setattr(demo_engine, "sessions_dir", tmp_path / "sessions")
    made: list[Explorer] = []

    def factory():
        explorer = Explorer(demo_engine, max_new_tokens=12)
        made.append(explorer)
        return explorer.template()

    yield factory, made
    for explorer in made:
        explorer.close()
        explorer.session.close(wait=60)


def ready(explorer, page):
    """Wait for ``explorer``'s first response."""
    wait_until(
        lambda: (
            bool(explorer.session.response)
            and not explorer.session.generating
            and bool(explorer.session.scores)
        ),
        page,
        timeout=TIMEOUT,
    )
    return explorer.session


def open_new(page, made, url):
    """Open ``url`` in ``page``; returns the session the visit made, once it has its response."""
    count = len(made)
    page.set_default_timeout(TIMEOUT)
    page.goto(url, wait_until="domcontentloaded")
    wait_until(lambda: len(made) == count + 1, page, timeout=TIMEOUT)
    return ready(made[-1], page)


def saved(explorer) -> dict:
    path = explorer.store.path
    return json.loads(path.read_text())["state"] if path.exists() else {}


def test_a_reload_restores_pins_and_mix_and_another_browser_starts_fresh(browser, app):
    factory, made = app
    page = browser.new_page()
    port = serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = ready(made[0], page)
    names = list(s.weights)
    generate_on_page(s, page, weights={n: float(n == names[0]) for n in names})
    page.get_by_role("button", name="Pin this mix").click()
    wait_until(lambda: len(s.pinned) == 1 and not s.pinned[0]["partial"], page, timeout=TIMEOUT)
    pinned_response = s.pinned[0]["response"]
    mix = {names[0]: 0.2, names[1]: 0.5, names[2]: 0.3}
    generate_on_page(s, page, weights=mix, prompt="Name three colours.")
    wait_until(
        lambda: saved(made[0]).get("weights") == mix and len(saved(made[0]).get("pinned", [])) == 1,
        page,
        timeout=TIMEOUT,
    )
    assert any(c["name"] == "pse_browser" for c in page.context.cookies())

    page.reload(wait_until="domcontentloaded")
    wait_until(lambda: len(made) == 2, page, timeout=TIMEOUT)
    again = ready(made[1], page)
    assert again.weights == mix and again.prompt == "Name three colours."
    assert [p["response"] for p in again.pinned] == [pinned_response]
    columns = page.locator(".pinned-response")
    wait_until(lambda: columns.count() == 1, page, timeout=TIMEOUT)
    assert columns.nth(0).inner_text().strip() == pinned_response.strip()
    handle = slider_handle(page, names[1])
    wait_until(
        lambda: float(handle.get_attribute("aria-valuenow")) == pytest.approx(0.5), page, timeout=TIMEOUT
    )
    assert again.response_for["weights"] == mix  # the page generated for the restored mix

    other = browser.new_context().new_page()  # another browser: its own cookie, its own session
    fresh = open_new(other, made, f"http://localhost:{port}/")
    assert fresh.pinned == [] and fresh.weights != mix and made[2].store.path != made[1].store.path
    other.context.close()
    page.close()


def test_a_share_link_reproduces_the_response_and_a_bad_one_says_why(browser, app):
    factory, made = app
    page = browser.new_page()
    port = serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = ready(made[0], page)
    names = list(s.weights)
    on_page(s, lambda: setattr(s, "seed", 7))  # one decoding setting per change (issue 22, problem 1)
    generate_on_page(
        s,
        page,
        weights={names[0]: 0.1, names[1]: 0.6, names[2]: 0.3},
        prompt="Describe a rainy afternoon.",
        temperature=0.8,
    )
    link = page.locator(".share-link")
    wait_until(lambda: "temperature=0.8" in (link.get_attribute("href") or ""), page, timeout=TIMEOUT)
    href = link.get_attribute("href")

    other = browser.new_context().new_page()  # the colleague's browser
    theirs = open_new(other, made, f"http://localhost:{port}/{href}")
    assert theirs.response_for == s.response_for and theirs.response == s.response  # the same text
    wait_until(lambda: "mix=" not in other.url, other, timeout=TIMEOUT)  # a reload shows their session
    wait_until(
        lambda: other.locator(".response-text").inner_text().strip() == s.response.strip(),
        other,
        timeout=TIMEOUT,
    )

    bad = open_new(other, made, f"http://localhost:{port}/?mix=nobody%3D1&temperature=hot")
    assert bad.response_for["weights"] == theirs.weights  # their own session, unchanged
    assert "temperature='hot' is not a number" in bad.message and "'nobody'" in bad.message
    # on the page, in the alert under the response: the link's problems, no traceback
    said = other.locator(".app-message").get_by_text("temperature='hot' is not a number")
    wait_until(lambda: said.count() == 1, other, timeout=TIMEOUT)
    assert "this share link could not be opened" in said.inner_text() and "'nobody'" in said.inner_text()
    assert "Traceback" not in other.locator("body").inner_text()
    wait_until(lambda: "temperature=" not in other.url, other, timeout=TIMEOUT)  # a reload: no message again
    other.context.close()
    page.close()


def test_undo_restores_the_previous_mix_and_keys_redo_it(page, app):
    factory, made = app
    serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = ready(made[0], page)
    names = list(s.weights)
    first, second = ({n: float(n == name) for n in names} for name in names[:2])
    generate_on_page(s, page, weights=first)
    generate_on_page(s, page, weights=second)
    page.locator(".undo-mix button").click()
    wait_until(lambda: s.weights == first, page, timeout=TIMEOUT)
    handle = slider_handle(page, names[0])
    wait_until(
        lambda: float(handle.get_attribute("aria-valuenow")) == pytest.approx(1.0), page, timeout=TIMEOUT
    )
    wait_until(lambda: not s.generating and s.response_for["weights"] == first, page, timeout=TIMEOUT)
    page.locator(".response-text").click()  # focus on the page, outside any text field
    page.keyboard.press("Control+y")
    wait_until(lambda: s.weights == second, page, timeout=TIMEOUT)
    page.keyboard.press("Control+z")
    wait_until(lambda: s.weights == first, page, timeout=TIMEOUT)
    wait_until(lambda: not s.generating and s.response_for["weights"] == first, page, timeout=TIMEOUT)


def test_keyboard_generate_and_pin_and_the_comparison_downloads(page, app):
    factory, made = app
    serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = ready(made[0], page)
    assert "Ctrl+Enter" in page.locator(".shortcuts-help").inner_text()
    box = page.locator("textarea")
    box.fill("Name three colours.")
    box.press("Control+Enter")  # while typing: the typed prompt is generated for
    wait_until(
        lambda: s.response_for.get("prompt") == "Name three colours." and not s.generating and bool(s.scores),
        page,
        timeout=TIMEOUT,
    )
    box.press("p")  # typing a "p" in the prompt pins nothing
    assert s.pinned == []
    page.locator(".response-text").click()
    page.keyboard.press("p")
    wait_until(lambda: len(s.pinned) == 1, page, timeout=TIMEOUT)
    wait_until(lambda: page.locator(".pinned-column").count() == 1, page, timeout=TIMEOUT)
    with page.expect_download(timeout=TIMEOUT) as info:
        page.locator(".comparison-downloads").get_by_role("button", name="CSV").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert [r["response"] for r in rows] == [s.pinned[0]["response"]]
    assert rows[0]["prompt"] == "Name three colours." and float(
        rows[0][f"score_{s.x_objective}"]
    ) == pytest.approx(s.pinned[0]["scores"][s.x_objective], rel=1e-5)
    with page.expect_download(timeout=TIMEOUT) as info:
        page.locator(".comparison-downloads").get_by_role("button", name="Markdown").click()
    text = info.value.path().read_text()
    assert s.pinned[0]["response"] in text and "| 1 (reference) |" in text
